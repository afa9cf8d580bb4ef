//! The compute manager: the RPC endpoint nova's `ComputeAPI` (version 6.5,
//! topics `compute` and `compute-alt`) talks to. Every method of nova 34's
//! ComputeAPI is registered ([`super::rpcapi::METHODS`]); the ones novakvm
//! serves follow stock nova-compute's conductor traffic (captures
//! 0047-0108), the others answer a call with a `NotImplementedError`
//! failure and log a cast.

// The RPC layer's handler contract is `Result<Value, RemoteFailure>`.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};
use tokio::sync::{watch, Mutex};
use uuid::Uuid;

use super::conductor::Conductor;
use super::error::ComputeError;
use super::resources::{node_usage, InstanceUsage};
use super::rpcapi;
use crate::config::Config;
use crate::objects::isotime::format_isotime;
use crate::objects::views::ComputeNode;
use crate::objects::{NovaObject, ObjectView};
use crate::placement::Reporter;
use crate::rpc::{RemoteFailure, RequestContext, RpcEndpoint, Version};
use crate::virt::{
    BlockDeviceInfo, ComputeDriver, DriverError, EphemeralDisk, RebootType, SpawnRequest, SwapDisk,
};

/// Resources one instance holds on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracked {
    vcpus: i64,
    memory_mb: i64,
    disk_gb: i64,
    project: String,
    building: bool,
}

/// Shared state of the running agent.
pub struct Agent {
    /// The configuration.
    pub cfg: Config,
    /// This compute node's uuid.
    pub node_uuid: Uuid,
    /// The conductor (and scheduler) client.
    pub conductor: Conductor,
    /// The virt driver.
    pub driver: Arc<dyn ComputeDriver>,
    /// Placement reporter, when Placement is configured.
    pub reporter: Option<Arc<Reporter>>,
    /// Our ComputeNode record (as last saved).
    pub node: Mutex<ComputeNode>,
    /// Whether the service is disabled (drives `COMPUTE_STATUS_DISABLED`).
    pub disabled: AtomicBool,
    /// Signals the Placement loop to update now.
    pub placement_changed: watch::Sender<()>,
    tracked: StdMutex<HashMap<Uuid, Tracked>>,
    failed_builds: StdMutex<i64>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("host", &self.cfg.default.host)
            .field("node_uuid", &self.node_uuid)
            .field("driver", &self.driver.name())
            .finish()
    }
}

/// The root disk's device name (virtio-blk, as the libvirt driver names it).
pub const ROOT_DEVICE_NAME: &str = "/dev/vda";

/// The root mapping (boot_index 0) without a device name yet, from a
/// `BlockDeviceMappingList` reply.
fn root_bdm_of(v: &Value) -> Option<NovaObject> {
    let list = NovaObject::from_value(v).ok()?;
    list.objects("objects").ok()?.into_iter().find(|b| {
        b.get("boot_index").and_then(Value::as_i64) == Some(0)
            && b.get("device_name").map_or(true, Value::is_null)
    })
}

/// nova's `block_device_info` from the `block_device_mapping` argument:
/// the root disk, ephemerals (`source_type=blank`, `destination_type=local`)
/// and swap (`guest_format=swap`), named in guest order after `/dev/vda` as
/// `_default_block_device_names` does. A volume mapping is refused
/// (InvalidBDM): this host has no volume support.
fn block_device_info(v: Option<&Value>) -> Result<BlockDeviceInfo, ComputeError> {
    let mut info = BlockDeviceInfo {
        root_device_name: ROOT_DEVICE_NAME.to_string(),
        ..BlockDeviceInfo::default()
    };
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(info);
    };
    let list = NovaObject::from_value(v)
        .map_err(|e| ComputeError::BadData(format!("block_device_mapping: {e}")))?;
    let bdms = list
        .objects("objects")
        .map_err(|e| ComputeError::BadData(format!("block_device_mapping: {e}")))?;
    let mut next = b'b';
    for b in bdms {
        let field = |f: &str| b.get(f).and_then(Value::as_str).unwrap_or_default();
        if field("destination_type") == "volume" {
            return Err(ComputeError::BadData(format!(
                "InvalidBDM: block device mapping {} is a volume; volumes are not supported on this host",
                field("uuid")
            )));
        }
        if field("source_type") != "blank" || field("destination_type") != "local" {
            continue;
        }
        let size = b.get("volume_size").and_then(Value::as_u64).unwrap_or(0);
        let name = format!("/dev/vd{}", char::from(next));
        next = next.saturating_add(1);
        if field("guest_format") == "swap" {
            info.swap = Some(SwapDisk {
                device_name: name,
                // nova keeps the swap size in MiB in volume_size.
                size_mb: size,
            });
        } else {
            let gf = field("guest_format");
            info.ephemerals.push(EphemeralDisk {
                device_name: name,
                size_gb: size,
                guest_format: (!gf.is_empty()).then(|| gf.to_string()),
            });
        }
    }
    Ok(info)
}

