//! The VM spec: a typed JSON description of one VM, validated before any KVM call.
//!
//! The JSON Schema is `api-schemas/vm-spec.schema.json`; [`VmSpec::validate`] checks
//! everything the schema cannot (cross-field rules, files, host CPUs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest vCPU count: the MP table holds 8-bit APIC ids and 0xff is broadcast.
pub const MAX_VCPUS: u32 = 254;
/// Smallest guest memory accepted, in MiB.
pub const MIN_MEMORY_MIB: u64 = 2;
/// Largest guest memory accepted, in MiB (1 TiB).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// Longest kernel command line, in bytes (Linux's COMMAND_LINE_SIZE on x86).
pub const MAX_CMDLINE: usize = 2048;
/// Smallest serial log bound, in bytes.
pub const MIN_SERIAL_LOG_BYTES: u64 = 4096;
/// Default serial log bound, in bytes.
pub const DEFAULT_SERIAL_LOG_BYTES: u64 = 1 << 20;

/// Errors found in a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file could not be read.
    #[error("cannot read spec {path}: {source}")]
    Read {
        /// Spec file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The spec is not valid JSON or does not match the schema's shape.
    #[error("invalid spec JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A field has a bad value.
    #[error("invalid spec: {field}: {reason}")]
    Invalid {
        /// Dotted path of the field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// One VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    /// Name used in logs (e.g. the instance name).
    #[serde(default)]
    pub name: Option<String>,
    /// vCPUs and their topology.
    pub cpus: CpuSpec,
    /// Guest RAM.
    pub memory: MemorySpec,
    /// Guest NUMA cells; empty means one cell with everything, placed by the host.
    #[serde(default)]
    pub numa: Vec<NumaCell>,
    /// What to boot.
    pub boot: BootSpec,
    /// Serial console (COM1).
    #[serde(default)]
    pub serial: SerialSpec,
    /// Host CPU pinning.
    #[serde(default)]
    pub pinning: Option<PinningSpec>,
    /// Seccomp action for syscalls outside a thread's filter (default: kill the process).
    #[serde(default)]
    pub seccomp: crate::vmm::jail::SeccompMode,
    /// Unix socket of the control API; none means no control socket.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
    /// What a guest reset does.
    #[serde(default)]
    pub on_reset: OnReset,
    /// virtio-blk disks (PCI slots 1.. in this order, before the NICs).
    #[serde(default)]
    pub disks: Vec<DiskSpec>,
    /// virtio-net NICs (PCI slots after the disks).
    #[serde(default)]
    pub nics: Vec<NicSpec>,
}

/// Most virtio devices (disks + NICs): PCI bus 0 has 31 device slots after the host bridge.
pub const MAX_VIRTIO_DEVICES: usize = 31;

/// A virtio-blk disk backed by a raw image file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// Raw image file (its size, rounded down to 512 bytes, is the capacity).
    pub path: PathBuf,
    /// Offer VIRTIO_BLK_F_RO and refuse writes.
    #[serde(default)]
    pub read_only: bool,
    /// GET_ID answer (at most 20 printable ASCII bytes); default `novakvm-disk<N>`.
    #[serde(default)]
    pub serial: Option<String>,
}

/// A virtio-net NIC on a tap device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSpec {
    /// Tap interface name: opened if it exists, created otherwise.
    pub tap: String,
    /// Unicast MAC address `aa:bb:cc:dd:ee:ff` (VIRTIO_NET_F_MAC).
    pub mac: String,
}

/// vCPU count and topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSpec {
    /// Number of vCPUs.
    pub count: u32,
    /// Topology; sockets * cores * threads must equal `count`. Default: one socket, `count` cores.
    #[serde(default)]
    pub topology: Option<Topology>,
}

/// CPU topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Sockets.
    pub sockets: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

/// Guest RAM size and backing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySpec {
    /// Size in MiB.
    pub size_mib: u64,
    /// Backing pages.
    #[serde(default)]
    pub backing: Backing,
    /// Fault in all of guest RAM before the vCPUs start.
    #[serde(default)]
    pub prealloc: bool,
}

