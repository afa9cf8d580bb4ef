//! vCPU threads pinned to their host CPUs, every other VMM thread to the emulator set,
//! checked from outside through /proc/<pid>/task/*/{comm,status}.

mod vmm_common;

use std::collections::BTreeMap;

use serde_json::json;
use vmm_common::*;

fn threads(pid: u32) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm"))
            .unwrap()
            .trim()
            .to_string();
        let status = std::fs::read_to_string(t.join("status")).unwrap();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        out.entry(comm).or_default().push(cpus);
    }
    out
}

#[test]
fn vcpus_and_emulator_threads_are_pinned() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), 2, 16, "exit=halt");
    s["pinning"] = json!({
        "vcpus": [{"vcpu": 0, "host_cpu": 1}, {"vcpu": 1, "host_cpu": 0}],
        "emulator": [0],
    });
    let mut vm = Vmm::start(d.path(), &s);
    vm.wait_console("exit=halt");
    let mut ctl = vm.connect();
    assert_eq!(ctl.req(json!({"cmd": "status"}))["state"], "running");
    let t = threads(vm.child.id());
    assert_eq!(t.get("vcpu0"), Some(&vec!["1".to_string()]), "{t:?}");
    assert_eq!(t.get("vcpu1"), Some(&vec!["0".to_string()]), "{t:?}");
    assert!(t.contains_key("api"), "{t:?}");
    for (name, cpus) in &t {
        // KVM's NX huge page recovery worker is a kernel task that newer kernels
        // create inside the VMM's thread group; its affinity is the kernel's.
        if !name.starts_with("vcpu") && !name.starts_with("kvm-nx-lpage") {
            assert!(cpus.iter().all(|c| c == "0"), "{name}: {cpus:?}");
        }
    }
    assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
    assert_eq!(vm.wait().code(), Some(6));
}

#[test]
fn pinning_to_a_missing_host_cpu_is_a_spec_error() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), 1, 16, "exit=poweroff");
    s["pinning"] = json!({"vcpus": [{"vcpu": 0, "host_cpu": 999}]});
    let mut vm = Vmm::start(d.path(), &s);
    assert_eq!(vm.wait().code(), Some(2));
    assert!(vm.stderr().contains("pinning.vcpus"));
}
