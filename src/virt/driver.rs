//! The `ComputeDriver` trait, mirroring nova/virt/driver.py.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::compute::state::PowerState;

/// Errors a driver returns. Unsupported operations say so (nova raises
/// NotImplementedError); nothing is silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("instance {0} not found on this host")]
    InstanceNotFound(Uuid),
    #[error("instance {0} already exists on this host")]
    InstanceExists(Uuid),
    #[error("{0} is not supported by the {1} driver")]
    NotSupported(&'static str, &'static str),
    #[error("instance {uuid} is {state:?}; cannot {op}")]
    InvalidState {
        uuid: Uuid,
        state: PowerState,
        op: &'static str,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("spawn of {uuid} failed: {reason}")]
    Spawn { uuid: Uuid, reason: String },
    #[error("{0}")]
    Host(String),
}

/// What the driver can do, as nova's `capabilities` dict; becomes
/// `COMPUTE_*` traits in Placement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub has_imagecache: bool,
    pub supports_attach_interface: bool,
    pub supports_device_tagging: bool,
    pub supports_multiattach: bool,
    pub supports_pcpus: bool,
    pub supports_extend_volume: bool,
    pub supports_image_type_raw: bool,
    pub supports_image_type_qcow2: bool,
    pub supports_image_type_iso: bool,
    pub supports_remote_managed_ports: bool,
    pub supports_socket_pci_numa_affinity: bool,
}

/// `get_info`'s answer (nova's `hardware.InstanceInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub state: PowerState,
    pub internal_id: Option<String>,
}

/// A guest image as the driver gets it: already fetched from Glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    pub path: PathBuf,
    pub disk_format: String,
}

/// Everything the driver needs to create a guest, derived by the manager
/// from the Instance, Flavor, ImageMeta and claims.
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnRequest {
    pub uuid: Uuid,
    pub name: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub root_gb: u64,
    pub image: Option<ImageSource>,
    /// Flavor extra specs and image properties that shape the guest (`hw:*`).
    pub extra_specs: BTreeMap<String, String>,
    pub power_on: bool,
}

/// Soft or hard reboot, as nova's `reboot_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootType {
    Soft,
    Hard,
}

/// A lifecycle event the driver reports (nova/virt/event.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    Started(Uuid),
    Stopped(Uuid),
    Paused(Uuid),
    Resumed(Uuid),
    Crashed(Uuid),
}

/// Where a driver delivers lifecycle events.
pub type EventSink = Box<dyn Fn(LifecycleEvent) + Send + Sync>;

/// Host resources as `get_available_resource` reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AvailableResource {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub local_gb: u64,
    pub vcpus_used: u32,
    pub memory_mb_used: u64,
    pub local_gb_used: u64,
    pub hypervisor_type: String,
    pub hypervisor_version: u64,
    pub hypervisor_hostname: String,
    pub cpu_info: String,
}

/// The driver interface. Methods are synchronous like nova's; the manager
/// runs them on blocking threads. Every method that a driver does not
/// implement answers [`DriverError::NotSupported`].
pub trait ComputeDriver: Send + Sync {
    /// A short name for messages ("fake", "kvm").
    fn name(&self) -> &'static str;

    /// What this driver supports.
    fn capabilities(&self) -> Capabilities;

    /// Prepare the host (called once at service start).
    fn init_host(&self, host: &str) -> Result<(), DriverError>;

    /// Release host-level resources at service stop.
    fn cleanup_host(&self, _host: &str) -> Result<(), DriverError> {
        Ok(())
    }

    /// The power state of one instance.
    fn get_info(&self, uuid: Uuid) -> Result<InstanceInfo, DriverError>;

    /// Whether the instance exists on this host.
    fn instance_exists(&self, uuid: Uuid) -> bool {
        self.get_info(uuid).is_ok()
    }

    /// Every instance this driver runs.
    fn list_instance_uuids(&self) -> Result<Vec<Uuid>, DriverError>;

    /// How many instances this driver runs.
    fn get_num_instances(&self) -> Result<usize, DriverError> {
        Ok(self.list_instance_uuids()?.len())
    }

    /// Create and (by default) start a guest.
    fn spawn(&self, req: &SpawnRequest) -> Result<(), DriverError>;

    /// Stop and remove a guest, and its disks when asked. Destroying an
    /// instance that does not exist is not an error (nova's contract).
    fn destroy(&self, uuid: Uuid, destroy_disks: bool) -> Result<(), DriverError>;

    /// Reboot a guest.
    fn reboot(&self, uuid: Uuid, kind: RebootType) -> Result<(), DriverError>;

    /// Power a guest off, cleanly within `timeout` (0: at once).
    fn power_off(&self, uuid: Uuid, timeout: Duration) -> Result<(), DriverError>;

    /// Power a guest on.
    fn power_on(&self, uuid: Uuid) -> Result<(), DriverError>;

    /// Pause a guest (vCPUs stop, memory stays).
    fn pause(&self, uuid: Uuid) -> Result<(), DriverError>;

    /// Unpause a guest.
    fn unpause(&self, uuid: Uuid) -> Result<(), DriverError>;

    /// Suspend a guest to disk.
    fn suspend(&self, _uuid: Uuid) -> Result<(), DriverError> {
        Err(DriverError::NotSupported("suspend", self.name()))
    }

    /// Resume a suspended guest.
    fn resume(&self, _uuid: Uuid) -> Result<(), DriverError> {
        Err(DriverError::NotSupported("resume", self.name()))
    }

    /// The guest's serial console log (what `openstack console log show` shows).
    fn get_console_output(&self, uuid: Uuid) -> Result<Vec<u8>, DriverError>;

    /// Host resources for the compute node record.
    fn get_available_resource(&self, nodename: &str) -> Result<AvailableResource, DriverError>;

    /// The node names this driver manages (one per host for KVM).
    fn get_available_nodes(&self) -> Vec<String>;

    /// Enable or disable the host (nova's `set_host_enabled`).
    fn set_host_enabled(&self, _enabled: bool) -> Result<String, DriverError> {
        Err(DriverError::NotSupported("set_host_enabled", self.name()))
    }

    /// Reboot, shut down or start the host itself.
    fn host_power_action(&self, _action: &str) -> Result<String, DriverError> {
        Err(DriverError::NotSupported("host_power_action", self.name()))
    }

    /// Put the host in or out of maintenance mode.
    fn host_maintenance_mode(&self, _mode: bool) -> Result<String, DriverError> {
        Err(DriverError::NotSupported(
            "host_maintenance_mode",
            self.name(),
        ))
    }

    /// Snapshot a guest's root disk into an image.
    fn snapshot(&self, _uuid: Uuid, _image_id: &str) -> Result<(), DriverError> {
        Err(DriverError::NotSupported("snapshot", self.name()))
    }

    /// Rescue a guest.
    fn rescue(&self, _uuid: Uuid) -> Result<(), DriverError> {
        Err(DriverError::NotSupported("rescue", self.name()))
    }

    /// Live-migrate a guest.
    fn live_migration(&self, _uuid: Uuid, _dest: &str) -> Result<(), DriverError> {
        Err(DriverError::NotSupported("live_migration", self.name()))
    }

    /// Deliver lifecycle events to `sink` from now on.
    fn register_event_listener(&self, _sink: EventSink) {}
}
