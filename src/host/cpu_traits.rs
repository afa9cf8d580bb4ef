//! CPU flags to os-traits names, as nova's libvirt driver reports them.
//!
//! nova maps libvirt CPU feature names to traits (`CPU_TRAITS_MAPPING` in
//! `nova/virt/libvirt/utils.py`). `/proc/cpuinfo` spells some features
//! differently from libvirt (`pni` is libvirt's `sse3`, `sse4_1` is `sse4.1`,
//! `avx512_vnni` is `avx512vnni`, ...), so each row here holds the kernel
//! flag, the libvirt feature and the traits.

use std::collections::{BTreeMap, BTreeSet};

/// (kernel `/proc/cpuinfo` flag, libvirt feature name, os-traits names).
pub const CPU_TRAITS_MAPPING: &[(&str, &str, &[&str])] = &[
    ("3dnow", "3dnow", &["HW_CPU_X86_3DNOW"]),
    ("abm", "abm", &["HW_CPU_X86_ABM"]),
    ("aes", "aes", &["HW_CPU_X86_AESNI"]),
    ("amx_bf16", "amx-bf16", &["HW_CPU_X86_AMXBF16"]),
    ("amx_int8", "amx-int8", &["HW_CPU_X86_AMXINT8"]),
    ("amx_tile", "amx-tile", &["HW_CPU_X86_AMXTILE"]),
    ("avx", "avx", &["HW_CPU_X86_AVX"]),
    ("avx2", "avx2", &["HW_CPU_X86_AVX2"]),
    ("avx512bw", "avx512bw", &["HW_CPU_X86_AVX512BW"]),
    ("avx512cd", "avx512cd", &["HW_CPU_X86_AVX512CD"]),
    ("avx512dq", "avx512dq", &["HW_CPU_X86_AVX512DQ"]),
    ("avx512er", "avx512er", &["HW_CPU_X86_AVX512ER"]),
    ("avx512f", "avx512f", &["HW_CPU_X86_AVX512F"]),
    ("avx512pf", "avx512pf", &["HW_CPU_X86_AVX512PF"]),
    ("avx512vl", "avx512vl", &["HW_CPU_X86_AVX512VL"]),
    ("avx512_vnni", "avx512vnni", &["HW_CPU_X86_AVX512VNNI"]),
    ("avx512vbmi", "avx512vbmi", &["HW_CPU_X86_AVX512VBMI"]),
    ("avx512ifma", "avx512ifma", &["HW_CPU_X86_AVX512IFMA"]),
    ("avx512_vbmi2", "avx512vbmi2", &["HW_CPU_X86_AVX512VBMI2"]),
    (
        "avx512_bitalg",
        "avx512bitalg",
        &["HW_CPU_X86_AVX512BITALG"],
    ),
    ("vaes", "vaes", &["HW_CPU_X86_AVX512VAES"]),
    ("gfni", "gfni", &["HW_CPU_X86_AVX512GFNI"]),
    ("vpclmulqdq", "vpclmulqdq", &["HW_CPU_X86_AVX512VPCLMULQDQ"]),
    (
        "avx512_vpopcntdq",
        "avx512-vpopcntdq",
        &["HW_CPU_X86_AVX512VPOPCNTDQ"],
    ),
    ("bmi1", "bmi1", &["HW_CPU_X86_BMI"]),
    ("bmi2", "bmi2", &["HW_CPU_X86_BMI2"]),
    ("pclmulqdq", "pclmuldq", &["HW_CPU_X86_CLMUL"]),
    ("f16c", "f16c", &["HW_CPU_X86_F16C"]),
    ("fma", "fma", &["HW_CPU_X86_FMA3"]),
    ("fma4", "fma4", &["HW_CPU_X86_FMA4"]),
    ("mmx", "mmx", &["HW_CPU_X86_MMX"]),
    ("mpx", "mpx", &["HW_CPU_X86_MPX"]),
    ("sha_ni", "sha-ni", &["HW_CPU_X86_SHA"]),
    ("sse", "sse", &["HW_CPU_X86_SSE"]),
    ("sse2", "sse2", &["HW_CPU_X86_SSE2"]),
    ("pni", "sse3", &["HW_CPU_X86_SSE3"]),
    ("sse4_1", "sse4.1", &["HW_CPU_X86_SSE41"]),
    ("sse4_2", "sse4.2", &["HW_CPU_X86_SSE42"]),
    ("sse4a", "sse4a", &["HW_CPU_X86_SSE4A"]),
    ("ssse3", "ssse3", &["HW_CPU_X86_SSSE3"]),
    ("svm", "svm", &["HW_CPU_X86_SVM", "HW_CPU_X86_AMD_SVM"]),
    ("tbm", "tbm", &["HW_CPU_X86_TBM"]),
    ("vmx", "vmx", &["HW_CPU_X86_VMX", "HW_CPU_X86_INTEL_VMX"]),
    ("xop", "xop", &["HW_CPU_X86_XOP"]),
];

/// Every CPU trait nova manages, each with whether `flags` (kernel names) sets
/// it, like `cpu_features_to_traits`: the driver adds the `true` ones and
/// removes the `false` ones from the provider.
pub fn cpu_traits<'a>(flags: impl IntoIterator<Item = &'a str>) -> BTreeMap<&'static str, bool> {
    let flags: BTreeSet<&str> = flags.into_iter().collect();
    let mut traits = BTreeMap::new();
    for (kernel, libvirt, names) in CPU_TRAITS_MAPPING {
        let present = flags.contains(kernel) || flags.contains(libvirt);
        for name in *names {
            traits.insert(*name, present);
        }
    }
    traits
}

/// The traits `flags` (kernel or libvirt names) set, sorted.
pub fn cpu_trait_names<'a>(flags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    cpu_traits(flags)
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kernel_and_libvirt_names() {
        let names = cpu_trait_names([
            "avx2",
            "pni",
            "sse4_2",
            "sha_ni",
            "vmx",
            "avx512_vnni",
            "bogus",
        ]);
        assert_eq!(
            names,
            [
                "HW_CPU_X86_AVX2",
                "HW_CPU_X86_AVX512VNNI",
                "HW_CPU_X86_INTEL_VMX",
                "HW_CPU_X86_SHA",
                "HW_CPU_X86_SSE3",
                "HW_CPU_X86_SSE42",
                "HW_CPU_X86_VMX",
            ]
        );
        assert_eq!(
            cpu_trait_names(["sse4.1", "pclmuldq"]),
            ["HW_CPU_X86_CLMUL", "HW_CPU_X86_SSE41"]
        );
    }

    #[test]
    fn lists_every_trait_with_state() {
        let all = cpu_traits(["svm"]);
        // 44 features, two of which map to two traits each.
        assert_eq!(all.len(), CPU_TRAITS_MAPPING.len() + 2);
        assert!(all["HW_CPU_X86_AMD_SVM"]);
        assert!(!all["HW_CPU_X86_AVX"]);
        assert!(cpu_trait_names(Vec::<&str>::new()).is_empty());
    }
}
