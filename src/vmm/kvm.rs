//! KVM system and VM file descriptors: capability checks, irqchip, PIT, memory slots.

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use crate::vmm::memory::GuestMem;

/// KVM errors.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm could not be opened.
    #[error("opening /dev/kvm: {0}")]
    Open(kvm_ioctls::Error),
    /// A required capability is missing.
    #[error("KVM lacks capability {0}")]
    MissingCap(&'static str),
    /// An ioctl failed.
    #[error("KVM {what}: {source}")]
    Ioctl {
        /// Which call.
        what: &'static str,
        /// Cause.
        source: kvm_ioctls::Error,
    },
}

fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
    move |source| KvmError::Ioctl { what, source }
}

/// TSS area (3 pages) just below the 4 GiB boundary, inside the MMIO gap.
const TSS_ADDR: usize = 0xfffb_d000;
const IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;

/// Open /dev/kvm and check the capabilities the VMM relies on.
pub fn open() -> Result<Kvm, KvmError> {
    let kvm = Kvm::new().map_err(KvmError::Open)?;
    for (cap, name) in [
        (Cap::Irqchip, "IRQCHIP"),
        (Cap::Irqfd, "IRQFD"),
        (Cap::Pit2, "PIT2"),
        (Cap::UserMemory, "USER_MEMORY"),
        (Cap::ExtCpuid, "EXT_CPUID"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(KvmError::MissingCap(name));
        }
    }
    Ok(kvm)
}

/// Create the VM with in-kernel irqchip (PIC + IOAPIC + LAPICs) and PIT.
pub fn create_vm(kvm: &Kvm) -> Result<VmFd, KvmError> {
    let vm = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
    // kvm_pvm accepts these; on hosts that refuse them the guest may still run, so only warn.
    if let Err(e) = vm.set_identity_map_address(IDENTITY_MAP_ADDR) {
        tracing::warn!(error = %e, "KVM_SET_IDENTITY_MAP_ADDR refused");
    }
    if let Err(e) = vm.set_tss_address(TSS_ADDR) {
        tracing::warn!(error = %e, "KVM_SET_TSS_ADDR refused");
    }
    vm.create_irq_chip().map_err(ioctl("KVM_CREATE_IRQCHIP"))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(ioctl("KVM_CREATE_PIT2"))?;
    Ok(vm)
}

/// Register every guest memory region as a KVM memory slot.
pub fn register_memory(vm: &VmFd, mem: &GuestMem) -> Result<(), KvmError> {
    for (slot, region) in mem.iter().enumerate() {
        let r = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the region is a live mapping owned by `mem`, which the caller keeps alive
        // (in `Vm`) for as long as the VM fd exists; slots do not overlap.
        unsafe { vm.set_user_memory_region(r) }.map_err(ioctl("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}
