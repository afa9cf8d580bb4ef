//! The whole host inventory: CPUs, CPU sets, NUMA cells, disk, SR-IOV.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cpu::{read_cpus, CpuError, CpuInventory};
use super::cpuset::{format_cpu_spec, CpuAllocation, CpuSet, CpuSetError, CpuSetOptions};
use super::disk::{disk_info, DiskError, DiskInfo};
use super::hugepages::{parse_reservations, HugePagesError, Reservations};
use super::numa::{read_nodes, NumaError, NumaNode, NumaSource};
use super::pci_spec::{DeviceSpecError, DeviceSpecs, SpecOptions};
use super::sriov::{read_sriov, PhysicalFunction, SriovError};
use super::sysfs::SysRoot;
use crate::config::Config;

/// Why the inventory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("host root {path} is not a readable directory")]
    Root { path: PathBuf },
    #[error(transparent)]
    Cpu(#[from] CpuError),
    #[error(transparent)]
    Numa(#[from] NumaError),
    #[error(transparent)]
    CpuSet(#[from] CpuSetError),
    #[error(transparent)]
    HugePages(#[from] HugePagesError),
    #[error(transparent)]
    DeviceSpec(#[from] DeviceSpecError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Sriov(#[from] SriovError),
}

impl InventoryError {
    /// Whether the configuration (not the host) is at fault.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            InventoryError::CpuSet(_)
                | InventoryError::HugePages(_)
                | InventoryError::DeviceSpec(_)
        )
    }
}

/// What the inventory needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct InventoryOptions {
    /// `[compute] cpu_shared_set`, `cpu_dedicated_set`, `[DEFAULT] reserved_host_cpus`.
    pub cpu_sets: CpuSetOptions,
    /// `[compute] reserved_huge_pages`.
    pub reserved_huge_pages: Vec<String>,
    /// `[pci] device_spec`.
    pub device_spec: Vec<String>,
    /// `[pci]` options that change spec validation.
    pub spec_options: SpecOptions,
    /// `[DEFAULT] instances_path` (taken as is, not below the root).
    pub instances_path: PathBuf,
}

impl InventoryOptions {
    /// The options from the novakvm configuration.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            cpu_sets: CpuSetOptions::from_config(cfg),
            reserved_huge_pages: cfg.compute.reserved_huge_pages.clone(),
            device_spec: cfg.pci.device_spec.clone(),
            spec_options: SpecOptions::default(),
            instances_path: cfg.default.instances_path(),
        }
    }
}

/// Host CPUs for floating (VCPU) and pinned (PCPU) guests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuSets {
    /// VCPU inventory CPUs in nova's syntax.
    pub vcpu_spec: String,
    /// VCPU inventory CPUs.
    pub vcpu: CpuSet,
    /// PCPU inventory CPUs in nova's syntax.
    pub pcpu_spec: String,
    /// PCPU inventory CPUs.
    pub pcpu: CpuSet,
}

/// Everything `novakvm host inventory` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInventory {
    /// The sysfs/procfs root read.
    pub root: PathBuf,
    /// CPUs and their topology.
    pub cpu: CpuInventory,
    /// VCPU and PCPU sets.
    pub cpu_sets: CpuSets,
    /// Where the NUMA layout came from.
    pub numa_source: NumaSource,
    /// NUMA cells.
    pub numa_nodes: Vec<NumaNode>,
    /// Space for instances.
    pub disk: DiskInfo,
    /// Number of `[pci] device_spec` specs parsed.
    pub device_spec_count: usize,
    /// SR-IOV physical functions and their VFs.
    pub sriov: Vec<PhysicalFunction>,
    /// Things that could not be read and were left out.
    pub warnings: Vec<String>,
}

