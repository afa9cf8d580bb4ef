//! vCPUs: creation and initial state, and the run loop on a named, pinned thread.

use std::sync::Arc;
use std::thread::JoinHandle;

use kvm_bindings::CpuId;
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

use crate::vmm::affinity;
use crate::vmm::boot::loader::BootEntry;
use crate::vmm::boot::{cpuid, regs};
use crate::vmm::devices::bus::PioBus;
use crate::vmm::devices::PioAction;
use crate::vmm::memory::GuestMem;
use crate::vmm::spec::Topology;
use crate::vmm::state::ExitReason;
use crate::vmm::vm::{Next, VmControl};

/// vCPU errors.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU or a setup ioctl failed.
    #[error("vCPU {index}: {what}: {source}")]
    Kvm {
        /// vCPU index.
        index: u32,
        /// Which call.
        what: &'static str,
        /// Cause.
        source: kvm_ioctls::Error,
    },
    /// CPUID filtering failed.
    #[error(transparent)]
    Cpuid(#[from] cpuid::CpuidError),
    /// Register setup failed.
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    /// The thread could not be spawned.
    #[error("spawning vCPU thread: {0}")]
    Spawn(std::io::Error),
}

/// One vCPU, not yet running.
pub struct Vcpu {
    index: u32,
    fd: VcpuFd,
}

impl Vcpu {
    /// Create vCPU `index` with its CPUID, MSRs, LAPIC, FPU and (on the BSP) boot registers.
    /// APs keep KVM's reset state and wait for INIT/SIPI in the in-kernel LAPIC.
    pub fn create(
        vm: &VmFd,
        index: u32,
        supported: &CpuId,
        topo: &Topology,
        mem: &GuestMem,
        boot: BootEntry,
    ) -> Result<Vcpu, VcpuError> {
        let kvm = |what| {
            move |source| VcpuError::Kvm {
                index,
                what,
                source,
            }
        };
        let fd = vm
            .create_vcpu(u64::from(cpuid::apic_id(topo, index)))
            .map_err(kvm("KVM_CREATE_VCPU"))?;
        let c = cpuid::for_vcpu(supported, topo, index)?;
        fd.set_cpuid2(&c).map_err(kvm("KVM_SET_CPUID2"))?;
        let refused = regs::setup_msrs(&fd)?;
        if !refused.is_empty() {
            tracing::debug!(vcpu = index, ?refused, "KVM refused some boot MSRs");
        }
        regs::setup_lint(&fd)?;
        regs::setup_fpu(&fd)?;
        if index == 0 {
            regs::setup_sregs(mem, &fd, boot.mode)?;
            regs::setup_regs(&fd, boot.mode, boot.entry)?;
        }
        Ok(Vcpu { index, fd })
    }

    /// Start the run loop on thread `vcpu<N>`, pinned to `host_cpu` if given.
    pub fn spawn(
        self,
        host_cpu: Option<u32>,
        bus: Arc<PioBus>,
        control: Arc<VmControl>,
    ) -> Result<JoinHandle<()>, VcpuError> {
        let index = self.index;
        std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                if let Some(cpu) = host_cpu {
                    if let Err(e) = affinity::pin_current_thread(&[cpu]) {
                        control.request_exit(ExitReason::VmmError(format!(
                            "pinning vCPU {index}: {e}"
                        )));
                    }
                }
                // Confinement: from here on only the vCPU filter's syscalls.
                if let Err(e) = crate::vmm::jail::enter(crate::vmm::jail::ThreadClass::Vcpu) {
                    control.request_exit(ExitReason::VmmError(format!("vCPU {index}: {e}")));
                    return;
                }
                control.register_vcpu(index);
                self.run(&bus, &control);
                control.unregister_vcpu(index);
            })
            .map_err(VcpuError::Spawn)
    }

    fn run(mut self, bus: &PioBus, control: &VmControl) {
        let index = self.index;
        if control.checkpoint() == Next::Stop {
            return;
        }
        loop {
            let action = match self.fd.run() {
                Ok(VcpuExit::IoIn(port, data)) => {
                    bus.pio_read(port, data);
                    None
                }
                Ok(VcpuExit::IoOut(port, data)) => match bus.pio_write(port, data) {
                    PioAction::None => None,
                    PioAction::PowerOff => Some(ExitReason::PowerOff),
                    PioAction::Reset => Some(ExitReason::Reset),
                },
                Ok(VcpuExit::MmioRead(addr, data)) => {
                    bus.mmio_read(addr, data);
                    None
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => {
                    bus.mmio_write(addr, data);
                    None
                }
                Ok(VcpuExit::Shutdown) => Some(ExitReason::Crash(format!(
                    "vCPU {index}: triple fault (KVM_EXIT_SHUTDOWN)"
                ))),
                Ok(VcpuExit::SystemEvent(kind, _)) => Some(match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => ExitReason::PowerOff,
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET => ExitReason::Reset,
                    other => ExitReason::Crash(format!("vCPU {index}: system event {other}")),
                }),
                Ok(VcpuExit::InternalError) => Some(ExitReason::Crash(format!(
                    "vCPU {index}: KVM internal error"
                ))),
                Ok(VcpuExit::FailEntry(reason, cpu)) => Some(ExitReason::Crash(format!(
                    "vCPU {index}: entry failed, reason {reason:#x} on host CPU {cpu}"
                ))),
                Ok(VcpuExit::Hlt) => {
                    // Only without an in-kernel LAPIC; yield instead of spinning.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    None
                }
                Ok(VcpuExit::Intr) => None,
                Ok(other) => Some(ExitReason::VmmError(format!(
                    "vCPU {index}: unhandled exit {other:?}"
                ))),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
                Err(e) => Some(ExitReason::VmmError(format!("vCPU {index}: KVM_RUN: {e}"))),
            };
            crate::vmm::jail::debug::vcpu_hook();
            if let Some(reason) = action {
                control.request_exit(reason);
            }
            if control.checkpoint() == Next::Stop {
                return;
            }
        }
    }
}
