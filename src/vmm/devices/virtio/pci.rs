//! Modern virtio-pci transport (virtio 1.x, device id 0x1040 + type, revision 1).
//!
//! BAR 0 (32-bit memory, [`BAR_SIZE`](crate::vmm::devices::pci::BAR_SIZE)) layout:
//!
//! | offset | structure |
//! |---|---|
//! | 0x0000 | common configuration (0x38 bytes) |
//! | 0x1000 | ISR status (read clears) |
//! | 0x2000 | device configuration |
//! | 0x3000 | notify: queue `n` at 0x3000 + 4·n (`notify_off_multiplier` 4) |
//!
//! The notify addresses are KVM ioeventfds, so a queue kick never leaves the kernel; a
//! write that reaches the VMM anyway (BAR moved by the guest) signals the same eventfd.
//! No MSI-X: interrupts are INTx (pin A) through an irqfd on the in-kernel IOAPIC.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::EventFd;

use super::worker::{Ctl, WorkerHandle};
use super::{status, Shared, F_VERSION_1, QUEUE_MAX, VIRTIO_DEVICE_BASE, VIRTIO_VENDOR};
use crate::vmm::devices::pci::{PciFunction, PciIds};
use crate::vmm::memory::GuestMem;

/// Offset of the common configuration in the BAR.
pub const COMMON_OFFSET: u64 = 0x0000;
/// Size of the common configuration.
pub const COMMON_LEN: u64 = 0x38;
/// Offset of the ISR status in the BAR.
pub const ISR_OFFSET: u64 = 0x1000;
/// Offset of the device configuration in the BAR.
pub const DEVICE_OFFSET: u64 = 0x2000;
/// Offset of the notification area in the BAR.
pub const NOTIFY_OFFSET: u64 = 0x3000;
/// Bytes between two queues' notify addresses.
pub const NOTIFY_MULTIPLIER: u32 = 4;

/// Queue configuration as written by the driver (checked only at DRIVER_OK).
#[derive(Debug, Clone, Copy, Default)]
struct QueueCfg {
    size: u16,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
}

/// One virtio device behind the PCI transport.
pub struct VirtioPci {
    device_type: u16,
    class: u32,
    offered: u64,
    config: Vec<u8>,
    caps: [u8; 256],
    status: u8,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    queue_select: u16,
    queues: Vec<QueueCfg>,
    notify: Vec<EventFd>,
    shared: Arc<Shared>,
    mem: Arc<GuestMem>,
    worker: WorkerHandle,
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn build_caps() -> [u8; 256] {
    let mut c = [0u8; 256];
    // (config offset, cfg_type, BAR offset, length)
    let caps: [(usize, u8, u32, u32); 4] = [
        (0x40, 1, COMMON_OFFSET as u32, COMMON_LEN as u32),
        (0x50, 3, ISR_OFFSET as u32, 4),
        (0x60, 4, DEVICE_OFFSET as u32, 0x1000),
        (0x70, 2, NOTIFY_OFFSET as u32, 0x1000),
    ];
    for (i, &(at, kind, off, len)) in caps.iter().enumerate() {
        let next = caps.get(i + 1).map_or(0, |n| n.0 as u8);
        let cap_len = if kind == 2 { 20 } else { 16 };
        put(&mut c, at, &[0x09, next, cap_len, kind, 0, 0, 0, 0]);
        put(&mut c, at + 8, &off.to_le_bytes());
        put(&mut c, at + 12, &len.to_le_bytes());
        if kind == 2 {
            put(&mut c, at + 16, &NOTIFY_MULTIPLIER.to_le_bytes());
        }
    }
    c
}

impl VirtioPci {
    /// Transport for a device of `device_type`/`class` offering `features` (plus
    /// VERSION_1) with `config` as device configuration, served by `worker`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        device_type: u16,
        class: u32,
        features: u64,
        config: Vec<u8>,
        notify: Vec<EventFd>,
        shared: Arc<Shared>,
        mem: Arc<GuestMem>,
        worker: WorkerHandle,
    ) -> VirtioPci {
        VirtioPci {
            device_type,
            class,
            offered: features | F_VERSION_1,
            config,
            caps: build_caps(),
            status: 0,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            queue_select: 0,
            queues: vec![QueueCfg::default(); notify.len()],
            notify,
            shared,
            mem,
            worker,
        }
    }

