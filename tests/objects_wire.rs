//! Every versioned object in the real nova 34.0.0 captures
//! (tests/fixtures/nova-wire) against our JSON Schemas, our registry
//! validation, our typed views, and our generic round-trip.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use jsonschema::{Retrieve, Uri, Validator};
use novakvm::objects::action::{apply_updates, object_action_args, ActionReply};
use novakvm::objects::compute::{ComputeNodeResources, ComputeNodeUsage, HvSpecTriple};
use novakvm::objects::views::{AnyView, ComputeNode, Service};
use novakvm::objects::{registry, NovaObject, ObjectView, KEY_CHANGES, KEY_NAME};
use serde_json::{json, Map, Value};

const SCHEMA_BASE: &str = "https://novakvm.invalid/api-schemas/nova-objects/";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/nova-wire")
}

/// Serves our schema files for `$ref`s; refuses anything else.
struct SchemaFiles;

impl Retrieve for SchemaFiles {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let rel = uri
            .as_str()
            .strip_prefix(SCHEMA_BASE)
            .ok_or_else(|| format!("unexpected schema uri {}", uri.as_str()))?;
        let path = root().join("api-schemas/nova-objects").join(rel);
        Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?)
    }
}

fn load_schema(path: &Path) -> Validator {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .with_retriever(SchemaFiles)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Schemas {
    wire: Validator,
    by_name: HashMap<String, Validator>,
}

impl Schemas {
    fn new() -> Self {
        Self {
            wire: load_schema(&root().join("api-schemas/nova-objects/wire.json")),
            by_name: HashMap::new(),
        }
    }

    fn for_name(&mut self, name: &str) -> &Validator {
        self.by_name.entry(name.to_owned()).or_insert_with(|| {
            let p = root().join(format!("api-schemas/nova-objects/objects/{name}.json"));
            assert!(p.exists(), "no schema for nova object {name}");
            load_schema(&p)
        })
    }
}

/// Calls `f` on every JSON value under `v` that is an object primitive.
/// Strings that hold JSON objects or arrays (oslo envelopes, numa_topology)
/// are parsed and walked too.
fn walk(v: &Value, f: &mut dyn FnMut(&Value)) {
    match v {
        Value::Object(m) => {
            if m.contains_key(KEY_NAME) {
                f(v);
            }
            m.values().for_each(|x| walk(x, f));
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        Value::String(s) if s.starts_with('{') || s.starts_with('[') => {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                walk(&inner, f);
            }
        }
        _ => {}
    }
}

fn capture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".json") && n.as_bytes()[0].is_ascii_digit()
        })
        .collect();
    files.sort();
    assert!(files.len() > 150, "captures missing: {}", files.len());
    files
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn capture(prefix: &str) -> Value {
    let p = capture_files()
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no capture {prefix}"));
    read(&p)
}

#[test]
fn every_captured_object_validates_parses_and_round_trips() {
    let mut schemas = Schemas::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut typed = 0usize;
    let mut sources: Vec<Value> = Vec::new();
    for path in capture_files() {
        sources.push(read(&path));
    }
    // Raw deliveries seen by a spy queue on exchange `nova`.
    let spy = std::fs::read_to_string(fixtures().join("spy-nova-exchange.jsonl")).unwrap();
    for line in spy.lines().filter(|l| !l.trim().is_empty()) {
        sources.push(serde_json::from_str(line).unwrap());
    }
    for src in &sources {
        walk(src, &mut |v| {
            let errs: Vec<String> = schemas.wire.iter_errors(v).map(|e| e.to_string()).collect();
            assert!(errs.is_empty(), "wire schema: {errs:?} for {v}");
            let obj = NovaObject::from_value(v).unwrap_or_else(|e| panic!("{e}: {v}"));
            assert_eq!(&obj.to_value(), v, "round trip of {}", obj.name());
            let errs: Vec<String> = schemas
                .for_name(obj.name())
                .iter_errors(v)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errs.is_empty(), "{} schema: {errs:?}", obj.name());
            registry::validate(&obj).unwrap_or_else(|e| panic!("{e}"));
            // oslo writes `changes` = obj_what_changed(): our recursive view
            // of what changed must agree with what nova wrote.
            let ours: BTreeSet<String> = obj.what_changed().into_iter().collect();
            let theirs: BTreeSet<String> = obj.own_changes().iter().cloned().collect();
            assert_eq!(ours, theirs, "what_changed of {}", obj.name());
            if let Some(view) = AnyView::from_object(obj.clone()).unwrap_or_else(|e| panic!("{e}"))
            {
                assert_eq!(view.object(), &obj);
                typed += 1;
            }
            *seen.entry(obj.name().to_owned()).or_default() += 1;
        });
    }
    let total: usize = seen.values().sum();
    eprintln!("{total} objects, {typed} through typed views: {seen:?}");
    assert!(total >= 600, "only {total} objects found");
    for name in [
        "Instance",
        "Service",
        "ComputeNode",
        "Flavor",
        "ImageMeta",
        "ImageMetaProps",
        "RequestSpec",
        "InstanceList",
        "MigrationList",
        "BlockDeviceMappingList",
        "InstanceInfoCache",
        "NetworkRequestList",
        "PciDevicePoolList",
        "HVSpec",
    ] {
        assert!(seen.contains_key(name), "no {name} in the captures");
    }
}

