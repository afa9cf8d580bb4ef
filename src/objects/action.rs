//! Remote object calls through nova-conductor, as oslo.versionedobjects'
//! `@remotable` machinery does them with `indirection_api` set:
//!
//! - instance methods (`save`, `create`, `destroy`, `refresh`...) become
//!   `object_action(objinst, objmethod, args, kwargs)`; the conductor runs the
//!   method on its copy, diffs it with the copy it received and replies
//!   `[updates, result]`, where `updates` maps every changed field to its new
//!   primitive plus `obj_what_changed` (the fields still marked changed). The
//!   caller sets each field of `updates` on its object, then replaces its
//!   change set with `obj_what_changed` ([`apply_updates`]).
//! - class methods (`get_by_uuid`...) become `object_class_action_versions(objname,
//!   objmethod, object_versions, args, kwargs)`, where `object_versions` is
//!   the manifest of every object we can read ([`super::registry::manifest_for`]);
//!   the conductor backports its result to those versions.

use serde_json::{json, Map, Value};

use super::error::{json_type, short};
use super::registry;
use super::{NovaObject, ObjectError};

/// Key of the change list inside a conductor `updates` dict.
pub const OBJ_WHAT_CHANGED: &str = "obj_what_changed";

/// Arguments of the conductor's `object_action` call (RPC API 3.0).
pub fn object_action_args(
    obj: &NovaObject,
    objmethod: &str,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> Value {
    json!({
        "objinst": obj.to_value(),
        "objmethod": objmethod,
        "args": args,
        "kwargs": kwargs,
    })
}

/// Arguments of the conductor's `object_class_action_versions` call, with the
/// version manifest of `objname`. Fails if we do not know `objname`.
pub fn object_class_action_versions_args(
    objname: &str,
    objmethod: &str,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> Result<Value, ObjectError> {
    let manifest = registry::manifest_json(objname).ok_or_else(|| ObjectError::UnknownObject {
        name: objname.to_owned(),
        version: "(ours)".to_owned(),
    })?;
    Ok(json!({
        "objname": objname,
        "objmethod": objmethod,
        "object_versions": manifest,
        "args": args,
        "kwargs": kwargs,
    }))
}

/// Arguments of the conductor's `object_backport_versions(objinst,
/// object_versions)` call: what oslo's serializer sends when it receives an
/// object at a version it cannot read ([`needs_backport`]). The conductor
/// answers with the object written at our versions.
pub fn object_backport_versions_args(objinst: &Value) -> Result<Value, ObjectError> {
    let obj = NovaObject::from_value(objinst)?;
    let manifest =
        registry::manifest_json(obj.name()).ok_or_else(|| ObjectError::UnknownObject {
            name: obj.name().to_owned(),
            version: obj.version().to_owned(),
        })?;
    Ok(json!({"objinst": objinst, "object_versions": manifest}))
}

/// True when `obj` is a nova object we know, written at a version we cannot
/// read (newer minor or other major): oslo's serializer then asks the
/// conductor to backport it instead of failing.
pub fn needs_backport(obj: &NovaObject) -> bool {
    matches!(
        registry::check_version(obj),
        Err(ObjectError::UnsupportedVersion { .. })
    )
}

/// The conductor's answer to `object_action`: `[updates, result]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionReply {
    /// Changed fields -> new primitive values (without `obj_what_changed`).
    pub updates: Map<String, Value>,
    /// Fields the object still has marked as changed after the call.
    pub what_changed: Vec<String>,
    /// Return value of the remote method (often null).
    pub result: Value,
}

impl ActionReply {
    /// Reads the `result` of an `object_action` reply.
    pub fn parse(reply_result: &Value) -> Result<Self, ObjectError> {
        let arr = reply_result.as_array().ok_or_else(|| {
            ObjectError::BadReply(format!(
                "object_action result must be [updates, result], got {}",
                json_type(reply_result)
            ))
        })?;
        let [updates, result] = arr.as_slice() else {
            return Err(ObjectError::BadReply(format!(
                "object_action result must have 2 elements, got {}",
                arr.len()
            )));
        };
        let mut updates = updates
            .as_object()
            .ok_or_else(|| {
                ObjectError::BadReply(format!(
                    "object_action updates must be an object, got {}",
                    short(updates)
                ))
            })?
            .clone();
        let what_changed = match updates.remove(OBJ_WHAT_CHANGED) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_owned).ok_or_else(|| {
                        ObjectError::BadReply(format!(
                            "obj_what_changed must hold strings, got {}",
                            short(i)
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(ObjectError::BadReply(format!(
                    "obj_what_changed must be a list, got {}",
                    short(&other)
                )))
            }
        };
        Ok(Self {
            updates,
            what_changed,
            result: result.clone(),
        })
    }
}

/// Applies a conductor reply to the object the call was made on, like
/// `_wrapper_instancemethod` in oslo.versionedobjects: every update for a
/// field the object class has is set (unknown keys are ignored when the
/// class is known; for classes we do not know, every key is set), then the
/// change set becomes exactly `obj_what_changed`.
pub fn apply_updates(obj: &mut NovaObject, reply: &ActionReply) {
    let def = registry::lookup(obj.name());
    for (k, v) in &reply.updates {
        if def.map_or(true, |d| d.field(k).is_some()) {
            obj.set(k, v.clone());
        }
    }
    obj.set_changes(reply.what_changed.clone());
}

/// What the conductor's `object_action` returns as `updates` after running a
/// method: every field set in `after` that was unset in `before`, differs
/// from it, or holds objects (nova objects compare by identity, so those are
/// always sent back), plus `obj_what_changed`. Useful to serve conductor calls
/// in tests and to check replies.
pub fn conductor_updates(before: &NovaObject, after: &NovaObject) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in after.data() {
        let holds_object = NovaObject::is_primitive(v)
            || v.as_array()
                .is_some_and(|a| a.iter().any(NovaObject::is_primitive));
        if holds_object || before.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert(OBJ_WHAT_CHANGED.into(), Value::from(after.what_changed()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_replies_are_errors() {
        for bad in [
            json!(null),
            json!({}),
            json!([]),
            json!([{}]),
            json!([1, null]),
            json!([{"obj_what_changed": "x"}, null]),
            json!([{"obj_what_changed": [1]}, null]),
            json!([{}, null, 3]),
        ] {
            assert!(ActionReply::parse(&bad).is_err(), "{bad}");
        }
        let ok = ActionReply::parse(&json!([{"obj_what_changed": []}, 5])).unwrap();
        assert!(ok.updates.is_empty());
        assert_eq!(ok.result, json!(5));
    }

    #[test]
    fn backport_is_asked_only_for_known_objects_we_cannot_read() {
        let prim = |name: &str, ver: &str| {
            json!({"nova_object.name": name, "nova_object.namespace": "nova",
                   "nova_object.version": ver, "nova_object.data": {}})
        };
        let newer = prim("Flavor", "1.3");
        assert!(needs_backport(&NovaObject::from_value(&newer).unwrap()));
        let args = object_backport_versions_args(&newer).unwrap();
        assert_eq!(args["object_versions"], json!({"Flavor": "1.2"}));
        assert_eq!(args["objinst"], newer);
        assert!(!needs_backport(
            &NovaObject::from_value(&prim("Flavor", "1.2")).unwrap()
        ));
        assert!(!needs_backport(
            &NovaObject::from_value(&prim("Flavor", "1.2.7")).unwrap()
        ));
        assert!(!needs_backport(
            &NovaObject::from_value(&prim("Alien", "9.0")).unwrap()
        ));
        assert!(object_backport_versions_args(&prim("Alien", "9.0")).is_err());
        assert!(object_backport_versions_args(&json!("garbage")).is_err());
    }

    #[test]
    fn class_action_args_carry_the_manifest() {
        let a = object_class_action_versions_args(
            "InstanceActionEvent",
            "event_start",
            vec![json!("u"), json!("e")],
            Map::new(),
        )
        .unwrap();
        assert_eq!(a["object_versions"], json!({"InstanceActionEvent": "1.4"}));
        assert!(object_class_action_versions_args("Bogus", "x", vec![], Map::new()).is_err());
    }
}
