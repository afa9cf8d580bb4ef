//! `[oslo_messaging_rabbit]` options, with oslo.messaging's names and defaults.

use serde::{Deserialize, Serialize};

/// The `[oslo_messaging_rabbit]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RabbitOptions {
    pub amqp_durable_queues: bool,
    pub amqp_auto_delete: bool,
    pub rabbit_quorum_queue: bool,
    pub rabbit_stream_fanout: bool,
    pub rabbit_transient_quorum_queue: bool,
    pub rabbit_transient_queues_ttl: u64,
    pub rabbit_qos_prefetch_count: u16,
    pub heartbeat_timeout_threshold: u64,
    pub heartbeat_rate: u64,
    pub rabbit_retry_interval: u64,
    pub rabbit_retry_backoff: u64,
    pub rabbit_interval_max: u64,
    pub ssl: bool,
    pub ssl_ca_file: Option<String>,
    pub ssl_cert_file: Option<String>,
    pub ssl_key_file: Option<String>,
}

impl Default for RabbitOptions {
    fn default() -> Self {
        Self {
            amqp_durable_queues: false,
            amqp_auto_delete: false,
            rabbit_quorum_queue: false,
            rabbit_stream_fanout: false,
            rabbit_transient_quorum_queue: false,
            rabbit_transient_queues_ttl: 1800,
            rabbit_qos_prefetch_count: 0,
            heartbeat_timeout_threshold: 60,
            heartbeat_rate: 3,
            rabbit_retry_interval: 1,
            rabbit_retry_backoff: 2,
            rabbit_interval_max: 30,
            ssl: false,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
        }
    }
}
