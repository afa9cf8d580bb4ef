//! Minimal ACPI tables so guests find CPUs and can power off the ACPI way:
//! RSDP -> XSDT -> {FADT -> DSDT, MADT}. The FADT is hardware-reduced: its
//! SLEEP_CONTROL_REG is the high byte (port 0x605) of the q35-style PM1a_CNT at 0x604,
//! so `SLP_TYP | SLP_EN` written there powers off exactly like a 16-bit 0x2000 to 0x604.
//! The DSDT holds `\_S5_` and the PCI root bridge `\_SB.PCI0` (see `devices::pci::aml`).

use vm_memory::{Bytes, GuestAddress};

use crate::vmm::devices::pci::aml;
use crate::vmm::memory::GuestMem;

/// ACPI errors.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// Writing the tables failed.
    #[error("writing ACPI tables: {0}")]
    Write(#[from] vm_memory::GuestMemoryError),
    /// The tables do not fit their area.
    #[error("ACPI tables too large ({0} bytes)")]
    TooLarge(usize),
}

/// RSDP address (in the reserved BIOS area; guests also find it by scanning there).
pub const RSDP_START: u64 = 0xe0000;
/// End of the area the tables live in.
const ACPI_END: u64 = 0x10_0000;
/// Port of the FADT sleep control register (high byte of PM1a_CNT).
pub const SLEEP_CONTROL_PORT: u16 = 0x605;
/// Port of the FADT sleep status register.
pub const SLEEP_STATUS_PORT: u16 = 0x601;

const OEM_ID: &[u8; 6] = b"NOVAKV";
const OEM_TABLE_ID: &[u8; 8] = b"NOVAKVM ";

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, &x| a.wrapping_add(x)))
}

/// An SDT: 36-byte header + body, checksum fixed by [`Sdt::finish`].
struct Sdt(Vec<u8>);

impl Sdt {
    fn new(sig: &[u8; 4], revision: u8) -> Sdt {
        let mut v = Vec::with_capacity(256);
        v.extend_from_slice(sig);
        v.extend_from_slice(&[0; 4]); // length
        v.push(revision);
        v.push(0); // checksum
        v.extend_from_slice(OEM_ID);
        v.extend_from_slice(OEM_TABLE_ID);
        v.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
        v.extend_from_slice(b"NOVA"); // creator id
        v.extend_from_slice(&1u32.to_le_bytes()); // creator revision
        Sdt(v)
    }
    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[4..8].copy_from_slice(&len.to_le_bytes());
        self.0[9] = 0;
        self.0[9] = checksum(&self.0);
        self.0
    }
}

/// Generic address structure: 8-bit system I/O port.
fn gas_io8(port: u16) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // system I/O
    g[1] = 8; // bit width
    g[3] = 1; // byte access
    g[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    g
}

fn dsdt(pci: &[(usize, u32)]) -> Vec<u8> {
    let mut t = Sdt::new(b"DSDT", 2);
    // Name (\_S5_, Package (4) { 5, 5, 0, 0 })
    t.0.extend_from_slice(&[
        0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00,
    ]);
    t.0.extend(aml::pci_root(pci));
    t.finish()
}

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut b = vec![0u8; 276 - 36];
    let at = |off: usize| off - 36;
    b[at(40)..at(44)].copy_from_slice(&(dsdt_addr as u32).to_le_bytes()); // DSDT
    b[at(45)] = 0; // preferred PM profile: unspecified
                   // IAPC_BOOT_ARCH: no VGA, no MSI disable; legacy devices and 8042 present.
    b[at(109)..at(111)].copy_from_slice(&0x0003u16.to_le_bytes());
    // Flags: WBINVD | PROC_C1 | PWR_BUTTON (control method absent) | SLP_BUTTON |
    // RESET_REG_SUP | HW_REDUCED_ACPI.
    let flags: u32 = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 10) | (1 << 20);
    b[at(112)..at(116)].copy_from_slice(&flags.to_le_bytes());
    // RESET_REG: port 0xcf9, value 0x6.
    b[at(116)..at(128)].copy_from_slice(&gas_io8(0xcf9));
    b[at(128)] = 0x06;
    b[at(129)..at(131)].copy_from_slice(&0u16.to_le_bytes()); // ARM boot arch
    b[at(131)] = 5; // FADT minor version (ACPI 6.5)
    b[at(140)..at(148)].copy_from_slice(&dsdt_addr.to_le_bytes()); // X_DSDT
    b[at(244)..at(256)].copy_from_slice(&gas_io8(SLEEP_CONTROL_PORT));
    b[at(256)..at(268)].copy_from_slice(&gas_io8(SLEEP_STATUS_PORT));
    b[at(268)..at(276)].copy_from_slice(b"NOVAKVM\0"); // hypervisor vendor identity
    let mut t = Sdt::new(b"FACP", 6);
    t.0.extend_from_slice(&b);
    t.finish()
}

