//! PCI: configuration space through the legacy 0xCF8/0xCFC mechanism (type 1), a host
//! bridge at 00:00.0, and bus 0 with up to 31 devices, each with one 32-bit memory BAR
//! in the PCI MMIO window of the 3-4 GiB hole.
//!
//! BARs are assigned by the VMM (like firmware would); a guest may size and move them.
//! Everything a guest writes here is checked: unknown registers read as zero (present
//! function) or all ones (absent function), writes to read-only registers are ignored.

use std::sync::Mutex;

pub mod aml;

/// CONFIG_ADDRESS port.
pub const CONFIG_ADDRESS: u16 = 0xcf8;
/// CONFIG_DATA port (0xcfc..0xcff).
pub const CONFIG_DATA: u16 = 0xcfc;
/// Start of the PCI MMIO window (BARs), inside the 3-4 GiB hole.
pub const MMIO_WINDOW_START: u64 = 0xc000_0000;
/// End (exclusive) of the PCI MMIO window.
pub const MMIO_WINDOW_END: u64 = 0xe000_0000;
/// Size of every device BAR.
pub const BAR_SIZE: u64 = 0x4000;
/// Highest device number on bus 0.
pub const MAX_DEVICES: usize = 31;
/// First GSI used for PCI INTx (IOAPIC pins 16..23, `_PRT` in the DSDT).
pub const FIRST_INTX_GSI: u32 = 16;
/// Number of IOAPIC pins used for PCI INTx.
pub const INTX_GSIS: u32 = 8;

/// PCI errors.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    /// Bus 0 is full.
    #[error("PCI bus 0 is full ({MAX_DEVICES} devices)")]
    BusFull,
}

/// GSI of the INTA# line of device `slot` (1-based slots; the host bridge has none).
pub fn intx_gsi(slot: usize) -> u32 {
    FIRST_INTX_GSI + (slot as u32).wrapping_sub(1) % INTX_GSIS
}

/// Guest address of the BAR of device `slot` as assigned by the VMM.
pub fn default_bar(slot: usize) -> u64 {
    MMIO_WINDOW_START + slot as u64 * BAR_SIZE
}

/// A PCI function with one 32-bit memory BAR of [`BAR_SIZE`] bytes.
pub trait PciFunction: Send {
    /// Read a dword of the device-specific part of config space (offset 0x40..0x100,
    /// dword aligned); the header (0..0x40) is handled by [`PciBus`].
    fn config_read(&mut self, offset: usize) -> u32;
    /// Vendor id, device id, class code (24 bits), revision, subsystem vendor/id.
    fn ids(&self) -> PciIds;
    /// Offset of the first capability in config space (0 = none).
    fn capabilities(&self) -> u8;
    /// MMIO read at `offset` inside the BAR.
    fn bar_read(&mut self, offset: u64, data: &mut [u8]);
    /// MMIO write at `offset` inside the BAR.
    fn bar_write(&mut self, offset: u64, data: &[u8]);
}

/// Identification registers.
#[derive(Debug, Clone, Copy)]
pub struct PciIds {
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class code: class << 16 | subclass << 8 | prog-if.
    pub class: u32,
    /// Revision id.
    pub revision: u8,
    /// Subsystem vendor id.
    pub subsys_vendor: u16,
    /// Subsystem id.
    pub subsys: u16,
}

struct Slot {
    dev: Box<dyn PciFunction>,
    command: u16,
    bar: u32,
    irq_line: u8,
    gsi: u32,
}

struct Inner {
    address: u32,
    bridge_command: u16,
    slots: Vec<Slot>,
}

/// Bus 0: host bridge plus devices in slots 1.. (in the order they were added).
pub struct PciBus {
    inner: Mutex<Inner>,
}

impl Default for PciBus {
    fn default() -> Self {
        Self::new()
    }
}

const BAR_MASK: u32 = !(BAR_SIZE as u32 - 1);
/// Command register: memory space enable.
const CMD_MEMORY: u16 = 0x2;

