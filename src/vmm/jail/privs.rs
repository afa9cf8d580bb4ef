//! Privilege dropping: capabilities (per thread), no_new_privs, inherited descriptors and
//! core dumps (guest memory must not end up in a core file).

use super::JailError;

fn last_os_error(what: &'static str) -> JailError {
    JailError::Privs {
        what,
        source: std::io::Error::last_os_error(),
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Highest capability number the bounding set can hold.
const MAX_CAP: libc::c_ulong = 63;

/// Drop every capability of the calling thread: bounding set (when it still holds any
/// and the thread may drop them), ambient set, then effective/permitted/inheritable.
pub fn drop_thread_privileges() -> Result<(), JailError> {
    for cap in 0..=MAX_CAP {
        // SAFETY: PR_CAPBSET_READ only reads this thread's bounding set.
        let held = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) };
        if held < 0 {
            // EINVAL: past the kernel's last capability.
            break;
        }
        if held == 1 {
            // SAFETY: PR_CAPBSET_DROP only changes this thread's bounding set.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
            if rc != 0 {
                // EPERM without CAP_SETPCAP (an unprivileged VMM): nothing to drop then,
                // since the thread cannot gain capabilities (no_new_privs, no execve).
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EPERM) {
                    return Err(JailError::Privs {
                        what: "PR_CAPBSET_DROP",
                        source: e,
                    });
                }
                break;
            }
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL only changes this thread's ambient set.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(last_os_error("PR_CAP_AMBIENT_CLEAR_ALL"));
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads a version-3 header and two CapData entries, both valid for
    // the call; pid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(last_os_error("capset"));
    }
    Ok(())
}

/// Set no_new_privs on the calling thread (inherited by threads it spawns).
pub fn set_no_new_privs() -> Result<(), JailError> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(last_os_error("PR_SET_NO_NEW_PRIVS"));
    }
    Ok(())
}

/// Close every descriptor above standard error: whatever the parent leaked into this
/// process. Call first thing, before the VMM opens anything.
pub fn close_inherited_fds() -> Result<(), JailError> {
    // SAFETY: close_range takes no pointers; descriptors >= 3 are not owned by any Rust
    // object yet when this runs at startup.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.9: walk /proc/self/fd.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|source| JailError::Privs {
            what: "listing /proc/self/fd",
            source,
        })?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; the read_dir descriptor is already closed (EBADF ignored).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Fix glibc's malloc arena limit now. Otherwise, once a process has more than 8 arenas
/// (many threads), glibc computes the limit by reading /sys/devices/system/cpu/online,
/// from whichever thread allocates, which its filter forbids.
pub fn fix_malloc_arenas() -> Result<(), JailError> {
    // SAFETY: mallopt takes no pointers; called before other threads exist.
    let rc = unsafe { libc::mallopt(libc::M_ARENA_MAX, 8) };
    if rc != 1 {
        return Err(JailError::Privs {
            what: "mallopt(M_ARENA_MAX)",
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    Ok(())
}

/// Point standard input at /dev/null (the spec form never reads it): the parent's
/// terminal or pipe is not held open.
pub fn stdin_to_dev_null() -> Result<(), JailError> {
    let null = std::fs::File::open("/dev/null").map_err(|source| JailError::Privs {
        what: "opening /dev/null",
        source,
    })?;
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 onto descriptor 0, which no Rust object owns (std's Stdin only borrows
    // it); `null` stays valid for the call and is closed when dropped.
    let rc = unsafe { libc::dup2(null.as_raw_fd(), 0) };
    if rc != 0 {
        return Err(last_os_error("dup2 /dev/null to stdin"));
    }
    Ok(())
}

/// No core dumps: they would contain guest memory.
pub fn disable_core_dumps() -> Result<(), JailError> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads one valid rlimit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        return Err(last_os_error("setrlimit(RLIMIT_CORE)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_privileges_in_a_thread_leaves_it_without_capabilities() {
        std::thread::spawn(|| {
            drop_thread_privileges().unwrap();
            set_no_new_privs().unwrap();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            for key in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
                let line = status
                    .lines()
                    .find(|l| l.starts_with(key))
                    .unwrap()
                    .to_string();
                assert!(line.ends_with("0000000000000000"), "{line}");
            }
            assert!(status.contains("NoNewPrivs:\t1"), "{status}");
            // Idempotent.
            drop_thread_privileges().unwrap();
        })
        .join()
        .unwrap();
    }
}
