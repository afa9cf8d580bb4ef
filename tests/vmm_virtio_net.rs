//! virtio-net end to end: a persistent tap made with `ip tuntap`, a Python AF_PACKET peer
//! bound to it (tests/vmm_virtio/tap_peer.py), the real binary on /dev/kvm and the test
//! guest's polled driver: the guest's frame reaches the host, the host's frame reaches
//! the guest. Needs root (CAP_NET_ADMIN), `ip` (iproute2) and python3.

mod vmm_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;
use vmm_common::*;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vmm_virtio/tap_peer.py");

/// A persistent tap, deleted on drop.
struct TapIf(String);

impl TapIf {
    fn new(name: &str) -> TapIf {
        let _ = Command::new("ip")
            .args(["link", "del", name])
            .stderr(Stdio::null())
            .status();
        let ok = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        ok(&["tuntap", "add", "dev", name, "mode", "tap"]);
        let t = TapIf(name.to_string());
        ok(&["link", "set", name, "up"]);
        // Keep the kernel's IPv6 chatter off the link (the guest ignores it anyway).
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        t
    }
}

impl Drop for TapIf {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
fn frames_both_ways_through_a_tap() {
    let tap = TapIf::new("nkvnet0");
    let mut peer = Command::new("python3")
        .args([PEER, &tap.0, "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(peer.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");

    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), 1, 32, "net=1 exit=poweroff");
    s["nics"] = json!([{"tap": tap.0, "mac": "52:54:00:12:34:56"}]);
    let mut vm = Vmm::start(d.path(), &s);
    let st = vm.wait();
    let c = vm.console();
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = peer.wait();
    assert_eq!(
        line, "got len=60 payload=novakvm-guest-ping src=52:54:00:12:34:56\n",
        "{c}"
    );
    assert!(
        c.contains("novakvm-test-guest: net0 mac=52:54:00:12:34:56\n"),
        "{c}"
    );
    assert!(c.contains("novakvm-test-guest: net0 sent\n"), "{c}");
    assert!(
        c.contains("novakvm-test-guest: net0 received len=60 payload=novakvm-host-pong\n"),
        "{c}"
    );
    assert_eq!(st.code(), Some(0), "{c}");
}

#[test]
fn vmm_creates_a_missing_tap_and_it_goes_away() {
    let name = "nkvnet1";
    let _ = Command::new("ip")
        .args(["link", "del", name])
        .stderr(Stdio::null())
        .status();
    let d = tempfile::tempdir().unwrap();
    // Two NICs: the second on a tap the VMM creates; the guest talks to the first only.
    let tap = TapIf::new("nkvnet2");
    let mut s = spec(d.path(), 1, 32, "exit=halt");
    s["nics"] = json!([
        {"tap": tap.0, "mac": "52:54:00:00:00:01"},
        {"tap": name, "mac": "52:54:00:00:00:02"},
    ]);
    let mut vm = Vmm::start(d.path(), &s);
    vm.wait_console("exit=halt");
    let show = Command::new("ip")
        .args(["-o", "link", "show", name])
        .output()
        .unwrap();
    assert!(show.status.success(), "tap {name} not created");
    let mut ctl = vm.connect();
    assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
    let st = vm.wait();
    assert_eq!(st.code(), Some(6));
    let show = Command::new("ip")
        .args(["link", "show", name])
        .output()
        .unwrap();
    assert!(!show.status.success(), "tap {name} outlived the VMM");
}

#[test]
fn bad_nic_specs_are_refused_before_boot() {
    let d = tempfile::tempdir().unwrap();
    for (nics, needle) in [
        (json!([{"tap": "", "mac": "52:54:00:00:00:01"}]), "nics.tap"),
        (
            json!([{"tap": "a-very-long-interface-name", "mac": "52:54:00:00:00:01"}]),
            "nics.tap",
        ),
        (json!([{"tap": "t0", "mac": "52:54:00:00:00"}]), "nics.mac"),
        (
            json!([{"tap": "t0", "mac": "01:00:5e:00:00:01"}]),
            "unicast",
        ),
        (
            json!([{"tap": "t0", "mac": "52:54:00:00:00:01"}, {"tap": "t0", "mac": "52:54:00:00:00:02"}]),
            "twice",
        ),
        (
            json!([{"tap": "t0", "mac": "52:54:00:00:00:01"}, {"tap": "t1", "mac": "52:54:00:00:00:01"}]),
            "twice",
        ),
        (json!([{"tap": "t0"}]), "missing field"),
    ] {
        let mut s = spec(d.path(), 1, 16, "exit=poweroff");
        s["nics"] = nics;
        let mut vm = Vmm::start(d.path(), &s);
        let st = vm.wait();
        let err = vm.stderr();
        assert_eq!(st.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn restart_reopens_disks_and_taps() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("r.img");
    std::fs::write(&img, vec![0u8; 64 * 512]).unwrap();
    let mut s = spec(d.path(), 1, 16, "blk=1 exit=reset");
    s["on_reset"] = json!("restart");
    s["disks"] = json!([{"path": img}]);
    s["nics"] = json!([{"tap": "nkvnet3", "mac": "52:54:00:00:00:03"}]);
    let mut vm = Vmm::start(d.path(), &s);
    let deadline = std::time::Instant::now() + TIMEOUT;
    // Every boot sees the disk again (the tap is reopened by the same process).
    while vm.console().matches("blk0 wrote sector1").count() < 3 {
        assert!(std::time::Instant::now() < deadline, "{}", vm.console());
        if let Ok(Some(st)) = vm.child.try_wait() {
            panic!("VMM exited ({st}): {}", vm.console());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut ctl = vm.connect();
    assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
    assert_eq!(vm.wait().code(), Some(6));
}
