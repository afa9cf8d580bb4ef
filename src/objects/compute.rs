//! Constructors for the objects the compute agent creates itself: its
//! `Service` record and its `ComputeNode` (with `HVSpec`s, `cpu_info` and a
//! serialized `NUMATopology`), shaped like stock nova-compute 34.0.0 sends
//! them (captures 0016 Service.create, 0023 ComputeNode.create, 0033/0059
//! ComputeNode.save).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use super::views::{
    ComputeNode, HVSpec, NUMACell, NUMAPagesTopology, NUMATopology, NetworkMetadata, ObjectView,
    PciDevicePoolList, Service,
};
use super::{NovaObject, ObjectError};

/// `nova.objects.service.SERVICE_VERSION` of nova 34.0.0.
pub const SERVICE_VERSION: i64 = 74;
/// Binary name of the compute service.
pub const COMPUTE_BINARY: &str = "nova-compute";
/// RPC topic of the compute service.
pub const COMPUTE_TOPIC: &str = "compute";
/// What libvirt's `virConnectGetType` reports for QEMU/KVM, and so what the
/// libvirt driver puts in `ComputeNode.hypervisor_type`.
pub const HYPERVISOR_TYPE_QEMU: &str = "QEMU";

impl Service {
    /// The Service nova-compute creates at first start (`Service.create`):
    /// host, binary `nova-compute`, topic `compute`, report_count 0, version 74,
    /// all recorded as changes.
    pub fn for_compute(host: &str) -> Self {
        let mut s = Self::empty();
        s.set_host(Some(host));
        s.set_binary(Some(COMPUTE_BINARY));
        s.set_topic(Some(COMPUTE_TOPIC));
        s.set_report_count(Some(0));
        s.set_version(Some(SERVICE_VERSION));
        s
    }
}

/// Host CPU description serialized into `ComputeNode.cpu_info` (the libvirt
/// driver's `_get_cpu_info`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuInfo {
    /// Architecture, e.g. `x86_64`.
    pub arch: String,
    /// CPU model name, e.g. `Skylake-Client-IBRS`.
    pub model: String,
    /// Vendor, e.g. `Intel`.
    pub vendor: String,
    /// Topology.
    pub topology: CpuTopology,
    /// Physical address bits, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxphysaddr: Option<MaxPhysAddr>,
    /// CPU feature flags (libvirt names), sorted.
    pub features: Vec<String>,
}

/// `cpu_info.topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuTopology {
    /// NUMA cells.
    pub cells: u32,
    /// Sockets (per cell, as libvirt reports).
    pub sockets: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

/// `cpu_info.maxphysaddr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaxPhysAddr {
    /// `passthrough` or `emulate`.
    pub mode: String,
    /// Number of bits.
    pub bits: u32,
}

impl CpuInfo {
    /// The JSON string stored in `ComputeNode.cpu_info`.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// One instance type the hypervisor can run (`HVSpec`): e.g.
/// (`x86_64`, `kvm`, `hvm`). Values are nova's canonical lower-case names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HvSpecTriple {
    /// Architecture (`x86_64`).
    pub arch: String,
    /// Hypervisor type (`kvm`, `qemu`).
    pub hv_type: String,
    /// VM mode (`hvm`).
    pub vm_mode: String,
}

impl HvSpecTriple {
    /// Builds a triple.
    pub fn new(arch: &str, hv_type: &str, vm_mode: &str) -> Self {
        Self {
            arch: arch.to_owned(),
            hv_type: hv_type.to_owned(),
            vm_mode: vm_mode.to_owned(),
        }
    }

    /// What the libvirt driver reports for a KVM host of `arch`
    /// (`_get_instance_capabilities`: libvirt lists domain types `qemu`
    /// then `kvm` for each guest arch). The scheduler's
    /// ImagePropertiesFilter matches image `hw_architecture`,
    /// `img_hv_type` and `hw_vm_mode` against these.
    pub fn libvirt_kvm(arch: &str) -> Vec<Self> {
        vec![
            Self::new(arch, "qemu", "hvm"),
            Self::new(arch, "kvm", "hvm"),
        ]
    }
}

