//! Control socket: one JSON object per line on a unix socket, one JSON reply per line.
//!
//! Requests (`cmd` field): `status`, `pause`, `resume`, `shutdown` (`timeout_ms`, default
//! 30000: the VM goes to ShuttingDown and the guest has that long to power off before it
//! is forced off), `power_off`, `console_tail` (`bytes`, default 4096).
//! Replies: `{"ok":true,...}` or `{"ok":false,"error":"..."}`. A malformed line gets an
//! error reply and the connection stays usable.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::vmm::devices::serial::SharedConsole;
use crate::vmm::jail::{self, ThreadClass};
use crate::vmm::state::{ExitReason, VmState};
use crate::vmm::vm::VmControl;

/// Default graceful shutdown timeout.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
/// Largest console_tail answer.
pub const MAX_TAIL: usize = 1 << 20;
/// Most concurrent control connections.
const MAX_CONNECTIONS: usize = 16;
/// Longest request line.
const MAX_LINE: usize = 64 * 1024;

/// API errors.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The socket could not be created.
    #[error("control socket {path}: {source}")]
    Bind {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Wire form of a request (every field any command takes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    cmd: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    bytes: Option<usize>,
    /// Thread class of `debug_forbidden_syscall`.
    #[serde(default)]
    class: Option<String>,
}

impl Request {
    /// Parse one request line; unknown commands and fields a command does not take are errors.
    pub fn parse(text: &str) -> Result<Request, String> {
        let raw: RawRequest =
            serde_json::from_str(text).map_err(|e| format!("bad request: {e}"))?;
        let no_args = raw.timeout_ms.is_none() && raw.bytes.is_none() && raw.class.is_none();
        let req = match raw.cmd.as_str() {
            "status" if no_args => Request::Status,
            "pause" if no_args => Request::Pause,
            "resume" if no_args => Request::Resume,
            "power_off" if no_args => Request::PowerOff,
            "shutdown" if raw.bytes.is_none() && raw.class.is_none() => Request::Shutdown {
                timeout_ms: raw.timeout_ms,
            },
            "console_tail" if raw.timeout_ms.is_none() && raw.class.is_none() => {
                Request::ConsoleTail { bytes: raw.bytes }
            }
            "debug_forbidden_syscall" if raw.timeout_ms.is_none() && raw.bytes.is_none() => {
                let class = raw
                    .class
                    .as_deref()
                    .and_then(ThreadClass::from_name)
                    .filter(|c| matches!(c, ThreadClass::Vcpu | ThreadClass::Control))
                    .ok_or("bad request: class must be \"vcpu\" or \"control\"")?;
                Request::DebugForbiddenSyscall { class }
            }
            "status"
            | "pause"
            | "resume"
            | "power_off"
            | "shutdown"
            | "console_tail"
            | "debug_forbidden_syscall" => {
                return Err(format!("bad request: {} takes other arguments", raw.cmd))
            }
            other => return Err(format!("bad request: unknown cmd {other:?}")),
        };
        Ok(req)
    }
}

/// A control request.
#[derive(Debug, PartialEq)]
pub enum Request {
    /// State and sizes.
    Status,
    /// Pause the vCPUs.
    Pause,
    /// Resume the vCPUs.
    Resume,
    /// Ask the guest to power off; force after the timeout.
    Shutdown {
        /// Milliseconds to wait.
        timeout_ms: Option<u64>,
    },
    /// Power off now.
    PowerOff,
    /// Last bytes of the serial console.
    ConsoleTail {
        /// How many bytes.
        bytes: Option<usize>,
    },
    /// Test hook (only with `NOVAKVM_VMM_DEBUG_HOOKS=1`): a thread of `class` makes a
    /// syscall its seccomp filter forbids.
    DebugForbiddenSyscall {
        /// vcpu or control.
        class: ThreadClass,
    },
}

/// Static facts reported by `status`.
#[derive(Debug, Clone)]
pub struct VmInfo {
    /// VM name.
    pub name: Option<String>,
    /// vCPUs.
    pub vcpus: u32,
    /// RAM in MiB.
    pub memory_mib: u64,
}

/// The running control server.
pub struct ApiServer {
    path: PathBuf,
    inflight: Arc<AtomicUsize>,
}

impl ApiServer {
    /// Bind `path` (replacing a stale socket) and serve on thread `api`.
    pub fn start(
        path: &Path,
        control: Arc<VmControl>,
        console: SharedConsole,
        info: VmInfo,
    ) -> Result<ApiServer, ApiError> {
        let bind_err = |source| ApiError::Bind {
            path: path.display().to_string(),
            source,
        };
        if let Ok(md) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if md.file_type().is_socket() {
                std::fs::remove_file(path).map_err(bind_err)?;
            }
        }
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        {
            use std::os::unix::fs::PermissionsExt;
            // Only the owner (the compute agent) may control the VM.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(bind_err)?;
        }
        let inflight = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(Ctx {
            control,
            console,
            info,
            inflight: inflight.clone(),
            connections: AtomicUsize::new(0),
        });
        std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                // Confinement: `api` and the `api-conn` threads it spawns.
                if let Err(e) = jail::enter(ThreadClass::Control) {
                    ctx.control
                        .request_exit(ExitReason::VmmError(format!("control socket: {e}")));
                    return;
                }
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    if ctx.connections.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                        let mut text = error_reply("too many control connections").to_string();
                        text.push('\n');
                        let _ = conn.write_all(text.as_bytes());
                        continue;
                    }
                    ctx.connections.fetch_add(1, Ordering::SeqCst);
                    let conn_ctx = ctx.clone();
                    let spawned =
                        std::thread::Builder::new()
                            .name("api-conn".into())
                            .spawn(move || {
                                serve_conn(conn, &conn_ctx);
                                conn_ctx.connections.fetch_sub(1, Ordering::SeqCst);
                            });
                    if let Err(e) = spawned {
                        ctx.connections.fetch_sub(1, Ordering::SeqCst);
                        tracing::warn!(error = %e, "control connection thread");
                    }
                }
            })
            .map_err(bind_err)?;
        Ok(ApiServer {
            path: path.to_path_buf(),
            inflight,
        })
    }

    /// Let in-flight replies go out (up to 2 s), then remove the socket file.
    pub fn finish(self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Ctx {
    control: Arc<VmControl>,
    console: SharedConsole,
    info: VmInfo,
    inflight: Arc<AtomicUsize>,
    connections: AtomicUsize,
}

fn serve_conn(conn: UnixStream, ctx: &Ctx) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        ctx.inflight.fetch_add(1, Ordering::SeqCst);
        let reply = if n > MAX_LINE && !line.ends_with(b"\n") {
            // Skip the rest of an over-long line.
            let mut rest = Vec::new();
            let _ = reader.read_until(b'\n', &mut rest);
            error_reply("request line too long")
        } else {
            handle_line(&line, ctx)
        };
        let mut text = reply.to_string();
        text.push('\n');
        let res = out.write_all(text.as_bytes());
        ctx.inflight.fetch_sub(1, Ordering::SeqCst);
        if res.is_err() {
            return;
        }
    }
}

