//! virtio 1.x devices over the modern virtio-pci transport.
//!
//! - [`pci`]: the transport — PCI ids and capabilities, the BAR (common/notify/ISR/device
//!   config), feature negotiation and the device status state machine.
//! - [`worker`]: one thread per device that owns the queues once the driver is ready;
//!   queue notifications arrive on eventfds (KVM ioeventfds on the notify addresses), so
//!   the vCPU threads never do device I/O.
//! - [`block`]: virtio-blk on a raw image file.
//! - [`net`] and [`tap`]: virtio-net on a Linux tap device.
//!
//! Guest input is hostile: every malformed queue (bad addresses, loops, jumping avail
//! index, oversized requests) ends in an error status for the request or in
//! `DEVICE_NEEDS_RESET`, never in a panic or a hang of the VMM.

pub mod block;
pub mod net;
pub mod pci;
pub mod tap;
pub mod worker;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use vmm_sys_util::eventfd::EventFd;

use crate::vmm::memory::GuestMem;

/// virtio PCI vendor id.
pub const VIRTIO_VENDOR: u16 = 0x1af4;
/// Modern device ids are 0x1040 + device type.
pub const VIRTIO_DEVICE_BASE: u16 = 0x1040;
/// Device type: network card.
pub const TYPE_NET: u16 = 1;
/// Device type: block device.
pub const TYPE_BLOCK: u16 = 2;

/// Feature bit: virtio 1.x (modern) device.
pub const F_VERSION_1: u64 = 1 << 32;

/// Status bits.
pub mod status {
    /// Guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// Guest has a driver.
    pub const DRIVER: u8 = 2;
    /// Driver ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation done.
    pub const FEATURES_OK: u8 = 8;
    /// Device hit an error it cannot recover from.
    pub const NEEDS_RESET: u8 = 0x40;
    /// Driver gave up.
    pub const FAILED: u8 = 0x80;
}

/// Largest queue size the devices offer.
pub const QUEUE_MAX: u16 = 256;

/// virtio device errors (setup and queue handling).
#[derive(Debug, thiserror::Error)]
pub enum VirtioError {
    /// An eventfd could not be created or registered.
    #[error("virtio eventfd: {0}")]
    EventFd(std::io::Error),
    /// The worker thread could not be spawned.
    #[error("spawning virtio worker: {0}")]
    Spawn(std::io::Error),
    /// The driver broke the queue protocol (bad index, address, chain).
    #[error("virtio queue: {0}")]
    Queue(String),
    /// A backing file or tap failed.
    #[error("virtio backend: {0}")]
    Backend(String),
}

/// State shared by the transport (vCPU threads) and the worker: interrupt status and line.
pub struct Shared {
    /// ISR status: bit 0 = used buffer, bit 1 = config change.
    pub isr: AtomicU8,
    /// Set by the worker when the driver broke the protocol.
    pub needs_reset: AtomicBool,
    /// INTx line (irqfd).
    pub irq: EventFd,
    /// Resample eventfd of a level-triggered irqfd: KVM signals it at the guest's EOI;
    /// the worker then re-raises the line if the ISR is still set.
    pub resample: Option<EventFd>,
}

impl Shared {
    /// New shared state raising `irq`.
    pub fn new(irq: EventFd) -> Shared {
        Shared {
            isr: AtomicU8::new(0),
            needs_reset: AtomicBool::new(false),
            irq,
            resample: None,
        }
    }

    /// At the guest's EOI (resample): keep the level asserted while the ISR is non-zero.
    pub fn resampled(&self) {
        if let Some(r) = &self.resample {
            let _ = r.read();
        }
        if self.isr.load(Ordering::SeqCst) != 0 {
            let _ = self.irq.write(1);
        }
    }

    /// Signal used buffers.
    pub fn signal_used(&self) {
        self.isr.fetch_or(1, Ordering::SeqCst);
        if let Err(e) = self.irq.write(1) {
            tracing::debug!(error = %e, "virtio interrupt");
        }
    }

    /// Mark the device broken (DEVICE_NEEDS_RESET) and tell the driver via a config interrupt.
    pub fn fail(&self, why: &str) {
        if !self.needs_reset.swap(true, Ordering::SeqCst) {
            tracing::warn!(reason = why, "virtio device needs reset");
        }
        self.isr.fetch_or(2, Ordering::SeqCst);
        let _ = self.irq.write(1);
    }
}

