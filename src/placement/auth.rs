//! Credentials for Placement, configured with keystoneauth's option names in
//! `[placement]` (what nova.conf has there works unchanged):
//!
//! - `auth_type = admin_token` with `endpoint` and `token`: a fixed token
//!   against a fixed endpoint (nova's tests use this against a `noauth2`
//!   Placement, token `admin`).
//! - `auth_type = none` with `endpoint`: no token at all.
//! - `auth_type = password` / `v3password`: Keystone v3 password auth,
//!   project-scoped; the Placement endpoint from the catalog.
//! - `auth_type = v3applicationcredential`: Keystone v3 application
//!   credential; the Placement endpoint from the catalog.
//!
//! `endpoint_override` always wins over the catalog. The catalog lookup uses
//! `valid_interfaces` (default `internal,public`, as nova) and `region_name`.
//! Tokens are cached and fetched again shortly before they expire, or when
//! Placement answers 401.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{PlacementError, Result};
use crate::config::KeystoneAuthOptions;

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    /// A fixed token (`admin_token`).
    AdminToken { token: String },
    /// No authentication (`none`).
    None,
    /// Keystone v3 password, scoped to a project.
    Password {
        auth_url: String,
        username: String,
        password: String,
        user_domain: Domain,
        project_name: String,
        project_domain: Domain,
    },
    /// Keystone v3 application credential.
    ApplicationCredential {
        auth_url: String,
        id: Option<String>,
        name: Option<String>,
        secret: String,
        username: Option<String>,
        user_domain: Domain,
    },
}

/// A domain given by name or id.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    Name(String),
    Id(String),
}

impl Domain {
    fn from_opts(name: &Option<String>, id: &Option<String>) -> Self {
        match (id, name) {
            (Some(id), _) if !id.is_empty() => Domain::Id(id.clone()),
            (_, Some(n)) if !n.is_empty() => Domain::Name(n.clone()),
            _ => Domain::Id("default".to_string()),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Domain::Name(n) => json!({ "name": n }),
            Domain::Id(i) => json!({ "id": i }),
        }
    }
}

/// Parsed `[placement]` auth options.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub method: AuthMethod,
    /// A fixed Placement endpoint (`endpoint_override`, or `endpoint` for
    /// `admin_token`/`none`); `None` means look it up in the catalog.
    pub endpoint: Option<String>,
    pub region_name: Option<String>,
    pub valid_interfaces: Vec<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn required(v: &Option<String>, opt: &str, auth_type: &str) -> Result<String> {
    nonempty(v).ok_or_else(|| {
        PlacementError::Config(format!("auth_type = {auth_type} needs option {opt}"))
    })
}

impl AuthConfig {
    /// Read keystoneauth options as nova does for `[placement]`.
    pub fn from_options(o: &KeystoneAuthOptions) -> Result<Self> {
        let auth_type = nonempty(&o.auth_type).ok_or_else(|| {
            PlacementError::Config(
                "auth_type is not set (admin_token, none, password or v3applicationcredential)"
                    .to_string(),
            )
        })?;
        let valid_interfaces = parse_interfaces(o.valid_interfaces.as_deref())?;
        let override_ = nonempty(&o.endpoint_override);
        let (method, endpoint) = match auth_type.as_str() {
            "admin_token" => (
                AuthMethod::AdminToken {
                    token: required(&o.token, "token", &auth_type)?,
                },
                Some(match override_ {
                    Some(e) => e,
                    None => required(&o.endpoint, "endpoint", &auth_type)?,
                }),
            ),
            "none" | "noauth" => (
                AuthMethod::None,
                Some(match override_ {
                    Some(e) => e,
                    None => required(&o.endpoint, "endpoint", &auth_type)?,
                }),
            ),
            "password" | "v3password" => (
                AuthMethod::Password {
                    auth_url: required(&o.auth_url, "auth_url", &auth_type)?,
                    username: required(&o.username, "username", &auth_type)?,
                    password: required(&o.password, "password", &auth_type)?,
                    user_domain: Domain::from_opts(&o.user_domain_name, &o.user_domain_id),
                    project_name: required(&o.project_name, "project_name", &auth_type)?,
                    project_domain: Domain::from_opts(
                        &o.project_domain_name,
                        &o.project_domain_id,
                    ),
                },
                override_,
            ),
            "v3applicationcredential" | "applicationcredential" => {
                let id = nonempty(&o.application_credential_id);
                let name = nonempty(&o.application_credential_name);
                if id.is_none() && name.is_none() {
                    return Err(PlacementError::Config(format!(
                        "auth_type = {auth_type} needs application_credential_id (or _name with username)"
                    )));
                }
                let username = nonempty(&o.username);
                if id.is_none() && username.is_none() {
                    return Err(PlacementError::Config(format!(
                        "auth_type = {auth_type}: application_credential_name needs username"
                    )));
                }
                (
                    AuthMethod::ApplicationCredential {
                        auth_url: required(&o.auth_url, "auth_url", &auth_type)?,
                        id,
                        name,
                        secret: required(
                            &o.application_credential_secret,
                            "application_credential_secret",
                            &auth_type,
                        )?,
                        username,
                        user_domain: Domain::from_opts(&o.user_domain_name, &o.user_domain_id),
                    },
                    override_,
                )
            }
            other => {
                return Err(PlacementError::Config(format!(
                    "auth_type = {other} is not supported (admin_token, none, password, v3password, v3applicationcredential)"
                )))
            }
        };
        if let Some(e) = &endpoint {
            check_url(e, "endpoint")?;
        }
        if let AuthMethod::Password { auth_url, .. }
        | AuthMethod::ApplicationCredential { auth_url, .. } = &method
        {
            check_url(auth_url, "auth_url")?;
        }
        Ok(Self {
            method,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_string()),
            region_name: nonempty(&o.region_name),
            valid_interfaces,
        })
    }

    /// An `admin_token` configuration for a fixed endpoint.
    pub fn admin_token(endpoint: &str, token: &str) -> Self {
        Self {
            method: AuthMethod::AdminToken {
                token: token.to_string(),
            },
            endpoint: Some(endpoint.trim_end_matches('/').to_string()),
            region_name: None,
            valid_interfaces: vec!["internal".to_string(), "public".to_string()],
        }
    }
}

