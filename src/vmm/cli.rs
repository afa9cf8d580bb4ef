//! `novakvm vmm`: arguments and entry point of the per-VM process.
//!
//! Two forms: `--spec FILE` (JSON, see api-schemas/vm-spec.schema.json), or the direct form
//! for debugging (`--kernel ... --vcpus N --memory-mib N`), serial on stdout, where a guest
//! reset ends the process with status 0 like a power-off. Exit codes: [`exit_code`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use crate::vmm::affinity;
use crate::vmm::api::{ApiServer, VmInfo};
use crate::vmm::builder;
use crate::vmm::devices::serial::{ConsoleLog, SharedConsole};
use crate::vmm::jail::{self, SeccompMode, ThreadClass};
use crate::vmm::spec::{
    Backing, BootSpec, CpuSpec, MemorySpec, OnReset, SerialSpec, SpecError, VmSpec,
    DEFAULT_SERIAL_LOG_BYTES,
};
use crate::vmm::state::{exit_code, ExitReason, VmState};
use crate::vmm::vm::{self, VmControl};

/// Hugepage size in the direct form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HugepageSize {
    /// 2 MiB pages.
    #[value(name = "2M")]
    TwoM,
    /// 1 GiB pages.
    #[value(name = "1G")]
    OneG,
}

/// Arguments of `novakvm vmm`.
#[derive(Debug, clap::Args)]
pub struct VmmArgs {
    /// JSON VM spec (schema: api-schemas/vm-spec.schema.json).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel", "initrd", "cmdline", "vcpus", "memory_mib", "hugepages", "serial_log", "control_socket", "seccomp"])]
    pub spec: Option<PathBuf>,
    /// Direct form: kernel (PVH ELF, vmlinux or bzImage).
    #[arg(long, value_name = "PATH", required_unless_present = "spec")]
    pub kernel: Option<PathBuf>,
    /// Direct form: initrd.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Direct form: kernel command line.
    #[arg(long, value_name = "STR")]
    pub cmdline: Option<String>,
    /// Direct form: vCPU count.
    #[arg(long, value_name = "N")]
    pub vcpus: Option<u32>,
    /// Direct form: memory in MiB.
    #[arg(long, value_name = "N")]
    pub memory_mib: Option<u64>,
    /// Direct form: back memory with hugepages.
    #[arg(long, value_enum)]
    pub hugepages: Option<HugepageSize>,
    /// Direct form: serial log file instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub serial_log: Option<PathBuf>,
    /// Direct form: control socket.
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Direct form: action on a syscall outside a thread's seccomp filter.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SeccompMode::Kill)]
    pub seccomp: SeccompMode,
}

impl VmmArgs {
    /// The spec these arguments describe, validated; `true` when in the direct form.
    pub fn to_spec(&self) -> Result<(VmSpec, bool), SpecError> {
        if let Some(p) = &self.spec {
            return Ok((VmSpec::from_file(p)?, false));
        }
        let kernel = self.kernel.clone().ok_or(SpecError::Invalid {
            field: "boot.kernel",
            reason: "--kernel or --spec is required".into(),
        })?;
        let spec = VmSpec {
            name: None,
            cpus: CpuSpec {
                count: self.vcpus.unwrap_or(1),
                topology: None,
            },
            memory: MemorySpec {
                size_mib: self.memory_mib.unwrap_or(128),
                backing: match self.hugepages {
                    None => Backing::Anonymous,
                    Some(HugepageSize::TwoM) => Backing::Hugepages2m,
                    Some(HugepageSize::OneG) => Backing::Hugepages1g,
                },
                prealloc: false,
            },
            numa: Vec::new(),
            boot: BootSpec {
                kernel,
                initrd: self.initrd.clone(),
                cmdline: self.cmdline.clone().unwrap_or_default(),
            },
            serial: SerialSpec {
                log_path: self.serial_log.clone(),
                log_max_bytes: DEFAULT_SERIAL_LOG_BYTES,
            },
            disks: Vec::new(),
            nics: Vec::new(),
            pinning: None,
            control_socket: self.control_socket.clone(),
            on_reset: OnReset::Exit,
            seccomp: self.seccomp,
        };
        spec.validate()?;
        Ok((spec, true))
    }
}

/// Run one VM in the foreground; the exit status tells why it ended.
pub fn run(args: VmmArgs) -> ExitCode {
    let (spec, direct) = match args.to_spec() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("novakvm vmm: {e}");
            return ExitCode::from(exit_code::BAD_SPEC);
        }
    };
    ExitCode::from(run_spec(&spec, direct))
}

fn setup_failed(e: impl std::fmt::Display) -> u8 {
    eprintln!("novakvm vmm: {e}");
    tracing::error!(error = %e, "VM setup failed");
    exit_code::SETUP_FAILED
}

