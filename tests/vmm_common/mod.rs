//! Shared helpers of the VMM integration tests: run the real `novakvm vmm` on /dev/kvm with
//! the test guest, watch its serial log, talk to its control socket.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The novakvm binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_novakvm");
/// The PVH test guest.
pub const GUEST: &str = env!("NOVAKVM_TEST_GUEST");
/// Generous timeout: the test machine is small and shared.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A spec for the test guest with the given vCPUs, MiB and cmdline.
pub fn spec(dir: &Path, vcpus: u32, mib: u64, cmdline: &str) -> Value {
    json!({
        "name": "test-vm",
        "cpus": {"count": vcpus},
        "memory": {"size_mib": mib},
        "boot": {"kernel": GUEST, "cmdline": cmdline},
        "serial": {"log_path": dir.join("console.log"), "log_max_bytes": 65536},
        "control_socket": dir.join("control.sock"),
    })
}

/// A running VMM.
pub struct Vmm {
    pub child: Child,
    pub dir: PathBuf,
}

impl Vmm {
    /// Start `novakvm vmm --spec` with `spec` written into `dir`.
    pub fn start(dir: &Path, spec: &Value) -> Vmm {
        let path = dir.join("spec.json");
        std::fs::write(&path, spec.to_string()).unwrap();
        let child = Command::new(BIN)
            .args(["--log-filter", "warn", "vmm", "--spec"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Vmm {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Serial log contents.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log"))
            .unwrap_or_default()
            .replace('\r', "")
    }

    /// Wait until the serial log contains `needle`.
    pub fn wait_console(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let c = self.console();
            if c.contains(needle) {
                return c;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("VMM exited ({st}) before {needle:?}; console: {c}");
            }
            assert!(Instant::now() < deadline, "no {needle:?} in console: {c}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connect to the control socket (waiting for it to appear).
    pub fn connect(&self) -> Control {
        let p = self.dir.join("control.sock");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(s) = UnixStream::connect(&p) {
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                return Control {
                    reader: BufReader::new(s.try_clone().unwrap()),
                    stream: s,
                };
            }
            assert!(Instant::now() < deadline, "no control socket");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the process to end.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("VMM did not exit; console: {}", self.console());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Standard error so far (only after exit).
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A control socket connection.
pub struct Control {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Control {
    /// Send one raw line, read one JSON reply.
    pub fn raw(&mut self, line: &str) -> Value {
        self.stream.write_all(line.as_bytes()).unwrap();
        self.stream.write_all(b"\n").unwrap();
        let mut reply = String::new();
        self.reader.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?}: {e}"))
    }

    /// Send a request object.
    pub fn req(&mut self, v: Value) -> Value {
        self.raw(&v.to_string())
    }
}

/// Run the direct form to completion; returns (status, stdout, stderr).
pub fn run_direct(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(BIN)
        .args(["--log-filter", "warn", "vmm"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
