//! Intel MultiProcessor Specification 1.4 table, so guests find their CPUs without ACPI.
//!
//! Written at the EBDA (0x9fc00): floating pointer, then the config table with one processor
//! entry per vCPU, a bus, the IO APIC, ISA interrupt assignments and local interrupts.

use vm_memory::{Bytes, GuestAddress};

use crate::vmm::memory::GuestMem;

use crate::vmm::boot::layout::EBDA_START;

/// MP table errors.
#[derive(Debug, thiserror::Error)]
pub enum MpTableError {
    /// Too many vCPUs for 8-bit APIC ids.
    #[error("{0} vCPUs do not fit an MP table")]
    TooManyCpus(usize),
    /// Writing guest memory failed.
    #[error("writing the MP table: {0}")]
    Write(#[from] vm_memory::GuestMemoryError),
}

const IOAPIC_ADDR: u32 = 0xfec0_0000;
const APIC_ADDR: u32 = 0xfee0_0000;
const APIC_VERSION: u8 = 0x14;
const CPU_STEPPING: u32 = 0x600;
const CPU_FEATURES: u32 = 0x201; // FPU | APIC

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, &x| a.wrapping_add(x)))
}

/// Build the MP table bytes for CPUs with the given APIC ids, to live at `base`.
pub fn build(apic_ids: &[u32], base: u64) -> Result<Vec<u8>, MpTableError> {
    if apic_ids.is_empty() || apic_ids.iter().any(|&id| id >= 0xfe) {
        return Err(MpTableError::TooManyCpus(apic_ids.len()));
    }
    let ioapic_id = apic_ids.iter().max().map_or(1, |m| m + 1) as u8;
    // Entries of the configuration table.
    let mut entries = Vec::new();
    for (i, &id) in apic_ids.iter().enumerate() {
        entries.push(0u8); // processor
        entries.push(id as u8);
        entries.push(APIC_VERSION);
        entries.push(if i == 0 { 0x3 } else { 0x1 }); // enabled | bootstrap
        entries.extend_from_slice(&CPU_STEPPING.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0u8; 8]);
    }
    entries.extend_from_slice(&[1, 0]); // bus 0
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[2, ioapic_id, APIC_VERSION, 1]); // IO APIC, enabled
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    let mut count = apic_ids.len() + 2;
    for irq in 0u8..16 {
        // I/O interrupt: INT, default polarity/trigger, bus 0 irq -> IO APIC pin irq.
        entries.extend_from_slice(&[3, 0, 0, 0, 0, irq, ioapic_id, irq]);
        count += 1;
    }
    // Local interrupts: ExtINT on LINT0, NMI on LINT1 of all local APICs.
    entries.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0xff, 1]);
    count += 2;

    let table_addr = base + 16;
    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    table.push(4); // spec rev 1.4
    table.push(0); // checksum, below
    table.extend_from_slice(b"NOVAKVM ");
    table.extend_from_slice(b"000000000000");
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    table.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    table.extend_from_slice(&(count as u16).to_le_bytes());
    table.extend_from_slice(&APIC_ADDR.to_le_bytes());
    table.extend_from_slice(&[0u8; 4]); // extended length, checksum, reserved
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut fp = Vec::with_capacity(16);
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&(table_addr as u32).to_le_bytes());
    fp.push(1); // length in 16-byte units
    fp.push(4); // spec rev
    fp.push(0); // checksum
    fp.extend_from_slice(&[0u8; 5]); // features: config table present, no IMCR
    fp[10] = checksum(&fp);
    fp.extend_from_slice(&table);
    Ok(fp)
}

/// BIOS data area: EBDA segment pointer.
const BDA_EBDA_SEGMENT: u64 = 0x40e;
/// BIOS data area: base memory size in KiB.
const BDA_BASE_MEM_KIB: u64 = 0x413;

/// Write the MP table at the EBDA, and the BIOS data area fields that point there
/// (EBDA segment, base memory size) as a PC BIOS would.
pub fn write(mem: &GuestMem, apic_ids: &[u32]) -> Result<(), MpTableError> {
    let bytes = build(apic_ids, EBDA_START)?;
    mem.write_slice(&bytes, GuestAddress(EBDA_START))?;
    mem.write_obj((EBDA_START >> 4) as u16, GuestAddress(BDA_EBDA_SEGMENT))?;
    mem.write_obj((EBDA_START >> 10) as u16, GuestAddress(BDA_BASE_MEM_KIB))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_counts() {
        let t = build(&[0, 1, 2], EBDA_START).unwrap();
        assert_eq!(&t[0..4], b"_MP_");
        assert_eq!(t[..16].iter().fold(0u8, |a, &x| a.wrapping_add(x)), 0);
        let table = &t[16..];
        assert_eq!(&table[0..4], b"PCMP");
        let len = u16::from_le_bytes([table[4], table[5]]) as usize;
        assert_eq!(len, table.len());
        assert_eq!(table.iter().fold(0u8, |a, &x| a.wrapping_add(x)), 0);
        let cpus = table[44..].chunks(1).count();
        assert!(cpus > 0);
        assert_eq!(table[44], 0);
        assert_eq!(table[44 + 20], 0);
        assert_eq!(table[44 + 40], 0);
        assert_eq!(table[44 + 60], 1); // bus after 3 CPUs
        assert!(build(&[], 0).is_err());
        assert!(build(&[0xfe], 0).is_err());
    }
}
