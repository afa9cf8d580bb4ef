//! Boot the PVH test guest on /dev/kvm: banner with memory and vCPU counts, exit codes.

mod vmm_common;

use vmm_common::*;

#[test]
fn direct_form_one_and_two_vcpus_power_off_and_reset_exit_0() {
    for (vcpus, mib, cmd) in [(1, 64, "exit=poweroff"), (2, 128, "exit=reset")] {
        let (st, out, err) = run_direct(&[
            "--kernel",
            GUEST,
            "--vcpus",
            &vcpus.to_string(),
            "--memory-mib",
            &mib.to_string(),
            "--cmdline",
            cmd,
        ]);
        let banner = format!("novakvm-test-guest: mem_mib={mib} vcpus={vcpus}\n");
        assert!(out.contains(&banner), "stdout: {out}\nstderr: {err}");
        assert!(out.contains(&format!("novakvm-test-guest: {cmd}")), "{out}");
        // Both the MP table and the ACPI MADT list every vCPU.
        let found = format!("mp_cpus={vcpus} madt_cpus={vcpus} ");
        assert!(out.contains(&found), "{out}");
        assert_eq!(st.code(), Some(0), "stderr: {err}");
    }
}

#[test]
fn spec_topology_reaches_cpuid_and_mp_table() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), 4, 32, "exit=poweroff");
    s["cpus"]["topology"] = serde_json::json!({"sockets": 2, "cores": 1, "threads": 2});
    let mut vm = Vmm::start(d.path(), &s);
    let st = vm.wait();
    let c = vm.console();
    assert!(
        c.contains("novakvm-test-guest: mem_mib=32 vcpus=4\n"),
        "{c}"
    );
    // 0xb level 1 (core level) counts logical CPUs per package: cores*threads = 2.
    assert!(c.contains("cpuid_0b_logical=2 cpuid_01_logical=2"), "{c}");
    assert!(c.contains("mp_cpus=4 madt_cpus=4 "), "{c}");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn spec_exit_codes() {
    // (cmdline, expected exit code)
    for (cmd, code) in [
        ("exit=poweroff", 0),
        ("exit=reset", 4),
        ("exit=triple", 5),
        ("exit=poweroff garbage=1", 0),
    ] {
        let d = tempfile::tempdir().unwrap();
        let mut vm = Vmm::start(d.path(), &spec(d.path(), 1, 16, cmd));
        let st = vm.wait();
        let c = vm.console();
        assert!(
            c.contains("novakvm-test-guest: mem_mib=16 vcpus=1"),
            "{cmd}: {c}"
        );
        assert_eq!(st.code(), Some(code), "{cmd}: {c} {}", vm.stderr());
        if cmd.contains("garbage") {
            assert!(c.contains("garbage ports="), "{c}");
        }
        if cmd.contains("triple") {
            assert!(vm.stderr().contains("triple fault"));
        }
    }
}

#[test]
fn touch_every_page() {
    let d = tempfile::tempdir().unwrap();
    let mut vm = Vmm::start(d.path(), &spec(d.path(), 2, 64, "exit=poweroff touch=1"));
    assert_eq!(vm.wait().code(), Some(0));
    assert!(vm.console().contains("mem_ok"), "{}", vm.console());
}

#[test]
fn on_reset_restart_reboots_the_guest() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), 1, 16, "exit=reset");
    s["on_reset"] = "restart".into();
    let mut vm = Vmm::start(d.path(), &s);
    let mut ctl = vm.connect();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let boots = ctl.req(serde_json::json!({"cmd": "status"}))["boots"]
            .as_u64()
            .unwrap();
        if boots >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {boots} boots");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(vm.console().matches("mem_mib=16 vcpus=1").count() >= 2);
    assert_eq!(ctl.req(serde_json::json!({"cmd": "power_off"}))["ok"], true);
    assert_eq!(vm.wait().code(), Some(6));
}

#[test]
fn killed_by_signal_is_visible() {
    use std::os::unix::process::ExitStatusExt;
    let d = tempfile::tempdir().unwrap();
    let mut vm = Vmm::start(d.path(), &spec(d.path(), 1, 16, "exit=halt"));
    vm.wait_console("exit=halt");
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(vm.child.id() as i32, libc::SIGTERM) };
    assert_eq!(vm.wait().signal(), Some(libc::SIGTERM));
}

#[test]
fn bad_spec_and_arguments_exit_2_with_a_message() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("{", "invalid spec JSON"),
        (
            r#"{"cpus":{"count":0},"memory":{"size_mib":16},"boot":{"kernel":"/bin/sh"}}"#,
            "cpus.count",
        ),
        (
            r#"{"cpus":{"count":1},"memory":{"size_mib":16},"boot":{"kernel":"/nonexistent"}}"#,
            "boot.kernel",
        ),
        (
            r#"{"cpus":{"count":1},"memory":{"size_mib":3,"backing":"hugepages_2m"},"boot":{"kernel":"/bin/sh"}}"#,
            "memory.size_mib",
        ),
        (
            r#"{"cpus":{"count":1},"memory":{"size_mib":16,"backing":"huge"},"boot":{"kernel":"/bin/sh"}}"#,
            "unknown variant",
        ),
    ];
    for (text, msg) in cases {
        let p = d.path().join("bad.json");
        std::fs::write(&p, text).unwrap();
        let (st, _, err) = run_direct(&["--spec", p.to_str().unwrap()]);
        assert_eq!(st.code(), Some(2), "{text}: {err}");
        assert!(err.contains(msg), "{text}: {err}");
    }
    let (st, _, err) = run_direct(&["--spec", "/nonexistent.json"]);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("cannot read spec"), "{err}");
    let (st, _, err) = run_direct(&["--kernel", GUEST, "--vcpus", "0"]);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("cpus.count"), "{err}");
    // A kernel that is neither ELF nor bzImage fails at load time: setup error 3.
    let junk = d.path().join("junk");
    std::fs::write(&junk, vec![0x5au8; 8192]).unwrap();
    let (st, _, err) = run_direct(&["--kernel", junk.to_str().unwrap()]);
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("cannot load kernel"), "{err}");
}

/// Files the VMM opened, traced with strace (needs the `strace` package).
fn opened_files(args: &[&str]) -> String {
    let d = tempfile::tempdir().unwrap();
    let trace = d.path().join("trace");
    let st = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=openat,open", "-o"])
        .arg(&trace)
        .arg(BIN)
        .args(["--log-filter", "warn", "vmm"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("strace is needed for this test: apt-get install strace");
    assert!(st.code().is_some());
    std::fs::read_to_string(trace).unwrap()
}

#[test]
fn bad_spec_is_rejected_before_any_kvm_call() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"cpus":{"count":3,"topology":{"sockets":1,"cores":2,"threads":1}},"memory":{"size_mib":16},"boot":{"kernel":"/bin/sh"}}"#,
    )
    .unwrap();
    assert!(!opened_files(&["--spec", bad.to_str().unwrap()]).contains("/dev/kvm"));
    // The same tracing does see /dev/kvm for a good spec.
    let good = opened_files(&["--kernel", GUEST, "--cmdline", "exit=poweroff"]);
    assert!(good.contains("/dev/kvm"), "{good}");
}