fn madt(apic_ids: &[u32]) -> Vec<u8> {
    let mut t = Sdt::new(b"APIC", 5);
    t.0.extend_from_slice(&0xfee0_0000u32.to_le_bytes()); // local APIC address
    t.0.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT: 8259 PICs present
    for (uid, &id) in apic_ids.iter().enumerate() {
        t.0.extend_from_slice(&[0, 8, uid as u8, id as u8]);
        t.0.extend_from_slice(&1u32.to_le_bytes()); // enabled
    }
    let ioapic_id = apic_ids.iter().max().map_or(1, |m| m + 1) as u8;
    t.0.extend_from_slice(&[1, 12, ioapic_id, 0]);
    t.0.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
    t.0.extend_from_slice(&0u32.to_le_bytes()); // GSI base
                                                // Local APIC NMI on LINT1 of all processors.
    t.0.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
    t.finish()
}

/// Guest NUMA topology for the SRAT.
#[derive(Debug, Clone, Default)]
pub struct NumaInfo {
    /// (APIC id, proximity domain) per vCPU.
    pub cpus: Vec<(u32, u32)>,
    /// (guest physical start, length, proximity domain) per RAM range.
    pub memory: Vec<(u64, u64, u32)>,
}

fn srat(numa: &NumaInfo) -> Vec<u8> {
    let mut t = Sdt::new(b"SRAT", 3);
    t.0.extend_from_slice(&1u32.to_le_bytes()); // reserved, must be 1
    t.0.extend_from_slice(&[0; 8]);
    for &(apic, node) in &numa.cpus {
        let d = node.to_le_bytes();
        t.0.extend_from_slice(&[0, 16, d[0], apic as u8]);
        t.0.extend_from_slice(&1u32.to_le_bytes()); // enabled
        t.0.extend_from_slice(&[0, d[1], d[2], d[3]]);
        t.0.extend_from_slice(&0u32.to_le_bytes()); // clock domain
    }
    for &(base, len, node) in &numa.memory {
        t.0.extend_from_slice(&[1, 40]);
        t.0.extend_from_slice(&node.to_le_bytes());
        t.0.extend_from_slice(&[0; 2]);
        t.0.extend_from_slice(&base.to_le_bytes());
        t.0.extend_from_slice(&len.to_le_bytes());
        t.0.extend_from_slice(&[0; 4]);
        t.0.extend_from_slice(&1u32.to_le_bytes()); // enabled
        t.0.extend_from_slice(&[0; 8]);
    }
    t.finish()
}

fn rsdp(xsdt_addr: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(36);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0); // checksum (first 20 bytes)
    r.extend_from_slice(OEM_ID);
    r.push(2); // revision
    r.extend_from_slice(&0u32.to_le_bytes()); // RSDT address: none
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt_addr.to_le_bytes());
    r.extend_from_slice(&[0; 4]); // extended checksum + reserved
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// Build the tables for CPUs with the given APIC ids, laid out from [`RSDP_START`];
/// with `numa`, an SRAT describes the guest NUMA cells; `pci` is the INTA# routing
/// `(slot, GSI)` of the PCI devices.
pub fn build(apic_ids: &[u32], numa: Option<&NumaInfo>, pci: &[(usize, u32)]) -> Vec<u8> {
    let align = |n: usize| (n + 15) & !15;
    let xsdt_off = align(36);
    let xsdt_len = 36 + 8 * if numa.is_some() { 3 } else { 2 };
    let dsdt = dsdt(pci);
    let dsdt_off = align(xsdt_off + xsdt_len);
    let fadt_off = align(dsdt_off + dsdt.len());
    let fadt = fadt(RSDP_START + dsdt_off as u64);
    let madt_off = align(fadt_off + fadt.len());
    let madt = madt(apic_ids);
    let srat_off = align(madt_off + madt.len());
    let srat = numa.map(srat);

    let mut xsdt = Sdt::new(b"XSDT", 1);
    let mut entries = vec![fadt_off, madt_off];
    if srat.is_some() {
        entries.push(srat_off);
    }
    for off in entries {
        xsdt.0
            .extend_from_slice(&(RSDP_START + off as u64).to_le_bytes());
    }
    let mut parts = vec![
        (0, rsdp(RSDP_START + xsdt_off as u64)),
        (xsdt_off, xsdt.finish()),
        (dsdt_off, dsdt),
        (fadt_off, fadt),
        (madt_off, madt),
    ];
    if let Some(srat) = srat {
        parts.push((srat_off, srat));
    }
    let mut out = Vec::with_capacity(1024);
    for (off, bytes) in parts {
        out.resize(off, 0);
        out.extend_from_slice(&bytes);
    }
    out
}

