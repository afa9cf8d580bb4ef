//! HTTP client for the Placement API, sending each call with the microversion
//! stock nova-compute uses for it (nova 34: `/resource_providers?in_tree`
//! 1.14, `POST /resource_providers` 1.20, `PUT .../inventories` 1.26, traits
//! 1.6, aggregates 1.19, `GET /allocations/{consumer}` 1.28, and no header
//! (1.0) for `GET .../inventories`, `GET .../allocations` and
//! `DELETE /allocations/{consumer}`).
//!
//! Before the first call that needs a microversion the root document (`GET /`,
//! unauthenticated, as keystoneauth's discovery) is read for the server's
//! range; a call needing more than the server's maximum fails with
//! [`PlacementError::Microversion`] instead of a confusing 406.
//!
//! Connection errors, timeouts and 5xx answers are retried with exponential
//! backoff ([`RetryPolicy`]); a 401 with Keystone credentials fetches a new
//! token once. Any other status goes back to the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::auth::{AuthConfig, Authenticator};
use super::tree::Inventory;
use super::{PlacementError, Result};

/// A Placement microversion, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    pub major: u16,
    pub minor: u16,
}

impl Microversion {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Microversion {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s
            .trim()
            .split_once('.')
            .ok_or_else(|| format!("microversion {s:?} is not major.minor"))?;
        let major = a
            .parse()
            .map_err(|_| format!("microversion {s:?} is not major.minor"))?;
        let minor = b
            .parse()
            .map_err(|_| format!("microversion {s:?} is not major.minor"))?;
        Ok(Self { major, minor })
    }
}

/// The highest microversion nova 34 uses anywhere.
pub const NOVA_MAX: Microversion = Microversion::new(1, 39);
/// `GET /resource_providers?in_tree=` and `GET /resource_providers/{uuid}`.
pub const NESTED_PROVIDER: Microversion = Microversion::new(1, 14);
/// `POST /resource_providers` returning the provider.
pub const POST_RPS_RETURNS_PAYLOAD: Microversion = Microversion::new(1, 20);
/// `PUT /resource_providers/{uuid}/inventories` (reserved may equal total).
pub const INVENTORY_PUT: Microversion = Microversion::new(1, 26);
/// Traits calls.
pub const TRAITS: Microversion = Microversion::new(1, 6);
/// `PUT /resource_classes/CUSTOM_*`.
pub const RESOURCE_CLASS_PUT: Microversion = Microversion::new(1, 7);
/// Aggregates with generation.
pub const AGGREGATES: Microversion = Microversion::new(1, 19);
/// `GET /allocations/{consumer}` with consumer generation.
pub const CONSUMER_GENERATION: Microversion = Microversion::new(1, 28);

/// Retries for connection errors, timeouts and 5xx.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// Wait after the first failure; doubled each time.
    pub base_delay: Duration,
    /// Longest wait between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub user_agent: String,
    /// Largest response body accepted.
    pub max_body: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            user_agent: format!("nova-compute novakvm/{}", env!("CARGO_PKG_VERSION")),
            max_body: 16 << 20,
        }
    }
}

/// A raw answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub request_id: Option<String>,
}

impl Response {
    /// Placement's error code (`errors[0].code`), if the body has one.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.body)
            .ok()?
            .pointer("/errors/0/code")?
            .as_str()
            .map(str::to_string)
    }

    /// Placement's error detail, or an excerpt of the body.
    pub fn error_detail(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| {
                v.pointer("/errors/0/detail")
                    .and_then(Value::as_str)
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .unwrap_or_else(|| excerpt(&self.body))
    }

    fn http_error(&self, method: &Method, path: &str) -> PlacementError {
        PlacementError::Http {
            method: method.to_string(),
            path: path.to_string(),
            status: self.status,
            code: self.error_code(),
            detail: self.error_detail(),
        }
    }

    fn parse<T: DeserializeOwned>(&self, method: &Method, path: &str) -> Result<T> {
        serde_json::from_str(&self.body).map_err(|e| PlacementError::BadResponse {
            method: method.to_string(),
            path: path.to_string(),
            what: format!("{e}; body starts with {}", excerpt(&self.body)),
        })
    }
}