/// What backs guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backing {
    /// Ordinary anonymous memory.
    #[default]
    Anonymous,
    /// hugetlb 2 MiB pages.
    #[serde(rename = "hugepages_2m")]
    Hugepages2m,
    /// hugetlb 1 GiB pages.
    #[serde(rename = "hugepages_1g")]
    Hugepages1g,
}

impl Backing {
    /// Page size in bytes.
    pub fn page_size(self) -> u64 {
        match self {
            Backing::Anonymous => 4096,
            Backing::Hugepages2m => 2 << 20,
            Backing::Hugepages1g => 1 << 30,
        }
    }
}

/// A guest NUMA cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumaCell {
    /// vCPU indexes in the cell.
    pub cpus: Vec<u32>,
    /// RAM of the cell in MiB (cells are laid out in order in guest physical memory).
    pub memory_mib: u64,
    /// Host NUMA node the cell's memory is bound to (mbind); none means no binding.
    #[serde(default)]
    pub host_node: Option<u32>,
}

/// What to boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSpec {
    /// Kernel: bzImage, ELF vmlinux, or a PVH ELF.
    pub kernel: PathBuf,
    /// Initial ramdisk.
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[serde(default)]
    pub cmdline: String,
}

/// Serial console output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSpec {
    /// Log file; none means standard output.
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    /// Bound of the log file in bytes: it keeps (at least three quarters of) the last bytes.
    #[serde(default = "default_log_bytes")]
    pub log_max_bytes: u64,
}

fn default_log_bytes() -> u64 {
    DEFAULT_SERIAL_LOG_BYTES
}

impl Default for SerialSpec {
    fn default() -> Self {
        SerialSpec {
            log_path: None,
            log_max_bytes: DEFAULT_SERIAL_LOG_BYTES,
        }
    }
}

/// Host CPU pinning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinningSpec {
    /// vCPU -> host CPU.
    #[serde(default)]
    pub vcpus: Vec<VcpuPin>,
    /// Host CPUs for every other VMM thread; empty means unrestricted.
    #[serde(default)]
    pub emulator: Vec<u32>,
}

/// One vCPU pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VcpuPin {
    /// vCPU index.
    pub vcpu: u32,
    /// Host CPU.
    pub host_cpu: u32,
}

/// What a guest-initiated reset does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReset {
    /// Reboot the guest in the same process.
    Restart,
    /// End the process with the "guest reset" exit code.
    #[default]
    Exit,
}

