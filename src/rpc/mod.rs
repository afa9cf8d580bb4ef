//! oslo.messaging-compatible RPC over RabbitMQ (lapin + tokio).
//!
//! - [`transport`]: `transport_url`, failover, backoff, TLS, queue arguments.
//! - [`envelope`], [`pyjson`], [`context`], [`failure`]: the wire format.
//! - [`dispatch`]: endpoints and oslo's version/namespace dispatch rules.
//! - [`server`]: nova-compute's queues and the consume loop.
//! - [`reply`]: replies to callers.
//! - [`client`]: `call`/`cast`/fanout to other services.

pub mod client;
pub mod context;
pub mod dispatch;
pub mod envelope;
pub mod failure;
pub mod options;
pub mod publisher;
pub mod pyjson;
pub mod reply;
pub mod server;
pub mod transport;

pub use client::{CallOptions, ClientError, RpcClient, Target};
pub use context::RequestContext;
pub use dispatch::{BaseRpcEndpoint, Dispatcher, Endpoint, EndpointFn, HandlerFuture, RpcEndpoint};
pub use envelope::{Reply, Request, Version};
pub use failure::RemoteFailure;
pub use options::RabbitOptions;
pub use server::{RpcServer, ServerConfig, ServerError};
pub use transport::{Transport, TransportError};
