//! What the agent reports about its node, derived from host inventory and
//! configuration: the `ComputeNode` record (the libvirt driver's
//! `get_available_resource` + the resource tracker) and the Placement
//! provider input ([`HostResources`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use uuid::Uuid;

use crate::config::Config;
use crate::host::HostInventory;
use crate::objects::compute::{
    libvirt_version_number, ComputeNodeResources, ComputeNodeUsage, CpuInfo, CpuTopology,
    HvSpecTriple, NumaCellSpec, HYPERVISOR_TYPE_QEMU,
};
use crate::objects::views::NUMATopology;
use crate::placement::tree::{reserved_disk_gb, HostResources};

/// Small page size nova lists first in each cell's `mempages`.
const SMALL_PAGE_KB: u64 = 4;

/// Host memory in MiB: the sum of the NUMA cells' `MemTotal`.
pub fn memory_mb(inv: &HostInventory) -> u64 {
    inv.numa_nodes
        .iter()
        .filter_map(|n| n.memory_total_kib)
        .sum::<u64>()
        / 1024
}

/// Instance disk in GiB (the file system of `instances_path`, rounded down).
pub fn disk_gb(inv: &HostInventory) -> u64 {
    inv.disk.total_bytes / (1024 * 1024 * 1024)
}

/// The host architecture (`uname -m`).
pub fn arch() -> String {
    std::env::consts::ARCH.to_string()
}

/// `hypervisor_version`: the running kernel's version (KVM is part of it),
/// encoded as libvirt encodes versions.
pub fn hypervisor_version() -> i64 {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nums: Vec<u32> = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    libvirt_version_number(
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
        nums.get(2).copied().unwrap_or(0),
    )
}

/// The management IP nova would pick as `my_ip` (the source address of the
/// default route), or None.
pub fn my_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:80").ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// `cpu_info` as the libvirt driver writes it.
pub fn cpu_info(inv: &HostInventory) -> CpuInfo {
    let cells = inv.numa_nodes.len().max(1) as u32;
    let sockets = inv.cpu.sockets.max(1) as u32;
    let cores_total = inv.cpu.cores.max(1) as u32;
    CpuInfo {
        arch: arch(),
        model: inv.cpu.model.clone().unwrap_or_else(|| "host".into()),
        vendor: match inv.cpu.vendor.as_deref() {
            Some("GenuineIntel") => "Intel".into(),
            Some("AuthenticAMD") => "AMD".into(),
            Some(v) => v.into(),
            None => "unknown".into(),
        },
        topology: CpuTopology {
            cells,
            sockets: (sockets / cells).max(1),
            cores: (cores_total / sockets).max(1),
            threads: inv.cpu.threads_per_core.max(1) as u32,
        },
        maxphysaddr: None,
        features: inv.cpu.flags.clone(),
    }
}

/// The host NUMA topology (`_get_host_numa_topology`): per cell cpuset,
/// pcpuset, siblings, memory and page pools (small pages first).
pub fn numa_topology(inv: &HostInventory) -> NUMATopology {
    let cells: Vec<NumaCellSpec> = inv
        .numa_nodes
        .iter()
        .map(|n| {
            let mem_kib = n.memory_total_kib.unwrap_or(0);
            let huge_kib: u64 = n.hugepages.iter().map(|h| h.total * h.size_kib).sum();
            let mut pages = vec![(
                SMALL_PAGE_KB as i64,
                (mem_kib.saturating_sub(huge_kib) / SMALL_PAGE_KB) as i64,
                0,
            )];
            pages.extend(
                n.hugepages
                    .iter()
                    .map(|h| (h.size_kib as i64, h.total as i64, h.reserved as i64)),
            );
            NumaCellSpec {
                id: i64::from(n.id),
                cpuset: n.cpuset.iter().map(|&c| i64::from(c)).collect(),
                pcpuset: n.pcpuset.iter().map(|&c| i64::from(c)).collect(),
                siblings: n
                    .siblings
                    .iter()
                    .map(|s| s.iter().map(|&c| i64::from(c)).collect())
                    .collect(),
                memory_mb: (mem_kib / 1024) as i64,
                mempages: pages,
                socket: n.socket.map(i64::from),
                physnets: Vec::new(),
                tunneled: false,
            }
        })
        .collect();
    NUMATopology::from_cells(&cells)
}

