//! The syscall allow-lists of each thread class, as Rust rules compiled to BPF with
//! seccompiler at startup. `ioctl` is allowed only for listed request numbers (KVM_RUN for
//! vCPUs, the KVM setup ioctls for the main thread), `fcntl`, `prctl`, `tgkill`,
//! `clone` and `seccomp` are argument-filtered too.
//!
//! Why each call is there is written next to it; docs/arch-jail.md has the tables.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{JailError, SeccompMode, ThreadClass};

/// One syscall's rules: `None` allows it with any arguments, `Some(rules)` when one of
/// the rules (each a conjunction of argument conditions) matches.
type Rules = BTreeMap<i64, Option<Vec<Vec<Cond>>>>;

/// One argument condition on argument `.0` (low 32 bits): `(arg & .1) == .2`.
#[derive(Debug, Clone, Copy)]
struct Cond(u8, u64, u64);

impl Cond {
    /// Argument `arg` equals `value`.
    fn eq(arg: u8, value: u64) -> Cond {
        Cond(arg, u64::from(u32::MAX), value)
    }
}

/// KVM ioctl request numbers (linux/kvm.h; `_IO`/`_IOR`/`_IOW`/`_IOWR` on type 0xAE).
pub mod kvm_ioctl {
    use kvm_bindings as kb;
    use std::mem::size_of;