fn check_url(u: &str, opt: &str) -> Result<()> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        Ok(url) => Err(PlacementError::Config(format!(
            "{opt} = {u}: scheme {} is not http or https",
            url.scheme()
        ))),
        Err(e) => Err(PlacementError::Config(format!(
            "{opt} = {u} is not a URL: {e}"
        ))),
    }
}

/// `valid_interfaces`: comma-separated, `internal,public` when unset;
/// keystoneauth's `internalURL` spelling is accepted.
pub fn parse_interfaces(v: Option<&str>) -> Result<Vec<String>> {
    let raw = v.map(str::trim).filter(|s| !s.is_empty());
    let Some(raw) = raw else {
        return Ok(vec!["internal".to_string(), "public".to_string()]);
    };
    let mut out = Vec::new();
    for part in raw
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let p = part
            .strip_suffix("URL")
            .unwrap_or(part)
            .to_ascii_lowercase();
        if !matches!(p.as_str(), "public" | "internal" | "admin") {
            return Err(PlacementError::Config(format!(
                "valid_interfaces: {part} is not public, internal or admin"
            )));
        }
        out.push(p);
    }
    Ok(out)
}

/// The Keystone v3 `POST /v3/auth/tokens` body for a method (`None` for
/// methods that need no Keystone).
pub fn token_request_body(method: &AuthMethod) -> Option<Value> {
    match method {
        AuthMethod::Password {
            username,
            password,
            user_domain,
            project_name,
            project_domain,
            ..
        } => Some(json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": user_domain.to_json(), "password": password}}},
            "scope": {"project": {"name": project_name, "domain": project_domain.to_json()}}
        }})),
        AuthMethod::ApplicationCredential {
            id,
            name,
            secret,
            username,
            user_domain,
            ..
        } => {
            let mut cred = json!({ "secret": secret });
            if let Some(id) = id {
                cred["id"] = json!(id);
            } else {
                cred["name"] = json!(name);
                cred["user"] = json!({"name": username, "domain": user_domain.to_json()});
            }
            Some(json!({"auth": {"identity": {
                "methods": ["application_credential"],
                "application_credential": cred
            }}}))
        }
        AuthMethod::AdminToken { .. } | AuthMethod::None => None,
    }
}

/// `{auth_url}/v3/auth/tokens`, whether or not `auth_url` ends in `/v3`.
pub fn tokens_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        format!("{base}/auth/tokens")
    } else {
        format!("{base}/v3/auth/tokens")
    }
}

