//! Hostile-driver tests of the queue handling: hand-made and random (proptest) descriptor
//! tables and rings in a real `GuestMemoryMmap`, served by the virtio-blk backend.

use std::sync::Arc;

use proptest::prelude::*;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::block::{Block, RequestHeader, S_IOERR, S_OK, S_UNSUPP, T_FLUSH, T_GET_ID, T_IN, T_OUT};
use super::Backend;
use crate::vmm::memory::GuestMem;

const MEM: usize = 1 << 20;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x3000;
const USED: u64 = 0x4000;
const HDR: u64 = 0x8000;
const DATA: u64 = 0x10000;
const STATUS: u64 = 0x9000;
const NEXT: u16 = 1;
const WRITE: u16 = 2;
const SECTORS: u64 = 64;

fn mem() -> GuestMem {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]).unwrap()
}

fn disk(read_only: bool) -> (tempfile::NamedTempFile, Block) {
    let f = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..SECTORS * 512).map(|i| (i % 251) as u8).collect();
    std::fs::write(f.path(), data).unwrap();
    let b = Block::open(f.path(), read_only, "prop").unwrap();
    (f, b)
}

fn queue(size: u16) -> Queue {
    let mut q = Queue::new(256).unwrap();
    q.try_set_size(size).unwrap();
    q.try_set_desc_table_address(GuestAddress(DESC)).unwrap();
    q.try_set_avail_ring_address(GuestAddress(AVAIL)).unwrap();
    q.try_set_used_ring_address(GuestAddress(USED)).unwrap();
    q.set_ready(true);
    q
}

fn desc(m: &GuestMem, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&addr.to_le_bytes());
    b[8..12].copy_from_slice(&len.to_le_bytes());
    b[12..14].copy_from_slice(&flags.to_le_bytes());
    b[14..16].copy_from_slice(&next.to_le_bytes());
    m.write_slice(&b, GuestAddress(DESC + 16 * u64::from(i)))
        .unwrap();
}

fn offer(m: &GuestMem, heads: &[u16], idx: u16) {
    for (i, h) in heads.iter().enumerate() {
        m.write_obj(*h, GuestAddress(AVAIL + 4 + 2 * i as u64))
            .unwrap();
    }
    m.write_obj(idx, GuestAddress(AVAIL + 2)).unwrap();
}

fn used_idx(m: &GuestMem) -> u16 {
    m.read_obj(GuestAddress(USED + 2)).unwrap()
}

fn header(m: &GuestMem, kind: u32, sector: u64) {
    let h = RequestHeader {
        kind,
        reserved: 0,
        sector,
    };
    m.write_obj(h, GuestAddress(HDR)).unwrap();
}

/// header, data (len, device-writable if `write`), status.
fn request(m: &GuestMem, kind: u32, sector: u64, len: u32, write: bool) {
    header(m, kind, sector);
    m.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
    desc(m, 0, HDR, 16, NEXT, 1);
    desc(m, 1, DATA, len, NEXT | if write { WRITE } else { 0 }, 2);
    desc(m, 2, STATUS, 1, WRITE, 0);
    offer(m, &[0], 1);
}

fn status(m: &GuestMem) -> u8 {
    m.read_obj(GuestAddress(STATUS)).unwrap()
}

fn run(b: &mut Block, m: &GuestMem, q: &mut Queue) -> Result<bool, super::VirtioError> {
    b.process(m, std::slice::from_mut(q), 0)
}