    const KVMIO: u64 = 0xAE;
    const fn io(nr: u64) -> u64 {
        (KVMIO << 8) | nr
    }
    const fn iow(nr: u64, size: usize) -> u64 {
        (1 << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
    }
    const fn ior(nr: u64, size: usize) -> u64 {
        (2 << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
    }
    const fn iowr(nr: u64, size: usize) -> u64 {
        (3 << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
    }

    /// System ioctls on /dev/kvm.
    pub const KVM_GET_API_VERSION: u64 = io(0x00);
    /// Create a VM.
    pub const KVM_CREATE_VM: u64 = io(0x01);
    /// MSR index list.
    pub const KVM_GET_MSR_INDEX_LIST: u64 = iowr(0x02, size_of::<kb::kvm_msr_list>());
    /// Capability query.
    pub const KVM_CHECK_EXTENSION: u64 = io(0x03);
    /// Size of the kvm_run mapping.
    pub const KVM_GET_VCPU_MMAP_SIZE: u64 = io(0x04);
    /// Supported CPUID.
    pub const KVM_GET_SUPPORTED_CPUID: u64 = iowr(0x05, size_of::<kb::kvm_cpuid2>());
    /// Create a vCPU.
    pub const KVM_CREATE_VCPU: u64 = io(0x41);
    /// Guest memory slot.
    pub const KVM_SET_USER_MEMORY_REGION: u64 =
        iow(0x46, size_of::<kb::kvm_userspace_memory_region>());
    /// TSS address.
    pub const KVM_SET_TSS_ADDR: u64 = io(0x47);
    /// Identity map address.
    pub const KVM_SET_IDENTITY_MAP_ADDR: u64 = iow(0x48, size_of::<u64>());
    /// In-kernel PIC/IOAPIC/LAPIC.
    pub const KVM_CREATE_IRQCHIP: u64 = io(0x60);
    /// Raise/lower an IRQ line.
    pub const KVM_IRQ_LINE: u64 = iow(0x61, size_of::<kb::kvm_irq_level>());
    /// GSI routing (MSI/MSI-X).
    pub const KVM_SET_GSI_ROUTING: u64 = iow(0x6a, size_of::<kb::kvm_irq_routing>());
    /// irqfd.
    pub const KVM_IRQFD: u64 = iow(0x76, size_of::<kb::kvm_irqfd>());
    /// In-kernel PIT.
    pub const KVM_CREATE_PIT2: u64 = iow(0x77, size_of::<kb::kvm_pit_config>());
    /// ioeventfd.
    pub const KVM_IOEVENTFD: u64 = iow(0x79, size_of::<kb::kvm_ioeventfd>());
    /// Enable a VM/vCPU capability.
    pub const KVM_ENABLE_CAP: u64 = iow(0xa3, size_of::<kb::kvm_enable_cap>());
    /// Inject an MSI.
    pub const KVM_SIGNAL_MSI: u64 = iow(0xa5, size_of::<kb::kvm_msi>());
    /// Enter the guest.
    pub const KVM_RUN: u64 = io(0x80);
    /// General registers.
    pub const KVM_GET_REGS: u64 = ior(0x81, size_of::<kb::kvm_regs>());
    /// General registers.
    pub const KVM_SET_REGS: u64 = iow(0x82, size_of::<kb::kvm_regs>());
    /// Special registers.
    pub const KVM_GET_SREGS: u64 = ior(0x83, size_of::<kb::kvm_sregs>());
    /// Special registers.
    pub const KVM_SET_SREGS: u64 = iow(0x84, size_of::<kb::kvm_sregs>());
    /// MSRs.
    pub const KVM_GET_MSRS: u64 = iowr(0x88, size_of::<kb::kvm_msrs>());
    /// MSRs.
    pub const KVM_SET_MSRS: u64 = iow(0x89, size_of::<kb::kvm_msrs>());
    /// FPU state.
    pub const KVM_GET_FPU: u64 = ior(0x8c, size_of::<kb::kvm_fpu>());
    /// FPU state.
    pub const KVM_SET_FPU: u64 = iow(0x8d, size_of::<kb::kvm_fpu>());
    /// Local APIC state.
    pub const KVM_GET_LAPIC: u64 = ior(0x8e, size_of::<kb::kvm_lapic_state>());
    /// Local APIC state.
    pub const KVM_SET_LAPIC: u64 = iow(0x8f, size_of::<kb::kvm_lapic_state>());
    /// CPUID of a vCPU.
    pub const KVM_SET_CPUID2: u64 = iow(0x90, size_of::<kb::kvm_cpuid2>());
    /// MP state.
    pub const KVM_GET_MP_STATE: u64 = ior(0x98, size_of::<kb::kvm_mp_state>());
    /// MP state.
    pub const KVM_SET_MP_STATE: u64 = iow(0x99, size_of::<kb::kvm_mp_state>());
    /// TSC frequency.
    pub const KVM_SET_TSC_KHZ: u64 = io(0xa2);
    /// TSC frequency.
    pub const KVM_GET_TSC_KHZ: u64 = io(0xa3);
}

// prctl options (linux/prctl.h).
const PR_SET_NAME: u64 = 15;
const PR_CAPBSET_READ: u64 = 23;
const PR_CAPBSET_DROP: u64 = 24;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_CAP_AMBIENT: u64 = 47;
// seccomp(2) operation.
const SECCOMP_SET_MODE_FILTER: u64 = 1;

fn allow(r: &mut Rules, syscalls: &[libc::c_long]) {
    for &s in syscalls {
        r.insert(s, None);
    }
}

/// Allow `syscall` when argument `arg` equals one of `values`.
fn allow_arg(r: &mut Rules, syscall: libc::c_long, arg: u8, values: &[u64]) {
    let entry = r.entry(syscall).or_insert_with(|| Some(Vec::new()));
    if let Some(rules) = entry {
        for &v in values {
            rules.push(vec![Cond::eq(arg, v)]);
        }
    }
}

/// Every thread: memory allocation, locks, sleeping, signals, logging to stderr,
/// dropping file descriptors it owns, and the start/end of threads spawned by it.
fn base(r: &mut Rules) {
    allow(
        r,
        &[
            // malloc and thread stacks.
            libc::SYS_brk,
            libc::SYS_mmap,
            libc::SYS_munmap,
            libc::SYS_mremap,
            libc::SYS_mprotect,
            libc::SYS_madvise,
            // Mutex/Condvar, sleeping, time (vDSO fallback).
            libc::SYS_futex,
            libc::SYS_sched_yield,
            libc::SYS_nanosleep,
            libc::SYS_clock_nanosleep,
            libc::SYS_clock_gettime,
            libc::SYS_restart_syscall,
            // Signals: the vCPU kick handler returns with rt_sigreturn; pthread_kill blocks
            // signals around tgkill and needs the process id.
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigreturn,
            libc::SYS_sigaltstack,
            libc::SYS_getpid,
            libc::SYS_gettid,
            // Logs to stderr, console output, eventfd signalling.
            libc::SYS_write,
            libc::SYS_writev,
            // Dropping owned descriptors (vCPU fd, connection sockets).
            libc::SYS_close,
            // std's HashMap keys.
            libc::SYS_getrandom,
            // Start and end of a thread (glibc, Rust std).
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_sched_getaffinity,
            libc::SYS_exit,
            libc::SYS_exit_group,
        ],
    );
    // OwnedFd's drop checks the descriptor (debug builds).
    allow_arg(r, libc::SYS_fcntl, 1, &[libc::F_GETFD as u64]);
    // Thread names.
    allow_arg(r, libc::SYS_prctl, 0, &[PR_SET_NAME]);
    // pthread_kill: only threads of this process, only the vCPU kick signal and abort.
    let pid = u64::from(std::process::id());
    let e = r
        .entry(libc::SYS_tgkill)
        .or_insert_with(|| Some(Vec::new()));
    if let Some(rules) = e {
        for sig in [crate::vmm::vm::kick_signal(), libc::SIGABRT] {
            rules.push(vec![Cond::eq(0, pid), Cond::eq(2, sig as u64)]);
        }
    }
}

/// What a thread needs to spawn confined threads: clone, and the calls the new thread
/// makes (under its parent's filter) to pin itself and stack its own filter.
fn spawner(r: &mut Rules) {
    allow(
        r,
        &[
            libc::SYS_clone3,
            libc::SYS_capget,
            libc::SYS_capset,
            libc::SYS_sched_setaffinity,
        ],
    );
    // glibc falls back to clone without clone3: threads only (the exact pthread flags).
    let thread_flags = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID;
    allow_arg(r, libc::SYS_clone, 0, &[thread_flags as u64]);
    allow_arg(
        r,
        libc::SYS_prctl,
        0,
        &[
            PR_SET_NO_NEW_PRIVS,
            PR_CAPBSET_READ,
            PR_CAPBSET_DROP,
            PR_CAP_AMBIENT,
        ],
    );
    allow_arg(r, libc::SYS_seccomp, 0, &[SECCOMP_SET_MODE_FILTER]);
}

/// vCPU threads: KVM_RUN, and what device emulation on an exit does (console log file,
/// irqfd/eventfd writes, interrupt injection and ioeventfd/irqfd/MSI routing updates when
/// the guest reprograms a PCI device).
fn vcpu(r: &mut Rules) {
    base(r);
    allow(
        r,
        &[
            // Serial log rewrite when it reaches its bound (set_len, seek).
            libc::SYS_ftruncate,
            libc::SYS_lseek,
        ],
    );
    use kvm_ioctl::*;
    allow_arg(
        r,
        libc::SYS_ioctl,
        1,
        &[
            KVM_RUN,
            KVM_IRQ_LINE,
            KVM_SIGNAL_MSI,
            KVM_IRQFD,
            KVM_IOEVENTFD,
            KVM_SET_GSI_ROUTING,
        ],
    );
}

/// Device/IO threads: I/O on descriptors opened during setup (disk images, tap devices,
/// eventfds, standard input), epoll, interrupt injection.
fn io(r: &mut Rules) {
    base(r);
    allow(
        r,
        &[
            libc::SYS_read,
            libc::SYS_readv,
            libc::SYS_pread64,
            libc::SYS_preadv,
            libc::SYS_preadv2,
            libc::SYS_pwrite64,
            libc::SYS_pwritev,
            libc::SYS_pwritev2,
            libc::SYS_lseek,
            libc::SYS_fsync,
            libc::SYS_fdatasync,
            // virtio-blk discard / write-zeroes.
            libc::SYS_fallocate,
            libc::SYS_epoll_create1,
            libc::SYS_epoll_ctl,
            libc::SYS_epoll_wait,
            libc::SYS_epoll_pwait,
            libc::SYS_ppoll,
            libc::SYS_poll,
        ],
    );
    use kvm_ioctl::*;
    allow_arg(r, libc::SYS_ioctl, 1, &[KVM_IRQ_LINE, KVM_SIGNAL_MSI]);
}

/// Control socket threads: accept connections, read requests, write replies, spawn a
/// thread per connection.
fn control(r: &mut Rules) {
    base(r);
    spawner(r);
    allow(
        r,
        &[
            // UnixListener::accept, UnixStream read/write (recv/send).
            libc::SYS_accept4,
            libc::SYS_recvfrom,
            libc::SYS_sendto,
        ],
    );
    // UnixStream::try_clone.
    allow_arg(r, libc::SYS_fcntl, 1, &[libc::F_DUPFD_CLOEXEC as u64]);
}

/// The main thread after setup: tear down, rebuild the VM on a guest reset (open
/// /dev/kvm and the kernel, guest memory, the KVM setup ioctls), spawn vCPU threads,
/// remove the control socket at the end. Threads it spawns after it was confined (vCPUs
/// after a restart, device threads) run under its filter and stack their own on top, so it
/// also holds everything the vCPU and device/IO classes allow.
fn main(r: &mut Rules) {
    vcpu(r);
    io(r);
    spawner(r);
    // Re-opening /dev/kvm, the kernel/initrd and sysfs hugepage counters: never to create,
    // truncate or write-only (the serial log is opened once, before confinement).
    let no_create = (libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY | libc::O_APPEND) as u64;
    r.insert(libc::SYS_openat, Some(vec![vec![Cond(2, no_create, 0)]]));
    allow(
        r,
        &[
            libc::SYS_read,
            libc::SYS_pread64,
            libc::SYS_lseek,
            libc::SYS_statx,
            libc::SYS_newfstatat,
            libc::SYS_fstat,
            libc::SYS_memfd_create,
            libc::SYS_ftruncate,
            libc::SYS_fallocate,
            libc::SYS_mbind,
            libc::SYS_eventfd2,
            libc::SYS_unlink,
            libc::SYS_unlinkat,
        ],
    );
    // EventFd::try_clone when device workers are rebuilt after a guest reset.
    allow_arg(r, libc::SYS_fcntl, 1, &[libc::F_DUPFD_CLOEXEC as u64]);
    use kvm_ioctl::*;
    allow_arg(
        r,
        libc::SYS_ioctl,
        1,
        &[
            KVM_GET_API_VERSION,
            KVM_CREATE_VM,
            KVM_GET_MSR_INDEX_LIST,
            KVM_CHECK_EXTENSION,
            KVM_GET_VCPU_MMAP_SIZE,
            KVM_GET_SUPPORTED_CPUID,
            KVM_CREATE_VCPU,
            KVM_SET_USER_MEMORY_REGION,
            KVM_SET_TSS_ADDR,
            KVM_SET_IDENTITY_MAP_ADDR,
            KVM_CREATE_IRQCHIP,
            KVM_IRQ_LINE,
            KVM_SET_GSI_ROUTING,
            KVM_IRQFD,
            KVM_CREATE_PIT2,
            KVM_IOEVENTFD,
            KVM_ENABLE_CAP,
            KVM_SIGNAL_MSI,
            KVM_GET_REGS,
            KVM_SET_REGS,
            KVM_GET_SREGS,
            KVM_SET_SREGS,
            KVM_GET_MSRS,
            KVM_SET_MSRS,
            KVM_GET_FPU,
            KVM_SET_FPU,
            KVM_GET_LAPIC,
            KVM_SET_LAPIC,
            KVM_SET_CPUID2,
            KVM_GET_MP_STATE,
            KVM_SET_MP_STATE,
            KVM_SET_TSC_KHZ,
            KVM_GET_TSC_KHZ,
            // A guest reset with `on_reset: restart` reopens the NICs' taps.
            TUNSETIFF,
            TUNSETOFFLOAD,
            TUNSETVNETHDRSZ,
        ],
    );
}

/// The tap ioctls of `devices::virtio::tap` (linux/if_tun.h).
const TUNSETIFF: u64 = 0x4004_54ca;
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
const TUNSETVNETHDRSZ: u64 = 0x4004_54d8;

/// The allow-list of `class` as (syscall, rules) pairs, for documentation and tests.
fn rules(class: ThreadClass) -> Rules {
    let mut r = Rules::new();
    match class {
        ThreadClass::Main => main(&mut r),
        ThreadClass::Vcpu => vcpu(&mut r),
        ThreadClass::Io => io(&mut r),
        ThreadClass::Control => control(&mut r),
    }
    r
}

/// Whether `class` allows `syscall` for some arguments.
pub fn allows(class: ThreadClass, syscall: libc::c_long) -> bool {
    rules(class).contains_key(&syscall)
}

/// Compile the filter of `class` with the mismatch action of `mode`.
pub fn compile(class: ThreadClass, mode: SeccompMode) -> Result<BpfProgram, JailError> {
    let mismatch = match mode {
        SeccompMode::Kill | SeccompMode::Off => SeccompAction::KillProcess,
        SeccompMode::Log => SeccompAction::Log,
    };
    let compile_err = |source| JailError::Compile { class, source };
    let mut map = BTreeMap::new();
    for (syscall, rules) in rules(class) {
        let rules = match rules {
            None => Vec::new(),
            Some(list) => list
                .into_iter()
                .map(|conds| {
                    let conds = conds
                        .into_iter()
                        .map(|Cond(arg, mask, v)| {
                            let op = if mask == u64::from(u32::MAX) {
                                SeccompCmpOp::Eq
                            } else {
                                SeccompCmpOp::MaskedEq(mask)
                            };
                            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, v)
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    SeccompRule::new(conds)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(compile_err)?,
        };
        map.insert(syscall, rules);
    }
    let filter = SeccompFilter::new(map, mismatch, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(compile_err)?;
    BpfProgram::try_from(filter).map_err(|source| JailError::Bpf { class, source })
}

#[cfg(test)]
mod tests {
    use super::kvm_ioctl::*;
    use super::*;

    #[test]
    fn kvm_ioctl_numbers_match_linux() {
        // Values from linux/kvm.h on x86_64 (as printed by strace).
        assert_eq!(KVM_CREATE_VM, 0xae01);
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x4020_ae46);
        assert_eq!(KVM_GET_SUPPORTED_CPUID, 0xc008_ae05);
        assert_eq!(KVM_SET_CPUID2, 0x4008_ae90);
        assert_eq!(KVM_SET_MSRS, 0x4008_ae89);
        assert_eq!(KVM_IRQFD, 0x4020_ae76);
        assert_eq!(KVM_CREATE_PIT2, 0x4040_ae77);
        assert_eq!(KVM_SET_IDENTITY_MAP_ADDR, 0x4008_ae48);
        assert_eq!(KVM_SET_REGS, 0x4090_ae82);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
        assert_eq!(KVM_SET_LAPIC, 0x4400_ae8f);
        assert_eq!(KVM_SET_FPU, 0x41a0_ae8d);
        assert_eq!(KVM_IOEVENTFD, 0x4040_ae79);
        assert_eq!(KVM_SIGNAL_MSI, 0x4020_aea5);
    }

    #[test]
    fn every_class_compiles_in_every_mode() {
        for class in ThreadClass::ALL {
            for mode in [SeccompMode::Kill, SeccompMode::Log] {
                let p = compile(class, mode).unwrap();
                assert!(p.len() > 10, "{class}");
            }
        }
    }

    #[test]
    fn spawning_classes_cover_the_classes_they_spawn() {
        // Filters stack: a thread spawned by a confined thread runs under both filters.
        let main = rules(ThreadClass::Main);
        for child in [ThreadClass::Vcpu, ThreadClass::Io] {
            for (s, conds) in rules(child) {
                match (main.get(&s), conds) {
                    (Some(None), _) => {}
                    (Some(Some(m)), Some(c)) => {
                        for rule in c {
                            assert!(
                                m.iter().any(|r| format!("{r:?}") == format!("{rule:?}")),
                                "main lacks {rule:?} of syscall {s} for {child}"
                            );
                        }
                    }
                    other => panic!("main lacks syscall {s} of {child}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn classes_are_narrow_where_it_matters() {
        use ThreadClass::*;
        // Nobody may start programs, trace, open sockets or change ids after setup.
        for class in ThreadClass::ALL {
            for s in [
                libc::SYS_execve,
                libc::SYS_execveat,
                libc::SYS_ptrace,
                libc::SYS_socket,
                libc::SYS_connect,
                libc::SYS_fork,
                libc::SYS_vfork,
                libc::SYS_setuid,
                libc::SYS_mount,
                libc::SYS_kill,
                libc::SYS_process_vm_writev,
            ] {
                assert!(!allows(class, s), "{class} allows {s}");
            }
        }
        // Only the main thread opens files, and never to create or truncate one.
        let open = rules(Main).remove(&libc::SYS_openat).unwrap().unwrap();
        assert_eq!(open.len(), 1);
        assert!(!allows(Main, libc::SYS_open) && !allows(Main, libc::SYS_creat));
        for class in [Vcpu, Io, Control] {
            assert!(!allows(class, libc::SYS_openat), "{class}");
            assert!(!allows(class, libc::SYS_memfd_create), "{class}");
        }
        // vCPUs and I/O threads spawn nothing.
        for class in [Vcpu, Io] {
            assert!(!allows(class, libc::SYS_clone), "{class}");
            assert!(!allows(class, libc::SYS_clone3), "{class}");
            assert!(!allows(class, libc::SYS_read) || class == Io, "{class}");
        }
        assert!(!allows(Vcpu, libc::SYS_accept4));
    }
}