/// The Placement endpoint from a Keystone v3 token body's catalog: service
/// type `placement`, first interface of `interfaces` that has one, in
/// `region` if given.
pub fn placement_from_catalog(
    token_body: &Value,
    interfaces: &[String],
    region: Option<&str>,
) -> std::result::Result<String, String> {
    let catalog = token_body
        .pointer("/token/catalog")
        .and_then(Value::as_array)
        .ok_or("the token has no service catalog")?;
    let service = catalog
        .iter()
        .find(|s| s.get("type").and_then(Value::as_str) == Some("placement"))
        .ok_or("the catalog has no service of type placement")?;
    let endpoints = service
        .get("endpoints")
        .and_then(Value::as_array)
        .ok_or("the placement service has no endpoints")?;
    for iface in interfaces {
        for ep in endpoints {
            let region_ok = match region {
                None => true,
                Some(r) => {
                    ep.get("region_id").and_then(Value::as_str) == Some(r)
                        || ep.get("region").and_then(Value::as_str) == Some(r)
                }
            };
            if region_ok && ep.get("interface").and_then(Value::as_str) == Some(iface.as_str()) {
                if let Some(url) = ep.get("url").and_then(Value::as_str) {
                    return Ok(url.trim_end_matches('/').to_string());
                }
            }
        }
    }
    Err(format!(
        "no placement endpoint for interfaces {interfaces:?}{}",
        region
            .map(|r| format!(" in region {r}"))
            .unwrap_or_default()
    ))
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    endpoint: String,
    expires: Option<SystemTime>,
}

/// Hands out a token and the Placement endpoint, fetching them from Keystone
/// when needed.
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    cached: Mutex<Option<Token>>,
}

/// Fetch a new token this long before the old one expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

impl Authenticator {
    /// From parsed options.
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config,
            cached: Mutex::new(None),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Whether a 401 can be cured by fetching a new token.
    pub fn can_refresh(&self) -> bool {
        token_request_body(&self.config.method).is_some()
    }

    /// Forget the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// The token to send (if any) and the Placement endpoint.
    pub async fn credentials(&self, http: &reqwest::Client) -> Result<(Option<String>, String)> {
        match &self.config.method {
            AuthMethod::AdminToken { token } => Ok((Some(token.clone()), self.fixed_endpoint()?)),
            AuthMethod::None => Ok((None, self.fixed_endpoint()?)),
            AuthMethod::Password { auth_url, .. }
            | AuthMethod::ApplicationCredential { auth_url, .. } => {
                let mut cached = self.cached.lock().await;
                let fresh = cached.as_ref().is_some_and(|t| match t.expires {
                    Some(exp) => SystemTime::now() + EXPIRY_MARGIN < exp,
                    None => true,
                });
                if !fresh {
                    *cached = Some(self.fetch(http, auth_url).await?);
                }
                let t = cached.as_ref().ok_or_else(|| PlacementError::Auth {
                    url: auth_url.clone(),
                    what: "no token".to_string(),
                })?;
                Ok((Some(t.value.clone()), t.endpoint.clone()))
            }
        }
    }

    fn fixed_endpoint(&self) -> Result<String> {
        self.config
            .endpoint
            .clone()
            .ok_or_else(|| PlacementError::Config("no endpoint configured".to_string()))
    }

    async fn fetch(&self, http: &reqwest::Client, auth_url: &str) -> Result<Token> {
        let url = tokens_url(auth_url);
        let err = |what: String| PlacementError::Auth {
            url: url.clone(),
            what,
        };
        let body = token_request_body(&self.config.method)
            .ok_or_else(|| err("this auth_type needs no token".to_string()))?;
        let resp = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| err(format!("cannot reach keystone: {e}")))?;
        let status = resp.status();
        let token = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp
            .text()
            .await
            .map_err(|e| err(format!("reading the answer: {e}")))?;
        if !status.is_success() {
            return Err(err(format!(
                "HTTP {}: {}",
                status.as_u16(),
                super::client::excerpt(&text)
            )));
        }
        let token = token.ok_or_else(|| err("no X-Subject-Token header".to_string()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| err(format!("the token body is not JSON: {e}")))?;
        let endpoint = match &self.config.endpoint {
            Some(e) => e.clone(),
            None => placement_from_catalog(
                &doc,
                &self.config.valid_interfaces,
                self.config.region_name.as_deref(),
            )
            .map_err(err)?,
        };
        let expires = doc
            .pointer("/token/expires_at")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);
        Ok(Token {
            value: token,
            endpoint,
            expires,
        })
    }
}

