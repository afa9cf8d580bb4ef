//! CPUs: the online set, per-CPU topology, model and flags.

use serde::{Deserialize, Serialize};

use super::cpu_traits::cpu_trait_names;
use super::cpuset::{format_cpu_spec, parse_cpu_spec, CpuSet};
use super::sysfs::{SysRoot, SysfsError};

/// Where the online CPU list lives.
pub const ONLINE: &str = "sys/devices/system/cpu/online";

/// A problem reading the CPUs.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("cannot determine the online CPUs: {0}")]
    Online(#[source] SysfsError),
    #[error("{path} lists no online CPUs")]
    NoneOnline { path: String },
}

/// One online host CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCpu {
    /// Logical CPU id.
    pub id: u32,
    /// Socket (`topology/physical_package_id`), if readable.
    pub socket: Option<u32>,
    /// Core id within the socket (`topology/core_id`), if readable.
    pub core: Option<u32>,
    /// Hardware threads sharing this CPU's core, itself included.
    pub siblings: CpuSet,
    /// NUMA node, if known.
    pub numa_node: Option<u32>,
}

/// The host's CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInventory {
    /// `model name` from `/proc/cpuinfo`.
    pub model: Option<String>,
    /// `vendor_id` from `/proc/cpuinfo`.
    pub vendor: Option<String>,
    /// Flags of the first CPU in `/proc/cpuinfo` (kernel names), sorted.
    pub flags: Vec<String>,
    /// The `HW_CPU_X86_*` traits those flags give (see [`super::cpu_traits`]).
    pub traits: Vec<String>,
    /// Online CPUs in nova's compact syntax.
    pub online_spec: String,
    /// Online CPU ids.
    pub online: CpuSet,
    /// Distinct sockets among the online CPUs.
    pub sockets: usize,
    /// Distinct (socket, core) pairs among the online CPUs.
    pub cores: usize,
    /// Largest number of threads seen on one core.
    pub threads_per_core: usize,
    /// Each online CPU.
    pub cpus: Vec<HostCpu>,
}

/// Parse a kernel CPU list (`0-3,8-11`).
pub fn parse_kernel_cpulist(text: &str) -> Result<CpuSet, String> {
    if text.contains('^') {
        return Err("'^' is not valid in a kernel CPU list".to_string());
    }
    parse_cpu_spec(text).map_err(|e| e.to_string())
}

/// The online CPUs.
pub fn online_cpus(root: &SysRoot) -> Result<CpuSet, CpuError> {
    let online = root
        .read_parsed(ONLINE, parse_kernel_cpulist)
        .map_err(CpuError::Online)?;
    if online.is_empty() {
        return Err(CpuError::NoneOnline {
            path: root.path(ONLINE).display().to_string(),
        });
    }
    Ok(online)
}

