//! Port I/O and MMIO dispatch. Unknown accesses are ignored (reads return all ones) and
//! logged at debug level with a rate limit; nothing a guest does here can panic the VMM.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::pci::PciBus;
use super::serial::{SerialDevice, COM1_BASE};
use super::{i8042, pm, PioAction};

/// Log at most this many unknown accesses, then one in every [`LOG_EVERY`].
const LOG_FIRST: u64 = 32;
const LOG_EVERY: u64 = 10_000;

static UNKNOWN: AtomicU64 = AtomicU64::new(0);

fn log_unknown(kind: &str, addr: u64, len: usize, write: Option<&[u8]>) {
    let n = UNKNOWN.fetch_add(1, Ordering::Relaxed);
    if n < LOG_FIRST || n % LOG_EVERY == 0 {
        tracing::debug!(
            kind,
            addr = format_args!("{addr:#x}"),
            len,
            ?write,
            count = n + 1,
            "unhandled guest access"
        );
    }
}

/// Number of unknown accesses so far (for tests and status).
pub fn unknown_accesses() -> u64 {
    UNKNOWN.load(Ordering::Relaxed)
}

/// The devices a vCPU exit may reach.
pub struct PioBus {
    serial: Mutex<SerialDevice>,
    pci: PciBus,
}

impl PioBus {
    /// Bus with COM1.
    pub fn new(serial: SerialDevice) -> PioBus {
        PioBus {
            serial: Mutex::new(serial),
            pci: PciBus::new(),
        }
    }

    /// PCI bus 0 (host bridge and virtio devices).
    pub fn pci(&self) -> &PciBus {
        &self.pci
    }

    fn with_serial<R>(&self, f: impl FnOnce(&mut SerialDevice) -> R) -> R {
        match self.serial.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Feed console input to COM1; returns how many bytes were taken.
    pub fn serial_input(&self, bytes: &[u8]) -> usize {
        self.with_serial(|s| s.input(bytes))
    }

    /// Port read.
    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        match port {
            p if (COM1_BASE..COM1_BASE + 8).contains(&p) && data.len() == 1 => {
                data[0] = self.with_serial(|s| s.read((p - COM1_BASE) as u8));
            }
            i8042::DATA_PORT | i8042::COMMAND_PORT if data.len() == 1 => {
                data[0] = i8042::read(port);
            }
            // PM1 status/enable and control (SCI_EN = 1: always in ACPI mode).
            p if (pm::PM1A_EVT..pm::PM1A_CNT + 2).contains(&p) => {
                data.fill(0);
                if let (pm::PM1A_CNT, Some(b)) = (p, data.first_mut()) {
                    *b = 1;
                }
            }
            p if (0xcf8..0xd00).contains(&p) && self.pci.pio_read(p, data) => {}
            _ => {
                data.fill(0xff);
                log_unknown("pio-read", u64::from(port), data.len(), None);
            }
        }
    }

    /// Port write.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> PioAction {
        match port {
            p if (COM1_BASE..COM1_BASE + 8).contains(&p) && data.len() == 1 => {
                self.with_serial(|s| s.write((p - COM1_BASE) as u8, data[0]));
                PioAction::None
            }
            i8042::DATA_PORT | i8042::COMMAND_PORT if data.len() == 1 => {
                i8042::write(port, data[0])
            }
            pm::PM1A_CNT | pm::PM1A_CNT_HIGH | pm::RESET_CNT => pm::write(port, data),
            p if (pm::PM1A_EVT..pm::PM1A_CNT).contains(&p) => PioAction::None,
            p if (0xcf8..0xd00).contains(&p) && self.pci.pio_write(p, data) => PioAction::None,
            _ => {
                log_unknown("pio-write", u64::from(port), data.len(), Some(data));
                PioAction::None
            }
        }
    }

    /// MMIO read: PCI BARs; anything else reads all ones.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        if self.pci.mmio_read(addr, data) {
            return;
        }
        data.fill(0xff);
        log_unknown("mmio-read", addr, data.len(), None);
    }

    /// MMIO write: PCI BARs; anything else is ignored.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        if self.pci.mmio_write(addr, data) {
            return;
        }
        log_unknown("mmio-write", addr, data.len(), Some(data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::devices::serial::ConsoleLog;
    use std::sync::Arc;
    use vmm_sys_util::eventfd::EventFd;

    #[test]
    fn garbage_never_panics() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let console = Arc::new(Mutex::new(ConsoleLog::file(f.path(), 4096).unwrap()));
        let bus = PioBus::new(SerialDevice::new(console.clone(), EventFd::new(0).unwrap()));
        let mut x = 0x1234_5678u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = (x & 0xffff) as u16;
            if port == 0x3f8 || port == 0x64 || port == 0x604 || port == 0x605 || port == 0xcf9 {
                continue;
            }
            let len = [0usize, 1, 2, 4, 8][(x >> 20) as usize % 5];
            let data = x.to_le_bytes();
            assert_eq!(bus.pio_write(port, &data[..len]), PioAction::None);
            let mut buf = vec![0u8; len];
            bus.pio_read(port, &mut buf);
            bus.mmio_write(x, &data[..len]);
            bus.mmio_read(x, &mut buf);
        }
        assert!(unknown_accesses() > 0);
        let mut b = [0u8; 1];
        bus.pio_read(0x1234, &mut b);
        assert_eq!(b[0], 0xff);
        assert_eq!(bus.pio_write(0x604, &[0, 0x20]), PioAction::PowerOff);
        assert_eq!(bus.pio_write(0x64, &[0xfe]), PioAction::Reset);
        bus.pio_write(0x3f8, b"A");
        assert_eq!(console.lock().unwrap().tail(1), b"A");
        // Input shows up in the receive buffer register.
        assert_eq!(bus.serial_input(b"hi"), 2);
        let mut b = [0u8; 1];
        bus.pio_read(0x3f8, &mut b);
        assert_eq!(&b, b"h");
    }
}
