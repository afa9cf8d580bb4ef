//! Guest physical memory layout (x86_64).
//!
//! ```text
//! 0x0500  GDT            0x6000 PVH hvm_start_info (+ memmap)   0x7000 Linux zero page
//! 0x8ff0  boot stack     0x9000 PML4, 0xa000 PDPT, 0xb000.. PDs
//! 0x20000 cmdline        0x9fc00 MP table (EBDA, last KiB of base memory)
//! 1 MiB   kernel         3 GiB..4 GiB MMIO gap (RAM continues at 4 GiB)
//! ```

/// GDT.
pub const GDT_START: u64 = 0x500;
/// IDT (empty).
pub const IDT_START: u64 = 0x520;
/// PVH start_info.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH memory map, right after start_info.
pub const PVH_MEMMAP_START: u64 = 0x6040;
/// Maximum PVH memmap entries before the zero page.
pub const PVH_MEMMAP_MAX: usize = ((ZERO_PAGE_START - PVH_MEMMAP_START) / 24) as usize;
/// Linux zero page (boot_params).
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-map page tables.
pub const PML4_START: u64 = 0x9000;
/// Page directory pointer table.
pub const PDPTE_START: u64 = 0xa000;
/// Page directories (4 of them: the first 4 GiB in 2 MiB pages).
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Start of the EBDA, where the MP table goes.
pub const EBDA_START: u64 = 0x9fc00;
/// End of base memory reserved area (BIOS ROM).
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO gap.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO gap.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;

/// E820 RAM.
pub const E820_RAM: u32 = 1;
/// E820 reserved.
pub const E820_RESERVED: u32 = 2;

/// Map `len` bytes of RAM starting at RAM offset `off` to guest physical ranges,
/// skipping the MMIO gap.
pub fn ram_to_gpa(off: u64, len: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let end = off.saturating_add(len);
    if off < MMIO_GAP_START {
        let e = end.min(MMIO_GAP_START);
        out.push((off, e - off));
    }
    if end > MMIO_GAP_START {
        let s = off.max(MMIO_GAP_START);
        let gap = MMIO_GAP_END - MMIO_GAP_START;
        out.push((s + gap, end - s));
    }
    out
}

/// The firmware memory map `(addr, size, type)` for `ram` bytes of RAM.
pub fn memory_map(ram: u64) -> Vec<(u64, u64, u32)> {
    let mut map = vec![(0, EBDA_START, E820_RAM)];
    map.push((EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED));
    for (start, len) in ram_to_gpa(0, ram) {
        let s = start.max(HIMEM_START);
        let e = start + len;
        if e > s {
            map.push((s, e - s, E820_RAM));
        }
    }
    map
}

/// Highest address + 1 of low (below 4 GiB) RAM.
pub fn low_ram_end(ram: u64) -> u64 {
    ram.min(MMIO_GAP_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_split() {
        assert_eq!(ram_to_gpa(0, 1 << 20), vec![(0, 1 << 20)]);
        let g = ram_to_gpa(0, 4 << 30);
        assert_eq!(g, vec![(0, 3 << 30), (4 << 30, 1 << 30)]);
        assert_eq!(ram_to_gpa(3 << 30, 1 << 30), vec![(4 << 30, 1 << 30)]);
        let m = memory_map(128 << 20);
        let ram: u64 = m.iter().filter(|e| e.2 == E820_RAM).map(|e| e.1).sum();
        assert_eq!(ram.div_ceil(1 << 20), 128);
        const { assert!(PVH_MEMMAP_MAX >= 8) };
    }
}