#[test]
fn good_requests() {
    let m = mem();
    let (f, mut b) = disk(false);
    let mut q = queue(8);
    request(&m, T_IN, 2, 1024, true);
    assert!(run(&mut b, &m, &mut q).unwrap());
    assert_eq!(status(&m), S_OK);
    let mut got = vec![0u8; 1024];
    m.read_slice(&mut got, GuestAddress(DATA)).unwrap();
    let want: Vec<u8> = (1024..2048u64).map(|i| (i % 251) as u8).collect();
    assert_eq!(got, want);
    assert_eq!(used_idx(&m), 1);
    // Used length: data + status byte.
    let len: u32 = m.read_obj(GuestAddress(USED + 8)).unwrap();
    assert_eq!(len, 1025);

    let mut q = queue(8);
    m.write_slice(&[0x42; 512], GuestAddress(DATA)).unwrap();
    request(&m, T_OUT, SECTORS - 1, 512, false);
    assert!(run(&mut b, &m, &mut q).unwrap());
    assert_eq!(status(&m), S_OK);
    let on_disk = std::fs::read(f.path()).unwrap();
    assert_eq!(on_disk.len() as u64, SECTORS * 512);
    assert!(on_disk[(SECTORS as usize - 1) * 512..]
        .iter()
        .all(|&x| x == 0x42));

    for (kind, want) in [(T_FLUSH, S_OK), (T_GET_ID, S_OK), (77, S_UNSUPP)] {
        let mut q = queue(8);
        request(&m, kind, 0, 20, true);
        run(&mut b, &m, &mut q).unwrap();
        assert_eq!(status(&m), want, "type {kind}");
    }
    let mut id = [0u8; 4];
    m.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id, b"prop");
}

#[test]
fn out_of_bounds_and_malformed_requests_get_ioerr() {
    let m = mem();
    let (f, mut b) = disk(false);
    for (kind, sector, len, write) in [
        (T_IN, SECTORS, 512, true),            // just past the end
        (T_IN, SECTORS - 1, 1024, true),       // straddles the end
        (T_OUT, SECTORS, 512, false),          // write past the end
        (T_IN, u64::MAX / 512 + 1, 512, true), // offset overflows
        (T_IN, u64::MAX, 512, true),
        (T_IN, 0, 100, true), // not a whole sector
        (T_OUT, 0, 513, false),
        (T_IN, 0, 0x8_0000, true), // oversized: 512 KiB > 32 KiB disk
    ] {
        let mut q = queue(8);
        request(&m, kind, sector, len, write);
        assert!(run(&mut b, &m, &mut q).unwrap());
        assert_eq!(status(&m), S_IOERR, "{kind} {sector} {len}");
    }
    assert_eq!(std::fs::metadata(f.path()).unwrap().len(), SECTORS * 512);

    // Header shorter than 16 bytes.
    let mut q = queue(8);
    request(&m, T_IN, 0, 512, true);
    desc(&m, 0, HDR, 8, NEXT, 1);
    run(&mut b, &m, &mut q).unwrap();
    assert_eq!(status(&m), S_IOERR);

    // Read-only disk: writes fail, reads work.
    let (_f, mut ro) = disk(true);
    assert_ne!(ro.features() & super::block::F_RO, 0);
    let mut q = queue(8);
    request(&m, T_OUT, 0, 512, false);
    run(&mut ro, &m, &mut q).unwrap();
    assert_eq!(status(&m), S_IOERR);
    let mut q = queue(8);
    request(&m, T_IN, 0, 512, true);
    run(&mut ro, &m, &mut q).unwrap();
    assert_eq!(status(&m), S_OK);
}

#[test]
fn protocol_violations_fail_the_queue() {
    let m = mem();
    let (_f, mut b) = disk(false);
    // Data buffer outside guest memory.
    let mut q = queue(8);
    request(&m, T_IN, 0, 512, true);
    desc(&m, 1, MEM as u64 + 0x1000, 512, NEXT | WRITE, 2);
    assert!(run(&mut b, &m, &mut q).is_err());
    // Buffer crossing the end of guest memory.
    let mut q = queue(8);
    request(&m, T_IN, 0, 512, true);
    desc(&m, 1, MEM as u64 - 100, 512, NEXT | WRITE, 2);
    assert!(run(&mut b, &m, &mut q).is_err());
    // Available index ahead of the ring by more than the queue size.
    let mut q = queue(8);
    request(&m, T_IN, 0, 512, true);
    offer(&m, &[0], 9);
    assert!(run(&mut b, &m, &mut q).is_err());
    // Loop in the chain: 0 -> 1 -> 0 ... without a writable status byte.
    let mut q = queue(8);
    header(&m, T_IN, 0);
    desc(&m, 0, HDR, 16, NEXT, 1);
    desc(&m, 1, DATA, 512, NEXT, 0);
    offer(&m, &[0], 1);
    assert!(run(&mut b, &m, &mut q).is_err());
    // Loop through writable descriptors: terminates (the chain is cut at the queue size).
    let mut q = queue(4);
    desc(&m, 0, HDR, 16, NEXT, 1);
    desc(&m, 1, DATA, 512, NEXT | WRITE, 2);
    desc(&m, 2, STATUS, 1, NEXT | WRITE, 1);
    offer(&m, &[0], 1);
    let _ = run(&mut b, &m, &mut q);
    // Head index beyond the queue size.
    let mut q = queue(4);
    offer(&m, &[200], 1);
    assert!(run(&mut b, &m, &mut q).is_err());
}

