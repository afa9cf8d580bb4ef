//! nova-conductor as nova-compute reaches it: `baseapi` ping (nova's
//! `ConductorAPI.wait_until_ready`), remote object methods
//! (`object_action`) and class methods (`object_class_action_versions`),
//! and the scheduler's instance-info fanout casts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::error::ComputeError;
use crate::objects::action::{
    apply_updates, object_action_args, object_class_action_versions_args, ActionReply,
};
use crate::objects::NovaObject;
use crate::rpc::{CallOptions, ClientError, RequestContext, RpcClient, Target};

/// What nova sends in its ping.
pub const PING_ARG: &str = "1.21 GigaWatts";

/// The conductor and scheduler, as seen from the compute agent.
#[derive(Debug, Clone)]
pub struct Conductor {
    client: Arc<RpcClient>,
    timeout: Duration,
}

impl Conductor {
    /// Conductor calls on `client`, each waiting at most `timeout`
    /// (`[DEFAULT] rpc_response_timeout`).
    pub fn new(client: Arc<RpcClient>, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// The underlying RPC client.
    pub fn client(&self) -> &Arc<RpcClient> {
        &self.client
    }

    fn opts(&self) -> CallOptions {
        CallOptions {
            timeout: self.timeout,
            call_monitor_timeout: None,
        }
    }

    /// `baseapi.ping` until the conductor answers (nova's
    /// `wait_until_ready`: a timed-out ping is logged and retried forever).
    pub async fn wait_until_ready(
        &self,
        stop: &CancellationToken,
        ping_timeout: Duration,
    ) -> Result<Value, ComputeError> {
        let target = Target::new("conductor", "1.0").namespace("baseapi");
        let mut args = Map::new();
        args.insert("arg".into(), json!(PING_ARG));
        let mut attempt = 0u32;
        let ctx = RequestContext::admin();
        loop {
            attempt += 1;
            let call = self.client.call(
                &target,
                &ctx,
                "ping",
                args.clone(),
                CallOptions {
                    timeout: ping_timeout,
                    call_monitor_timeout: None,
                },
            );
            let r = tokio::select! {
                _ = stop.cancelled() => return Err(ComputeError::Stopped),
                r = call => r,
            };
            match r {
                Ok(v) => return Ok(v),
                Err(ClientError::Timeout { .. }) => {
                    tracing::warn!(
                        attempt,
                        "timed out waiting for nova-conductor; is it running? trying again"
                    );
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "nova-conductor ping failed; trying again");
                    tokio::select! {
                        _ = stop.cancelled() => return Err(ComputeError::Stopped),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// A remote class method (`Service.get_by_host_and_binary`...).
    #[tracing::instrument(skip(self, args, kwargs))]
    pub async fn class_action(
        &self,
        objname: &str,
        objmethod: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, ComputeError> {
        let a = object_class_action_versions_args(objname, objmethod, args, kwargs)
            .map_err(|e| ComputeError::BadData(e.to_string()))?;
        let Value::Object(a) = a else {
            return Err(ComputeError::BadData("arguments are not a dict".into()));
        };
        self.client
            .call(
                &Target::new("conductor", "3.0"),
                &RequestContext::admin(),
                "object_class_action_versions",
                a,
                self.opts(),
            )
            .await
            .map_err(|source| ComputeError::Rpc {
                source: Box::new(source),
                what: format!("{objname}.{objmethod}"),
            })
    }

    /// A remote instance method (`save`, `create`, `destroy`...): sends the
    /// object, applies the conductor's `[updates, result]` to it and
    /// returns the result.
    #[tracing::instrument(skip(self, obj, args, kwargs), fields(obj = %obj.name()))]
    pub async fn object_action(
        &self,
        obj: &mut NovaObject,
        objmethod: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, ComputeError> {
        let a = object_action_args(obj, objmethod, args, kwargs);
        let Value::Object(a) = a else {
            return Err(ComputeError::BadData("arguments are not a dict".into()));
        };
        let r = self
            .client
            .call(
                &Target::new("conductor", "3.0"),
                &RequestContext::admin(),
                "object_action",
                a,
                self.opts(),
            )
            .await
            .map_err(|source| ComputeError::Rpc {
                source: Box::new(source),
                what: format!("{}.{objmethod}", obj.name()),
            })?;
        let reply = ActionReply::parse(&r).map_err(|e| ComputeError::BadData(e.to_string()))?;
        apply_updates(obj, &reply);
        Ok(reply.result)
    }

    /// A fanout cast to every scheduler (`update_instance_info`...), version 4.2.
    pub async fn scheduler_fanout(
        &self,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<(), ComputeError> {
        self.client
            .cast(
                &Target::new("scheduler", "4.2").fanout(),
                &RequestContext::admin(),
                method,
                args,
            )
            .await
            .map_err(|source| ComputeError::Rpc {
                source: Box::new(source),
                what: format!("scheduler {method}"),
            })
    }
}

/// Reads a nova object from a reply; `None` for a null reply.
pub fn object_from_reply(v: &Value) -> Result<Option<NovaObject>, ComputeError> {
    if v.is_null() {
        return Ok(None);
    }
    NovaObject::from_value(v)
        .map(Some)
        .map_err(|e| ComputeError::BadData(format!("conductor reply: {e}")))
}
