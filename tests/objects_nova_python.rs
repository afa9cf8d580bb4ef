//! Cross-check against the real nova 34.0.0 (Python, from PyPI): our registry
//! (versions, field order, nullability, wire kinds) equals nova's object
//! registry, our manifests equal oslo's `obj_tree_get_versions`, and the
//! objects we build load in nova (`obj_from_primitive`) and serialize back
//! identically; the NUMA topology string loads with
//! `NUMATopology.obj_from_db_obj`, as the scheduler does.
//!
//! Needs a Python with nova 34.0.0: `$NOVAKVM_NOVA_PYTHON`, else
//! `$MINICLOUD_VENV/bin/python`, else `/var/lib/novakvm-minicloud/venv/bin/python`
//! (the venv `devstack/minicloud up` installs).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use novakvm::objects::compute::{
    libvirt_version_number, ComputeNodeResources, ComputeNodeUsage, CpuInfo, CpuTopology,
    HvSpecTriple, NumaCellSpec, HYPERVISOR_TYPE_QEMU,
};
use novakvm::objects::isotime::parse_isotime;
use novakvm::objects::registry::{self, FieldKind};
use novakvm::objects::views::{ComputeNode, Instance, NUMATopology, Service};
use novakvm::objects::ObjectView;
use serde_json::{json, Value};

const SCRIPT: &str = include_str!("../api-schemas/nova-objects/tools/check_against_nova.py");

