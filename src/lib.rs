//! novakvm: a Rust drop-in replacement for OpenStack's nova-compute.
//!
//! Module map (see ARCHITECTURE.md for the longer version):
//! - [`config`]: figment configuration (defaults < TOML < nova.conf INI < environment).
//! - [`telemetry`]: tracing setup.
//! - [`host`]: host inventory read from a sysfs/procfs root; the `host` CLI.
//! - [`objects`]: nova versioned objects (wire form, registry, typed views).
//! - [`placement`]: the compute node's resource provider in Placement.
//! - [`rpc`]: oslo.messaging-compatible RPC over RabbitMQ.
//! - [`compute`]: the compute agent (the nova-compute manager).
//! - [`vmm`]: the per-VM process (KVM); the only module with `unsafe` besides `host`.

pub mod compute;
pub mod config;
pub mod host;
pub mod objects;
pub mod placement;
pub mod rpc;
pub mod telemetry;
pub mod virt;
pub mod vmm;
