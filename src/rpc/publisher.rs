//! Publishing with publisher confirms on a shared connection that is
//! re-opened (with oslo's backoff) when it breaks. A publish returns once
//! the broker has confirmed it, so a confirmed message is on the broker.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::transport::{Backoff, Transport, TransportError};

/// Publishing errors.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("publish to {exchange:?}/{routing_key:?} failed until the deadline: {last}")]
    Timeout {
        exchange: String,
        routing_key: String,
        last: String,
    },
    #[error("the broker refused the message (nack) for {exchange:?}/{routing_key:?}")]
    Nacked {
        exchange: String,
        routing_key: String,
    },
    #[error("stopped")]
    Stopped,
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Where to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The default exchange (`""`): replies.
    Default,
    /// A topic exchange declared as oslo's `topic_send` does.
    Topic {
        exchange: String,
        durable: bool,
        auto_delete: bool,
    },
    /// `<topic>_fanout`, declared as oslo's `fanout_send` does.
    Fanout { exchange: String, durable: bool },
}

impl Destination {
    fn name(&self) -> &str {
        match self {
            Destination::Default => "",
            Destination::Topic { exchange, .. } | Destination::Fanout { exchange, .. } => exchange,
        }
    }
}

/// Result of a confirmed publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Confirmed and routed to at least one queue (or not mandatory).
    Delivered,
    /// Mandatory and unroutable: returned by the broker.
    Returned,
}

struct Live {
    generation: u64,
    conn: Connection,
    channel: Channel,
    declared: HashSet<String>,
}

/// A confirming publisher that reconnects by itself.
pub struct Publisher {
    transport: Arc<Transport>,
    live: Mutex<Option<Live>>,
    generation: std::sync::atomic::AtomicU64,
    /// Exchanges found to exist as non-durable (oslo: "Force creating a non
    /// durable exchange").
    nondurable: std::sync::Mutex<HashSet<String>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

impl Publisher {
    /// A publisher on `transport`; connects on first use.
    pub fn new(transport: Arc<Transport>, stop: CancellationToken) -> Self {
        Self {
            transport,
            live: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            nondurable: std::sync::Mutex::new(HashSet::new()),
            stop,
        }
    }

    async fn channel_for(&self, dest: &Destination) -> Result<(u64, Channel), String> {
        let mut guard = self.live.lock().await;
        if guard
            .as_ref()
            .is_some_and(|l| !l.conn.status().connected() || !l.channel.status().connected())
        {
            *guard = None;
        }
        if guard.is_none() {
            let conn = self
                .transport
                .connect_once()
                .await
                .map_err(|e| e.to_string())?;
            let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            let generation = self
                .generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            *guard = Some(Live {
                generation,
                conn,
                channel,
                declared: HashSet::new(),
            });
        }
        let Some(live) = guard.as_mut() else {
            return Err("no connection".into());
        };
        let name = dest.name().to_string();
        if !name.is_empty() && !live.declared.contains(&name) {
            let (kind, durable, auto_delete) = match dest {
                Destination::Topic {
                    durable,
                    auto_delete,
                    ..
                } => (ExchangeKind::Topic, *durable, *auto_delete),
                Destination::Fanout { durable, .. } => (ExchangeKind::Fanout, *durable, true),
                Destination::Default => (ExchangeKind::Direct, false, false),
            };
            let forced = self
                .nondurable
                .lock()
                .map(|s| s.contains(&name))
                .unwrap_or(false);
            let opts = ExchangeDeclareOptions {
                durable: durable && !forced,
                auto_delete,
                ..Default::default()
            };
            if let Err(e) = live
                .channel
                .exchange_declare(name.as_str().into(), kind, opts, FieldTable::default())
                .await
            {
                let msg = e.to_string();
                if durable && msg.contains("inequivalent arg 'durable'") {
                    tracing::warn!(exchange = %name, "force creating a non durable exchange");
                    if let Ok(mut s) = self.nondurable.lock() {
                        s.insert(name.clone());
                    }
                }
                *guard = None;
                return Err(msg);
            }
            live.declared.insert(name);
        }
        Ok((live.generation, live.channel.clone()))
    }

    async fn invalidate(&self, generation: u64) {
        let mut guard = self.live.lock().await;
        if guard.as_ref().is_some_and(|l| l.generation == generation) {
            if let Some(l) = guard.take() {
                let _ = l.conn.close(200, "reconnecting".into()).await;
            }
        }
    }

    /// Publish and wait for the broker's confirm, reconnecting and retrying
    /// (same bytes) until `deadline`; `None` retries until stopped.
    pub async fn publish(
        &self,
        dest: &Destination,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
        mandatory: bool,
        deadline: Option<Instant>,
    ) -> Result<Outcome, PublishError> {
        let mut backoff = Backoff::new(self.transport.options());
        loop {
            let err = match self.channel_for(dest).await {
                Ok((generation, channel)) => {
                    let res = async {
                        let confirm = channel
                            .basic_publish(
                                dest.name().into(),
                                routing_key.into(),
                                BasicPublishOptions {
                                    mandatory,
                                    immediate: false,
                                },
                                body,
                                props.clone(),
                            )
                            .await?;
                        confirm.await
                    }
                    .await;
                    match res {
                        Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {
                            return Ok(Outcome::Delivered)
                        }
                        Ok(Confirmation::Ack(Some(_))) => return Ok(Outcome::Returned),
                        Ok(Confirmation::Nack(_)) => {
                            return Err(PublishError::Nacked {
                                exchange: dest.name().to_string(),
                                routing_key: routing_key.to_string(),
                            })
                        }
                        Err(e) => {
                            self.invalidate(generation).await;
                            e.to_string()
                        }
                    }
                }
                Err(e) => e,
            };
            let delay = if backoff_first(&err) {
                Duration::from_millis(200)
            } else {
                backoff.next_delay()
            };
            if deadline.is_some_and(|d| Instant::now() + delay > d) {
                return Err(PublishError::Timeout {
                    exchange: dest.name().to_string(),
                    routing_key: routing_key.to_string(),
                    last: err,
                });
            }
            tracing::warn!(exchange = dest.name(), routing_key, error = %err, retry_in = ?delay, "publish failed, retrying");
            tokio::select! {
                _ = self.stop.cancelled() => return Err(PublishError::Stopped),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Close the connection.
    pub async fn close(&self) {
        if let Some(l) = self.live.lock().await.take() {
            let _ = l.conn.close(200, "bye".into()).await;
        }
    }
}

fn backoff_first(err: &str) -> bool {
    // A channel-level error on a healthy connection: retry quickly.
    err.contains("NOT_FOUND") || err.contains("PRECONDITION_FAILED")
}
