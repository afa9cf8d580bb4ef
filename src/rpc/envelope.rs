//! The oslo 2.0 envelope `{"oslo.version": "2.0", "oslo.message": "<json>"}`
//! and the RPC request and reply messages inside it.
//!
//! Every inbound body goes through [`open`] then [`Request::from_message`]
//! or [`Reply::from_message`]: typed parsing plus the checks of
//! `api-schemas/oslo-envelope.schema.json` and `oslo-context.schema.json`.

use serde_json::{Map, Value};

use super::context::{ContextError, RequestContext};
use super::pyjson;

/// Envelope version oslo 18 writes.
pub const ENVELOPE_VERSION: &str = "2.0";
/// Key of the version in the envelope.
pub const VERSION_KEY: &str = "oslo.version";
/// Key of the serialized message in the envelope.
pub const MESSAGE_KEY: &str = "oslo.message";

/// Why a body or message was rejected.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("body is not an oslo envelope: {0}")]
    NotEnvelope(&'static str),
    #[error("unsupported envelope version {0:?} (supported: 2.x)")]
    Version(String),
    #[error("oslo.message is not a JSON object: {0}")]
    BadMessage(String),
    #[error("field {field:?}: {what}")]
    Field { field: &'static str, what: String },
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Serialize(#[from] pyjson::PyJsonError),
}

fn field(field: &'static str, what: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Field {
        field,
        what: what.into(),
    }
}

/// Wrap a message in the envelope, byte-compatible with oslo's
/// `serialize_msg` followed by kombu's JSON encoding.
pub fn seal(msg: &Map<String, Value>) -> Result<Vec<u8>, EnvelopeError> {
    let inner = pyjson::dumps(msg)?;
    let mut env = Map::new();
    env.insert(
        VERSION_KEY.to_string(),
        Value::String(ENVELOPE_VERSION.to_string()),
    );
    env.insert(MESSAGE_KEY.to_string(), Value::String(inner));
    Ok(pyjson::dumps(&env)?.into_bytes())
}

/// Open an envelope: check it and return the inner message.
pub fn open(body: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    let outer: Value = serde_json::from_slice(body).map_err(EnvelopeError::NotJson)?;
    let Value::Object(outer) = outer else {
        return Err(EnvelopeError::NotEnvelope("not a JSON object"));
    };
    let version = match outer.get(VERSION_KEY) {
        Some(Value::String(v)) => v,
        Some(_) => return Err(EnvelopeError::NotEnvelope("oslo.version is not a string")),
        None => return Err(EnvelopeError::NotEnvelope("no oslo.version")),
    };
    if !envelope_version_ok(version) {
        return Err(EnvelopeError::Version(version.clone()));
    }
    let inner = match outer.get(MESSAGE_KEY) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(EnvelopeError::NotEnvelope("oslo.message is not a string")),
        None => return Err(EnvelopeError::NotEnvelope("no oslo.message")),
    };
    match serde_json::from_str::<Value>(inner) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(EnvelopeError::BadMessage("not an object".into())),
        Err(e) => Err(EnvelopeError::BadMessage(e.to_string())),
    }
}

/// oslo's `version_is_compatible("2.0", v)`: same major, minor 0.
fn envelope_version_ok(v: &str) -> bool {
    matches!(Version::parse(v), Some(ver) if ver.major == 2 && ver.minor == 0 && ver.rev == 0)
}

/// An RPC API version `major.minor[.rev]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub rev: u32,
}

impl Version {
    /// Parse `X.Y` or `X.Y.Z`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let num = |p: Option<&str>| {
            p.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let rev = match parts.next() {
            None => 0,
            p => num(p)?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self { major, minor, rev })
    }

    /// oslo's `version_is_compatible(self, requested)`.
    pub fn accepts(&self, requested: &Version) -> bool {
        requested.major == self.major && (requested.minor, requested.rev) <= (self.minor, self.rev)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.rev == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.rev)
        }
    }
}

/// Where to answer a call: taken from a message even when the rest of it is bad.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyTo {
    pub msg_id: String,
    pub reply_q: String,
}

