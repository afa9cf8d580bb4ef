//! COM1: vm-superio 8250 UART with IRQ 4 through an irqfd, writing into the console log.
//!
//! [`ConsoleLog`] keeps the last bytes in memory (for `console_tail`) and mirrors output to
//! standard output or to a size-bounded file: when the file would pass its bound it is
//! rewritten with the newest three quarters of the bound.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// Base port of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// IRQ of COM1.
pub const COM1_IRQ: u32 = 4;

/// Serial/console errors.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// The log file could not be opened.
    #[error("serial log {path}: {source}")]
    Open {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The interrupt eventfd could not be created.
    #[error("serial interrupt eventfd: {0}")]
    EventFd(std::io::Error),
}

/// Where console output goes.
enum Sink {
    Stdout,
    File { file: File, len: u64 },
}

/// Console output: ring of the last bytes plus stdout or a bounded file.
pub struct ConsoleLog {
    ring: VecDeque<u8>,
    bound: usize,
    sink: Sink,
}

impl ConsoleLog {
    /// Console to standard output, remembering the last `bound` bytes.
    pub fn stdout(bound: u64) -> ConsoleLog {
        ConsoleLog {
            ring: VecDeque::new(),
            bound: bound as usize,
            sink: Sink::Stdout,
        }
    }

    /// Console to `path` (truncated), never longer than `bound` bytes.
    pub fn file(path: &Path, bound: u64) -> Result<ConsoleLog, SerialError> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(|source| SerialError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(ConsoleLog {
            ring: VecDeque::new(),
            bound: bound as usize,
            sink: Sink::File { file, len: 0 },
        })
    }

    /// Append output bytes.
    pub fn push(&mut self, buf: &[u8]) {
        self.ring.extend(buf);
        if self.ring.len() > self.bound {
            let extra = self.ring.len() - self.bound;
            self.ring.drain(..extra);
        }
        match &mut self.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                // Console output is best effort: a closed stdout must not stop the guest.
                let _ = out.write_all(buf).and_then(|_| out.flush());
            }
            Sink::File { file, len } => {
                if *len + buf.len() as u64 > self.bound as u64 {
                    // Rewrite the file with the newest 3/4 of the bound.
                    let keep = (self.bound * 3 / 4).min(self.ring.len());
                    let start = self.ring.len() - keep;
                    let newest: Vec<u8> = self.ring.range(start..).copied().collect();
                    let res = file
                        .set_len(0)
                        .and_then(|_| file.seek(SeekFrom::Start(0)))
                        .and_then(|_| file.write_all(&newest));
                    *len = if res.is_ok() { keep as u64 } else { 0 };
                } else if file.write_all(buf).is_ok() {
                    *len += buf.len() as u64;
                }
            }
        }
    }

    /// The last `n` bytes of output.
    pub fn tail(&self, n: usize) -> Vec<u8> {
        let start = self.ring.len().saturating_sub(n);
        self.ring.range(start..).copied().collect()
    }
}

/// Shared handle to the console log.
pub type SharedConsole = Arc<Mutex<ConsoleLog>>;

/// `Write` adapter the UART writes into.
pub struct ConsoleWriter(pub SharedConsole);

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut c) => c.push(buf),
            Err(p) => p.into_inner().push(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Interrupt line of the UART: an eventfd registered as irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> Result<(), std::io::Error> {
        self.0.write(1)
    }
}

/// The COM1 device.
pub struct SerialDevice {
    uart: Serial<IrqTrigger, NoEvents, ConsoleWriter>,
}

impl SerialDevice {
    /// New UART writing into `console`, raising `irq`.
    pub fn new(console: SharedConsole, irq: EventFd) -> SerialDevice {
        SerialDevice {
            uart: Serial::new(IrqTrigger(irq), ConsoleWriter(console)),
        }
    }

    /// Port read at `offset` (0..8).
    pub fn read(&mut self, offset: u8) -> u8 {
        self.uart.read(offset)
    }

    /// Queue input bytes for the guest; returns how many fit in the receive FIFO.
    pub fn input(&mut self, bytes: &[u8]) -> usize {
        let room = self.uart.fifo_capacity().min(bytes.len());
        if room == 0 {
            return 0;
        }
        match self.uart.enqueue_raw_bytes(&bytes[..room]) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = ?e, "serial input");
                0
            }
        }
    }

    /// Port write at `offset` (0..8).
    pub fn write(&mut self, offset: u8, value: u8) {
        if let Err(e) = self.uart.write(offset, value) {
            tracing::debug!(error = ?e, "serial write");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_log_stays_bounded_and_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        let mut c = ConsoleLog::file(&p, 4096).unwrap();
        for i in 0..2000u32 {
            c.push(format!("line {i}\n").as_bytes());
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(len <= 4096, "{len}");
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("line 1999\n"));
        assert!(text.len() >= 3 * 1024 - 20);
        assert_eq!(c.tail(10), b"line 1999\n");
        assert_eq!(c.tail(100_000).len(), 4096);
    }
}