    /// Current device status as the driver reads it.
    pub fn status(&self) -> u8 {
        let nr = if self.shared.needs_reset.load(Ordering::SeqCst) {
            status::NEEDS_RESET
        } else {
            0
        };
        self.status | nr
    }

    fn reset(&mut self) {
        self.worker.reset();
        self.status = 0;
        self.driver_features = 0;
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.queue_select = 0;
        for q in &mut self.queues {
            *q = QueueCfg::default();
        }
        self.shared.isr.store(0, Ordering::SeqCst);
        self.shared.needs_reset.store(false, Ordering::SeqCst);
    }

    fn set_status(&mut self, v: u8) {
        if v == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        let mut new = v & !status::NEEDS_RESET;
        if new & status::FEATURES_OK != 0 && old & status::FEATURES_OK == 0 {
            let unknown = self.driver_features & !self.offered;
            if unknown != 0 || self.driver_features & F_VERSION_1 == 0 {
                tracing::debug!(
                    acked = format_args!("{:#x}", self.driver_features),
                    offered = format_args!("{:#x}", self.offered),
                    "virtio: FEATURES_OK refused"
                );
                new &= !status::FEATURES_OK;
            }
        }
        if new & status::DRIVER_OK != 0 && old & status::DRIVER_OK == 0 {
            if new & status::FEATURES_OK == 0 {
                self.shared.fail("DRIVER_OK without FEATURES_OK");
            } else {
                match self.build_queues() {
                    Ok(q) => self.worker.send(Ctl::Activate(q)),
                    Err(why) => self.shared.fail(&why),
                }
            }
        }
        self.status = new;
    }

    /// The driver's queue configuration as checked `Queue`s.
    fn build_queues(&self) -> Result<Vec<Queue>, String> {
        let mut out = Vec::with_capacity(self.queues.len());
        for (i, c) in self.queues.iter().enumerate() {
            let mut q = Queue::new(QUEUE_MAX).map_err(|e| format!("queue {i}: {e}"))?;
            if c.ready {
                q.try_set_size(c.size)
                    .map_err(|e| format!("queue {i} size {}: {e}", c.size))?;
                q.try_set_desc_table_address(GuestAddress(c.desc))
                    .map_err(|e| format!("queue {i} descriptor table: {e}"))?;
                q.try_set_avail_ring_address(GuestAddress(c.avail))
                    .map_err(|e| format!("queue {i} available ring: {e}"))?;
                q.try_set_used_ring_address(GuestAddress(c.used))
                    .map_err(|e| format!("queue {i} used ring: {e}"))?;
                q.set_ready(true);
                if !q.is_valid(&*self.mem) {
                    return Err(format!("queue {i}: rings outside guest memory"));
                }
            }
            out.push(q);
        }
        Ok(out)
    }

