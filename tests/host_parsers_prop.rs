//! Property tests for the CPU-set and `[pci] device_spec` parsers.

use std::collections::BTreeSet;

use novakvm::host::cpuset::{format_cpu_spec, parse_cpu_spec, MAX_CPU_ID};
use novakvm::host::pci_spec::{DeviceSpecs, PciAddress, PciDeviceFacts, SpecOptions};
use novakvm::host::sysfs::SysRoot;
use proptest::prelude::*;

fn root() -> SysRoot {
    SysRoot::new("/nonexistent-novakvm-root")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cpu_spec_round_trips(cpus in proptest::collection::btree_set(0u32..=MAX_CPU_ID, 0..64)) {
        let text = format_cpu_spec(&cpus);
        prop_assert_eq!(parse_cpu_spec(&text).unwrap(), cpus.clone());
        // Formatting is canonical: format(parse(format(x))) == format(x).
        prop_assert_eq!(format_cpu_spec(&parse_cpu_spec(&text).unwrap()), text);
    }

    #[test]
    fn cpu_spec_exclusions(base in proptest::collection::btree_set(0u32..200, 1..32),
                           excluded in proptest::collection::btree_set(0u32..200, 0..8)) {
        let mut text = format_cpu_spec(&base);
        for e in &excluded {
            text.push_str(&format!(",^{e}"));
        }
        let want: BTreeSet<u32> = base.difference(&excluded).copied().collect();
        prop_assert_eq!(parse_cpu_spec(&text).unwrap(), want);
    }

    #[test]
    fn cpu_spec_never_panics(s in "\\PC*") {
        let _ = parse_cpu_spec(&s);
    }

    #[test]
    fn cpu_spec_never_panics_on_near_misses(s in "[0-9^, _+-]{0,24}") {
        if let Ok(set) = parse_cpu_spec(&s) {
            prop_assert!(set.iter().all(|&c| c <= MAX_CPU_ID));
        }
    }

    #[test]
    fn pci_address_round_trips(d in 0u32..=0xffff, b in 0u32..=0xff, s in 0u32..=0x1f, f in 0u32..=7) {
        let text = format!("{d:04x}:{b:02x}:{s:02x}.{f}");
        prop_assert_eq!(PciAddress::parse(&text).unwrap().to_string(), text.clone());
        // Upper case and short forms normalise to the same address.
        let loose = format!("{d:X}:{b:X}:{s:X}.{f}");
        prop_assert_eq!(PciAddress::parse(&loose).unwrap().to_string(), text);
    }

    #[test]
    fn device_spec_round_trips(d in 0u32..=0xffff, b in 0u32..=0xff, s in 0u32..=0x1f, f in 0u32..=7,
                               wild in proptest::collection::vec(any::<bool>(), 4),
                               vendor in 0u32..=0xffff, product in 0u32..=0xffff,
                               physnet in "[a-z][a-z0-9_-]{0,12}") {
        let field = |w: bool, v: String| if w { "*".to_string() } else { v };
        let address = format!(
            "{}:{}:{}.{}",
            field(wild[0], format!("{d:x}")),
            field(wild[1], format!("{b:x}")),
            field(wild[2], format!("{s:x}")),
            field(wild[3], format!("{f}")),
        );
        let spec = serde_json::json!({
            "address": address,
            "vendor_id": format!("{vendor:x}"),
            "product_id": format!("{product:X}"),
            "physical_network": physnet,
        });
        let specs = DeviceSpecs::parse(&[spec.to_string()], &root(), SpecOptions::default()).unwrap();
        prop_assert_eq!(specs.specs.len(), 1);
        let parsed = &specs.specs[0];
        let vendor_hex = format!("{vendor:04x}");
        let product_hex = format!("{product:04x}");
        prop_assert_eq!(&parsed.vendor_id, &vendor_hex);
        prop_assert_eq!(&parsed.product_id, &product_hex);
        prop_assert_eq!(parsed.physical_network(), Some(physnet.as_str()));
        let dev_addr = format!("{d:04x}:{b:02x}:{s:02x}.{f}");
        let facts = PciDeviceFacts {
            vendor_id: &vendor_hex,
            product_id: &product_hex,
            address: &dev_addr,
            parent_addr: None,
            card_serial_number: None,
        };
        let m = specs.device_assignable(&facts);
        prop_assert!(m.is_some(), "spec {} should match {}", spec, dev_addr);
        let got = m.and_then(|m| m.physical_network);
        prop_assert_eq!(got.as_deref(), Some(physnet.as_str()));
        // Another function number only matches through a wildcard function.
        let other = format!("{d:04x}:{b:02x}:{s:02x}.{}", (f + 1) % 8);
        let other_facts = PciDeviceFacts { address: &other, ..facts };
        prop_assert_eq!(specs.device_assignable(&other_facts).is_some(), wild[3]);
    }

    #[test]
    fn device_spec_never_panics(s in "\\PC*") {
        let _ = DeviceSpecs::parse(&[s], &root(), SpecOptions::default());
    }

    #[test]
    fn device_spec_never_panics_on_json_shapes(
        key in prop::sample::select(vec!["address", "devname", "vendor_id", "product_id", "managed", "remote_managed", "one_time_use", "physical_network"]),
        value in prop_oneof![
            "\\PC{0,12}".prop_map(serde_json::Value::from),
            "[0-9a-fx*:.\\[\\]()^$|+?{}-]{0,16}".prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            proptest::collection::btree_map("domain|bus|slot|function|x", "[0-9a-f.*()\\[\\]]{0,6}", 0..4)
                .prop_map(|m| serde_json::to_value(m).unwrap()),
        ],
    ) {
        let spec = serde_json::json!({ key: value });
        let _ = DeviceSpecs::parse(&[spec.to_string()], &root(), SpecOptions::default());
        let list = serde_json::json!([spec, 5]);
        prop_assert!(DeviceSpecs::parse(&[list.to_string()], &root(), SpecOptions::default()).is_err());
    }
}
