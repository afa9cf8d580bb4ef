//! Remote exceptions on the wire, exactly as oslo's
//! `serialize_remote_exception` writes them: a JSON string with `class`,
//! `module`, `message`, `tb`, `args`, `kwargs`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::pyjson;

/// Module of oslo's dispatcher exceptions.
pub const DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";
/// Module of Python's built-in exceptions (always re-raisable by callers).
pub const BUILTINS_MODULE: &str = "builtins";

/// Errors decoding a failure.
#[derive(Debug, thiserror::Error)]
pub enum FailureError {
    #[error("failure is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot serialize failure: {0}")]
    Serialize(#[from] pyjson::PyJsonError),
}

/// A remote exception: what a handler returns to fail a call, and what a
/// call returns when the remote side failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("remote error {module}.{class}: {message}")]
pub struct RemoteFailure {
    /// Exception class name, e.g. `InstanceNotFound`.
    pub class: String,
    /// Python module, e.g. `nova.exception`.
    pub module: String,
    /// `str(exception)`.
    pub message: String,
    /// Formatted traceback lines.
    #[serde(default)]
    pub tb: Vec<String>,
    /// Positional arguments of the exception.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments (nova exceptions carry `code` and their format keys).
    #[serde(default)]
    pub kwargs: Map<String, Value>,
}

impl RemoteFailure {
    /// A failure of `module.class` with `message`, `args = [message]`, no kwargs.
    pub fn new(
        module: impl Into<String>,
        class: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        let module = module.into();
        let class = class.into();
        let tb = vec![format!("{module}.{class}: {message}\n")];
        Self {
            args: vec![Value::String(message.clone())],
            class,
            module,
            message,
            tb,
            kwargs: Map::new(),
        }
    }

    /// Add a keyword argument (nova exceptions: `code`, format keys).
    pub fn with_kwarg(mut self, key: impl Into<String>, value: Value) -> Self {
        self.kwargs.insert(key.into(), value);
        self
    }

    /// oslo's `NoSuchMethod(method)`.
    pub fn no_such_method(method: &str) -> Self {
        Self::new(
            DISPATCHER_MODULE,
            "NoSuchMethod",
            format!("Endpoint does not support RPC method {method}"),
        )
    }

    /// oslo's `UnsupportedVersion(version, method=method)`.
    pub fn unsupported_version(version: &str, method: Option<&str>) -> Self {
        let mut msg = format!("Endpoint does not support RPC version {version}");
        if let Some(m) = method {
            msg.push_str(&format!(". Attempted method: {m}"));
        }
        Self::new(DISPATCHER_MODULE, "UnsupportedVersion", msg)
    }

    /// A Python `ValueError`: used for malformed requests.
    pub fn value_error(message: impl Into<String>) -> Self {
        Self::new(BUILTINS_MODULE, "ValueError", message)
    }

    /// A Python `RuntimeError`: used for handler panics and internal errors.
    pub fn runtime_error(message: impl Into<String>) -> Self {
        Self::new(BUILTINS_MODULE, "RuntimeError", message)
    }

    /// The JSON string oslo puts in a reply's `failure` field.
    pub fn to_wire(&self) -> Result<String, FailureError> {
        Ok(pyjson::dumps(self)?)
    }

    /// Parse a reply's `failure` field.
    pub fn from_wire(s: &str) -> Result<Self, FailureError> {
        Ok(serde_json::from_str(s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_like_oslo() {
        let f = RemoteFailure::no_such_method("nope");
        assert_eq!(
            f.to_wire().unwrap(),
            "{\"class\": \"NoSuchMethod\", \"module\": \"oslo_messaging.rpc.dispatcher\", \
             \"message\": \"Endpoint does not support RPC method nope\", \
             \"tb\": [\"oslo_messaging.rpc.dispatcher.NoSuchMethod: Endpoint does not support RPC method nope\\n\"], \
             \"args\": [\"Endpoint does not support RPC method nope\"], \"kwargs\": {}}"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(RemoteFailure::from_wire("{").is_err());
        assert!(RemoteFailure::from_wire("[]").is_err());
        assert!(RemoteFailure::from_wire("{\"class\": 1}").is_err());
    }
}