/// `hypervisor_version` as libvirt encodes a version (e.g. QEMU 8.2.2 ->
/// 8002002): `major * 1_000_000 + minor * 1_000 + micro`.
pub fn libvirt_version_number(major: u32, minor: u32, micro: u32) -> i64 {
    i64::from(major) * 1_000_000 + i64::from(minor) * 1_000 + i64::from(micro)
}

impl HVSpec {
    /// Builds an HVSpec with the three fields set (as the resource tracker does).
    pub fn from_triple(t: &HvSpecTriple) -> Self {
        let mut h = Self::empty();
        h.set_arch(Some(&t.arch));
        h.set_hv_type(Some(&t.hv_type));
        h.set_vm_mode(Some(&t.vm_mode));
        h
    }
}

/// One host NUMA cell as the libvirt driver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumaCellSpec {
    /// Cell id.
    pub id: i64,
    /// Host CPUs of the cell usable by shared (floating) guests.
    pub cpuset: Vec<i64>,
    /// Host CPUs of the cell reserved for pinned guests.
    pub pcpuset: Vec<i64>,
    /// Thread sibling sets, sorted.
    pub siblings: Vec<Vec<i64>>,
    /// Memory of the cell in MiB.
    pub memory_mb: i64,
    /// Huge/small page pools: (size_kb, total pages, reserved pages).
    pub mempages: Vec<(i64, i64, i64)>,
    /// Socket id when the cell spans a single socket.
    pub socket: Option<i64>,
    /// Physical networks with affinity to the cell.
    pub physnets: Vec<String>,
    /// Whether tunneled networks have affinity to the cell.
    pub tunneled: bool,
}

impl NUMATopology {
    /// The host topology with usage zeroed, as `_get_host_numa_topology` builds it.
    pub fn from_cells(cells: &[NumaCellSpec]) -> Self {
        let mut objs = Vec::with_capacity(cells.len());
        for c in cells {
            let mut cell = NUMACell::empty();
            cell.set_id(Some(c.id));
            cell.set_socket(c.socket);
            cell.set_cpuset(&sorted(&c.cpuset));
            cell.set_pcpuset(&sorted(&c.pcpuset));
            cell.set_memory(Some(c.memory_mb));
            cell.set_cpu_usage(Some(0));
            cell.set_memory_usage(Some(0));
            cell.set_pinned_cpus(&[]);
            let mut sib: Vec<Vec<i64>> = c.siblings.iter().map(|s| sorted(s)).collect();
            sib.sort();
            cell.set_siblings(&sib);
            let pages: Vec<NUMAPagesTopology> = c
                .mempages
                .iter()
                .map(|&(size_kb, total, reserved)| {
                    let mut p = NUMAPagesTopology::empty();
                    p.set_size_kb(Some(size_kb));
                    p.set_total(Some(total));
                    p.set_used(Some(0));
                    p.set_reserved(Some(reserved));
                    p
                })
                .collect();
            cell.set_mempages(&pages);
            let mut nm = NetworkMetadata::empty();
            let mut physnets = c.physnets.clone();
            physnets.sort();
            physnets.dedup();
            nm.set_physnets(&physnets);
            nm.set_tunneled(Some(c.tunneled));
            cell.set_network_metadata(Some(&nm));
            objs.push(cell);
        }
        let mut t = Self::empty();
        t.set_cells(&objs);
        t
    }

    /// The JSON string stored in `ComputeNode.numa_topology` (nova's `_to_json()`).
    pub fn to_json_string(&self) -> String {
        self.to_value().to_string()
    }

