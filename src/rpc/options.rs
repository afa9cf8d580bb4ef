//! `[oslo_messaging_rabbit]` options, with oslo.messaging's names and defaults.

use serde::{Deserialize, Serialize};

/// The `[oslo_messaging_rabbit]` section (oslo.messaging 18.3.1 names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RabbitOptions {
    /// Durable control exchange and topic queues.
    pub amqp_durable_queues: bool,
    /// Auto-delete the control exchange and topic queues.
    pub amqp_auto_delete: bool,
    /// Quorum queues for the topic queues (implies durable).
    pub rabbit_quorum_queue: bool,
    /// Stream queues for fanout (not supported: rejected).
    pub rabbit_stream_fanout: bool,
    /// Quorum queues for reply and fanout queues (makes them durable).
    pub rabbit_transient_quorum_queue: bool,
    /// `x-delivery-limit` of quorum queues (0: unset).
    pub rabbit_quorum_delivery_limit: u64,
    /// `x-max-in-memory-length` of quorum queues (0: unset).
    pub rabbit_quorum_max_memory_length: u64,
    /// `x-max-in-memory-bytes` of quorum queues (0: unset).
    pub rabbit_quorum_max_memory_bytes: u64,
    /// Mirrored queues (`x-ha-policy: all`); conflicts with quorum queues.
    pub rabbit_ha_queues: bool,
    /// `x-expires` (seconds) of reply and fanout queues; 0 disables it.
    pub rabbit_transient_queues_ttl: u64,
    /// Prefetch count (0: unlimited).
    pub rabbit_qos_prefetch_count: u16,
    /// AMQP heartbeat in seconds (0 disables heartbeats).
    pub heartbeat_timeout_threshold: u64,
    pub heartbeat_rate: u64,
    /// First reconnect delay, seconds.
    pub rabbit_retry_interval: u64,
    /// Added to the delay after each failed attempt, seconds.
    pub rabbit_retry_backoff: u64,
    /// Longest reconnect delay, seconds.
    pub rabbit_interval_max: u64,
    /// How long a reply is retried while its reply queue is missing, seconds.
    pub kombu_missing_consumer_retry_timeout: u64,
    /// Queue-name manager of oslo (not supported: rejected).
    pub use_queue_manager: bool,
    /// `x-cancel-on-ha-failover` consumer argument.
    pub enable_cancel_on_failover: bool,
    /// Connect with TLS.
    pub ssl: bool,
    pub ssl_ca_file: Option<String>,
    pub ssl_cert_file: Option<String>,
    pub ssl_key_file: Option<String>,
    /// TLS protocol version; only empty/"TLSv1_2"/"TLSv1_3" are accepted (rustls).
    pub ssl_version: Option<String>,
}

impl Default for RabbitOptions {
    fn default() -> Self {
        Self {
            amqp_durable_queues: false,
            amqp_auto_delete: false,
            rabbit_quorum_queue: false,
            rabbit_stream_fanout: false,
            rabbit_transient_quorum_queue: false,
            rabbit_quorum_delivery_limit: 0,
            rabbit_quorum_max_memory_length: 0,
            rabbit_quorum_max_memory_bytes: 0,
            rabbit_ha_queues: false,
            rabbit_transient_queues_ttl: 1800,
            rabbit_qos_prefetch_count: 0,
            heartbeat_timeout_threshold: 60,
            heartbeat_rate: 3,
            rabbit_retry_interval: 1,
            rabbit_retry_backoff: 2,
            rabbit_interval_max: 30,
            kombu_missing_consumer_retry_timeout: 60,
            use_queue_manager: false,
            enable_cancel_on_failover: false,
            ssl: false,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
            ssl_version: None,
        }
    }
}