/// Usage of the instances on this node, as the resource tracker sums it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceUsage {
    /// Instances tracked.
    pub instances: i64,
    /// Sum of their vCPUs.
    pub vcpus: i64,
    /// Sum of their memory (MiB).
    pub memory_mb: i64,
    /// Sum of their root + ephemeral disk (GiB).
    pub disk_gb: i64,
    /// Instances still building.
    pub building: i64,
    /// Instances per project.
    pub per_project: BTreeMap<String, i64>,
    /// Builds that failed since the start (`failed_builds`).
    pub failed_builds: i64,
}

/// The resource tracker's usage fields for `ComputeNode.save`.
pub fn node_usage(cfg: &Config, u: &InstanceUsage) -> ComputeNodeUsage {
    let mut stats = BTreeMap::new();
    stats.insert("failed_builds".to_string(), u.failed_builds.to_string());
    stats.insert("num_instances".to_string(), u.instances.to_string());
    stats.insert("num_vm_building".to_string(), u.building.to_string());
    stats.insert("num_task_None".to_string(), u.instances.to_string());
    stats.insert("num_os_type_None".to_string(), u.instances.to_string());
    for (p, n) in &u.per_project {
        stats.insert(format!("num_proj_{p}"), n.to_string());
    }
    stats.insert("io_workload".to_string(), u.building.to_string());
    ComputeNodeUsage {
        vcpus_used: u.vcpus,
        memory_mb_used: cfg.default.reserved_host_memory_mb as i64 + u.memory_mb,
        local_gb_used: reserved_disk_gb(cfg.default.reserved_host_disk_mb) as i64 + u.disk_gb,
        current_workload: 0,
        running_vms: u.instances,
        stats: if u.instances == 0 && u.failed_builds == 0 && u.per_project.is_empty() {
            None
        } else {
            Some(stats)
        },
    }
}

/// The ComputeNode record's resources.
pub fn node_resources(
    cfg: &Config,
    inv: &HostInventory,
    node_uuid: Uuid,
    service_id: Option<i64>,
) -> ComputeNodeResources {
    let vcpus = inv.cpu_sets.vcpu.len() as i64;
    let mut stats = BTreeMap::new();
    stats.insert("failed_builds".to_string(), "0".to_string());
    let disk = disk_gb(inv) as i64;
    ComputeNodeResources {
        uuid: node_uuid.to_string(),
        host: cfg.default.host.clone(),
        hypervisor_hostname: cfg.default.host.clone(),
        service_id,
        vcpus,
        memory_mb: memory_mb(inv) as i64,
        local_gb: disk,
        vcpus_used: 0,
        memory_mb_used: cfg.default.reserved_host_memory_mb as i64,
        local_gb_used: reserved_disk_gb(cfg.default.reserved_host_disk_mb) as i64,
        hypervisor_type: HYPERVISOR_TYPE_QEMU.to_string(),
        hypervisor_version: hypervisor_version(),
        cpu_info: cpu_info(inv).to_json_string(),
        disk_available_least: Some((inv.disk.free_bytes / (1024 * 1024 * 1024)) as i64),
        host_ip: my_ip(),
        numa_topology: Some(numa_topology(inv)),
        supported_hv_specs: HvSpecTriple::libvirt_kvm(&arch()),
        stats,
        cpu_allocation_ratio: cfg
            .default
            .cpu_allocation_ratio
            .filter(|r| *r != 0.0)
            .unwrap_or(cfg.default.initial_cpu_allocation_ratio),
        ram_allocation_ratio: cfg
            .default
            .ram_allocation_ratio
            .filter(|r| *r != 0.0)
            .unwrap_or(cfg.default.initial_ram_allocation_ratio),
        disk_allocation_ratio: cfg
            .default
            .disk_allocation_ratio
            .filter(|r| *r != 0.0)
            .unwrap_or(cfg.default.initial_disk_allocation_ratio),
    }
}

/// The Placement provider input for this node.
pub fn host_resources(cfg: &Config, inv: &HostInventory, node_uuid: Uuid) -> HostResources {
    HostResources {
        node_uuid,
        hypervisor_hostname: cfg.default.host.clone(),
        shared_cpus: inv.cpu_sets.vcpu.iter().copied().collect(),
        dedicated_cpus: inv.cpu_sets.pcpu.iter().copied().collect(),
        memory_mb: memory_mb(inv),
        disk_gb: disk_gb(inv),
        cpu_flags: inv.cpu.flags.clone(),
        smt: inv.cpu.threads_per_core > 1,
        arch: Some(arch()),
    }
}
