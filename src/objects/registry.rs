//! The nova 34.0.0 object registry: every object class, its version and
//! fields (generated from nova's sources into `registry_data.rs`), the
//! version manifests sent to the conductor, and deep validation of wire data.

use serde_json::{Map, Value};

use super::error::short;
use super::isotime::parse_isotime;
use super::wire::{NovaObject, NAMESPACE};
use super::{ObjectError, ObjectVersion};

/// How a field is written on the wire (oslo.versionedobjects' `to_primitive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `StringField`, enum fields, MAC/PCI address fields: a string.
    String,
    /// `IntegerField`, `NonNegativeIntegerField`.
    Integer,
    /// `FloatField`: a JSON number.
    Number,
    /// `BooleanField`, `FlexibleBooleanField`.
    Boolean,
    /// `DateTimeField`: an ISO 8601 string (`2026-11-28T22:35:07Z`).
    DateTime,
    /// `UUIDField`: a string (nova does not enforce the UUID syntax).
    Uuid,
    /// `IPAddressField` and friends: an IPv4 or IPv6 address string.
    IpAddress,
    /// `IPNetworkField`: a CIDR string.
    IpNetwork,
    /// `NetworkModelField`, `NetworkVIFModelField`: JSON text in a string.
    JsonString,
    /// `DictOfStringsField`.
    DictOfStrings,
    /// `DictOfNullableStringsField`.
    DictOfNullableStrings,
    /// `DictOfIntegersField`.
    DictOfIntegers,
    /// `DictOfListOfStringsField`.
    DictOfListOfStrings,
    /// `DictOfSetOfIntegersField` (sets are lists on the wire).
    DictOfSetOfIntegers,
    /// `ListOfStringsField`, `ListOfUUIDField`.
    ListOfStrings,
    /// `ListOfIntegersField`.
    ListOfIntegers,
    /// `SetOfIntegersField` (a list on the wire).
    SetOfIntegers,
    /// `SetOfStringsField` (a list on the wire).
    SetOfStrings,
    /// `ListOfSetsOfIntegersField`.
    ListOfSetsOfIntegers,
    /// `ListOfListsOfStringsField`.
    ListOfListsOfStrings,
    /// `ListOfDictOfNullableStringsField`.
    ListOfDictOfNullableStrings,
    /// `ObjectField('Name')`: a nested object primitive.
    Object(&'static str),
    /// `ListOfObjectsField('Name')`: a list of object primitives.
    ListOfObjects(&'static str),
    /// A field type we do not interpret: anything is accepted.
    Any,
}

impl FieldKind {
    /// Human-readable wire type, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            FieldKind::String | FieldKind::Uuid => "a string",
            FieldKind::Integer => "an integer",
            FieldKind::Number => "a number",
            FieldKind::Boolean => "a boolean",
            FieldKind::DateTime => "an ISO 8601 timestamp string",
            FieldKind::IpAddress => "an IP address string",
            FieldKind::IpNetwork => "an IP network string",
            FieldKind::JsonString => "a string holding JSON",
            FieldKind::DictOfStrings => "an object of strings",
            FieldKind::DictOfNullableStrings => "an object of strings or nulls",
            FieldKind::DictOfIntegers => "an object of integers",
            FieldKind::DictOfListOfStrings => "an object of lists of strings",
            FieldKind::DictOfSetOfIntegers => "an object of lists of integers",
            FieldKind::ListOfStrings | FieldKind::SetOfStrings => "a list of strings",
            FieldKind::ListOfIntegers | FieldKind::SetOfIntegers => "a list of integers",
            FieldKind::ListOfSetsOfIntegers => "a list of lists of integers",
            FieldKind::ListOfListsOfStrings => "a list of lists of strings",
            FieldKind::ListOfDictOfNullableStrings => "a list of objects of strings or nulls",
            FieldKind::Object(_) => "a nova object",
            FieldKind::ListOfObjects(_) => "a list of nova objects",
            FieldKind::Any => "anything",
        }
    }
}

/// One field of an object class.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    /// Field name.
    pub name: &'static str,
    /// Wire type.
    pub kind: FieldKind,
    /// Whether null is allowed.
    pub nullable: bool,
}

/// One object class of nova 34.0.0.
#[derive(Debug, Clone, Copy)]
pub struct ObjectDef {
    /// Registered name, e.g. `Instance`.
    pub name: &'static str,
    /// Major part of `VERSION`.
    pub major: u32,
    /// Minor part of `VERSION`.
    pub minor: u32,
    /// True for notification payloads (nova/notifications/objects).
    pub notification: bool,
    /// Fields in declaration order (own fields, then inherited ones).
    pub fields: &'static [FieldDef],
}

impl ObjectDef {
    /// The class `VERSION`.
    pub fn version(&self) -> ObjectVersion {
        ObjectVersion::new(self.major, self.minor)
    }