#[test]
fn queue_setup_checks() {
    let mut q = Queue::new(256).unwrap();
    for bad in [0u16, 3, 6, 100, 257, 512] {
        assert!(q.try_set_size(bad).is_err(), "{bad}");
    }
    assert!(q.try_set_desc_table_address(GuestAddress(0x1001)).is_err());
    let m = Arc::new(mem());
    let mut q = queue(256);
    q.try_set_used_ring_address(GuestAddress(MEM as u64 - 8))
        .unwrap();
    assert!(!q.is_valid(&*m));
}

fn addr_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..0x400).prop_map(|o| DATA + o * 64),
        Just(HDR),
        Just(STATUS),
        Just(MEM as u64 - 16),
        Just(MEM as u64),
        Just(u64::MAX - 8),
        any::<u64>(),
    ]
}

fn len_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(16),
        Just(512),
        Just(4096),
        Just(0x8_0000),
        any::<u32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random descriptor tables, rings and headers: never a panic or a hang, the image
    /// never grows, and a successful pass consumed exactly the offered chains.
    #[test]
    fn random_queues_never_break_the_device(
        size_pow in 0u32..5,
        descs in proptest::collection::vec(
            (addr_strategy(), len_strategy(), 0u16..8, 0u16..20),
            1..16,
        ),
        heads in proptest::collection::vec(0u16..20, 0..16),
        idx in prop_oneof![0u16..20, any::<u16>()],
        kind in prop_oneof![Just(T_IN), Just(T_OUT), Just(T_FLUSH), Just(T_GET_ID), any::<u32>()],
        sector in prop_oneof![0u64..80, any::<u64>()],
        read_only in any::<bool>(),
    ) {
        let size = 1u16 << size_pow;
        let m = mem();
        let (f, mut b) = disk(read_only);
        header(&m, kind, sector);
        for (i, &(a, l, fl, n)) in descs.iter().enumerate() {
            desc(&m, i as u16, a, l, fl, n);
        }
        offer(&m, &heads, idx);
        let mut q = queue(size);
        let r = run(&mut b, &m, &mut q);
        prop_assert_eq!(std::fs::metadata(f.path()).unwrap().len(), SECTORS * 512);
        if idx > size {
            prop_assert!(r.is_err());
        }
        if r.is_ok() {
            prop_assert_eq!(used_idx(&m), idx);
        }
    }
}

fn ioapic_irr(vm: &kvm_ioctls::VmFd) -> u32 {
    let mut chip = kvm_bindings::kvm_irqchip {
        chip_id: kvm_bindings::KVM_IRQCHIP_IOAPIC,
        ..Default::default()
    };
    vm.get_irqchip(&mut chip).unwrap();
    // SAFETY: for KVM_IRQCHIP_IOAPIC the kernel filled the `ioapic` member of the union.
    unsafe { chip.chip.ioapic.irr }
}

