//! Acceptance: novakvm joins a real nova 34.0.0 control plane (the
//! mini-cloud: Keystone, Placement, Glance, nova-api, nova-conductor,
//! nova-scheduler on RabbitMQ and MariaDB) exactly as stock nova-compute.
//!
//! `devstack/minicloud up` (idempotent) runs with `NOVAKVM_BIN` = this
//! build's binary; the mini-cloud's own compute (KVM driver, host =
//! `[DEFAULT] host` of its nova-cpu.conf) is restarted so it is this build.
//! A second novakvm (fake driver, another host and state_path,
//! `report_interval = 2`) is started by the test. The whole scenario is one
//! test because its steps build on each other (scheduling to the only
//! host, then to the second one, restart, down).
//!
//! Honours the `MINICLOUD_*` variables of devstack/minicloud (home, ports,
//! vhost, database prefix). Runs in about 5 minutes on a warm mini-cloud.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_novakvm");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn home() -> PathBuf {
    std::env::var_os("MINICLOUD_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/novakvm-minicloud"))
}

fn venv_bin() -> PathBuf {
    std::env::var_os("MINICLOUD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join("venv"))
        .join("bin")
}

fn step(msg: &str) {
    eprintln!("[minicloud_agent {:?}] {msg}", std::time::SystemTime::now());
}

/// `devstack/minicloud up` with this build as the compute; panics with the
/// script's output when the mini-cloud cannot start.
fn minicloud_up() {
    // A compute left running by an earlier `up` may be an older build:
    // stop it (by its pid file) so `up` starts this one.
    stop_minicloud_compute();
    let out = Command::new(repo().join("devstack/minicloud"))
        .arg("up")
        .env("NOVAKVM_BIN", BIN)
        .env("NO_COLOR", "1")
        .output()
        .expect("cannot run devstack/minicloud");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the mini-cloud cannot start (devstack/minicloud up exited {}):\n{}",
        out.status,
        tail(&text, 60)
    );
    assert!(
        !(text.contains("WARNING: the compute") || text.contains("has not registered its node")),
        "the mini-cloud started but novakvm did not join:\n{}\n--- compute.log:\n{}",
        tail(&text, 20),
        tail(
            &std::fs::read_to_string(home().join("log/compute.log")).unwrap_or_default(),
            40
        )
    );
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn stop_minicloud_compute() {
    let Ok(text) = std::fs::read_to_string(home().join("run/compute.pid")) else {
        return;
    };
    let Some(pid) = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    // kill(1) by pid, then wait for the process to go.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    for _ in 0..100 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The environment of the mini-cloud's openrc.
fn openrc() -> HashMap<String, String> {
    let text = std::fs::read_to_string(home().join("openrc")).expect("no openrc");
    let mut env = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("export ") {
            if let Some((k, v)) = rest.split_once('=') {
                if k != "PATH" {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    env
}

struct Cloud {
    env: HashMap<String, String>,
}

impl Cloud {
    fn os_raw(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(venv_bin().join("openstack"))
            .args(args)
            .envs(&self.env)
            .output()
            .map_err(|e| format!("cannot run openstack: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "openstack {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn os(&self, args: &[&str]) -> String {
        self.os_raw(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn os_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-f", "json"]);
        let out = self.os(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("openstack {args:?}: not JSON ({e}): {out}"))
    }

    fn service_state(&self, host: &str) -> Option<(String, String)> {
        let v = self.os_json(&["compute", "service", "list", "--service", "nova-compute"]);
        v.as_array()?.iter().find(|s| s["Host"] == host).map(|s| {
            (
                s["State"].as_str().unwrap_or_default().to_string(),
                s["Status"].as_str().unwrap_or_default().to_string(),
            )
        })
    }

    fn discover(&self) {
        let out = Command::new(venv_bin().join("nova-manage"))
            .args(["--config-file"])
            .arg(home().join("etc/nova/nova.conf"))
            .args(["cell_v2", "discover_hosts"])
            .output()
            .expect("nova-manage");
        assert!(out.status.success(), "discover_hosts failed: {out:?}");
    }

    fn hypervisor(&self, host: &str) -> Value {
        self.os_json(&[
            "--os-compute-api-version",
            "2.87",
            "hypervisor",
            "show",
            host,
        ])
    }

    fn traits(&self, rp: &str) -> Vec<String> {
        self.os_json(&["resource", "provider", "trait", "list", rp])
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn server_wait(&self, id: &str, want: &[&str], secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.os_json(&["server", "show", id]);
            let st = v["status"].as_str().unwrap_or_default().to_string();
            if want.contains(&st.as_str()) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "server {id} is {st} after {secs} s (wanted {want:?}): {v}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn poll<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s: {what}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn conf_value(conf: &str, key: &str) -> String {
    conf.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A novakvm compute started by the test; SIGTERM on drop.
struct Agent {
    child: Child,
    dir: PathBuf,
}

impl Agent {
    fn start(dir: &Path, conf: &Path) -> Self {
        let log = std::fs::File::create(dir.join("agent.log")).expect("log file");
        let child = Command::new(BIN)
            .args(["compute", "--nova-conf"])
            .arg(conf)
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start novakvm compute");
        Self {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// SIGTERM; the process must exit 0 within 15 s.
    fn stop(mut self) -> String {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(
                    st.success(),
                    "novakvm exited {st} on SIGTERM:\n{}",
                    tail(&self.log(), 30)
                );
                return self.log();
            }
            assert!(
                Instant::now() < deadline,
                "novakvm did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let _ = self.child.wait();
        }
    }
}

/// Calls the compute RPC server of `host` with the real Python
/// oslo.messaging (the mini-cloud's venv): garbage, unsupported methods,
/// ping. One JSON line per call: {"call", "ok"|"error", "type"}.
fn python_rpc_probe(transport_url: &str, host: &str) -> Vec<Value> {
    let script = r#"
import json, sys
from oslo_config import cfg
import oslo_messaging as om
url, host = sys.argv[1], sys.argv[2]
om.set_transport_defaults("nova")
conf = cfg.CONF; conf([], project="novakvm-probe")
t = om.get_rpc_transport(conf, url=url)
def run(name, target, method, **kw):
    c = om.get_rpc_client(t, target, timeout=20)
    try:
        r = c.call({}, method, **kw)
        print(json.dumps({"call": name, "ok": r}))
    except Exception as e:
        print(json.dumps({"call": name, "error": str(e), "type": type(e).__name__}))
    sys.stdout.flush()
cmp = om.Target(topic="compute", server=host, version="6.0")
run("ping", om.Target(topic="compute", server=host, namespace="baseapi", version="1.0"), "ping", arg="hi")
run("vnc", cmp, "get_vnc_console", instance={"junk": 1}, console_type="novnc")
run("power", cmp, "host_power_action", action="reboot")
run("maint", cmp, "host_maintenance_mode", host=host, mode=True)
run("junk_console", cmp, "get_console_output", instance="not an instance", tail_length=5)
run("junk_enable", cmp, "set_host_enabled", enabled="maybe")
run("nosuch", cmp, "no_such_method")
c = om.get_rpc_client(t, cmp)
c.cast({}, "build_and_run_instance", instance="junk", node=None)
c.cast({}, "terminate_instance", instance={"nova_object.name": "Flavor"}, bdms=[])
c.cast({}, "live_migration", instance={}, dest="x", block_migration=False, migration=None, migrate_data=None)
run("ping_after_junk", om.Target(topic="compute", server=host, namespace="baseapi", version="1.0"), "ping", arg="still")
run("alt", om.Target(topic="compute-alt", server=host, version="6.5"), "check_instance_shared_storage", instance={}, data={})
"#;
    let out = Command::new(venv_bin().join("python"))
        .arg("-c")
        .arg(script)
        .arg(transport_url)
        .arg(host)
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python probe failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A spy queue bound to exchange `nova` with key `conductor` (what the
/// conductor's topic queue gets), through the real kombu of the venv.
/// `declare` creates it; `drain` prints each message's inner oslo message
/// as one JSON line and deletes the queue.
fn conductor_spy(transport_url: &str, mode: &str, queue: &str) -> Vec<Value> {
    let script = r#"
import json, sys
from kombu import Connection, Exchange, Queue
url, mode, name = sys.argv[1], sys.argv[2], sys.argv[3]
url = url.replace("rabbit://", "amqp://", 1)
ex = Exchange("nova", type="topic", durable=False, auto_delete=False)
q = Queue(name, exchange=ex, routing_key="conductor", durable=False, auto_delete=False)
with Connection(url) as c:
    b = q(c.channel())
    b.declare()
    if mode == "drain":
        while True:
            m = b.get(no_ack=True)
            if m is None:
                break
            body = json.loads(m.body)
            print(body["oslo.message"])
        b.delete()
"#;
    let out = Command::new(venv_bin().join("python"))
        .arg("-c")
        .arg(script)
        .args([transport_url, mode, queue])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "spy {mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `method` or `Obj.method` of a conductor request.
fn conductor_call_name(m: &Value) -> String {
    let a = &m["args"];
    match m["method"].as_str().unwrap_or_default() {
        "object_class_action_versions" => format!(
            "{}.{}",
            a["objname"].as_str().unwrap_or_default(),
            a["objmethod"].as_str().unwrap_or_default()
        ),
        "object_action" => format!(
            "{}.{}",
            a["objinst"]["nova_object.name"]
                .as_str()
                .unwrap_or_default(),
            a["objmethod"].as_str().unwrap_or_default()
        ),
        other => other.to_string(),
    }
}

/// The conductor object calls of the captures `from..=to` in
/// tests/fixtures/nova-wire, heartbeats (`Service.save`) left out.
fn stock_object_calls(from: u32, to: u32) -> Vec<String> {
    let dir = repo().join("tests/fixtures/nova-wire");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/nova-wire")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let n: u32 = name[..4].parse().unwrap_or(0);
        if !(from..=to).contains(&n) || !name.contains("-conductor-object") {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let c = conductor_call_name(&v["message"]);
        if c != "Service.save" {
            out.push(c);
        }
    }
    out
}

/// Our object calls, heartbeats left out.
fn object_calls(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| {
            m["method"]
                .as_str()
                .is_some_and(|x| x.starts_with("object_"))
        })
        .map(conductor_call_name)
        .filter(|c| c != "Service.save")
        .collect()
}

/// Stock nova-compute's first start: the conductor requests of captures
/// 0004-0036 in tests/fixtures/nova-wire (ping ... first heartbeat).
fn stock_first_start() -> Vec<String> {
    let dir = repo().join("tests/fixtures/nova-wire");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/nova-wire")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let n: u32 = name[..4].parse().unwrap_or(0);
        if !(4..=36).contains(&n) || !name.contains("-conductor-") {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        out.push(conductor_call_name(&v["message"]));
    }
    out
}

fn check_first_start(msgs: &[Value], host: &str) {
    // The other computes of the cloud heartbeat on the same queue.
    let msgs: Vec<Value> = msgs
        .iter()
        .filter(|m| {
            m["args"]["objinst"]["nova_object.data"]["host"]
                .as_str()
                .map_or(true, |h| h == host)
        })
        .cloned()
        .collect();
    let msgs = &msgs[..];
    let names: Vec<String> = msgs.iter().map(conductor_call_name).collect();
    let stock = stock_first_start();
    assert_eq!(stock.len(), 16, "{stock:?}");
    let first: Vec<String> = names.iter().take(stock.len()).cloned().collect();
    assert_eq!(first, stock, "conductor conversation: {names:?}");
    let by = |n: &str| {
        msgs.iter()
            .find(|m| conductor_call_name(m) == n)
            .unwrap_or_else(|| panic!("no {n}"))
    };
    let ping = by("ping");
    assert_eq!(ping["namespace"], "baseapi");
    assert_eq!(ping["args"]["arg"], "1.21 GigaWatts");
    let svc = &by("Service.create")["args"]["objinst"];
    assert_eq!(
        svc["nova_object.data"],
        serde_json::json!({"host": host, "binary": "nova-compute", "topic": "compute",
                           "report_count": 0, "version": 74}),
        "{svc}"
    );
    let mut ch: Vec<&str> = svc["nova_object.changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ch.sort_unstable();
    assert_eq!(ch, ["binary", "host", "report_count", "topic", "version"]);
    let node = &by("ComputeNode.create")["args"]["objinst"];
    let mut keys: Vec<&str> = node["nova_object.data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    // The fields of capture 0023, in sorted order.
    assert_eq!(
        keys,
        [
            "cpu_allocation_ratio",
            "cpu_info",
            "disk_allocation_ratio",
            "disk_available_least",
            "host",
            "host_ip",
            "hypervisor_hostname",
            "hypervisor_type",
            "hypervisor_version",
            "local_gb",
            "local_gb_used",
            "memory_mb",
            "memory_mb_used",
            "numa_topology",
            "ram_allocation_ratio",
            "service_id",
            "stats",
            "supported_hv_specs",
            "uuid",
            "vcpus",
            "vcpus_used",
        ],
        "{node}"
    );
    let save = &by("ComputeNode.save")["args"]["objinst"];
    let mut ch: Vec<&str> = save["nova_object.changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ch.sort_unstable();
    // Capture 0033.
    assert_eq!(
        ch,
        [
            "current_workload",
            "free_disk_gb",
            "free_ram_mb",
            "local_gb_used",
            "memory_mb_used",
            "metrics",
            "pci_device_pools",
            "running_vms",
            "vcpus_used",
        ],
        "{save}"
    );
    let hb = &by("Service.save")["args"]["objinst"];
    assert_eq!(
        hb["nova_object.changes"],
        serde_json::json!(["report_count"]),
        "{hb}"
    );
    assert_eq!(hb["nova_object.data"]["report_count"], 1, "{hb}");
}

#[test]
fn novakvm_joins_the_minicloud() {
    let t0 = Instant::now();
    step("devstack/minicloud up");
    minicloud_up();
    let cloud = Cloud { env: openrc() };
    let conf_path = home().join("etc/nova/nova-cpu.conf");
    let conf = std::fs::read_to_string(&conf_path).expect("nova-cpu.conf");
    let kvm_host = conf_value(&conf, "host");
    let state = PathBuf::from(conf_value(&conf, "state_path"));
    let transport_url = conf_value(&conf, "transport_url");
    assert!(!kvm_host.is_empty(), "no host in {}", conf_path.display());

    // --- the mini-cloud's novakvm (KVM driver) -------------------------
    step("compute service list shows the novakvm host up");
    let (_, status) = poll(60, "novakvm service up", || {
        cloud.service_state(&kvm_host).filter(|s| s.0 == "up")
    });
    if status != "enabled" {
        // Left disabled by an interrupted run.
        cloud.os(&[
            "compute",
            "service",
            "set",
            "--enable",
            &kvm_host,
            "nova-compute",
        ]);
    }
    let node_uuid = std::fs::read_to_string(state.join("compute_id"))
        .expect("compute_id written")
        .trim()
        .to_string();

    step("discover_hosts maps the host; hypervisor show has the host's figures");
    cloud.discover();
    let hv = cloud.hypervisor(&kvm_host);
    let inv_out = Command::new(BIN)
        .args(["--nova-conf"])
        .arg(&conf_path)
        .args(["host", "inventory", "--json"])
        .output()
        .expect("host inventory");
    let inv: Value = serde_json::from_slice(&inv_out.stdout).expect("inventory JSON");
    let vcpus = inv["cpu_sets"]["vcpu"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0) as u64;
    let mem_mb: u64 = inv["numa_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["memory_total_kib"].as_u64())
        .sum::<u64>()
        / 1024;
    assert_eq!(hv["vcpus"].as_u64(), Some(vcpus), "{hv}");
    assert_eq!(hv["memory_mb"].as_u64(), Some(mem_mb), "{hv}");
    assert_eq!(hv["hypervisor_type"], "QEMU", "{hv}");
    assert_eq!(hv["state"], "up", "{hv}");
    assert_eq!(
        hv["id"].as_str(),
        Some(node_uuid.as_str()),
        "node uuid = compute_id: {hv}"
    );

    step("provider traits (osc-placement)");
    let traits = cloud.traits(&node_uuid);
    for t in ["OWNER_NOVA", "COMPUTE_NODE", "COMPUTE_IMAGE_TYPE_RAW"] {
        assert!(traits.iter().any(|x| x == t), "{t} missing: {traits:?}");
    }
    let check = Command::new(BIN)
        .arg("--nova-conf")
        .arg(&conf_path)
        .args(["host", "placement", "--check"])
        .output()
        .expect("host placement");
    assert!(
        check.status.success(),
        "host placement --check: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    step("RPC probe with Python oslo.messaging: ping, unsupported methods, garbage");
    let probe = python_rpc_probe(&transport_url, &kvm_host);
    let by: HashMap<String, Value> = probe
        .iter()
        .map(|v| {
            (
                v["call"].as_str().unwrap_or_default().to_string(),
                v.clone(),
            )
        })
        .collect();
    assert_eq!(by["ping"]["ok"]["service"], "compute", "{probe:?}");
    assert_eq!(by["ping_after_junk"]["ok"]["arg"], "still", "{probe:?}");
    for name in ["vnc", "power", "maint", "alt"] {
        assert_eq!(by[name]["type"], "NotImplementedError", "{name}: {probe:?}");
        assert!(by[name]["error"]
            .as_str()
            .unwrap()
            .contains("novakvm does not support"));
    }
    assert_eq!(by["junk_console"]["type"], "ValueError", "{probe:?}");
    assert_eq!(by["junk_enable"]["type"], "ValueError", "{probe:?}");
    // oslo only rebuilds allowed modules' exceptions: as with stock nova-compute.
    assert_eq!(by["nosuch"]["type"], "RemoteError", "{probe:?}");
    assert!(by["nosuch"]["error"]
        .as_str()
        .unwrap()
        .contains("NoSuchMethod"));

    step("image and flavor");
    let tag = format!("nk{}", std::process::id());
    let img = std::env::temp_dir().join(format!("novakvm-mc-{}.raw", std::process::id()));
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    cloud.os(&[
        "image",
        "create",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--file",
        img.to_str().unwrap(),
        &tag,
    ]);
    let _ = std::fs::remove_file(&img);
    cloud.os(&[
        "flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", &tag,
    ]);

    step(
        "KVM driver: the scheduler picks the novakvm host; the build ends in ERROR with the fault",
    );
    let s = cloud.os_json(&[
        "server",
        "create",
        "--nic",
        "none",
        "--image",
        &tag,
        "--flavor",
        &tag,
        &format!("{tag}-kvm"),
    ]);
    let kvm_server = s["id"].as_str().unwrap().to_string();
    let v = cloud.server_wait(&kvm_server, &["ERROR", "ACTIVE"], 90);
    assert_eq!(v["status"], "ERROR", "{v}");
    let fault = v["fault"]["message"].as_str().unwrap_or_default();
    assert!(
        fault.contains("builds on KVM are not supported"),
        "fault: {v}"
    );
    assert_eq!(v["OS-EXT-SRV-ATTR:host"], kvm_host.as_str(), "{v}");
    let usage = cloud.os_json(&["resource", "provider", "usage", "show", &node_uuid]);
    assert!(
        usage.as_array().unwrap().iter().all(|u| u["usage"] == 0),
        "allocations of the failed build must be deleted: {usage}"
    );
    cloud.os(&["server", "delete", "--wait", &kvm_server]);

    // --- a second novakvm: fake driver, another host ----------------------
    step("second novakvm (fake driver) with another host name and state_path");
    let dir = tempfile::tempdir().unwrap();
    // A fresh name per run: a record left by an interrupted run would make
    // the new agent (fresh state_path) refuse to start, as nova does.
    let fake_host = format!("{kvm_host}-{tag}");
    let fake_state = dir.path().join("state");
    let fake_conf = dir.path().join("nova-cpu.conf");
    let text: String = conf
        .lines()
        .map(|l| {
            if l.starts_with("host = ") {
                format!("host = {fake_host}")
            } else if l.starts_with("state_path = ") {
                format!("state_path = {}", fake_state.display())
            } else if l.starts_with("compute_driver = ") {
                "compute_driver = fake.FakeDriverWithoutFakeNodes\nreport_interval = 2".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&fake_conf, text).unwrap();
    let spy = format!("novakvm-spy-{tag}");
    conductor_spy(&transport_url, "declare", &spy);
    let agent = Agent::start(dir.path(), &fake_conf);
    poll(60, "fake service up", || {
        (cloud.service_state(&fake_host)?.0 == "up").then_some(())
    });
    poll(20, "first heartbeat", || {
        agent.log().contains("novakvm compute is up").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));

    step("the conductor conversation is stock nova-compute's (captures 0004-0036)");
    let msgs = conductor_spy(&transport_url, "drain", &spy);
    check_first_start(&msgs, &fake_host);
    cloud.discover();
    let fake_uuid = std::fs::read_to_string(fake_state.join("compute_id"))
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(fake_uuid, node_uuid);

    step(
        "disable the KVM host: COMPUTE_STATUS_DISABLED follows; the scheduler picks the fake host",
    );
    cloud.os(&[
        "compute",
        "service",
        "set",
        "--disable",
        &kvm_host,
        "nova-compute",
    ]);
    poll(30, "COMPUTE_STATUS_DISABLED on the KVM provider", || {
        cloud
            .traits(&node_uuid)
            .iter()
            .any(|t| t == "COMPUTE_STATUS_DISABLED")
            .then_some(())
    });
    let spy = format!("novakvm-spy-build-{tag}");
    conductor_spy(&transport_url, "declare", &spy);
    let s = cloud.os_json(&[
        "server",
        "create",
        "--nic",
        "none",
        "--image",
        &tag,
        "--flavor",
        &tag,
        &format!("{tag}-fake"),
    ]);
    let fake_server = s["id"].as_str().unwrap().to_string();
    let v = cloud.server_wait(&fake_server, &["ACTIVE", "ERROR"], 90);
    assert_eq!(v["status"], "ACTIVE", "{v}\n{}", tail(&agent.log(), 30));
    assert_eq!(v["OS-EXT-SRV-ATTR:host"], fake_host.as_str());
    assert_eq!(v["OS-EXT-STS:power_state"], 1, "{v}");
    std::thread::sleep(Duration::from_secs(2));
    let ours = object_calls(&conductor_spy(&transport_url, "drain", &spy));
    let stock = stock_object_calls(47, 75);
    assert_eq!(ours, stock, "build conversation (captures 0047-0075)");
    cloud.os(&[
        "compute",
        "service",
        "set",
        "--enable",
        &kvm_host,
        "nova-compute",
    ]);
    poll(30, "COMPUTE_STATUS_DISABLED removed", || {
        (!cloud
            .traits(&node_uuid)
            .iter()
            .any(|t| t == "COMPUTE_STATUS_DISABLED"))
        .then_some(())
    });

    step("console log, stop/start, delete on the fake host");
    let log = cloud.os(&["console", "log", "show", &fake_server]);
    assert!(log.contains("FAKE CONSOLE OUTPUT"), "{log}");
    cloud.os(&["server", "stop", &fake_server]);
    cloud.server_wait(&fake_server, &["SHUTOFF"], 60);
    cloud.os(&["server", "start", &fake_server]);
    cloud.server_wait(&fake_server, &["ACTIVE"], 60);
    let hv = cloud.hypervisor(&fake_host);
    assert_eq!(hv["vcpus_used"].as_u64(), Some(1), "{hv}");
    cloud.os(&["server", "delete", "--wait", &fake_server]);
    let hv = cloud.hypervisor(&fake_host);
    assert_eq!(hv["vcpus_used"].as_u64(), Some(0), "{hv}");
    let usage = cloud.os_json(&["resource", "provider", "usage", "show", &fake_uuid]);
    assert!(
        usage.as_array().unwrap().iter().all(|u| u["usage"] == 0),
        "{usage}"
    );

    step("restart: same node uuid, no duplicate");
    let log = agent.stop();
    assert!(
        log.contains("novakvm compute stopped"),
        "{}",
        tail(&log, 10)
    );
    let agent = Agent::start(dir.path(), &fake_conf);
    poll(60, "restarted agent heartbeats", || {
        agent.log().contains("novakvm compute is up").then_some(())
    });
    let hvs = cloud.os_json(&["hypervisor", "list"]);
    let same: Vec<&Value> = hvs
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["Hypervisor Hostname"] == fake_host.as_str())
        .collect();
    assert_eq!(same.len(), 1, "one node for {fake_host}: {hvs}");
    assert_eq!(same[0]["ID"].as_str(), Some(fake_uuid.as_str()), "{hvs}");

    step("a host rename is refused (same state_path, other host)");
    let renamed = dir.path().join("renamed.conf");
    std::fs::write(
        &renamed,
        std::fs::read_to_string(&fake_conf).unwrap().replace(
            &format!("host = {fake_host}"),
            &format!("host = {fake_host}-renamed"),
        ),
    )
    .unwrap();
    let out = Command::new("timeout")
        .args(["60", BIN, "compute", "--nova-conf"])
        .arg(&renamed)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("Possible rename detected, refusing to start"),
        "{text}"
    );
    assert!(cloud
        .service_state(&format!("{fake_host}-renamed"))
        .is_none());

    step("stop the agent: the service goes down after service_down_time");
    agent.stop();
    let stopped = Instant::now();
    poll(150, "service down after the agent stopped", || {
        (cloud.service_state(&fake_host)?.0 == "down").then_some(())
    });
    eprintln!("down after {:?}", stopped.elapsed());

    step("cleanup");
    let _ = cloud.os_raw(&[
        "compute",
        "service",
        "delete",
        &service_id(&cloud, &fake_host),
    ]);
    let _ = cloud.os_raw(&["flavor", "delete", &tag]);
    let _ = cloud.os_raw(&["image", "delete", &tag]);
    eprintln!("minicloud_agent: done in {:?}", t0.elapsed());
}

fn service_id(cloud: &Cloud, host: &str) -> String {
    let v = cloud.os_json(&["compute", "service", "list", "--service", "nova-compute"]);
    v.as_array()
        .and_then(|a| a.iter().find(|s| s["Host"] == host))
        .and_then(|s| s["ID"].as_str())
        .unwrap_or_default()
        .to_string()
}