impl VmSpec {
    /// Read and validate a spec file.
    pub fn from_file(path: &Path) -> Result<VmSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Parse and validate a spec.
    pub fn from_json(text: &str) -> Result<VmSpec, SpecError> {
        let spec: VmSpec = serde_json::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// The topology, defaulted.
    pub fn topology(&self) -> Topology {
        self.cpus.topology.unwrap_or(Topology {
            sockets: 1,
            cores: self.cpus.count,
            threads: 1,
        })
    }

    /// Host CPU of a vCPU, if pinned.
    pub fn vcpu_pin(&self, vcpu: u32) -> Option<u32> {
        self.pinning
            .as_ref()?
            .vcpus
            .iter()
            .find(|p| p.vcpu == vcpu)
            .map(|p| p.host_cpu)
    }

    /// NUMA cells, defaulted to one unbound cell.
    pub fn cells(&self) -> Vec<NumaCell> {
        if self.numa.is_empty() {
            vec![NumaCell {
                cpus: (0..self.cpus.count).collect(),
                memory_mib: self.memory.size_mib,
                host_node: None,
            }]
        } else {
            self.numa.clone()
        }
    }

    /// Check every rule; touches only the filesystem (never KVM).
    pub fn validate(&self) -> Result<(), SpecError> {
        let n = self.cpus.count;
        if n == 0 || n > MAX_VCPUS {
            return Err(invalid(
                "cpus.count",
                format!("{n} is not in 1..={MAX_VCPUS}"),
            ));
        }
        if let Some(t) = self.cpus.topology {
            if t.sockets == 0 || t.cores == 0 || t.threads == 0 {
                return Err(invalid(
                    "cpus.topology",
                    "sockets, cores and threads must be >= 1",
                ));
            }
            let prod = u64::from(t.sockets)
                .saturating_mul(u64::from(t.cores))
                .saturating_mul(u64::from(t.threads));
            if prod != u64::from(n) {
                return Err(invalid(
                    "cpus.topology",
                    format!("sockets*cores*threads = {prod} but cpus.count = {n}"),
                ));
            }
        }
        let m = &self.memory;
        if m.size_mib < MIN_MEMORY_MIB || m.size_mib > MAX_MEMORY_MIB {
            return Err(invalid(
                "memory.size_mib",
                format!(
                    "{} is not in {MIN_MEMORY_MIB}..={MAX_MEMORY_MIB}",
                    m.size_mib
                ),
            ));
        }
        let page_mib = m.backing.page_size() >> 20;
        if page_mib > 0 && m.size_mib % page_mib != 0 {
            return Err(invalid(
                "memory.size_mib",
                format!(
                    "{} MiB is not a multiple of the {page_mib} MiB page size",
                    m.size_mib
                ),
            ));
        }
        self.validate_numa(page_mib)?;
        self.validate_boot()?;
        if self.serial.log_max_bytes < MIN_SERIAL_LOG_BYTES {
            return Err(invalid(
                "serial.log_max_bytes",
                format!("must be at least {MIN_SERIAL_LOG_BYTES}"),
            ));
        }
        if let Some(p) = &self.serial.log_path {
            check_parent_dir("serial.log_path", p)?;
        }
        if let Some(p) = &self.control_socket {
            // sun_path is 108 bytes including the terminating NUL.
            if p.as_os_str().len() >= 108 {
                return Err(invalid("control_socket", "path longer than 107 bytes"));
            }
            check_parent_dir("control_socket", p)?;
        }
        self.validate_devices()?;
        self.validate_pinning()
    }

    fn validate_devices(&self) -> Result<(), SpecError> {
        use crate::vmm::devices::virtio::{net::parse_mac, tap::valid_name};
        if self.disks.len() + self.nics.len() > MAX_VIRTIO_DEVICES {
            return Err(invalid(
                "disks",
                format!("at most {MAX_VIRTIO_DEVICES} disks and NICs together"),
            ));
        }
        for d in &self.disks {
            check_file("disks.path", &d.path)?;
            if let Some(s) = &d.serial {
                if s.len() > 20 || !s.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid(
                        "disks.serial",
                        "at most 20 printable ASCII bytes without spaces",
                    ));
                }
            }
        }
        let mut taps = BTreeSet::new();
        let mut macs = BTreeSet::new();
        for n in &self.nics {
            if !valid_name(&n.tap) {
                return Err(invalid(
                    "nics.tap",
                    format!(
                        "{:?} is not an interface name (1-15 of [A-Za-z0-9._-])",
                        n.tap
                    ),
                ));
            }
            if !taps.insert(n.tap.clone()) {
                return Err(invalid("nics.tap", format!("tap {} used twice", n.tap)));
            }
            let Some(mac) = parse_mac(&n.mac) else {
                return Err(invalid(
                    "nics.mac",
                    format!("{:?} is not aa:bb:cc:dd:ee:ff", n.mac),
                ));
            };
            if mac[0] & 1 != 0 || mac == [0; 6] {
                return Err(invalid(
                    "nics.mac",
                    format!("{} is not a unicast address", n.mac),
                ));
            }
            if !macs.insert(mac) {
                return Err(invalid("nics.mac", format!("MAC {} used twice", n.mac)));
            }
        }
        Ok(())
    }

    fn validate_numa(&self, page_mib: u64) -> Result<(), SpecError> {
        if self.numa.is_empty() {
            return Ok(());
        }
        let mut seen = BTreeSet::new();
        let mut total = 0u64;
        for cell in &self.numa {
            if cell.memory_mib == 0 {
                return Err(invalid("numa.memory_mib", "a cell needs memory"));
            }
            if page_mib > 0 && cell.memory_mib % page_mib != 0 {
                return Err(invalid(
                    "numa.memory_mib",
                    format!("{} MiB is not a multiple of the page size", cell.memory_mib),
                ));
            }
            total = total.saturating_add(cell.memory_mib);
            for &c in &cell.cpus {
                if c >= self.cpus.count {
                    return Err(invalid("numa.cpus", format!("vCPU {c} does not exist")));
                }
                if !seen.insert(c) {
                    return Err(invalid("numa.cpus", format!("vCPU {c} is in two cells")));
                }
            }
            if let Some(node) = cell.host_node {
                if !Path::new(&format!("/sys/devices/system/node/node{node}")).exists() {
                    return Err(invalid(
                        "numa.host_node",
                        format!("host NUMA node {node} does not exist"),
                    ));
                }
            }
        }
        if seen.len() != self.cpus.count as usize {
            return Err(invalid(
                "numa.cpus",
                "every vCPU must be in exactly one cell",
            ));
        }
        if total != self.memory.size_mib {
            return Err(invalid(
                "numa.memory_mib",
                format!(
                    "cells add up to {total} MiB but memory.size_mib = {}",
                    self.memory.size_mib
                ),
            ));
        }
        Ok(())
    }

    fn validate_boot(&self) -> Result<(), SpecError> {
        check_file("boot.kernel", &self.boot.kernel)?;
        if let Some(i) = &self.boot.initrd {
            check_file("boot.initrd", i)?;
        }
        let c = &self.boot.cmdline;
        if c.len() >= MAX_CMDLINE {
            return Err(invalid(
                "boot.cmdline",
                format!("longer than {} bytes", MAX_CMDLINE - 1),
            ));
        }
        if c.bytes()
            .any(|b| b == 0 || !(b == b' ' || b.is_ascii_graphic()))
        {
            return Err(invalid(
                "boot.cmdline",
                "only printable ASCII and spaces are allowed",
            ));
        }
        Ok(())
    }

    fn validate_pinning(&self) -> Result<(), SpecError> {
        let Some(p) = &self.pinning else {
            return Ok(());
        };
        let host = host_cpus();
        let mut seen = BTreeSet::new();
        for pin in &p.vcpus {
            if pin.vcpu >= self.cpus.count {
                return Err(invalid(
                    "pinning.vcpus",
                    format!("vCPU {} does not exist", pin.vcpu),
                ));
            }
            if !seen.insert(pin.vcpu) {
                return Err(invalid(
                    "pinning.vcpus",
                    format!("vCPU {} pinned twice", pin.vcpu),
                ));
            }
            if !host.contains(&pin.host_cpu) {
                return Err(invalid(
                    "pinning.vcpus",
                    format!(
                        "host CPU {} is not available (have {:?})",
                        pin.host_cpu, host
                    ),
                ));
            }
        }
        for c in &p.emulator {
            if !host.contains(c) {
                return Err(invalid(
                    "pinning.emulator",
                    format!("host CPU {c} is not available (have {host:?})"),
                ));
            }
        }
        Ok(())
    }
}

