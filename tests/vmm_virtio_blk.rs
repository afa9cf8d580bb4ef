//! virtio-blk end to end: the test guest's polled driver on the real binary and /dev/kvm
//! reads sector 0 of raw images, writes sector 1, is refused on a read-only disk and past
//! the end of a disk; the host checks the image files afterwards.

mod vmm_common;

use std::path::Path;

use serde_json::json;
use vmm_common::*;

const PATTERN: &[u8] = b"novakvm sector 1 ";

fn image(path: &Path, sectors: usize, head: &[u8; 16]) {
    let mut d = vec![0u8; sectors * 512];
    d[..16].copy_from_slice(head);
    // Sector 1 starts as something the guest must overwrite.
    d[512..1024].fill(0xa5);
    std::fs::write(path, d).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn two_disks_read_write_and_read_only() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.img"), d.path().join("b.img"));
    image(&a, 2048, b"NOVAKVM-DISK-A!!");
    image(&b, 64, b"second disk 1234");
    let mut s = spec(d.path(), 1, 32, "blk=1 exit=poweroff");
    s["disks"] = json!([
        {"path": a, "serial": "disk-a"},
        {"path": b, "read_only": true},
    ]);
    let mut vm = Vmm::start(d.path(), &s);
    let st = vm.wait();
    let c = vm.console();
    for want in [
        "blk0 capacity=2048 ro=0\n".to_string(),
        "blk0 id=disk-a\n".to_string(),
        format!("blk0 read sector0={}\n", hex(b"NOVAKVM-DISK-A!!")),
        "blk0 wrote sector1\n".to_string(),
        "blk0 read past end status=1\n".to_string(),
        "blk1 capacity=64 ro=1\n".to_string(),
        "blk1 id=novakvm-disk1\n".to_string(),
        format!("blk1 read sector0={}\n", hex(b"second disk 1234")),
        // VIRTIO_BLK_S_IOERR for a write to the read-only disk.
        "blk1 write error status=1\n".to_string(),
        "blk1 read past end status=1\n".to_string(),
    ] {
        assert!(
            c.contains(&format!("novakvm-test-guest: {want}")),
            "missing {want:?} in:\n{c}"
        );
    }
    assert_eq!(st.code(), Some(0), "{c}");
    let a = std::fs::read(&a).unwrap();
    let want: Vec<u8> = PATTERN.iter().copied().cycle().take(512).collect();
    assert_eq!(&a[512..1024], &want[..]);
    assert_eq!(&a[..16], b"NOVAKVM-DISK-A!!");
    let b = std::fs::read(&b).unwrap();
    assert!(
        b[512..1024].iter().all(|&x| x == 0xa5),
        "read-only disk was written"
    );
}

#[test]
fn disk_with_odd_size_rounds_capacity_down() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("odd.img");
    let mut data = vec![0x11u8; 10 * 512 + 100];
    data[..16].copy_from_slice(b"odd sized image!");
    std::fs::write(&a, &data).unwrap();
    let mut s = spec(d.path(), 1, 32, "blk=1 exit=poweroff");
    s["disks"] = json!([{"path": a}]);
    let mut vm = Vmm::start(d.path(), &s);
    let st = vm.wait();
    let c = vm.console();
    assert!(c.contains("blk0 capacity=10 ro=0\n"), "{c}");
    assert!(c.contains("blk0 read past end status=1\n"), "{c}");
    assert_eq!(st.code(), Some(0), "{c}");
    // The trailing partial sector is never touched.
    let after = std::fs::read(&a).unwrap();
    assert_eq!(&after[10 * 512..], &data[10 * 512..]);
}

#[test]
fn bad_disk_specs_are_refused_before_boot() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    std::fs::write(&img, vec![0u8; 4096]).unwrap();
    for (disks, needle) in [
        (
            json!([{"path": d.path().join("missing.img")}]),
            "disks.path",
        ),
        (json!([{"path": d.path()}]), "disks.path"),
        (
            json!([{"path": img, "serial": "this serial is far too long"}]),
            "disks.serial",
        ),
        (json!([{"path": img, "bogus": 1}]), "unknown field"),
        (json!(vec![json!({"path": img}); 32]), "at most 31"),
    ] {
        let mut s = spec(d.path(), 1, 16, "exit=poweroff");
        s["disks"] = disks;
        let mut vm = Vmm::start(d.path(), &s);
        let st = vm.wait();
        let err = vm.stderr();
        assert_eq!(st.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn hostile_driver_gets_refusals_and_needs_reset_then_recovers() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.img");
    image(&a, 64, b"hostile driver!!");
    let mut s = spec(d.path(), 1, 32, "virtio_hostile=1 exit=poweroff");
    s["disks"] = json!([{"path": a}]);
    let mut vm = Vmm::start(d.path(), &s);
    let st = vm.wait();
    let c = vm.console();
    for want in [
        // FEATURES_OK withheld for a feature the device did not offer.
        "hostile unoffered_features_ok=0\n",
        // DEVICE_NEEDS_RESET for: queue size 3, a buffer outside guest memory, the
        // available index jumping by 200, a descriptor loop without a status byte.
        "hostile qsize3_needs_reset=1\n",
        "hostile bad_addr_needs_reset=1\n",
        "hostile avail_jump_needs_reset=1\n",
        "hostile loop_needs_reset=1\n",
        // A reset brings the device back.
        "hostile recovered_read_status=0\n",
        "exit=poweroff\n",
    ] {
        assert!(
            c.contains(&format!("novakvm-test-guest: {want}")),
            "missing {want:?} in:\n{c}"
        );
    }
    assert_eq!(st.code(), Some(0), "{c}");
}
