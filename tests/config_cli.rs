//! The configuration as an operator meets it: through the real binary.

use std::io::Write;
use std::process::{Command, Output};

fn novakvm(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_novakvm"));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run novakvm")
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path.display().to_string()
}

#[test]
fn bad_option_value_names_file_section_option_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let toml = file(
        &dir,
        "n.toml",
        "[DEFAULT]\ncpu_allocation_ratio = \"lots\"\n",
    );
    let out = novakvm(&["--config", &toml, "compute"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&toml), "{err}");
    assert!(err.contains("[DEFAULT] cpu_allocation_ratio"), "{err}");
}

#[test]
fn negative_ratio_in_nova_conf_is_an_error_naming_the_ini_file() {
    let dir = tempfile::tempdir().unwrap();
    let ini = file(
        &dir,
        "nova-cpu.conf",
        "[DEFAULT]\nram_allocation_ratio = -1.5\n",
    );
    let out = novakvm(&["--nova-conf", &ini, "compute"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&ini) && err.contains("ram_allocation_ratio") && err.contains("positive"),
        "{err}"
    );
}

#[test]
fn option_known_but_not_honoured_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ini = file(
        &dir,
        "nova.conf",
        "[DEFAULT]\ncompute_driver = vmwareapi.VMwareVCDriver\n",
    );
    let out = novakvm(&["--nova-conf", &ini, "compute"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("compute_driver") && err.contains("cannot be honoured"),
        "{err}"
    );
}

#[test]
fn missing_config_file_is_an_error() {
    let out = novakvm(&["--config", "/nonexistent/novakvm.toml", "compute"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/novakvm.toml"));
}

#[test]
fn ini_syntax_error_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let ini = file(
        &dir,
        "broken.conf",
        "[DEFAULT]\nhost = a\nthis line has no assignment\n",
    );
    let out = novakvm(&["--nova-conf", &ini, "compute"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.conf:3"), "{err}");
}

#[test]
fn bad_env_value_is_named() {
    let out = novakvm(
        &["compute"],
        &[("NOVAKVM_DEFAULT__REPORT_INTERVAL", "soon")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("report_interval"), "{err}");
}

#[test]
fn bad_log_filter_is_rejected() {
    let out = novakvm(&["--log-filter", "novakvm=shouty", "compute"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad log filter"));
}

#[cfg(unix)]
#[test]
fn compute_stops_cleanly_on_sigterm_and_sigint() {
    use std::io::{BufRead, BufReader};
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_novakvm"))
            .args(["--log-format", "json", "--log-filter", "info", "compute"])
            .env("NOVAKVM_DEFAULT__HOST", "sigtest")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Wait until the service says it started, so the handlers are in place.
        let first = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&first).expect("json log line");
        assert_eq!(v["host"], "sigtest", "{first}");
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "signal {sig}");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    }
}

#[test]
fn environment_beats_toml_beats_nova_conf() {
    let dir = tempfile::tempdir().unwrap();
    let ini = file(
        &dir,
        "nova-cpu.conf",
        "[DEFAULT]\nhost = ini-host\nreserved_host_cpus = 1\nmy_ip = 192.0.2.1\n[libvirt]\nvirt_type = kvm\n",
    );
    let toml = file(
        &dir,
        "n.toml",
        "[DEFAULT]\nhost = \"toml-host\"\nreport_interval = 5\n",
    );
    let out = novakvm(
        &["--config", &toml, "--nova-conf", &ini, "show-config"],
        &[("NOVAKVM_DEFAULT__REPORT_INTERVAL", "7")],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["default"]["host"], "toml-host");
    assert_eq!(v["default"]["reserved_host_cpus"], 1);
    assert_eq!(v["default"]["report_interval"], 7);
    // Unknown options (my_ip, [libvirt]) are ignored, not carried along.
    assert!(v["default"].get("my_ip").is_none());
    assert!(v.get("libvirt").is_none());
}

#[test]
fn unknown_options_get_one_debug_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let ini = file(
        &dir,
        "nova-cpu.conf",
        "[DEFAULT]\nmy_ip = 192.0.2.1\n[libvirt]\nvirt_type = kvm\n",
    );
    let out = novakvm(
        &["--log-filter", "debug", "--nova-conf", &ini, "show-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("option not used by novakvm"))
        .collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines.iter().any(|l| l.contains("my_ip")) && lines.iter().any(|l| l.contains("virt_type"))
    );
}
