//! The RPC client: `call`, `cast` and fanout `cast` to any topic/server, as
//! oslo's `RPCClient` sends them. Calls get their replies on one
//! `reply_<uuid hex>` queue per client (declared as oslo declares it: not
//! durable, not auto-delete, `x-expires`), matched by `_msg_id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch, OnceCell};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::RequestContext;
use super::envelope::{self, EnvelopeError, Reply, ReplyTo, Request, Version};
use super::failure::RemoteFailure;
use super::publisher::{Destination, PublishError, Publisher};
use super::transport::{message_properties, queue_arguments, Backoff, Transport};

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The remote side raised: class, module, message, args, kwargs.
    #[error(transparent)]
    Remote(Box<RemoteFailure>),
    #[error("timed out waiting for a reply to message ID {msg_id} on {reply_q}")]
    Timeout { msg_id: String, reply_q: String },
    #[error("invalid target: {0}")]
    Target(String),
    #[error("invalid reply: {0}")]
    BadReply(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("the client is closed")]
    Closed,
}

impl From<RemoteFailure> for ClientError {
    fn from(f: RemoteFailure) -> Self {
        ClientError::Remote(Box::new(f))
    }
}

/// Where a message goes, oslo's `Target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Topic (`conductor`, `scheduler`, `compute`).
    pub topic: String,
    /// A server of the topic: routing key `<topic>.<server>`.
    pub server: Option<String>,
    /// Cast to every server of the topic via `<topic>_fanout`.
    pub fanout: bool,
    pub namespace: Option<String>,
    /// The version asked for (`3.0` for conductor objects).
    pub version: String,
    /// Exchange; the client's (`nova`) when None.
    pub exchange: Option<String>,
}

impl Target {
    /// A target on `topic` at `version`.
    pub fn new(topic: &str, version: &str) -> Self {
        Self {
            topic: topic.into(),
            server: None,
            fanout: false,
            namespace: None,
            version: version.into(),
            exchange: None,
        }
    }

    /// Direct to one server.
    pub fn server(mut self, server: &str) -> Self {
        self.server = Some(server.into());
        self
    }

    /// Fanout to all servers.
    pub fn fanout(mut self) -> Self {
        self.fanout = true;
        self
    }

    /// In a namespace (`baseapi`).
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    fn check(&self) -> Result<(), ClientError> {
        if self.topic.is_empty() {
            return Err(ClientError::Target("empty topic".into()));
        }
        if Version::parse(&self.version).is_none() {
            return Err(ClientError::Target(format!(
                "version {:?} is not X.Y",
                self.version
            )));
        }
        Ok(())
    }
}

/// Options of one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallOptions {
    /// Give up after this long (oslo: `rpc_response_timeout`, 60 s).
    pub timeout: Duration,
    /// Ask the server for heartbeats and fail when they stop (`_timeout`).
    pub call_monitor_timeout: Option<u64>,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            call_monitor_timeout: None,
        }
    }
}

type Waiters = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Reply>>>>;

struct ReplyListener {
    queue: String,
    waiters: Waiters,
}

/// An oslo-compatible RPC client.
pub struct RpcClient {
    transport: Arc<Transport>,
    publisher: Publisher,
    exchange: String,
    reply: OnceCell<ReplyListener>,
    stop: CancellationToken,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("exchange", &self.exchange)
            .finish()
    }
}

impl RpcClient {
    /// A client publishing to `exchange` (`[DEFAULT] control_exchange`).
    pub fn new(transport: Arc<Transport>, exchange: &str) -> Self {
        let stop = CancellationToken::new();
        Self {
            publisher: Publisher::new(transport.clone(), stop.clone()),
            transport,
            exchange: exchange.into(),
            reply: OnceCell::new(),
            stop,
        }
    }

    /// The reply queue, once a call has been made.
    pub fn reply_queue(&self) -> Option<&str> {
        self.reply.get().map(|r| r.queue.as_str())
    }

