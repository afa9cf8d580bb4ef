//! Byte-level compatibility with the real nova 34 / oslo.messaging 18.3.1
//! traffic in /work/shared/nova-wire (override with NOVAKVM_NOVA_WIRE), and
//! the JSON Schemas in api-schemas/ checked against it and against garbage.

use std::path::PathBuf;

use novakvm::rpc::context::{RequestContext, CONTEXT_PREFIX};
use novakvm::rpc::envelope::{self, Reply, Request};
use novakvm::rpc::RemoteFailure;
use serde_json::{json, Map, Value};

fn wire_dir() -> PathBuf {
    std::env::var_os("NOVAKVM_NOVA_WIRE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/nova-wire"))
}

fn captures() -> Vec<(String, Value)> {
    let dir = wire_dir();
    let mut out = Vec::new();
    for e in
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("captures at {}: {e}", dir.display()))
    {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with(|c: char| c.is_ascii_digit()) && name.ends_with(".json") {
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            if v["kind"] != "marker" {
                out.push((name, v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() > 150,
        "expected the nova-wire captures, found {}",
        out.len()
    );
    out
}

fn schema(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("api-schemas")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

struct Schemas {
    envelope: jsonschema::Validator,
    request: jsonschema::Validator,
    reply: jsonschema::Validator,
    failure: jsonschema::Validator,
    notification: jsonschema::Validator,
    context: jsonschema::Validator,
}

fn schemas() -> Schemas {
    let env = schema("oslo-envelope.schema.json");
    let sub = |def: &str| {
        let s = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": env["$defs"].clone(),
            "$ref": format!("#/$defs/{def}"),
        });
        jsonschema::validator_for(&s).unwrap()
    };
    Schemas {
        envelope: jsonschema::validator_for(&env).unwrap(),
        request: sub("request"),
        reply: sub("reply"),
        failure: sub("failure"),
        notification: sub("notification"),
        context: jsonschema::validator_for(&schema("oslo-context.schema.json")).unwrap(),
    }
}

fn context_dict(msg: &Map<String, Value>) -> Map<String, Value> {
    msg.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(CONTEXT_PREFIX)
                .map(|k| (k.to_string(), v.clone()))
        })
        .collect()
}