/// At most 200 characters of a body, on one line, for error messages.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let one_line = one_line.trim().to_string();
    if one_line.is_empty() {
        "(empty body)".to_string()
    } else if body.chars().count() > 200 {
        format!("{one_line:?}...")
    } else {
        format!("{one_line:?}")
    }
}

/// A resource provider as Placement lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderRecord {
    pub uuid: String,
    pub name: String,
    pub generation: u64,
    #[serde(default)]
    pub parent_provider_uuid: Option<String>,
    #[serde(default)]
    pub root_provider_uuid: Option<String>,
}

/// One provider's share of a consumer's allocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderAllocation {
    pub resources: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

/// `GET /allocations/{consumer}` at 1.28.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerAllocations {
    pub allocations: BTreeMap<String, ProviderAllocation>,
    #[serde(default)]
    pub consumer_generation: Option<u64>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Deserialize)]
struct ProvidersDoc {
    resource_providers: Vec<ProviderRecord>,
}

#[derive(Deserialize)]
struct InventoriesDoc {
    resource_provider_generation: u64,
    inventories: BTreeMap<String, Inventory>,
}

#[derive(Deserialize)]
struct TraitsDoc {
    traits: BTreeSet<String>,
    resource_provider_generation: u64,
}

#[derive(Deserialize)]
struct TraitNamesDoc {
    traits: BTreeSet<String>,
}

#[derive(Deserialize)]
struct AggregatesDoc {
    aggregates: Vec<String>,
    resource_provider_generation: u64,
}

#[derive(Deserialize)]
struct RootDoc {
    versions: Vec<RootVersion>,
}

#[derive(Deserialize)]
struct RootVersion {
    #[serde(default)]
    id: Option<String>,
    min_version: String,
    max_version: String,
}

/// The Placement client.
#[derive(Debug)]
pub struct PlacementClient {
    http: reqwest::Client,
    auth: Authenticator,
    settings: ClientSettings,
    versions: Mutex<Option<(Microversion, Microversion)>>,
    requests: AtomicU64,
}

