//! The generic wire form of a nova versioned object.
//!
//! oslo.versionedobjects serializes an object as
//! `{"nova_object.name", "nova_object.namespace", "nova_object.version",
//! "nova_object.data", "nova_object.changes"?}`. [`NovaObject`] holds exactly
//! that, keeping every field and every unknown key it was given, so that
//! `NovaObject::from_value(v)?.to_value() == v` for every primitive oslo can
//! produce. (`to_value` writes `obj_what_changed()` like oslo: own changes
//! plus fields whose nested object has changes; oslo's own output always
//! lists those already.)

use serde_json::{Map, Value};

use super::error::json_type;
use super::ObjectError;

/// Key of the object class name.
pub const KEY_NAME: &str = "nova_object.name";
/// Key of the namespace (always `nova`).
pub const KEY_NAMESPACE: &str = "nova_object.namespace";
/// Key of the `major.minor` version.
pub const KEY_VERSION: &str = "nova_object.version";
/// Key of the field data.
pub const KEY_DATA: &str = "nova_object.data";
/// Key of the list of changed fields (present only when non-empty in nova's output).
pub const KEY_CHANGES: &str = "nova_object.changes";
/// The namespace of every nova object.
pub const NAMESPACE: &str = "nova";

/// A nova versioned object in its generic wire form, with change tracking.
#[derive(Debug, Clone, PartialEq)]
pub struct NovaObject {
    name: String,
    namespace: String,
    version: String,
    data: Map<String, Value>,
    /// `None`: no `nova_object.changes` key. Kept in order, without duplicates.
    changes: Option<Vec<String>>,
    /// Top-level keys other than the five above, kept verbatim.
    extra: Map<String, Value>,
}

fn context(name: Option<&str>) -> String {
    name.map(|n| format!(" ({n})")).unwrap_or_default()
}

