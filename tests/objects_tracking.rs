//! Change tracking, tolerance of unknown data, and rejection of bad input
//! for novakvm::objects.

use std::time::{Duration, UNIX_EPOCH};

use novakvm::objects::action::{apply_updates, conductor_updates, ActionReply};
use novakvm::objects::compute::{CpuInfo, CpuTopology, NumaCellSpec};
use novakvm::objects::views::{AnyView, ComputeNode, Flavor, Instance, NUMATopology, Service};
use novakvm::objects::{isotime, registry, NovaObject, ObjectError, ObjectView};
use proptest::prelude::*;
use serde_json::{json, Value};

fn service_prim() -> Value {
    json!({
        "nova_object.name": "Service",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.22",
        "nova_object.data": {"id": 4, "host": "h1", "binary": "nova-compute",
                             "report_count": 3, "version": 74},
    })
}

#[test]
fn setting_a_field_records_it_once_in_order() {
    let mut s = Service::from_value(&service_prim()).unwrap();
    assert!(s.object().own_changes().is_empty());
    assert!(s.to_value().get("nova_object.changes").is_none());
    s.set_report_count(Some(4));
    s.set_disabled(Some(true));
    s.set_report_count(Some(5));
    assert_eq!(s.object().own_changes(), ["report_count", "disabled"]);
    assert_eq!(
        s.to_value()["nova_object.changes"],
        json!(["report_count", "disabled"])
    );
    let ch = s.object().changes();
    assert_eq!(
        Value::Object(ch),
        json!({"report_count": 5, "disabled": true})
    );
    // Setting an equal value still counts, like Python setattr.
    s.object_mut().reset_changes();
    s.set_host(Some("h1"));
    assert_eq!(s.object().own_changes(), ["host"]);
    // Unsetting drops the mark; resetting removes the key from the wire form.
    s.object_mut().unset("host");
    assert!(s.host().is_none());
    assert!(s.object().own_changes().is_empty());
}

#[test]
fn nested_changes_bubble_up_like_obj_what_changed() {
    let mut inst = Instance::empty();
    let mut flavor = Flavor::empty();
    flavor.set_memory_mb(Some(512));
    inst.set_flavor(Some(&flavor));
    inst.object_mut().reset_changes();
    // The Flavor still has its own change mark, so Instance reports `flavor`.
    assert_eq!(inst.object().what_changed(), ["flavor"]);
    assert!(inst.object().own_changes().is_empty());
    // ...and writes it in nova_object.changes, as oslo's obj_to_primitive does.
    assert_eq!(inst.to_value()["nova_object.changes"], json!(["flavor"]));
    inst.object_mut().reset_changes_recursive();
    assert!(inst.object().what_changed().is_empty());
    assert_eq!(inst.flavor().unwrap().unwrap().memory_mb(), Some(512));
}

#[test]
fn unknown_fields_and_keys_are_kept() {
    let mut v = service_prim();
    v["nova_object.data"]["field_from_nova_35"] = json!({"any": ["thing", 1]});
    v["nova_object.extra_key"] = json!(7);
    v["nova_object.changes"] = json!([]);
    let s = Service::from_value(&v).unwrap();
    assert_eq!(s.to_value(), v);
    assert_eq!(
        s.object().get("field_from_nova_35"),
        Some(&json!({"any": ["thing", 1]}))
    );
    // An object we have no class for still round-trips generically.
    let alien = json!({"nova_object.name": "FromTheFuture", "nova_object.namespace": "nova",
                       "nova_object.version": "9.9", "nova_object.data": {"x": 1}});
    let o = NovaObject::from_value(&alien).unwrap();
    assert_eq!(o.to_value(), alien);
    assert!(AnyView::from_object(o.clone()).unwrap().is_none());
    let err = registry::validate(&o).unwrap_err().to_string();
    assert!(
        err.contains("FromTheFuture") && err.contains("9.9"),
        "{err}"
    );
}