    /// The definition of a field.
    pub fn field(&self, name: &str) -> Option<&'static FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// All object classes of nova 34.0.0, sorted by name.
pub fn all() -> &'static [ObjectDef] {
    super::registry_data::OBJECTS
}

/// The class registered under `name`.
pub fn lookup(name: &str) -> Option<&'static ObjectDef> {
    let objs = all();
    objs.binary_search_by(|d| d.name.cmp(name))
        .ok()
        .and_then(|i| objs.get(i))
}

/// The version of `name` we read and write (nova 34.0.0's `VERSION`).
pub fn version_of(name: &str) -> Option<ObjectVersion> {
    lookup(name).map(ObjectDef::version)
}

/// The version manifest oslo's `obj_tree_get_versions(name)` builds: `name`
/// and every object that can be nested in it (depth first, in field order),
/// each with our version. This is the `object_versions` argument of
/// `object_class_action_versions`.
pub fn manifest_for(name: &str) -> Option<Vec<(&'static str, ObjectVersion)>> {
    let def = lookup(name)?;
    let mut out = Vec::new();
    walk(def, &mut out);
    Some(out)
}

fn walk(def: &'static ObjectDef, out: &mut Vec<(&'static str, ObjectVersion)>) {
    if out.iter().any(|(n, _)| *n == def.name) {
        return;
    }
    out.push((def.name, def.version()));
    for f in def.fields {
        if let FieldKind::Object(child) | FieldKind::ListOfObjects(child) = f.kind {
            if let Some(cdef) = lookup(child) {
                walk(cdef, out);
            }
        }
    }
}

/// [`manifest_for`] as the JSON object sent on the wire (name -> "major.minor").
pub fn manifest_json(name: &str) -> Option<Value> {
    manifest_for(name).map(|m| {
        Value::Object(
            m.into_iter()
                .map(|(n, v)| (n.to_owned(), Value::String(v.to_string())))
                .collect(),
        )
    })
}

/// Manifest of every nova object (not notification payloads) we can read:
/// name -> version. Sending it lets the conductor backport anything we get.
pub fn full_manifest() -> Map<String, Value> {
    all()
        .iter()
        .filter(|d| !d.notification)
        .map(|d| (d.name.to_owned(), Value::String(d.version().to_string())))
        .collect()
}

/// Checks that `obj` is a known nova object at a version we can read
/// (same major, minor no newer than ours) and returns its class.
pub fn check_version(obj: &NovaObject) -> Result<&'static ObjectDef, ObjectError> {
    if obj.namespace() != NAMESPACE {
        return Err(ObjectError::WrongNamespace {
            name: obj.name().to_owned(),
            namespace: obj.namespace().to_owned(),
        });
    }
    let def = lookup(obj.name()).ok_or_else(|| ObjectError::UnknownObject {
        name: obj.name().to_owned(),
        version: obj.version().to_owned(),
    })?;
    let v = ObjectVersion::parse(obj.version()).ok_or_else(|| ObjectError::BadVersion {
        name: obj.name().to_owned(),
        version: obj.version().to_owned(),
    })?;
    if !v.readable_by(def.version()) {
        return Err(ObjectError::UnsupportedVersion {
            name: obj.name().to_owned(),
            version: obj.version().to_owned(),
            supported: def.version().to_string(),
        });
    }
    Ok(def)
}

/// Deep check of an object: known class, readable version, and every known
/// field (recursively into nested objects) of the right wire type. Unknown
/// fields are accepted and left alone.
pub fn validate(obj: &NovaObject) -> Result<&'static ObjectDef, ObjectError> {
    validate_at(obj, obj.name())
}

fn validate_at(obj: &NovaObject, path: &str) -> Result<&'static ObjectDef, ObjectError> {
    let def = check_version(obj)?;
    for (name, value) in obj.data() {
        let Some(f) = def.field(name) else { continue };
        check_field(path, f, value)?;
    }
    Ok(def)
}

/// Validates an arbitrary JSON value as an object primitive (envelope, then deep).
pub fn validate_value(v: &Value) -> Result<NovaObject, ObjectError> {
    let obj = NovaObject::from_value(v)?;
    validate(&obj)?;
    Ok(obj)
}

/// A nested value that is not a readable object primitive.
fn nested_err(path: &str, f: &FieldDef, v: &Value, e: &ObjectError) -> ObjectError {
    ObjectError::FieldType {
        object: path.to_owned(),
        field: f.name.to_owned(),
        expected: f.kind.describe(),
        found: format!("{} ({e})", short(v)),
    }
}

/// Validates every object primitive found in an RPC argument tree (plain
/// JSON dicts and lists are walked; each object found is checked deeply and
/// not walked again). Returns how many top-level objects were checked.
pub fn validate_tree(v: &Value) -> Result<usize, ObjectError> {
    match v {
        Value::Object(m) if m.contains_key(super::KEY_NAME) => {
            validate_value(v)?;
            Ok(1)
        }
        Value::Object(m) => m.values().map(validate_tree).sum(),
        Value::Array(a) => a.iter().map(validate_tree).sum(),
        _ => Ok(0),
    }
}

