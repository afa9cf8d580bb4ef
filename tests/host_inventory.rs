//! Host inventory against the fixture trees in tests/fixtures/sysfs and this machine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use novakvm::host::cpuset::{parse_cpu_spec, CpuSetError, CpuSetOptions};
use novakvm::host::inventory::{collect, InventoryError, InventoryOptions};
use novakvm::host::numa::NumaSource;
use novakvm::host::pci_spec::PciSpecError;
use novakvm::host::HostInventory;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sysfs")
        .join(name)
}

fn opts() -> InventoryOptions {
    InventoryOptions {
        instances_path: std::env::temp_dir().join("novakvm-test-instances"),
        ..InventoryOptions::default()
    }
}

fn with_specs(specs: &[&str]) -> InventoryOptions {
    InventoryOptions {
        device_spec: specs.iter().map(|s| s.to_string()).collect(),
        ..opts()
    }
}

fn set(spec: &str) -> BTreeSet<u32> {
    parse_cpu_spec(spec).unwrap()
}

fn take(name: &str, o: &InventoryOptions) -> HostInventory {
    collect(&fixture(name), o).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn two_socket_smt_topology() {
    let inv = take("two-socket-smt", &opts());
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
    let c = &inv.cpu;
    assert_eq!(c.online, set("0-15"));
    assert_eq!(c.online_spec, "0-15");
    assert_eq!((c.sockets, c.cores, c.threads_per_core), (2, 8, 2));
    assert_eq!(
        c.model.as_deref(),
        Some("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz")
    );
    for t in [
        "HW_CPU_X86_AVX2",
        "HW_CPU_X86_SSE3",
        "HW_CPU_X86_SSE41",
        "HW_CPU_X86_VMX",
        "HW_CPU_X86_INTEL_VMX",
    ] {
        assert!(
            c.traits.iter().any(|x| x == t),
            "{t} missing from {:?}",
            c.traits
        );
    }
    assert!(!c.traits.iter().any(|x| x == "HW_CPU_X86_SVM"));
    let cpu9 = &c.cpus[9];
    assert_eq!(
        (cpu9.id, cpu9.socket, cpu9.core, cpu9.numa_node),
        (9, Some(0), Some(1), Some(0))
    );
    assert_eq!(cpu9.siblings, set("1,9"));
    assert_eq!(c.cpus[12].numa_node, Some(1));

    assert_eq!(inv.numa_source, NumaSource::Sysfs);
    assert_eq!(inv.numa_nodes.len(), 2);
    let n0 = &inv.numa_nodes[0];
    let n1 = &inv.numa_nodes[1];
    assert_eq!(
        (n0.cpus.clone(), n1.cpus.clone()),
        (set("0-3,8-11"), set("4-7,12-15"))
    );
    assert_eq!((n0.socket, n1.socket), (Some(0), Some(1)));
    assert_eq!(n0.memory_total_kib, Some(64 * 1024 * 1024));
    assert_eq!(n1.memory_free_kib, Some(40 * 1024 * 1024 + 1024));
    let pages: Vec<(u64, u64, u64)> = n0
        .hugepages
        .iter()
        .map(|h| (h.size_kib, h.total, h.free))
        .collect();
    assert_eq!(pages, [(2048, 1024, 1000), (1048576, 4, 2)]);
    let pages: Vec<(u64, u64, u64)> = n1
        .hugepages
        .iter()
        .map(|h| (h.size_kib, h.total, h.free))
        .collect();
    assert_eq!(pages, [(2048, 512, 512), (1048576, 2, 2)]);
    assert_eq!(
        n0.siblings,
        [set("0,8"), set("1,9"), set("2,10"), set("3,11")]
    );
    // No CPU sets configured: everything is VCPU, no PCPU inventory, and
    // cells offer every CPU for pinning (nova's legacy fallback).
    assert_eq!(inv.cpu_sets.vcpu, set("0-15"));
    assert!(inv.cpu_sets.pcpu.is_empty());
    assert_eq!(n1.pcpuset, set("4-7,12-15"));
    assert!(inv.sriov.is_empty());
    assert!(inv.disk.total_bytes > 0);
}

#[test]
fn two_socket_cpu_sets_and_reserved_pages() {
    let o = InventoryOptions {
        cpu_sets: CpuSetOptions {
            shared: Some("0-1,8-9".into()),
            dedicated: Some("2-7,10-15,^15".into()),
            reserved_host_cpus: 0,
        },
        reserved_huge_pages: vec![
            "node:0,size:2048,count:64".into(),
            "node:1,size:1GB,count:1".into(),
            "node:1,size:1048576,count:2".into(),
        ],
        ..opts()
    };
    let inv = take("two-socket-smt", &o);
    assert_eq!(inv.cpu_sets.vcpu_spec, "0-1,8-9");
    assert_eq!(inv.cpu_sets.pcpu_spec, "2-7,10-14");
    let n0 = &inv.numa_nodes[0];
    let n1 = &inv.numa_nodes[1];
    assert_eq!(
        (n0.cpuset.clone(), n0.pcpuset.clone()),
        (set("0-1,8-9"), set("2-3,10-11"))
    );
    assert_eq!(
        (n1.cpuset.clone(), n1.pcpuset.clone()),
        (set(""), set("4-7,12-14"))
    );
    // CPU 15 is in no set, so its sibling set shrinks to {7}.
    assert_eq!(
        n1.siblings,
        [set("4,12"), set("5,13"), set("6,14"), set("7")]
    );
    assert_eq!(n0.hugepages[0].reserved, 64);
    assert_eq!(n0.hugepages[1].reserved, 0);
    // The later entry for node 1 / 1 GiB wins.
    assert_eq!(n1.hugepages[1].reserved, 2);
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
}

#[test]
fn cpu_set_config_errors() {
    let case = |shared: Option<&str>, dedicated: Option<&str>| {
        let o = InventoryOptions {
            cpu_sets: CpuSetOptions {
                shared: shared.map(str::to_string),
                dedicated: dedicated.map(str::to_string),
                reserved_host_cpus: 0,
            },
            ..opts()
        };
        collect(&fixture("two-socket-smt"), &o).unwrap_err()
    };
    let e = case(Some("0-4"), Some("4-8"));
    assert!(e.is_config_error());
    assert!(
        matches!(e, InventoryError::CpuSet(CpuSetError::Overlap { ref overlap }) if overlap == "4")
    );
    let e = case(None, Some("8-16")).to_string();
    assert!(
        e.contains("cpu_dedicated_set") && e.contains("16 not online"),
        "{e}"
    );
    let e = case(Some("0-3,x"), None).to_string();
    assert!(e.contains("invalid inclusion expression \"x\""), "{e}");
    let o = InventoryOptions {
        reserved_huge_pages: vec!["node:0,size:2048".into()],
        ..opts()
    };
    let e = collect(&fixture("two-socket-smt"), &o).unwrap_err();
    assert!(
        e.is_config_error() && e.to_string().contains("reserved_huge_pages"),
        "{e}"
    );
    let o = InventoryOptions {
        reserved_huge_pages: vec![
            "node:5,size:2048,count:1".into(),
            "node:0,size:2048,count:5000".into(),
        ],
        ..opts()
    };
    let inv = take("two-socket-smt", &o);
    assert_eq!(inv.warnings.len(), 2, "{:?}", inv.warnings);
}

const PHYSNET_PF: &str =
    r#"{"address":"0000:81:00.0","physical_network":"physnet1","trusted":"true"}"#;

#[test]
fn sriov_pf_with_eight_vfs_on_node1() {
    let inv = take("sriov-pf", &with_specs(&[PHYSNET_PF]));
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
    assert_eq!(inv.sriov.len(), 2);
    let pf = &inv.sriov[0];
    assert_eq!(pf.address, "0000:81:00.0");
    assert_eq!(
        (pf.vendor_id.as_deref(), pf.product_id.as_deref()),
        (Some("8086"), Some("1572"))
    );
    assert_eq!(pf.netdev.as_deref(), Some("enp129s0f0"));
    assert_eq!(
        (pf.numa_node, pf.total_vfs, pf.num_vfs),
        (Some(1), 64, Some(8))
    );
    assert_eq!(pf.vfs.len(), 8);
    for (i, vf) in pf.vfs.iter().enumerate() {
        assert_eq!(vf.index as usize, i);
        assert_eq!(vf.address, format!("0000:81:02.{i}"));
        assert_eq!(vf.product_id.as_deref(), Some("154c"));
        assert_eq!(
            vf.netdev.as_deref(),
            Some(format!("enp129s0f0v{i}").as_str())
        );
        assert_eq!(vf.numa_node, Some(1));
        let m = vf
            .device_spec
            .as_ref()
            .expect("VF matched through its PF address");
        assert_eq!(m.physical_network.as_deref(), Some("physnet1"));
        assert_eq!(m.tags["trusted"], "true");
    }
    // The PF address matches the PF itself too, as in nova.
    assert!(pf.device_spec.is_some());
    let pf1 = &inv.sriov[1];
    assert_eq!(
        (pf1.address.as_str(), pf1.num_vfs, pf1.vfs.len()),
        ("0000:81:00.1", Some(0), 0)
    );
    assert!(pf1.device_spec.is_none());
    assert_eq!(inv.device_spec_count, 1);
}

fn vf_physnets(inv: &HostInventory) -> Vec<Option<String>> {
    inv.sriov[0]
        .vfs
        .iter()
        .map(|v| {
            v.device_spec
                .as_ref()
                .and_then(|m| m.physical_network.clone())
        })
        .collect()
}

#[test]
fn device_spec_forms_match_like_nova() {
    let all = |p: &str| vec![Some(p.to_string()); 8];
    // devname of the PF: the PF address, and so all its VFs.
    let inv = take(
        "sriov-pf",
        &with_specs(&[r#"{"devname":"enp129s0f0","physical_network":"net-dev"}"#]),
    );
    assert_eq!(vf_physnets(&inv), all("net-dev"));
    // devname of one VF: only that VF.
    let inv = take(
        "sriov-pf",
        &with_specs(&[r#"{"devname":"enp129s0f0v3","physical_network":"one"}"#]),
    );
    let got = vf_physnets(&inv);
    assert_eq!(got.iter().filter(|p| p.is_some()).count(), 1);
    assert_eq!(got[3].as_deref(), Some("one"));
    // vendor/product of the VFs.
    let inv = take(
        "sriov-pf",
        &with_specs(&[r#"{"vendor_id":"8086","product_id":"154c","physical_network":"ids"}"#]),
    );
    assert_eq!(vf_physnets(&inv), all("ids"));
    assert!(inv.sriov[0].device_spec.is_none());
    // Glob over VF addresses; the first matching spec wins.
    let inv = take(
        "sriov-pf",
        &with_specs(&[
            r#"{"address":"*:81:02.1"}"#,
            r#"[{"address":"*:81:02.*","physical_network":"glob"}]"#,
        ]),
    );
    let got = vf_physnets(&inv);
    assert_eq!(got[1], None, "spec 0 (no physnet) wins for .1");
    assert_eq!(
        inv.sriov[0].vfs[1].device_spec.as_ref().unwrap().spec_index,
        0
    );
    assert_eq!(got[2].as_deref(), Some("glob"));
    // Regex address.
    let inv = take(
        "sriov-pf",
        &with_specs(&[
            r#"{"address":{"bus":"81","slot":"02","function":"[0-3]"},"physical_network":"re"}"#,
        ]),
    );
    let got = vf_physnets(&inv);
    assert_eq!(got.iter().filter(|p| p.as_deref() == Some("re")).count(), 4);
    // A spec that matches nothing on this host.
    let inv = take(
        "sriov-pf",
        &with_specs(&[r#"{"vendor_id":"15b3"}"#, r#"{"devname":"nosuch0"}"#]),
    );
    assert_eq!(vf_physnets(&inv), vec![None; 8]);
}

#[test]
fn remote_managed_specs() {
    // A VF spec by PF address with the VF product id is accepted, but a
    // remote-managed VF needs a VPD serial number, which these VFs lack.
    let ok = r#"{"address":"0000:81:00.0","product_id":"154c","remote_managed":"true"}"#;
    let inv = take("sriov-pf", &with_specs(&[ok]));
    assert_eq!(vf_physnets(&inv), vec![None; 8]);
    assert!(inv.sriov[0].vfs.iter().all(|v| v.device_spec.is_none()));
    let pf = r#"{"address":"0000:81:00.0","product_id":"1572","remote_managed":"true"}"#;
    match collect(&fixture("sriov-pf"), &with_specs(&[pf])) {
        Err(InventoryError::DeviceSpec(e)) => {
            assert!(
                matches!(e.problem, PciSpecError::RemoteManagedPf { .. }),
                "{e}"
            )
        }
        other => panic!("expected a device_spec error, got {other:?}"),
    }
    let wrong = r#"{"address":"0000:81:00.0","product_id":"abcd","remote_managed":"true"}"#;
    let e = collect(&fixture("sriov-pf"), &with_specs(&[wrong]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not match the expected VF IDs"), "{e}");
}

#[test]
fn bad_device_spec_is_a_config_error() {
    for (spec, want) in [
        (
            r#"{"address":"0000:81:00.0","devname":"enp129s0f0"}"#,
            "devname or address, but not both",
        ),
        (r#"{"address":"0000:81:00.9"}"#, "func"),
        ("{not json", "not valid JSON"),
    ] {
        let e = collect(&fixture("sriov-pf"), &with_specs(&["{}", spec])).unwrap_err();
        assert!(e.is_config_error());
        let text = e.to_string();
        assert!(text.contains("entry 2") && text.contains(want), "{text}");
    }
}

#[test]
fn no_numa_falls_back_to_one_node() {
    let inv = take("no-numa", &opts());
    assert_eq!(inv.numa_source, NumaSource::SingleNodeFallback);
    assert_eq!(inv.numa_nodes.len(), 1);
    let n = &inv.numa_nodes[0];
    assert_eq!((n.id, n.cpus.clone(), n.socket), (0, set("0-3"), Some(0)));
    assert_eq!(
        (n.memory_total_kib, n.memory_free_kib),
        (Some(8 * 1024 * 1024), Some(6 * 1024 * 1024))
    );
    assert_eq!(
        (
            n.hugepages[0].size_kib,
            n.hugepages[0].total,
            n.hugepages[0].free
        ),
        (2048, 128, 100)
    );
    assert!(inv.cpu.cpus.iter().all(|c| c.numa_node == Some(0)));
    assert_eq!(n.siblings, [set("0,2"), set("1,3")]);
}

#[test]
fn broken_tree_degrades_with_warnings() {
    let inv = take(
        "broken",
        &with_specs(&[r#"{"vendor_id":"15b3","physical_network":"p"}"#]),
    );
    let w = inv.warnings.join("\n");
    for needle in [
        "cpu1/topology/physical_package_id",
        "cpu2/topology/core_id: not a CPU topology id",
        "cpu3/topology/thread_siblings_list",
        "proc/cpuinfo",
        "node0/meminfo: no MemTotal line",
        "nr_hugepages: not an unsigned decimal number (content: \"lots\")",
        "hugepages-bogus: not a hugepages-<size>kB directory",
        "node1/cpulist",
        "sriov_numvfs",
        "virtfn1 points to 0000:03:00.2, which does not exist",
        "0000:04:00.0 skipped",
    ] {
        assert!(w.contains(needle), "no warning with {needle:?} in:\n{w}");
    }
    let c = &inv.cpu;
    assert_eq!(c.online, set("0-3"));
    assert_eq!((c.cpus[1].socket, c.cpus[1].core), (None, None));
    assert_eq!(c.cpus[3].siblings, set("3"));
    assert!(c.traits.is_empty() && c.model.is_none());
    let n0 = &inv.numa_nodes[0];
    assert_eq!((n0.memory_total_kib, n0.hugepages.len()), (None, 1));
    assert_eq!(n0.hugepages[0].size_kib, 1048576);
    assert!(inv.numa_nodes[1].cpus.is_empty());
    assert_eq!(inv.sriov.len(), 1);
    let pf = &inv.sriov[0];
    assert_eq!(
        (pf.num_vfs, pf.product_id.as_deref(), pf.numa_node),
        (None, None, None)
    );
    assert_eq!(pf.vfs.len(), 1);
    // The VF has no vendor file, so no spec can match it.
    assert!(pf.vfs[0].device_spec.is_none() && pf.vfs[0].vendor_id.is_none());
}

#[test]
fn unreadable_roots_are_clear_errors() {
    let e = collect(&fixture("broken-online"), &opts()).unwrap_err();
    assert!(!e.is_config_error());
    let text = e.to_string();
    assert!(
        text.contains("cpu/online") && text.contains("zero-three"),
        "{text}"
    );

    let e = collect(Path::new("/nonexistent/novakvm-root"), &opts()).unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/novakvm-root is not a readable directory"),
        "{e}"
    );

    let empty = tempfile::tempdir().unwrap();
    let e = collect(empty.path(), &opts()).unwrap_err().to_string();
    assert!(
        e.contains("cannot determine the online CPUs") && e.contains("No such file"),
        "{e}"
    );

    // A node directory without any nodeN is an error, not a silent fallback.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("sys/devices/system/node")).unwrap();
    std::fs::create_dir_all(t.path().join("sys/devices/system/cpu")).unwrap();
    std::fs::write(t.path().join("sys/devices/system/cpu/online"), "0\n").unwrap();
    let e = collect(t.path(), &opts()).unwrap_err().to_string();
    assert!(e.contains("holds no nodeN directories"), "{e}");

    // Garbage everywhere in a generated tree never panics.
    for garbage in [
        "",
        "\0\0\0",
        "-",
        "0-",
        "99999999999999999999",
        "\u{fffd}",
        "0-65535\n",
    ] {
        let t = tempfile::tempdir().unwrap();
        let cpu = t.path().join("sys/devices/system/cpu");
        std::fs::create_dir_all(cpu.join("cpu0/topology")).unwrap();
        std::fs::write(cpu.join("online"), garbage).unwrap();
        std::fs::write(cpu.join("cpu0/topology/core_id"), garbage).unwrap();
        std::fs::create_dir_all(t.path().join("proc")).unwrap();
        std::fs::write(t.path().join("proc/cpuinfo"), garbage).unwrap();
        std::fs::write(t.path().join("proc/meminfo"), garbage).unwrap();
        let _ = collect(t.path(), &opts());
    }
}

/// Processor count from /proc/cpuinfo, independent of sysfs.
fn cpuinfo_processors() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
}

#[test]
fn this_machine() {
    let inv = collect(Path::new("/"), &opts()).unwrap();
    assert_eq!(inv.cpu.online.len(), cpuinfo_processors());
    assert_eq!(inv.cpu.cpus.len(), inv.cpu.online.len());
    assert!(inv.cpu.sockets >= 1 && inv.cpu.cores >= 1);
    assert!(inv.cpu.model.is_some());
    assert!(!inv.numa_nodes.is_empty());
    let covered: BTreeSet<u32> = inv
        .numa_nodes
        .iter()
        .flat_map(|n| n.cpus.iter().copied())
        .collect();
    assert_eq!(covered, inv.cpu.online);
    let total: u64 = inv
        .numa_nodes
        .iter()
        .filter_map(|n| n.memory_total_kib)
        .sum();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_total: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    // Node totals need not equal MemTotal (memory hot-plug and ballooning on
    // this VM move them), but they are of the same size.
    assert!(
        total > 0 && total <= mem_total + mem_total / 10,
        "nodes {total} KiB vs MemTotal {mem_total} KiB"
    );
    assert!(inv.disk.total_bytes >= inv.disk.free_bytes);
    if Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        assert!(inv
            .numa_nodes
            .iter()
            .all(|n| n.hugepages.iter().any(|h| h.size_kib == 2048)));
    }
}

#[test]
fn options_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("c.toml");
    std::fs::write(
        &toml,
        "[DEFAULT]\nstate_path = \"/nonexistent-novakvm/nk\"\nreserved_host_cpus = 0\n[compute]\ncpu_dedicated_set = \"2-3\"\nreserved_huge_pages = [\"node:1,size:2048,count:8\"]\n[pci]\ndevice_spec = ['{\"vendor_id\":\"8086\"}']\n",
    )
    .unwrap();
    let cfg = novakvm::config::load_from_files(Some(&toml), &[]).unwrap();
    let o = InventoryOptions::from_config(&cfg);
    assert_eq!(
        o.instances_path,
        Path::new("/nonexistent-novakvm/nk/instances")
    );
    assert_eq!(o.cpu_sets.dedicated.as_deref(), Some("2-3"));
    assert_eq!(o.cpu_sets.shared, None);
    assert_eq!(o.reserved_huge_pages, ["node:1,size:2048,count:8"]);
    assert_eq!(o.device_spec, [r#"{"vendor_id":"8086"}"#]);
    let inv = collect(&fixture("sriov-pf"), &o).unwrap();
    assert_eq!(inv.cpu_sets.pcpu_spec, "2-3");
    assert_eq!(inv.cpu_sets.vcpu_spec, "");
    assert_eq!(inv.disk.measured_path, Path::new("/"));
    assert_eq!(inv.numa_nodes[1].hugepages[0].reserved, 8);
    assert!(inv.sriov[0].vfs.iter().all(|v| v.device_spec.is_some()));
}