/// Parse Keystone's `2026-11-28T22:35:01.000000Z` timestamps.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+']).next()?;
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> KeystoneAuthOptions {
        KeystoneAuthOptions::default()
    }

    #[test]
    fn admin_token_needs_endpoint_and_token() {
        let mut o = opts();
        o.auth_type = Some("admin_token".into());
        assert!(AuthConfig::from_options(&o)
            .unwrap_err()
            .to_string()
            .contains("token"));
        o.token = Some("admin".into());
        assert!(AuthConfig::from_options(&o)
            .unwrap_err()
            .to_string()
            .contains("endpoint"));
        o.endpoint = Some("http://127.0.0.1:8778/".into());
        let c = AuthConfig::from_options(&o).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8778"));
        assert_eq!(
            c.method,
            AuthMethod::AdminToken {
                token: "admin".into()
            }
        );
    }

    #[test]
    fn garbage_options_are_clear_errors() {
        let mut o = opts();
        assert!(AuthConfig::from_options(&o)
            .unwrap_err()
            .to_string()
            .contains("auth_type"));
        o.auth_type = Some("kerberos".into());
        assert!(AuthConfig::from_options(&o)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        o.auth_type = Some("admin_token".into());
        o.token = Some("t".into());
        o.endpoint = Some("not a url".into());
        assert!(AuthConfig::from_options(&o)
            .unwrap_err()
            .to_string()
            .contains("not a URL"));
        o.endpoint = Some("ftp://x/".into());
        assert!(AuthConfig::from_options(&o)
            .unwrap_err()
            .to_string()
            .contains("scheme"));
        o.endpoint = Some("http://x/".into());
        o.valid_interfaces = Some("internal,bogus".into());
        assert!(AuthConfig::from_options(&o)
            .unwrap_err()
            .to_string()
            .contains("bogus"));
        let mut o = opts();
        o.auth_type = Some("v3applicationcredential".into());
        o.auth_url = Some("http://k:5000".into());
        o.application_credential_secret = Some("s".into());
        assert!(AuthConfig::from_options(&o).is_err());
    }

    #[test]
    fn password_body_and_defaults() {
        let mut o = opts();
        o.auth_type = Some("password".into());
        o.auth_url = Some("http://keystone:5000/v3".into());
        o.username = Some("placement".into());
        o.password = Some("secret".into());
        o.project_name = Some("service".into());
        o.user_domain_name = Some("Default".into());
        let c = AuthConfig::from_options(&o).unwrap();
        assert_eq!(c.valid_interfaces, vec!["internal", "public"]);
        assert_eq!(c.endpoint, None);
        let body = token_request_body(&c.method).unwrap();
        assert_eq!(
            body,
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "placement", "domain": {"name": "Default"}, "password": "secret"}}},
                "scope": {"project": {"name": "service", "domain": {"id": "default"}}}
            }})
        );
        assert_eq!(
            tokens_url("http://keystone:5000/v3/"),
            "http://keystone:5000/v3/auth/tokens"
        );
        assert_eq!(
            tokens_url("http://keystone/identity"),
            "http://keystone/identity/v3/auth/tokens"
        );
    }

    #[test]
    fn app_credential_body() {
        let mut o = opts();
        o.auth_type = Some("v3applicationcredential".into());
        o.auth_url = Some("http://k:5000".into());
        o.application_credential_id = Some("abc".into());
        o.application_credential_secret = Some("s".into());
        let c = AuthConfig::from_options(&o).unwrap();
        assert_eq!(
            token_request_body(&c.method).unwrap(),
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "abc", "secret": "s"}}}})
        );
    }

    #[test]
    fn catalog_lookup_by_interface_and_region() {
        let doc = json!({"token": {"catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "url": "http://k"}]},
            {"type": "placement", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://pub/placement/"},
                {"interface": "internal", "region_id": "RegionTwo", "url": "http://int2/placement"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://int1/placement"}
            ]}
        ]}});
        let ifs = parse_interfaces(None).unwrap();
        assert_eq!(
            placement_from_catalog(&doc, &ifs, Some("RegionOne")).unwrap(),
            "http://int1/placement"
        );
        let pub_only = parse_interfaces(Some("publicURL")).unwrap();
        assert_eq!(
            placement_from_catalog(&doc, &pub_only, None).unwrap(),
            "http://pub/placement"
        );
        assert!(placement_from_catalog(&doc, &ifs, Some("Nowhere")).is_err());
        assert!(placement_from_catalog(&json!({"token": {}}), &ifs, None).is_err());
        assert!(placement_from_catalog(&json!([1, 2]), &ifs, None).is_err());
    }

    #[test]
    fn keystone_timestamps() {
        let t = parse_rfc3339("1970-01-02T00:00:01.000000Z").unwrap();
        assert_eq!(t, SystemTime::UNIX_EPOCH + Duration::from_secs(86_401));
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339("garbage").is_none());
        assert!(parse_rfc3339("").is_none());
    }
}