/// Host CPUs this process may run on.
pub fn host_cpus() -> BTreeSet<u32> {
    crate::vmm::affinity::allowed_cpus().unwrap_or_default()
}

fn check_file(field: &'static str, p: &Path) -> Result<(), SpecError> {
    match std::fs::metadata(p) {
        Ok(md) if md.is_file() => Ok(()),
        Ok(_) => Err(invalid(
            field,
            format!("{} is not a regular file", p.display()),
        )),
        Err(e) => Err(invalid(field, format!("{}: {e}", p.display()))),
    }
}

fn check_parent_dir(field: &'static str, p: &Path) -> Result<(), SpecError> {
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if p.file_name().is_none() {
        return Err(invalid(field, format!("{} has no file name", p.display())));
    }
    if !parent.is_dir() {
        return Err(invalid(
            field,
            format!("directory {} does not exist", parent.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(kernel: &Path) -> serde_json::Value {
        serde_json::json!({
            "cpus": {"count": 2, "topology": {"sockets": 1, "cores": 2, "threads": 1}},
            "memory": {"size_mib": 64},
            "boot": {"kernel": kernel, "cmdline": "console=ttyS0"},
        })
    }

    fn check(v: serde_json::Value) -> Result<VmSpec, SpecError> {
        VmSpec::from_json(&v.to_string())
    }

    #[test]
    fn good_spec_parses() {
        let k = tempfile::NamedTempFile::new().unwrap();
        let s = check(base(k.path())).unwrap();
        assert_eq!(s.topology().cores, 2);
        assert_eq!(s.on_reset, OnReset::Exit);
        assert_eq!(s.cells()[0].memory_mib, 64);
    }

    #[test]
    fn bad_specs_rejected() {
        let k = tempfile::NamedTempFile::new().unwrap();
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("cpus.count", serde_json::json!({"cpus": {"count": 0}})),
            ("cpus.count", serde_json::json!({"cpus": {"count": 300}})),
            (
                "cpus.topology",
                serde_json::json!({"cpus": {"count": 2, "topology": {"sockets": 2, "cores": 2, "threads": 1}}}),
            ),
            (
                "memory.size_mib",
                serde_json::json!({"memory": {"size_mib": 1}}),
            ),
            (
                "memory.size_mib",
                serde_json::json!({"memory": {"size_mib": 3, "backing": "hugepages_2m"}}),
            ),
            (
                "boot.kernel",
                serde_json::json!({"boot": {"kernel": "/nonexistent/k"}}),
            ),
            (
                "boot.kernel",
                serde_json::json!({"boot": {"kernel": "/tmp"}}),
            ),
            (
                "serial.log_max_bytes",
                serde_json::json!({"serial": {"log_max_bytes": 10}}),
            ),
            (
                "serial.log_path",
                serde_json::json!({"serial": {"log_path": "/nonexistent/x.log"}}),
            ),
            (
                "numa.memory_mib",
                serde_json::json!({"numa": [{"cpus": [0, 1], "memory_mib": 32}]}),
            ),
            (
                "numa.cpus",
                serde_json::json!({"numa": [{"cpus": [0], "memory_mib": 64}]}),
            ),
            (
                "numa.host_node",
                serde_json::json!({"numa": [{"cpus": [0, 1], "memory_mib": 64, "host_node": 99}]}),
            ),
            (
                "pinning.vcpus",
                serde_json::json!({"pinning": {"vcpus": [{"vcpu": 5, "host_cpu": 0}]}}),
            ),
            (
                "pinning.vcpus",
                serde_json::json!({"pinning": {"vcpus": [{"vcpu": 0, "host_cpu": 4096}]}}),
            ),
            (
                "pinning.emulator",
                serde_json::json!({"pinning": {"emulator": [4096]}}),
            ),
            (
                "control_socket",
                serde_json::json!({"control_socket": "/x/".to_string() + &"a".repeat(120)}),
            ),
        ];
        for (field, patch) in cases {
            let mut v = base(k.path());
            merge(&mut v, patch);
            match check(v.clone()) {
                Err(SpecError::Invalid { field: f, .. }) => assert_eq!(f, field, "{v}"),
                other => panic!("{v} gave {other:?}"),
            }
        }
        let mut v = base(k.path());
        v["boot"]["cmdline"] = serde_json::json!("a\u{1}b");
        assert!(check(v).is_err());
        let mut v = base(k.path());
        v["bogus"] = serde_json::json!(1);
        assert!(matches!(check(v), Err(SpecError::Json(_))));
        assert!(matches!(VmSpec::from_json("{"), Err(SpecError::Json(_))));
        assert!(matches!(VmSpec::from_json("[]"), Err(SpecError::Json(_))));
    }

    fn merge(v: &mut serde_json::Value, patch: serde_json::Value) {
        if let (Some(o), serde_json::Value::Object(p)) = (v.as_object_mut(), patch) {
            for (k, pv) in p {
                match o.get_mut(&k) {
                    Some(cur @ serde_json::Value::Object(_)) if pv.is_object() => merge(cur, pv),
                    _ => {
                        o.insert(k, pv);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn from_json_never_panics(text in ".{0,300}") {
            let _ = VmSpec::from_json(&text);
        }

        #[test]
        fn numbers_never_panic(count in 1u32..300, mib in proptest::num::u64::ANY,
                               s in proptest::num::u32::ANY, c in proptest::num::u32::ANY,
                               t in proptest::num::u32::ANY) {
            let v = serde_json::json!({
                "cpus": {"count": count, "topology": {"sockets": s, "cores": c, "threads": t}},
                "memory": {"size_mib": mib, "backing": "hugepages_1g"},
                "boot": {"kernel": "/bin/sh"},
            });
            let _ = VmSpec::from_json(&v.to_string());
        }
    }
}