/// The whole device on a real KVM VM: programmed through the PCI bus, a request served by
/// the worker raises the slot's INTx line (IOAPIC IRR bit of its GSI) through the irqfd.
#[test]
fn used_buffers_raise_intx_on_the_in_kernel_ioapic() {
    use crate::vmm::devices::pci::{default_bar, intx_gsi, PciBus};
    let kvm = crate::vmm::kvm::open().unwrap();
    let vm = crate::vmm::kvm::create_vm(&kvm).unwrap();
    let m = Arc::new(mem());
    crate::vmm::kvm::register_memory(&vm, &m).unwrap();
    let bus = PciBus::new();
    let (_f, blk) = disk(false);
    let slot = super::attach("virtio-blk-test", blk, &vm, &bus, &m).unwrap();
    let (bar, gsi) = (default_bar(slot), intx_gsi(slot));
    let w =
        |off: u64, v: u32, len: usize| assert!(bus.mmio_write(bar + off, &v.to_le_bytes()[..len]));
    let r = |off: u64| {
        let mut b = [0u8; 1];
        assert!(bus.mmio_read(bar + off, &mut b));
        b[0]
    };
    w(0x14, 0, 1);
    w(0x14, 3, 1);
    w(0x08, 1, 4);
    w(0x0c, 1, 4); // VERSION_1
    w(0x14, 0xb, 1);
    w(0x16, 0, 2);
    w(0x18, 8, 2);
    w(0x20, DESC as u32, 4);
    w(0x28, AVAIL as u32, 4);
    w(0x30, USED as u32, 4);
    w(0x1c, 1, 2);
    w(0x14, 0xf, 1);
    assert_eq!(r(0x14), 0xf);
    assert_eq!(ioapic_irr(&vm) & (1 << gsi), 0);
    request(&m, T_IN, 1, 512, true);
    w(super::pci::NOTIFY_OFFSET, 0, 2);
    let t0 = std::time::Instant::now();
    while used_idx(&m) != 1 || ioapic_irr(&vm) & (1 << gsi) == 0 {
        assert!(
            t0.elapsed().as_secs() < 10,
            "no used buffer or no interrupt"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(status(&m), S_OK);
    assert_eq!(r(super::pci::ISR_OFFSET), 1);
    bus.clear();
}

/// virtio-net queues with hostile chains on a real tap (needs CAP_NET_ADMIN): bad TX
/// frames are dropped, TX buffers outside memory fail the device, RX chains that cannot
/// hold a frame get it dropped, RX buffers outside memory fail the device.
#[test]
fn net_queues_with_hostile_chains() {
    use super::net::Net;
    use super::tap::Tap;
    let tap = Tap::open("nkvunit0").unwrap();
    let up = std::process::Command::new("ip")
        .args(["link", "set", "nkvunit0", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    let mut net = Net::new(tap, [0x52, 0x54, 0, 0, 0, 7]);
    assert_eq!(&net.config()[..6], &[0x52, 0x54, 0, 0, 0, 7]);
    let m = mem();
    let tx = |net: &mut Net, q: &mut Queue| {
        let mut qs = [Queue::new(256).unwrap(), std::mem::take(q)];
        let r = net.process(&m, &mut qs, 1);
        *q = std::mem::take(&mut qs[1]);
        r
    };
    // Too short for a virtio_net_hdr: dropped, buffer returned.
    let mut q = queue(8);
    desc(&m, 0, DATA, 4, 0, 0);
    offer(&m, &[0], 1);
    assert!(tx(&mut net, &mut q).unwrap());
    assert_eq!(used_idx(&m), 1);
    // Oversized (2 x 64 KiB): dropped.
    let mut q = queue(8);
    desc(&m, 0, DATA, 0x10000, NEXT, 1);
    desc(&m, 1, DATA, 0x10000, 0, 0);
    offer(&m, &[0], 1);
    assert!(tx(&mut net, &mut q).unwrap());
    // A good frame goes out.
    let mut q = queue(8);
    m.write_slice(&[0u8; 12 + 60], GuestAddress(DATA)).unwrap();
    desc(&m, 0, DATA, 72, 0, 0);
    offer(&m, &[0], 1);
    assert!(tx(&mut net, &mut q).unwrap());
    // Outside guest memory: the device fails.
    let mut q = queue(8);
    desc(&m, 0, MEM as u64 + 4096, 72, 0, 0);
    offer(&m, &[0], 1);
    assert!(tx(&mut net, &mut q).is_err());
    // RX with nothing on the tap: nothing used, no error.
    let q = queue(8);
    desc(&m, 0, DATA, 2048, WRITE, 0);
    offer(&m, &[0], 1);
    let mut qs = [q, Queue::new(256).unwrap()];
    assert!(!net.process(&m, &mut qs, 0).unwrap());
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "nkvunit0"])
        .status();
}
