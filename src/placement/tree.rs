//! The provider tree nova-compute reports for one compute node: one root
//! provider (uuid = compute node uuid, name = hypervisor hostname) with the
//! inventories and traits nova's libvirt driver and resource tracker compute
//! (`LibvirtDriver.update_provider_tree`, `ResourceTracker._get_traits`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{PlacementError, Result};
use crate::config::DefaultOptions;

/// Resource class names.
pub const VCPU: &str = "VCPU";
/// Dedicated (pinned) host CPUs.
pub const PCPU: &str = "PCPU";
/// Memory in MiB.
pub const MEMORY_MB: &str = "MEMORY_MB";
/// Local disk in GiB.
pub const DISK_GB: &str = "DISK_GB";

/// Always set on a compute node's root provider.
pub const COMPUTE_NODE: &str = "COMPUTE_NODE";
/// Required by the scheduler on the root provider from service version 73.
pub const OWNER_NOVA: &str = "OWNER_NOVA";
/// Set while the nova-compute service is disabled.
pub const COMPUTE_STATUS_DISABLED: &str = "COMPUTE_STATUS_DISABLED";
/// Set when the host has SMT siblings.
pub const HW_CPU_HYPERTHREADING: &str = "HW_CPU_HYPERTHREADING";

/// What the agent knows about the host, filled from host inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostResources {
    /// The compute node's uuid: the root provider's uuid.
    pub node_uuid: Uuid,
    /// `ComputeNode.hypervisor_hostname`: the root provider's name.
    pub hypervisor_hostname: String,
    /// Host CPUs for floating guests (`[compute] cpu_shared_set`, or all).
    pub shared_cpus: Vec<u32>,
    /// Host CPUs for pinned guests (`[compute] cpu_dedicated_set`).
    pub dedicated_cpus: Vec<u32>,
    /// Total host memory in MiB.
    pub memory_mb: u64,
    /// Total local instance disk in GiB.
    pub disk_gb: u64,
    /// CPU feature flags, as /proc/cpuinfo or libvirt names them.
    pub cpu_flags: Vec<String>,
    /// Whether the host has SMT (hyperthreading) siblings.
    pub smt: bool,
    /// Host architecture as `uname -m` writes it (`x86_64`), if known.
    pub arch: Option<String>,
}

/// One inventory record, field order as nova sends it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub total: u64,
    pub min_unit: u64,
    pub max_unit: u64,
    pub step_size: u64,
    pub allocation_ratio: f64,
    pub reserved: u64,
}

impl Inventory {
    /// Same record, allowing for the float precision Placement's database
    /// keeps for `allocation_ratio`.
    pub fn same_as(&self, other: &Inventory) -> bool {
        self.total == other.total
            && self.min_unit == other.min_unit
            && self.max_unit == other.max_unit
            && self.step_size == other.step_size
            && self.reserved == other.reserved
            && (self.allocation_ratio - other.allocation_ratio).abs()
                <= 1e-6 * self.allocation_ratio.abs().max(1.0)
    }
}

impl Inventory {
    /// What can be allocated: `(total - reserved) * allocation_ratio`, as
    /// Placement computes it.
    pub fn capacity(&self) -> f64 {
        (self.total.saturating_sub(self.reserved)) as f64 * self.allocation_ratio
    }
}

/// Whether two inventory sets are the same (see [`Inventory::same_as`]).
pub fn inventories_equal(a: &BTreeMap<String, Inventory>, b: &BTreeMap<String, Inventory>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(rc, inv)| b.get(rc).is_some_and(|o| inv.same_as(o)))
}

/// The nova.conf options that shape inventories (`[DEFAULT]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSettings {
    pub reserved_host_cpus: u32,
    pub reserved_host_memory_mb: u64,
    pub reserved_host_disk_mb: u64,
    pub cpu_allocation_ratio: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_allocation_ratio: Option<f64>,
    pub initial_cpu_allocation_ratio: f64,
    pub initial_ram_allocation_ratio: f64,
    pub initial_disk_allocation_ratio: f64,
}

impl Default for ResourceSettings {
    fn default() -> Self {
        Self::from_config(&DefaultOptions::default())
    }
}

