//! NUMA nodes: CPUs, memory and hugepages per node.
//!
//! Read from `sys/devices/system/node/nodeN`; a host without that directory
//! gets one node 0 built from `/proc/meminfo` and `sys/kernel/mm/hugepages`,
//! as libvirt reports such hosts.

use serde::{Deserialize, Serialize};

use super::cpu::{node_number, parse_kernel_cpulist};
use super::cpuset::CpuSet;
use super::hugepages::{read_hugepages, HugePages};
use super::sysfs::{SysRoot, SysfsError};

/// The directory holding `nodeN` directories.
pub const NODE_DIR: &str = "sys/devices/system/node";

/// A problem reading the NUMA nodes.
#[derive(Debug, thiserror::Error)]
pub enum NumaError {
    #[error("cannot list NUMA nodes: {0}")]
    List(#[source] SysfsError),
    #[error("{path} exists but holds no nodeN directories")]
    NoNodes { path: String },
}

/// How the NUMA layout was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumaSource {
    /// From `sys/devices/system/node`.
    Sysfs,
    /// No NUMA directory: one node 0 from `/proc/meminfo` and `sys/kernel/mm/hugepages`.
    SingleNodeFallback,
}

/// One NUMA node (nova's NUMA cell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaNode {
    /// Node id.
    pub id: u32,
    /// The node's online CPUs.
    pub cpus: CpuSet,
    /// The socket of the node's CPUs, when they all share one (nova's `socket`).
    pub socket: Option<u32>,
    /// CPUs of this node for floating guests (nova's cell `cpuset`).
    pub cpuset: CpuSet,
    /// CPUs of this node for pinned guests (nova's cell `pcpuset`).
    pub pcpuset: CpuSet,
    /// Thread sibling sets limited to usable CPUs (nova's cell `siblings`).
    pub siblings: Vec<CpuSet>,
    /// `MemTotal` in KiB, if readable.
    pub memory_total_kib: Option<u64>,
    /// `MemFree` in KiB, if readable.
    pub memory_free_kib: Option<u64>,
    /// Hugepages per size, smallest first.
    pub hugepages: Vec<HugePages>,
}

/// Read the NUMA nodes. `online` is the online CPU set; node CPU lists are
/// limited to it. The CPU sets per cell are left empty for the caller.
pub fn read_nodes(
    root: &SysRoot,
    online: &CpuSet,
    warnings: &mut Vec<String>,
) -> Result<(NumaSource, Vec<NumaNode>), NumaError> {
    if !root.is_dir(NODE_DIR) {
        return Ok((
            NumaSource::SingleNodeFallback,
            vec![fallback_node(root, online, warnings)],
        ));
    }
    let names = root.list(NODE_DIR).map_err(NumaError::List)?;
    let mut ids: Vec<u32> = names
        .iter()
        .filter(|n| root.is_dir(&format!("{NODE_DIR}/{n}")))
        .filter_map(|n| node_number(n))
        .collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(NumaError::NoNodes {
            path: root.path(NODE_DIR).display().to_string(),
        });
    }
    let mut nodes = Vec::with_capacity(ids.len());
    for id in ids {
        let dir = format!("{NODE_DIR}/node{id}");
        let cpus = match root.read_parsed(&format!("{dir}/cpulist"), parse_kernel_cpulist) {
            Ok(cpus) => &cpus & online,
            Err(e) => {
                warnings.push(format!("NUMA node {id}: {e}; no CPUs assigned"));
                CpuSet::new()
            }
        };
        let (total, free) = match root.read(&format!("{dir}/meminfo")) {
            Ok(text) => {
                let m = parse_meminfo(&text);
                if m.0.is_none() {
                    warnings.push(format!(
                        "{}: no MemTotal line; memory not reported",
                        root.path(&format!("{dir}/meminfo")).display()
                    ));
                }
                m
            }
            Err(e) => {
                warnings.push(format!("NUMA node {id}: {e}; memory not reported"));
                (None, None)
            }
        };
        let hugepages = read_hugepages(root, &format!("{dir}/hugepages"), warnings);
        nodes.push(NumaNode {
            id,
            cpus,
            socket: None,
            cpuset: CpuSet::new(),
            pcpuset: CpuSet::new(),
            siblings: Vec::new(),
            memory_total_kib: total,
            memory_free_kib: free,
            hugepages,
        });
    }
    Ok((NumaSource::Sysfs, nodes))
}

fn fallback_node(root: &SysRoot, online: &CpuSet, warnings: &mut Vec<String>) -> NumaNode {
    let (total, free) = match root.read("proc/meminfo") {
        Ok(text) => parse_meminfo(&text),
        Err(e) => {
            warnings.push(format!("{e}; memory not reported"));
            (None, None)
        }
    };
    NumaNode {
        id: 0,
        cpus: online.clone(),
        socket: None,
        cpuset: CpuSet::new(),
        pcpuset: CpuSet::new(),
        siblings: Vec::new(),
        memory_total_kib: total,
        memory_free_kib: free,
        hugepages: read_hugepages(root, "sys/kernel/mm/hugepages", warnings),
    }
}

/// `MemTotal` and `MemFree` (KiB) from `/proc/meminfo` or a node's `meminfo`
/// (`Node 0 MemTotal:  16384 kB`).
pub fn parse_meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    let mut total = None;
    let mut free = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.split_whitespace().last().unwrap_or("");
        let mut words = value.split_whitespace();
        let number = words.next().and_then(|n| n.parse::<u64>().ok());
        let kib = match words.next() {
            Some("kB") | None => number,
            _ => None,
        };
        match key {
            "MemTotal" if total.is_none() => total = kib,
            "MemFree" if free.is_none() => free = kib,
            _ => {}
        }
    }
    (total, free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_both_forms() {
        assert_eq!(
            parse_meminfo("Node 1 MemTotal:       1024 kB\nNode 1 MemFree:   512 kB\n"),
            (Some(1024), Some(512))
        );
        assert_eq!(
            parse_meminfo("MemTotal: 10 kB\nMemFree: 5 kB\n"),
            (Some(10), Some(5))
        );
        assert_eq!(parse_meminfo("MemTotal: lots\n\0\0"), (None, None));
        assert_eq!(parse_meminfo("MemTotal: 5 MB\n"), (None, None));
    }
}
