//! The ComputeNode and Placement figures the agent derives from host
//! inventory (fixture sysfs trees), and the objects built from them load
//! as nova 34 objects (registry validation).

use std::path::{Path, PathBuf};

use novakvm::compute::resources::{host_resources, node_resources, node_usage, InstanceUsage};
use novakvm::config::Config;
use novakvm::host::{collect, InventoryOptions};
use novakvm::objects::compute::check_outgoing;
use novakvm::objects::views::{ComputeNode, NUMATopology};
use novakvm::objects::ObjectView;
use uuid::Uuid;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sysfs")
        .join(name)
}

fn opts() -> InventoryOptions {
    InventoryOptions {
        instances_path: std::env::temp_dir(),
        ..InventoryOptions::default()
    }
}

#[test]
fn two_socket_host_becomes_a_valid_compute_node() {
    let inv = collect(&fixture("two-socket-smt"), &opts()).unwrap();
    let cfg = Config::default();
    let u = Uuid::new_v4();
    let res = node_resources(&cfg, &inv, u, Some(7));
    assert_eq!(res.vcpus as usize, inv.cpu_sets.vcpu.len());
    assert!(res.vcpus > 0);
    let mem: u64 = inv
        .numa_nodes
        .iter()
        .filter_map(|n| n.memory_total_kib)
        .sum::<u64>()
        / 1024;
    assert_eq!(res.memory_mb as u64, mem);
    assert_eq!(res.memory_mb_used, 512, "reserved_host_memory_mb");
    assert_eq!(res.hypervisor_type, "QEMU");
    assert_eq!(res.cpu_allocation_ratio, 4.0);
    let node = ComputeNode::for_create(&res);
    check_outgoing(node.object()).unwrap();
    // numa_topology: one cell per NUMA node, cpusets and siblings from sysfs,
    // small pages first in mempages.
    let topo = NUMATopology::from_json_string(node.numa_topology().unwrap()).unwrap();
    let cells = topo.object().objects("cells").unwrap();
    assert_eq!(cells.len(), inv.numa_nodes.len());
    for (cell, n) in cells.iter().zip(&inv.numa_nodes) {
        let cpuset: Vec<u64> = cell
            .get("cpuset")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_u64())
            .collect();
        let want: Vec<u64> = n.cpuset.iter().map(|&c| u64::from(c)).collect();
        assert_eq!(cpuset, want);
        let pages = cell.objects("mempages").unwrap();
        assert_eq!(pages[0].get("size_kb").unwrap(), 4);
        assert_eq!(pages.len(), 1 + n.hugepages.len());
        assert!(!cell.get("siblings").unwrap().as_array().unwrap().is_empty());
    }
    let cpu_info: serde_json::Value = serde_json::from_str(node.cpu_info().unwrap()).unwrap();
    assert_eq!(cpu_info["topology"]["cells"], inv.numa_nodes.len());
    let hr = host_resources(&cfg, &inv, u);
    assert_eq!(hr.node_uuid, u);
    assert_eq!(hr.shared_cpus.len(), res.vcpus as usize);
}

#[test]
fn usage_counts_instances_and_reservations() {
    let mut cfg = Config::default();
    cfg.default.reserved_host_memory_mb = 1024;
    cfg.default.reserved_host_disk_mb = 1500;
    let none = node_usage(&cfg, &InstanceUsage::default());
    assert_eq!(none.memory_mb_used, 1024);
    assert_eq!(none.local_gb_used, 2, "1500 MB rounds up to 2 GiB");
    assert_eq!(
        none.stats, None,
        "no stats before the first instance, as capture 0033"
    );
    let one = InstanceUsage {
        instances: 1,
        vcpus: 2,
        memory_mb: 512,
        disk_gb: 1,
        building: 1,
        per_project: [("p1".to_string(), 1)].into(),
        failed_builds: 0,
    };
    let u = node_usage(&cfg, &one);
    assert_eq!(u.vcpus_used, 2);
    assert_eq!(u.memory_mb_used, 1536);
    assert_eq!(u.local_gb_used, 3);
    let stats = u.stats.unwrap();
    // The keys of capture 0059.
    for k in [
        "failed_builds",
        "num_instances",
        "num_vm_building",
        "num_task_None",
        "num_os_type_None",
        "num_proj_p1",
        "io_workload",
    ] {
        assert!(stats.contains_key(k), "{k}");
    }
}

#[test]
fn no_numa_host_still_reports_one_cell() {
    let inv = collect(&fixture("no-numa"), &opts()).unwrap();
    let res = node_resources(&Config::default(), &inv, Uuid::new_v4(), None);
    let node = ComputeNode::for_create(&res);
    check_outgoing(node.object()).unwrap();
    let topo = NUMATopology::from_json_string(node.numa_topology().unwrap()).unwrap();
    assert_eq!(topo.object().objects("cells").unwrap().len(), 1);
}
