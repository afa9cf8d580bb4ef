//! Guest CPUID: KVM_GET_SUPPORTED_CPUID filtered per vCPU (hypervisor bit, APIC ids,
//! topology leaves 0x1, 0x4, 0xb, 0x1f from the spec's sockets/cores/threads).

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

use crate::vmm::spec::Topology;

/// CPUID errors.
#[derive(Debug, thiserror::Error)]
pub enum CpuidError {
    /// The filtered list could not be built.
    #[error("building CPUID: {0:?}")]
    Build(vmm_sys_util::fam::Error),
}

fn bits_for(n: u32) -> u32 {
    // ceil(log2(n)), 0 for n <= 1
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// APIC id of vCPU `index` under `topo` (x2APIC-style packing of thread/core/socket).
pub fn apic_id(topo: &Topology, index: u32) -> u32 {
    let tb = bits_for(topo.threads);
    let cb = bits_for(topo.cores);
    let thread = index % topo.threads;
    let core = (index / topo.threads) % topo.cores;
    let socket = index / (topo.threads * topo.cores);
    (socket << (cb + tb)) | (core << tb) | thread
}

/// CPUID for vCPU `index`.
pub fn for_vcpu(supported: &CpuId, topo: &Topology, index: u32) -> Result<CpuId, CpuidError> {
    let id = apic_id(topo, index);
    let tb = bits_for(topo.threads);
    let cb = bits_for(topo.cores);
    let per_pkg = topo.threads * topo.cores;
    let max_basic = supported
        .as_slice()
        .iter()
        .find(|e| e.function == 0)
        .map_or(0, |e| e.eax);
    let mut out: Vec<kvm_cpuid_entry2> = Vec::with_capacity(supported.as_slice().len() + 4);
    for e in supported.as_slice() {
        let mut e = *e;
        match e.function {
            1 => {
                e.ecx |= 1 << 31; // hypervisor
                e.ebx = (e.ebx & 0xffff) | (per_pkg.min(255) << 16) | (id << 24);
                if per_pkg > 1 {
                    e.edx |= 1 << 28; // HTT
                } else {
                    e.edx &= !(1 << 28);
                }
            }
            4 => {
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { tb + cb } else { tb };
                e.eax &= 0x3fff;
                e.eax |= (((1u32 << sharing) - 1) & 0xfff) << 14;
                e.eax |= (((1u32 << cb) - 1) & 0x3f) << 26;
            }
            6 => {
                // No thermal/power management in the guest.
                e.eax = 0;
                e.ecx &= !1; // no APERF/MPERF
            }
            0xb | 0x1f => continue, // rebuilt below
            _ => {}
        }
        out.push(e);
    }
    for leaf in [0xbu32, 0x1f] {
        if leaf > max_basic {
            continue;
        }
        for sub in 0u32..3 {
            let (eax, ebx, ty) = match sub {
                0 => (tb, topo.threads, 1),
                1 => (tb + cb, per_pkg, 2),
                _ => (0, 0, 0),
            };
            out.push(kvm_cpuid_entry2 {
                function: leaf,
                index: sub,
                flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                eax,
                ebx: ebx & 0xffff,
                ecx: (ty << 8) | sub,
                edx: id,
                ..Default::default()
            });
        }
    }
    CpuId::from_entries(&out).map_err(CpuidError::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apic_ids_pack_topology() {
        let t = Topology {
            sockets: 2,
            cores: 3,
            threads: 2,
        };
        // threads: 1 bit, cores: 2 bits
        assert_eq!(apic_id(&t, 0), 0);
        assert_eq!(apic_id(&t, 1), 1);
        assert_eq!(apic_id(&t, 2), 2);
        assert_eq!(apic_id(&t, 5), 0b101);
        assert_eq!(apic_id(&t, 6), 0b1000);
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(3), 2);
        assert_eq!(bits_for(4), 2);
    }

    #[test]
    fn leaves_are_rewritten() {
        let supported = CpuId::from_entries(&[
            kvm_cpuid_entry2 {
                function: 0,
                eax: 0xd,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0x0102_0800,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 0,
                ..Default::default()
            },
        ])
        .unwrap();
        let t = Topology {
            sockets: 1,
            cores: 2,
            threads: 1,
        };
        let c = for_vcpu(&supported, &t, 1).unwrap();
        let l1 = c.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_eq!(l1.ebx >> 24, 1);
        assert_eq!((l1.ebx >> 16) & 0xff, 2);
        assert_ne!(l1.ecx & (1 << 31), 0);
        let b1 = c
            .as_slice()
            .iter()
            .find(|e| e.function == 0xb && e.index == 1)
            .unwrap();
        assert_eq!(b1.ebx, 2);
        assert_eq!(b1.edx, 1);
        assert!(c.as_slice().iter().all(|e| e.function != 0x1f));
    }
}