    fn destination(&self, target: &Target) -> (Destination, String) {
        let o = self.transport.options();
        if target.fanout {
            (
                Destination::Fanout {
                    exchange: format!("{}_fanout", target.topic),
                    durable: o.rabbit_transient_quorum_queue,
                },
                String::new(),
            )
        } else {
            let key = match &target.server {
                Some(s) => format!("{}.{s}", target.topic),
                None => target.topic.clone(),
            };
            (
                Destination::Topic {
                    exchange: target
                        .exchange
                        .clone()
                        .unwrap_or_else(|| self.exchange.clone()),
                    durable: o.amqp_durable_queues || o.rabbit_quorum_queue,
                    auto_delete: o.amqp_auto_delete,
                },
                key,
            )
        }
    }

    /// Cast: publish and return once the broker has confirmed the message
    /// (retrying through reconnects until then).
    #[tracing::instrument(skip(self, ctx, args), fields(topic = %target.topic, server = ?target.server, fanout = target.fanout))]
    pub async fn cast(
        &self,
        target: &Target,
        ctx: &RequestContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<(), ClientError> {
        target.check()?;
        let req = Request {
            method: method.into(),
            args,
            namespace: target.namespace.clone(),
            version: target.version.clone(),
            unique_id: Some(envelope::new_id()),
            reply_to: None,
            client_timeout: None,
            context: ctx.clone(),
        };
        let body = envelope::seal(&req.to_message())?;
        let (dest, key) = self.destination(target);
        self.publisher
            .publish(&dest, &key, &body, message_properties(None), false, None)
            .await?;
        Ok(())
    }

    async fn listener(&self) -> Result<&ReplyListener, ClientError> {
        self.reply
            .get_or_try_init(|| async {
                let queue = format!("reply_{}", envelope::new_id());
                let waiters: Waiters = Arc::default();
                let (ready_tx, mut ready_rx) = watch::channel(false);
                tokio::spawn(reply_loop(
                    self.transport.clone(),
                    queue.clone(),
                    waiters.clone(),
                    ready_tx,
                    self.stop.clone(),
                ));
                loop {
                    if *ready_rx.borrow_and_update() {
                        break;
                    }
                    if ready_rx.changed().await.is_err() {
                        return Err(ClientError::Closed);
                    }
                }
                Ok(ReplyListener { queue, waiters })
            })
            .await
    }

    /// Call: send and wait for the reply. A remote exception comes back as
    /// [`ClientError::Remote`].
    #[tracing::instrument(skip(self, ctx, args), fields(topic = %target.topic, server = ?target.server))]
    pub async fn call(
        &self,
        target: &Target,
        ctx: &RequestContext,
        method: &str,
        args: Map<String, Value>,
        opts: CallOptions,
    ) -> Result<Value, ClientError> {
        target.check()?;
        if target.fanout {
            return Err(ClientError::Target("a call cannot be fanout".into()));
        }
        let deadline = Instant::now() + opts.timeout;
        let listener = tokio::time::timeout_at(deadline, self.listener())
            .await
            .map_err(|_| ClientError::Timeout {
                msg_id: String::new(),
                reply_q: "(not declared yet)".into(),
            })??;
        let msg_id = envelope::new_id();
        let req = Request {
            method: method.into(),
            args,
            namespace: target.namespace.clone(),
            version: target.version.clone(),
            unique_id: Some(envelope::new_id()),
            reply_to: Some(ReplyTo {
                msg_id: msg_id.clone(),
                reply_q: listener.queue.clone(),
            }),
            client_timeout: opts.call_monitor_timeout.map(|t| t as f64),
            context: ctx.clone(),
        };
        let body = envelope::seal(&req.to_message())?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        if let Ok(mut w) = listener.waiters.lock() {
            w.insert(msg_id.clone(), tx);
        }
        let _unlisten = Unlisten {
            waiters: listener.waiters.clone(),
            msg_id: msg_id.clone(),
        };
        let (dest, key) = self.destination(target);
        let expiration = opts.timeout.as_millis() as u64;
        self.publisher
            .publish(
                &dest,
                &key,
                &body,
                message_properties(Some(expiration)),
                false,
                Some(deadline),
            )
            .await?;
        let timeout_err = || ClientError::Timeout {
            msg_id: msg_id.clone(),
            reply_q: listener.queue.clone(),
        };
        let mut monitor = opts
            .call_monitor_timeout
            .map(|t| Instant::now() + Duration::from_secs(t));
        let mut final_result = Value::Null;
        loop {
            let wait_until = match monitor {
                Some(m) if m < deadline => m,
                _ => deadline,
            };
            let reply = match tokio::time::timeout_at(wait_until, rx.recv()).await {
                Ok(Some(r)) => r,
                Ok(None) => return Err(ClientError::Closed),
                Err(_) => return Err(timeout_err()),
            };
            if let Some(f) = reply.failure {
                let failure = RemoteFailure::from_wire(&f)
                    .map_err(|e| ClientError::BadReply(e.to_string()))?;
                return Err(failure.into());
            }
            if !reply.result.is_null() {
                final_result = reply.result;
            } else if !reply.ending {
                tracing::debug!("call-monitor heartbeat received; renewing timeout timer");
                monitor = opts
                    .call_monitor_timeout
                    .map(|t| Instant::now() + Duration::from_secs(t));
            }
            if reply.ending {
                return Ok(final_result);
            }
        }
    }

    /// Stop the reply consumer and close connections.
    pub async fn close(&self) {
        self.stop.cancel();
        self.publisher.close().await;
    }
}

impl Drop for RpcClient {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Unlisten {
    waiters: Waiters,
    msg_id: String,
}

impl Drop for Unlisten {
    fn drop(&mut self) {
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(&self.msg_id);
        }
    }
}

/// Consume the reply queue forever, re-declaring it after reconnects.
async fn reply_loop(
    transport: Arc<Transport>,
    queue: String,
    waiters: Waiters,
    ready: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(transport.options());
    let mut seen = std::collections::VecDeque::<String>::new();
    while !stop.is_cancelled() {
        let conn = match transport.connect(&stop).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reply consumer stopped");
                return;
            }
        };
        let o = transport.options();
        let setup = async {
            let ch = conn.create_channel().await?;
            ch.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: o.rabbit_transient_quorum_queue,
                    auto_delete: false,
                    ..Default::default()
                },
                queue_arguments(
                    o,
                    o.rabbit_transient_queues_ttl,
                    o.rabbit_transient_quorum_queue,
                ),
            )
            .await?;
            let consumer = ch
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((ch, consumer))
        };
        let (_ch, mut consumer) = match setup.await {
            Ok(x) => x,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::error!(error = %e, %queue, retry_in = ?delay, "cannot declare the reply queue");
                let _ = conn.close(200, "retrying".into()).await;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        backoff.reset();
        ready.send_replace(true);
        loop {
            let d = tokio::select! {
                _ = stop.cancelled() => {
                    let _ = conn.close(200, "closing".into()).await;
                    return;
                }
                d = consumer.next() => d,
            };
            let d = match d {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, %queue, "reply consumer lost its connection, reconnecting");
                    break;
                }
                None => break,
            };
            let _ = d.acker.ack(BasicAckOptions::default()).await;
            let reply = match envelope::open(&d.data).and_then(Reply::from_message) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, size = d.data.len(), "malformed reply dropped");
                    continue;
                }
            };
            if let Some(u) = &reply.unique_id {
                if seen.contains(u) {
                    tracing::warn!(unique_id = %u, "duplicate reply dropped");
                    continue;
                }
                if seen.len() >= 256 {
                    seen.pop_front();
                }
                seen.push_back(u.clone());
            }
            let Some(msg_id) = reply.msg_id.clone() else {
                tracing::warn!("reply without _msg_id dropped");
                continue;
            };
            let tx = waiters.lock().ok().and_then(|w| w.get(&msg_id).cloned());
            match tx {
                Some(tx) => {
                    let _ = tx.send(reply);
                }
                None => tracing::info!(%msg_id, "no calling task waiting for msg_id"),
            }
        }
        let _ = conn.close(200, "reconnecting".into()).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_targets() {
        assert!(Target::new("", "1.0").check().is_err());
        assert!(Target::new("t", "x").check().is_err());
        assert!(Target::new("t", "3.0").check().is_ok());
    }
}