impl PciBus {
    /// Empty bus with only the host bridge.
    pub fn new() -> PciBus {
        PciBus {
            inner: Mutex::new(Inner {
                address: 0,
                bridge_command: 0,
                slots: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Add a device; returns its slot number (device number on bus 0).
    pub fn add(&self, dev: Box<dyn PciFunction>) -> Result<usize, PciError> {
        let mut inner = self.lock();
        let slot = inner.slots.len() + 1;
        if slot > MAX_DEVICES {
            return Err(PciError::BusFull);
        }
        let gsi = intx_gsi(slot);
        inner.slots.push(Slot {
            dev,
            command: CMD_MEMORY,
            bar: default_bar(slot) as u32,
            irq_line: gsi as u8,
            gsi,
        });
        Ok(slot)
    }

    /// Number of devices (without the host bridge).
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// True when only the host bridge is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Port read in 0xcf8..0xd00; false if the port is not PCI config.
    pub fn pio_read(&self, port: u16, data: &mut [u8]) -> bool {
        let mut inner = self.lock();
        match port {
            CONFIG_ADDRESS if data.len() == 4 => {
                data.copy_from_slice(&inner.address.to_le_bytes());
                true
            }
            p if (CONFIG_DATA..CONFIG_DATA + 4).contains(&p) => {
                let shift = usize::from(p - CONFIG_DATA);
                let v = inner.config_read();
                let bytes = v.to_le_bytes();
                for (i, b) in data.iter_mut().enumerate() {
                    *b = bytes.get(shift + i).copied().unwrap_or(0xff);
                }
                true
            }
            _ => false,
        }
    }

    /// Port write in 0xcf8..0xd00; false if the port is not PCI config.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> bool {
        let mut inner = self.lock();
        match port {
            CONFIG_ADDRESS if data.len() == 4 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(data);
                inner.address = u32::from_le_bytes(b);
                true
            }
            p if (CONFIG_DATA..CONFIG_DATA + 4).contains(&p) => {
                let shift = usize::from(p - CONFIG_DATA);
                if shift + data.len() <= 4 {
                    inner.config_write(shift, data);
                }
                true
            }
            _ => false,
        }
    }

    /// MMIO read; false if no BAR covers `addr`.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) -> bool {
        let mut inner = self.lock();
        match inner.bar_slot(addr, data.len()) {
            Some((i, off)) => {
                inner.slots[i].dev.bar_read(off, data);
                true
            }
            None => false,
        }
    }

    /// MMIO write; false if no BAR covers `addr`.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> bool {
        let mut inner = self.lock();
        match inner.bar_slot(addr, data.len()) {
            Some((i, off)) => {
                inner.slots[i].dev.bar_write(off, data);
                true
            }
            None => false,
        }
    }

    /// Drop every device (stops their worker threads); the host bridge stays.
    pub fn clear(&self) {
        self.lock().slots.clear();
    }

    /// (slot, GSI) of every device, for the DSDT `_PRT`.
    pub fn routing(&self) -> Vec<(usize, u32)> {
        self.lock()
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i + 1, s.gsi))
            .collect()
    }
}

impl Inner {
    /// (slot index, function, register) of the current address if enabled, on bus 0.
    fn target(&self) -> Option<(usize, usize)> {
        let a = self.address;
        if a & 0x8000_0000 == 0 {
            return None;
        }
        let bus = (a >> 16) & 0xff;
        let dev = ((a >> 11) & 0x1f) as usize;
        let func = (a >> 8) & 0x7;
        let reg = (a & 0xfc) as usize;
        if bus != 0 || func != 0 {
            return None;
        }
        if dev > self.slots.len() {
            return None;
        }
        Some((dev, reg))
    }

    fn config_read(&mut self) -> u32 {
        let Some((dev, reg)) = self.target() else {
            return 0xffff_ffff;
        };
        if dev == 0 {
            return match reg {
                // Red Hat QEMU PCIe host bridge ids, class 06/00 host bridge.
                0x00 => 0x0008_1b36,
                0x04 => u32::from(self.bridge_command),
                0x08 => 0x0600_0000,
                0x2c => 0x1100_1af4,
                _ => 0,
            };
        }
        let s = &mut self.slots[dev - 1];
        let ids = s.dev.ids();
        match reg {
            0x00 => u32::from(ids.vendor) | u32::from(ids.device) << 16,
            // Status: capabilities list.
            0x04 => u32::from(s.command) | (0x10 << 16),
            0x08 => ids.class << 8 | u32::from(ids.revision),
            0x0c => 0,
            0x10 => s.bar,
            0x2c => u32::from(ids.subsys_vendor) | u32::from(ids.subsys) << 16,
            0x34 => u32::from(s.dev.capabilities()),
            // Interrupt line, INTA#.
            0x3c => u32::from(s.irq_line) | 1 << 8,
            r if r >= 0x40 => s.dev.config_read(r),
            _ => 0,
        }
    }

    fn config_write(&mut self, shift: usize, data: &[u8]) {
        let Some((dev, reg)) = self.target() else {
            return;
        };
        // Merge the partial write into the current dword value of writable registers.
        let merge = |old: u32| {
            let mut b = old.to_le_bytes();
            b[shift..shift + data.len()].copy_from_slice(data);
            u32::from_le_bytes(b)
        };
        if dev == 0 {
            if reg == 0x04 {
                self.bridge_command = merge(u32::from(self.bridge_command)) as u16;
            }
            return;
        }
        let s = &mut self.slots[dev - 1];
        match reg {
            0x04 => s.command = (merge(u32::from(s.command)) & 0x0547) as u16,
            // Memory BAR, 32-bit, non-prefetchable: low 4 bits read as 0.
            0x10 => s.bar = merge(s.bar) & BAR_MASK,
            0x3c => s.irq_line = merge(u32::from(s.irq_line)) as u8,
            _ => {}
        }
    }

