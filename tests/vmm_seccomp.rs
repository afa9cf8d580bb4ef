//! Confinement of the real `novakvm vmm` on /dev/kvm: a forbidden syscall in a vCPU or
//! control thread kills the process with SIGSYS (seccomp: kill, the default) and does not
//! with `log` or `off`; every thread runs filtered, with no_new_privs and without
//! capabilities; descriptors leaked by the parent are closed; no core dumps.
//! (Normal operation with filters on is covered by the other vmm_* tests, which run with
//! the default `seccomp: kill`.)

mod vmm_common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use vmm_common::*;

/// Start the VMM with the debug hook enabled, through `sh` so that it inherits a leaked
/// descriptor 7 (opened without close-on-exec).
fn start(dir: &Path, spec: &Value, hooks: bool) -> Vmm {
    let path = dir.join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"exec 7<"$0"; exec "$1" --log-filter warn vmm --spec "$2""#)
        .arg(GUEST)
        .arg(BIN)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if hooks {
        cmd.env("NOVAKVM_VMM_DEBUG_HOOKS", "1");
    } else {
        cmd.env_remove("NOVAKVM_VMM_DEBUG_HOOKS");
    }
    Vmm {
        child: cmd.spawn().unwrap(),
        dir: dir.to_path_buf(),
    }
}

fn ticker_spec(dir: &Path, seccomp: &str) -> Value {
    let mut s = spec(dir, 2, 16, "ticker=1");
    s["seccomp"] = seccomp.into();
    s
}

/// Send one request on a new connection without reading the reply.
fn send_only(vm: &Vmm, req: &Value) -> std::os::unix::net::UnixStream {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(vm.dir.join("control.sock")).unwrap();
    s.write_all(format!("{req}\n").as_bytes()).unwrap();
    s
}

fn forbidden(class: &str) -> Value {
    json!({"cmd": "debug_forbidden_syscall", "class": class})
}

#[test]
fn forbidden_syscall_in_a_vcpu_thread_kills_the_vmm_with_sigsys() {
    let d = tempfile::tempdir().unwrap();
    let mut vm = start(d.path(), &ticker_spec(d.path(), "kill"), true);
    vm.wait_console("tick 1\n");
    let mut ctl = vm.connect();
    assert_eq!(ctl.req(json!({"cmd": "status"}))["state"], "running");
    // The reply may or may not make it out before the process dies: do not wait for it.
    send_only(&vm, &forbidden("vcpu"));
    let st = vm.wait();
    assert_eq!(st.signal(), Some(libc::SIGSYS), "{st}; {}", vm.stderr());
}

#[test]
fn forbidden_syscall_in_a_control_thread_kills_the_vmm_with_sigsys() {
    let d = tempfile::tempdir().unwrap();
    // Default mode (no "seccomp" key) is kill.
    let mut vm = start(d.path(), &spec(d.path(), 1, 16, "ticker=1"), true);
    vm.wait_console("tick 1\n");
    let mut ctl = vm.connect();
    assert_eq!(ctl.req(json!({"cmd": "status"}))["state"], "running");
    send_only(&vm, &forbidden("control"));
    let st = vm.wait();
    assert_eq!(st.signal(), Some(libc::SIGSYS), "{st}; {}", vm.stderr());
    assert_eq!(st.code(), None);
}

#[test]
fn with_seccomp_off_or_log_the_same_syscalls_succeed_and_the_vm_runs_on() {
    for mode in ["off", "log"] {
        let d = tempfile::tempdir().unwrap();
        let mut vm = start(d.path(), &ticker_spec(d.path(), mode), true);
        vm.wait_console("tick 1\n");
        let mut ctl = vm.connect();
        let r = ctl.req(forbidden("control"));
        assert_eq!(r["ok"], true, "{mode}: {r}");
        assert_eq!(r["result"], "allowed", "{mode}: {r}");
        let r = ctl.req(forbidden("vcpu"));
        assert_eq!(r["ok"], true, "{mode}: {r}");
        // The guest keeps running.
        let st = ctl.req(json!({"cmd": "status"}));
        assert_eq!(st["state"], "running", "{mode}: {st}");
        let n = vm.console().matches("tick ").count();
        vm.wait_console(&format!("tick {}\n", n + 2));
        assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
        assert_eq!(vm.wait().code(), Some(6), "{mode}");
        // It was a vCPU thread that made the call, and it succeeded.
        let err = vm.stderr();
        assert!(
            err.lines().any(|l| l.contains("forbidden syscall done")
                && l.contains("vcpu")
                && l.contains("Ok")),
            "{mode}: {err}"
        );
    }
}

#[test]
fn debug_hook_is_refused_without_its_environment_variable() {
    let d = tempfile::tempdir().unwrap();
    let mut vm = start(d.path(), &spec(d.path(), 1, 16, "ticker=1"), false);
    vm.wait_console("tick 1\n");
    let mut ctl = vm.connect();
    for class in ["vcpu", "control"] {
        let r = ctl.req(forbidden(class));
        assert_eq!(r["ok"], false, "{r}");
        assert!(r["error"]
            .as_str()
            .unwrap()
            .contains("NOVAKVM_VMM_DEBUG_HOOKS"));
    }
    for bad in [
        json!({"cmd": "debug_forbidden_syscall"}),
        json!({"cmd": "debug_forbidden_syscall", "class": "main"}),
        json!({"cmd": "debug_forbidden_syscall", "class": ["vcpu"]}),
        json!({"cmd": "status", "class": "vcpu"}),
    ] {
        assert_eq!(ctl.req(bad.clone())["ok"], false, "{bad}");
    }
    assert_eq!(ctl.req(json!({"cmd": "status"}))["state"], "running");
    assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
    assert_eq!(vm.wait().code(), Some(6));
}

