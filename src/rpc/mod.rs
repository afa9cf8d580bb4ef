//! oslo.messaging-compatible RPC over RabbitMQ (lapin + tokio).

pub mod options;