/// Read the CPUs; problems with single optional files become `warnings`.
pub fn read_cpus(root: &SysRoot, warnings: &mut Vec<String>) -> Result<CpuInventory, CpuError> {
    let online = online_cpus(root)?;
    let mut cpus = Vec::with_capacity(online.len());
    for &id in &online {
        cpus.push(read_cpu(root, id, warnings));
    }
    let info = read_cpuinfo(root, warnings);
    let sockets: CpuSet = cpus.iter().filter_map(|c| c.socket).collect();
    let cores: std::collections::BTreeSet<(Option<u32>, u32)> = cpus
        .iter()
        .filter_map(|c| c.core.map(|core| (c.socket, core)))
        .collect();
    let threads_per_core = cpus
        .iter()
        .map(|c| c.siblings.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let traits = cpu_trait_names(info.flags.iter().map(String::as_str));
    Ok(CpuInventory {
        model: info.model,
        vendor: info.vendor,
        flags: info.flags,
        traits,
        online_spec: format_cpu_spec(&online),
        online,
        sockets: sockets.len(),
        cores: cores.len(),
        threads_per_core,
        cpus,
    })
}

fn read_cpu(root: &SysRoot, id: u32, warnings: &mut Vec<String>) -> HostCpu {
    let dir = format!("sys/devices/system/cpu/cpu{id}");
    let mut optional_u32 = |file: &str| -> Option<u32> {
        let rel = format!("{dir}/topology/{file}");
        match root.read_parsed(&rel, |s| {
            s.parse::<u32>()
                .map_err(|_| "not a CPU topology id".to_string())
        }) {
            Ok(v) => Some(v),
            Err(e) => {
                warnings.push(format!("CPU {id}: {e}"));
                None
            }
        }
    };
    let socket = optional_u32("physical_package_id");
    let core = optional_u32("core_id");
    let siblings = match root.read_parsed(
        &format!("{dir}/topology/thread_siblings_list"),
        parse_kernel_cpulist,
    ) {
        Ok(s) if s.contains(&id) => s,
        Ok(s) => {
            warnings.push(format!(
                "CPU {id}: thread_siblings_list {:?} does not contain the CPU itself; using {{{id}}}",
                format_cpu_spec(&s)
            ));
            CpuSet::from([id])
        }
        Err(e) => {
            warnings.push(format!("CPU {id}: {e}"));
            CpuSet::from([id])
        }
    };
    let numa_node = root
        .list(&dir)
        .ok()
        .and_then(|names| names.iter().find_map(|n| node_number(n)));
    HostCpu {
        id,
        socket,
        core,
        siblings,
        numa_node,
    }
}

/// `node3` -> 3.
pub fn node_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("node")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What `/proc/cpuinfo` says about the first CPU.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub flags: Vec<String>,
}

/// Parse `/proc/cpuinfo` text (the first processor block).
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    for line in text.lines() {
        if line.trim().is_empty() && (info.model.is_some() || !info.flags.is_empty()) {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "model name" if info.model.is_none() && !value.is_empty() => {
                info.model = Some(value.to_string())
            }
            "vendor_id" if info.vendor.is_none() && !value.is_empty() => {
                info.vendor = Some(value.to_string())
            }
            "flags" | "Features" if info.flags.is_empty() => {
                let mut flags: Vec<String> = value.split_whitespace().map(str::to_string).collect();
                flags.sort();
                flags.dedup();
                info.flags = flags;
            }
            _ => {}
        }
    }
    info
}

fn read_cpuinfo(root: &SysRoot, warnings: &mut Vec<String>) -> CpuInfo {
    match root.read("proc/cpuinfo") {
        Ok(text) => {
            let info = parse_cpuinfo(&text);
            if info.flags.is_empty() {
                warnings.push(format!(
                    "{}: no CPU flags found; no CPU traits reported",
                    root.path("proc/cpuinfo").display()
                ));
            }
            info
        }
        Err(e) => {
            warnings.push(format!("{e}; no CPU model or traits reported"));
            CpuInfo::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_first_block() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: sse avx2 sse\n\nprocessor\t: 1\nmodel name\t: Other\nflags\t: mmx\n";
        let info = parse_cpuinfo(text);
        assert_eq!(info.model.as_deref(), Some("Xeon"));
        assert_eq!(info.vendor.as_deref(), Some("GenuineIntel"));
        assert_eq!(info.flags, ["avx2", "sse"]);
        assert_eq!(parse_cpuinfo("garbage\n\0\u{fffd}::\n"), CpuInfo::default());
    }

    #[test]
    fn node_names() {
        assert_eq!(node_number("node12"), Some(12));
        assert_eq!(node_number("node"), None);
        assert_eq!(node_number("nodex"), None);
        assert_eq!(node_number("cpu1"), None);
    }

    #[test]
    fn kernel_list_rejects_caret() {
        assert!(parse_kernel_cpulist("0-3,^1").is_err());
        assert_eq!(
            parse_kernel_cpulist("0-1,4").unwrap(),
            CpuSet::from([0, 1, 4])
        );
    }
}