/// `Key:\tvalue` lines of a /proc status file.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(":\t"))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
}

#[test]
fn every_thread_is_filtered_unprivileged_and_leaked_fds_are_closed() {
    let d = tempfile::tempdir().unwrap();
    let mut vm = start(d.path(), &spec(d.path(), 2, 16, "ticker=1"), false);
    vm.wait_console("tick 1\n");
    let mut ctl = vm.connect();
    assert_eq!(ctl.req(json!({"cmd": "status"}))["ok"], true);
    let pid = vm.child.id();

    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let name = status_field(&status, "Name").to_string();
        if name.starts_with("kvm-") {
            // KVM's kernel worker attached to the VM, not VMM code.
            continue;
        }
        assert_eq!(status_field(&status, "Seccomp"), "2", "{name}");
        assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{name}");
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(
                status_field(&status, cap),
                "0000000000000000",
                "{name} {cap}"
            );
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        ["api", "api-conn", "novakvm", "vcpu0", "vcpu1"],
        "threads"
    );

    // Descriptors: the VMM's own, nothing inherited (fd 7 was leaked by the parent),
    // no /dev/kvm (closed once the VM exists), no kernel image; stdin is /dev/null
    // (the test gave it a pipe).
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    assert_eq!(stdin, Path::new("/dev/null"));
    let mut kinds = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let fd = fd.unwrap();
        let n: u32 = fd.file_name().to_str().unwrap().parse().unwrap();
        let target = std::fs::read_link(fd.path()).unwrap();
        let target = target.to_string_lossy().into_owned();
        assert!(!target.contains("novakvm-test-guest"), "fd {n}: {target}");
        assert_ne!(target, "/dev/kvm", "fd {n}");
        if n > 2 {
            let kind = if target.starts_with("socket:") {
                "socket".to_string()
            } else if let Some(v) = target.strip_prefix("anon_inode:kvm-vcpu:") {
                format!("vcpu{v}")
            } else if target.ends_with("console.log") {
                "console.log".to_string()
            } else {
                target.clone()
            };
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "anon_inode:[eventfd]",
            "anon_inode:kvm-vm",
            "console.log",
            "socket", // listener
            "socket", // our connection
            "socket", // its try_clone
            "vcpu0",
            "vcpu1",
        ],
        "descriptors"
    );

    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );

    assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
    assert_eq!(vm.wait().code(), Some(6));
}

#[test]
fn seccomp_option_in_spec_and_direct_form() {
    let d = tempfile::tempdir().unwrap();
    // Direct form: every mode runs the guest to power-off.
    for mode in ["kill", "log", "off"] {
        let (st, out, err) = run_direct(&[
            "--kernel",
            GUEST,
            "--vcpus",
            "2",
            "--memory-mib",
            "16",
            "--cmdline",
            "exit=poweroff",
            "--seccomp",
            mode,
        ]);
        assert_eq!(st.code(), Some(0), "{mode}: {err}");
        assert!(out.contains("mem_mib=16 vcpus=2"), "{mode}: {out}");
    }
    // Garbage values are bad arguments (exit 2), before anything runs.
    let (st, _, err) = run_direct(&["--kernel", GUEST, "--seccomp", "maybe"]);
    assert_eq!(st.code(), Some(2), "{err}");
    let (st, _, err) = run_direct(&["--kernel", GUEST, "--seccomp"]);
    assert_eq!(st.code(), Some(2), "{err}");
    for bad in [json!("maybe"), json!(1), json!(null), json!({"kill": true})] {
        let mut s = spec(d.path(), 1, 16, "exit=poweroff");
        s["seccomp"] = bad.clone();
        let p = d.path().join("bad.json");
        std::fs::write(&p, s.to_string()).unwrap();
        let st = Command::new(BIN)
            .args(["vmm", "--spec"])
            .arg(&p)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(2), "{bad}");
    }
}

#[test]
fn schema_knows_the_seccomp_field() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/api-schemas/vm-spec.schema.json"
    ))
    .unwrap();
    let schema = jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap();
    let d = tempfile::tempdir().unwrap();
    for (val, ok) in [
        (json!("kill"), true),
        (json!("log"), true),
        (json!("off"), true),
        (json!("maybe"), false),
        (json!(0), false),
    ] {
        let mut s = spec(d.path(), 1, 16, "");
        s["seccomp"] = val.clone();
        assert_eq!(schema.is_valid(&s), ok, "schema {val}");
        let parsed = serde_json::from_value::<novakvm::vmm::spec::VmSpec>(s);
        assert_eq!(parsed.is_ok(), ok, "VmSpec {val}");
    }
}
