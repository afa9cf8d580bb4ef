//! virtio-net on a tap device: queue 0 receives, queue 1 transmits. Only
//! `VIRTIO_NET_F_MAC` is offered (no checksum or segmentation offloads), so every
//! virtio_net_hdr is 12 zero-ish bytes that pass through the tap's vnet header as is;
//! on receive `num_buffers` is set to 1.

use std::io::{Read, Write};

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT, Reader, Writer};

use super::block::drain_queue;
use super::tap::{Tap, VNET_HDR_LEN};
use super::{Backend, VirtioError, TYPE_NET};
use crate::vmm::memory::GuestMem;

/// Feature: the device has a MAC address in its config.
pub const F_MAC: u64 = 1 << 5;
/// Largest frame plus header accepted in either direction.
pub const MAX_FRAME: usize = 65_562;
const RX: usize = 0;
const TX: usize = 1;

/// A NIC.
pub struct Net {
    tap: Tap,
    mac: [u8; 6],
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    pending: Option<usize>,
    rx_ready: bool,
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

impl Net {
    /// NIC on `tap` with `mac`.
    pub fn new(tap: Tap, mac: [u8; 6]) -> Net {
        Net {
            tap,
            mac,
            rx_buf: vec![0u8; MAX_FRAME],
            tx_buf: vec![0u8; MAX_FRAME],
            pending: None,
            rx_ready: false,
        }
    }

    fn transmit(
        &mut self,
        mem: &GuestMem,
        chain: DescriptorChain<&GuestMem>,
    ) -> Result<u32, VirtioError> {
        let mut r =
            Reader::new(mem, chain).map_err(|e| VirtioError::Queue(format!("tx chain: {e}")))?;
        let len = r.available_bytes();
        if !(VNET_HDR_LEN..=MAX_FRAME).contains(&len) {
            tracing::debug!(len, "virtio-net: dropping bad tx frame");
            return Ok(0);
        }
        if r.read_exact(&mut self.tx_buf[..len]).is_ok() {
            if let Err(e) = self.tap.write_frame(&self.tx_buf[..len]) {
                tracing::debug!(error = %e, tap = self.tap.name(), "virtio-net: tap write");
            }
        }
        Ok(0)
    }

    fn fill_pending(&mut self) -> Result<(), VirtioError> {
        if self.pending.is_none() {
            match self.tap.read_frame(&mut self.rx_buf) {
                Ok(Some(n)) if n >= VNET_HDR_LEN => self.pending = Some(n),
                Ok(_) => {}
                Err(e) => {
                    return Err(VirtioError::Backend(format!(
                        "tap {}: {e}",
                        self.tap.name()
                    )));
                }
            }
        }
        Ok(())
    }

    fn receive(&mut self, mem: &GuestMem, q: &mut Queue) -> Result<bool, VirtioError> {
        let mut used = false;
        self.fill_pending()?;
        while let Some(len) = self.pending {
            let chain = {
                let mut it = q
                    .iter(mem)
                    .map_err(|e| VirtioError::Queue(format!("rx available ring: {e}")))?;
                it.next()
            };
            let Some(chain) = chain else {
                // No buffers: stop polling the tap until the driver adds some.
                self.rx_ready = false;
                break;
            };
            let head = chain.head_index();
            let mut w = Writer::new(mem, chain)
                .map_err(|e| VirtioError::Queue(format!("rx chain: {e}")))?;
            // num_buffers = 1 (no mergeable buffers).
            self.rx_buf[10] = 1;
            self.rx_buf[11] = 0;
            let n = if w.available_bytes() >= len && w.write_all(&self.rx_buf[..len]).is_ok() {
                len as u32
            } else {
                tracing::debug!(len, "virtio-net: rx buffer too small, frame dropped");
                0
            };
            q.add_used(mem, head, n)
                .map_err(|e| VirtioError::Queue(format!("rx used ring: {e}")))?;
            used = true;
            self.pending = None;
            self.fill_pending()?;
        }
        Ok(used)
    }
}

impl Backend for Net {
    fn device_type(&self) -> u16 {
        TYPE_NET
    }

    fn class(&self) -> u32 {
        0x02_00_00 // Ethernet controller
    }

    fn queues(&self) -> usize {
        2
    }

    fn features(&self) -> u64 {
        F_MAC
    }

    fn config(&self) -> Vec<u8> {
        let mut c = vec![0u8; 12];
        c[..6].copy_from_slice(&self.mac);
        c
    }

    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.tap.fd())
    }

    fn wants_poll_fd(&self) -> bool {
        self.rx_ready
    }

    fn process(
        &mut self,
        mem: &GuestMem,
        queues: &mut [Queue],
        index: usize,
    ) -> Result<bool, VirtioError> {
        match index {
            TX => match queues.get_mut(TX) {
                Some(q) => drain_queue(mem, q, |c| self.transmit(mem, c)),
                None => Ok(false),
            },
            // RX buffers added, or the tap has frames.
            _ => match queues.get_mut(RX) {
                Some(q) if q.ready() => {
                    self.rx_ready = true;
                    self.receive(mem, q)
                }
                _ => Ok(false),
            },
        }
    }

    fn reset(&mut self) {
        self.pending = None;
        self.rx_ready = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:ab:CD:0f"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 0x0f])
        );
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:11",
            "5:54:00:ab:cd:0f",
            "zz:54:00:ab:cd:0f",
            "525:4:00:ab:cd:0f",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