/// What a device type provides to the transport and the worker.
pub trait Backend: Send + 'static {
    /// Device type ([`TYPE_BLOCK`], [`TYPE_NET`]).
    fn device_type(&self) -> u16;
    /// PCI class code.
    fn class(&self) -> u32;
    /// Number of queues.
    fn queues(&self) -> usize;
    /// Offered features (without [`F_VERSION_1`], which is always offered).
    fn features(&self) -> u64;
    /// Device configuration space.
    fn config(&self) -> Vec<u8>;
    /// A file descriptor the worker should also poll for input (tap), if any.
    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// Handle a notification of queue `index` (or poll-fd readiness with `index ==
    /// queues.len()`). Returns true when used buffers were added.
    fn process(
        &mut self,
        mem: &GuestMem,
        queues: &mut [virtio_queue::Queue],
        index: usize,
    ) -> Result<bool, VirtioError>;
    /// Whether the worker should poll [`Backend::poll_fd`] right now (e.g. RX buffers exist).
    fn wants_poll_fd(&self) -> bool {
        false
    }
    /// Called on device reset (drop queue-related state).
    fn reset(&mut self) {}
}

/// Create the transport and worker for `backend` and put it in the next slot of `bus`:
/// INTx through an irqfd on the slot's GSI, one KVM ioeventfd per queue on its notify
/// address. Returns the slot.
pub fn attach<B: Backend>(
    name: &str,
    backend: B,
    vm: &kvm_ioctls::VmFd,
    bus: &crate::vmm::devices::pci::PciBus,
    mem: &std::sync::Arc<GuestMem>,
) -> Result<usize, VirtioError> {
    use crate::vmm::devices::pci;
    use kvm_ioctls::{IoEventAddress, NoDatamatch};
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    let kvm_err =
        |e: kvm_ioctls::Error| VirtioError::EventFd(std::io::Error::from_raw_os_error(e.errno()));
    let slot = bus.len() + 1;
    if slot > pci::MAX_DEVICES {
        return Err(VirtioError::Backend(format!(
            "{name}: PCI bus 0 is full ({} devices)",
            pci::MAX_DEVICES
        )));
    }
    let irq = EventFd::new(EFD_NONBLOCK).map_err(VirtioError::EventFd)?;
    let resample = EventFd::new(EFD_NONBLOCK).map_err(VirtioError::EventFd)?;
    let gsi = pci::intx_gsi(slot);
    // Level-triggered INTx (resampling irqfd); a plain (pulse) irqfd where KVM refuses it.
    let resample = match vm.register_irqfd_with_resample(&irq, &resample, gsi) {
        Ok(()) => Some(resample),
        Err(e) => {
            tracing::warn!(error = %e, gsi, "resampling irqfd refused; INTx as pulses");
            vm.register_irqfd(&irq, gsi).map_err(kvm_err)?;
            None
        }
    };
    let bar = pci::default_bar(slot);
    let mut notify = Vec::new();
    let mut worker_notify = Vec::new();
    for q in 0..backend.queues() {
        let e = EventFd::new(EFD_NONBLOCK).map_err(VirtioError::EventFd)?;
        let addr =
            bar + self::pci::NOTIFY_OFFSET + q as u64 * u64::from(self::pci::NOTIFY_MULTIPLIER);
        vm.register_ioevent(&e, &IoEventAddress::Mmio(addr), NoDatamatch)
            .map_err(kvm_err)?;
        worker_notify.push(e.try_clone().map_err(VirtioError::EventFd)?);
        notify.push(e);
    }
    let mut shared = Shared::new(irq);
    shared.resample = resample;
    let shared = std::sync::Arc::new(shared);
    let (kind, class, features, config) = (
        backend.device_type(),
        backend.class(),
        backend.features(),
        backend.config(),
    );
    let worker = worker::spawn(
        name.to_string(),
        backend,
        mem.clone(),
        shared.clone(),
        worker_notify,
    )?;
    let dev = self::pci::VirtioPci::new(
        kind,
        class,
        features,
        config,
        notify,
        shared,
        mem.clone(),
        worker,
    );
    bus.add(Box::new(dev))
        .map_err(|e| VirtioError::Backend(format!("{name}: {e}")))
}

#[cfg(test)]
mod tests;
