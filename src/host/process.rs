//! Processes the agent starts and watches: the per-VM `novakvm vmm`
//! processes, each in a Unix session of its own so that an agent restart,
//! crash or upgrade leaves the guests running, and found again later by pid
//! and start time (a reused pid is never mistaken for the VMM).

use std::path::Path;
use std::process::{Child, Command};

/// Errors about processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// What was started.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A signal could not be sent.
    #[error("cannot signal pid {pid}: {source}")]
    Signal {
        /// The process.
        pid: u32,
        /// Cause.
        source: std::io::Error,
    },
}

/// Starts `cmd` in a new session (`setsid`), detached from the caller's
/// terminal, process group and session.
pub fn spawn_detached(cmd: &mut Command, what: &str) -> Result<Child, ProcessError> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid(2), which is async-signal-safe; it touches no memory of
    // the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| ProcessError::Spawn {
        what: what.to_string(),
        source,
    })
}

/// The start time of `pid` (field 22 of /proc/PID/stat, in clock ticks since
/// boot), or `None` when there is no such live process (gone or a zombie).
pub fn start_time(pid: u32) -> Option<u64> {
    start_time_in(Path::new("/proc"), pid)
}

/// [`start_time`] below another procfs root (fixture trees in tests).
pub fn start_time_in(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // comm may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state).
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether `pid` is alive and still the process that started at `started`.
pub fn is_same_process(pid: u32, started: u64) -> bool {
    start_time(pid) == Some(started)
}

/// Sends SIGKILL to `pid`.
pub fn kill(pid: u32) -> Result<(), ProcessError> {
    signal(pid, libc::SIGKILL)
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) -> Result<(), ProcessError> {
    signal(pid, libc::SIGTERM)
}

fn signal(pid: u32, sig: libc::c_int) -> Result<(), ProcessError> {
    let p = libc::pid_t::try_from(pid).map_err(|_| ProcessError::Signal {
        pid,
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    if p <= 0 {
        return Err(ProcessError::Signal {
            pid,
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    // SAFETY: kill(2) takes plain integers and touches no memory.
    let r = unsafe { libc::kill(p, sig) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(ProcessError::Signal { pid, source: e });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_stable() {
        let me = std::process::id();
        let t = start_time(me).unwrap();
        assert!(is_same_process(me, t));
        assert!(!is_same_process(me, t + 1));
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn detached_child_has_its_own_session() {
        let mut c = spawn_detached(Command::new("sleep").arg("5"), "sleep").unwrap();
        let pid = c.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // field 6 = session id: the child leads its own session.
        assert_eq!(f[3], pid.to_string());
        kill(pid).unwrap();
        c.wait().unwrap();
        assert_eq!(start_time(pid), None);
        // Signalling what is gone is not an error.
        kill(pid).unwrap();
    }

    #[test]
    fn garbage_stat_is_no_process() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("7")).unwrap();
        std::fs::write(d.path().join("7/stat"), "garbage").unwrap();
        assert_eq!(start_time_in(d.path(), 7), None);
        std::fs::write(d.path().join("7/stat"), "7 (a) b) S 1").unwrap();
        assert_eq!(start_time_in(d.path(), 7), None);
    }
}
