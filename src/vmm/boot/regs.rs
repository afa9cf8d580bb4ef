//! Initial vCPU state: segments/GDT, page tables, registers, FPU, MSRs, LAPIC LINT pins.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use crate::vmm::memory::GuestMem;

use crate::vmm::boot::layout::*;

/// Register setup errors.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// A vCPU ioctl failed.
    #[error("vCPU {what}: {source}")]
    Kvm {
        /// Which ioctl.
        what: &'static str,
        /// Cause.
        source: kvm_ioctls::Error,
    },
    /// Writing GDT/page tables failed.
    #[error("writing boot structures: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> RegsError {
    move |source| RegsError::Kvm { what, source }
}

/// How the vCPU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// PVH: 32-bit protected mode, paging off, EBX = start_info.
    Pvh,
    /// Linux 64-bit boot protocol: long mode, identity paging, RSI = zero page.
    Linux64,
}

fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((u64::from(base) & 0xff00_0000) << (56 - 24))
        | ((u64::from(flags) & 0x0000_f0ff) << 40)
        | ((u64::from(limit) & 0x000f_0000) << (48 - 16))
        | ((u64::from(base) & 0x00ff_ffff) << 16)
        | (u64::from(limit) & 0x0000_ffff)
}

fn segment(entry: u64, index: u16) -> kvm_segment {
    let g = ((entry >> 55) & 1) as u8;
    let raw_limit = (((entry >> 32) & 0x000f_0000) | (entry & 0xffff)) as u32;
    let present = ((entry >> 47) & 1) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

/// Set up segments, control registers and (for Linux64) page tables on the boot vCPU.
pub fn setup_sregs(mem: &GuestMem, vcpu: &VcpuFd, mode: EntryMode) -> Result<(), RegsError> {
    let code = match mode {
        EntryMode::Pvh => 0xc09b,     // 32-bit code, 4 GiB
        EntryMode::Linux64 => 0xa09b, // 64-bit code
    };
    let gdt = [
        0u64,
        gdt_entry(code, 0, 0xfffff),
        gdt_entry(0xc093, 0, 0xfffff),
        gdt_entry(0x808b, 0, 0xfffff),
    ];
    for (i, e) in gdt.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(GDT_START + 8 * i as u64))?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START))?;

    let mut s = vcpu.get_sregs().map_err(kvm("get_sregs"))?;
    s.gdt.base = GDT_START;
    s.gdt.limit = (gdt.len() * 8 - 1) as u16;
    s.idt.base = IDT_START;
    s.idt.limit = 7;
    s.cs = segment(gdt[1], 1);
    let data = segment(gdt[2], 2);
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = segment(gdt[3], 3);
    match mode {
        EntryMode::Pvh => {
            s.cr0 = 0x11; // PE | ET
            s.cr4 = 0;
            s.efer = 0;
        }
        EntryMode::Linux64 => {
            write_page_tables(mem)?;
            s.cr3 = PML4_START;
            s.cr4 |= 0x20; // PAE
            s.cr0 |= 0x8000_0011; // PG | ET | PE
            s.efer |= 0x500; // LME | LMA
        }
    }
    vcpu.set_sregs(&s).map_err(kvm("set_sregs"))
}

fn write_page_tables(mem: &GuestMem) -> Result<(), RegsError> {
    // Identity map of the first 4 GiB with 2 MiB pages.
    mem.write_obj(PDPTE_START | 0x03, GuestAddress(PML4_START))?;
    for i in 0..4u64 {
        let pd = PDE_START + i * 0x1000;
        mem.write_obj(pd | 0x03, GuestAddress(PDPTE_START + i * 8))?;
        for j in 0..512u64 {
            let addr = ((i * 512 + j) << 21) | 0x83;
            mem.write_obj(addr, GuestAddress(pd + j * 8))?;
        }
    }
    Ok(())
}

/// General registers of the boot vCPU.
pub fn setup_regs(vcpu: &VcpuFd, mode: EntryMode, entry: u64) -> Result<(), RegsError> {
    let mut r = kvm_regs {
        rflags: 2,
        rip: entry,
        ..Default::default()
    };
    match mode {
        EntryMode::Pvh => r.rbx = PVH_INFO_START,
        EntryMode::Linux64 => {
            r.rsp = BOOT_STACK_POINTER;
            r.rbp = BOOT_STACK_POINTER;
            r.rsi = ZERO_PAGE_START;
        }
    }
    vcpu.set_regs(&r).map_err(kvm("set_regs"))
}

/// x87/SSE defaults.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(kvm("set_fpu"))
}

/// Boot MSRs (as Firecracker/Cloud Hypervisor set them). Returns the MSRs KVM refused
/// (kvm_pvm refuses some); those are not fatal.
pub fn setup_msrs(vcpu: &VcpuFd) -> Result<Vec<u32>, RegsError> {
    const LIST: [(u32, u64); 11] = [
        (0x174, 0),               // IA32_SYSENTER_CS
        (0x175, 0),               // IA32_SYSENTER_ESP
        (0x176, 0),               // IA32_SYSENTER_EIP
        (0xc000_0081, 0),         // STAR
        (0xc000_0083, 0),         // CSTAR
        (0xc000_0102, 0),         // KERNEL_GS_BASE
        (0xc000_0084, 0),         // SYSCALL_MASK
        (0xc000_0082, 0),         // LSTAR
        (0x10, 0),                // TSC
        (0x1a0, 1),               // IA32_MISC_ENABLE: fast strings
        (0x2ff, (1 << 11) | 0x6), // MTRRdefType: enabled, write-back
    ];
    let mut refused = Vec::new();
    for (index, data) in LIST {
        let msrs = Msrs::from_entries(&[kvm_msr_entry {
            index,
            data,
            ..Default::default()
        }])
        .map_err(|_| RegsError::Kvm {
            what: "msrs",
            source: kvm_ioctls::Error::new(libc::EINVAL),
        })?;
        match vcpu.set_msrs(&msrs) {
            Ok(1) => {}
            Ok(_) | Err(_) => refused.push(index),
        }
    }
    Ok(refused)
}

/// LAPIC LINT0 = ExtINT, LINT1 = NMI (what the MP table announces).
pub fn setup_lint(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let mut lapic = vcpu.get_lapic().map_err(kvm("get_lapic"))?;
    for (off, mode) in [(0x350usize, 0x7u32), (0x360, 0x4)] {
        let mut b = [0u8; 4];
        for (i, x) in b.iter_mut().enumerate() {
            *x = lapic.regs[off + i] as u8;
        }
        let v = (u32::from_le_bytes(b) & !0x700) | (mode << 8);
        for (i, x) in v.to_le_bytes().iter().enumerate() {
            lapic.regs[off + i] = *x as libc::c_char;
        }
    }
    vcpu.set_lapic(&lapic).map_err(kvm("set_lapic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_round_trip() {
        let s = segment(gdt_entry(0xa09b, 0, 0xfffff), 1);
        assert_eq!(s.l, 1);
        assert_eq!(s.type_, 0xb);
        assert_eq!(s.limit, 0xffff_ffff);
        assert_eq!(s.selector, 8);
        let s = segment(gdt_entry(0xc09b, 0, 0xfffff), 1);
        assert_eq!((s.l, s.db, s.g, s.present), (0, 1, 1, 1));
        let s = segment(gdt_entry(0x808b, 0, 0xfffff), 3);
        assert_eq!(s.type_, 0xb);
        assert_eq!(s.s, 0);
    }
}