#[test]
fn envelope_errors_are_clear() {
    let cases: Vec<(Value, &str)> = vec![
        (json!(null), "expected a JSON object, got null"),
        (json!([1]), "got an array"),
        (
            json!({"nova_object.data": {}}),
            "has no \"nova_object.name\"",
        ),
        (
            json!({"nova_object.name": 5}),
            "\"nova_object.name\" must be a non-empty string, got a number",
        ),
        (
            json!({"nova_object.name": ""}),
            "must be a non-empty string",
        ),
        (
            json!({"nova_object.name": "Service", "nova_object.namespace": "nova", "nova_object.data": {}}),
            "(Service) has no \"nova_object.version\"",
        ),
        (
            json!({"nova_object.name": "Service", "nova_object.version": "1.2", "nova_object.data": {}}),
            "(Service) has no \"nova_object.namespace\"",
        ),
        (
            json!({"nova_object.name": "Service", "nova_object.namespace": "nova", "nova_object.version": "1.x", "nova_object.data": {}}),
            "Service: version \"1.x\" is not of the form major.minor",
        ),
        (
            json!({"nova_object.name": "Service", "nova_object.namespace": "nova", "nova_object.version": "1.2"}),
            "(Service) has no \"nova_object.data\"",
        ),
        (
            json!({"nova_object.name": "Service", "nova_object.namespace": "nova", "nova_object.version": "1.2", "nova_object.data": []}),
            "\"nova_object.data\" must be an object, got an array",
        ),
        (
            json!({"nova_object.name": "Service", "nova_object.namespace": "nova", "nova_object.version": "1.2", "nova_object.data": {}, "nova_object.changes": [1]}),
            "\"nova_object.changes\" must be an array of strings",
        ),
    ];
    for (v, want) in cases {
        let err = NovaObject::from_value(&v).unwrap_err().to_string();
        assert!(err.contains(want), "{v}: got {err:?}, want {want:?}");
    }
}

#[test]
fn unsupported_versions_name_object_and_version() {
    for (ver, ok) in [
        ("1.22", true),
        ("1.0", true),
        ("1.23", false),
        ("2.0", false),
        ("0.9", false),
    ] {
        let mut v = service_prim();
        v["nova_object.version"] = json!(ver);
        let r = Service::from_value(&v);
        assert_eq!(r.is_ok(), ok, "{ver}");
        if let Err(e) = r {
            assert!(matches!(e, ObjectError::UnsupportedVersion { .. }));
            let msg = e.to_string();
            assert!(
                msg.contains("Service") && msg.contains(ver) && msg.contains("1.22"),
                "{msg}"
            );
        }
    }
    let mut v = service_prim();
    v["nova_object.namespace"] = json!("cinder");
    assert!(Service::from_value(&v)
        .unwrap_err()
        .to_string()
        .contains("cinder"));
    assert!(matches!(
        Flavor::from_value(&service_prim()),
        Err(ObjectError::WrongObject {
            expected: "Flavor",
            ..
        })
    ));
}

#[test]
fn wrong_field_types_are_rejected_with_the_field_named() {
    let bad: Vec<(&str, Value, &str)> = vec![
        ("report_count", json!("3"), "expected an integer"),
        ("id", json!(null), "expected an integer"),
        ("host", json!(1), "expected a string"),
        ("disabled", json!("no"), "expected a boolean"),
        ("last_seen_up", json!("yesterday"), "ISO 8601"),
        ("compute_node", json!({"a": 1}), "expected a nova object, got {\"a\":1} (nova object primitive has no \"nova_object.name\")"),
    ];
    for (field, val, want) in bad {
        let mut v = service_prim();
        v["nova_object.data"][field] = val;
        let err = Service::from_value(&v).unwrap_err().to_string();
        assert!(err.contains(want), "{field}: {err}");
        {
            assert!(err.contains(&format!("Service field {field}")), "{err}");
        }
    }
    // Deep: a bad field inside a nested object is reported with its path.
    let mut v = service_prim();
    v["nova_object.data"]["compute_node"] = json!({
        "nova_object.name": "ComputeNode", "nova_object.namespace": "nova",
        "nova_object.version": "1.19",
        "nova_object.data": {"supported_hv_specs": [{"nova_object.name": "HVSpec",
            "nova_object.namespace": "nova", "nova_object.version": "1.2",
            "nova_object.data": {"arch": 86}}]}});
    let err = Service::from_value(&v).unwrap_err().to_string();
    assert!(
        err.contains("Service.compute_node:ComputeNode.supported_hv_specs[0]:HVSpec field arch"),
        "{err}"
    );
}