impl PlacementClient {
    /// A client for the given credentials.
    pub fn new(auth: AuthConfig, settings: ClientSettings) -> Result<Self> {
        if settings.retry.attempts == 0 {
            return Err(PlacementError::Config(
                "retry attempts must be at least 1".to_string(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(settings.user_agent.clone())
            .build()
            .map_err(|e| PlacementError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            auth: Authenticator::new(auth),
            settings,
            versions: Mutex::new(None),
            requests: AtomicU64::new(0),
        })
    }

    /// A client from `[placement]` options.
    pub fn from_options(
        opts: &crate::config::KeystoneAuthOptions,
        settings: ClientSettings,
    ) -> Result<Self> {
        Self::new(AuthConfig::from_options(opts)?, settings)
    }

    /// HTTP requests sent so far (all tries counted).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The server's microversion range, read once from the root document.
    pub async fn server_versions(&self) -> Result<(Microversion, Microversion)> {
        let mut cached = self.versions.lock().await;
        if let Some(v) = *cached {
            return Ok(v);
        }
        let resp = self.send(Method::GET, "/", None, None, false).await?;
        if resp.status != 200 {
            return Err(resp.http_error(&Method::GET, "/"));
        }
        let doc: RootDoc = resp.parse(&Method::GET, "/")?;
        let bad = |what: String| PlacementError::BadResponse {
            method: "GET".to_string(),
            path: "/".to_string(),
            what,
        };
        let v = doc
            .versions
            .iter()
            .find(|v| v.id.as_deref() == Some("v1.0"))
            .or_else(|| doc.versions.first())
            .ok_or_else(|| bad("the root document lists no versions".to_string()))?;
        // Placement before microversions: both empty.
        let min = if v.min_version.is_empty() {
            Microversion::new(1, 0)
        } else {
            v.min_version.parse().map_err(bad)?
        };
        let max = if v.max_version.is_empty() {
            Microversion::new(1, 0)
        } else {
            v.max_version.parse().map_err(bad)?
        };
        *cached = Some((min, max));
        Ok((min, max))
    }

    /// Fail unless the server supports `needed`.
    pub async fn check_version(&self, needed: Microversion) -> Result<()> {
        let (min, max) = self.server_versions().await?;
        if needed < min || needed > max {
            let url = match self.auth.credentials(&self.http).await {
                Ok((_, endpoint)) => endpoint,
                Err(_) => "(unknown endpoint)".to_string(),
            };
            return Err(PlacementError::Microversion {
                url,
                min,
                max,
                needed,
            });
        }
        Ok(())
    }

    /// One call, with retries; any status comes back.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        version: Option<Microversion>,
        body: Option<&Value>,
    ) -> Result<Response> {
        if let Some(v) = version {
            self.check_version(v).await?;
        }
        self.send(method, path, version, body, true).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        version: Option<Microversion>,
        body: Option<&Value>,
        with_token: bool,
    ) -> Result<Response> {
        let policy = &self.settings.retry;
        let body = body.map(serde_json::to_vec).transpose().map_err(|e| {
            PlacementError::InvalidInput(format!("cannot encode the request body: {e}"))
        })?;
        let mut reauthenticated = false;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let (token, endpoint) = self.auth.credentials(&self.http).await?;
            let url = format!("{endpoint}{path}");
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header(reqwest::header::ACCEPT, "application/json");
            if with_token {
                if let Some(t) = &token {
                    req = req.header("X-Auth-Token", t);
                }
            }
            if let Some(v) = version {
                req = req.header("OpenStack-API-Version", format!("placement {v}"));
            }
            if let Some(b) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let reason = match req.send().await {
                Err(e) => describe(&e),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let request_id = resp
                        .headers()
                        .get("x-openstack-request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match read_capped(resp, self.settings.max_body).await {
                        Err(ReadError::TooLarge) => {
                            return Err(PlacementError::BadResponse {
                                method: method.to_string(),
                                path: path.to_string(),
                                what: format!(
                                    "the body is larger than {} bytes",
                                    self.settings.max_body
                                ),
                            })
                        }
                        Err(ReadError::Transport(e)) => format!("reading the answer: {e}"),
                        Ok(text) => {
                            if status == 401
                                && with_token
                                && self.auth.can_refresh()
                                && !reauthenticated
                            {
                                reauthenticated = true;
                                self.auth.invalidate().await;
                                tries -= 1;
                                continue;
                            }
                            if (500..600).contains(&status) && status != 501 {
                                format!("HTTP {status}: {}", excerpt(&text))
                            } else {
                                return Ok(Response {
                                    status,
                                    body: text,
                                    request_id,
                                });
                            }
                        }
                    }
                }
            };
            if tries >= policy.attempts {
                return Err(PlacementError::Unreachable {
                    url,
                    attempts: tries,
                    reason,
                });
            }
            let wait = policy.delay(tries);
            tracing::warn!(%url, %reason, try_ = tries, ?wait, "placement call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        version: Option<Microversion>,
        body: Option<&Value>,
        ok: u16,
    ) -> Result<T> {
        let resp = self.request(method.clone(), path, version, body).await?;
        if resp.status != ok {
            return Err(resp.http_error(&method, path));
        }
        resp.parse(&method, path)
    }

    /// `GET /resource_providers?in_tree={uuid}` (1.14): the tree, or empty.
    pub async fn providers_in_tree(&self, uuid: &str) -> Result<Vec<ProviderRecord>> {
        let path = format!("/resource_providers?in_tree={uuid}");
        let doc: ProvidersDoc = self
            .call(Method::GET, &path, Some(NESTED_PROVIDER), None, 200)
            .await?;
        Ok(doc.resource_providers)
    }

    /// `GET /resource_providers/{uuid}` (1.14); `None` if it does not exist.
    pub async fn get_provider(&self, uuid: &str) -> Result<Option<ProviderRecord>> {
        let path = format!("/resource_providers/{uuid}");
        let resp = self
            .request(Method::GET, &path, Some(NESTED_PROVIDER), None)
            .await?;
        match resp.status {
            200 => resp.parse(&Method::GET, &path).map(Some),
            404 => Ok(None),
            _ => Err(resp.http_error(&Method::GET, &path)),
        }
    }

    /// `POST /resource_providers` (1.20). If another client created the same
    /// uuid meanwhile, that provider is returned; a name taken by another
    /// uuid is [`PlacementError::NameConflict`].
    pub async fn create_provider(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ProviderRecord> {
        let path = "/resource_providers";
        let mut body = json!({ "uuid": uuid, "name": name });
        if let Some(p) = parent {
            body["parent_provider_uuid"] = json!(p);
        }
        let resp = self
            .request(
                Method::POST,
                path,
                Some(POST_RPS_RETURNS_PAYLOAD),
                Some(&body),
            )
            .await?;
        match resp.status {
            200 => resp.parse(&Method::POST, path),
            409 if resp.body.contains("Conflicting resource provider name:") => {
                Err(PlacementError::NameConflict {
                    uuid: uuid.to_string(),
                    name: name.to_string(),
                    detail: resp.error_detail(),
                })
            }
            409 => self
                .get_provider(uuid)
                .await?
                .ok_or_else(|| PlacementError::Http {
                    method: "POST".to_string(),
                    path: path.to_string(),
                    status: 409,
                    code: resp.error_code(),
                    detail: resp.error_detail(),
                }),
            _ => Err(resp.http_error(&Method::POST, path)),
        }
    }

    /// `DELETE /resource_providers/{uuid}`; `false` if it did not exist.
    pub async fn delete_provider(&self, uuid: &str) -> Result<bool> {
        let path = format!("/resource_providers/{uuid}");
        let resp = self.request(Method::DELETE, &path, None, None).await?;
        match resp.status {
            204 => Ok(true),
            404 => Ok(false),
            _ => Err(resp.http_error(&Method::DELETE, &path)),
        }
    }

    /// `GET /resource_providers/{uuid}/inventories` (no microversion, as nova).
    pub async fn get_inventories(&self, uuid: &str) -> Result<(u64, BTreeMap<String, Inventory>)> {
        let path = format!("/resource_providers/{uuid}/inventories");
        let doc: InventoriesDoc = self.call(Method::GET, &path, None, None, 200).await?;
        Ok((doc.resource_provider_generation, doc.inventories))
    }

    /// `PUT /resource_providers/{uuid}/inventories` (1.26). A 409
    /// `placement.inventory.inuse` is [`PlacementError::InventoryInUse`];
    /// any other 409 is [`PlacementError::GenerationConflict`].
    pub async fn put_inventories(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, Inventory>,
    ) -> Result<(u64, BTreeMap<String, Inventory>)> {
        let path = format!("/resource_providers/{uuid}/inventories");
        let body = json!({
            "resource_provider_generation": generation,
            "inventories": inventories,
        });
        let resp = self
            .request(Method::PUT, &path, Some(INVENTORY_PUT), Some(&body))
            .await?;
        match resp.status {
            200 => {
                let doc: InventoriesDoc = resp.parse(&Method::PUT, &path)?;
                Ok((doc.resource_provider_generation, doc.inventories))
            }
            409 if resp.error_code().as_deref() == Some("placement.inventory.inuse") => {
                Err(PlacementError::InventoryInUse {
                    provider: uuid.to_string(),
                    detail: resp.error_detail(),
                })
            }
            409 => Err(PlacementError::GenerationConflict {
                provider: uuid.to_string(),
                attempts: 1,
            }),
            _ => Err(resp.http_error(&Method::PUT, &path)),
        }
    }

    /// `GET /resource_providers/{uuid}/usages` (no microversion): what is
    /// allocated per resource class.
    pub async fn get_usages(&self, uuid: &str) -> Result<BTreeMap<String, u64>> {
        #[derive(Deserialize)]
        struct Doc {
            usages: BTreeMap<String, u64>,
        }
        let path = format!("/resource_providers/{uuid}/usages");
        let doc: Doc = self.call(Method::GET, &path, None, None, 200).await?;
        Ok(doc.usages)
    }

    /// `GET /resource_providers/{uuid}/traits` (1.6): generation and traits.
    pub async fn get_provider_traits(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        let path = format!("/resource_providers/{uuid}/traits");
        let doc: TraitsDoc = self
            .call(Method::GET, &path, Some(TRAITS), None, 200)
            .await?;
        Ok((doc.resource_provider_generation, doc.traits))
    }

    /// `PUT /resource_providers/{uuid}/traits` (1.6). Any 409 is a
    /// generation conflict.
    pub async fn put_provider_traits(
        &self,
        uuid: &str,
        generation: u64,
        traits: &BTreeSet<String>,
    ) -> Result<(u64, BTreeSet<String>)> {
        let path = format!("/resource_providers/{uuid}/traits");
        let body = json!({
            "resource_provider_generation": generation,
            "traits": traits,
        });
        let resp = self
            .request(Method::PUT, &path, Some(TRAITS), Some(&body))
            .await?;
        match resp.status {
            200 => {
                let doc: TraitsDoc = resp.parse(&Method::PUT, &path)?;
                Ok((doc.resource_provider_generation, doc.traits))
            }
            409 => Err(PlacementError::GenerationConflict {
                provider: uuid.to_string(),
                attempts: 1,
            }),
            _ => Err(resp.http_error(&Method::PUT, &path)),
        }
    }

    /// Make sure traits exist: `GET /traits?name=in:...` (1.6), then
    /// `PUT /traits/{name}` for the missing ones (only `CUSTOM_*` can be
    /// created; a missing standard trait is Placement's 400, reported).
    pub async fn ensure_traits(&self, traits: &BTreeSet<String>) -> Result<()> {
        if traits.is_empty() {
            return Ok(());
        }
        for t in traits {
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(PlacementError::InvalidInput(format!(
                    "trait name {t:?} is not of the form [A-Z0-9_]+"
                )));
            }
        }
        let names: Vec<&str> = traits.iter().map(String::as_str).collect();
        let path = format!("/traits?name=in:{}", names.join(","));
        let doc: TraitNamesDoc = self
            .call(Method::GET, &path, Some(TRAITS), None, 200)
            .await?;
        for missing in traits.difference(&doc.traits) {
            let path = format!("/traits/{missing}");
            let resp = self.request(Method::PUT, &path, Some(TRAITS), None).await?;
            if !matches!(resp.status, 201 | 204) {
                return Err(resp.http_error(&Method::PUT, &path));
            }
        }
        Ok(())
    }

    /// `PUT /resource_classes/{name}` (1.7) for each `CUSTOM_*` class.
    pub async fn ensure_resource_classes<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<()> {
        for name in names.into_iter().filter(|n| n.starts_with("CUSTOM_")) {
            let path = format!("/resource_classes/{name}");
            let resp = self
                .request(Method::PUT, &path, Some(RESOURCE_CLASS_PUT), None)
                .await?;
            if !matches!(resp.status, 201 | 204) {
                return Err(resp.http_error(&Method::PUT, &path));
            }
        }
        Ok(())
    }

    /// `GET /resource_providers/{uuid}/aggregates` (1.19).
    pub async fn get_aggregates(&self, uuid: &str) -> Result<(u64, Vec<String>)> {
        let path = format!("/resource_providers/{uuid}/aggregates");
        let doc: AggregatesDoc = self
            .call(Method::GET, &path, Some(AGGREGATES), None, 200)
            .await?;
        Ok((doc.resource_provider_generation, doc.aggregates))
    }

    /// `GET /allocations/{consumer}` (1.28). An unknown consumer has empty
    /// allocations.
    pub async fn get_allocations(&self, consumer: &str) -> Result<ConsumerAllocations> {
        check_uuid(consumer)?;
        let path = format!("/allocations/{consumer}");
        self.call(Method::GET, &path, Some(CONSUMER_GENERATION), None, 200)
            .await
    }

    /// `DELETE /allocations/{consumer}` (no microversion, as nova-compute
    /// sends it); `false` if there were none.
    pub async fn delete_allocations(&self, consumer: &str) -> Result<bool> {
        check_uuid(consumer)?;
        let path = format!("/allocations/{consumer}");
        let resp = self.request(Method::DELETE, &path, None, None).await?;
        match resp.status {
            204 => Ok(true),
            404 => Ok(false),
            _ => Err(resp.http_error(&Method::DELETE, &path)),
        }
    }

    /// `GET /resource_providers/{uuid}/allocations` (no microversion):
    /// consumer uuid to resources.
    pub async fn provider_allocations(
        &self,
        uuid: &str,
    ) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
        #[derive(Deserialize)]
        struct Doc {
            allocations: BTreeMap<String, Res>,
        }
        #[derive(Deserialize)]
        struct Res {
            resources: BTreeMap<String, u64>,
        }
        let path = format!("/resource_providers/{uuid}/allocations");
        let doc: Doc = self.call(Method::GET, &path, None, None, 200).await?;
        Ok(doc
            .allocations
            .into_iter()
            .map(|(k, v)| (k, v.resources))
            .collect())
    }
}

fn check_uuid(s: &str) -> Result<()> {
    uuid::Uuid::parse_str(s)
        .map(|_| ())
        .map_err(|e| PlacementError::InvalidInput(format!("consumer {s:?} is not a uuid: {e}")))
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

enum ReadError {
    TooLarge,
    Transport(String),
}

async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
) -> std::result::Result<String, ReadError> {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    return Err(ReadError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(ReadError::Transport(describe(&e))),
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microversions_parse_and_order() {
        let v: Microversion = "1.39".parse().unwrap();
        assert_eq!(v, NOVA_MAX);
        assert!(Microversion::new(1, 6) < Microversion::new(1, 14));
        assert_eq!(Microversion::new(1, 26).to_string(), "1.26");
        for bad in ["", "1", "a.b", "1.", ".3", "1.2.3", "99999999.1"] {
            assert!(bad.parse::<Microversion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_millis(500));
        assert_eq!(p.delay(2), Duration::from_secs(1));
        assert_eq!(p.delay(3), Duration::from_secs(2));
        assert_eq!(p.delay(10), Duration::from_secs(8));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn error_bodies() {
        let r = Response {
            status: 409,
            body: r#"{"errors": [{"status": 409, "title": "Conflict", "detail": "There was a conflict.\n\n resource provider generation conflict  ", "code": "placement.concurrent_update"}]}"#.to_string(),
            request_id: None,
        };
        assert_eq!(
            r.error_code().as_deref(),
            Some("placement.concurrent_update")
        );
        assert_eq!(
            r.error_detail(),
            "There was a conflict. resource provider generation conflict"
        );
        let r = Response {
            status: 500,
            body: "<html>\n<b>oops</b></html>".to_string(),
            request_id: None,
        };
        assert_eq!(r.error_code(), None);
        assert_eq!(r.error_detail(), "\"<html> <b>oops</b></html>\"");
        assert_eq!(excerpt(""), "(empty body)");
        assert!(excerpt(&"x".repeat(1000)).ends_with("..."));
    }
}