impl ResourceSettings {
    /// Take the options from `[DEFAULT]`.
    pub fn from_config(d: &DefaultOptions) -> Self {
        Self {
            reserved_host_cpus: d.reserved_host_cpus,
            reserved_host_memory_mb: d.reserved_host_memory_mb,
            reserved_host_disk_mb: d.reserved_host_disk_mb,
            cpu_allocation_ratio: d.cpu_allocation_ratio,
            ram_allocation_ratio: d.ram_allocation_ratio,
            disk_allocation_ratio: d.disk_allocation_ratio,
            initial_cpu_allocation_ratio: d.initial_cpu_allocation_ratio,
            initial_ram_allocation_ratio: d.initial_ram_allocation_ratio,
            initial_disk_allocation_ratio: d.initial_disk_allocation_ratio,
        }
    }
}

/// `reserved_host_disk_mb` in GiB, rounded up (nova's `convert_mb_to_ceil_gb`).
pub fn reserved_disk_gb(reserved_host_disk_mb: u64) -> u64 {
    reserved_host_disk_mb.div_ceil(1024)
}

/// nova's `ComputeDriver._get_allocation_ratios`: `[DEFAULT]
/// *_allocation_ratio` if set (and not 0); else the `initial_*` value when the
/// class has no inventory yet; else keep the ratio already in Placement (an
/// operator may have changed it there).
fn ratio(conf: Option<f64>, initial: f64, rc: &str, current: &BTreeMap<String, Inventory>) -> f64 {
    match conf {
        Some(r) if r != 0.0 => r,
        _ => current
            .get(rc)
            .map(|inv| inv.allocation_ratio)
            .unwrap_or(initial),
    }
}

fn record(total: u64, ratio: f64, reserved: u64) -> Inventory {
    Inventory {
        total,
        min_unit: 1,
        max_unit: total,
        step_size: 1,
        allocation_ratio: ratio,
        reserved,
    }
}

fn check_ratio(name: &str, r: f64) -> Result<()> {
    if r.is_finite() && r > 0.0 {
        Ok(())
    } else {
        Err(PlacementError::InvalidInput(format!(
            "{name} allocation ratio {r} is not a positive number"
        )))
    }
}

/// The root provider's inventories as nova's libvirt driver computes them.
/// `current` is what Placement has now (for allocation ratios). A class whose
/// total is 0 is left out (Placement refuses total = 0).
pub fn inventories(
    host: &HostResources,
    settings: &ResourceSettings,
    current: &BTreeMap<String, Inventory>,
) -> Result<BTreeMap<String, Inventory>> {
    let overlap: Vec<u32> = host
        .shared_cpus
        .iter()
        .filter(|c| host.dedicated_cpus.contains(c))
        .copied()
        .collect();
    if !overlap.is_empty() {
        return Err(PlacementError::InvalidInput(format!(
            "host CPUs {overlap:?} are in both the shared and the dedicated set"
        )));
    }
    let vcpus = unique_count(&host.shared_cpus);
    let pcpus = unique_count(&host.dedicated_cpus);
    let mut out = BTreeMap::new();
    if host.memory_mb > 0 {
        let r = ratio(
            settings.ram_allocation_ratio,
            settings.initial_ram_allocation_ratio,
            MEMORY_MB,
            current,
        );
        check_ratio("ram", r)?;
        out.insert(
            MEMORY_MB.to_string(),
            record(host.memory_mb, r, settings.reserved_host_memory_mb),
        );
    }
    if vcpus > 0 {
        let r = ratio(
            settings.cpu_allocation_ratio,
            settings.initial_cpu_allocation_ratio,
            VCPU,
            current,
        );
        check_ratio("cpu", r)?;
        out.insert(
            VCPU.to_string(),
            record(vcpus, r, u64::from(settings.reserved_host_cpus)),
        );
    }
    if pcpus > 0 {
        out.insert(PCPU.to_string(), record(pcpus, 1.0, 0));
    }
    if host.disk_gb > 0 {
        let r = ratio(
            settings.disk_allocation_ratio,
            settings.initial_disk_allocation_ratio,
            DISK_GB,
            current,
        );
        check_ratio("disk", r)?;
        out.insert(
            DISK_GB.to_string(),
            record(
                host.disk_gb,
                r,
                reserved_disk_gb(settings.reserved_host_disk_mb),
            ),
        );
    }
    for (rc, inv) in &out {
        if inv.reserved > inv.total {
            return Err(PlacementError::InvalidInput(format!(
                "{rc}: reserved {} is more than the total {} (check reserved_host_* in [DEFAULT])",
                inv.reserved, inv.total
            )));
        }
    }
    Ok(out)
}