/// Run a validated spec; returns the process exit code.
pub fn run_spec(spec: &VmSpec, direct: bool) -> u8 {
    // Confinement, part 1 (before anything is opened): close what the parent leaked,
    // no core dumps, compile the seccomp filters. Part 2 is `jail::enter` in each thread.
    if let Err(e) = jail::privs::close_inherited_fds()
        .and_then(|_| jail::privs::disable_core_dumps())
        .and_then(|_| jail::privs::fix_malloc_arenas())
        .and_then(|_| match direct {
            true => Ok(()),
            false => jail::privs::stdin_to_dev_null(),
        })
        .and_then(|_| jail::install(spec.seccomp))
    {
        return setup_failed(e);
    }
    if let Some(p) = &spec.pinning {
        // Every thread spawned from here on inherits the emulator set; vCPUs re-pin.
        if let Err(e) = affinity::pin_current_thread(&p.emulator) {
            return setup_failed(e);
        }
    }
    if let Err(e) = vm::install_kick_handler() {
        return setup_failed(format!("signal handler: {e}"));
    }
    let console: SharedConsole = match &spec.serial.log_path {
        Some(p) => match ConsoleLog::file(p, spec.serial.log_max_bytes) {
            Ok(c) => Arc::new(Mutex::new(c)),
            Err(e) => return setup_failed(e),
        },
        None => Arc::new(Mutex::new(ConsoleLog::stdout(spec.serial.log_max_bytes))),
    };
    let control = Arc::new(VmControl::new());
    let api = match &spec.control_socket {
        Some(p) => {
            let info = VmInfo {
                name: spec.name.clone(),
                vcpus: spec.cpus.count,
                memory_mib: spec.memory.size_mib,
            };
            match ApiServer::start(p, control.clone(), console.clone(), info) {
                Ok(a) => Some(a),
                Err(e) => return setup_failed(e),
            }
        }
        None => None,
    };
    let code = run_loop(spec, direct, &control, &console);
    let _ = control.transition(VmState::Stopped);
    if let Some(a) = api {
        a.finish();
    }
    code
}

fn run_loop(spec: &VmSpec, direct: bool, control: &Arc<VmControl>, console: &SharedConsole) -> u8 {
    let mut first = true;
    let mut first_start = true;
    loop {
        let mut vm = match builder::build(spec, console.clone()) {
            Ok(vm) => vm,
            Err(e) if first => return setup_failed(e),
            Err(e) => {
                tracing::error!(error = %e, "rebuilding the VM after reset failed");
                return exit_code::VMM_ERROR;
            }
        };
        first = false;
        if let Err(e) = control.transition(VmState::Running) {
            tracing::error!(error = %e, "starting VM");
            return exit_code::VMM_ERROR;
        }
        if let Err(e) = vm.start(spec, control) {
            control.request_exit(ExitReason::VmmError(e.to_string()));
        }
        if direct {
            forward_stdin(vm.bus());
        }
        if first_start {
            // Setup is done: confine the main thread (kept across restarts).
            first_start = false;
            if let Err(e) = jail::enter(ThreadClass::Main) {
                control.request_exit(ExitReason::VmmError(e.to_string()));
            }
        }
        let reason = control.wait_exit();
        vm.stop(control);
        drop(vm);
        let restart = reason == ExitReason::Reset
            && !direct
            && spec.on_reset == OnReset::Restart
            && control.state() != VmState::ShuttingDown;
        if restart && control.begin_restart() {
            tracing::info!("guest reset: restarting");
            continue;
        }
        let reason = control.exit_reason().unwrap_or(reason);
        match &reason {
            ExitReason::Crash(m) | ExitReason::VmmError(m) => eprintln!("novakvm vmm: {m}"),
            _ => {}
        }
        tracing::info!(?reason, "VM ended");
        return reason.exit_code(direct);
    }
}

/// Direct form: feed standard input to COM1 on thread `stdin` (ends at EOF).
fn forward_stdin(bus: Arc<crate::vmm::devices::bus::PioBus>) {
    // SAFETY: isatty/tcgetpgrp/getpgrp only query state of fd 0 and this process.
    let background_tty = unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) != libc::getpgrp() };
    if background_tty {
        // Reading would stop the process with SIGTTIN.
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            if let Err(e) = jail::enter(ThreadClass::Io) {
                tracing::error!(error = %e, "console input thread not started");
                return;
            }
            use std::io::Read;
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let mut rest = &buf[..n];
                while !rest.is_empty() {
                    let taken = bus.serial_input(rest);
                    rest = &rest[taken..];
                    if taken == 0 {
                        // Receive FIFO full: let the guest drain it.
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "console input thread");
    }
}
