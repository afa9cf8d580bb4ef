//! The RPC server: nova-compute's queues and consume loop.
//!
//! Per topic (nova-compute: `compute` and `compute-alt`) it declares, as
//! oslo's `AMQPDriverBase.listen` does:
//! - the control exchange (`nova`, topic; durable = `amqp_durable_queues`
//!   or `rabbit_quorum_queue`, auto-delete = `amqp_auto_delete`),
//! - queue `<topic>` and queue `<topic>.<host>` bound to it with their own
//!   names as routing keys (same durability; quorum when configured),
//! - exchange `<topic>_fanout` (fanout, auto-delete, durable only with
//!   `rabbit_transient_quorum_queue`) and queue `<topic>_fanout_<uuid hex>`
//!   (not auto-delete, `x-expires` = `rabbit_transient_queues_ttl` * 1000),
//!   bound with routing key `<topic>`.
//!
//! Delivery: a message is acknowledged once it is parsed, is not a
//! duplicate, and a concurrency permit is held for it, right before its
//! handler starts: the handler has then taken responsibility. This is
//! oslo's at-most-once RPC rule (it acks before dispatch) so that a
//! non-idempotent request (build, delete) is never run twice after a crash,
//! while a message still waiting for a permit stays unacknowledged and is
//! redelivered if the connection drops.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};
use serde_json::Value;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::dispatch::Dispatcher;
use super::envelope::{self, ReplyTo, Request};
use super::failure::RemoteFailure;
use super::publisher::Publisher;
use super::reply::{self, ObsoleteReplyQueues};
use super::transport::{queue_arguments, Backoff, Transport, TransportError};

/// Server errors.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("invalid server configuration: {0}")]
    Config(String),
    #[error("AMQP error while {doing}: {source}")]
    Amqp {
        doing: String,
        #[source]
        source: lapin::Error,
    },
}

fn amqp(doing: impl Into<String>) -> impl FnOnce(lapin::Error) -> ServerError {
    let doing = doing.into();
    move |source| ServerError::Amqp { doing, source }
}

/// What the server listens to.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The control exchange (`[DEFAULT] control_exchange`, `nova`).
    pub exchange: String,
    /// Topics served (`compute`, `compute-alt`).
    pub topics: Vec<String>,
    /// This server's name (`[DEFAULT] host`).
    pub server: String,
    /// Most requests handled at once (`[DEFAULT] executor_thread_pool_size`).
    pub max_concurrency: usize,
}

impl ServerConfig {
    /// nova-compute's: topics `compute` and `compute-alt` on exchange `nova`.
    pub fn nova_compute(host: &str, executor_thread_pool_size: usize) -> Self {
        Self {
            exchange: "nova".into(),
            topics: vec!["compute".into(), "compute-alt".into()],
            server: host.into(),
            max_concurrency: executor_thread_pool_size,
        }
    }
}

/// Ids of recently handled messages (oslo's `_MsgIdCache`, but larger).
#[derive(Debug, Default)]
struct SeenIds {
    order: VecDeque<String>,
    set: HashSet<String>,
}

const SEEN_IDS: usize = 4096;

impl SeenIds {
    /// False when `id` was seen; remembers it otherwise.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= SEEN_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.set.insert(id.to_string());
        true
    }
}

/// An oslo-compatible RPC server.
pub struct RpcServer {
    transport: Arc<Transport>,
    cfg: ServerConfig,
    dispatcher: Arc<Dispatcher>,
    fanout_queues: Vec<String>,
    ready: watch::Sender<u64>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer").field("cfg", &self.cfg).finish()
    }
}

struct Shared {
    dispatcher: Arc<Dispatcher>,
    publisher: Publisher,
    obsolete: ObsoleteReplyQueues,
    missing_queue_timeout: Duration,
}

impl RpcServer {
    /// A server; nothing happens until [`RpcServer::run`].
    pub fn new(
        transport: Arc<Transport>,
        cfg: ServerConfig,
        dispatcher: Dispatcher,
    ) -> Result<Self, ServerError> {
        if cfg.topics.is_empty() || cfg.topics.iter().any(|t| t.is_empty()) {
            return Err(ServerError::Config(
                "at least one non-empty topic is needed".into(),
            ));
        }
        if cfg.server.is_empty() || cfg.exchange.is_empty() {
            return Err(ServerError::Config(
                "server and exchange must not be empty".into(),
            ));
        }
        if cfg.max_concurrency == 0 {
            return Err(ServerError::Config(
                "max_concurrency must be at least 1".into(),
            ));
        }
        let fanout_queues = cfg
            .topics
            .iter()
            .map(|t| format!("{t}_fanout_{}", envelope::new_id()))
            .collect();
        Ok(Self {
            transport,
            cfg,
            dispatcher: Arc::new(dispatcher),
            fanout_queues,
            ready: watch::channel(0).0,
        })
    }

