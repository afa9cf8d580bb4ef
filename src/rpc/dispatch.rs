//! Endpoints and oslo's `RPCDispatcher` rules: an endpoint serves a
//! namespace and a version; a request goes to the first endpoint whose
//! namespace matches, whose version is compatible (same major, requested
//! minor not above the endpoint's) and which exposes the method. Otherwise
//! `NoSuchMethod` (some endpoint was compatible) or `UnsupportedVersion`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::context::RequestContext;
use super::envelope::{Request, Version};
use super::failure::RemoteFailure;

/// What a handler returns: the result, or a remote exception for the caller.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, RemoteFailure>> + Send>>;

/// Errors building endpoints.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("endpoint version {0:?} is not X.Y or X.Y.Z")]
    BadVersion(String),
}

/// An RPC endpoint, what the compute manager implements: a namespace, a
/// version, and methods taking the context and the keyword arguments.
pub trait RpcEndpoint: Send + Sync {
    /// The `Target.namespace` (None: the default namespace).
    fn namespace(&self) -> Option<&str>;
    /// The `Target.version` the endpoint implements.
    fn version(&self) -> Version;
    /// Whether `method` is exposed (oslo's `hasattr`).
    fn has_method(&self, method: &str) -> bool;
    /// Run `method`; only called when [`RpcEndpoint::has_method`] said yes.
    fn call(&self, method: &str, ctx: RequestContext, args: Map<String, Value>) -> HandlerFuture;
}

/// A handler function of an [`Endpoint`].
pub type EndpointFn =
    Arc<dyn Fn(RequestContext, Map<String, Value>) -> HandlerFuture + Send + Sync>;