/// Take the inventory of the host whose sysfs/procfs are under `root`.
pub fn collect(root: &Path, opts: &InventoryOptions) -> Result<HostInventory, InventoryError> {
    if !root.is_dir() || std::fs::read_dir(root).is_err() {
        return Err(InventoryError::Root {
            path: root.to_path_buf(),
        });
    }
    let sys = SysRoot::new(root);
    let mut warnings = Vec::new();
    let mut cpu = read_cpus(&sys, &mut warnings)?;
    let alloc = CpuAllocation::derive(&opts.cpu_sets, &cpu.online)?;
    let reservations = parse_reservations(&opts.reserved_huge_pages)?;
    let (numa_source, mut nodes) = read_nodes(&sys, &cpu.online, &mut warnings)?;
    for c in &mut cpu.cpus {
        let from_nodes = nodes.iter().find(|n| n.cpus.contains(&c.id)).map(|n| n.id);
        match (c.numa_node, from_nodes) {
            (None, found) => c.numa_node = found,
            (Some(link), Some(list)) if link != list => warnings.push(format!(
                "CPU {}: node{link} link disagrees with node{list}/cpulist; using node{link}",
                c.id
            )),
            _ => {}
        }
    }
    for node in &mut nodes {
        fill_cell(node, &cpu, &alloc);
    }
    apply_reservations(&mut nodes, &reservations, &mut warnings);
    let disk = disk_info(&opts.instances_path)?;
    let specs = DeviceSpecs::parse(&opts.device_spec, &sys, opts.spec_options)?;
    let sriov = read_sriov(&sys, &specs, &mut warnings)?;
    Ok(HostInventory {
        root: root.to_path_buf(),
        cpu,
        cpu_sets: CpuSets {
            vcpu_spec: format_cpu_spec(&alloc.vcpu),
            vcpu: alloc.vcpu,
            pcpu_spec: format_cpu_spec(&alloc.pcpu),
            pcpu: alloc.pcpu,
        },
        numa_source,
        numa_nodes: nodes,
        disk,
        device_spec_count: specs.specs.len(),
        sriov,
        warnings,
    })
}

/// A cell's socket, cpuset, pcpuset and siblings as `_get_host_numa_topology` builds them.
fn fill_cell(node: &mut NumaNode, cpu: &CpuInventory, alloc: &CpuAllocation) {
    let cell_cpus: Vec<_> = cpu
        .cpus
        .iter()
        .filter(|c| node.cpus.contains(&c.id))
        .collect();
    let sockets: CpuSet = cell_cpus.iter().filter_map(|c| c.socket).collect();
    node.socket = if sockets.len() == 1 && cell_cpus.iter().all(|c| c.socket.is_some()) {
        sockets.first().copied()
    } else {
        None
    };
    node.cpuset = &node.cpus & &alloc.vcpu;
    node.pcpuset = &node.cpus & &alloc.cell_pcpu;
    let usable: CpuSet = &node.cpus & &(&alloc.vcpu | &alloc.cell_pcpu);
    let siblings: std::collections::BTreeSet<CpuSet> = cell_cpus
        .iter()
        .map(|c| &c.siblings & &usable)
        .filter(|s| !s.is_empty())
        .collect();
    node.siblings = siblings.into_iter().collect();
}

fn apply_reservations(
    nodes: &mut [NumaNode],
    reservations: &Reservations,
    warnings: &mut Vec<String>,
) {
    for (&(node_id, size_kib), &count) in reservations {
        let page = nodes
            .iter_mut()
            .find(|n| n.id == node_id)
            .and_then(|n| n.hugepages.iter_mut().find(|h| h.size_kib == size_kib));
        match page {
            Some(p) => {
                p.reserved = count;
                if count > p.total {
                    warnings.push(format!(
                        "reserved_huge_pages reserves {count} pages of {size_kib} KiB on node {node_id}, which has only {}",
                        p.total
                    ));
                }
            }
            None => warnings.push(format!(
                "reserved_huge_pages: node {node_id} has no {size_kib} KiB pages; reservation ignored"
            )),
        }
    }
}