impl ReplyTo {
    /// `_msg_id` and `_reply_q` when both are non-empty strings.
    pub fn from_message(msg: &Map<String, Value>) -> Option<Self> {
        match (msg.get("_msg_id"), msg.get("_reply_q")) {
            (Some(Value::String(id)), Some(Value::String(q)))
                if !id.is_empty() && !q.is_empty() =>
            {
                Some(Self {
                    msg_id: id.clone(),
                    reply_q: q.clone(),
                })
            }
            _ => None,
        }
    }
}

/// An RPC request (call or cast) after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub args: Map<String, Value>,
    pub namespace: Option<String>,
    /// Requested version, `1.0` when absent (as oslo).
    pub version: String,
    pub unique_id: Option<String>,
    /// Set for calls.
    pub reply_to: Option<ReplyTo>,
    /// The caller's `call_monitor_timeout` (`_timeout`), seconds.
    pub client_timeout: Option<f64>,
    pub context: RequestContext,
}

fn opt_string(
    msg: &mut Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, EnvelopeError> {
    match msg.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(field(
            key,
            format!("expected a string or null, got {}", type_name(&other)),
        )),
    }
}

/// JSON type name for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Request {
    /// Validate an opened message as an RPC request.
    pub fn from_message(mut msg: Map<String, Value>) -> Result<Self, EnvelopeError> {
        let method = match msg.shift_remove("method") {
            Some(Value::String(m)) if !m.is_empty() => m,
            Some(Value::String(_)) => return Err(field("method", "must not be empty")),
            Some(other) => {
                return Err(field(
                    "method",
                    format!("expected a string, got {}", type_name(&other)),
                ))
            }
            None => return Err(field("method", "missing")),
        };
        let args = match msg.shift_remove("args") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(a)) => a,
            Some(other) => {
                return Err(field(
                    "args",
                    format!("expected an object, got {}", type_name(&other)),
                ))
            }
        };
        let namespace = opt_string(&mut msg, "namespace")?;
        let version = opt_string(&mut msg, "version")?.unwrap_or_else(|| "1.0".to_string());
        if Version::parse(&version).is_none() {
            return Err(field(
                "version",
                format!("{version:?} is not a version (X.Y or X.Y.Z)"),
            ));
        }
        let unique_id = opt_string(&mut msg, "_unique_id")?;
        let msg_id = opt_string(&mut msg, "_msg_id")?;
        let reply_q = opt_string(&mut msg, "_reply_q")?;
        let reply_to = match (msg_id, reply_q) {
            (Some(id), Some(q)) if !id.is_empty() && !q.is_empty() => Some(ReplyTo {
                msg_id: id,
                reply_q: q,
            }),
            (Some(id), _) if !id.is_empty() => {
                return Err(field("_reply_q", "a call (with _msg_id) needs _reply_q"))
            }
            _ => None,
        };
        let client_timeout = match msg.shift_remove("_timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(t) if t >= 0.0 => Some(t),
                _ => return Err(field("_timeout", "must be a non-negative number")),
            },
            Some(other) => {
                return Err(field(
                    "_timeout",
                    format!("expected a number or null, got {}", type_name(&other)),
                ))
            }
        };
        let context = RequestContext::unpack(&mut msg)?;
        Ok(Self {
            method,
            args,
            namespace,
            version,
            unique_id,
            reply_to,
            client_timeout,
            context,
        })
    }

    /// The message oslo's `RPCClient` builds, keys in oslo's order:
    /// method, args, namespace, version, [_msg_id, _reply_q, _timeout],
    /// _unique_id, then the context.
    pub fn to_message(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("method".into(), Value::String(self.method.clone()));
        m.insert("args".into(), Value::Object(self.args.clone()));
        if let Some(ns) = &self.namespace {
            m.insert("namespace".into(), Value::String(ns.clone()));
        }
        m.insert("version".into(), Value::String(self.version.clone()));
        if let Some(rt) = &self.reply_to {
            m.insert("_msg_id".into(), Value::String(rt.msg_id.clone()));
            m.insert("_reply_q".into(), Value::String(rt.reply_q.clone()));
            m.insert(
                "_timeout".into(),
                self.client_timeout
                    .and_then(|t| {
                        if t.fract() == 0.0 {
                            Some(Value::from(t as u64))
                        } else {
                            serde_json::Number::from_f64(t).map(Value::Number)
                        }
                    })
                    .unwrap_or(Value::Null),
            );
        }
        if let Some(u) = &self.unique_id {
            m.insert("_unique_id".into(), Value::String(u.clone()));
        }
        self.context.pack_into(&mut m);
        m
    }
}