fn error_reply(msg: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": msg.to_string()})
}

/// Handle one request line.
fn handle_line(line: &[u8], ctx: &Ctx) -> Value {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t.trim(),
        Err(_) => return error_reply("request is not UTF-8"),
    };
    if text.is_empty() {
        return error_reply("empty request");
    }
    let req = match Request::parse(text) {
        Ok(r) => r,
        Err(e) => return error_reply(e),
    };
    handle(req, ctx)
}

#[tracing::instrument(skip(ctx))]
fn handle(req: Request, ctx: &Ctx) -> Value {
    let c = &ctx.control;
    match req {
        Request::Status => json!({
            "ok": true,
            "state": c.state(),
            "name": ctx.info.name,
            "vcpus": ctx.info.vcpus,
            "memory_mib": ctx.info.memory_mib,
            "boots": c.boots(),
            "pid": std::process::id(),
            "unknown_accesses": crate::vmm::devices::bus::unknown_accesses(),
        }),
        Request::Pause => match c.pause(Duration::from_secs(5)) {
            Ok(()) => json!({"ok": true, "state": c.state()}),
            Err(e) => error_reply(e),
        },
        Request::Resume => match c.resume() {
            Ok(()) => json!({"ok": true, "state": c.state()}),
            Err(e) => error_reply(e),
        },
        Request::Shutdown { timeout_ms } => {
            if let Err(e) = c.transition(VmState::ShuttingDown) {
                return error_reply(e);
            }
            let timeout = Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT_MS));
            match c.wait_exit_timeout(timeout) {
                Some(reason) => {
                    json!({"ok": true, "result": "guest_stopped", "reason": format!("{reason:?}")})
                }
                None => {
                    c.request_exit(ExitReason::ForcedOff);
                    json!({"ok": true, "result": "forced"})
                }
            }
        }
        Request::PowerOff => {
            if matches!(c.state(), VmState::Stopped) {
                return error_reply("VM already stopped");
            }
            c.request_exit(ExitReason::ForcedOff);
            json!({"ok": true})
        }
        Request::ConsoleTail { bytes } => {
            let n = bytes.unwrap_or(4096).min(MAX_TAIL);
            let data = match ctx.console.lock() {
                Ok(g) => g.tail(n),
                Err(p) => p.into_inner().tail(n),
            };
            json!({"ok": true, "data": String::from_utf8_lossy(&data)})
        }
        Request::DebugForbiddenSyscall { class } => jail::debug::handle(class, c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_garbage_is_rejected() {
        let r = Request::parse(r#"{"cmd":"shutdown","timeout_ms":5}"#).unwrap();
        assert_eq!(
            r,
            Request::Shutdown {
                timeout_ms: Some(5)
            }
        );
        let r = Request::parse(r#"{"cmd":"console_tail"}"#).unwrap();
        assert_eq!(r, Request::ConsoleTail { bytes: None });
        let r = Request::parse(r#"{"cmd":"debug_forbidden_syscall","class":"vcpu"}"#).unwrap();
        assert_eq!(
            r,
            Request::DebugForbiddenSyscall {
                class: ThreadClass::Vcpu
            }
        );
        for bad in [
            "",
            "{",
            "[]",
            "null",
            r#"{"cmd":"explode"}"#,
            r#"{"cmd":"status","x":1}"#,
            r#"{"cmd":"console_tail","bytes":-1}"#,
            r#"{"nocmd":1}"#,
            r#"{"cmd":"pause","bytes":1}"#,
            r#"{"cmd":"shutdown","bytes":1}"#,
            r#"{"cmd":1}"#,
            r#"{"cmd":"status","class":"vcpu"}"#,
            r#"{"cmd":"console_tail","class":"vcpu"}"#,
            r#"{"cmd":"debug_forbidden_syscall"}"#,
            r#"{"cmd":"debug_forbidden_syscall","class":"main"}"#,
            r#"{"cmd":"debug_forbidden_syscall","class":"nope"}"#,
            r#"{"cmd":"debug_forbidden_syscall","class":1}"#,
            r#"{"cmd":"debug_forbidden_syscall","class":"vcpu","bytes":1}"#,
        ] {
            assert!(Request::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(line in ".{0,200}") {
            let _ = Request::parse(&line);
        }

        #[test]
        fn parse_json_shaped_garbage(cmd in "[a-z_]{0,12}", n in proptest::num::i64::ANY) {
            let _ = Request::parse(&format!(r#"{{"cmd":"{cmd}","bytes":{n}}}"#));
            let _ = Request::parse(&format!(r#"{{"cmd":"{cmd}","timeout_ms":{n}}}"#));
        }
    }
}
