//! AML for the PCI root bridge `\_SB.PCI0` (PNP0A03): bus 0, the 0xCF8 config ports, the
//! I/O and MMIO windows in `_CRS`, and a `_PRT` routing INTA# of each device to its GSI.

use super::{MMIO_WINDOW_END, MMIO_WINDOW_START};

fn pkg_length(body_len: usize) -> Vec<u8> {
    // The length counts itself.
    if body_len + 1 < 0x40 {
        return vec![(body_len + 1) as u8];
    }
    for extra in 1..=3usize {
        let total = body_len + 1 + extra;
        if total < 1 << (4 + 8 * extra) {
            let mut v = vec![((extra as u8) << 6) | (total & 0xf) as u8];
            for i in 0..extra {
                v.push((total >> (4 + 8 * i)) as u8);
            }
            return v;
        }
    }
    vec![0]
}

fn with_pkg(op: &[u8], body: Vec<u8>) -> Vec<u8> {
    let mut v = op.to_vec();
    v.extend(pkg_length(body.len()));
    v.extend(body);
    v
}

fn int(v: u64) -> Vec<u8> {
    match v {
        0 => vec![0x00],
        1 => vec![0x01],
        v if v <= 0xff => vec![0x0a, v as u8],
        v if v <= 0xffff => {
            let mut o = vec![0x0b];
            o.extend((v as u16).to_le_bytes());
            o
        }
        v if v <= 0xffff_ffff => {
            let mut o = vec![0x0c];
            o.extend((v as u32).to_le_bytes());
            o
        }
        v => {
            let mut o = vec![0x0e];
            o.extend(v.to_le_bytes());
            o
        }
    }
}

fn name(n: &[u8; 4], value: Vec<u8>) -> Vec<u8> {
    let mut v = vec![0x08];
    v.extend_from_slice(n);
    v.extend(value);
    v
}

fn package(elems: Vec<Vec<u8>>) -> Vec<u8> {
    let mut body = vec![elems.len() as u8];
    for e in elems {
        body.extend(e);
    }
    with_pkg(&[0x12], body)
}

fn buffer(bytes: Vec<u8>) -> Vec<u8> {
    let mut body = int(bytes.len() as u64);
    body.extend(bytes);
    with_pkg(&[0x11], body)
}

/// Word address space descriptor (bus number or I/O range), producer, min/max fixed.
fn word_space(kind: u8, type_flags: u8, min: u16, max: u16) -> Vec<u8> {
    let mut v = vec![0x88, 0x0d, 0x00, kind, 0x0c, type_flags];
    for x in [0u16, min, max, 0, max.wrapping_sub(min).wrapping_add(1)] {
        v.extend(x.to_le_bytes());
    }
    v
}

fn crs() -> Vec<u8> {
    let mut r = word_space(2, 0, 0, 0); // bus 0..0
    r.extend([0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08]); // IO 0xcf8, 8 ports
    r.extend(word_space(1, 0x03, 0x0000, 0x0cf7));
    r.extend(word_space(1, 0x03, 0x0d00, 0xffff));
    // DWordMemory: producer, min/max fixed, read-write, non-cacheable.
    let (min, max) = (MMIO_WINDOW_START as u32, (MMIO_WINDOW_END - 1) as u32);
    r.extend([0x87, 0x17, 0x00, 0x00, 0x0c, 0x01]);
    for x in [0u32, min, max, 0, max - min + 1] {
        r.extend(x.to_le_bytes());
    }
    r.extend([0x79, 0x00]);
    r
}

/// `Scope (\_SB) { Device (PCI0) { ... } }` with INTA# routing `(slot, gsi)`.
pub fn pci_root(routing: &[(usize, u32)]) -> Vec<u8> {
    let mut dev = b"PCI0".to_vec();
    dev.extend(name(b"_HID", int(0x030a_d041))); // EisaId("PNP0A03")
    dev.extend(name(b"_ADR", int(0)));
    dev.extend(name(b"_SEG", int(0)));
    dev.extend(name(b"_UID", int(0)));
    dev.extend(name(b"_BBN", int(0)));
    dev.extend(name(b"_CRS", buffer(crs())));
    let prt = routing
        .iter()
        .map(|&(slot, gsi)| {
            package(vec![
                int(((slot as u64) << 16) | 0xffff),
                int(0),
                int(0),
                int(u64::from(gsi)),
            ])
        })
        .collect();
    dev.extend(name(b"_PRT", package(prt)));
    let device = with_pkg(&[0x5b, 0x82], dev);
    let mut scope = b"\\_SB_".to_vec();
    scope.extend(device);
    with_pkg(&[0x10], scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_lengths() {
        assert_eq!(pkg_length(10), vec![11]);
        assert_eq!(pkg_length(62), vec![63]);
        // 63 + 2 = 65 = 0x41 -> lead byte 0x41, then 0x04.
        assert_eq!(pkg_length(63), vec![0x41, 0x04]);
        assert_eq!(pkg_length(5000), vec![0x8b, 0x38, 0x01]);
    }

    #[test]
    fn root_bridge_shape() {
        let a = pci_root(&[(1, 16), (2, 17)]);
        assert_eq!(a[0], 0x10);
        let find = |pat: &[u8]| a.windows(pat.len()).position(|w| w == pat);
        assert!(find(b"PCI0").is_some());
        assert!(find(&[0x0c, 0x41, 0xd0, 0x0a, 0x03]).is_some());
        assert!(find(&[0x0c, 0xff, 0xff, 0x02, 0x00]).is_some()); // slot 2 address
        assert!(find(&[0x87, 0x17, 0x00]).is_some());
        let c = crs();
        assert_eq!(c.len(), 16 + 8 + 16 + 16 + 26 + 2);
    }
}