#[test]
fn every_capture_reencodes_byte_for_byte() {
    for (name, cap) in captures() {
        let raw = cap["body_raw"].as_str().unwrap();
        let msg = envelope::open(raw.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Same bytes from our Python-compatible JSON writer.
        let sealed = envelope::seal(&msg).unwrap();
        assert_eq!(String::from_utf8(sealed).unwrap(), raw, "{name}");
        match cap["kind"].as_str().unwrap() {
            "call" | "cast" | "fanout-cast" => {
                let req =
                    Request::from_message(msg.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(req.reply_to.is_some(), cap["kind"] == "call", "{name}");
                // Rebuilt from the typed request: identical bytes (key order of
                // oslo's RPCClient, nova's context order).
                let rebuilt = envelope::seal(&req.to_message()).unwrap();
                assert_eq!(String::from_utf8(rebuilt).unwrap(), raw, "{name}");
            }
            "reply" => {
                let reply =
                    Reply::from_message(msg.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(reply.ending);
                let rebuilt = envelope::seal(&reply.to_message()).unwrap();
                assert_eq!(String::from_utf8(rebuilt).unwrap(), raw, "{name}");
                if let Some(f) = &reply.failure {
                    let failure = RemoteFailure::from_wire(f).unwrap();
                    assert_eq!(&failure.to_wire().unwrap(), f, "{name}");
                    assert!(name.ends_with("-failure.json"));
                }
            }
            "notification" => {
                let ctx = RequestContext::from_dict(context_dict(&msg)).unwrap();
                assert_eq!(
                    Value::Object(ctx.to_dict()),
                    Value::Object(context_dict(&msg)),
                    "{name}"
                );
            }
            other => panic!("{name}: unexpected kind {other}"),
        }
    }
}

#[test]
fn every_capture_matches_the_schemas() {
    let s = schemas();
    let mut counts = std::collections::BTreeMap::new();
    for (name, cap) in captures() {
        let raw = cap["body_raw"].as_str().unwrap();
        let outer: Value = serde_json::from_str(raw).unwrap();
        assert!(s.envelope.is_valid(&outer), "{name}: envelope");
        let inner: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
        let kind = cap["kind"].as_str().unwrap();
        let v = match kind {
            "call" | "cast" | "fanout-cast" => &s.request,
            "reply" => &s.reply,
            _ => &s.notification,
        };
        if let Err(e) = v.validate(&inner) {
            panic!("{name}: {kind}: {e}");
        }
        if kind == "reply" {
            if let Some(f) = inner["failure"].as_str() {
                assert!(
                    s.failure.is_valid(&serde_json::from_str(f).unwrap()),
                    "{name}: failure"
                );
            }
        } else {
            let ctx = Value::Object(context_dict(inner.as_object().unwrap()));
            assert!(ctx.as_object().unwrap().len() >= 20, "{name}: context");
            if let Err(e) = s.context.validate(&ctx) {
                panic!("{name}: context: {e}");
            }
        }
        *counts.entry(kind.to_string()).or_insert(0) += 1;
    }
    assert!(
        counts["call"] > 50
            && counts["reply"] > 50
            && counts["cast"] > 0
            && counts["fanout-cast"] > 0
    );
}

/// The schema and the Rust parser agree on good and bad requests and contexts.
#[test]
fn schema_and_parser_agree_on_garbage() {
    let s = schemas();
    let ok_ctx = json!({"user_id": "u", "roles": ["a"], "is_admin": true, "novel": {"x": 1}});
    let requests = [
        (
            json!({"method": "ping", "args": {"arg": 1}, "namespace": "baseapi", "version": "1.0"}),
            true,
        ),
        (
            json!({"method": "x", "_msg_id": "m", "_reply_q": "reply_q", "_timeout": 30, "_unique_id": "u"}),
            true,
        ),
        (
            json!({"method": "x", "_msg_id": null, "_reply_q": null, "args": null, "version": null}),
            true,
        ),
        (
            json!({"method": "x", "_context_user_id": "u", "_context_roles": ["r"]}),
            true,
        ),
        (json!({}), false),
        (json!({"method": ""}), false),
        (json!({"method": 7}), false),
        (json!({"method": "x", "args": [1]}), false),
        (json!({"method": "x", "args": "a"}), false),
        (json!({"method": "x", "namespace": 1}), false),
        (json!({"method": "x", "version": "1"}), false),
        (json!({"method": "x", "version": "1.a"}), false),
        (json!({"method": "x", "version": 1.0}), false),
        (json!({"method": "x", "_msg_id": "m"}), false),
        (
            json!({"method": "x", "_msg_id": "m", "_reply_q": ""}),
            false,
        ),
        (json!({"method": "x", "_timeout": -1}), false),
        (json!({"method": "x", "_timeout": "10"}), false),
        (json!({"method": "x", "_unique_id": 5}), false),
    ];
    for (m, want) in requests {
        let schema_ok = s.request.is_valid(&m);
        let parser_ok = Request::from_message(m.as_object().unwrap().clone()).is_ok();
        assert_eq!((schema_ok, parser_ok), (want, want), "{m}");
    }
    let contexts = [
        (ok_ctx, true),
        (json!({}), true),
        (json!({"roles": "admin"}), false),
        (json!({"roles": [1]}), false),
        (json!({"is_admin": "yes"}), false),
        (json!({"is_admin": null}), false),
        (json!({"request_id": 5}), false),
        (json!({"user_id": ["u"]}), false),
        (json!({"service_catalog": {}}), false),
        (json!({"timestamp": 5}), false),
    ];
    for (c, want) in contexts {
        let schema_ok = s.context.is_valid(&c);
        let parser_ok = RequestContext::from_dict(c.as_object().unwrap().clone()).is_ok();
        assert_eq!((schema_ok, parser_ok), (want, want), "{c}");
    }
    let replies = [
        (
            json!({"result": 1, "failure": null, "ending": true, "_msg_id": "m", "_unique_id": "u"}),
            true,
        ),
        (json!({"_msg_id": "m"}), true),
        (json!({"result": 1}), false),
        (json!({"_msg_id": 1}), false),
        (json!({"_msg_id": "m", "ending": "yes"}), false),
        (json!({"_msg_id": "m", "failure": {"class": "X"}}), false),
    ];
    for (r, want) in replies {
        let schema_ok = s.reply.is_valid(&r);
        let parser_ok = Reply::from_message(r.as_object().unwrap().clone()).is_ok();
        assert_eq!((schema_ok, parser_ok), (want, want), "{r}");
    }
    let envelopes = [
        (json!({"oslo.version": "2.0", "oslo.message": "{}"}), true),
        (json!({"oslo.version": "2.1", "oslo.message": "{}"}), false),
        (json!({"oslo.version": "1.0", "oslo.message": "{}"}), false),
        (json!({"oslo.version": 2.0, "oslo.message": "{}"}), false),
        (json!({"oslo.message": "{}"}), false),
        (json!({"oslo.version": "2.0"}), false),
        (json!({"oslo.version": "2.0", "oslo.message": {}}), false),
        (json!([1]), false),
    ];
    for (e, want) in envelopes {
        let schema_ok = s.envelope.is_valid(&e);
        let parser_ok = envelope::open(e.to_string().as_bytes()).is_ok();
        assert_eq!((schema_ok, parser_ok), (want, want), "{e}");
    }
}

/// A context we build for the conductor has nova-compute's exact key order.
#[test]
fn admin_context_has_nova_compute_shape() {
    let cap = captures()
        .into_iter()
        .find(|(n, _)| n.starts_with("0004-"))
        .unwrap()
        .1;
    let theirs = context_dict(cap["message"].as_object().unwrap());
    let ours = RequestContext::admin().to_dict();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for k in [
        "is_admin",
        "read_only",
        "show_deleted",
        "roles",
        "user_identity",
        "is_admin_project",
        "read_deleted",
        "service_catalog",
        "user_id",
        "project_id",
    ] {
        assert_eq!(ours[k], theirs[k], "{k}");
    }
}