#[test]
fn remotable_reply_application() {
    let mut s = Service::from_value(&service_prim()).unwrap();
    let before = s.object().clone();
    s.set_report_count(Some(4));
    // What a conductor would answer after saving and bumping updated_at.
    let mut after = s.object().clone();
    after.set("updated_at", "2026-11-28T22:35:13Z");
    after.reset_changes();
    let updates = conductor_updates(&before, &after);
    assert_eq!(
        Value::Object(updates.clone()),
        json!({"report_count": 4, "updated_at": "2026-11-28T22:35:13Z", "obj_what_changed": []})
    );
    let reply = ActionReply::parse(&json!([updates, null])).unwrap();
    apply_updates(s.object_mut(), &reply);
    assert!(s.object().own_changes().is_empty());
    assert_eq!(
        s.updated_at(),
        Some(UNIX_EPOCH + Duration::from_secs(1_795_905_313))
    );
    // Keys that are not fields of a known class are ignored, like oslo.
    let reply =
        ActionReply::parse(&json!([{"bogus": 1, "obj_what_changed": ["host"]}, 7])).unwrap();
    apply_updates(s.object_mut(), &reply);
    assert!(s.object().get("bogus").is_none());
    assert_eq!(s.object().own_changes(), ["host"]);
    assert_eq!(reply.result, json!(7));
}

#[test]
fn service_constructor_matches_nova_compute() {
    let s = Service::for_compute("cmp1");
    assert_eq!(s.object().version(), "1.22");
    assert_eq!(
        s.object().data().clone(),
        json!({"host": "cmp1", "binary": "nova-compute", "topic": "compute",
               "report_count": 0, "version": 74})
        .as_object()
        .unwrap()
        .clone()
    );
    assert_eq!(
        s.object().own_changes(),
        ["host", "binary", "topic", "report_count", "version"]
    );
    novakvm::objects::compute::check_outgoing(s.object()).unwrap();
}

#[test]
fn numa_topology_string_round_trip() {
    let cells = [
        NumaCellSpec {
            id: 0,
            cpuset: vec![1, 0, 3, 2],
            pcpuset: vec![],
            siblings: vec![vec![2, 0], vec![1, 3]],
            memory_mb: 4096,
            mempages: vec![(4, 1_048_576, 0), (2048, 0, 0)],
            socket: Some(0),
            physnets: vec!["physnet1".into()],
            tunneled: true,
        },
        NumaCellSpec {
            id: 1,
            cpuset: vec![4, 5],
            memory_mb: 4096,
            ..Default::default()
        },
    ];
    let topo = NUMATopology::from_cells(&cells);
    registry::validate(topo.object()).unwrap();
    let s = topo.to_json_string();
    let back = NUMATopology::from_json_string(&s).unwrap();
    assert_eq!(back, topo);
    let cell0 = &back.cells().unwrap()[0];
    assert_eq!(cell0.cpuset(), [0, 1, 2, 3]);
    assert_eq!(cell0.siblings(), [vec![0, 2], vec![1, 3]]);
    assert_eq!(cell0.mempages().unwrap()[1].size_kb(), Some(2048));
    assert_eq!(
        cell0.network_metadata().unwrap().unwrap().physnets(),
        ["physnet1"]
    );
    assert_eq!(back.cells().unwrap()[1].socket(), None);

    let mut cn = ComputeNode::empty();
    cn.set_numa_topology(Some(&s));
    assert_eq!(cn.numa().unwrap(), Some(topo));
    cn.set_numa_topology(Some("{not json"));
    assert!(matches!(cn.numa(), Err(ObjectError::EmbeddedJson { .. })));
    cn.set_numa_topology(Some("{\"nova_object.name\": \"Flavor\"}"));
    assert!(cn.numa().is_err());
}