/// `NotImplementedError` as nova raises it for unsupported operations.
pub fn not_implemented(method: &str) -> RemoteFailure {
    RemoteFailure::new(
        "builtins",
        "NotImplementedError",
        format!("novakvm does not support {method} yet"),
    )
}

fn bad_arg(method: &str, what: &str) -> RemoteFailure {
    RemoteFailure::value_error(format!("{method}: {what}"))
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is a single insert/remove/assignment.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The instance of a request's `instance` argument (an object primitive,
/// or, as in some casts, its JSON text).
fn instance_arg(method: &str, args: &Map<String, Value>) -> Result<NovaObject, RemoteFailure> {
    let v = args
        .get("instance")
        .ok_or_else(|| bad_arg(method, "missing argument 'instance'"))?;
    let parsed;
    let v = match v {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| bad_arg(method, &format!("instance is not JSON: {e}")))?;
            &parsed
        }
        other => other,
    };
    let mut obj =
        NovaObject::from_value(v).map_err(|e| bad_arg(method, &format!("instance: {e}")))?;
    if obj.name() != "Instance" {
        return Err(bad_arg(
            method,
            &format!("instance is a {}, not an Instance", obj.name()),
        ));
    }
    instance_uuid(&obj).map_err(|e| bad_arg(method, &e.to_string()))?;
    obj.reset_changes_recursive();
    Ok(obj)
}

fn instance_uuid(inst: &NovaObject) -> Result<Uuid, ComputeError> {
    inst.get("uuid")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ComputeError::BadData("instance has no valid uuid".into()))
}

fn int_field(inst: &NovaObject, f: &str) -> i64 {
    inst.get(f).and_then(Value::as_i64).unwrap_or(0)
}