    /// The per-process fanout queue of `topic`.
    pub fn fanout_queue(&self, topic: &str) -> Option<&str> {
        self.cfg
            .topics
            .iter()
            .position(|t| t == topic)
            .map(|i| self.fanout_queues[i].as_str())
    }

    /// Counts completed (re)declarations: wait on it to know the queues exist.
    pub fn ready(&self) -> watch::Receiver<u64> {
        self.ready.subscribe()
    }

    async fn declare(&self, channel: &Channel, durable: bool) -> Result<Vec<String>, ServerError> {
        let o = self.transport.options();
        let transient_durable = o.rabbit_transient_quorum_queue;
        channel
            .exchange_declare(
                self.cfg.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable,
                    auto_delete: o.amqp_auto_delete,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp(format!("declaring exchange {}", self.cfg.exchange)))?;
        let mut queues = Vec::new();
        for (i, topic) in self.cfg.topics.iter().enumerate() {
            for q in [topic.clone(), format!("{topic}.{}", self.cfg.server)] {
                channel
                    .queue_declare(
                        q.as_str().into(),
                        QueueDeclareOptions {
                            durable,
                            auto_delete: o.amqp_auto_delete,
                            ..Default::default()
                        },
                        queue_arguments(o, 0, o.rabbit_quorum_queue),
                    )
                    .await
                    .map_err(amqp(format!("declaring queue {q}")))?;
                channel
                    .queue_bind(
                        q.as_str().into(),
                        self.cfg.exchange.as_str().into(),
                        q.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(amqp(format!("binding queue {q}")))?;
                queues.push(q);
            }
            let fx = format!("{topic}_fanout");
            channel
                .exchange_declare(
                    fx.as_str().into(),
                    ExchangeKind::Fanout,
                    ExchangeDeclareOptions {
                        durable: transient_durable,
                        auto_delete: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(amqp(format!("declaring exchange {fx}")))?;
            let fq = self.fanout_queues[i].clone();
            channel
                .queue_declare(
                    fq.as_str().into(),
                    QueueDeclareOptions {
                        durable: transient_durable,
                        auto_delete: false,
                        ..Default::default()
                    },
                    queue_arguments(
                        o,
                        o.rabbit_transient_queues_ttl,
                        o.rabbit_transient_quorum_queue,
                    ),
                )
                .await
                .map_err(amqp(format!("declaring queue {fq}")))?;
            channel
                .queue_bind(
                    fq.as_str().into(),
                    fx.as_str().into(),
                    topic.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(amqp(format!("binding queue {fq}")))?;
            queues.push(fq);
        }
        Ok(queues)
    }

    async fn consume(
        &self,
        conn: &Connection,
        tx: mpsc::Sender<Result<(Delivery, u64), String>>,
        generation: u64,
    ) -> Result<Channel, ServerError> {
        let o = self.transport.options();
        let open = || async {
            let channel = conn
                .create_channel()
                .await
                .map_err(amqp("opening a channel"))?;
            if o.rabbit_qos_prefetch_count > 0 {
                channel
                    .basic_qos(o.rabbit_qos_prefetch_count, BasicQosOptions::default())
                    .await
                    .map_err(amqp("setting the prefetch count"))?;
            }
            Ok::<_, ServerError>(channel)
        };
        let mut channel = open().await?;
        let durable = o.amqp_durable_queues || o.rabbit_quorum_queue;
        let queues = match self.declare(&channel, durable).await {
            // oslo's _declare_fallback_nondurable: the control exchange or a
            // queue already exists as non-durable (declared by another
            // service with other settings): use it as it is.
            Err(e) if durable && e.to_string().contains("inequivalent arg 'durable'") => {
                tracing::warn!(error = %e, "queue or exchange exists with other durability, declaring as non durable");
                channel = open().await?;
                self.declare(&channel, false).await?
            }
            other => other?,
        };
        let mut consumer_args = FieldTable::default();
        if o.enable_cancel_on_failover {
            consumer_args.insert("x-cancel-on-ha-failover".into(), AMQPValue::Boolean(true));
        }
        for q in queues {
            let mut consumer = channel
                .basic_consume(
                    q.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    consumer_args.clone(),
                )
                .await
                .map_err(amqp(format!("consuming from {q}")))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(d) = consumer.next().await {
                    let item = d
                        .map(|d| (d, generation))
                        .map_err(|e| format!("consumer of {q}: {e}"));
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
                let _ = tx.send(Err(format!("consumer of {q} was cancelled"))).await;
            });
        }
        Ok(channel)
    }

    /// Serve until `stop` is cancelled: connect, declare, consume; on any
    /// connection or channel failure, reconnect with oslo's backoff and
    /// declare again. Returns after in-flight handlers finish (10 s at most).
    pub async fn run(&self, stop: CancellationToken) -> Result<(), ServerError> {
        let pub_stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            dispatcher: self.dispatcher.clone(),
            publisher: Publisher::new(self.transport.clone(), pub_stop.clone()),
            obsolete: ObsoleteReplyQueues::default(),
            missing_queue_timeout: Duration::from_secs(
                self.transport
                    .options()
                    .kombu_missing_consumer_retry_timeout,
            ),
        });
        let permits = Arc::new(Semaphore::new(self.cfg.max_concurrency));
        let mut seen = SeenIds::default();
        let mut backoff = Backoff::new(self.transport.options());
        let mut generation = 0u64;
        'outer: while !stop.is_cancelled() {
            let conn = match self.transport.connect(&stop).await {
                Ok(c) => c,
                Err(TransportError::Stopped) => break,
                Err(e) => return Err(e.into()),
            };
            generation += 1;
            let (tx, mut rx) = mpsc::channel(256);
            let channel = match self.consume(&conn, tx, generation).await {
                Ok(ch) => ch,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::error!(error = %e, retry_in = ?delay, "cannot set up RPC consumers, retrying");
                    let _ = conn.close(200, "retrying".into()).await;
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            backoff.reset();
            self.ready.send_modify(|n| *n += 1);
            tracing::info!(topics = ?self.cfg.topics, server = %self.cfg.server, "RPC server consuming");
            loop {
                let item = tokio::select! {
                    _ = stop.cancelled() => {
                        let _ = conn.close(200, "stopping".into()).await;
                        break 'outer;
                    }
                    item = rx.recv() => item,
                };
                let (delivery, _gen) = match item {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "lost the RabbitMQ connection, reconnecting");
                        break;
                    }
                    None => break,
                };
                let permit = tokio::select! {
                    _ = stop.cancelled() => {
                        let _ = conn.close(200, "stopping".into()).await;
                        break 'outer;
                    }
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break 'outer,
                    },
                };
                let Some(req) = accept(&shared, &mut seen, &delivery).await else {
                    drop(permit);
                    continue;
                };
                tokio::spawn({
                    let shared = shared.clone();
                    async move {
                        handle(shared, req).await;
                        drop(permit);
                    }
                });
            }
            let _ = channel.close(200, "reconnecting".into()).await;
            let _ = conn.close(200, "reconnecting".into()).await;
            let delay = backoff.next_delay();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let all = u32::try_from(self.cfg.max_concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(Duration::from_secs(10), permits.acquire_many(all)).await;
        pub_stop.cancel();
        shared.publisher.close().await;
        tracing::info!("RPC server stopped");
        Ok(())
    }
}