#[test]
fn libvirt_kvm_compute_node_validates() {
    use novakvm::objects::compute::{
        libvirt_version_number, ComputeNodeResources, HvSpecTriple, HYPERVISOR_TYPE_QEMU,
    };
    let r = ComputeNodeResources {
        uuid: "6f1e7c1a-3a55-4c55-9d7e-0b8e1b0c9a11".into(),
        host: "cmp1".into(),
        hypervisor_hostname: "cmp1.example".into(),
        service_id: None,
        vcpus: 2,
        memory_mb: 7958,
        local_gb: 40,
        vcpus_used: 0,
        memory_mb_used: 512,
        local_gb_used: 0,
        hypervisor_type: HYPERVISOR_TYPE_QEMU.into(),
        hypervisor_version: libvirt_version_number(8, 2, 2),
        cpu_info: "{}".into(),
        disk_available_least: Some(38),
        host_ip: Some("10.0.0.5".parse().unwrap()),
        numa_topology: Some(NUMATopology::from_cells(&[NumaCellSpec {
            cpuset: vec![0, 1],
            memory_mb: 7958,
            mempages: vec![(4, 2_037_248, 0)],
            ..Default::default()
        }])),
        supported_hv_specs: HvSpecTriple::libvirt_kvm("x86_64"),
        stats: Default::default(),
        cpu_allocation_ratio: 4.0,
        ram_allocation_ratio: 1.0,
        disk_allocation_ratio: 1.0,
    };
    let cn = ComputeNode::for_create(&r);
    novakvm::objects::compute::check_outgoing(cn.object()).unwrap();
    assert_eq!(cn.hypervisor_version(), Some(8_002_002));
    assert_eq!(cn.hypervisor_type(), Some("QEMU"));
    // An unknown service id is left unset rather than sent as null.
    assert!(!cn.object().is_set("service_id"));
    let specs = cn.supported_hv_specs().unwrap();
    assert_eq!(specs[1].hv_type(), Some("kvm"));
    assert_eq!(
        cn.numa().unwrap().unwrap().cells().unwrap()[0].memory(),
        Some(7958)
    );
    assert_eq!(cn.host_ip(), Some("10.0.0.5"));
}

#[test]
fn cpu_info_is_the_libvirt_driver_shape() {
    let ci = CpuInfo {
        arch: "x86_64".into(),
        model: "Skylake-Client-IBRS".into(),
        vendor: "Intel".into(),
        topology: CpuTopology {
            cells: 1,
            sockets: 1,
            cores: 2,
            threads: 1,
        },
        maxphysaddr: None,
        features: vec!["vmx".into()],
    };
    let v: Value = serde_json::from_str(&ci.to_json_string()).unwrap();
    assert_eq!(
        v,
        json!({"arch": "x86_64", "model": "Skylake-Client-IBRS", "vendor": "Intel",
               "topology": {"cells": 1, "sockets": 1, "cores": 2, "threads": 1},
               "features": ["vmx"]})
    );
}