fn unique_count(cpus: &[u32]) -> u64 {
    cpus.iter().collect::<BTreeSet<_>>().len() as u64
}

pub use crate::virt::capabilities::{capability_traits, Capabilities};

/// nova's `CPU_TRAITS_MAPPING` (libvirt feature names), with the names
/// /proc/cpuinfo uses where they differ.
const CPU_TRAITS: &[(&str, &[&str])] = &[
    ("HW_CPU_X86_3DNOW", &["3dnow"]),
    ("HW_CPU_X86_ABM", &["abm"]),
    ("HW_CPU_X86_AESNI", &["aes"]),
    ("HW_CPU_X86_AMXBF16", &["amx-bf16", "amx_bf16"]),
    ("HW_CPU_X86_AMXINT8", &["amx-int8", "amx_int8"]),
    ("HW_CPU_X86_AMXTILE", &["amx-tile", "amx_tile"]),
    ("HW_CPU_X86_AVX", &["avx"]),
    ("HW_CPU_X86_AVX2", &["avx2"]),
    ("HW_CPU_X86_AVX512BW", &["avx512bw"]),
    ("HW_CPU_X86_AVX512CD", &["avx512cd"]),
    ("HW_CPU_X86_AVX512DQ", &["avx512dq"]),
    ("HW_CPU_X86_AVX512ER", &["avx512er"]),
    ("HW_CPU_X86_AVX512F", &["avx512f"]),
    ("HW_CPU_X86_AVX512PF", &["avx512pf"]),
    ("HW_CPU_X86_AVX512VL", &["avx512vl"]),
    ("HW_CPU_X86_AVX512VNNI", &["avx512vnni", "avx512_vnni"]),
    ("HW_CPU_X86_AVX512VBMI", &["avx512vbmi"]),
    ("HW_CPU_X86_AVX512IFMA", &["avx512ifma"]),
    ("HW_CPU_X86_AVX512VBMI2", &["avx512vbmi2", "avx512_vbmi2"]),
    (
        "HW_CPU_X86_AVX512BITALG",
        &["avx512bitalg", "avx512_bitalg"],
    ),
    ("HW_CPU_X86_AVX512VAES", &["vaes"]),
    ("HW_CPU_X86_AVX512GFNI", &["gfni"]),
    ("HW_CPU_X86_AVX512VPCLMULQDQ", &["vpclmulqdq"]),
    (
        "HW_CPU_X86_AVX512VPOPCNTDQ",
        &["avx512-vpopcntdq", "avx512_vpopcntdq"],
    ),
    ("HW_CPU_X86_BMI", &["bmi1"]),
    ("HW_CPU_X86_BMI2", &["bmi2"]),
    ("HW_CPU_X86_CLMUL", &["pclmuldq", "pclmulqdq"]),
    ("HW_CPU_X86_F16C", &["f16c"]),
    ("HW_CPU_X86_FMA3", &["fma"]),
    ("HW_CPU_X86_FMA4", &["fma4"]),
    ("HW_CPU_X86_MMX", &["mmx"]),
    ("HW_CPU_X86_MPX", &["mpx"]),
    ("HW_CPU_X86_SHA", &["sha-ni", "sha_ni"]),
    ("HW_CPU_X86_SSE", &["sse"]),
    ("HW_CPU_X86_SSE2", &["sse2"]),
    ("HW_CPU_X86_SSE3", &["sse3", "pni"]),
    ("HW_CPU_X86_SSE41", &["sse4.1", "sse4_1"]),
    ("HW_CPU_X86_SSE42", &["sse4.2", "sse4_2"]),
    ("HW_CPU_X86_SSE4A", &["sse4a"]),
    ("HW_CPU_X86_SSSE3", &["ssse3"]),
    ("HW_CPU_X86_SVM", &["svm"]),
    ("HW_CPU_X86_AMD_SVM", &["svm"]),
    ("HW_CPU_X86_TBM", &["tbm"]),
    ("HW_CPU_X86_VMX", &["vmx"]),
    ("HW_CPU_X86_INTEL_VMX", &["vmx"]),
    ("HW_CPU_X86_XOP", &["xop"]),
];