/// An endpoint made of async closures.
#[derive(Clone)]
pub struct Endpoint {
    namespace: Option<String>,
    version: Version,
    methods: HashMap<String, EndpointFn>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("namespace", &self.namespace)
            .field("version", &self.version)
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Endpoint {
    /// An endpoint for `namespace` (None: default) at `version` (`"6.5"`).
    pub fn new(namespace: Option<&str>, version: &str) -> Result<Self, DispatchError> {
        let version = Version::parse(version)
            .ok_or_else(|| DispatchError::BadVersion(version.to_string()))?;
        Ok(Self {
            namespace: namespace.map(str::to_string),
            version,
            methods: HashMap::new(),
        })
    }

    /// Expose `name`, handled by `f(context, args)`.
    pub fn method<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(RequestContext, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RemoteFailure>> + Send + 'static,
    {
        let f: EndpointFn = Arc::new(move |ctx, args| Box::pin(f(ctx, args)));
        self.methods.insert(name.to_string(), f);
        self
    }
}

impl RpcEndpoint for Endpoint {
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn version(&self) -> Version {
        self.version
    }
    fn has_method(&self, method: &str) -> bool {
        self.methods.contains_key(method)
    }
    fn call(&self, method: &str, ctx: RequestContext, args: Map<String, Value>) -> HandlerFuture {
        match self.methods.get(method) {
            Some(f) => f(ctx, args),
            None => {
                let m = method.to_string();
                Box::pin(async move { Err(RemoteFailure::no_such_method(&m)) })
            }
        }
    }
}

/// nova's `BaseRPCAPI`: namespace `baseapi`, version 1.1, `ping` answers
/// `{"service": <service name>, "arg": <arg>}`, `get_backdoor_port` answers
/// the eventlet backdoor port (novakvm has none: null).
#[derive(Debug, Clone)]
pub struct BaseRpcEndpoint {
    pub service_name: String,
}

impl BaseRpcEndpoint {
    /// nova-compute's: service name `compute`.
    pub fn new(service_name: &str) -> Self {
        Self {
            service_name: service_name.to_string(),
        }
    }

    #[tracing::instrument(skip_all, fields(request_id = %ctx.request_id))]
    async fn ping(
        service: String,
        ctx: RequestContext,
        mut args: Map<String, Value>,
    ) -> Result<Value, RemoteFailure> {
        let arg = args.shift_remove("arg").ok_or_else(|| {
            RemoteFailure::new(
                "builtins",
                "TypeError",
                "ping() missing 1 required positional argument: 'arg'",
            )
        })?;
        if let Some(extra) = args.keys().next() {
            return Err(RemoteFailure::new(
                "builtins",
                "TypeError",
                format!("ping() got an unexpected keyword argument '{extra}'"),
            ));
        }
        let mut out = Map::new();
        out.insert("service".into(), Value::String(service));
        out.insert("arg".into(), arg);
        Ok(Value::Object(out))
    }
}

impl RpcEndpoint for BaseRpcEndpoint {
    fn namespace(&self) -> Option<&str> {
        Some("baseapi")
    }
    fn version(&self) -> Version {
        Version {
            major: 1,
            minor: 1,
            rev: 0,
        }
    }
    fn has_method(&self, method: &str) -> bool {
        matches!(method, "ping" | "get_backdoor_port")
    }
    fn call(&self, method: &str, ctx: RequestContext, args: Map<String, Value>) -> HandlerFuture {
        if method == "ping" {
            Box::pin(Self::ping(self.service_name.clone(), ctx, args))
        } else {
            Box::pin(async { Ok(Value::Null) })
        }
    }
}

/// The endpoints of a server, searched in order.
#[derive(Clone, Default)]
pub struct Dispatcher {
    endpoints: Vec<Arc<dyn RpcEndpoint>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dispatcher({} endpoints)", self.endpoints.len())
    }
}

impl Dispatcher {
    /// No endpoints yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an endpoint (searched after the ones already added).
    pub fn with(mut self, endpoint: Arc<dyn RpcEndpoint>) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Find the handler of `req` as oslo's `RPCDispatcher.dispatch` does.
    /// Methods starting with `_` are never exposed (oslo's default policy).
    pub fn resolve(&self, req: Request) -> Result<HandlerFuture, Box<RemoteFailure>> {
        let requested = Version::parse(&req.version).ok_or_else(|| {
            RemoteFailure::value_error(format!("invalid version {:?}", req.version))
        })?;
        let mut found_compatible = false;
        for ep in &self.endpoints {
            if ep.namespace() != req.namespace.as_deref() || !ep.version().accepts(&requested) {
                continue;
            }
            if !req.method.starts_with('_') && ep.has_method(&req.method) {
                return Ok(ep.call(&req.method, req.context, req.args));
            }
            found_compatible = true;
        }
        if found_compatible {
            Err(Box::new(RemoteFailure::no_such_method(&req.method)))
        } else {
            Err(Box::new(RemoteFailure::unsupported_version(
                &req.version,
                Some(&req.method),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(ns: Option<&str>, method: &str, version: &str) -> Request {
        Request {
            method: method.into(),
            args: json!({"arg": 1}).as_object().cloned().unwrap(),
            namespace: ns.map(str::to_string),
            version: version.into(),
            unique_id: None,
            reply_to: None,
            client_timeout: None,
            context: RequestContext::default(),
        }
    }

    #[tokio::test]
    async fn dispatch_rules() {
        let d = Dispatcher::new()
            .with(Arc::new(BaseRpcEndpoint::new("compute")))
            .with(Arc::new(
                Endpoint::new(None, "6.5")
                    .unwrap()
                    .method("echo", |_c, a| async move { Ok(Value::Object(a)) }),
            ));
        let r = d
            .resolve(req(Some("baseapi"), "ping", "1.0"))
            .ok()
            .unwrap()
            .await
            .unwrap();
        assert_eq!(r, json!({"service": "compute", "arg": 1}));
        assert!(d.resolve(req(None, "echo", "6.0")).is_ok());
        let e = d.resolve(req(None, "nope", "6.0")).err().unwrap();
        assert_eq!(e.class, "NoSuchMethod");
        let e = d.resolve(req(None, "echo", "6.6")).err().unwrap();
        assert_eq!(e.class, "UnsupportedVersion");
        assert_eq!(
            e.message,
            "Endpoint does not support RPC version 6.6. Attempted method: echo"
        );
        let e = d.resolve(req(None, "echo", "7.0")).err().unwrap();
        assert_eq!(e.class, "UnsupportedVersion");
        let e = d.resolve(req(Some("other"), "echo", "6.0")).err().unwrap();
        assert_eq!(e.class, "UnsupportedVersion");
        let e = d
            .resolve(req(Some("baseapi"), "_private", "1.0"))
            .err()
            .unwrap();
        assert_eq!(e.class, "NoSuchMethod");
    }

    #[test]
    fn bad_endpoint_version() {
        assert!(Endpoint::new(None, "x").is_err());
    }
}
