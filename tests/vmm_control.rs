//! Control socket against a running VM: status, pause/resume, console_tail, malformed
//! requests, shutdown (forced after timeout), power_off.

mod vmm_common;

use std::time::Duration;

use serde_json::json;
use vmm_common::*;

fn ticks(console: &str) -> usize {
    console.lines().filter(|l| l.starts_with("tick ")).count()
}

#[test]
fn pause_resume_console_tail_and_garbage_requests() {
    let d = tempfile::tempdir().unwrap();
    let mut vm = Vmm::start(d.path(), &spec(d.path(), 2, 32, "ticker=1"));
    vm.wait_console("tick 1\n");
    let mut ctl = vm.connect();

    let st = ctl.req(json!({"cmd": "status"}));
    assert_eq!(st["ok"], true);
    assert_eq!(st["state"], "running");
    assert_eq!(st["vcpus"], 2);
    assert_eq!(st["memory_mib"], 32);
    assert_eq!(st["pid"], vm.child.id());

    // Malformed requests get an error and the connection keeps working.
    for bad in [
        "",
        "{",
        "not json",
        "[1,2]",
        r#"{"cmd":"reboot_the_universe"}"#,
        r#"{"cmd":"status","extra":true}"#,
        r#"{"cmd":"console_tail","bytes":"many"}"#,
        "\u{0}\u{1}\u{2}",
    ] {
        let r = ctl.raw(bad);
        assert_eq!(r["ok"], false, "{bad:?} -> {r}");
        assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let long = "x".repeat(100_000);
    assert_eq!(ctl.raw(&long)["ok"], false);
    assert_eq!(ctl.req(json!({"cmd": "status"}))["ok"], true);
    assert_eq!(ctl.req(json!({"cmd": "resume"}))["ok"], false); // not paused

    // Pause: output stops.
    let r = ctl.req(json!({"cmd": "pause"}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(ctl.req(json!({"cmd": "status"}))["state"], "paused");
    assert_eq!(ctl.req(json!({"cmd": "pause"}))["ok"], false);
    let before = ticks(&vm.console());
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(ticks(&vm.console()), before, "guest ran while paused");

    // Resume: output goes on.
    assert_eq!(ctl.req(json!({"cmd": "resume"}))["ok"], true);
    let next = format!("tick {}\n", before + 1);
    vm.wait_console(&next);

    // console_tail returns the newest bytes.
    let t = ctl.req(json!({"cmd": "console_tail", "bytes": 4096}));
    assert_eq!(t["ok"], true);
    let data = t["data"].as_str().unwrap();
    assert!(
        data.contains("novakvm-test-guest: mem_mib=32 vcpus=2"),
        "{data}"
    );
    assert!(data.contains("tick "));
    let t = ctl.req(json!({"cmd": "console_tail", "bytes": 5}));
    assert_eq!(t["data"].as_str().unwrap().len(), 5);

    // A second client works at the same time.
    let mut ctl2 = vm.connect();
    assert_eq!(ctl2.req(json!({"cmd": "status"}))["state"], "running");
    // The socket is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("control.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Connection flood: extra connections are refused with an error, the first ones work.
    let mut extra = Vec::new();
    for _ in 0..20 {
        extra.push(std::os::unix::net::UnixStream::connect(d.path().join("control.sock")).unwrap());
    }
    let mut refused = 0;
    for s in &mut extra {
        use std::io::BufRead;
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut line = String::new();
        let mut r = std::io::BufReader::new(&*s);
        if r.read_line(&mut line).is_ok() && line.contains("too many") {
            refused += 1;
        }
    }
    assert!(refused >= 4, "{refused}");
    drop(extra);
    assert_eq!(ctl.req(json!({"cmd": "status"}))["state"], "running");

    assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
    assert_eq!(vm.wait().code(), Some(6));
    assert!(!d.path().join("control.sock").exists());
    // The serial log respects its bound.
    assert!(
        std::fs::metadata(d.path().join("console.log"))
            .unwrap()
            .len()
            <= 65536
    );
}

#[test]
fn shutdown_forces_off_after_timeout_when_guest_ignores_it() {
    let d = tempfile::tempdir().unwrap();
    let mut vm = Vmm::start(d.path(), &spec(d.path(), 1, 16, "exit=halt"));
    vm.wait_console("exit=halt");
    let mut ctl = vm.connect();
    let t0 = std::time::Instant::now();
    let r = ctl.req(json!({"cmd": "shutdown", "timeout_ms": 300}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"], "forced");
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(vm.wait().code(), Some(6));
}

#[test]
fn shutdown_of_a_paused_vm_lets_the_guest_run_and_power_off() {
    // The guest powers off by itself after a while; shutdown must resume it and report
    // the guest's own power-off (exit 0), not a forced one.
    let d = tempfile::tempdir().unwrap();
    let mut vm = Vmm::start(d.path(), &spec(d.path(), 1, 64, "touch=1 exit=poweroff"));
    let mut ctl = vm.connect();
    // Pause as early as possible; the guest may already be done on a fast host.
    let paused = ctl.req(json!({"cmd": "pause"}))["ok"] == true;
    let r = ctl.req(json!({"cmd": "shutdown", "timeout_ms": 30000}));
    if paused {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["result"], "guest_stopped", "{r}");
    }
    assert_eq!(vm.wait().code(), Some(0));
    assert!(vm.console().contains("mem_ok"));
}

#[test]
fn many_pause_resume_cycles_then_power_off_while_paused() {
    let d = tempfile::tempdir().unwrap();
    let mut vm = Vmm::start(d.path(), &spec(d.path(), 2, 16, "ticker=1"));
    vm.wait_console("tick 0\n");
    let mut ctl = vm.connect();
    for i in 0..30 {
        let r = ctl.req(json!({"cmd": "pause"}));
        assert_eq!(r["ok"], true, "cycle {i}: {r}");
        let r = ctl.req(json!({"cmd": "resume"}));
        assert_eq!(r["ok"], true, "cycle {i}: {r}");
    }
    let n = ticks(&vm.console());
    vm.wait_console(&format!("tick {n}\n"));
    assert_eq!(ctl.req(json!({"cmd": "pause"}))["ok"], true);
    assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
    assert_eq!(vm.wait().code(), Some(6));
}