#[test]
fn every_view_version_matches_the_registry() {
    for name in AnyView::NAMES {
        let v = json!({"nova_object.name": name, "nova_object.namespace": "nova",
                       "nova_object.version": registry::version_of(name).unwrap().to_string(),
                       "nova_object.data": {}});
        let view = AnyView::from_object(NovaObject::from_value(&v).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(view.object().name(), *name);
    }
    assert_eq!(Instance::VERSION, "2.8");
    assert_eq!(ComputeNode::VERSION, "1.19");
    assert_eq!(Service::VERSION, "1.22");
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9._: -]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("nova"),
            Just("1.22"),
            Just("2.8"),
            Just("Service"),
            Just("Instance"),
            Just("2026-11-28T22:35:07Z")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        let key = prop_oneof![
            Just("nova_object.name".to_owned()),
            Just("nova_object.namespace".to_owned()),
            Just("nova_object.version".to_owned()),
            Just("nova_object.data".to_owned()),
            Just("nova_object.changes".to_owned()),
            Just("obj_what_changed".to_owned()),
            Just("host".to_owned()),
            Just("compute_node".to_owned()),
            Just("flavor".to_owned()),
            Just("objects".to_owned()),
            "[a-z_]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..7)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object primitives with a valid envelope and arbitrary data, so that the
/// deep checks and views see real input (not only envelope failures).
fn arb_primitive() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("Service"),
        Just("ComputeNode"),
        Just("Instance"),
        Just("Flavor"),
        Just("NUMATopology"),
        Just("HVSpec"),
        Just("Unknown")
    ];
    let version = prop_oneof![
        Just("1.0"),
        Just("1.22"),
        Just("2.8"),
        Just("1.19"),
        Just("3.0")
    ];
    let field = prop_oneof![
        Just("host".to_owned()),
        Just("id".to_owned()),
        Just("cells".to_owned()),
        Just("memory_mb".to_owned()),
        Just("supported_hv_specs".to_owned()),
        Just("flavor".to_owned()),
        Just("created_at".to_owned()),
        Just("stats".to_owned()),
        "[a-z_]{1,6}",
    ];
    (
        name,
        version,
        prop::collection::btree_map(field.clone(), arb_json(), 0..6),
        prop::option::of(prop::collection::vec(field, 0..4)),
    )
        .prop_map(|(n, v, data, changes)| {
            let mut m = serde_json::Map::new();
            m.insert("nova_object.name".into(), json!(n));
            m.insert("nova_object.namespace".into(), json!("nova"));
            m.insert("nova_object.version".into(), json!(v));
            m.insert(
                "nova_object.data".into(),
                Value::Object(data.into_iter().collect()),
            );
            if let Some(c) = changes {
                m.insert("nova_object.changes".into(), json!(c));
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Well-formed envelopes with arbitrary data: parse always succeeds and
    /// round-trips; deep checks and views never panic; the change list we
    /// write back has no duplicates.
    #[test]
    fn arbitrary_primitives_round_trip(v in arb_primitive()) {
        let o = NovaObject::from_value(&v).unwrap();
        let out = o.to_value();
        // Exact round trip unless nested objects have changes the input did
        // not list (oslo never writes that; we then add them, like oslo).
        let listed: Vec<String> = o.own_changes().to_vec();
        if o.what_changed().iter().all(|f| listed.contains(f)) {
            prop_assert_eq!(&out, &v);
        }
        // Always idempotent, and the written changes are what_changed().
        let again = NovaObject::from_value(&out).unwrap();
        prop_assert_eq!(again.to_value(), out.clone());
        let written: Vec<String> = out
            .get("nova_object.changes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut wc = o.what_changed();
        let mut w2 = written.clone();
        wc.sort();
        wc.dedup();
        w2.sort();
        w2.dedup();
        prop_assert_eq!(w2, wc);
        let _ = registry::validate(&o);
        let _ = AnyView::from_object(o.clone());
        let _ = ComputeNode::from_value(&v).map(|c| c.numa());
        let mut o2 = o.clone();
        o2.set("host", "x");
        let count = |ch: &[String]| ch.iter().filter(|c| *c == "host").count();
        // Input lists are kept verbatim; setting adds "host" only if absent.
        prop_assert_eq!(count(o2.own_changes()), count(o.own_changes()).max(1));
        prop_assert!(o2.what_changed().contains(&"host".to_owned()));
    }

    /// Arbitrary JSON never panics any parser, and whatever parses round-trips.
    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        if let Ok(o) = NovaObject::from_value(&v) {
            let listed: Vec<String> = o.own_changes().to_vec();
            if o.what_changed().iter().all(|f| listed.contains(f)) {
                prop_assert_eq!(o.to_value(), v.clone());
            }
            let _ = o.what_changed();
            let _ = o.changes();
            let _ = registry::validate(&o);
            let _ = AnyView::from_object(o.clone());
            let mut o2 = o.clone();
            if let Ok(r) = ActionReply::parse(&json!([v.clone(), null])) {
                apply_updates(&mut o2, &r);
            }
        }
        let _ = registry::validate_value(&v);
        let _ = registry::validate_tree(&v);
        let _ = ActionReply::parse(&v);
        let _ = Service::from_value(&v);
        let _ = Instance::from_value(&v);
        if let Some(s) = v.as_str() {
            let _ = isotime::parse_isotime(s);
            let _ = NUMATopology::from_json_string(s);
        }
        let text = v.to_string();
        let _ = NUMATopology::from_json_string(&text);
    }

    /// Arbitrary strings never panic the timestamp and embedded-JSON parsers.
    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,40}") {
        let _ = isotime::parse_isotime(&s);
        let _ = NUMATopology::from_json_string(&s);
        let _ = serde_json::from_str::<NovaObject>(&s);
    }

    /// Timestamps round-trip through oslo's format.
    #[test]
    fn isotime_round_trip(secs in 0u64..8_000_000_000u64) {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        let s = isotime::format_isotime(t);
        prop_assert_eq!(isotime::parse_isotime(&s).unwrap(), t);
    }
}
