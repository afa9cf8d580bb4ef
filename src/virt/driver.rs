//! The `ComputeDriver` trait, mirroring nova/virt/driver.py.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

pub use super::power_state::PowerState;
use crate::rpc::RequestContext;

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

pub use super::capabilities::Capabilities;

/// `get_info`'s answer (nova's `hardware.InstanceInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub state: PowerState,
    pub internal_id: Option<String>,
}

/// An ephemeral disk of the flavor (nova's `driver_block_device` "ephemerals").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralDisk {
    /// Guest device name (`/dev/vdb`, ...).
    pub device_name: String,
    /// Size in GiB.
    pub size_gb: u64,
    /// Filesystem to create (`guest_format`), none for nova's default.
    pub guest_format: Option<String>,
}

/// The flavor's swap disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapDisk {
    /// Guest device name.
    pub device_name: String,
    /// Size in MiB.
    pub size_mb: u64,
}

/// nova's `block_device_info` for a local-disk instance: the root device
/// name, ephemerals and swap (volumes are refused before the driver).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDeviceInfo {
    /// The root disk's device name (`/dev/vda`).
    pub root_device_name: String,
    /// Ephemeral disks in guest order.
    pub ephemerals: Vec<EphemeralDisk>,
    /// The swap disk, if the flavor has one.
    pub swap: Option<SwapDisk>,
}

/// Everything the driver needs to create a guest, as nova's
/// `driver.spawn(context, instance, image_meta, injected_files,
/// admin_password, allocations, network_info, block_device_info)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnRequest {
    pub uuid: Uuid,
    /// The instance's name (`display_name`, or `instance-<uuid>`).
    pub name: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub root_gb: u64,
    pub ephemeral_gb: u64,
    pub swap_mb: u64,
    /// The image dict nova passes (`image` of `build_and_run_instance`:
    /// id, disk_format, checksum, os_hash_*, properties, ...); `Null` when
    /// the instance has no image.
    pub image: Value,
    /// Block devices (root name, ephemerals, swap).
    pub block_devices: BlockDeviceInfo,
    /// The instance's network_info (VIFs), as nova's `NetworkInfo`.
    pub network_info: Vec<Value>,
    /// Flavor extra specs that shape the guest (`hw:*` and others).
    pub extra_specs: BTreeMap<String, String>,
    /// The request's context: token, service catalog and request id, for
    /// Glance and Neutron calls made on the user's behalf.
    pub context: RequestContext,
    pub power_on: bool,
}

/// `task_state` changes a long operation reports as it goes (nova's
/// `update_task_state(task_state, expected_state)` callback of snapshot).
pub type UpdateTaskState<'a> = &'a (dyn Fn(&str, Option<&str>) + Sync);

/// One vCPU's counters (nova/virt/diagnostics.py `CpuDiagnostics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuDiagnostics {
    pub id: u32,
    /// CPU time in nanoseconds.
    pub time: u64,
    pub utilisation: Option<u32>,
}

/// One NIC's counters (`NicDiagnostics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NicDiagnostics {
    pub mac_address: String,
    pub rx_octets: u64,
    pub rx_errors: u64,
    pub rx_drop: u64,
    pub rx_packets: u64,
    pub rx_rate: Option<u64>,
    pub tx_octets: u64,
    pub tx_errors: u64,
    pub tx_drop: u64,
    pub tx_packets: u64,
    pub tx_rate: Option<u64>,
}

/// One disk's counters (`DiskDiagnostics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiskDiagnostics {
    /// The disk's name as the guest sees it (`vda`).
    pub name: String,
    pub read_bytes: u64,
    pub read_requests: u64,
    pub write_bytes: u64,
    pub write_requests: u64,
    pub errors_count: u64,
}

/// `get_instance_diagnostics`'s answer (nova's `Diagnostics`, the form
/// API microversion 2.48 shows).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diagnostics {
    pub state: PowerState,
    pub driver: String,
    pub hypervisor: String,
    pub hypervisor_os: String,
    /// Seconds since the guest started.
    pub uptime: u64,
    pub config_drive: bool,
    pub num_cpus: u32,
    pub num_nics: u32,
    pub num_disks: u32,
    pub cpu_details: Vec<CpuDiagnostics>,
    pub nic_details: Vec<NicDiagnostics>,
    pub disk_details: Vec<DiskDiagnostics>,
    /// Guest memory in MiB: `(maximum, used)`.
    pub memory_maximum_mb: u64,
    pub memory_used_mb: u64,
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

    /// The instance's diagnostics (per-vCPU time, memory, disk and NIC
    /// counters).
    fn get_instance_diagnostics(&self, _uuid: Uuid) -> Result<Diagnostics, DriverError> {
        Err(DriverError::NotSupported(
            "get_instance_diagnostics",
            self.name(),
        ))
    }

    /// What `uptime` says about the host (nova's `get_host_uptime`).
    fn get_host_uptime(&self) -> Result<String, DriverError> {
        host_uptime()
    }

    /// The image cache manager pass (nova's `manage_image_cache`):
    /// `in_use` holds the image ids of this host's instances.
    fn manage_image_cache(
        &self,
        _in_use: &std::collections::HashSet<String>,
    ) -> Result<(), DriverError> {
        Ok(())
    }

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
    fn snapshot(
        &self,
        _ctx: &RequestContext,
        _uuid: Uuid,
        _image_id: &str,
        _update_task_state: UpdateTaskState<'_>,
    ) -> Result<(), DriverError> {
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

/// `uptime`'s line from /proc/uptime and /proc/loadavg, as nova's
/// `get_host_uptime` returns it.
pub fn host_uptime() -> Result<String, DriverError> {
    let up = std::fs::read_to_string("/proc/uptime")
        .map_err(|e| DriverError::Host(format!("/proc/uptime: {e}")))?;
    let load = std::fs::read_to_string("/proc/loadavg")
        .map_err(|e| DriverError::Host(format!("/proc/loadavg: {e}")))?;
    let secs = up
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let l: Vec<&str> = load.split_whitespace().take(3).collect();
    Ok(format!(
        " up {} days, {:02}:{:02},  load average: {}",
        secs / 86400,
        (secs % 86400) / 3600,
        (secs % 3600) / 60,
        l.join(", ")
    ))
}
