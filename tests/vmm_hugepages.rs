//! Hugepage-backed guest memory (2 MiB pages via memfd MFD_HUGETLB), seen from the host,
//! and a clear error with nothing left allocated when there are not enough pages.
//! The test reserves pages through /proc/sys/vm/nr_hugepages and restores the old value.

mod vmm_common;

use serde_json::json;
use vmm_common::*;

const NR: &str = "/proc/sys/vm/nr_hugepages";
const FREE: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";

fn read_num(p: &str) -> u64 {
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

struct Restore(u64);
impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(NR, self.0.to_string());
    }
}

/// Sum of `Size` of mappings with 2 MiB kernel pages in /proc/<pid>/smaps, in kB.
fn huge_mapped_kb(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut total = 0;
    let mut size = 0;
    for l in smaps.lines() {
        if let Some(v) = l.strip_prefix("Size:") {
            size = v.trim().trim_end_matches(" kB").trim().parse().unwrap();
        } else if let Some(v) = l.strip_prefix("KernelPageSize:") {
            if v.trim() == "2048 kB" {
                total += size;
            }
        }
    }
    total
}

#[test]
fn hugepage_backed_guest_and_not_enough_pages() {
    let old = read_num(NR);
    let _restore = Restore(old);
    std::fs::write(NR, (old + 40).to_string()).unwrap();
    let free0 = read_num(FREE);
    assert!(free0 >= 40, "could not reserve hugepages (free {free0})");

    // 64 MiB = 32 pages, preallocated: the host sees them in use while the guest runs.
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), 1, 64, "touch=1 exit=halt");
    s["memory"] = json!({"size_mib": 64, "backing": "hugepages_2m", "prealloc": true});
    let mut vm = Vmm::start(d.path(), &s);
    let c = vm.wait_console("exit=halt");
    assert!(c.contains("novakvm-test-guest: mem_mib=64 vcpus=1"), "{c}");
    assert!(c.contains("mem_ok"), "{c}");
    assert_eq!(huge_mapped_kb(vm.child.id()), 64 * 1024);
    assert_eq!(free0 - read_num(FREE), 32);
    let mut ctl = vm.connect();
    assert_eq!(ctl.req(json!({"cmd": "power_off"}))["ok"], true);
    assert_eq!(vm.wait().code(), Some(6));
    assert_eq!(read_num(FREE), free0, "pages not returned");

    // More pages than exist: setup error 3, clear message, nothing left allocated.
    let free = read_num(FREE);
    let want_mib = (free + 8) * 2;
    let (st, _, err) = run_direct(&[
        "--kernel",
        GUEST,
        "--memory-mib",
        &want_mib.to_string(),
        "--hugepages",
        "2M",
        "--cmdline",
        "exit=poweroff",
    ]);
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("not enough 2M hugepages"), "{err}");
    assert_eq!(read_num(FREE), free);
    assert_eq!(
        read_num("/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages"),
        0
    );

    // Two NUMA cells on hugepages, the first bound to host node 0.
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), 2, 32, "touch=1 exit=poweroff");
    s["memory"] = json!({"size_mib": 32, "backing": "hugepages_2m"});
    s["numa"] = json!([
        {"cpus": [0], "memory_mib": 16, "host_node": 0},
        {"cpus": [1], "memory_mib": 16},
    ]);
    let mut vm = Vmm::start(d.path(), &s);
    assert_eq!(vm.wait().code(), Some(0), "{}", vm.stderr());
    let c = vm.console();
    assert!(
        c.contains("mem_mib=32 vcpus=2") && c.contains("mem_ok"),
        "{c}"
    );
    // With two cells the XSDT also lists an SRAT; the guest still finds the MADT.
    assert!(c.contains("mp_cpus=2 madt_cpus=2 "), "{c}");
}

#[test]
fn one_gib_pages_and_ram_above_the_mmio_gap() {
    // 1 GiB pages: reserve one page (fails on hosts without 1 GiB page support or memory).
    let nr = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";
    let free = "/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages";
    let old = read_num(nr);
    let _restore = Restore1g(old);
    let _ = std::fs::write(nr, (old + 1).to_string());
    if read_num(free) == 0 {
        eprintln!("SKIP: cannot reserve a 1 GiB hugepage on this host");
        return;
    }
    let (st, out, err) = run_direct(&[
        "--kernel",
        GUEST,
        "--memory-mib",
        "1024",
        "--hugepages",
        "1G",
        "--cmdline",
        "exit=poweroff",
    ]);
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(out.contains("mem_mib=1024 vcpus=1"), "{out}");
    drop(_restore);

    // 4.5 GiB of anonymous RAM: 3 GiB below the MMIO gap, 1.5 GiB from 4 GiB up.
    let (st, out, err) = run_direct(&[
        "--kernel",
        GUEST,
        "--memory-mib",
        "4608",
        "--vcpus",
        "2",
        "--cmdline",
        "exit=poweroff",
    ]);
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(out.contains("mem_mib=4608 vcpus=2"), "{out}");
}

struct Restore1g(u64);
impl Drop for Restore1g {
    fn drop(&mut self) {
        let _ = std::fs::write(
            "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages",
            self.0.to_string(),
        );
    }
}
