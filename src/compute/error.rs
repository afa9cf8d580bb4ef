//! The compute agent's error type.

use crate::rpc::{ClientError, RemoteFailure};

/// Errors of the compute agent (start-up, conductor calls, handlers).
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// A conductor or scheduler RPC failed (timeout, broker, remote exception).
    #[error("{what}: {source}")]
    Rpc {
        what: String,
        #[source]
        source: Box<ClientError>,
    },
    /// A reply or request carried something we cannot read.
    #[error("{0}")]
    BadData(String),
    /// nova would refuse to start too (`InvalidConfiguration`).
    #[error("invalid configuration: {0}")]
    InvalidConfiguration(String),
    /// The `compute_id` file cannot be read or written (`InvalidNodeConfiguration`).
    #[error("invalid node configuration: {0}")]
    InvalidNodeConfiguration(String),
    /// Host inventory failed.
    #[error("host inventory: {0}")]
    Inventory(#[from] crate::host::InventoryError),
    /// Placement failed.
    #[error("placement: {0}")]
    Placement(#[from] crate::placement::PlacementError),
    /// The virt driver failed.
    #[error("driver: {0}")]
    Driver(#[from] crate::virt::DriverError),
    /// The RPC transport or server could not be set up.
    #[error("rpc: {0}")]
    Transport(String),
    /// The agent was asked to stop while waiting.
    #[error("stopped")]
    Stopped,
}

impl ComputeError {
    /// The remote exception class when the conductor raised one.
    pub fn remote_class(&self) -> Option<&str> {
        match self {
            ComputeError::Rpc { source, .. } => match source.as_ref() {
                ClientError::Remote(f) => Some(f.class.as_str()),
                _ => None,
            },
            _ => None,
        }
    }

    /// This error as an oslo failure for an RPC caller.
    pub fn to_failure(&self) -> RemoteFailure {
        match self {
            ComputeError::Rpc { source, .. }
                if matches!(source.as_ref(), ClientError::Remote(_)) =>
            {
                match source.as_ref() {
                    ClientError::Remote(f) => (**f).clone(),
                    _ => RemoteFailure::runtime_error(self.to_string()),
                }
            }
            ComputeError::BadData(m) => RemoteFailure::value_error(m.clone()),
            other => RemoteFailure::new("nova.exception", "NovaException", other.to_string())
                .with_kwarg("code", 500.into()),
        }
    }
}
