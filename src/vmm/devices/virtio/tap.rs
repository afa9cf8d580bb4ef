//! Linux tap devices: `TUNSETIFF` with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, a 12-byte
//! vnet header (virtio 1.x) and no offloads. The tap is created if it does not exist
//! (and goes away with the VMM unless it was made persistent, e.g. by `ip tuntap add`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::VirtioError;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// Length of the virtio-net header with VERSION_1.
pub const VNET_HDR_LEN: usize = 12;

/// An open tap queue.
pub struct Tap {
    file: File,
    name: String,
}

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    pad: [u8; 22],
}

fn err(name: &str, what: &str, e: std::io::Error) -> VirtioError {
    VirtioError::Backend(format!("tap {name}: {what}: {e}"))
}

/// Is `name` usable as a Linux interface name?
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Taps this process has opened, kept open for its whole life: a guest reset with
/// `on_reset: restart` gets the same tap back (a duplicate of the descriptor), which needs
/// no `CAP_NET_ADMIN` (dropped after setup) and keeps a tap the VMM created alive.
static OPENED: std::sync::Mutex<Vec<(String, File)>> = std::sync::Mutex::new(Vec::new());

impl Tap {
    /// Open (or create) tap `name`; the same tap again if this process opened it before.
    pub fn open(name: &str) -> Result<Tap, VirtioError> {
        if !valid_name(name) {
            return Err(VirtioError::Backend(format!("bad tap name {name:?}")));
        }
        let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, f)) = opened.iter().find(|(n, _)| n == name) {
            let file = f.try_clone().map_err(|e| err(name, "dup", e))?;
            return Ok(Tap {
                file,
                name: name.to_string(),
            });
        }
        let tap = Self::open_new(name)?;
        let keep = tap.file.try_clone().map_err(|e| err(name, "dup", e))?;
        opened.push((name.to_string(), keep));
        Ok(tap)
    }

    fn open_new(name: &str) -> Result<Tap, VirtioError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| err(name, "/dev/net/tun", e))?;
        let mut req = IfReq {
            name: [0; 16],
            flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
            pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads (and may update) a struct ifreq, which IfReq lays out
        // (16-byte name, flags, padding to 40 bytes); the fd is an open tun file.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
        if r < 0 {
            return Err(err(name, "TUNSETIFF", std::io::Error::last_os_error()));
        }
        let hdr: libc::c_int = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which is valid.
        let r = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                TUNSETVNETHDRSZ,
                &hdr as *const libc::c_int,
            )
        };
        if r < 0 {
            return Err(err(
                name,
                "TUNSETVNETHDRSZ",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: TUNSETOFFLOAD takes its argument by value; 0 = no offloads.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, 0 as libc::c_ulong) };
        if r < 0 {
            return Err(err(name, "TUNSETOFFLOAD", std::io::Error::last_os_error()));
        }
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Raw fd for poll.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Read one frame (vnet header + Ethernet frame); `Ok(None)` when none is pending.
    pub fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self.file.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write one frame (vnet header + Ethernet frame).
    pub fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.file.write(frame).map(|_| ())
    }
}
