//! virtio-blk on a raw image file: IN, OUT, FLUSH and GET_ID requests on one queue.
//!
//! Every request is checked against the image size (`sector * 512 + len <= capacity`)
//! and must be a whole number of sectors; anything else is answered with `IOERR`. Data
//! moves in 64 KiB chunks with `pread`/`pwrite` (host page cache, no O_DIRECT), so a
//! request of any size needs no large buffer. A read-only disk offers
//! `VIRTIO_BLK_F_RO` and answers writes with `IOERR`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT, Reader, Writer};
use vm_memory::ByteValued;

use super::{Backend, VirtioError, TYPE_BLOCK};
use crate::vmm::memory::GuestMem;

/// Sector size.
pub const SECTOR: u64 = 512;
/// Feature: device is read-only.
pub const F_RO: u64 = 1 << 5;
/// Feature: flush command.
pub const F_FLUSH: u64 = 1 << 9;
/// Request types.
pub const T_IN: u32 = 0;
/// Write.
pub const T_OUT: u32 = 1;
/// Flush.
pub const T_FLUSH: u32 = 4;
/// Device id string.
pub const T_GET_ID: u32 = 8;
/// Status: success.
pub const S_OK: u8 = 0;
/// Status: I/O error.
pub const S_IOERR: u8 = 1;
/// Status: unsupported request.
pub const S_UNSUPP: u8 = 2;
/// Length of the GET_ID answer.
pub const ID_LEN: usize = 20;

const CHUNK: usize = 64 << 10;

/// Request header (struct virtio_blk_req without data and status).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct RequestHeader {
    /// T_IN, T_OUT, ...
    pub kind: u32,
    /// Reserved (ioprio in legacy).
    pub reserved: u32,
    /// First sector.
    pub sector: u64,
}

// SAFETY: plain old data of integer fields without padding; any bit pattern is valid.
unsafe impl ByteValued for RequestHeader {}

/// A raw disk image behind a virtio-blk device.
pub struct Block {
    file: File,
    capacity: u64,
    read_only: bool,
    id: [u8; ID_LEN],
    buf: Vec<u8>,
}

impl Block {
    /// Open `path` (read-only if `read_only`); `serial` is returned by GET_ID (at most 20 bytes).
    pub fn open(path: &Path, read_only: bool, serial: &str) -> Result<Block, VirtioError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|e| VirtioError::Backend(format!("{}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| VirtioError::Backend(format!("{}: {e}", path.display())))?
            .len();
        let mut id = [0u8; ID_LEN];
        let s = serial.as_bytes();
        let n = s.len().min(ID_LEN);
        id[..n].copy_from_slice(&s[..n]);
        Ok(Block {
            file,
            capacity: len / SECTOR * SECTOR,
            read_only,
            id,
            buf: vec![0u8; CHUNK],
        })
    }

    /// Capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.capacity / SECTOR
    }

    fn in_bounds(&self, sector: u64, len: usize) -> bool {
        len as u64 % SECTOR == 0
            && sector
                .checked_mul(SECTOR)
                .and_then(|o| o.checked_add(len as u64))
                .is_some_and(|end| end <= self.capacity)
    }

    /// Serve one request; returns the number of bytes written into the chain.
    fn request(
        &mut self,
        mem: &GuestMem,
        chain: DescriptorChain<&GuestMem>,
    ) -> Result<u32, VirtioError> {
        let bad = |e: virtio_queue::Error| VirtioError::Queue(format!("descriptor chain: {e}"));
        let mut reader = Reader::new(mem, chain.clone()).map_err(bad)?;
        let mut writer = Writer::new(mem, chain).map_err(bad)?;
        let avail = writer.available_bytes();
        if avail == 0 {
            return Err(VirtioError::Queue(
                "block request without a status byte".into(),
            ));
        }
        let mut status_w = writer.split_at(avail - 1).map_err(bad)?;
        let status = match reader.read_obj::<RequestHeader>() {
            Err(_) => S_IOERR,
            Ok(h) => self.execute(h, &mut reader, &mut writer),
        };
        status_w
            .write_obj(status)
            .map_err(|e| VirtioError::Queue(format!("status byte: {e}")))?;
        Ok((writer.bytes_written() + 1) as u32)
    }

    fn execute(&mut self, h: RequestHeader, reader: &mut Reader, writer: &mut Writer) -> u8 {
        match h.kind {
            T_IN => {
                let len = writer.available_bytes();
                if !self.in_bounds(h.sector, len) {
                    return S_IOERR;
                }
                let mut off = h.sector * SECTOR;
                let mut left = len;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let chunk = &mut self.buf[..n];
                    if self.file.read_exact_at(chunk, off).is_err()
                        || writer.write_all(chunk).is_err()
                    {
                        return S_IOERR;
                    }
                    off += n as u64;
                    left -= n;
                }
                S_OK
            }
            T_OUT => {
                let len = reader.available_bytes();
                if self.read_only || !self.in_bounds(h.sector, len) {
                    return S_IOERR;
                }
                let mut off = h.sector * SECTOR;
                let mut left = len;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let chunk = &mut self.buf[..n];
                    if reader.read_exact(chunk).is_err()
                        || self.file.write_all_at(chunk, off).is_err()
                    {
                        return S_IOERR;
                    }
                    off += n as u64;
                    left -= n;
                }
                S_OK
            }
            T_FLUSH => {
                if self.read_only || self.file.sync_data().is_ok() {
                    S_OK
                } else {
                    S_IOERR
                }
            }
            T_GET_ID => {
                let n = writer.available_bytes().min(ID_LEN);
                if writer.write_all(&self.id[..n]).is_err() {
                    return S_IOERR;
                }
                S_OK
            }
            _ => S_UNSUPP,
        }
    }
}

/// Pop and serve every available chain of `q` with `serve` (which returns the used
/// length). The available index is checked first: a driver that moves it by more than
/// the queue size broke the protocol.
pub fn drain_queue(
    mem: &GuestMem,
    q: &mut Queue,
    mut serve: impl FnMut(DescriptorChain<&GuestMem>) -> Result<u32, VirtioError>,
) -> Result<bool, VirtioError> {
    let mut used = false;
    loop {
        let chain = {
            let mut it = q
                .iter(mem)
                .map_err(|e| VirtioError::Queue(format!("available ring: {e}")))?;
            match it.next() {
                Some(c) => c,
                None => break,
            }
        };
        let head = chain.head_index();
        let len = serve(chain)?;
        q.add_used(mem, head, len)
            .map_err(|e| VirtioError::Queue(format!("used ring: {e}")))?;
        used = true;
    }
    Ok(used)
}

impl Backend for Block {
    fn device_type(&self) -> u16 {
        TYPE_BLOCK
    }

    fn class(&self) -> u32 {
        0x01_80_00 // mass storage, other
    }

    fn queues(&self) -> usize {
        1
    }

    fn features(&self) -> u64 {
        F_FLUSH | if self.read_only { F_RO } else { 0 }
    }

    fn config(&self) -> Vec<u8> {
        let mut c = vec![0u8; 60];
        c[..8].copy_from_slice(&self.sectors().to_le_bytes());
        c
    }

    fn process(
        &mut self,
        mem: &GuestMem,
        queues: &mut [Queue],
        index: usize,
    ) -> Result<bool, VirtioError> {
        let Some(q) = queues.get_mut(index) else {
            return Ok(false);
        };
        drain_queue(mem, q, |chain| self.request(mem, chain))
    }
}
