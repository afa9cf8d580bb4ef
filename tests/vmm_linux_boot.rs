//! Boots a stock Debian Linux kernel (linux-image-cloud-amd64) with a busybox
//! initramfs under `novakvm vmm` and checks that Linux ran its /init (marker),
//! saw both vCPUs (`/proc/cpuinfo` inside the guest) and that the VMM exited 0
//! after the guest's `reboot -f`.
//!
//! Stock kernels do not boot under kvm_pvm (nested paravirtual KVM: its
//! emulator fails on cmpxchg16b, xrstor, int3, clac, popcnt), so the test only
//! runs where kvm_intel or kvm_amd is loaded; elsewhere it prints a loud
//! `SKIPPED:` line to stderr and returns.
//!
//! The kernel and initramfs come from `tests/linux-guest/prepare.sh`
//! (apt-get download + busybox-static; cached in target/linux-guest).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARKER: &str = "NOVAKVM-LINUX-GUEST-OK";
const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off nomodule \
                       i8042.noaux i8042.nomux i8042.dumbkbd quiet";
const TIMEOUT: Duration = Duration::from_secs(120);

/// Why hardware KVM is unusable for a stock kernel here, or None when it is.
fn skip_reason() -> Option<String> {
    let hw = ["/sys/module/kvm_intel", "/sys/module/kvm_amd"];
    if hw.iter().any(|m| Path::new(m).exists()) {
        if Path::new("/dev/kvm").exists() {
            return None;
        }
        return Some("kvm_intel/kvm_amd loaded but /dev/kvm is missing".into());
    }
    if Path::new("/sys/module/kvm_pvm").exists() {
        return Some(
            "/dev/kvm is kvm_pvm (nested paravirtual KVM): stock Linux kernels do not \
             boot under it (its emulator fails on cmpxchg16b/xrstor/int3/clac/popcnt); \
             needs kvm_intel or kvm_amd"
                .into(),
        );
    }
    Some("neither kvm_intel nor kvm_amd is loaded (no hardware KVM)".into())
}

/// Runs tests/linux-guest/prepare.sh and returns (vmlinuz, initramfs).
fn prepare_guest() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/linux-guest/prepare.sh");
    let out = Command::new("sh")
        .arg(&script)
        .arg(root.join("target/linux-guest"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines().map(PathBuf::from);
    match (lines.next(), lines.next()) {
        (Some(k), Some(i)) if k.exists() && i.exists() => (k, i),
        _ => panic!("prepare.sh printed no usable kernel/initramfs paths: {stdout}"),
    }
}

#[test]
fn stock_linux_boots_and_sees_two_cpus() {
    if let Some(reason) = skip_reason() {
        eprintln!("\n*** SKIPPED: vmm_linux_boot: {reason} ***\n");
        return;
    }
    let (kernel, initrd) = prepare_guest();
    let mut child = Command::new(env!("CARGO_BIN_EXE_novakvm"))
        .arg("vmm")
        .arg("--kernel")
        .arg(&kernel)
        .arg("--initrd")
        .arg(&initrd)
        .args(["--cmdline", CMDLINE, "--vcpus", "2", "--memory-mib", "256"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn novakvm vmm");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait novakvm") {
            break st;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "novakvm vmm did not exit within {TIMEOUT:?}; serial so far:\n{}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let serial = reader.join().expect("serial reader");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let tail: String = serial
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let line = serial
        .lines()
        .find(|l| l.contains(MARKER))
        .unwrap_or_else(|| panic!("no {MARKER} on serial; last lines:\n{tail}\nstderr:\n{stderr}"));
    assert!(
        line.contains(" cpus=2 "),
        "Linux did not see 2 CPUs: {line:?}\nserial tail:\n{tail}"
    );
    assert!(
        status.success(),
        "novakvm vmm exited with {status} after the guest rebooted; stderr:\n{stderr}"
    );
}
