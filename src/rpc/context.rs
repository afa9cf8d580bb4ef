//! The request context carried in every message as flattened `_context_*`
//! keys (nova's `RequestContext.to_dict()`, packed by oslo's `pack_context`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Prefix of the flattened context keys in a message.
pub const CONTEXT_PREFIX: &str = "_context_";

/// Errors reading a context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("invalid request context: {0}")]
    Invalid(String),
}

/// nova's `RequestContext` as it travels on the wire. Field order is the
/// order nova 34 writes the keys; keys novakvm does not know are kept in
/// [`RequestContext::extra`] and written back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestContext {
    pub user: Option<String>,
    pub project_id: Option<String>,
    pub system_scope: Option<String>,
    pub project: Option<String>,
    pub domain: Option<String>,
    pub user_domain: Option<String>,
    pub project_domain: Option<String>,
    pub is_admin: bool,
    pub read_only: bool,
    pub show_deleted: bool,
    pub auth_token: Option<String>,
    pub request_id: String,
    pub global_request_id: Option<String>,
    pub resource_uuid: Option<String>,
    pub roles: Vec<String>,
    pub user_identity: String,
    pub is_admin_project: bool,
    pub user_id: Option<String>,
    pub read_deleted: String,
    pub remote_address: Option<String>,
    pub timestamp: Option<String>,
    pub quota_class: Option<String>,
    pub user_name: Option<String>,
    pub service_catalog: Vec<Value>,
    pub project_name: Option<String>,
    /// Keys not listed above, in arrival order.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

/// Names of the typed fields, in wire order.
pub const KNOWN_KEYS: &[&str] = &[
    "user",
    "project_id",
    "system_scope",
    "project",
    "domain",
    "user_domain",
    "project_domain",
    "is_admin",
    "read_only",
    "show_deleted",
    "auth_token",
    "request_id",
    "global_request_id",
    "resource_uuid",
    "roles",
    "user_identity",
    "is_admin_project",
    "user_id",
    "read_deleted",
    "remote_address",
    "timestamp",
    "quota_class",
    "user_name",
    "service_catalog",
    "project_name",
];

impl Default for RequestContext {
    fn default() -> Self {
        Self {
            user: None,
            project_id: None,
            system_scope: None,
            project: None,
            domain: None,
            user_domain: None,
            project_domain: None,
            is_admin: false,
            read_only: false,
            show_deleted: false,
            auth_token: None,
            request_id: new_request_id(),
            global_request_id: None,
            resource_uuid: None,
            roles: Vec::new(),
            user_identity: "- - - - -".to_string(),
            is_admin_project: true,
            user_id: None,
            read_deleted: "no".to_string(),
            remote_address: None,
            timestamp: Some(utc_timestamp()),
            quota_class: None,
            user_name: None,
            service_catalog: Vec::new(),
            project_name: None,
            extra: Map::new(),
        }
    }
}

impl RequestContext {
    /// nova's `get_admin_context()`: what nova-compute sends to the conductor.
    pub fn admin() -> Self {
        Self {
            is_admin: true,
            ..Self::default()
        }
    }

    /// Parse the un-prefixed context dictionary (`user_id`, `roles`, ...).
    pub fn from_dict(dict: Map<String, Value>) -> Result<Self, ContextError> {
        let mut known = Map::new();
        let mut extra = Map::new();
        for (k, v) in dict {
            if KNOWN_KEYS.contains(&k.as_str()) {
                known.insert(k, v);
            } else {
                extra.insert(k, v);
            }
        }
        let mut ctx: RequestContext = serde_json::from_value(Value::Object(known))
            .map_err(|e| ContextError::Invalid(e.to_string()))?;
        ctx.extra = extra;
        Ok(ctx)
    }

    /// Take the `_context_*` keys out of a message.
    pub fn unpack(msg: &mut Map<String, Value>) -> Result<Self, ContextError> {
        let keys: Vec<String> = msg
            .keys()
            .filter(|k| k.starts_with(CONTEXT_PREFIX))
            .cloned()
            .collect();
        let mut dict = Map::new();
        for k in keys {
            if let Some(v) = msg.shift_remove(&k) {
                dict.insert(k[CONTEXT_PREFIX.len()..].to_string(), v);
            }
        }
        Self::from_dict(dict)
    }

    /// The un-prefixed dictionary, typed fields in nova's order, then extras.
    pub fn to_dict(&self) -> Map<String, Value> {
        let mut out = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in &self.extra {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    /// Append the `_context_*` keys to a message (oslo's `pack_context`).
    pub fn pack_into(&self, msg: &mut Map<String, Value>) {
        for (k, v) in self.to_dict() {
            msg.insert(format!("{CONTEXT_PREFIX}{k}"), v);
        }
    }
}

/// A new `req-<uuid>` request id, as oslo.context makes them.
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

/// The current UTC time as nova writes `timestamp`: `2026-11-28T22:35:07.521768`.
pub fn utc_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_timestamp(now.as_secs() as i64, now.subsec_micros())
}

/// Format seconds since the epoch and microseconds as `YYYY-MM-DDTHH:MM:SS.ffffff`.
pub fn format_timestamp(secs: i64, micros: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamp_format() {
        assert_eq!(format_timestamp(0, 0), "1970-01-01T00:00:00.000000");
        assert_eq!(
            format_timestamp(1_795_819_107, 521_768),
            "2026-11-27T22:38:27.521768"
        );
    }

    #[test]
    fn unknown_keys_kept_in_order() {
        let mut msg = json!({"method": "x", "_context_user_id": "u", "_context_zzz": 1, "_context_roles": ["a"]})
            .as_object()
            .cloned()
            .unwrap();
        let ctx = RequestContext::unpack(&mut msg).unwrap();
        assert_eq!(ctx.user_id.as_deref(), Some("u"));
        assert_eq!(ctx.roles, vec!["a"]);
        assert_eq!(ctx.extra.get("zzz"), Some(&json!(1)));
        assert_eq!(msg.len(), 1);
        let d = ctx.to_dict();
        assert_eq!(d.keys().next_back().map(String::as_str), Some("zzz"));
    }

    #[test]
    fn garbage_rejected() {
        for bad in [
            json!({"roles": "admin"}),
            json!({"is_admin": "yes"}),
            json!({"request_id": 5}),
        ] {
            let Value::Object(m) = bad else {
                unreachable!()
            };
            assert!(RequestContext::from_dict(m).is_err());
        }
    }
}
