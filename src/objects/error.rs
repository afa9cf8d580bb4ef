//! The error type of the [`crate::objects`] module.

/// Everything that can go wrong reading, checking or building nova objects.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The value given as an object primitive is not a JSON object.
    #[error("not a nova object primitive: expected a JSON object, got {found}")]
    NotAnObject {
        /// JSON type that was found instead.
        found: &'static str,
    },
    /// A mandatory `nova_object.*` key is absent.
    #[error("nova object primitive{context} has no \"{key}\"")]
    MissingKey {
        /// The missing key, e.g. `nova_object.name`.
        key: &'static str,
        /// ` (Name)` when the name is known, else empty.
        context: String,
    },
    /// A `nova_object.*` key has the wrong JSON type.
    #[error("nova object primitive{context}: \"{key}\" must be {expected}, got {found}")]
    WrongKeyType {
        /// The offending key.
        key: &'static str,
        /// What it should have been.
        expected: &'static str,
        /// JSON type found.
        found: &'static str,
        /// ` (Name)` when the name is known, else empty.
        context: String,
    },
    /// `nova_object.version` is not `major.minor`.
    #[error("nova object {name}: version {version:?} is not of the form major.minor")]
    BadVersion {
        /// Object name.
        name: String,
        /// The version string received.
        version: String,
    },
    /// Version of an object that this build (nova 34.0.0 objects) cannot read.
    #[error("nova object {name} version {version} is not supported (we read {name} up to {supported}; same major version required)")]
    UnsupportedVersion {
        /// Object name.
        name: String,
        /// The version received.
        version: String,
        /// The newest version we know.
        supported: String,
    },
    /// Namespace other than `nova`.
    #[error("nova object {name}: namespace {namespace:?} is not \"nova\"")]
    WrongNamespace {
        /// Object name.
        name: String,
        /// The namespace received.
        namespace: String,
    },
    /// Object name not known to the nova 34.0.0 registry.
    #[error("unknown nova object {name:?} (version {version})")]
    UnknownObject {
        /// Object name.
        name: String,
        /// The version received.
        version: String,
    },
    /// A typed view was asked for a different object.
    #[error("expected a nova {expected} object, got {found}")]
    WrongObject {
        /// Name the view wants.
        expected: &'static str,
        /// Name found in the primitive.
        found: String,
    },
    /// A field holds a value of the wrong type.
    #[error("nova object {object} field {field}: expected {expected}, got {found}")]
    FieldType {
        /// Path of the object holding the field (e.g. `Instance.flavor:Flavor`).
        object: String,
        /// Field name.
        field: String,
        /// Expected wire type.
        expected: &'static str,
        /// Short rendering of what was found.
        found: String,
    },
    /// A field that must be set is not (or is null where it must not be).
    #[error("nova object {object}: field {field} is not set")]
    FieldMissing {
        /// Object name.
        object: String,
        /// Field name.
        field: String,
    },
    /// A timestamp that is not ISO 8601 as oslo writes it.
    #[error("bad timestamp {value:?}: {reason}")]
    BadTime {
        /// The string received.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A conductor reply that does not have the expected shape.
    #[error("bad conductor reply: {0}")]
    BadReply(String),
    /// A field that holds JSON inside a string (e.g. ComputeNode.numa_topology) is not valid JSON.
    #[error("field {field} holds invalid JSON: {source}")]
    EmbeddedJson {
        /// Field name.
        field: &'static str,
        /// Parser error.
        #[source]
        source: serde_json::Error,
    },
}

/// Short name of a JSON value's type, for error messages.
pub(crate) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Short rendering of a JSON value for error messages (at most ~60 chars).
pub(crate) fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.len() <= 60 {
        return s;
    }
    let mut end = 57;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
