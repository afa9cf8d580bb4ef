//! `novakvm host inventory` run as a real process; JSON checked against the schema.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sysfs")
        .join(name)
}

/// Run the binary with a config file holding `toml`, isolated from the
/// environment's NOVAKVM_* variables.
fn run(toml: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("novakvm.toml");
    let toml = format!(
        "[DEFAULT]\ninstances_path = {:?}\n{toml}",
        dir.path().join("instances").display().to_string()
    );
    std::fs::write(&cfg, toml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_novakvm"));
    for (k, _) in std::env::vars() {
        if k.starts_with("NOVAKVM_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config").arg(&cfg).args(args).output().unwrap()
}

fn schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("api-schemas/host-inventory.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn assert_valid(validator: &jsonschema::Validator, doc: &serde_json::Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
}

const SRIOV_CFG: &str = r#"
[compute]
cpu_shared_set = "0-1"
cpu_dedicated_set = "2-3"
reserved_huge_pages = ["node:1,size:2048,count:64"]
[pci]
device_spec = ['{"address":"0000:81:00.0","physical_network":"physnet1"}']
"#;

#[test]
fn json_output_matches_schema_for_every_fixture() {
    let validator = schema();
    for (name, cfg) in [
        ("two-socket-smt", ""),
        ("sriov-pf", SRIOV_CFG),
        ("no-numa", ""),
        ("broken", ""),
    ] {
        let root = fixture(name);
        let out = run(
            cfg,
            &[
                "host",
                "inventory",
                "--root",
                root.to_str().unwrap(),
                "--json",
            ],
        );
        let doc = json_of(&out);
        assert_valid(&validator, &doc, name);
        assert_eq!(doc["root"], root.to_str().unwrap());
    }
    let out = run(
        SRIOV_CFG,
        &[
            "host",
            "inventory",
            "--root",
            fixture("sriov-pf").to_str().unwrap(),
            "--json",
        ],
    );
    let doc = json_of(&out);
    let vfs = doc["sriov"][0]["vfs"].as_array().unwrap();
    assert_eq!(vfs.len(), 8);
    assert!(vfs
        .iter()
        .all(|v| v["device_spec"]["physical_network"] == "physnet1" && v["numa_node"] == 1));
    assert_eq!(doc["cpu_sets"]["pcpu_spec"], "2-3");
    assert_eq!(doc["numa_nodes"][1]["hugepages"][0]["reserved"], 64);
}

#[test]
fn schema_rejects_wrong_documents() {
    // The schema is strict enough to catch a broken document.
    let validator = schema();
    let out = run(
        "",
        &[
            "host",
            "inventory",
            "--root",
            fixture("two-socket-smt").to_str().unwrap(),
            "--json",
        ],
    );
    let mut doc = json_of(&out);
    doc["cpu"]["online_spec"] = "0-3,^2".into();
    assert!(!validator.is_valid(&doc));
    let mut doc = json_of(&out);
    doc["numa_nodes"][0]["hugepages"][0]["total"] = (-1).into();
    assert!(!validator.is_valid(&doc));
    let mut doc = json_of(&out);
    doc["surprise"] = true.into();
    assert!(!validator.is_valid(&doc));
}

#[test]
fn this_machine_json_matches_schema() {
    let doc = json_of(&run("", &["host", "inventory", "--json"]));
    assert_valid(&schema(), &doc, "this machine");
}

#[test]
fn text_tables() {
    let out = run(
        SRIOV_CFG,
        &[
            "host",
            "inventory",
            "--root",
            fixture("sriov-pf").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "CPU  SOCKET  CORE  NODE  SIBLINGS",
        "VCPU (shared):    0-1",
        "PCPU (dedicated): 2-3",
        "NODE  SOCKET  CPUS  VCPU  PCPU",
        "NODE  SIZE   TOTAL  FREE  RESERVED",
        "1     2 MiB  256    256   64",
        "PF 0000:81:00.0  8086:1572  netdev enp129s0f0  node 1  VFs 8/64",
        "  7   0000:81:02.7  8086:154c  enp129s0f0v7  1     #0    physnet1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn bad_roots_exit_1_with_a_clear_message() {
    let out = run(
        "",
        &[
            "host",
            "inventory",
            "--root",
            "/nonexistent/novakvm-root",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/novakvm-root is not a readable directory"),
        "{err}"
    );

    let out = run(
        "",
        &[
            "host",
            "inventory",
            "--root",
            fixture("broken-online").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sys/devices/system/cpu/online") && err.contains("zero-three"),
        "{err}"
    );
}

#[test]
fn bad_config_exits_2_with_a_clear_message() {
    let root = fixture("sriov-pf");
    let root = root.to_str().unwrap();
    for (cfg, want) in [
        (
            "[compute]\ncpu_shared_set = \"0-2\"\ncpu_dedicated_set = \"2-3\"\n",
            "must be disjoint",
        ),
        ("[compute]\ncpu_dedicated_set = \"0-9\"\n", "4-9 not online"),
        (
            "[compute]\ncpu_shared_set = \"0-1,^\"\n",
            "invalid exclusion expression",
        ),
        (
            "[pci]\ndevice_spec = ['{\"devname\":\"x\",\"address\":\"*\"}']\n",
            "devname or address, but not both",
        ),
        ("[pci]\ndevice_spec = ['[1]']\n", "Expecting dict"),
    ] {
        let out = run(cfg, &["host", "inventory", "--root", root]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cfg}: {err}");
        assert!(err.contains(want), "{cfg}: {err}");
    }
}