/// A reply to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub result: Value,
    /// The serialized remote exception, if the call failed.
    pub failure: Option<String>,
    /// `false` only for call-monitor heartbeats.
    pub ending: bool,
    pub msg_id: Option<String>,
    pub unique_id: Option<String>,
}

impl Reply {
    /// The reply message, keys in oslo 18's order.
    pub fn to_message(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("result".into(), self.result.clone());
        m.insert(
            "failure".into(),
            self.failure
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        m.insert("ending".into(), Value::Bool(self.ending));
        m.insert(
            "_msg_id".into(),
            self.msg_id
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        if let Some(u) = &self.unique_id {
            m.insert("_unique_id".into(), Value::String(u.clone()));
        }
        m
    }

    /// Validate an opened message as a reply.
    pub fn from_message(mut msg: Map<String, Value>) -> Result<Self, EnvelopeError> {
        let result = msg.shift_remove("result").unwrap_or(Value::Null);
        let failure = opt_string(&mut msg, "failure")?;
        let ending = match msg.shift_remove("ending") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(field(
                    "ending",
                    format!("expected a boolean, got {}", type_name(&other)),
                ))
            }
        };
        let msg_id = match msg.shift_remove("_msg_id") {
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                return Err(field(
                    "_msg_id",
                    format!("expected a string, got {}", type_name(&other)),
                ))
            }
            None => return Err(field("_msg_id", "missing")),
        };
        let unique_id = opt_string(&mut msg, "_unique_id")?;
        Ok(Self {
            result,
            failure,
            ending,
            msg_id,
            unique_id,
        })
    }
}

/// A new oslo-style id: a uuid4 in hex without dashes.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("6.5").accepts(&v("6.0")));
        assert!(v("6.5").accepts(&v("6.5")));
        assert!(!v("6.5").accepts(&v("6.6")));
        assert!(!v("6.5").accepts(&v("5.0")));
        assert!(v("1.1").accepts(&v("1.0")));
        assert!(!v("1.1").accepts(&v("1.1.1")));
        for bad in ["", "1", "a.b", "1.2.3.4", "1..2", "-1.0", "1.0 "] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn garbage_bodies_are_errors() {
        let bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\xff\xfe".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#.to_vec(),
            br#"{"oslo.version": 2, "oslo.message": "{}"}"#.to_vec(),
            br#"{"oslo.version": "2.0", "oslo.message": "[1]"}"#.to_vec(),
            br#"{"oslo.version": "2.0", "oslo.message": {}}"#.to_vec(),
            vec![b'{'; 1 << 20],
        ];
        for b in bodies {
            assert!(open(&b).is_err());
        }
    }

    #[test]
    fn bad_requests_are_errors() {
        for m in [
            serde_json::json!({}),
            serde_json::json!({"method": 1}),
            serde_json::json!({"method": "x", "args": []}),
            serde_json::json!({"method": "x", "version": "one"}),
            serde_json::json!({"method": "x", "_msg_id": "a"}),
            serde_json::json!({"method": "x", "_timeout": "3"}),
            serde_json::json!({"method": "x", "_context_roles": 3}),
        ] {
            let Value::Object(m) = m else { unreachable!() };
            assert!(Request::from_message(m).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            if let Ok(m) = open(&body) {
                let _ = Request::from_message(m);
            }
        }

        #[test]
        fn arbitrary_strings_survive_a_round_trip(method in "\\PC{1,40}", arg in "\\PC{0,200}") {
            let mut args = Map::new();
            args.insert("arg".into(), Value::String(arg.clone()));
            let req = Request {
                method: method.clone(),
                args,
                namespace: None,
                version: "1.0".into(),
                unique_id: Some(new_id()),
                reply_to: None,
                client_timeout: None,
                context: RequestContext::default(),
            };
            let body = seal(&req.to_message()).unwrap();
            proptest::prop_assert!(body.is_ascii());
            let back = Request::from_message(open(&body).unwrap()).unwrap();
            proptest::prop_assert_eq!(back, req);
        }
    }
}