fn nova_python() -> PathBuf {
    if let Ok(p) = std::env::var("NOVAKVM_NOVA_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var("MINICLOUD_VENV")
        .unwrap_or_else(|_| "/var/lib/novakvm-minicloud/venv".to_owned());
    PathBuf::from(venv).join("bin/python")
}

fn kind_json(k: FieldKind) -> (String, Option<&'static str>) {
    let s = match k {
        FieldKind::Object(o) => return ("object".into(), Some(o)),
        FieldKind::ListOfObjects(o) => return ("list_of_objects".into(), Some(o)),
        other => format!("{other:?}"),
    };
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    (out.replace("date_time", "datetime"), None)
}

fn registry_json() -> Value {
    let mut m = serde_json::Map::new();
    for d in registry::all() {
        let fields: Vec<Value> = d
            .fields
            .iter()
            .map(|f| {
                let (kind, obj) = kind_json(f.kind);
                let mut v = json!({"name": f.name, "kind": kind, "nullable": f.nullable});
                if let Some(o) = obj {
                    v["object"] = json!(o);
                }
                v
            })
            .collect();
        m.insert(
            d.name.to_owned(),
            json!({"version": d.version().to_string(), "fields": fields}),
        );
    }
    Value::Object(m)
}

fn libvirt_node() -> ComputeNode {
    let topo = NUMATopology::from_cells(&[
        NumaCellSpec {
            id: 0,
            cpuset: vec![0, 1],
            pcpuset: vec![2, 3],
            siblings: vec![vec![0, 2], vec![1, 3]],
            memory_mb: 3979,
            mempages: vec![(4, 1_018_624, 0), (2048, 0, 0)],
            socket: Some(0),
            physnets: vec!["public".into()],
            tunneled: false,
        },
        NumaCellSpec {
            id: 1,
            cpuset: vec![4, 5],
            memory_mb: 3979,
            ..Default::default()
        },
    ]);
    let cpu = CpuInfo {
        arch: "x86_64".into(),
        model: "Skylake-Client-IBRS".into(),
        vendor: "Intel".into(),
        topology: CpuTopology {
            cells: 2,
            sockets: 1,
            cores: 3,
            threads: 1,
        },
        maxphysaddr: None,
        features: vec!["vmx".into(), "x2apic".into()],
    };
    ComputeNode::for_create(&ComputeNodeResources {
        uuid: "6f1e7c1a-3a55-4c55-9d7e-0b8e1b0c9a11".into(),
        host: "cmp1".into(),
        hypervisor_hostname: "cmp1.example".into(),
        service_id: Some(7),
        vcpus: 6,
        memory_mb: 7958,
        local_gb: 40,
        vcpus_used: 0,
        memory_mb_used: 512,
        local_gb_used: 0,
        hypervisor_type: HYPERVISOR_TYPE_QEMU.into(),
        hypervisor_version: libvirt_version_number(8, 2, 2),
        cpu_info: cpu.to_json_string(),
        disk_available_least: Some(38),
        host_ip: Some("10.0.0.5".parse().unwrap()),
        numa_topology: Some(topo),
        supported_hv_specs: HvSpecTriple::libvirt_kvm("x86_64"),
        stats: [("failed_builds".to_owned(), "0".to_owned())].into(),
        cpu_allocation_ratio: 4.0,
        ram_allocation_ratio: 1.5,
        disk_allocation_ratio: 1.0,
    })
}

fn our_objects() -> Vec<Value> {
    let svc = Service::for_compute("cmp1");
    let cn = libvirt_node();
    let mut cn_used = cn.clone();
    cn_used.object_mut().reset_changes();
    cn_used.set_usage(&ComputeNodeUsage {
        vcpus_used: 1,
        memory_mb_used: 1024,
        local_gb_used: 1,
        current_workload: 0,
        running_vms: 1,
        stats: Some([("num_instances".to_owned(), "1".to_owned())].into()),
    });
    let cap: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/nova-wire/0050-conductor-object_action-Instance.save.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut inst = Instance::from_value(&cap["message"]["args"]["objinst"]).unwrap();
    inst.object_mut().reset_changes();
    inst.set_vm_state(Some("active"));
    inst.set_task_state(None);
    inst.set_power_state(Some(1));
    inst.set_host(Some("cmp1"));
    inst.set_node(Some("cmp1.example"));
    inst.set_launched_at(Some(parse_isotime("2026-11-28T22:35:30Z").unwrap()));
    let mut flavor = inst.flavor().unwrap().unwrap();
    flavor.set_extra_specs(&[("hw:cpu_policy".to_owned(), "dedicated".to_owned())].into());
    inst.set_flavor(Some(&flavor));
    vec![
        svc.to_value(),
        cn.to_value(),
        cn_used.to_value(),
        inst.to_value(),
    ]
}

#[test]
fn registry_manifests_and_objects_agree_with_real_nova() {
    let py = nova_python();
    assert!(
        py.exists(),
        "{} not found: this test needs a Python with nova 34.0.0 installed \
         (run `devstack/minicloud up`, or set NOVAKVM_NOVA_PYTHON / MINICLOUD_VENV)",
        py.display()
    );
    let manifests: serde_json::Map<String, Value> = registry::all()
        .iter()
        .filter(|d| !d.notification)
        .filter_map(|d| {
            registry::manifest_for(d.name).map(|m| {
                let pairs: Vec<Value> = m
                    .into_iter()
                    .map(|(n, v)| json!([n, v.to_string()]))
                    .collect();
                (d.name.to_owned(), Value::from(pairs))
            })
        })
        .collect();
    let input = json!({
        "registry": registry_json(),
        "manifests": manifests,
        "objects": our_objects(),
    });
    let mut child = Command::new(&py)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nova check failed: {stderr}");
    let res: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let mismatches = res["mismatches"].as_array().unwrap();
    assert!(
        mismatches.is_empty(),
        "{} mismatches with nova:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .map(|m| m.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(res["checked"]["classes"].as_u64().unwrap() >= 100);
    assert!(res["checked"]["manifests"].as_u64().unwrap() >= 100);
    assert_eq!(res["checked"]["objects"], 4);
    // What nova itself reads from our ComputeNode.
    assert_eq!(
        res["numa"][0],
        json!({"cells": 2, "cpuset": [0, 1], "pcpuset": [2, 3],
               "siblings": [[0, 2], [1, 3]],
               "mempages": [[4, 1_018_624, 0, 0], [2048, 0, 0, 0]],
               "physnets": ["public"], "socket": 0})
    );
    assert_eq!(
        res["hv_specs"][0],
        json!([["x86_64", "qemu", "hvm"], ["x86_64", "kvm", "hvm"]])
    );
    assert_eq!(res["cpu_info"][0]["topology"]["cores"], 3);
}