fn str_field(inst: &NovaObject, f: &str) -> String {
    inst.get(f)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn now() -> String {
    format_isotime(SystemTime::now())
}

fn kwargs(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

impl Agent {
    /// A new agent state.
    pub fn new(
        cfg: Config,
        node_uuid: Uuid,
        conductor: Conductor,
        driver: Arc<dyn ComputeDriver>,
        reporter: Option<Arc<Reporter>>,
        node: ComputeNode,
        disabled: bool,
    ) -> Self {
        let (placement_changed, _) = watch::channel(());
        Self {
            cfg,
            node_uuid,
            conductor,
            driver,
            reporter,
            node: Mutex::new(node),
            disabled: AtomicBool::new(disabled),
            placement_changed,
            tracked: StdMutex::new(HashMap::new()),
            failed_builds: StdMutex::new(0),
        }
    }

    fn host(&self) -> &str {
        &self.cfg.default.host
    }

    /// Starts tracking instances found on this host at start-up.
    pub fn track_existing(&self, instances: &[NovaObject]) {
        for i in instances {
            if let Ok(u) = instance_uuid(i) {
                lock(&self.tracked).insert(u, Self::tracked_of(i, false));
            }
        }
    }

    fn tracked_of(inst: &NovaObject, building: bool) -> Tracked {
        Tracked {
            vcpus: int_field(inst, "vcpus"),
            memory_mb: int_field(inst, "memory_mb"),
            disk_gb: int_field(inst, "root_gb") + int_field(inst, "ephemeral_gb"),
            project: str_field(inst, "project_id"),
            building,
        }
    }

    /// The usage the resource tracker would compute now.
    pub fn usage(&self) -> InstanceUsage {
        let t = lock(&self.tracked);
        let mut u = InstanceUsage {
            failed_builds: *lock(&self.failed_builds),
            ..InstanceUsage::default()
        };
        for i in t.values() {
            u.instances += 1;
            u.vcpus += i.vcpus;
            u.memory_mb += i.memory_mb;
            u.disk_gb += i.disk_gb;
            if i.building {
                u.building += 1;
            }
            *u.per_project.entry(i.project.clone()).or_insert(0) += 1;
        }
        u
    }

    /// `ComputeNode.save` of the usage fields when they changed (the
    /// resource tracker's `_update`).
    pub async fn save_usage(&self) -> Result<(), ComputeError> {
        let usage = node_usage(&self.cfg, &self.usage());
        let mut node = self.node.lock().await;
        node.object_mut().reset_changes_recursive();
        node.set_usage(&usage);
        self.conductor
            .object_action(node.object_mut(), "save", vec![], Map::new())
            .await?;
        Ok(())
    }

    async fn event_start(&self, uuid: Uuid, event: &str) {
        let r = self
            .conductor
            .class_action(
                "InstanceActionEvent",
                "event_start",
                vec![json!(uuid.to_string()), json!(event)],
                kwargs(&[("want_result", json!(false)), ("host", json!(self.host()))]),
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(%uuid, event, error = %e, "cannot record the action event start");
        }
    }

    async fn event_finish(&self, uuid: Uuid, event: &str, error: Option<&str>) {
        let r = self
            .conductor
            .class_action(
                "InstanceActionEvent",
                "event_finish_with_failure",
                vec![json!(uuid.to_string()), json!(event)],
                kwargs(&[
                    ("exc_val", error.map_or(Value::Null, |e| json!(e))),
                    (
                        "exc_tb",
                        error.map_or(Value::Null, |e| {
                            json!(format!(
                                "Traceback (most recent call last):\nnovakvm: {e}\n"
                            ))
                        }),
                    ),
                    ("want_result", json!(false)),
                ]),
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(%uuid, event, error = %e, "cannot record the action event finish");
        }
    }

    async fn save(
        &self,
        inst: &mut NovaObject,
        expected_task_state: Option<Value>,
    ) -> Result<(), ComputeError> {
        let kw = match expected_task_state {
            Some(v) => kwargs(&[("expected_task_state", v)]),
            None => Map::new(),
        };
        self.conductor
            .object_action(inst, "save", vec![], kw)
            .await
            .map(|_| ())
    }

    async fn update_scheduler(&self, inst: &NovaObject) {
        self.update_scheduler_list(std::slice::from_ref(inst)).await;
    }

    /// `update_instance_info` fanout cast with these instances (nova's
    /// `_update_scheduler_instance_info`; at start with all of the host's).
    pub async fn update_scheduler_list(&self, instances: &[NovaObject]) {
        let objects: Vec<Value> = instances.iter().map(NovaObject::to_value).collect();
        let list = json!({
            "nova_object.name": "InstanceList",
            "nova_object.namespace": "nova",
            "nova_object.version": "2.6",
            "nova_object.data": {"objects": objects},
        });
        let args = kwargs(&[("host_name", json!(self.host())), ("instance_info", list)]);
        if let Err(e) = self
            .conductor
            .scheduler_fanout("update_instance_info", args)
            .await
        {
            tracing::warn!(error = %e, "cannot update the scheduler's instance info");
        }
    }

    /// Cast `sync_instance_info` to the schedulers (periodic
    /// `_sync_scheduler_instance_info`).
    pub async fn sync_scheduler(&self) {
        let uuids: Vec<String> = lock(&self.tracked).keys().map(Uuid::to_string).collect();
        let args = kwargs(&[
            ("host_name", json!(self.host())),
            ("instance_uuids", json!(uuids)),
        ]);
        if let Err(e) = self
            .conductor
            .scheduler_fanout("sync_instance_info", args)
            .await
        {
            tracing::warn!(error = %e, "cannot sync the scheduler's instance info");
        }
    }

    async fn delete_allocations(&self, uuid: Uuid) {
        if let Some(r) = &self.reporter {
            if let Err(e) = r.delete_allocations_for_instance(&uuid.to_string()).await {
                tracing::warn!(%uuid, error = %e, "cannot delete the instance's allocations");
            }
        }
    }

    async fn run_driver<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ComputeDriver) -> Result<T, DriverError> + Send + 'static,
    ) -> Result<T, ComputeError> {
        let d = self.driver.clone();
        tokio::task::spawn_blocking(move || f(d.as_ref()))
            .await
            .map_err(|e| ComputeError::BadData(format!("driver task failed: {e}")))?
            .map_err(ComputeError::from)
    }

    fn spawn_request(
        inst: &NovaObject,
        uuid: Uuid,
        args: &Map<String, Value>,
        ctx: &RequestContext,
    ) -> Result<SpawnRequest, ComputeError> {
        let flavor = inst
            .get("flavor")
            .and_then(|f| f.get("nova_object.data"))
            .cloned()
            .unwrap_or(Value::Null);
        let extra_specs = flavor
            .get("extra_specs")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                        (k.clone(), text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let block_devices = block_device_info(args.get("block_device_mapping"))?;
        Ok(SpawnRequest {
            uuid,
            name: {
                let n = str_field(inst, "display_name");
                if n.is_empty() {
                    format!("instance-{uuid}")
                } else {
                    n
                }
            },
            vcpus: u32::try_from(int_field(inst, "vcpus")).unwrap_or(1).max(1),
            memory_mb: u64::try_from(int_field(inst, "memory_mb"))
                .unwrap_or(64)
                .max(1),
            root_gb: u64::try_from(int_field(inst, "root_gb")).unwrap_or(0),
            ephemeral_gb: u64::try_from(int_field(inst, "ephemeral_gb")).unwrap_or(0),
            swap_mb: flavor.get("swap").and_then(Value::as_u64).unwrap_or(0),
            image: args.get("image").cloned().unwrap_or(Value::Null),
            block_devices,
            network_info: Vec::new(),
            extra_specs,
            context: ctx.clone(),
            power_on: true,
        })
    }

    /// `build_and_run_instance` (nova's `_do_build_and_run_instance`).
    #[tracing::instrument(skip_all, fields(instance))]
    pub async fn build_and_run_instance(
        self: Arc<Self>,
        ctx: RequestContext,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteFailure> {
        const EVENT: &str = "compute__do_build_and_run_instance";
        let mut inst = instance_arg("build_and_run_instance", &args)?;
        let uuid = instance_uuid(&inst).map_err(|e| e.to_failure())?;
        tracing::Span::current().record("instance", tracing::field::display(uuid));
        self.event_start(uuid, EVENT).await;
        let r = self.build(&mut inst, uuid, &args, &ctx).await;
        match r {
            Ok(()) => {
                self.event_finish(uuid, EVENT, None).await;
                tracing::info!(%uuid, "instance built and running");
            }
            Err(e) => {
                tracing::error!(%uuid, error = %e, "build failed");
                let msg = format!("Build of instance {uuid} aborted: {e}");
                self.build_failed(&mut inst, uuid, &msg).await;
                self.event_finish(uuid, EVENT, Some(&msg)).await;
            }
        }
        Ok(Value::Null)
    }

    async fn build(
        &self,
        inst: &mut NovaObject,
        uuid: Uuid,
        args: &Map<String, Value>,
        ctx: &RequestContext,
    ) -> Result<(), ComputeError> {
        // 0050: the instance is ours and building.
        inst.set("vm_state", "building");
        inst.set("task_state", Value::Null);
        self.save(inst, Some(json!(["scheduling", null]))).await?;
        // 0053: the claim sets host and node.
        let node_id = self.node.lock().await.id();
        inst.set("host", self.host());
        inst.set("node", self.host());
        inst.set("launched_on", self.host());
        if let Some(id) = node_id {
            inst.set("compute_id", id);
        }
        inst.set("numa_topology", Value::Null);
        self.save(inst, None).await?;
        lock(&self.tracked).insert(uuid, Self::tracked_of(inst, true));
        // 0055: the block device mappings of the instance.
        let mut root_bdm = match self
            .conductor
            .class_action(
                "BlockDeviceMappingList",
                "get_by_instance_uuid",
                vec![json!(uuid.to_string())],
                Map::new(),
            )
            .await
        {
            Ok(v) => root_bdm_of(&v),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the block device mappings");
                None
            }
        };
        // 0057/0059: the resource tracker's usage update.
        if let Err(e) = self
            .conductor
            .class_action(
                "Service",
                "get_by_compute_host",
                vec![json!(self.host())],
                Map::new(),
            )
            .await
        {
            tracing::debug!(error = %e, "Service.get_by_compute_host");
        }
        if let Err(e) = self.save_usage().await {
            tracing::warn!(error = %e, "cannot save the compute node usage");
        }
        // 0061: networking (no ports with --nic none).
        inst.set("task_state", "networking");
        self.save(inst, Some(json!([null]))).await?;
        // 0063/0065: the root device gets its name.
        if let Some(bdm) = root_bdm.as_mut() {
            bdm.reset_changes_recursive();
            bdm.set("device_name", ROOT_DEVICE_NAME);
            if let Err(e) = self
                .conductor
                .object_action(bdm, "save", vec![], Map::new())
                .await
            {
                tracing::warn!(error = %e, "cannot save the root block device mapping");
            }
            inst.set("root_device_name", ROOT_DEVICE_NAME);
        }
        inst.set("task_state", "block_device_mapping");
        self.save(inst, None).await?;
        inst.set("task_state", "spawning");
        self.save(inst, Some(json!("block_device_mapping"))).await?;
        let req = Self::spawn_request(inst, uuid, args, ctx)?;
        self.run_driver(move |d| d.spawn(&req)).await?;
        // 0069: running.
        inst.set("power_state", 1);
        inst.set("vm_state", "active");
        inst.set("task_state", Value::Null);
        inst.set("launched_at", now());
        self.save(inst, Some(json!("spawning"))).await?;
        if let Some(t) = lock(&self.tracked).get_mut(&uuid) {
            t.building = false;
        }
        self.update_scheduler(inst).await;
        Ok(())
    }

    /// The failed-build path: fault, ERROR state, allocations deleted, node
    /// and host cleared (nova's `_build_failed` /
    /// `add_instance_fault_from_exc` / `_set_instance_obj_error_state`).
    async fn build_failed(&self, inst: &mut NovaObject, uuid: Uuid, msg: &str) {
        let d = self.driver.clone();
        let _ = tokio::task::spawn_blocking(move || d.destroy(uuid, true)).await;
        lock(&self.tracked).remove(&uuid);
        *lock(&self.failed_builds) += 1;
        let mut fault = NovaObject::new("InstanceFault", "1.2");
        fault.set("host", self.host());
        fault.set("instance_uuid", uuid.to_string());
        let short: String = msg.chars().take(255).collect();
        fault.set("message", short);
        fault.set("code", 500);
        fault.set("details", msg);
        if let Err(e) = self
            .conductor
            .object_action(&mut fault, "create", vec![], Map::new())
            .await
        {
            tracing::warn!(%uuid, error = %e, "cannot record the instance fault");
        }
        inst.object_reset_for_error();
        if let Err(e) = self.save(inst, None).await {
            tracing::error!(%uuid, error = %e, "cannot put the instance in ERROR");
        }
        self.delete_allocations(uuid).await;
        if let Err(e) = self.save_usage().await {
            tracing::warn!(error = %e, "cannot save the compute node usage");
        }
    }

    /// `terminate_instance`.
    #[tracing::instrument(skip_all, fields(instance))]
    pub async fn terminate_instance(
        self: Arc<Self>,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteFailure> {
        const EVENT: &str = "compute_terminate_instance";
        let mut inst = instance_arg("terminate_instance", &args)?;
        let uuid = instance_uuid(&inst).map_err(|e| e.to_failure())?;
        tracing::Span::current().record("instance", tracing::field::display(uuid));
        self.event_start(uuid, EVENT).await;
        let r: Result<(), ComputeError> = async {
            self.run_driver(move |d| d.destroy(uuid, true)).await?;
            inst.set("power_state", 0);
            inst.set("vm_state", "deleted");
            inst.set("task_state", Value::Null);
            inst.set("terminated_at", now());
            self.save(&mut inst, None).await?;
            lock(&self.tracked).remove(&uuid);
            if let Err(e) = self.save_usage().await {
                tracing::warn!(error = %e, "cannot save the compute node usage");
            }
            let args = kwargs(&[
                ("host_name", json!(self.host())),
                ("instance_uuid", json!(uuid.to_string())),
            ]);
            if let Err(e) = self
                .conductor
                .scheduler_fanout("delete_instance_info", args)
                .await
            {
                tracing::warn!(error = %e, "cannot update the scheduler");
            }
            self.delete_allocations(uuid).await;
            self.conductor
                .object_action(&mut inst, "destroy", vec![], Map::new())
                .await?;
            Ok(())
        }
        .await;
        match r {
            Ok(()) => {
                self.event_finish(uuid, EVENT, None).await;
                tracing::info!(%uuid, "instance deleted");
                Ok(Value::Null)
            }
            Err(e) => {
                self.event_finish(uuid, EVENT, Some(&e.to_string())).await;
                inst.object_reset_for_error();
                let _ = self.save(&mut inst, None).await;
                Err(e.to_failure())
            }
        }
    }

    /// A power operation: driver call, then the state nova records.
    #[tracing::instrument(skip(self, args, pre, op), fields(instance))]
    async fn power_op(
        self: Arc<Self>,
        method: &'static str,
        args: Map<String, Value>,
        pre: Option<(&'static str, Value)>,
        expected: &'static str,
        after: (i64, &'static str),
        op: impl FnOnce(&dyn ComputeDriver, Uuid) -> Result<(), DriverError> + Send + 'static,
    ) -> Result<Value, RemoteFailure> {
        let mut inst = instance_arg(method, &args)?;
        let uuid = instance_uuid(&inst).map_err(|e| e.to_failure())?;
        tracing::Span::current().record("instance", tracing::field::display(uuid));
        let event = format!("compute_{method}");
        self.event_start(uuid, &event).await;
        let r: Result<(), ComputeError> = async {
            if let Some((task_state, expected_before)) = pre {
                inst.set("task_state", task_state);
                self.save(&mut inst, Some(expected_before)).await?;
            }
            self.run_driver(move |d| op(d, uuid)).await?;
            inst.set("power_state", after.0);
            inst.set("vm_state", after.1);
            inst.set("task_state", Value::Null);
            self.save(&mut inst, Some(json!(expected))).await
        }
        .await;
        match r {
            Ok(()) => {
                self.event_finish(uuid, &event, None).await;
                Ok(Value::Null)
            }
            Err(e) => {
                tracing::error!(%uuid, method, error = %e, "operation failed");
                self.event_finish(uuid, &event, Some(&e.to_string())).await;
                // nova reverts the task state so the instance stays usable.
                inst.reset_changes_recursive();
                inst.set("task_state", Value::Null);
                let _ = self.save(&mut inst, None).await;
                Err(e.to_failure())
            }
        }
    }

    /// `get_console_output`: the last `tail_length` lines (all when null).
    #[tracing::instrument(skip_all)]
    pub async fn get_console_output(
        self: Arc<Self>,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteFailure> {
        let inst = instance_arg("get_console_output", &args)?;
        let uuid = instance_uuid(&inst).map_err(|e| e.to_failure())?;
        let tail = match args.get("tail_length") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| bad_arg("get_console_output", "tail_length is not a count"))?,
            ),
        };
        let bytes = self
            .run_driver(move |d| d.get_console_output(uuid))
            .await
            .map_err(|e| match e {
                ComputeError::Driver(DriverError::InstanceNotFound(u)) => RemoteFailure::new(
                    "nova.exception",
                    "InstanceNotFound",
                    format!("Instance {u} could not be found."),
                )
                .with_kwarg("instance_id", json!(u.to_string()))
                .with_kwarg("code", 404.into()),
                other => other.to_failure(),
            })?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(json!(match tail {
            None => text,
            Some(n) => {
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(n as usize);
                lines[start..].join("\n")
            }
        }))
    }

    /// `set_host_enabled`: the `COMPUTE_STATUS_DISABLED` trait follows, and
    /// the answer is `enabled`/`disabled` as nova's manager gives it.
    #[tracing::instrument(skip_all)]
    pub async fn set_host_enabled(
        self: Arc<Self>,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteFailure> {
        let enabled = args
            .get("enabled")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad_arg("set_host_enabled", "enabled must be a boolean"))?;
        self.disabled.store(!enabled, Ordering::SeqCst);
        self.placement_changed.send_replace(());
        Ok(json!(if enabled { "enabled" } else { "disabled" }))
    }

    /// `get_host_uptime`: what `uptime` prints.
    #[tracing::instrument(skip_all)]
    pub async fn get_host_uptime(self: Arc<Self>) -> Result<Value, RemoteFailure> {
        self.run_driver(|d| d.get_host_uptime())
            .await
            .map(Value::String)
            .map_err(|e| e.to_failure())
    }
}

trait ErrorState {
    fn object_reset_for_error(&mut self);
}

impl ErrorState for NovaObject {
    /// nova's `_nil_out_instance_obj_host_and_node` +
    /// `_set_instance_obj_error_state(clean_task_state=True)`.
    fn object_reset_for_error(&mut self) {
        self.reset_changes_recursive();
        self.set("vm_state", "error");
        self.set("task_state", Value::Null);
    }
}

/// The RPC endpoint (target version 6.5, default namespace).
#[derive(Debug, Clone)]
pub struct ComputeEndpoint {
    agent: Arc<Agent>,
    version: Version,
}

impl ComputeEndpoint {
    /// The endpoint serving `agent`.
    pub fn new(agent: Arc<Agent>) -> Self {
        Self {
            agent,
            version: Version {
                major: 6,
                minor: 5,
                rev: 0,
            },
        }
    }
}

impl RpcEndpoint for ComputeEndpoint {
    fn namespace(&self) -> Option<&str> {
        None
    }

    fn version(&self) -> Version {
        self.version
    }

    fn has_method(&self, method: &str) -> bool {
        rpcapi::kind(method).is_some()
    }

    fn call(
        &self,
        method: &str,
        ctx: RequestContext,
        args: Map<String, Value>,
    ) -> crate::rpc::HandlerFuture {
        let a = self.agent.clone();
        let method = method.to_string();
        Box::pin(async move {
            match method.as_str() {
                "build_and_run_instance" => a.build_and_run_instance(ctx, args).await,
                "terminate_instance" => a.terminate_instance(args).await,
                "get_console_output" => a.get_console_output(args).await,
                "set_host_enabled" => a.set_host_enabled(args).await,
                "get_host_uptime" => a.get_host_uptime().await,
                "stop_instance" => {
                    let timeout = if args
                        .get("clean_shutdown")
                        .and_then(Value::as_bool)
                        .unwrap_or(true)
                    {
                        Duration::from_secs(60)
                    } else {
                        Duration::ZERO
                    };
                    a.power_op(
                        "stop_instance",
                        args,
                        None,
                        "powering-off",
                        (4, "stopped"),
                        move |d, u| d.power_off(u, timeout),
                    )
                    .await
                }
                "start_instance" => {
                    a.power_op(
                        "start_instance",
                        args,
                        None,
                        "powering-on",
                        (1, "active"),
                        |d, u| d.power_on(u),
                    )
                    .await
                }
                "reboot_instance" => {
                    let kind = match args.get("reboot_type").and_then(Value::as_str) {
                        Some("HARD") => RebootType::Hard,
                        _ => RebootType::Soft,
                    };
                    // nova: soft_reboot_states / hard_reboot_states, then
                    // REBOOT_STARTED(_HARD) while the driver reboots.
                    let (expected, before) = if kind == RebootType::Hard {
                        (
                            "reboot_started_hard",
                            json!([
                                "rebooting_hard",
                                "reboot_pending_hard",
                                "reboot_started_hard",
                                "rebooting",
                                "reboot_pending",
                                "reboot_started"
                            ]),
                        )
                    } else {
                        (
                            "reboot_started",
                            json!(["rebooting", "reboot_pending", "reboot_started"]),
                        )
                    };
                    let pre = Some((expected, before));
                    a.power_op(
                        "reboot_instance",
                        args,
                        pre,
                        expected,
                        (1, "active"),
                        move |d, u| d.reboot(u, kind),
                    )
                    .await
                }
                "pause_instance" => {
                    a.power_op(
                        "pause_instance",
                        args,
                        None,
                        "pausing",
                        (3, "paused"),
                        |d, u| d.pause(u),
                    )
                    .await
                }
                "unpause_instance" => {
                    a.power_op(
                        "unpause_instance",
                        args,
                        None,
                        "unpausing",
                        (1, "active"),
                        |d, u| d.unpause(u),
                    )
                    .await
                }
                "external_instance_event" => {
                    tracing::info!(?args, "external instance events received");
                    Ok(Value::Null)
                }
                other => {
                    if rpcapi::kind(other) == Some(rpcapi::Kind::Cast) {
                        tracing::warn!(
                            method = other,
                            "novakvm does not support {other} yet; cast dropped"
                        );
                    }
                    Err(not_implemented(other))
                }
            }
        })
    }
}