/// Validate, de-duplicate and acknowledge one delivery. Malformed messages
/// are acknowledged (never requeued: they would come back forever), logged,
/// and answered with a `ValueError` failure when a reply queue is known.
async fn accept(shared: &Arc<Shared>, seen: &mut SeenIds, d: &Delivery) -> Option<Request> {
    let parsed = envelope::open(&d.data)
        .map_err(|e| (e, None))
        .and_then(|msg| {
            let reply_to = ReplyTo::from_message(&msg);
            Request::from_message(msg).map_err(|e| (e, reply_to))
        });
    let req = match parsed {
        Ok(r) => r,
        Err((e, reply_to)) => {
            let preview: String =
                String::from_utf8_lossy(&d.data[..d.data.len().min(200)]).into_owned();
            tracing::error!(error = %e, routing_key = %d.routing_key, size = d.data.len(), %preview, "malformed RPC message dropped");
            if let Err(err) = d.acker.ack(BasicAckOptions::default()).await {
                tracing::warn!(error = %err, "cannot acknowledge a malformed message");
            }
            if let Some(to) = reply_to {
                let failure = RemoteFailure::value_error(format!("malformed RPC message: {e}"));
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = reply::send_reply(
                        &shared.publisher,
                        &shared.obsolete,
                        &to,
                        &Err(failure),
                        true,
                        shared.missing_queue_timeout,
                    )
                    .await;
                });
            }
            return None;
        }
    };
    if let Some(u) = &req.unique_id {
        if !seen.insert(u) {
            tracing::warn!(unique_id = %u, method = %req.method, "ignoring duplicate message");
            let _ = d.acker.ack(BasicAckOptions::default()).await;
            return None;
        }
    }
    if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
        tracing::warn!(error = %e, method = %req.method, "discarding RPC request due to failed acknowledge");
        return None;
    }
    Some(req)
}

