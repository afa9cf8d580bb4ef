//! Shared helpers for the placement integration tests: start a real
//! openstack-placement with tests/placement/start-placement, build clients,
//! and talk raw HTTP to Placement as "another client".
#![allow(dead_code)]

use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use novakvm::placement::auth::AuthConfig;
use novakvm::placement::{ClientSettings, HostResources, PlacementClient, RetryPolicy};
use serde_json::Value;
use uuid::Uuid;

/// Port of the Placement shared by the tests of one test binary.
pub const SHARED_PORT: u16 = 18781;

fn script() -> String {
    format!(
        "{}/tests/placement/start-placement",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Start (fresh database) a Placement on `port`; it stops when this test
/// process exits. Panics with the script's output if it cannot start.
pub fn start_placement(port: u16) -> String {
    let out = Command::new(script())
        .args([
            "--port",
            &port.to_string(),
            "--fresh",
            "--parent-pid",
            &std::process::id().to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script()));
    if !out.status.success() {
        panic!(
            "cannot start a real Placement for the tests ({} --port {port} failed, {}):\n{}\n{}",
            script(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Stop the Placement on `port` (database dropped).
pub fn stop_placement(port: u16) {
    let status = Command::new(script())
        .args(["--port", &port.to_string(), "--stop"])
        .status()
        .expect("run start-placement --stop");
    assert!(status.success(), "start-placement --stop failed");
}

/// Start the Placement on `port` again on the same database (after it was
/// stopped by killing gunicorn).
pub fn restart_keeping_db(port: u16) -> String {
    url_after_start(port)
}

fn url_after_start(port: u16) -> String {
    let out = Command::new(script())
        .args(["--port", &port.to_string()])
        .output()
        .expect("run start-placement");
    assert!(
        out.status.success(),
        "restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

static SHARED: OnceLock<String> = OnceLock::new();

/// The Placement shared by this test binary (started once, fresh database).
pub fn shared_placement() -> String {
    shared_placement_at(SHARED_PORT)
}

/// Same on another port, for test binaries that must not share an instance
/// with the one cargo ran just before (its clean-up could race with ours).
pub fn shared_placement_at(port: u16) -> String {
    SHARED.get_or_init(|| start_placement(port)).clone()
}

/// Quick retries so failure tests stay short.
pub fn fast_settings() -> ClientSettings {
    ClientSettings {
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        },
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        ..ClientSettings::default()
    }
}

/// A client with `admin_token` (token "admin") against `url`.
pub fn client(url: &str) -> Arc<PlacementClient> {
    Arc::new(PlacementClient::new(AuthConfig::admin_token(url, "admin"), fast_settings()).unwrap())
}

/// A small host with a fresh uuid.
pub fn host(name: &str) -> HostResources {
    HostResources {
        node_uuid: Uuid::new_v4(),
        hypervisor_hostname: format!("{name}-{}", &Uuid::new_v4().simple().to_string()[..8]),
        shared_cpus: vec![0, 1, 2, 3],
        dedicated_cpus: vec![4, 5],
        memory_mb: 8192,
        disk_gb: 100,
        cpu_flags: vec!["avx".into(), "sse4_2".into(), "vmx".into()],
        smt: true,
        arch: Some("x86_64".into()),
    }
}

/// Raw HTTP to Placement, as another client would send it.
pub async fn raw(
    url: &str,
    method: &str,
    path: &str,
    version: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http
        .request(method, format!("{url}{path}"))
        .header("X-Auth-Token", "admin")
        .header("OpenStack-API-Version", format!("placement {version}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("raw request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