    fn bar_slot(&self, addr: u64, len: usize) -> Option<(usize, u64)> {
        self.slots
            .iter()
            .position(|s| {
                let base = u64::from(s.bar);
                s.command & CMD_MEMORY != 0
                    && base != 0
                    && base != u64::from(BAR_MASK)
                    && addr >= base
                    && addr
                        .checked_add(len as u64)
                        .is_some_and(|e| e <= base + BAR_SIZE)
            })
            .map(|i| (i, addr - u64::from(self.slots[i].bar)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dummy(Vec<(u64, Vec<u8>)>);
    impl PciFunction for Dummy {
        fn config_read(&mut self, offset: usize) -> u32 {
            offset as u32
        }
        fn ids(&self) -> PciIds {
            PciIds {
                vendor: 0x1af4,
                device: 0x1042,
                class: 0x018000,
                revision: 1,
                subsys_vendor: 0x1af4,
                subsys: 0x40,
            }
        }
        fn capabilities(&self) -> u8 {
            0x40
        }
        fn bar_read(&mut self, _offset: u64, data: &mut [u8]) {
            data.fill(0x5a);
        }
        fn bar_write(&mut self, offset: u64, data: &[u8]) {
            self.0.push((offset, data.to_vec()));
        }
    }

    fn cfg(bus: &PciBus, dev: u32, reg: u32) -> u32 {
        bus.pio_write(
            CONFIG_ADDRESS,
            &(0x8000_0000 | dev << 11 | reg).to_le_bytes(),
        );
        let mut d = [0u8; 4];
        bus.pio_read(CONFIG_DATA, &mut d);
        u32::from_le_bytes(d)
    }

    fn set(bus: &PciBus, dev: u32, reg: u32, v: u32) {
        bus.pio_write(
            CONFIG_ADDRESS,
            &(0x8000_0000 | dev << 11 | reg).to_le_bytes(),
        );
        bus.pio_write(CONFIG_DATA, &v.to_le_bytes());
    }

    #[test]
    fn scan_size_and_move_bar() {
        let bus = PciBus::new();
        assert_eq!(bus.add(Box::new(Dummy(Vec::new()))).unwrap(), 1);
        assert_eq!(cfg(&bus, 0, 0), 0x0008_1b36);
        assert_eq!(cfg(&bus, 1, 0), 0x1042_1af4);
        assert_eq!(cfg(&bus, 2, 0), 0xffff_ffff);
        assert_eq!(cfg(&bus, 1, 0x08) >> 8, 0x018000);
        assert_eq!(cfg(&bus, 1, 0x3c), 0x100 | FIRST_INTX_GSI);
        assert_eq!(cfg(&bus, 1, 0x44), 0x44);
        let bar = cfg(&bus, 1, 0x10);
        assert_eq!(u64::from(bar), default_bar(1));
        let mut d = [0u8; 4];
        assert!(bus.mmio_read(u64::from(bar) + 8, &mut d));
        assert_eq!(d, [0x5a; 4]);
        // Sizing.
        set(&bus, 1, 0x10, 0xffff_ffff);
        assert_eq!(cfg(&bus, 1, 0x10), !(BAR_SIZE as u32 - 1));
        assert!(!bus.mmio_read(u64::from(bar), &mut d));
        set(&bus, 1, 0x10, 0xd000_0000);
        assert!(bus.mmio_write(0xd000_0010, &[1, 2]));
        assert!(!bus.mmio_write(0xd000_0000 + BAR_SIZE - 1, &[1, 2]));
        // Memory decode off.
        set(&bus, 1, 0x04, 0);
        assert!(!bus.mmio_read(0xd000_0000, &mut d));
        // Byte reads of config data.
        bus.pio_write(CONFIG_ADDRESS, &(0x8000_0000u32 | 1 << 11).to_le_bytes());
        let mut b = [0u8; 1];
        bus.pio_read(CONFIG_DATA + 2, &mut b);
        assert_eq!(b[0], 0x42);
    }

    #[test]
    fn garbage_config_accesses() {
        let bus = PciBus::new();
        bus.add(Box::new(Dummy(Vec::new()))).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = 0xcf8 + (x % 8) as u16;
            let len = [1usize, 2, 4, 3, 0][(x >> 8) as usize % 5];
            let v = (x >> 16).to_le_bytes();
            bus.pio_write(port, &v[..len]);
            let mut r = vec![0u8; len];
            bus.pio_read(port, &mut r);
            bus.mmio_write(x >> 32, &v[..len]);
            bus.mmio_read(x >> 30, &mut r);
        }
    }
}