    /// Parses `ComputeNode.numa_topology`'s JSON string.
    pub fn from_json_string(s: &str) -> Result<Self, ObjectError> {
        let v: Value = serde_json::from_str(s).map_err(|source| ObjectError::EmbeddedJson {
            field: "numa_topology",
            source,
        })?;
        Self::from_value(&v)
    }
}

fn sorted(v: &[i64]) -> Vec<i64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Everything the compute agent reports about its node (the libvirt driver's
/// `get_available_resource` plus the resource tracker's additions).
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeNodeResources {
    /// Node UUID (stable across restarts: nova keeps it in `compute_id`).
    pub uuid: String,
    /// Service host name (`[DEFAULT] host`).
    pub host: String,
    /// Hypervisor host name (the node name).
    pub hypervisor_hostname: String,
    /// Id of the Service record (from `Service.create`); left unset when `None`.
    pub service_id: Option<i64>,
    /// Usable host CPUs.
    pub vcpus: i64,
    /// Host memory in MiB.
    pub memory_mb: i64,
    /// Instance storage in GiB.
    pub local_gb: i64,
    /// Used vCPUs.
    pub vcpus_used: i64,
    /// Used memory in MiB (includes `reserved_host_memory_mb`).
    pub memory_mb_used: i64,
    /// Used storage in GiB.
    pub local_gb_used: i64,
    /// [`HYPERVISOR_TYPE_QEMU`] for QEMU/KVM.
    pub hypervisor_type: String,
    /// Hypervisor version as libvirt encodes it (major*1000000 + minor*1000 + micro).
    pub hypervisor_version: i64,
    /// Host CPU description as a JSON string (see [`CpuInfo::to_json_string`]).
    pub cpu_info: String,
    /// Free disk in GiB taking over-committed images into account.
    pub disk_available_least: Option<i64>,
    /// Management IP (`[DEFAULT] my_ip`).
    pub host_ip: Option<IpAddr>,
    /// Host NUMA topology, if reported.
    pub numa_topology: Option<NUMATopology>,
    /// Instance types supported.
    pub supported_hv_specs: Vec<HvSpecTriple>,
    /// Resource tracker stats (e.g. `failed_builds`).
    pub stats: BTreeMap<String, String>,
    /// `cpu_allocation_ratio`.
    pub cpu_allocation_ratio: f64,
    /// `ram_allocation_ratio`.
    pub ram_allocation_ratio: f64,
    /// `disk_allocation_ratio`.
    pub disk_allocation_ratio: f64,
}

impl ComputeNode {
    /// The ComputeNode the resource tracker sends in `ComputeNode.create`
    /// (same fields as capture 0023), every field recorded as changed.
    pub fn for_create(r: &ComputeNodeResources) -> Self {
        let mut c = Self::empty();
        c.set_uuid(Some(&r.uuid));
        if let Some(id) = r.service_id {
            c.set_service_id(Some(id));
        }
        c.set_host(Some(&r.host));
        c.set_vcpus(Some(r.vcpus));
        c.set_memory_mb(Some(r.memory_mb));
        c.set_local_gb(Some(r.local_gb));
        c.set_vcpus_used(Some(r.vcpus_used));
        c.set_memory_mb_used(Some(r.memory_mb_used));
        c.set_local_gb_used(Some(r.local_gb_used));
        c.set_hypervisor_type(Some(&r.hypervisor_type));
        c.set_hypervisor_version(Some(r.hypervisor_version));
        c.set_hypervisor_hostname(Some(&r.hypervisor_hostname));
        c.set_cpu_info(Some(&r.cpu_info));
        c.set_disk_available_least(r.disk_available_least);
        c.set_stats(&r.stats);
        let ip = r.host_ip.map(|ip| ip.to_string());
        c.set_host_ip(ip.as_deref());
        let numa = r.numa_topology.as_ref().map(NUMATopology::to_json_string);
        c.set_numa_topology(numa.as_deref());
        let specs: Vec<HVSpec> = r
            .supported_hv_specs
            .iter()
            .map(HVSpec::from_triple)
            .collect();
        c.set_supported_hv_specs(&specs);
        c.set_cpu_allocation_ratio(Some(r.cpu_allocation_ratio));
        c.set_ram_allocation_ratio(Some(r.ram_allocation_ratio));
        c.set_disk_allocation_ratio(Some(r.disk_allocation_ratio));
        c
    }

    /// Updates the node from fresh resources, setting (and so marking changed)
    /// only the fields whose wire value differs (ignoring nested change lists,
    /// like nova's `obj_equal_prims` in the resource tracker). Returns true when
    /// anything changed (a `save` is then needed).
    pub fn update_resources(&mut self, r: &ComputeNodeResources) -> bool {
        let fresh = Self::for_create(r);
        let mut changed = false;
        for (k, v) in fresh.object().data() {
            let same = self
                .object()
                .get(k)
                .is_some_and(|old| super::equal_ignoring_changes(old, v));
            if !same {
                self.object_mut().set(k, v.clone());
                changed = true;
            }
        }
        changed
    }

    /// Sets the usage fields the resource tracker recomputes each period
    /// (`_update_usage`): `*_used`, `free_ram_mb`, `free_disk_gb`,
    /// `current_workload`, `running_vms`, `stats` (when given: the tracker
    /// sets it only when it accounts instances), an empty `pci_device_pools`
    /// and `metrics` `"[]"`, as in captures 0033 and 0059.
    pub fn set_usage(&mut self, u: &ComputeNodeUsage) {
        self.set_vcpus_used(Some(u.vcpus_used));
        self.set_memory_mb_used(Some(u.memory_mb_used));
        self.set_local_gb_used(Some(u.local_gb_used));
        let mem = self.memory_mb().unwrap_or(0);
        let disk = self.local_gb().unwrap_or(0);
        self.set_free_ram_mb(Some(mem - u.memory_mb_used));
        self.set_free_disk_gb(Some(disk - u.local_gb_used));
        self.set_current_workload(Some(u.current_workload));
        self.set_running_vms(Some(u.running_vms));
        if let Some(stats) = &u.stats {
            self.set_stats(stats);
        }
        self.set_metrics(Some("[]"));
        let mut pools = PciDevicePoolList::empty();
        pools.set_objects(&[]);
        self.set_pci_device_pools(Some(&pools));
    }

    /// `numa_topology` parsed from its JSON string; `None` when unset or null.
    pub fn numa(&self) -> Result<Option<NUMATopology>, ObjectError> {
        self.numa_topology()
            .map(NUMATopology::from_json_string)
            .transpose()
    }
}

/// Usage figures for [`ComputeNode::set_usage`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComputeNodeUsage {
    /// vCPUs used by instances.
    pub vcpus_used: i64,
    /// Memory used in MiB (instances plus `reserved_host_memory_mb`).
    pub memory_mb_used: i64,
    /// Disk used in GiB (instances plus `reserved_host_disk_mb`).
    pub local_gb_used: i64,
    /// Instances with a task in progress.
    pub current_workload: i64,
    /// Instances on the node.
    pub running_vms: i64,
    /// Resource tracker stats (`num_instances`, `failed_builds`...), if recomputed.
    pub stats: Option<BTreeMap<String, String>>,
}

/// Checks the shape of a generic object as nova-compute would send it, for
/// callers that build objects by hand: the object must validate and be at
/// our version.
pub fn check_outgoing(obj: &NovaObject) -> Result<(), ObjectError> {
    let def = super::registry::validate(obj)?;
    if obj.version() != def.version().to_string() {
        return Err(ObjectError::UnsupportedVersion {
            name: obj.name().to_owned(),
            version: obj.version().to_owned(),
            supported: def.version().to_string(),
        });
    }
    Ok(())
}
