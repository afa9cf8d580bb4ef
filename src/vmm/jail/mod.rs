//! Confinement of the VMM process: one seccomp filter per thread class, plus privilege
//! dropping (no_new_privs, capabilities, inherited file descriptors, core dumps).
//!
//! The VMM opens everything it needs first (/dev/kvm, guest memory, kernel, serial log,
//! control socket), then every thread calls [`enter`] with its [`ThreadClass`] before it
//! handles any guest or client input. [`enter`] drops the thread's capabilities and
//! installs the class filter (seccomp filters and capabilities are per thread; threads
//! spawned later inherit both from their creator and stack their own filter on top).
//!
//! The filters are BPF programs compiled from the Rust rule lists in [`filters`] once at
//! startup ([`install`]); the action for a syscall outside the list is
//! [`SeccompMode::Kill`] (SECCOMP_RET_KILL_PROCESS: the process dies with SIGSYS),
//! [`SeccompMode::Log`] (allowed, logged by the kernel's audit/printk) or
//! [`SeccompMode::Off`] (no filter; privileges are still dropped).

pub mod debug;
pub mod filters;
pub mod privs;

use std::collections::HashMap;
use std::sync::OnceLock;

use seccompiler::BpfProgram;
use serde::{Deserialize, Serialize};

/// Confinement errors.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// A filter could not be compiled from its rules.
    #[error("seccomp filter for {class}: {source}")]
    Compile {
        /// Thread class.
        class: ThreadClass,
        /// Cause.
        source: seccompiler::BackendError,
    },
    /// A compiled filter could not be turned into BPF.
    #[error("seccomp BPF for {class}: {source}")]
    Bpf {
        /// Thread class.
        class: ThreadClass,
        /// Cause.
        source: seccompiler::BackendError,
    },
    /// The kernel refused the filter.
    #[error("installing seccomp filter for {class}: {source}")]
    Apply {
        /// Thread class.
        class: ThreadClass,
        /// Cause.
        source: seccompiler::Error,
    },
    /// A privilege-dropping call failed.
    #[error("{what}: {source}")]
    Privs {
        /// Which call.
        what: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// [`install`] was called twice with different modes.
    #[error("confinement already installed with mode {0:?}")]
    AlreadyInstalled(SeccompMode),
}

/// What happens on a syscall outside a thread's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SeccompMode {
    /// Kill the whole process (SIGSYS).
    #[default]
    Kill,
    /// Allow the call and have the kernel log it (debugging).
    Log,
    /// No seccomp filters (privileges are still dropped).
    Off,
}

/// Classes of VMM threads; each gets its own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadClass {
    /// The main thread after setup: waits for the VM's end, tears down, rebuilds on a
    /// guest reset (`on_reset: restart`), so it keeps the setup syscalls.
    Main,
    /// `vcpu<N>`: KVM_RUN and device emulation on port/MMIO exits.
    Vcpu,
    /// Device back-end and I/O threads (virtio block/net, console input): I/O on
    /// already-open descriptors, epoll, eventfds.
    Io,
    /// Control socket threads (`api`, `api-conn`): accept, read/write on the socket,
    /// spawning connection threads.
    Control,
}

impl ThreadClass {
    /// Every class.
    pub const ALL: [ThreadClass; 4] = [
        ThreadClass::Main,
        ThreadClass::Vcpu,
        ThreadClass::Io,
        ThreadClass::Control,
    ];

    /// Name used in logs and debug requests.
    pub fn name(self) -> &'static str {
        match self {
            ThreadClass::Main => "main",
            ThreadClass::Vcpu => "vcpu",
            ThreadClass::Io => "io",
            ThreadClass::Control => "control",
        }
    }

    /// The class named `name`.
    pub fn from_name(name: &str) -> Option<ThreadClass> {
        ThreadClass::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for ThreadClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The compiled filters of one process.
#[derive(Debug)]
pub struct Jail {
    mode: SeccompMode,
    programs: HashMap<ThreadClass, BpfProgram>,
}

impl Jail {
    /// Compile the filter of every class for `mode` (none when `Off`).
    pub fn new(mode: SeccompMode) -> Result<Jail, JailError> {
        let mut programs = HashMap::new();
        if mode != SeccompMode::Off {
            for class in ThreadClass::ALL {
                programs.insert(class, filters::compile(class, mode)?);
            }
        }
        Ok(Jail { mode, programs })
    }

    /// The mode.
    pub fn mode(&self) -> SeccompMode {
        self.mode
    }

    /// The BPF program of `class` (none when the mode is `Off`).
    pub fn program(&self, class: ThreadClass) -> Option<&BpfProgram> {
        self.programs.get(&class)
    }

    /// Confine the calling thread: drop its capabilities, set no_new_privs and install the
    /// filter of `class`.
    pub fn enter(&self, class: ThreadClass) -> Result<(), JailError> {
        privs::drop_thread_privileges()?;
        match self.programs.get(&class) {
            Some(p) => {
                seccompiler::apply_filter(p).map_err(|source| JailError::Apply { class, source })?
            }
            None => privs::set_no_new_privs()?,
        }
        tracing::debug!(%class, mode = ?self.mode, "thread confined");
        Ok(())
    }
}

static JAIL: OnceLock<Jail> = OnceLock::new();

/// Compile the filters for `mode` once for this process (at startup, before any thread
/// is spawned). A second call with the same mode is a no-op.
pub fn install(mode: SeccompMode) -> Result<(), JailError> {
    if let Some(j) = JAIL.get() {
        return if j.mode == mode {
            Ok(())
        } else {
            Err(JailError::AlreadyInstalled(j.mode))
        };
    }
    let jail = Jail::new(mode)?;
    let _ = JAIL.set(jail);
    Ok(())
}

/// Confine the calling thread as `class` (no-op when [`install`] was never called, e.g.
/// in unit tests that drive parts of the VMM directly).
pub fn enter(class: ThreadClass) -> Result<(), JailError> {
    match JAIL.get() {
        Some(j) => j.enter(class),
        None => Ok(()),
    }
}

/// The installed mode, if any.
pub fn mode() -> Option<SeccompMode> {
    JAIL.get().map(|j| j.mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip_and_garbage_is_none() {
        for c in ThreadClass::ALL {
            assert_eq!(ThreadClass::from_name(c.name()), Some(c));
        }
        for bad in ["", "VCPU", "vcpu ", "api", "\u{0}", "main\n"] {
            assert_eq!(ThreadClass::from_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_kernel_accepts_every_filter() {
        // Log mode: a mismatch is logged, never fatal, so the test process is safe; each
        // class in its own thread, which ends with it.
        let jail = std::sync::Arc::new(Jail::new(SeccompMode::Log).unwrap());
        assert_eq!(jail.mode(), SeccompMode::Log);
        for class in ThreadClass::ALL {
            let j = jail.clone();
            let status = std::thread::spawn(move || {
                j.enter(class).unwrap();
                std::fs::read_to_string("/proc/thread-self/status").unwrap()
            })
            .join()
            .unwrap();
            assert!(status.contains("Seccomp:\t2"), "{class}: {status}");
            assert!(status.contains("NoNewPrivs:\t1"), "{class}");
        }
        let off = Jail::new(SeccompMode::Off).unwrap();
        assert!(off.program(ThreadClass::Vcpu).is_none());
    }
}
