//! `novakvm compute` and `novakvm host placement` fed bad input: clear
//! errors and exit codes, never a panic. Uses the real RabbitMQ on
//! 127.0.0.1:5672 where a broker is needed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_novakvm");

fn run(args: &[&str], conf: &Path) -> Output {
    Command::new(BIN)
        .arg("--nova-conf")
        .arg(conf)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run novakvm")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_conf(dir: &Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("nova-cpu.conf");
    std::fs::write(
        &p,
        format!(
            "[DEFAULT]\nhost = cli-test\nstate_path = {}\n{extra}\n\
             [placement]\nauth_type = none\nendpoint = http://127.0.0.1:9/\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn host_placement_without_compute_id_says_so() {
    let d = tempfile::tempdir().unwrap();
    let conf = write_conf(d.path(), "");
    let o = run(&["host", "placement"], &conf);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("has not registered this node yet"),
        "{}",
        text(&o)
    );
}

#[test]
fn host_placement_with_garbage_compute_id_says_so() {
    let d = tempfile::tempdir().unwrap();
    let conf = write_conf(d.path(), "");
    std::fs::create_dir_all(d.path().join("state")).unwrap();
    std::fs::write(d.path().join("state/compute_id"), b"\x00\xffjunk").unwrap();
    let o = run(&["host", "placement", "--check"], &conf);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("Unable to parse UUID"), "{}", text(&o));
}

#[test]
fn host_placement_with_placement_down_fails_clearly() {
    let d = tempfile::tempdir().unwrap();
    let conf = write_conf(d.path(), "");
    std::fs::create_dir_all(d.path().join("state")).unwrap();
    std::fs::write(
        d.path().join("state/compute_id"),
        "5d7f3c4e-8f0a-4c57-9a43-0c3c1c7b2a11\n",
    )
    .unwrap();
    let o = run(&["host", "placement"], &conf);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("novakvm host placement: "),
        "{}",
        text(&o)
    );
}

#[test]
fn compute_with_a_bad_transport_url_exits_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let conf = write_conf(d.path(), "transport_url = kafka://nowhere:1/");
    let o = run(&["compute"], &conf);
    // A configuration error: exit 2, naming the option.
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("transport_url"), "{}", text(&o));
}

#[test]
fn compute_waits_for_the_conductor_and_stops_on_sigterm() {
    // Real RabbitMQ, a vhost where no conductor listens: the agent keeps
    // pinging (as nova's wait_until_ready) and stops cleanly on SIGTERM.
    let d = tempfile::tempdir().unwrap();
    let conf = write_conf(
        d.path(),
        "transport_url = rabbit://guest:guest@127.0.0.1:5672/\nrpc_response_timeout = 1\n\
         control_exchange = novakvm-cli-test",
    );
    let mut child = Command::new(BIN)
        .arg("--nova-conf")
        .arg(&conf)
        .arg("compute")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(d.path().join("log")).unwrap_or_default();
        if log.contains("timed out waiting for nova-conductor") {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "exited early: {log}");
        assert!(Instant::now() < deadline, "no retry logged: {log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "exit {st}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing was written: the agent never got past the ping.
    assert!(!d.path().join("state/compute_id").exists());
}
