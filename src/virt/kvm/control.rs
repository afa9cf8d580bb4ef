//! The agent's end of a VMM's control socket: one JSON request per line,
//! one JSON reply per line (the protocol of `vmm::api`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

/// Errors talking to a VMM.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No VMM listens on the socket.
    #[error("the VMM does not answer on {path}: {source}")]
    NotRunning {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The exchange failed or timed out.
    #[error("control socket {path}: {source}")]
    Io {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The reply is not the protocol's.
    #[error("control socket {path}: bad reply {reply:?}")]
    Protocol {
        /// Socket path.
        path: String,
        /// What came back.
        reply: String,
    },
    /// The VMM answered with an error.
    #[error("the VMM refused {cmd}: {error}")]
    Refused {
        /// The command.
        cmd: String,
        /// The VMM's message.
        error: String,
    },
}

/// Sends one request and returns the reply object (`ok` was true).
pub fn request(path: &Path, req: &Value, timeout: Duration) -> Result<Value, ControlError> {
    let p = path.display().to_string();
    let io = |source| ControlError::Io {
        path: p.clone(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(|source| ControlError::NotRunning {
        path: p.clone(),
        source,
    })?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    let mut line = req.to_string();
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).map_err(io)?;
    let v: Value = serde_json::from_str(reply.trim()).map_err(|_| ControlError::Protocol {
        path: p.clone(),
        reply: reply.chars().take(200).collect(),
    })?;
    match v.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(v),
        Some(false) => Err(ControlError::Refused {
            cmd: req
                .get("cmd")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            error: v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_string(),
        }),
        None => Err(ControlError::Protocol {
            path: p,
            reply: reply.chars().take(200).collect(),
        }),
    }
}

/// A command without arguments.
pub fn simple(path: &Path, cmd: &str, timeout: Duration) -> Result<Value, ControlError> {
    request(path, &json!({ "cmd": cmd }), timeout)
}

/// `shutdown`: the guest has `grace` to power off, then it is forced off.
pub fn shutdown(path: &Path, grace: Duration) -> Result<Value, ControlError> {
    let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    request(
        path,
        &json!({"cmd": "shutdown", "timeout_ms": ms}),
        grace + Duration::from_secs(10),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn serve_once(reply: &'static str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let l = UnixListener::bind(&p).unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&c).read_line(&mut line).unwrap();
            c.write_all(reply.as_bytes()).unwrap();
        });
        (d, p)
    }

    #[test]
    fn replies_are_checked() {
        let (_d, p) = serve_once("{\"ok\":true,\"state\":\"running\"}\n");
        let v = simple(&p, "status", Duration::from_secs(2)).unwrap();
        assert_eq!(v["state"], "running");
        let (_d, p) = serve_once("{\"ok\":false,\"error\":\"no\"}\n");
        assert!(matches!(
            simple(&p, "pause", Duration::from_secs(2)),
            Err(ControlError::Refused { .. })
        ));
        let (_d, p) = serve_once("garbage\n");
        assert!(matches!(
            simple(&p, "status", Duration::from_secs(2)),
            Err(ControlError::Protocol { .. })
        ));
        assert!(matches!(
            simple(
                Path::new("/nonexistent/s"),
                "status",
                Duration::from_secs(1)
            ),
            Err(ControlError::NotRunning { .. })
        ));
    }
}
