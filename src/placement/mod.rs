//! Placement: the compute node's resource provider, kept true in OpenStack
//! Placement the way nova's `SchedulerReportClient` does it.
//!
//! - [`auth`]: keystoneauth-style credentials from `[placement]`
//!   (`admin_token`, `none`, `password`, `v3applicationcredential`), Keystone
//!   v3 tokens and catalog lookup.
//! - [`client`]: the HTTP client: microversions per call as nova sends them,
//!   negotiation against the root document, retries with backoff.
//! - [`tree`]: the provider tree nova-compute's libvirt driver would report:
//!   inventories (VCPU, PCPU, MEMORY_MB, DISK_GB) and traits.
//! - [`report`]: [`report::Reporter`], which creates the provider, pushes
//!   changes only when something changed, handles generation conflicts, and
//!   reads/deletes instance allocations.
//! - [`cli`]: rendering of the provider tree for the `host` CLI.

pub mod auth;
pub mod cli;
pub mod client;
pub mod report;
pub mod tree;

pub use client::{ClientSettings, Microversion, PlacementClient, RetryPolicy};
pub use report::{ReportSettings, Reporter, UpdateOutcome};
pub use tree::{Capabilities, HostResources, Inventory, ResourceSettings};

/// Everything that can go wrong talking to Placement or building the tree.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// `[placement]` options that cannot work.
    #[error("[placement] configuration: {0}")]
    Config(String),
    /// Keystone refused or answered nonsense.
    #[error("keystone authentication at {url} failed: {what}")]
    Auth { url: String, what: String },
    /// Connection refused, timeouts, or 5xx after every retry.
    #[error("placement at {url} unreachable after {attempts} attempts: {reason}")]
    Unreachable {
        url: String,
        attempts: u32,
        reason: String,
    },
    /// An HTTP status the call does not expect.
    #[error("placement answered {method} {path} with HTTP {status}{}: {detail}",
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Http {
        method: String,
        path: String,
        status: u16,
        code: Option<String>,
        detail: String,
    },
    /// A 2xx answer whose body is not what the Placement API defines.
    #[error("placement answered {method} {path} with a body that is not valid Placement API output: {what}")]
    BadResponse {
        method: String,
        path: String,
        what: String,
    },
    /// The server's microversion range does not include what a call needs.
    #[error("placement at {url} supports microversions {min} to {max}, but {needed} is needed")]
    Microversion {
        url: String,
        min: Microversion,
        max: Microversion,
        needed: Microversion,
    },
    /// Lowering inventory below what is allocated; nothing was forced.
    #[error("inventory of resource provider {provider} was not changed: it would drop below current usage ({detail}); will retry on the next update")]
    InventoryInUse { provider: String, detail: String },
    /// Another client kept changing the provider while we updated it.
    #[error("resource provider {provider} kept changing under us (generation conflict) after {attempts} attempts")]
    GenerationConflict { provider: String, attempts: u32 },
    /// The hypervisor hostname is taken by a provider with another uuid.
    #[error("cannot create resource provider {uuid}: the name {name} is taken by another provider ({detail})")]
    NameConflict {
        uuid: String,
        name: String,
        detail: String,
    },
    /// The host description cannot be turned into a provider tree.
    #[error("invalid host resources: {0}")]
    InvalidInput(String),
}

/// Shorthand for results of this module.
pub type Result<T> = std::result::Result<T, PlacementError>;