    fn common_read(&self, off: u64) -> u64 {
        let q = self.queues.get(usize::from(self.queue_select));
        match off {
            0x00 => u64::from(self.device_feature_select),
            0x04 => match self.device_feature_select {
                0 => self.offered & 0xffff_ffff,
                1 => self.offered >> 32,
                _ => 0,
            },
            0x08 => u64::from(self.driver_feature_select),
            0x0c => match self.driver_feature_select {
                0 => self.driver_features & 0xffff_ffff,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            0x10 => 0xffff, // msix_config: VIRTIO_MSI_NO_VECTOR
            0x12 => self.queues.len() as u64,
            0x14 => u64::from(self.status()),
            0x15 => 0, // config_generation
            0x16 => u64::from(self.queue_select),
            0x18 => q.map_or(0, |q| {
                u64::from(if q.size == 0 { QUEUE_MAX } else { q.size })
            }),
            0x1a => 0xffff, // queue_msix_vector
            0x1c => q.map_or(0, |q| u64::from(q.ready)),
            0x1e => u64::from(self.queue_select), // queue_notify_off
            0x20 => q.map_or(0, |q| q.desc & 0xffff_ffff),
            0x24 => q.map_or(0, |q| q.desc >> 32),
            0x28 => q.map_or(0, |q| q.avail & 0xffff_ffff),
            0x2c => q.map_or(0, |q| q.avail >> 32),
            0x30 => q.map_or(0, |q| q.used & 0xffff_ffff),
            0x34 => q.map_or(0, |q| q.used >> 32),
            _ => 0,
        }
    }

    fn common_write(&mut self, off: u64, v: u64) {
        let live = self.status & status::DRIVER_OK != 0;
        let lo = |old: u64| (old & !0xffff_ffff) | (v & 0xffff_ffff);
        let hi = |old: u64| (old & 0xffff_ffff) | (v << 32);
        let sel = usize::from(self.queue_select);
        match off {
            0x00 => self.device_feature_select = v as u32,
            0x08 => self.driver_feature_select = v as u32,
            0x0c if self.status & status::FEATURES_OK == 0 => match self.driver_feature_select {
                0 => self.driver_features = lo(self.driver_features),
                1 => self.driver_features = hi(self.driver_features),
                _ => {}
            },
            0x14 => self.set_status(v as u8),
            0x16 => self.queue_select = v as u16,
            _ if live => {}
            _ => {
                let Some(q) = self.queues.get_mut(sel) else {
                    return;
                };
                match off {
                    0x18 => q.size = v as u16,
                    0x1c => q.ready = v & 1 == 1,
                    0x20 => q.desc = lo(q.desc),
                    0x24 => q.desc = hi(q.desc),
                    0x28 => q.avail = lo(q.avail),
                    0x2c => q.avail = hi(q.avail),
                    0x30 => q.used = lo(q.used),
                    0x34 => q.used = hi(q.used),
                    _ => {}
                }
            }
        }
    }
}

fn le_value(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

impl PciFunction for VirtioPci {
    fn config_read(&mut self, offset: usize) -> u32 {
        let o = offset & 0xfc;
        u32::from_le_bytes([
            self.caps[o],
            self.caps[o + 1],
            self.caps[o + 2],
            self.caps[o + 3],
        ])
    }

    fn ids(&self) -> PciIds {
        PciIds {
            vendor: VIRTIO_VENDOR,
            device: VIRTIO_DEVICE_BASE + self.device_type,
            class: self.class,
            revision: 1,
            subsys_vendor: VIRTIO_VENDOR,
            subsys: 0x40 + self.device_type,
        }
    }

    fn capabilities(&self) -> u8 {
        0x40
    }

    fn bar_read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        match offset {
            o if o < COMMON_LEN => {
                // Fields are read at their own offset and width.
                let v = self.common_read(o).to_le_bytes();
                let n = data.len().min(8);
                data[..n].copy_from_slice(&v[..n]);
            }
            ISR_OFFSET => {
                if let Some(b) = data.first_mut() {
                    *b = self.shared.isr.swap(0, Ordering::SeqCst);
                }
            }
            o if (DEVICE_OFFSET..NOTIFY_OFFSET).contains(&o) => {
                let start = (o - DEVICE_OFFSET) as usize;
                for (i, b) in data.iter_mut().enumerate() {
                    *b = self.config.get(start + i).copied().unwrap_or(0);
                }
            }
            _ => {}
        }
    }

    fn bar_write(&mut self, offset: u64, data: &[u8]) {
        match offset {
            o if o < COMMON_LEN => self.common_write(o, le_value(data)),
            o if o >= NOTIFY_OFFSET => {
                let q = ((o - NOTIFY_OFFSET) / u64::from(NOTIFY_MULTIPLIER)) as usize;
                tracing::debug!(
                    queue = q,
                    "virtio notify reached the VMM (not an ioeventfd)"
                );
                if let Some(e) = self.notify.get(q) {
                    let _ = e.write(1);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::devices::virtio::block::Block;
    use crate::vmm::devices::virtio::{worker, Backend};
    use vm_memory::{Bytes, GuestMemoryMmap};

    fn device() -> (tempfile::NamedTempFile, Arc<GuestMem>, VirtioPci) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), vec![7u8; 8192]).unwrap();
        let blk = Block::open(f.path(), false, "t").unwrap();
        let mem = Arc::new(GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap());
        let shared = Arc::new(Shared::new(EventFd::new(0).unwrap()));
        let notify = vec![EventFd::new(0).unwrap()];
        let wn = vec![notify[0].try_clone().unwrap()];
        let (t, c, feat, cfg) = (blk.device_type(), blk.class(), blk.features(), blk.config());
        let w = worker::spawn("t".into(), blk, mem.clone(), shared.clone(), wn).unwrap();
        let dev = VirtioPci::new(t, c, feat, cfg, notify, shared, mem.clone(), w);
        (f, mem, dev)
    }

    fn w(d: &mut VirtioPci, off: u64, v: u32, len: usize) {
        d.bar_write(off, &v.to_le_bytes()[..len]);
    }

    fn r(d: &mut VirtioPci, off: u64, len: usize) -> u32 {
        let mut b = [0u8; 4];
        d.bar_read(off, &mut b[..len]);
        u32::from_le_bytes(b)
    }

    fn negotiate(d: &mut VirtioPci, lo: u32, hi: u32) -> u8 {
        w(d, 0x14, 0, 1);
        w(d, 0x14, 3, 1);
        w(d, 0x08, 0, 4);
        w(d, 0x0c, lo, 4);
        w(d, 0x08, 1, 4);
        w(d, 0x0c, hi, 4);
        w(d, 0x14, 0xb, 1);
        r(d, 0x14, 1) as u8
    }

    fn queue(d: &mut VirtioPci, size: u32, desc: u32) {
        w(d, 0x16, 0, 2);
        w(d, 0x18, size, 2);
        w(d, 0x20, desc, 4);
        w(d, 0x28, 0x3000, 4);
        w(d, 0x30, 0x4000, 4);
        w(d, 0x1c, 1, 2);
    }

    #[test]
    fn ids_caps_and_config() {
        let (_f, _m, mut d) = device();
        assert_eq!(d.ids().device, 0x1042);
        // Capability chain: common -> ISR -> device -> notify.
        let mut p = d.capabilities() as usize;
        let mut kinds = Vec::new();
        while p != 0 {
            let w0 = d.config_read(p);
            kinds.push(w0 >> 24);
            p = ((w0 >> 8) & 0xff) as usize;
        }
        assert_eq!(kinds, vec![1, 3, 4, 2]);
        assert_eq!(d.config_read(0x70 + 16), NOTIFY_MULTIPLIER);
        // Capacity 16 sectors in the device config.
        assert_eq!(r(&mut d, DEVICE_OFFSET, 4), 16);
        w(&mut d, 0x00, 1, 4);
        assert_eq!(r(&mut d, 0x04, 4), 1); // VERSION_1 (bit 32)
        assert_eq!(r(&mut d, 0x12, 2), 1); // one queue
        assert_eq!(r(&mut d, 0x18, 2), u32::from(QUEUE_MAX));
    }

    #[test]
    fn feature_negotiation_refusals() {
        let (_f, _m, mut d) = device();
        // A feature we did not offer (bit 0 = BARRIER).
        assert_eq!(negotiate(&mut d, 1, 1) & status::FEATURES_OK, 0);
        // No VERSION_1.
        assert_eq!(negotiate(&mut d, 0, 0) & status::FEATURES_OK, 0);
        // Unknown high feature.
        assert_eq!(negotiate(&mut d, 0, 3) & status::FEATURES_OK, 0);
        // Offered ones are fine.
        assert_ne!(negotiate(&mut d, 1 << 9, 1) & status::FEATURES_OK, 0);
        // DRIVER_OK without FEATURES_OK -> NEEDS_RESET.
        negotiate(&mut d, 1, 1);
        w(&mut d, 0x14, 0x7, 1);
        assert_ne!(r(&mut d, 0x14, 1) as u8 & status::NEEDS_RESET, 0);
        // Reset clears it.
        w(&mut d, 0x14, 0, 1);
        assert_eq!(r(&mut d, 0x14, 1), 0);
    }

    #[test]
    fn bad_queue_setups_need_reset() {
        for (size, desc) in [
            (3, 0x1000),
            (0, 0x1000),
            (512, 0x1000),
            (8, 0x1001),
            (8, 0xffff_fff0),
        ] {
            let (_f, _m, mut d) = device();
            assert_ne!(negotiate(&mut d, 0, 1) & status::FEATURES_OK, 0);
            queue(&mut d, size, desc);
            w(&mut d, 0x14, 0xf, 1);
            assert_ne!(
                r(&mut d, 0x14, 1) as u8 & status::NEEDS_RESET,
                0,
                "size {size} desc {desc:#x}"
            );
        }
    }

    #[test]
    fn a_request_through_the_transport_and_worker() {
        let (_f, m, mut d) = device();
        assert_ne!(negotiate(&mut d, 0, 1) & status::FEATURES_OK, 0);
        queue(&mut d, 8, 0x1000);
        w(&mut d, 0x14, 0xf, 1);
        assert_eq!(r(&mut d, 0x14, 1), 0xf);
        // IN sector 1, 512 bytes.
        let put = |a: u64, b: &[u8]| m.write_slice(b, GuestAddress(a)).unwrap();
        let mut hdr = [0u8; 16];
        hdr[8] = 1;
        put(0x8000, &hdr);
        let desc = |i: u64, addr: u64, len: u32, flags: u16, next: u16| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&addr.to_le_bytes());
            b[8..12].copy_from_slice(&len.to_le_bytes());
            b[12..14].copy_from_slice(&flags.to_le_bytes());
            b[14..16].copy_from_slice(&next.to_le_bytes());
            put(0x1000 + 16 * i, &b);
        };
        desc(0, 0x8000, 16, 1, 1);
        desc(1, 0x10000, 512, 3, 2);
        desc(2, 0x9000, 1, 2, 0);
        put(0x9000, &[0xee]);
        put(0x3004, &0u16.to_le_bytes());
        put(0x3002, &1u16.to_le_bytes());
        w(&mut d, NOTIFY_OFFSET, 0, 2);
        let t0 = std::time::Instant::now();
        while m.read_obj::<u16>(GuestAddress(0x4002)).unwrap() != 1 {
            assert!(t0.elapsed().as_secs() < 10, "no used buffer");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(m.read_obj::<u8>(GuestAddress(0x9000)).unwrap(), 0);
        assert_eq!(m.read_obj::<u8>(GuestAddress(0x10000)).unwrap(), 7);
        assert_eq!(r(&mut d, ISR_OFFSET, 1), 1);
        assert_eq!(r(&mut d, ISR_OFFSET, 1), 0);
        // Now jump the available index: the worker fails the device.
        put(0x3002, &100u16.to_le_bytes());
        w(&mut d, NOTIFY_OFFSET, 0, 2);
        let t0 = std::time::Instant::now();
        while r(&mut d, 0x14, 1) as u8 & status::NEEDS_RESET == 0 {
            assert!(t0.elapsed().as_secs() < 10, "no NEEDS_RESET");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(r(&mut d, ISR_OFFSET, 1) & 2, 2);
        w(&mut d, 0x14, 0, 1);
        assert_eq!(r(&mut d, 0x14, 1), 0);
    }

    #[test]
    fn garbage_bar_accesses() {
        let (_f, _m, mut d) = device();
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = x % 0x4000;
            let len = [1usize, 2, 4, 8][(x >> 20) as usize % 4];
            let v = (x >> 24).to_le_bytes();
            d.bar_write(off, &v[..len]);
            let mut b = [0u8; 8];
            d.bar_read(off, &mut b[..len]);
            let _ = d.config_read((x >> 40) as usize & 0xff);
        }
    }
}
