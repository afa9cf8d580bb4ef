//! The compute agent: what nova-compute's manager, resource tracker and
//! service do, everything through nova-conductor over RPC.
//!
//! - [`service`]: start-up, heartbeat, Placement loop, clean stop.
//! - [`manager`]: the compute RPC endpoint (API 6.5) and its handlers.
//! - [`rpcapi`]: every method nova 34's ComputeAPI can send.
//! - [`conductor`]: conductor calls (ping, object methods) and scheduler casts.
//! - [`node_identity`]: the `compute_id` file.
//! - [`placement_cli`]: `novakvm host placement [--check]`.
//! - [`resources`]: ComputeNode and Placement figures from host inventory.
//! - [`state`]: vm/task/power states and their transitions.

pub mod conductor;
mod error;
pub mod manager;
pub mod node_identity;
pub mod placement_cli;
pub mod resources;
pub mod rpcapi;
pub mod service;
pub mod state;

pub use error::ComputeError;

/// Keyword arguments from pairs.
pub(crate) fn manager_kwargs(
    pairs: &[(&str, serde_json::Value)],
) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}
