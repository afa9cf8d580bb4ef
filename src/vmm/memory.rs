//! Guest RAM: anonymous or hugetlb-backed (memfd), optionally preallocated, one region per
//! NUMA cell (split around the 32-bit MMIO gap), each bound to its host node with mbind.

use std::fs::File;
use std::os::fd::FromRawFd;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use crate::vmm::boot::layout;
use crate::vmm::spec::{Backing, MemorySpec, NumaCell};

/// Guest memory type used throughout the VMM.
pub type GuestMem = GuestMemoryMmap<()>;

/// Memory errors.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Not enough free hugepages of the requested size.
    #[error(
        "not enough {size} hugepages: need {need}, {free} free \
         (raise /sys/kernel/mm/hugepages/hugepages-{kb}kB/nr_hugepages)"
    )]
    NotEnoughHugepages {
        /// "2M" or "1G".
        size: &'static str,
        /// Pages kB size for the sysfs hint.
        kb: u64,
        /// Pages needed.
        need: u64,
        /// Pages free.
        free: u64,
    },
    /// memfd_create/ftruncate failed.
    #[error("hugetlb memfd: {0}")]
    Memfd(std::io::Error),
    /// mmap failed.
    #[error("mapping {size} bytes of guest memory: {source}")]
    Mmap {
        /// Region size.
        size: u64,
        /// Cause.
        source: vm_memory::mmap::MmapRegionError,
    },
    /// mbind failed.
    #[error("binding guest memory to host node {node}: {source}")]
    Mbind {
        /// Host node.
        node: u32,
        /// Cause.
        source: std::io::Error,
    },
    /// Faulting in the memory failed.
    #[error("preallocating guest memory: {0}")]
    Prealloc(std::io::Error),
    /// Regions could not be assembled.
    #[error("guest memory layout: {0}")]
    Layout(String),
}

/// Guest RAM ranges `(start, len, host_node)` for the cells, split around the MMIO gap.
pub fn cell_ranges(cells: &[NumaCell]) -> Vec<(u64, u64, Option<u32>)> {
    let mut out = Vec::new();
    let mut cursor = 0u64; // RAM offset (not GPA)
    for cell in cells {
        let len = cell.memory_mib << 20;
        for (start, l) in layout::ram_to_gpa(cursor, len) {
            out.push((start, l, cell.host_node));
        }
        cursor += len;
    }
    out
}

/// Allocate guest RAM as described. On error nothing stays mapped.
pub fn create(spec: &MemorySpec, cells: &[NumaCell]) -> Result<GuestMem, MemoryError> {
    if spec.backing != Backing::Anonymous {
        check_free_hugepages(spec)?;
    }
    let mut regions = Vec::new();
    for (start, len, node) in cell_ranges(cells) {
        let region = map_region(spec, len)?;
        if let Some(node) = node {
            mbind(region.as_ptr(), len, node)?;
        }
        if spec.prealloc {
            prealloc(region.as_ptr(), len)?;
        }
        let r = GuestRegionMmap::new(region, GuestAddress(start))
            .ok_or_else(|| MemoryError::Layout(format!("region at {start:#x} overflows")))?;
        regions.push(r);
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| MemoryError::Layout(e.to_string()))
}

fn hugepage_sysfs(backing: Backing) -> (&'static str, u64) {
    match backing {
        Backing::Hugepages1g => ("1G", 1 << 20),
        _ => ("2M", 2048),
    }
}