/// Run one request: resolve, run the handler in its own task (a panic
/// becomes a `RuntimeError` failure), send call-monitor heartbeats while it
/// runs, and reply to calls. Casts' failures are logged.
#[tracing::instrument(skip_all, fields(method = %req.method, namespace = ?req.namespace, version = %req.version, request_id = %req.context.request_id, msg_id = ?req.reply_to.as_ref().map(|r| &r.msg_id)))]
async fn handle(shared: Arc<Shared>, req: Request) {
    let reply_to = req.reply_to.clone();
    let client_timeout = req.client_timeout;
    let method = req.method.clone();
    let outcome: Result<Value, RemoteFailure> = match shared.dispatcher.resolve(req) {
        Err(f) => Err(*f),
        Ok(fut) => {
            let mut task = tokio::spawn(fut);
            let beat = client_timeout.map(|t| t / 2.0).filter(|h| *h >= 1.0);
            let joined = match (beat, &reply_to) {
                (Some(every), Some(to)) => {
                    let mut tick = tokio::time::interval(Duration::from_secs_f64(every));
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            r = &mut task => break r,
                            _ = tick.tick() => {
                                tracing::debug!("sending call-monitor heartbeat");
                                let _ = reply::send_reply(&shared.publisher, &shared.obsolete, to, &Ok(Value::Null), false, Duration::ZERO).await;
                            }
                        }
                    }
                }
                _ => task.await,
            };
            match joined {
                Ok(r) => r,
                Err(e) if e.is_panic() => {
                    let what = e
                        .into_panic()
                        .downcast::<String>()
                        .map(|s| *s)
                        .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|_| "unknown panic".to_string());
                    tracing::error!(panic = %what, "RPC handler panicked");
                    Err(RemoteFailure::runtime_error(format!(
                        "handler of {method} panicked: {what}"
                    )))
                }
                Err(e) => Err(RemoteFailure::runtime_error(format!(
                    "handler of {method} was cancelled: {e}"
                ))),
            }
        }
    };
    match (&reply_to, &outcome) {
        (Some(to), _) => {
            if let Err(f) = &outcome {
                tracing::warn!(class = %f.class, module = %f.module, message = %f.message, "call failed");
            }
            if let Err(e) = reply::send_reply(
                &shared.publisher,
                &shared.obsolete,
                to,
                &outcome,
                true,
                shared.missing_queue_timeout,
            )
            .await
            {
                tracing::error!(error = %e, "cannot send reply");
            }
        }
        (None, Err(f)) => {
            tracing::error!(class = %f.class, module = %f.module, message = %f.message, "cast failed, dropped")
        }
        (None, Ok(_)) => tracing::debug!("cast handled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_bounded() {
        let mut s = SeenIds::default();
        assert!(s.insert("a"));
        assert!(!s.insert("a"));
        for i in 0..SEEN_IDS {
            s.insert(&i.to_string());
        }
        assert!(s.insert("a"));
        assert!(s.order.len() <= SEEN_IDS);
    }

    #[test]
    fn bad_configs() {
        let t = Arc::new(
            Transport::new("rabbit://guest:guest@127.0.0.1:5672/", Default::default()).unwrap(),
        );
        let mut c = ServerConfig::nova_compute("h", 4);
        c.max_concurrency = 0;
        assert!(RpcServer::new(t.clone(), c, Dispatcher::new()).is_err());
        let mut c = ServerConfig::nova_compute("", 4);
        assert!(RpcServer::new(t.clone(), c.clone(), Dispatcher::new()).is_err());
        c.server = "h".into();
        c.topics.clear();
        assert!(RpcServer::new(t, c, Dispatcher::new()).is_err());
    }
}