/// `HW_ARCH_*` traits os-traits defines.
const ARCH_TRAITS: &[&str] = &[
    "HW_ARCH_ALPHA",
    "HW_ARCH_ARMV6",
    "HW_ARCH_ARMV7",
    "HW_ARCH_ARMV7B",
    "HW_ARCH_AARCH64",
    "HW_ARCH_CRIS",
    "HW_ARCH_I686",
    "HW_ARCH_IA64",
    "HW_ARCH_LM32",
    "HW_ARCH_M68K",
    "HW_ARCH_MICROBLAZE",
    "HW_ARCH_MICROBLAZEEL",
    "HW_ARCH_MIPS",
    "HW_ARCH_MIPSEL",
    "HW_ARCH_MIPS64",
    "HW_ARCH_MIPS64EL",
    "HW_ARCH_OPENRISC",
    "HW_ARCH_PARISC",
    "HW_ARCH_PARISC64",
    "HW_ARCH_PPC",
    "HW_ARCH_PPCLE",
    "HW_ARCH_PPC64",
    "HW_ARCH_PPC64LE",
    "HW_ARCH_PPCEMB",
    "HW_ARCH_S390",
    "HW_ARCH_S390X",
    "HW_ARCH_SH4",
    "HW_ARCH_SH4EB",
    "HW_ARCH_SPARC",
    "HW_ARCH_SPARC64",
    "HW_ARCH_UNICORE32",
    "HW_ARCH_X86_64",
    "HW_ARCH_XTENSA",
    "HW_ARCH_XTENSAEB",
];