impl NovaObject {
    /// A new object with no field set and no changes (namespace `nova`).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: NAMESPACE.to_owned(),
            version: version.into(),
            data: Map::new(),
            changes: None,
            extra: Map::new(),
        }
    }

    /// True when `v` looks like an object primitive (a JSON object with a
    /// `nova_object.name` key), whatever else it holds.
    pub fn is_primitive(v: &Value) -> bool {
        v.as_object().is_some_and(|m| m.contains_key(KEY_NAME))
    }

    /// Reads an object primitive. Checks only the envelope (keys and their
    /// JSON types, version syntax); field values are not interpreted, see
    /// [`super::registry::validate`] for that.
    pub fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let map = v.as_object().ok_or(ObjectError::NotAnObject {
            found: json_type(v),
        })?;
        let name = match map.get(KEY_NAME) {
            None => {
                return Err(ObjectError::MissingKey {
                    key: KEY_NAME,
                    context: String::new(),
                })
            }
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => {
                return Err(ObjectError::WrongKeyType {
                    key: KEY_NAME,
                    expected: "a non-empty string",
                    found: json_type(other),
                    context: String::new(),
                })
            }
        };
        let ctx = || context(Some(&name));
        let get_str = |key: &'static str| -> Result<String, ObjectError> {
            match map.get(key) {
                None => Err(ObjectError::MissingKey {
                    key,
                    context: ctx(),
                }),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(ObjectError::WrongKeyType {
                    key,
                    expected: "a string",
                    found: json_type(other),
                    context: ctx(),
                }),
            }
        };
        let namespace = get_str(KEY_NAMESPACE)?;
        let version = get_str(KEY_VERSION)?;
        if super::ObjectVersion::parse(&version).is_none() {
            return Err(ObjectError::BadVersion { name, version });
        }
        let data = match map.get(KEY_DATA) {
            None => {
                return Err(ObjectError::MissingKey {
                    key: KEY_DATA,
                    context: ctx(),
                })
            }
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(ObjectError::WrongKeyType {
                    key: KEY_DATA,
                    expected: "an object",
                    found: json_type(other),
                    context: ctx(),
                })
            }
        };
        let changes = match map.get(KEY_CHANGES) {
            None => None,
            Some(Value::Array(items)) => {
                let mut out: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            return Err(ObjectError::WrongKeyType {
                                key: KEY_CHANGES,
                                expected: "an array of strings",
                                found: json_type(other),
                                context: ctx(),
                            })
                        }
                    }
                }
                Some(out)
            }
            Some(other) => {
                return Err(ObjectError::WrongKeyType {
                    key: KEY_CHANGES,
                    expected: "an array of strings",
                    found: json_type(other),
                    context: ctx(),
                })
            }
        };
        let extra = map
            .iter()
            .filter(|(k, _)| {
                ![KEY_NAME, KEY_NAMESPACE, KEY_VERSION, KEY_DATA, KEY_CHANGES].contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Self {
            name,
            namespace,
            version,
            data,
            changes,
            extra,
        })
    }

    /// The primitive form, as nova's `obj_to_primitive` would write it
    /// (`nova_object.changes` = [`Self::what_changed`], absent when empty and
    /// never set).
    pub fn to_value(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert(KEY_NAME.into(), Value::String(self.name.clone()));
        m.insert(KEY_NAMESPACE.into(), Value::String(self.namespace.clone()));
        m.insert(KEY_VERSION.into(), Value::String(self.version.clone()));
        m.insert(KEY_DATA.into(), Value::Object(self.data.clone()));
        // oslo writes obj_what_changed(): own changes plus fields whose
        // nested object has changes.
        let mut changes = self.changes.clone();
        let nested = self.nested_changed();
        if !nested.is_empty() {
            let ch = changes.get_or_insert_with(Vec::new);
            for f in nested {
                if !ch.contains(&f) {
                    ch.push(f);
                }
            }
        }
        if let Some(ch) = changes {
            m.insert(
                KEY_CHANGES.into(),
                Value::Array(ch.into_iter().map(Value::String).collect()),
            );
        }
        Value::Object(m)
    }

    /// Object class name, e.g. `Instance`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Namespace (`nova`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Version string as received or built, e.g. `2.8`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// All set fields, by name (unknown fields included).
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// Top-level keys that are not `nova_object.*` envelope keys (kept verbatim).
    pub fn extra_keys(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// Value of a field; `None` when the field is not set.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.data.get(field)
    }

    /// Value of a field unless unset or null.
    pub fn get_non_null(&self, field: &str) -> Option<&Value> {
        self.data.get(field).filter(|v| !v.is_null())
    }

    /// True when the field is set (possibly to null), like `obj_attr_is_set`.
    pub fn is_set(&self, field: &str) -> bool {
        self.data.contains_key(field)
    }

    /// Sets a field and records it as changed (like `setattr` on a nova object:
    /// the change is recorded even when the value is equal to the old one).
    pub fn set(&mut self, field: &str, value: impl Into<Value>) {
        self.data.insert(field.to_owned(), value.into());
        self.mark_changed(field);
    }

    /// Sets a field to a nested object and records the change.
    pub fn set_object(&mut self, field: &str, obj: &NovaObject) {
        self.set(field, obj.to_value());
    }

    /// Unsets a field (like `delattr`); its change mark is dropped too.
    pub fn unset(&mut self, field: &str) -> Option<Value> {
        if let Some(ch) = &mut self.changes {
            ch.retain(|c| c != field);
        }
        self.data.remove(field)
    }

    /// Records `field` as changed without touching its value.
    pub fn mark_changed(&mut self, field: &str) {
        let ch = self.changes.get_or_insert_with(Vec::new);
        if !ch.iter().any(|c| c == field) {
            ch.push(field.to_owned());
        }
    }

    /// The fields listed in this object's own `nova_object.changes`.
    pub fn own_changes(&self) -> &[String] {
        self.changes.as_deref().unwrap_or(&[])
    }

    /// Like oslo's `obj_what_changed()`: own changed fields, plus every field
    /// holding a nested object that has changes of its own, plus `objects`
    /// when any element of a list object's `objects` has changes.
    pub fn what_changed(&self) -> Vec<String> {
        let mut out: Vec<String> = self.own_changes().to_vec();
        for k in self.nested_changed() {
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }

    /// Fields holding a nested object (or, for `objects`, list elements)
    /// that has changes of its own.
    fn nested_changed(&self) -> Vec<String> {
        self.data
            .iter()
            .filter(|(k, v)| match v {
                Value::Object(_) => value_has_changes(v),
                Value::Array(items) if *k == "objects" => items.iter().any(value_has_changes),
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Like oslo's `obj_get_changes()`: changed field -> current value (what
    /// the conductor writes on `save`). Fields marked changed but unset are skipped.
    pub fn changes(&self) -> Map<String, Value> {
        self.what_changed()
            .into_iter()
            .filter_map(|k| self.data.get(&k).map(|v| (k, v.clone())))
            .collect()
    }

    /// Forgets all changes of this object (not of nested ones), like
    /// `obj_reset_changes()`; the wire form then has no `nova_object.changes`.
    pub fn reset_changes(&mut self) {
        self.changes = None;
    }

    /// Forgets the changes of this object and of every nested object
    /// (`obj_reset_changes(recursive=True)`).
    pub fn reset_changes_recursive(&mut self) {
        self.changes = None;
        for v in self.data.values_mut() {
            strip_changes(v);
        }
    }

    /// Replaces the change set (used when applying a conductor reply).
    pub fn set_changes(&mut self, fields: Vec<String>) {
        let mut uniq: Vec<String> = Vec::with_capacity(fields.len());
        for f in fields {
            if !uniq.contains(&f) {
                uniq.push(f);
            }
        }
        self.changes = if uniq.is_empty() { None } else { Some(uniq) };
    }

    /// Nested object held by `field`; `None` when unset or null.
    pub fn object(&self, field: &str) -> Result<Option<NovaObject>, ObjectError> {
        match self.get_non_null(field) {
            None => Ok(None),
            Some(v) => NovaObject::from_value(v).map(Some),
        }
    }

    /// Objects of a list-of-objects field (empty when unset or null).
    pub fn objects(&self, field: &str) -> Result<Vec<NovaObject>, ObjectError> {
        match self.get_non_null(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(NovaObject::from_value).collect(),
            Some(other) => Err(ObjectError::FieldType {
                object: self.name.clone(),
                field: field.to_owned(),
                expected: "a list of objects",
                found: super::error::short(other),
            }),
        }
    }

    /// Changes the version written on the wire (no field conversion is done).
    pub fn set_version(&mut self, version: impl Into<String>) {
        self.version = version.into();
    }
}

/// Removes `nova_object.changes` from every object primitive inside `v`.
fn strip_changes(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key(KEY_NAME) {
                m.remove(KEY_CHANGES);
            }
            m.values_mut().for_each(strip_changes);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_changes),
        _ => {}
    }
}

/// True when `v` is an object primitive with a non-empty change list, or
/// (recursively) holds a nested object that has one.
fn value_has_changes(v: &Value) -> bool {
    let Some(m) = v.as_object() else {
        return false;
    };
    if !m.contains_key(KEY_NAME) {
        return false;
    }
    if m.get(KEY_CHANGES)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return true;
    }
    let Some(data) = m.get(KEY_DATA).and_then(Value::as_object) else {
        return false;
    };
    data.iter().any(|(k, v)| match v {
        Value::Object(_) => value_has_changes(v),
        Value::Array(items) if k == "objects" => items.iter().any(value_has_changes),
        _ => false,
    })
}

impl serde::Serialize for NovaObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for NovaObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        NovaObject::from_value(&v).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&Value> for NovaObject {
    type Error = ObjectError;
    fn try_from(v: &Value) -> Result<Self, ObjectError> {
        NovaObject::from_value(v)
    }
}

impl From<&NovaObject> for Value {
    fn from(o: &NovaObject) -> Value {
        o.to_value()
    }
}

/// Compares two primitives ignoring every `nova_object.changes` key at any
/// depth (nova's `obj_equal_prims`; the resource tracker uses it to decide
/// whether a ComputeNode needs saving).
pub fn equal_ignoring_changes(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            // Key order does not matter (serde_json keeps insertion order here).
            let keys = |m: &Map<String, Value>| -> std::collections::BTreeSet<String> {
                m.keys().filter(|k| *k != KEY_CHANGES).cloned().collect()
            };
            keys(x) == keys(y)
                && x.iter()
                    .filter(|(k, _)| *k != KEY_CHANGES)
                    .all(|(k, v)| y.get(k).is_some_and(|w| equal_ignoring_changes(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| equal_ignoring_changes(v, w))
        }
        _ => a == b,
    }
}
