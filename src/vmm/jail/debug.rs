//! Debug hook for the confinement tests: make a thread of a given class perform a syscall
//! its filter forbids (`openat` of "/"), on a control request
//! `{"cmd":"debug_forbidden_syscall","class":"vcpu"|"control"}`.
//!
//! The request is refused unless the VMM was started with `NOVAKVM_VMM_DEBUG_HOOKS=1` in
//! its environment. The hook adds nothing to any filter: the syscall runs in the jailed
//! thread, so with `seccomp: kill` the process dies with SIGSYS, with `log` or `off` the
//! call succeeds and the VMM goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use super::ThreadClass;
use crate::vmm::vm::VmControl;

/// Environment variable enabling the hook.
pub const ENV: &str = "NOVAKVM_VMM_DEBUG_HOOKS";

static VCPU_PENDING: AtomicBool = AtomicBool::new(false);

/// Whether the hook is enabled for this process.
pub fn enabled() -> bool {
    std::env::var_os(ENV).is_some_and(|v| v == "1")
}

/// The forbidden call: open "/" read-only (no thread class but main may open files).
/// Returns the descriptor or the error number; the descriptor is closed again.
pub fn forbidden_syscall() -> Result<(), i32> {
    // SAFETY: openat with a NUL-terminated static path; the descriptor is closed below.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            c"/".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: `fd` was just opened here and is owned by nobody else.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Ask the next vCPU exit to perform the forbidden call (the caller kicks the vCPUs).
pub fn request_vcpu() {
    VCPU_PENDING.store(true, Ordering::SeqCst);
}

/// Called by vCPU threads after each exit from KVM_RUN.
#[inline]
pub fn vcpu_hook() {
    if VCPU_PENDING.load(Ordering::Relaxed) && VCPU_PENDING.swap(false, Ordering::SeqCst) {
        let res = forbidden_syscall();
        tracing::warn!(class = %ThreadClass::Vcpu, ?res, "debug: forbidden syscall done");
    }
}

/// Answer a `debug_forbidden_syscall` control request for `class` (vcpu or control) on
/// the calling control connection thread.
pub fn handle(class: ThreadClass, control: &VmControl) -> Value {
    if !enabled() {
        return json!({
            "ok": false,
            "error": format!("debug hooks are disabled (start the VMM with {ENV}=1)"),
        });
    }
    match class {
        ThreadClass::Vcpu => {
            request_vcpu();
            // Kick the vCPUs out of KVM_RUN so one of them runs the hook.
            match control
                .pause(Duration::from_secs(5))
                .and_then(|_| control.resume())
            {
                Ok(()) => json!({"ok": true, "class": "vcpu"}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            }
        }
        // The calling thread is a control thread.
        _ => match forbidden_syscall() {
            Ok(()) => json!({"ok": true, "class": class.name(), "result": "allowed"}),
            Err(errno) => {
                json!({"ok": true, "class": class.name(), "result": "failed", "errno": errno})
            }
        },
    }
}