/// CPU traits, each with whether the host has it (nova's `_get_cpu_traits`):
/// every `HW_CPU_X86_*` trait of nova's mapping, `HW_CPU_HYPERTHREADING`, and
/// the host's `HW_ARCH_*` trait when os-traits knows the architecture.
pub fn cpu_traits(host: &HostResources) -> Vec<(&'static str, bool)> {
    let flags: BTreeSet<String> = host
        .cpu_flags
        .iter()
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    let mut out: Vec<(&'static str, bool)> = CPU_TRAITS
        .iter()
        .map(|(trait_name, names)| (*trait_name, names.iter().any(|n| flags.contains(*n))))
        .collect();
    out.push((HW_CPU_HYPERTHREADING, host.smt));
    if let Some(arch) = &host.arch {
        let wanted = format!("HW_ARCH_{}", arch.trim().to_ascii_uppercase());
        if let Some(t) = ARCH_TRAITS.iter().find(|t| **t == wanted) {
            out.push((t, true));
        }
    }
    out
}

/// The root provider's traits: start from what Placement has (`current`,
/// which keeps operator-set traits), add the driver-managed traits that are
/// true and remove those that are false, add `COMPUTE_NODE` and `OWNER_NOVA`,
/// and set `COMPUTE_STATUS_DISABLED` in step with the service's disabled flag.
pub fn traits(
    current: &BTreeSet<String>,
    host: &HostResources,
    caps: &Capabilities,
    service_disabled: bool,
) -> BTreeSet<String> {
    let mut out = current.clone();
    for (name, supported) in cpu_traits(host).into_iter().chain(capability_traits(caps)) {
        if supported {
            out.insert(name.to_string());
        } else {
            out.remove(name);
        }
    }
    out.insert(COMPUTE_NODE.to_string());
    out.insert(OWNER_NOVA.to_string());
    if service_disabled {
        out.insert(COMPUTE_STATUS_DISABLED.to_string());
    } else {
        out.remove(COMPUTE_STATUS_DISABLED);
    }
    out
}

/// Check a host description before building a tree from it.
pub fn validate(host: &HostResources) -> Result<()> {
    let name = &host.hypervisor_hostname;
    if name.trim().is_empty() {
        return Err(PlacementError::InvalidInput(
            "hypervisor_hostname is empty".to_string(),
        ));
    }
    // Placement: names up to 200 characters.
    if name.chars().count() > 200 {
        return Err(PlacementError::InvalidInput(format!(
            "hypervisor_hostname is {} characters long; Placement allows 200",
            name.chars().count()
        )));
    }
    if host.node_uuid.is_nil() {
        return Err(PlacementError::InvalidInput(
            "node_uuid is the nil uuid".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostResources {
        HostResources {
            node_uuid: Uuid::from_u128(1),
            hypervisor_hostname: "fake-host-1".to_string(),
            shared_cpus: (0..1000).collect(),
            dedicated_cpus: vec![],
            memory_mb: 800_000,
            disk_gb: 600_000,
            cpu_flags: vec![],
            smt: false,
            arch: None,
        }
    }

    /// The inventories stock nova-compute (fake driver) sent in the capture
    /// (nova-wire placement-http 0007), with nova's defaults.
    #[test]
    fn inventories_match_nova_capture() {
        let inv = inventories(&host(), &ResourceSettings::default(), &BTreeMap::new()).unwrap();
        let body = serde_json::to_value(&inv).unwrap();
        let expected = serde_json::json!({
            "VCPU": {"total": 1000, "min_unit": 1, "max_unit": 1000, "step_size": 1, "allocation_ratio": 4.0, "reserved": 0},
            "MEMORY_MB": {"total": 800000, "min_unit": 1, "max_unit": 800000, "step_size": 1, "allocation_ratio": 1.0, "reserved": 512},
            "DISK_GB": {"total": 600000, "min_unit": 1, "max_unit": 600000, "step_size": 1, "allocation_ratio": 1.0, "reserved": 0}
        });
        assert_eq!(body, expected);
    }

    #[test]
    fn reserved_disk_rounds_up_like_nova() {
        assert_eq!(reserved_disk_gb(0), 0);
        assert_eq!(reserved_disk_gb(1), 1);
        assert_eq!(reserved_disk_gb(1024), 1);
        assert_eq!(reserved_disk_gb(1025), 2);
        assert_eq!(reserved_disk_gb(10 * 1024), 10);
    }

    #[test]
    fn pcpu_and_vcpu_split_and_reserved() {
        let mut h = host();
        h.shared_cpus = vec![0, 1, 2, 3];
        h.dedicated_cpus = vec![4, 5, 6, 7, 8, 9];
        let s = ResourceSettings {
            reserved_host_cpus: 1,
            reserved_host_memory_mb: 2048,
            reserved_host_disk_mb: 1500,
            ..ResourceSettings::default()
        };
        let inv = inventories(&h, &s, &BTreeMap::new()).unwrap();
        assert_eq!(inv[VCPU], record(4, 4.0, 1));
        assert_eq!(inv[PCPU], record(6, 1.0, 0));
        assert_eq!(inv[MEMORY_MB], record(800_000, 1.0, 2048));
        assert_eq!(inv[DISK_GB], record(600_000, 1.0, 2));
    }

    #[test]
    fn zero_totals_are_left_out() {
        let mut h = host();
        h.shared_cpus.clear();
        h.disk_gb = 0;
        let inv = inventories(&h, &ResourceSettings::default(), &BTreeMap::new()).unwrap();
        assert_eq!(inv.keys().collect::<Vec<_>>(), vec![MEMORY_MB]);
        h.memory_mb = 0;
        assert!(
            inventories(&h, &ResourceSettings::default(), &BTreeMap::new())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ratio_precedence_matches_nova() {
        let h = host();
        let mut current = BTreeMap::new();
        current.insert(VCPU.to_string(), record(1000, 8.0, 0));
        // Not set in config: keep what Placement has (an operator changed it).
        let inv = inventories(&h, &ResourceSettings::default(), &current).unwrap();
        assert_eq!(inv[VCPU].allocation_ratio, 8.0);
        // Not set and no inventory yet: initial_*.
        assert_eq!(inv[MEMORY_MB].allocation_ratio, 1.0);
        // Set in config: config wins.
        let s = ResourceSettings {
            cpu_allocation_ratio: Some(16.0),
            ..ResourceSettings::default()
        };
        assert_eq!(
            inventories(&h, &s, &current).unwrap()[VCPU].allocation_ratio,
            16.0
        );
        // 0.0 counts as unset, as in nova (`if conf_ratio:`).
        let s = ResourceSettings {
            cpu_allocation_ratio: Some(0.0),
            ..ResourceSettings::default()
        };
        assert_eq!(
            inventories(&h, &s, &current).unwrap()[VCPU].allocation_ratio,
            8.0
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let mut h = host();
        h.dedicated_cpus = vec![3];
        let e = inventories(&h, &ResourceSettings::default(), &BTreeMap::new()).unwrap_err();
        assert!(
            e.to_string().contains("both the shared and the dedicated"),
            "{e}"
        );
        let h = host();
        let s = ResourceSettings {
            reserved_host_cpus: 5000,
            ..ResourceSettings::default()
        };
        let e = inventories(&h, &s, &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("VCPU: reserved 5000"), "{e}");
        let s = ResourceSettings {
            ram_allocation_ratio: Some(f64::NAN),
            ..ResourceSettings::default()
        };
        assert!(inventories(&h, &s, &BTreeMap::new()).is_err());
        let s = ResourceSettings {
            initial_disk_allocation_ratio: -1.0,
            ..ResourceSettings::default()
        };
        assert!(inventories(&h, &s, &BTreeMap::new()).is_err());
        let mut h = host();
        h.hypervisor_hostname = " ".into();
        assert!(validate(&h).is_err());
        h.hypervisor_hostname = "x".repeat(201);
        assert!(validate(&h).is_err());
        let mut h = host();
        h.node_uuid = Uuid::nil();
        assert!(validate(&h).is_err());
    }

    #[test]
    fn duplicate_cpus_count_once() {
        let mut h = host();
        h.shared_cpus = vec![1, 1, 2];
        let inv = inventories(&h, &ResourceSettings::default(), &BTreeMap::new()).unwrap();
        assert_eq!(inv[VCPU].total, 2);
    }

    #[test]
    fn traits_from_flags_caps_and_service_state() {
        let mut h = host();
        h.cpu_flags = ["sse4_2", "pni", "avx2", "vmx", "pclmulqdq", "sha_ni"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        h.smt = true;
        h.arch = Some("x86_64".into());
        let current: BTreeSet<String> = [
            "CUSTOM_GOLD",
            "HW_CPU_X86_AVX512F",
            "COMPUTE_VOLUME_EXTEND",
            "COMPUTE_STATUS_DISABLED",
            "HW_GPU_API_VULKAN",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let t = traits(&current, &h, &Capabilities::novakvm(), false);
        for want in [
            "CUSTOM_GOLD",
            "HW_GPU_API_VULKAN",
            "COMPUTE_NODE",
            "OWNER_NOVA",
            "COMPUTE_IMAGE_TYPE_RAW",
            "HW_CPU_X86_SSE42",
            "HW_CPU_X86_SSE3",
            "HW_CPU_X86_AVX2",
            "HW_CPU_X86_VMX",
            "HW_CPU_X86_INTEL_VMX",
            "HW_CPU_X86_CLMUL",
            "HW_CPU_X86_SHA",
            "HW_CPU_HYPERTHREADING",
            "HW_ARCH_X86_64",
        ] {
            assert!(t.contains(want), "missing {want} in {t:?}");
        }
        for gone in [
            "HW_CPU_X86_AVX512F",
            "COMPUTE_VOLUME_EXTEND",
            "COMPUTE_STATUS_DISABLED",
            "COMPUTE_NET_ATTACH_INTERFACE",
        ] {
            assert!(!t.contains(gone), "unexpected {gone} in {t:?}");
        }
        let t = traits(&t, &h, &Capabilities::novakvm(), true);
        assert!(t.contains(COMPUTE_STATUS_DISABLED));
    }

    #[test]
    fn fake_driver_capabilities_give_the_captured_traits() {
        // The fake driver's capabilities, as in nova-wire placement-http 0009.
        let caps = Capabilities {
            supports_attach_interface: true,
            supports_device_tagging: true,
            supports_tagged_attach_interface: true,
            supports_tagged_attach_volume: true,
            supports_extend_volume: true,
            supports_multiattach: true,
            supports_trusted_certs: true,
            supports_accelerators: true,
            supports_image_type_raw: true,
            supports_address_space_passthrough: true,
            supports_address_space_emulated: true,
            supports_stateless_firmware: true,
            supports_virtio_fs: true,
            supports_mem_backing_file: true,
            ..Capabilities::default()
        };
        let mut h = host();
        h.smt = false;
        let t = traits(&BTreeSet::new(), &h, &caps, false);
        let expected: BTreeSet<String> = [
            "COMPUTE_ACCELERATORS",
            "COMPUTE_ADDRESS_SPACE_EMULATED",
            "COMPUTE_ADDRESS_SPACE_PASSTHROUGH",
            "COMPUTE_DEVICE_TAGGING",
            "COMPUTE_IMAGE_TYPE_RAW",
            "COMPUTE_MEM_BACKING_FILE",
            "COMPUTE_NET_ATTACH_INTERFACE",
            "COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG",
            "COMPUTE_NODE",
            "COMPUTE_SECURITY_STATELESS_FIRMWARE",
            "COMPUTE_STORAGE_VIRTIO_FS",
            "COMPUTE_TRUSTED_CERTS",
            "COMPUTE_VOLUME_ATTACH_WITH_TAG",
            "COMPUTE_VOLUME_EXTEND",
            "COMPUTE_VOLUME_MULTI_ATTACH",
            "OWNER_NOVA",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(t, expected);
    }

    #[test]
    fn ratio_comparison_tolerates_float_storage() {
        let a = record(10, 1.1, 0);
        let b = record(10, 1.100_000_023_841_858, 0);
        assert!(a.same_as(&b));
        assert!(!a.same_as(&record(10, 1.2, 0)));
        assert!(!a.same_as(&record(11, 1.1, 0)));
    }

    proptest::proptest! {
        /// For any host and settings: no class with total 0, max_unit = total,
        /// reserved <= total, capacity >= 0; or a clear error, never a panic.
        #[test]
        fn inventory_invariants(
            shared in proptest::collection::vec(0u32..512, 0..64),
            dedicated in proptest::collection::vec(512u32..1024, 0..64),
            memory_mb in 0u64..(1 << 40),
            disk_gb in 0u64..(1 << 30),
            reserved_cpus in 0u32..128,
            reserved_mem in 0u64..(1 << 20),
            reserved_disk_mb in 0u64..(1 << 30),
            cpu_ratio in proptest::option::of(-1.0f64..64.0),
        ) {
            let h = HostResources { shared_cpus: shared, dedicated_cpus: dedicated, memory_mb, disk_gb, ..host() };
            let s = ResourceSettings {
                reserved_host_cpus: reserved_cpus,
                reserved_host_memory_mb: reserved_mem,
                reserved_host_disk_mb: reserved_disk_mb,
                cpu_allocation_ratio: cpu_ratio,
                ..ResourceSettings::default()
            };
            if let Ok(inv) = inventories(&h, &s, &BTreeMap::new()) {
                for (rc, i) in &inv {
                    proptest::prop_assert!(i.total > 0, "{rc}");
                    proptest::prop_assert_eq!(i.max_unit, i.total);
                    proptest::prop_assert!(i.reserved <= i.total);
                    proptest::prop_assert!(i.capacity() >= 0.0);
                    proptest::prop_assert!(i.allocation_ratio > 0.0);
                }
                proptest::prop_assert_eq!(inv.contains_key(PCPU), !h.dedicated_cpus.is_empty());
            }
        }
    }
}