/// The `object_versions` manifests nova-compute sent are exactly ours,
/// keys in the same order (read from the raw oslo envelope text).
#[test]
fn manifests_match_the_captured_class_calls() {
    let mut checked = 0;
    for path in capture_files() {
        let cap = read(&path);
        let msg = &cap["message"];
        if msg["method"] != "object_class_action_versions" {
            continue;
        }
        let objname = msg["args"]["objname"].as_str().unwrap();
        let theirs = &msg["args"]["object_versions"];
        assert_eq!(
            &registry::manifest_json(objname).unwrap(),
            theirs,
            "{}",
            path.display()
        );
        let raw: Value = serde_json::from_str(cap["body_raw"].as_str().unwrap()).unwrap();
        let inner = raw["oslo.message"].as_str().unwrap();
        let start = inner.find("\"object_versions\": {").unwrap() + 20;
        let end = start + inner[start..].find('}').unwrap();
        let raw_order: Vec<String> = inner[start..end]
            .split(", ")
            .map(|kv| kv.split(": ").next().unwrap().trim_matches('"').to_owned())
            .collect();
        let our_order: Vec<String> = registry::manifest_for(objname)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.to_owned())
            .collect();
        assert_eq!(our_order, raw_order, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} class calls");
}

/// Sorts every `nova_object.changes` list (a Python set: order is arbitrary).
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    if k == KEY_CHANGES {
                        let mut items: Vec<String> = x
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s.as_str().unwrap().to_owned())
                            .collect();
                        items.sort();
                        (k.clone(), Value::from(items))
                    } else {
                        (k.clone(), normalize(x))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn reply_result(prefix: &str) -> ActionReply {
    ActionReply::parse(&capture(prefix)["message"]["result"]).unwrap()
}

/// Service.create (0016) -> reply (0018) -> report_count += 1 -> Service.save
/// (0036) -> reply (0037): our objects are exactly what nova-compute sent.
#[test]
fn service_create_then_save_reproduces_the_capture() {
    let mut svc = Service::for_compute("fake-host-1");
    let create = object_action_args(svc.object(), "create", vec![], Map::new());
    let c16 = capture("0016-");
    assert_eq!(normalize(&create), normalize(&c16["message"]["args"]));

    apply_updates(svc.object_mut(), &reply_result("0018-"));
    assert!(svc.object().what_changed().is_empty());
    assert_eq!(svc.id(), Some(4));
    svc.set_report_count(Some(svc.report_count().unwrap() + 1));
    let save = object_action_args(svc.object(), "save", vec![], Map::new());
    let c36 = capture("0036-");
    assert_eq!(normalize(&save), normalize(&c36["message"]["args"]));
    assert_eq!(
        svc.object().changes(),
        json!({"report_count": 1}).as_object().unwrap().clone()
    );

    apply_updates(svc.object_mut(), &reply_result("0037-"));
    assert!(svc.last_seen_up().is_some());
    assert_eq!(
        svc.object().get("updated_at"),
        Some(&json!("2026-11-28T22:35:13Z"))
    );
    assert!(svc.object().own_changes().is_empty());
}

fn fake_driver_resources() -> ComputeNodeResources {
    ComputeNodeResources {
        uuid: "b4e0d58e-0ff4-4b5e-b45e-d8cc28eaaef1".into(),
        host: "fake-host-1".into(),
        hypervisor_hostname: "fake-host-1".into(),
        service_id: Some(4),
        vcpus: 1000,
        memory_mb: 800_000,
        local_gb: 600_000,
        vcpus_used: 0,
        memory_mb_used: 0,
        local_gb_used: 0,
        hypervisor_type: "fake".into(),
        hypervisor_version: 1000,
        cpu_info: "{\"arch\": \"x86_64\", \"model\": \"Nehalem\", \"vendor\": \"Intel\", \"features\": [\"pge\", \"clflush\"], \"topology\": {\"cores\": 1, \"threads\": 1, \"sockets\": 4}}".into(),
        disk_available_least: Some(0),
        host_ip: Some("127.0.0.1".parse().unwrap()),
        numa_topology: None,
        supported_hv_specs: vec![HvSpecTriple {
            arch: "x86_64".into(),
            hv_type: "fake".into(),
            vm_mode: "hvm".into(),
        }],
        stats: BTreeMap::from([("failed_builds".to_owned(), "0".to_owned())]),
        cpu_allocation_ratio: 4.0,
        ram_allocation_ratio: 1.0,
        disk_allocation_ratio: 1.0,
    }
}

/// ComputeNode.create (0023) -> reply (0024) -> usage update -> save (0033).
#[test]
fn compute_node_create_then_save_reproduces_the_capture() {
    let mut cn = ComputeNode::for_create(&fake_driver_resources());
    let create = object_action_args(cn.object(), "create", vec![], Map::new());
    assert_eq!(
        normalize(&create),
        normalize(&capture("0023-")["message"]["args"])
    );

    apply_updates(cn.object_mut(), &reply_result("0024-"));
    assert_eq!(cn.id(), Some(1));
    assert!(cn.object().what_changed().is_empty());
    // Nothing changed in the driver's view: no save needed.
    assert!(!cn.update_resources(&fake_driver_resources()));
    cn.set_usage(&ComputeNodeUsage {
        memory_mb_used: 512,
        ..Default::default()
    });
    let save = object_action_args(cn.object(), "save", vec![], Map::new());
    assert_eq!(
        normalize(&save),
        normalize(&capture("0033-")["message"]["args"])
    );

    apply_updates(cn.object_mut(), &reply_result("0034-"));
    assert_eq!(cn.object().own_changes(), ["pci_device_pools"]);
    assert_eq!(cn.free_ram_mb(), Some(799_488));
    assert_eq!(cn.numa().unwrap(), None);
}

/// A restart with `reserved_host_memory_mb` changed: only the fields that
/// differ are marked, nested change lists do not count as differences.
#[test]
fn update_resources_marks_only_differences() {
    let c = capture("0059-");
    let mut cn = ComputeNode::from_value(&c["message"]["args"]["objinst"]).unwrap();
    cn.object_mut().reset_changes();
    let mut r = fake_driver_resources();
    r.stats = cn.stats();
    r.memory_mb_used = 4096;
    r.vcpus_used = cn.vcpus_used().unwrap();
    r.local_gb_used = cn.local_gb_used().unwrap();
    assert!(cn.update_resources(&r));
    assert_eq!(cn.object().own_changes(), ["memory_mb_used"]);
    assert_eq!(cn.memory_mb_used(), Some(4096));
    cn.object_mut().reset_changes();
    assert!(!cn.update_resources(&r));
    // The nested PciDevicePoolList still has its own change mark, as in oslo.
    assert_eq!(cn.object().what_changed(), ["pci_device_pools"]);
    cn.object_mut().reset_changes_recursive();
    assert!(cn.object().what_changed().is_empty());
}

/// Instance.save (0050) -> reply (0051): after applying, only `ec2_ids` stays
/// changed and every updated nested object replaced ours.
#[test]
fn instance_save_reply_is_applied_like_remotable() {
    let c = capture("0050-");
    let mut inst =
        novakvm::objects::views::Instance::from_value(&c["message"]["args"]["objinst"]).unwrap();
    assert_eq!(inst.vm_state(), Some("building"));
    assert_eq!(inst.flavor().unwrap().unwrap().memory_mb(), Some(512));
    let reply = reply_result("0051-");
    apply_updates(inst.object_mut(), &reply);
    assert_eq!(inst.object().own_changes(), ["ec2_ids"]);
    for (k, v) in &reply.updates {
        assert_eq!(inst.object().get(k), Some(v), "{k}");
    }
}

/// A wrong-typed value for each field kind (None: nothing is wrong for it).
fn wrong_value(kind: registry::FieldKind) -> Option<Value> {
    use registry::FieldKind as K;
    Some(match kind {
        K::Any => return None,
        K::Boolean => json!("yes"),
        K::String | K::Uuid | K::JsonString | K::IpNetwork | K::DateTime | K::IpAddress => {
            json!(12345)
        }
        K::Integer | K::Number => json!("12"),
        _ => json!(true),
    })
}

/// Mutation check of schemas and registry together: for every field of
/// every captured object, a wrong-typed value is rejected by both the
/// object's JSON Schema and `registry::validate`, and by the typed view.
#[test]
fn wrong_types_in_captured_objects_are_rejected_by_schema_and_registry() {
    let mut schemas = Schemas::new();
    let mut samples: BTreeMap<String, Value> = BTreeMap::new();
    for path in capture_files() {
        walk(&read(&path), &mut |v| {
            let name = v[KEY_NAME].as_str().unwrap().to_owned();
            samples.entry(name).or_insert_with(|| v.clone());
        });
    }
    let mut mutations = 0;
    for (name, v) in &samples {
        let def = registry::lookup(name).unwrap();
        for field in v["nova_object.data"].as_object().unwrap().keys() {
            let Some(f) = def.field(field) else { continue };
            let Some(bad) = wrong_value(f.kind) else {
                continue;
            };
            let mut m = v.clone();
            m["nova_object.data"][field] = bad;
            assert!(
                !schemas.for_name(name).is_valid(&m),
                "schema accepts {name}.{field} = wrong type"
            );
            let o = NovaObject::from_value(&m).unwrap();
            let err = registry::validate(&o).unwrap_err().to_string();
            assert!(err.contains(field.as_str()), "{err}");
            assert!(AnyView::from_object(o).is_err() || !AnyView::NAMES.contains(&name.as_str()));
            mutations += 1;
            if !f.nullable {
                m["nova_object.data"][field] = Value::Null;
                assert!(
                    !schemas.for_name(name).is_valid(&m),
                    "schema accepts null in non-nullable {name}.{field}"
                );
                let o = NovaObject::from_value(&m).unwrap();
                assert!(registry::validate(&o).is_err(), "{name}.{field} null");
                mutations += 1;
            }
        }
        // And a version newer than ours is refused by both.
        let mut m = v.clone();
        let ours = registry::version_of(name).unwrap();
        m["nova_object.version"] = json!(format!("{}.{}", ours.major, ours.minor + 1));
        assert!(!schemas.for_name(name).is_valid(&m), "{name} newer version");
        assert!(registry::validate(&NovaObject::from_value(&m).unwrap()).is_err());
    }
    assert!(mutations > 450, "only {mutations} mutations");
}

/// The objects of a real build_and_run_instance cast (0047) read through
/// typed views: what the compute agent needs to build the VM.
#[test]
fn build_and_run_instance_args_read_through_typed_views() {
    use novakvm::objects::views::{
        BlockDeviceMappingList, Instance, NetworkRequestList, RequestSpec,
    };
    let c = capture("0047-");
    let args = &c["message"]["args"];
    // instance, request_spec, requested_networks, block_device_mapping
    assert_eq!(registry::validate_tree(args).unwrap(), 4);
    let mut broken = args.clone();
    broken["request_spec"]["nova_object.data"]["num_instances"] = json!("one");
    let err = registry::validate_tree(&broken).unwrap_err().to_string();
    assert!(err.contains("RequestSpec field num_instances"), "{err}");
    let inst = Instance::from_value(&args["instance"]).unwrap();
    assert_eq!(inst.uuid(), Some("05ea1567-0ef5-4053-a6b4-6cc1a0241115"));
    assert_eq!(inst.vm_state(), Some("building"));
    assert_eq!(inst.task_state(), Some("scheduling"));
    assert_eq!(inst.host(), None);
    assert_eq!(inst.memory_mb(), Some(512));
    assert_eq!(inst.power_state(), Some(0));
    assert!(inst.created_at().is_some());
    let flavor = inst.flavor().unwrap().unwrap();
    assert_eq!(flavor.name(), Some("m1.tiny"));
    assert_eq!(flavor.vcpus(), Some(1));
    assert_eq!(flavor.rxtx_factor(), Some(1.0));
    assert!(flavor.extra_specs().is_empty());
    assert_eq!(
        inst.system_metadata()
            .get("image_disk_format")
            .map(String::as_str),
        Some("raw")
    );
    assert_eq!(
        inst.info_cache().unwrap().unwrap().network_info(),
        Some("[]")
    );
    assert!(inst.numa_topology().unwrap().is_none());

    let spec = RequestSpec::from_value(&args["request_spec"]).unwrap();
    let image = spec.image().unwrap().unwrap();
    assert_eq!(image.disk_format(), Some("raw"));
    assert_eq!(image.size(), Some(1_048_576));
    let props = image.properties().unwrap().unwrap();
    assert_eq!(props.hw_machine_type(), None);
    assert_eq!(spec.num_instances(), Some(1));

    let nets = NetworkRequestList::from_value(&args["requested_networks"]).unwrap();
    let nets = nets.objects().unwrap();
    assert_eq!(nets.len(), 1);
    assert_eq!(nets[0].network_id(), Some("none"));

    let bdms = BlockDeviceMappingList::from_value(&args["block_device_mapping"]).unwrap();
    let bdms = bdms.objects().unwrap();
    assert_eq!(bdms[0].source_type(), Some("image"));
    assert_eq!(bdms[0].destination_type(), Some("local"));
    assert_eq!(bdms[0].boot_index(), Some(0));
    assert_eq!(bdms[0].delete_on_termination(), Some(true));
}

/// Replays one object's life in the captures: starting from where the
/// compute got the object, for each `object_action` it sent, set the fields
/// it lists as changed (to the values it sent), compare the whole object
/// with what it sent, then apply the conductor's reply. Any difference in
/// how replies are applied or changes are tracked shows up as a mismatch.
fn replay(start: &Value, calls: &[(&str, &str)]) {
    let mut obj = NovaObject::from_value(start).unwrap();
    for (req, rep) in calls {
        let sent = &capture(req)["message"]["args"]["objinst"];
        let sent_obj = NovaObject::from_value(sent).unwrap();
        for f in sent_obj.own_changes() {
            if let Some(v) = sent_obj.get(f) {
                obj.set(f, v.clone());
            }
        }
        assert_eq!(
            normalize(&obj.to_value()),
            normalize(sent),
            "{} before request {req}",
            obj.name()
        );
        apply_updates(&mut obj, &reply_result(rep));
    }
}

#[test]
fn replaying_each_objects_life_reproduces_every_request() {
    // Service: created at start, reported every period, until the restart.
    let c16 = capture("0016-");
    let svc_calls: Vec<(&str, &str)> = vec![
        ("0016-", "0018-"),
        ("0036-", "0037-"),
        ("0039-", "0040-"),
        ("0076-", "0077-"),
        ("0111-", "0112-"),
        ("0113-", "0114-"),
        ("0117-", "0118-"),
        ("0129-", "0130-"),
        ("0131-", "0132-"),
        ("0133-", "0134-"),
        ("0135-", "0136-"),
        ("0137-", "0138-"),
        ("0139-", "0140-"),
        ("0152-", "0153-"),
        ("0154-", "0155-"),
        ("0156-", "0157-"),
        ("0158-", "0159-"),
        ("0161-", "0162-"),
    ];
    replay(&c16["message"]["args"]["objinst"], &svc_calls);
    // After the restart the Service comes from get_by_host_and_binary.
    let c169 = capture("0169-");
    replay(
        &c169["message"]["result"],
        &[("0190-", "0191-"), ("0192-", "0193-")],
    );

    // ComputeNode: created, then saved by the resource tracker.
    let c23 = capture("0023-");
    replay(
        &c23["message"]["args"]["objinst"],
        &[
            ("0023-", "0024-"),
            ("0033-", "0034-"),
            ("0059-", "0060-"),
            ("0101-", "0102-"),
            ("0127-", "0128-"),
        ],
    );
    let c179 = capture("0179-");
    replay(&c179["message"]["result"], &[("0188-", "0189-")]);

    // Instance: from the build_and_run_instance cast through ACTIVE.
    let c47 = capture("0047-");
    replay(
        &c47["message"]["args"]["instance"],
        &[
            ("0050-", "0051-"),
            ("0053-", "0054-"),
            ("0061-", "0062-"),
            ("0065-", "0066-"),
            ("0067-", "0068-"),
            ("0069-", "0070-"),
        ],
    );
}