/// Free hugepages of the size `backing` uses (None when the size is not supported).
pub fn free_hugepages(backing: Backing) -> Option<u64> {
    let (_, kb) = hugepage_sysfs(backing);
    let p = format!("/sys/kernel/mm/hugepages/hugepages-{kb}kB/free_hugepages");
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn check_free_hugepages(spec: &MemorySpec) -> Result<(), MemoryError> {
    let (size, kb) = hugepage_sysfs(spec.backing);
    let need = (spec.size_mib << 20) / spec.backing.page_size();
    let free = free_hugepages(spec.backing).unwrap_or(0);
    // Reserved-but-unfaulted pages still count as free; the mmap below is the real check.
    if free < need {
        return Err(MemoryError::NotEnoughHugepages {
            size,
            kb,
            need,
            free,
        });
    }
    Ok(())
}

fn map_region(spec: &MemorySpec, len: u64) -> Result<MmapRegion<()>, MemoryError> {
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let size = usize::try_from(len).map_err(|_| MemoryError::Layout("region too big".into()))?;
    match spec.backing {
        Backing::Anonymous => MmapRegion::build(
            None,
            size,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        )
        .map_err(|source| MemoryError::Mmap { size: len, source }),
        Backing::Hugepages2m | Backing::Hugepages1g => {
            let huge = if spec.backing == Backing::Hugepages1g {
                libc::MFD_HUGE_1GB
            } else {
                libc::MFD_HUGE_2MB
            };
            // SAFETY: the name is a valid NUL-terminated string; flags are valid memfd flags.
            let fd = unsafe {
                libc::memfd_create(
                    c"novakvm-guest-ram".as_ptr(),
                    libc::MFD_CLOEXEC | libc::MFD_HUGETLB | huge,
                )
            };
            if fd < 0 {
                return Err(MemoryError::Memfd(std::io::Error::last_os_error()));
            }
            // SAFETY: fd was just created and is owned by nobody else.
            let file = unsafe { File::from_raw_fd(fd) };
            file.set_len(len).map_err(MemoryError::Memfd)?;
            // A shared hugetlb mapping reserves its pages at mmap time: ENOMEM if short.
            let mut region =
                MmapRegion::build(Some(FileOffset::new(file, 0)), size, prot, libc::MAP_SHARED)
                    .map_err(|source| MemoryError::Mmap { size: len, source })?;
            region.set_hugetlbfs(true);
            Ok(region)
        }
    }
}

fn mbind(addr: *mut u8, len: u64, node: u32) -> Result<(), MemoryError> {
    if node >= 128 {
        return Err(MemoryError::Mbind {
            node,
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    let mut mask = [0u64; 2];
    mask[(node / 64) as usize] |= 1 << (node % 64);
    const MPOL_BIND: libc::c_long = 2;
    // SAFETY: addr/len describe a mapping we own; mask is a valid 128-bit node mask.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            addr as libc::c_long,
            len as libc::c_long,
            MPOL_BIND,
            mask.as_ptr() as libc::c_long,
            129 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if rc != 0 {
        return Err(MemoryError::Mbind {
            node,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn prealloc(addr: *mut u8, len: u64) -> Result<(), MemoryError> {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    // SAFETY: addr/len describe a writable mapping we own.
    let rc = unsafe { libc::madvise(addr.cast(), len as usize, MADV_POPULATE_WRITE) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINVAL) {
        return Err(MemoryError::Prealloc(err));
    }
    // Older kernels: touch one byte per 4 KiB page.
    let mut off = 0u64;
    while off < len {
        // SAFETY: off < len, inside the writable mapping; a volatile write faults the page in.
        unsafe { std::ptr::write_volatile(addr.add(off as usize), 0u8) };
        off += 4096;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestMemoryBackend};

    #[test]
    fn anonymous_memory_with_two_cells() {
        let spec = MemorySpec {
            size_mib: 8,
            backing: Backing::Anonymous,
            prealloc: true,
        };
        let cells = vec![
            NumaCell {
                cpus: vec![0],
                memory_mib: 4,
                host_node: Some(0),
            },
            NumaCell {
                cpus: vec![1],
                memory_mib: 4,
                host_node: None,
            },
        ];
        let mem = create(&spec, &cells).unwrap();
        assert_eq!(mem.num_regions(), 2);
        mem.write_obj(0x1234u32, GuestAddress(0x7f_fffc)).unwrap();
        assert_eq!(
            mem.read_obj::<u32>(GuestAddress(0x7f_fffc)).unwrap(),
            0x1234
        );
        assert!(mem.read_obj::<u32>(GuestAddress(0x80_0000)).is_err());
    }

    #[test]
    fn bad_node_is_an_error() {
        let spec = MemorySpec {
            size_mib: 2,
            backing: Backing::Anonymous,
            prealloc: false,
        };
        let cells = vec![NumaCell {
            cpus: vec![0],
            memory_mib: 2,
            host_node: Some(100),
        }];
        assert!(matches!(
            create(&spec, &cells),
            Err(MemoryError::Mbind { .. })
        ));
    }
}
