//! PVH boot: `hvm_start_info` with memory map, command line and initrd module.

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::GuestAddress;

use crate::vmm::boot::layout::{self, CMDLINE_START, PVH_INFO_START, PVH_MEMMAP_START};
use crate::vmm::memory::GuestMem;

/// PVH errors.
#[derive(Debug, thiserror::Error)]
pub enum PvhError {
    /// linux-loader refused the parameters.
    #[error("writing PVH start_info: {0}")]
    Write(#[from] linux_loader::configurator::Error),
    /// Memory map too long.
    #[error("PVH memory map has too many entries")]
    TooManyEntries,
}

const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Address of the initrd module entry, after the memmap area.
const MODLIST_START: u64 = layout::ZERO_PAGE_START - 0x40;

/// Write start_info for `ram` bytes of RAM; `initrd` is `(addr, size)`, `rsdp` the ACPI RSDP.
pub fn write_start_info(
    mem: &GuestMem,
    ram: u64,
    initrd: Option<(u64, u64)>,
    rsdp: u64,
) -> Result<(), PvhError> {
    let map: Vec<hvm_memmap_table_entry> = layout::memory_map(ram)
        .into_iter()
        .map(|(addr, size, t)| hvm_memmap_table_entry {
            addr,
            size,
            type_: t,
            reserved: 0,
        })
        .collect();
    if map.len() > layout::PVH_MEMMAP_MAX - 3 {
        return Err(PvhError::TooManyEntries);
    }
    let mut info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        rsdp_paddr: rsdp,
        ..Default::default()
    };
    let mut params = BootParams::new(&info, GuestAddress(PVH_INFO_START));
    if let Some((paddr, size)) = initrd {
        info.nr_modules = 1;
        info.modlist_paddr = MODLIST_START;
        params = BootParams::new(&info, GuestAddress(PVH_INFO_START));
        params.set_modules(
            &[hvm_modlist_entry {
                paddr,
                size,
                ..Default::default()
            }],
            GuestAddress(MODLIST_START),
        );
    }
    params.set_sections(&map, GuestAddress(PVH_MEMMAP_START));
    PvhBootConfigurator::write_bootparams::<GuestMem>(&params, mem)?;
    Ok(())
}
