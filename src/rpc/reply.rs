//! Replies to callers, as oslo 18's `AMQPIncomingMessage.reply` sends them:
//! one message `{"result", "failure", "ending": true, "_msg_id",
//! "_unique_id"}` to the default exchange with routing key `_reply_q`,
//! mandatory, retried while the reply queue is missing for
//! `kombu_missing_consumer_retry_timeout` seconds; reply queues found gone
//! are remembered for a minute (oslo's `ObsoleteReplyQueuesCache`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::envelope::{self, EnvelopeError, Reply, ReplyTo};
use super::failure::{FailureError, RemoteFailure};
use super::publisher::{Destination, Outcome, PublishError, Publisher};
use super::transport::message_properties;

/// Reply errors.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("reply queue {0} does not exist (caller gone?)")]
    QueueGone(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Failure(#[from] FailureError),
}

/// oslo's `ObsoleteReplyQueuesCache`: 200 queues, 60 seconds.
#[derive(Debug, Default)]
pub struct ObsoleteReplyQueues {
    inner: Mutex<HashMap<String, Instant>>,
}

const OBSOLETE_SIZE: usize = 200;
const OBSOLETE_TTL: Duration = Duration::from_secs(60);

impl ObsoleteReplyQueues {
    fn is_gone(&self, q: &str) -> bool {
        let Ok(mut m) = self.inner.lock() else {
            return false;
        };
        let now = Instant::now();
        m.retain(|_, t| now.duration_since(*t) < OBSOLETE_TTL);
        m.contains_key(q)
    }

    fn add(&self, q: &str) {
        let Ok(mut m) = self.inner.lock() else { return };
        if m.len() >= OBSOLETE_SIZE {
            if let Some(oldest) = m.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                m.remove(&oldest);
            }
        }
        m.insert(q.to_string(), Instant::now());
    }
}

/// Build the wire body of a reply (new `_unique_id` each time, as oslo).
pub fn reply_body(
    to: &ReplyTo,
    outcome: &Result<Value, RemoteFailure>,
    ending: bool,
) -> Result<Vec<u8>, ReplyError> {
    let (result, failure) = match outcome {
        Ok(v) => (v.clone(), None),
        Err(f) => (Value::Null, Some(f.to_wire()?)),
    };
    let reply = Reply {
        result,
        failure,
        ending,
        msg_id: Some(to.msg_id.clone()),
        unique_id: Some(envelope::new_id()),
    };
    Ok(envelope::seal(&reply.to_message())?)
}

/// Send a reply (or a call-monitor heartbeat when `ending` is false).
#[tracing::instrument(skip(publisher, obsolete, outcome), fields(msg_id = %to.msg_id, reply_q = %to.reply_q))]
pub async fn send_reply(
    publisher: &Publisher,
    obsolete: &ObsoleteReplyQueues,
    to: &ReplyTo,
    outcome: &Result<Value, RemoteFailure>,
    ending: bool,
    missing_queue_timeout: Duration,
) -> Result<(), ReplyError> {
    if obsolete.is_gone(&to.reply_q) {
        tracing::warn!("reply queue doesn't exist, drop reply");
        return Err(ReplyError::QueueGone(to.reply_q.clone()));
    }
    let body = reply_body(to, outcome, ending)?;
    let deadline = Instant::now() + missing_queue_timeout;
    loop {
        let res = publisher
            .publish(
                &Destination::Default,
                &to.reply_q,
                &body,
                message_properties(None),
                true,
                Some(deadline),
            )
            .await;
        match res {
            Ok(Outcome::Delivered) => return Ok(()),
            Ok(Outcome::Returned) if ending && Instant::now() < deadline => {
                tracing::debug!("reply queue missing, retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(Outcome::Returned) => {
                if ending {
                    obsolete.add(&to.reply_q);
                }
                tracing::error!(
                    ?missing_queue_timeout,
                    "reply failed to send due to a missing queue, abandoning"
                );
                return Err(ReplyError::QueueGone(to.reply_q.clone()));
            }
            Err(e) => {
                obsolete.add(&to.reply_q);
                tracing::error!(error = %e, "reply failed to send, abandoning");
                return Err(e.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_shape_like_oslo() {
        let to = ReplyTo {
            msg_id: "m1".into(),
            reply_q: "reply_x".into(),
        };
        let body = reply_body(&to, &Ok(serde_json::json!({"a": 1})), true).unwrap();
        let s = String::from_utf8(body).unwrap();
        assert!(s.starts_with(
            r#"{"oslo.version": "2.0", "oslo.message": "{\"result\": {\"a\": 1}, \"failure\": null, \"ending\": true, \"_msg_id\": \"m1\", \"_unique_id\": \""#
        ));
    }
}
