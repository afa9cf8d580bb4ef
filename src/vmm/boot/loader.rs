//! Kernel loading (linux-loader): PVH ELF, ELF vmlinux or bzImage; cmdline, initrd, and
//! for the Linux boot protocol the zero page with its e820 map.

use std::fs::File;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::{BzImage, KernelLoader};
use vm_memory::{Bytes, GuestAddress};

use crate::vmm::boot::layout::{self, CMDLINE_START, HIMEM_START, ZERO_PAGE_START};
use crate::vmm::boot::pvh;
use crate::vmm::boot::regs::EntryMode;
use crate::vmm::memory::GuestMem;
use crate::vmm::spec::BootSpec;

/// Loader errors.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    File {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The kernel is neither ELF nor bzImage, or does not fit.
    #[error("cannot load kernel {path}: ELF: {elf:?}; bzImage: {bz:?}")]
    Kernel {
        /// Kernel path.
        path: String,
        /// ELF loader error.
        elf: linux_loader::loader::Error,
        /// bzImage loader error.
        bz: linux_loader::loader::Error,
    },
    /// The initrd does not fit in low memory after the kernel.
    #[error("initrd of {size} bytes does not fit in guest memory")]
    InitrdTooBig {
        /// Size.
        size: u64,
    },
    /// Guest memory write failed.
    #[error("writing boot data: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
    /// Zero page could not be written.
    #[error("writing boot parameters: {0}")]
    Params(#[from] linux_loader::configurator::Error),
    /// PVH start_info failed.
    #[error(transparent)]
    Pvh(#[from] pvh::PvhError),
}

/// Where and how to start the boot vCPU.
#[derive(Debug, Clone, Copy)]
pub struct BootEntry {
    /// Entry mode.
    pub mode: EntryMode,
    /// Entry address.
    pub entry: u64,
}

fn open(path: &std::path::Path) -> Result<File, LoaderError> {
    File::open(path).map_err(|source| LoaderError::File {
        path: path.display().to_string(),
        source,
    })
}

/// Load kernel, cmdline and initrd for `ram` bytes of RAM; write the boot parameters
/// (pointing at the ACPI RSDP at `rsdp`).
pub fn load(
    mem: &GuestMem,
    boot: &BootSpec,
    ram: u64,
    rsdp: u64,
) -> Result<BootEntry, LoaderError> {
    let mut kernel = open(&boot.kernel)?;
    let himem = Some(GuestAddress(HIMEM_START));
    let (entry, setup, kernel_end) = match Elf::load(mem, None, &mut kernel, himem) {
        Ok(r) => match r.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) => (
                BootEntry {
                    mode: EntryMode::Pvh,
                    entry: addr.0,
                },
                None,
                r.kernel_end,
            ),
            // vmlinux: linux-loader reports e_entry (startup_64's physical address).
            _ => (
                BootEntry {
                    mode: EntryMode::Linux64,
                    entry: r.kernel_load.0,
                },
                None,
                r.kernel_end,
            ),
        },
        Err(elf) => match BzImage::load(mem, None, &mut kernel, himem) {
            Ok(r) => (
                BootEntry {
                    mode: EntryMode::Linux64,
                    entry: r.kernel_load.0 + 0x200,
                },
                r.setup_header,
                r.kernel_end,
            ),
            Err(bz) => {
                return Err(LoaderError::Kernel {
                    path: boot.kernel.display().to_string(),
                    elf,
                    bz,
                })
            }
        },
    };

    let mut cmdline = boot.cmdline.as_bytes().to_vec();
    cmdline.push(0);
    mem.write_slice(&cmdline, GuestAddress(CMDLINE_START))?;

    let initrd = match &boot.initrd {
        Some(p) => Some(load_initrd(mem, p, ram, kernel_end, setup.as_ref())?),
        None => None,
    };
    match entry.mode {
        EntryMode::Pvh => pvh::write_start_info(mem, ram, initrd, rsdp)?,
        EntryMode::Linux64 => write_zero_page(mem, setup, ram, cmdline.len() as u32, initrd, rsdp)?,
    }
    Ok(entry)
}

fn load_initrd(
    mem: &GuestMem,
    path: &std::path::Path,
    ram: u64,
    kernel_end: u64,
    setup: Option<&setup_header>,
) -> Result<(u64, u64), LoaderError> {
    let mut f = open(path)?;
    let size = f
        .metadata()
        .map_err(|source| LoaderError::File {
            path: path.display().to_string(),
            source,
        })?
        .len();
    let mut top = layout::low_ram_end(ram);
    if let Some(h) = setup {
        if h.initrd_addr_max != 0 {
            top = top.min(u64::from(h.initrd_addr_max) + 1);
        }
    }
    let addr = top
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|&a| a >= kernel_end.max(HIMEM_START))
        .ok_or(LoaderError::InitrdTooBig { size })?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut f, size as usize)?;
    Ok((addr, size))
}

fn write_zero_page(
    mem: &GuestMem,
    setup: Option<setup_header>,
    ram: u64,
    cmdline_size: u32,
    initrd: Option<(u64, u64)>,
    rsdp: u64,
) -> Result<(), LoaderError> {
    let mut params = boot_params {
        acpi_rsdp_addr: rsdp,
        ..Default::default()
    };
    if let Some(h) = setup {
        params.hdr = h;
    }
    params.hdr.type_of_loader = 0xff;
    params.hdr.boot_flag = 0xaa55;
    params.hdr.header = 0x5372_6448; // "HdrS"
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_size;
    params.hdr.kernel_alignment = 0x0100_0000;
    if let Some((addr, size)) = initrd {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    let map = layout::memory_map(ram);
    for (i, (addr, size, t)) in map.iter().take(params.e820_table.len()).enumerate() {
        params.e820_table[i] = boot_e820_entry {
            addr: *addr,
            size: *size,
            r#type: *t,
        };
    }
    params.e820_entries = map.len().min(params.e820_table.len()) as u8;
    LinuxBootConfigurator::write_bootparams::<GuestMem>(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_START)),
        mem,
    )?;
    Ok(())
}