/// Write the tables into guest memory; returns the RSDP address.
pub fn write(
    mem: &GuestMem,
    apic_ids: &[u32],
    numa: Option<&NumaInfo>,
    pci: &[(usize, u32)],
) -> Result<u64, AcpiError> {
    let bytes = build(apic_ids, numa, pci);
    if RSDP_START + bytes.len() as u64 > ACPI_END {
        return Err(AcpiError::TooLarge(bytes.len()));
    }
    mem.write_slice(&bytes, GuestAddress(RSDP_START))?;
    Ok(RSDP_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
    }

    #[test]
    fn tables_checksum_and_link() {
        let numa = NumaInfo {
            cpus: vec![(0, 0), (1, 0), (2, 1)],
            memory: vec![(0, 1 << 30, 0), (1 << 30, 1 << 30, 1)],
        };
        check(&build(&[0, 1, 2], None, &[]), &[b"FACP", b"APIC"]);
        check(
            &build(&[0, 1, 2], Some(&numa), &[(1, 16)]),
            &[b"FACP", b"APIC", b"SRAT"],
        );
        let big = build(&(0..254).collect::<Vec<_>>(), Some(&numa), &[(1, 16); 31]);
        assert!(RSDP_START + big.len() as u64 <= ACPI_END);
    }

    fn check(t: &[u8], want: &[&[u8; 4]]) {
        let rd32 = |o: usize| u32::from_le_bytes(t[o..o + 4].try_into().unwrap()) as usize;
        let rd64 =
            |o: usize| (u64::from_le_bytes(t[o..o + 8].try_into().unwrap()) - RSDP_START) as usize;
        assert_eq!(&t[..8], b"RSD PTR ");
        assert_eq!(sum(&t[..20]), 0);
        assert_eq!(sum(&t[..36]), 0);
        let xsdt = rd64(24);
        assert_eq!(&t[xsdt..xsdt + 4], b"XSDT");
        let len = rd32(xsdt + 4);
        assert_eq!(sum(&t[xsdt..xsdt + len]), 0);
        let mut sigs = Vec::new();
        for i in 0..(len - 36) / 8 {
            let a = rd64(xsdt + 36 + 8 * i);
            let l = rd32(a + 4);
            assert_eq!(sum(&t[a..a + l]), 0);
            let sig: [u8; 4] = t[a..a + 4].try_into().unwrap();
            sigs.push(sig);
            match &sig {
                b"FACP" => {
                    assert_eq!(l, 276);
                    let d = rd64(a + 140);
                    assert_eq!(&t[d..d + 4], b"DSDT");
                    assert_eq!(sum(&t[d..d + rd32(d + 4)]), 0);
                }
                b"APIC" => assert_eq!(l, 44 + 3 * 8 + 12 + 6),
                b"SRAT" => {
                    assert_eq!(l, 48 + 3 * 16 + 2 * 40);
                    assert_eq!(t[a + 48 + 2 * 16 + 2], 1); // vCPU 2 in domain 1
                    assert_eq!(t[a + 48 + 3 * 16 + 40 + 2], 1); // 2nd range in domain 1
                }
                _ => panic!("unexpected table"),
            }
        }
        let want: Vec<[u8; 4]> = want.iter().map(|w| **w).collect();
        assert_eq!(sigs, want);
    }
}

#[cfg(test)]
mod iasl_tests {
    /// Disassemble the DSDT with ACPICA's `iasl` (package acpica-tools) when it is
    /// installed: the AML must decode to the PCI root bridge with its resources.
    #[test]
    fn dsdt_disassembles_with_iasl() {
        if std::process::Command::new("iasl")
            .arg("-v")
            .output()
            .is_err()
        {
            eprintln!("iasl not installed (apt-get install acpica-tools): skipped");
            return;
        }
        let t = super::build(&[0, 1], None, &[(1, 16), (2, 17)]);
        let xsdt = u64::from_le_bytes(t[24..32].try_into().unwrap()) - super::RSDP_START;
        let fadt = u64::from_le_bytes(
            t[xsdt as usize + 36..xsdt as usize + 44]
                .try_into()
                .unwrap(),
        ) - super::RSDP_START;
        let d = u64::from_le_bytes(
            t[fadt as usize + 140..fadt as usize + 148]
                .try_into()
                .unwrap(),
        ) - super::RSDP_START;
        let len = u32::from_le_bytes(t[d as usize + 4..d as usize + 8].try_into().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let aml = dir.path().join("dsdt.aml");
        std::fs::write(&aml, &t[d as usize..d as usize + len as usize]).unwrap();
        let out = std::process::Command::new("iasl")
            .current_dir(dir.path())
            .args(["-d", "dsdt.aml"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dsl = std::fs::read_to_string(dir.path().join("dsdt.dsl")).unwrap();
        if std::env::var_os("NOVAKVM_SHOW_DSL").is_some() {
            eprintln!("{dsl}");
        }
        for want in [
            "Device (PCI0)",
            "EisaId (\"PNP0A03\")",
            "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
            "IO (Decode16,\n                    0x0CF8,",
            "0xC0000000,         // Range Minimum",
            "0xDFFFFFFF,         // Range Maximum",
            "0x0001FFFF,",
            "0x0002FFFF,",
            "Name (_S5, Package",
        ] {
            assert!(dsl.contains(want), "missing {want:?} in:\n{dsl}");
        }
    }
}