fn check_field(path: &str, f: &FieldDef, v: &Value) -> Result<(), ObjectError> {
    let wrong = || ObjectError::FieldType {
        object: path.to_owned(),
        field: f.name.to_owned(),
        expected: f.kind.describe(),
        found: short(v),
    };
    if v.is_null() {
        // oslo accepts None for nullable fields only; `Any` accepts everything.
        return if f.nullable || f.kind == FieldKind::Any {
            Ok(())
        } else {
            Err(wrong())
        };
    }
    let is_int = |x: &Value| x.is_i64() || x.is_u64();
    let all = |x: &Value, pred: &dyn Fn(&Value) -> bool| -> bool {
        x.as_array().is_some_and(|a| a.iter().all(pred))
    };
    let all_values = |x: &Value, pred: &dyn Fn(&Value) -> bool| -> bool {
        x.as_object().is_some_and(|m| m.values().all(pred))
    };
    let ok = match f.kind {
        FieldKind::String | FieldKind::Uuid => v.is_string(),
        FieldKind::Integer => is_int(v),
        FieldKind::Number => v.is_number(),
        FieldKind::Boolean => v.is_boolean(),
        FieldKind::DateTime => v.as_str().is_some_and(|s| parse_isotime(s).is_ok()),
        FieldKind::IpAddress => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        FieldKind::IpNetwork => v.as_str().is_some_and(|s| {
            s.split_once('/').is_some_and(|(a, p)| {
                a.parse::<std::net::IpAddr>().is_ok() && p.parse::<u8>().is_ok()
            })
        }),
        FieldKind::JsonString => v
            .as_str()
            .is_some_and(|s| serde_json::from_str::<Value>(s).is_ok()),
        FieldKind::DictOfStrings => all_values(v, &|x| x.is_string()),
        FieldKind::DictOfNullableStrings => all_values(v, &|x| x.is_string() || x.is_null()),
        FieldKind::DictOfIntegers => all_values(v, &is_int),
        FieldKind::DictOfListOfStrings => all_values(v, &|x| all(x, &|y| y.is_string())),
        FieldKind::DictOfSetOfIntegers => all_values(v, &|x| all(x, &is_int)),
        FieldKind::ListOfStrings | FieldKind::SetOfStrings => all(v, &|x| x.is_string()),
        FieldKind::ListOfIntegers | FieldKind::SetOfIntegers => all(v, &is_int),
        FieldKind::ListOfSetsOfIntegers => all(v, &|x| all(x, &is_int)),
        FieldKind::ListOfListsOfStrings => all(v, &|x| all(x, &|y| y.is_string())),
        FieldKind::ListOfDictOfNullableStrings => {
            all(v, &|x| all_values(x, &|y| y.is_string() || y.is_null()))
        }
        FieldKind::Object(_) => {
            let nested = NovaObject::from_value(v).map_err(|e| nested_err(path, f, v, &e))?;
            let sub = format!("{path}.{}:{}", f.name, nested.name());
            validate_at(&nested, &sub)?;
            true
        }
        FieldKind::ListOfObjects(_) => {
            let Some(items) = v.as_array() else {
                return Err(wrong());
            };
            for (i, item) in items.iter().enumerate() {
                let nested =
                    NovaObject::from_value(item).map_err(|e| nested_err(path, f, item, &e))?;
                let sub = format!("{path}.{}[{i}]:{}", f.name, nested.name());
                validate_at(&nested, &sub)?;
            }
            true
        }
        FieldKind::Any => true,
    };
    if ok {
        Ok(())
    } else {
        Err(wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_and_has_the_compute_objects() {
        let names: Vec<_> = all().iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for (n, v) in [
            ("Instance", "2.8"),
            ("Service", "1.22"),
            ("ComputeNode", "1.19"),
            ("Flavor", "1.2"),
            ("ImageMeta", "1.8"),
            ("ImageMetaProps", "1.44"),
            ("RequestSpec", "1.15"),
            ("InstanceList", "2.6"),
        ] {
            assert_eq!(
                version_of(n).map(|v| v.to_string()).as_deref(),
                Some(v),
                "{n}"
            );
        }
        assert!(lookup("NoSuchThing").is_none());
    }

    #[test]
    fn manifest_walks_children_once_in_field_order() {
        let m = manifest_for("Service").unwrap();
        let names: Vec<_> = m.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "Service",
                "ComputeNode",
                "HVSpec",
                "PciDevicePoolList",
                "PciDevicePool"
            ]
        );
        assert!(manifest_for("Nope").is_none());
        let full = full_manifest();
        assert_eq!(full.get("Instance"), Some(&Value::from("2.8")));
        assert!(!full.contains_key("InstancePayload"));
    }
}
