//! The JSON Schema in api-schemas/vm-spec.schema.json agrees with the VMM's spec types.

use novakvm::vmm::spec::VmSpec;
use serde_json::{json, Value};

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/api-schemas/vm-spec.schema.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&v).unwrap()
}

fn full() -> Value {
    json!({
        "name": "instance-00000001",
        "cpus": {"count": 2, "topology": {"sockets": 1, "cores": 2, "threads": 1}},
        "memory": {"size_mib": 64, "backing": "hugepages_2m", "prealloc": true},
        "numa": [{"cpus": [0, 1], "memory_mib": 64, "host_node": 0}],
        "boot": {"kernel": "/bin/sh", "cmdline": "console=ttyS0 exit=poweroff"},
        "serial": {"log_path": "/tmp/console.log", "log_max_bytes": 65536},
        "pinning": {"vcpus": [{"vcpu": 0, "host_cpu": 0}], "emulator": [0]},
        "control_socket": "/tmp/vm.sock",
        "on_reset": "restart"
    })
}

#[test]
fn examples_valid_for_both() {
    let s = schema();
    let minimal =
        json!({"cpus": {"count": 1}, "memory": {"size_mib": 16}, "boot": {"kernel": "/bin/sh"}});
    for v in [full(), minimal] {
        assert!(s.is_valid(&v), "{v}");
        let spec = VmSpec::from_json(&v.to_string()).unwrap();
        // What the VMM writes back out is valid too (nulls for absent options).
        let round = serde_json::to_value(&spec).unwrap();
        assert!(s.is_valid(&round), "{round}");
        assert_eq!(VmSpec::from_json(&round.to_string()).unwrap(), spec);
    }
}

#[test]
fn garbage_rejected_by_both() {
    let s = schema();
    let patches: Vec<(&str, Value)> = vec![
        ("/cpus/count", json!(0)),
        ("/cpus/count", json!("two")),
        ("/memory/backing", json!("huge")),
        ("/memory/size_mib", json!(-1)),
        ("/on_reset", json!("explode")),
        ("/boot/cmdline", json!("tab\there")),
        ("/serial/log_max_bytes", json!(1)),
        ("/pinning/vcpus", json!([{"vcpu": 0}])),
        ("/extra", json!(true)),
    ];
    for (ptr, val) in patches {
        let mut v = full();
        let (parent, key) = ptr.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).unwrap()
        };
        target[key] = val.clone();
        assert!(!s.is_valid(&v), "schema accepted {ptr}={val}");
        assert!(
            VmSpec::from_json(&v.to_string()).is_err(),
            "VMM accepted {ptr}={val}"
        );
    }
    for v in [json!(null), json!([]), json!("spec"), json!({})] {
        assert!(!s.is_valid(&v));
        assert!(VmSpec::from_json(&v.to_string()).is_err());
    }
}
