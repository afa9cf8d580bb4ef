//! Assembling a VM from its spec, in one function: [`build`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::vmm::boot::{acpi, cpuid, layout, loader, mptable};
use crate::vmm::devices::bus::PioBus;
use crate::vmm::devices::serial::{SerialDevice, SharedConsole, COM1_IRQ};
use crate::vmm::devices::virtio::{self, block::Block, net::Net, tap::Tap};
use crate::vmm::kvm;
use crate::vmm::memory::{self, GuestMem};
use crate::vmm::spec::VmSpec;
use crate::vmm::vcpu::{self, Vcpu};
use crate::vmm::vm::VmControl;

/// Errors while building or starting a VM.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// KVM setup.
    #[error(transparent)]
    Kvm(#[from] kvm::KvmError),
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] memory::MemoryError),
    /// Kernel/initrd/boot parameters.
    #[error(transparent)]
    Loader(#[from] loader::LoaderError),
    /// MP table.
    #[error(transparent)]
    MpTable(#[from] mptable::MpTableError),
    /// ACPI tables.
    #[error(transparent)]
    Acpi(#[from] acpi::AcpiError),
    /// vCPU setup.
    #[error(transparent)]
    Vcpu(#[from] vcpu::VcpuError),
    /// Serial interrupt.
    #[error("serial interrupt: {0}")]
    Irq(std::io::Error),
    /// KVM_GET_SUPPORTED_CPUID.
    #[error("KVM_GET_SUPPORTED_CPUID: {0}")]
    Cpuid(kvm_ioctls::Error),
    /// A virtio device (disk image, tap, eventfds, worker thread).
    #[error(transparent)]
    Virtio(#[from] virtio::VirtioError),
}

/// A built VM, ready to start. Field order is drop order: vCPUs, then the VM, then memory.
pub struct Vm {
    vcpus: Vec<Vcpu>,
    threads: Vec<JoinHandle<()>>,
    bus: Arc<PioBus>,
    _vm: VmFd,
    _mem: Arc<GuestMem>,
}

/// Build the VM described by `spec`: KVM VM with irqchip and PIT, guest RAM, kernel and
/// boot parameters, MP table and ACPI tables, COM1 on IRQ 4, and every vCPU with its CPUID and registers.
pub fn build(spec: &VmSpec, console: SharedConsole) -> Result<Vm, BuildError> {
    let kvm = kvm::open()?;
    let vm = kvm::create_vm(&kvm)?;

    let mem = Arc::new(memory::create(&spec.memory, &spec.cells())?);
    kvm::register_memory(&vm, &mem)?;
    let topo = spec.topology();
    let apic_ids: Vec<u32> = (0..spec.cpus.count)
        .map(|i| cpuid::apic_id(&topo, i))
        .collect();
    mptable::write(&mem, &apic_ids)?;
    let numa = (spec.numa.len() > 1).then(|| numa_info(spec, &apic_ids));

    let serial_irq = EventFd::new(EFD_NONBLOCK).map_err(BuildError::Irq)?;
    vm.register_irqfd(&serial_irq, COM1_IRQ)
        .map_err(|e| BuildError::Irq(std::io::Error::from_raw_os_error(e.errno())))?;
    let bus = Arc::new(PioBus::new(SerialDevice::new(console, serial_irq)));
    if let Err(e) = attach_virtio(spec, &vm, &bus, &mem) {
        bus.pci().clear();
        return Err(e);
    }

    let rsdp = acpi::write(&mem, &apic_ids, numa.as_ref(), &bus.pci().routing())?;
    let ram = spec.memory.size_mib << 20;
    let boot = loader::load(&mem, &spec.boot, ram, rsdp)?;

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(BuildError::Cpuid)?;
    let vcpus = (0..spec.cpus.count)
        .map(|i| Vcpu::create(&vm, i, &supported, &topo, &mem, boot))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Vm {
        vcpus,
        threads: Vec::new(),
        bus,
        _vm: vm,
        _mem: mem,
    })
}

/// Disks, then NICs, on PCI bus 0 (slots 1..), each with its worker thread
/// (`virtio-blk<N>`, `virtio-net<N>`).
fn attach_virtio(
    spec: &VmSpec,
    vm: &VmFd,
    bus: &PioBus,
    mem: &Arc<GuestMem>,
) -> Result<(), BuildError> {
    for (i, d) in spec.disks.iter().enumerate() {
        let serial = d
            .serial
            .clone()
            .unwrap_or_else(|| format!("novakvm-disk{i}"));
        let blk = Block::open(&d.path, d.read_only, &serial)?;
        virtio::attach(&format!("virtio-blk{i}"), blk, vm, bus.pci(), mem)?;
    }
    for (i, n) in spec.nics.iter().enumerate() {
        let mac = virtio::net::parse_mac(&n.mac)
            .ok_or_else(|| virtio::VirtioError::Backend(format!("nic {i}: bad MAC {:?}", n.mac)))?;
        let net = Net::new(Tap::open(&n.tap)?, mac);
        virtio::attach(&format!("virtio-net{i}"), net, vm, bus.pci(), mem)?;
    }
    Ok(())
}

/// Guest NUMA cells as ACPI proximity domains (cell index = domain).
fn numa_info(spec: &VmSpec, apic_ids: &[u32]) -> acpi::NumaInfo {
    let mut info = acpi::NumaInfo::default();
    for (node, cell) in spec.cells().iter().enumerate() {
        for &cpu in &cell.cpus {
            if let Some(&apic) = apic_ids.get(cpu as usize) {
                info.cpus.push((apic, node as u32));
            }
        }
    }
    let mut ram_offset = 0u64;
    for (node, cell) in spec.cells().iter().enumerate() {
        let len = cell.memory_mib << 20;
        for (start, l) in layout::ram_to_gpa(ram_offset, len) {
            info.memory.push((start, l, node as u32));
        }
        ram_offset += len;
    }
    info
}

impl Vm {
    /// Start every vCPU thread (pinned per the spec).
    pub fn start(&mut self, spec: &VmSpec, control: &Arc<VmControl>) -> Result<(), BuildError> {
        for (i, v) in self.vcpus.drain(..).enumerate() {
            let pin = spec.vcpu_pin(i as u32);
            let h = v.spawn(pin, self.bus.clone(), control.clone())?;
            self.threads.push(h);
        }
        Ok(())
    }

    /// The device bus (for console input).
    pub fn bus(&self) -> Arc<PioBus> {
        self.bus.clone()
    }

    /// Stop and join the vCPU threads.
    pub fn stop(&mut self, control: &VmControl) {
        if control.stop_vcpus(Duration::from_secs(10)).is_err() {
            tracing::error!("vCPU threads did not stop");
            return;
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        // Stop the device threads (and close disks and taps) before the VM goes away.
        self.bus.pci().clear();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.bus.pci().clear();
    }
}
