//! The `novakvm compute` service: nova's `Service.start()` for the compute
//! binary, everything through nova-conductor.
//!
//! Start-up (the order of stock nova-compute's captures 0004-0040):
//! ping the conductor until it answers, `Service.get_minimum_version`,
//! `Service.get_by_host_and_binary`, the node identity (`compute_id`),
//! `ComputeNodeList.get_all_by_uuids` (host rename check),
//! `InstanceList.get_by_host`, `Service.create` (first start),
//! `ComputeNode.get_by_uuid` → `create` or `save`, the usage `save`,
//! Placement, then the RPC server (topics `compute` and `compute-alt`) and
//! the heartbeat (`Service.save` with `report_count + 1` every
//! `report_interval`, as the servicegroup DB driver). SIGTERM/SIGINT stop
//! consuming, let in-flight handlers finish (10 s at most) and exit; like
//! nova, no final `Service.save` (the service goes down after
//! `service_down_time`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::conductor::{object_from_reply, Conductor};
use super::error::ComputeError;
use super::manager::{Agent, ComputeEndpoint};
use super::node_identity;
use super::resources;
use crate::config::Config;
use crate::host::{HostInventory, InventoryOptions};
use crate::objects::compute::ComputeNodeResources;
use crate::objects::views::{ComputeNode, Service};
use crate::objects::{NovaObject, ObjectView};
use crate::placement::HostResources;
use crate::placement::{ClientSettings, PlacementClient, ReportSettings, Reporter};
use crate::rpc::{BaseRpcEndpoint, Dispatcher, RpcClient, RpcServer, ServerConfig, Transport};
use crate::virt::fake::FakeDriver;
use crate::virt::pending::PendingKvmDriver;
use crate::virt::Capabilities;
use crate::virt::ComputeDriver;

/// Errors of the compute service's own start and stop.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot install a signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Compute(#[from] ComputeError),
}

/// Where the agent looks for things besides its configuration.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Directories of the configuration files (searched for `compute_id`).
    pub config_dirs: Vec<PathBuf>,
    /// The sysfs/procfs root for host inventory (`/`).
    pub host_root: Option<PathBuf>,
    /// `[DEFAULT] my_ip` (the node's `host_ip`); detected when None.
    pub my_ip: Option<std::net::IpAddr>,
}

/// Run the agent until SIGTERM or SIGINT.
pub fn run(cfg: Config, opts: StartOptions) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %ServiceError::Runtime(e), "novakvm compute failed");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(cfg, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "novakvm compute failed");
            eprintln!("novakvm compute: {e}");
            ExitCode::from(1)
        }
    }
}

/// The driver named by `[DEFAULT] compute_driver`: nova's fake drivers
/// map to [`FakeDriver`]; anything else is KVM (not able to build yet).
pub fn driver_for(cfg: &Config) -> Arc<dyn ComputeDriver> {
    let name = cfg.default.compute_driver.as_str();
    if name.starts_with("fake.") || name.starts_with("nova.virt.fake.") {
        Arc::new(FakeDriver::new())
    } else {
        // The KVM driver (virt::kvm) is not wired in until its image layer
        // lands (issue #10); builds end in ERROR with a clear fault.
        Arc::new(PendingKvmDriver)
    }
}

async fn serve(cfg: Config, opts: StartOptions) -> Result<(), ServiceError> {
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    // Handlers go in before anything is announced, so no early signal is lost.
    let signals = Signals::install()?;
    tokio::spawn(signals.cancel_on_first(shutdown.clone()));
    tracing::info!(host = %cfg.default.host, driver = %cfg.default.compute_driver, "novakvm compute starting");
    let r = start_and_serve(cfg, opts, shutdown.clone(), started).await;
    match r {
        Ok(()) | Err(ComputeError::Stopped) => {
            tracing::info!("novakvm compute stopped");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn inventory(cfg: &Config, opts: &StartOptions) -> Result<HostInventory, ComputeError> {
    let root = opts.host_root.clone().unwrap_or_else(|| PathBuf::from("/"));
    Ok(crate::host::collect(
        &root,
        &InventoryOptions::from_config(cfg),
    )?)
}

fn remote_not_found(e: &ComputeError) -> bool {
    e.remote_class().is_some_and(|c| c.ends_with("NotFound"))
}

async fn start_and_serve(
    cfg: Config,
    opts: StartOptions,
    stop: CancellationToken,
    started: Instant,
) -> Result<(), ComputeError> {
    let host = cfg.default.host.clone();
    let inv = inventory(&cfg, &opts)?;
    for w in &inv.warnings {
        tracing::warn!("host inventory: {w}");
    }
    let driver = driver_for(&cfg);
    let transport = Arc::new(
        Transport::new(
            &cfg.default.transport_url,
            cfg.oslo_messaging_rabbit.clone(),
        )
        .map_err(|e| ComputeError::Transport(e.to_string()))?,
    );
    let client = Arc::new(RpcClient::new(
        transport.clone(),
        &cfg.default.control_exchange,
    ));
    let timeout = Duration::from_secs(cfg.default.rpc_response_timeout.max(1));
    let conductor = Conductor::new(client.clone(), timeout);

    // nova's ConductorAPI.wait_until_ready.
    conductor
        .wait_until_ready(&stop, timeout.min(Duration::from_secs(10)))
        .await?;
    tracing::info!(elapsed = ?started.elapsed(), "nova-conductor answers");
    let _ = conductor
        .class_action(
            "Service",
            "get_minimum_version",
            vec![json!("nova-compute")],
            Map::new(),
        )
        .await?;
    let existing = conductor
        .class_action(
            "Service",
            "get_by_host_and_binary",
            vec![json!(host), json!("nova-compute")],
            Map::new(),
        )
        .await?;
    let existing = object_from_reply(&existing)?
        .map(Service::from_object)
        .transpose()
        .map_err(|e| ComputeError::BadData(format!("Service: {e}")))?;

    // init_host
    let h = host.clone();
    let d = driver.clone();
    tokio::task::spawn_blocking(move || d.init_host(&h))
        .await
        .map_err(|e| ComputeError::BadData(e.to_string()))??;
    let mut locations = opts.config_dirs.clone();
    locations.push(cfg.default.state_path.clone());
    let node_uuid = node_identity::ensure(
        &locations,
        &cfg.default.state_path,
        existing.as_ref().and_then(Service::version),
    )?;
    if existing.is_none() && !driver.list_instance_uuids()?.is_empty() {
        return Err(ComputeError::InvalidConfiguration(
            "My hypervisor has existing instances, but I appear to be a new service in this \
             database. Possible database configuration error, refusing to start!"
                .into(),
        ));
    }
    let nodes = conductor
        .class_action(
            "ComputeNodeList",
            "get_all_by_uuids",
            vec![json!([node_uuid.to_string()])],
            Map::new(),
        )
        .await?;
    check_host_rename(&nodes, &host)?;
    let instances = conductor
        .class_action(
            "InstanceList",
            "get_by_host",
            vec![json!(host)],
            crate::compute::manager_kwargs(&[(
                "expected_attrs",
                json!([
                    "info_cache",
                    "metadata",
                    "system_metadata",
                    "numa_topology",
                    "flavor"
                ]),
            )]),
        )
        .await?;
    let instances = list_objects(&instances)?;
    // _destroy_evacuated_instances (drivers that support evacuation).
    read_only(
        &conductor,
        "MigrationList",
        "get_by_filters",
        vec![json!({
            "source_compute": host,
            "status": ["accepted", "pre-migrating", "done"],
            "migration_type": "evacuation",
        })],
        Map::new(),
    )
    .await;

    // Service record.
    let mut service = match existing {
        Some(mut s) => {
            s.object_mut().reset_changes_recursive();
            s
        }
        None => {
            let mut s = Service::for_compute(&host);
            conductor
                .object_action(s.object_mut(), "create", vec![], Map::new())
                .await?;
            tracing::info!(id = ?s.id(), "service record created");
            s
        }
    };
    let disabled = service.disabled().unwrap_or(false);

    // Compute node record (the resource tracker's _update_available_resource).
    read_only(
        &conductor,
        "ComputeNodeList",
        "get_all_by_host",
        vec![json!(host)],
        crate::compute::manager_kwargs(&[("use_slave", json!(true))]),
    )
    .await;
    let node =
        ensure_compute_node(&conductor, &cfg, &inv, node_uuid, service.id(), opts.my_ip).await?;
    let reporter = placement_reporter(&cfg, driver.capabilities());
    let agent = Arc::new(Agent::new(
        cfg.clone(),
        node_uuid,
        conductor.clone(),
        driver.clone(),
        reporter.clone(),
        node,
        disabled,
    ));
    let instances = recover_interrupted_builds(&conductor, instances).await;
    agent.track_existing(&instances);
    let node_id = agent.node.lock().await.id();
    read_only(
        &conductor,
        "PciDeviceList",
        "get_by_compute_node",
        vec![json!(node_id)],
        Map::new(),
    )
    .await;
    read_only(
        &conductor,
        "InstanceList",
        "get_by_host_and_node",
        vec![json!(host), json!(host)],
        crate::compute::manager_kwargs(&[(
            "expected_attrs",
            json!([
                "system_metadata",
                "numa_topology",
                "flavor",
                "migration_context",
                "resources"
            ]),
        )]),
    )
    .await;
    read_only(
        &conductor,
        "MigrationList",
        "get_in_progress_and_error",
        vec![json!(host), json!(host)],
        Map::new(),
    )
    .await;
    read_only(
        &conductor,
        "Service",
        "get_by_compute_host",
        vec![json!(host)],
        Map::new(),
    )
    .await;
    agent.save_usage().await?;
    tracing::info!(node = %node_uuid, elapsed = ?started.elapsed(), "compute node recorded");

    let host_res = resources::host_resources(&cfg, &inv, node_uuid);
    let shared_res = Arc::new(StdMutex::new(host_res.clone()));
    if let Some(r) = &reporter {
        match r.update(&host_res, disabled).await {
            Ok(o) => tracing::info!(
                created = o.created,
                inventory = o.inventory_written,
                traits = o.traits_written,
                "placement provider in place"
            ),
            Err(e) => tracing::error!(error = %e, "placement update failed; retrying periodically"),
        }
    }

    // RPC server: compute + compute-alt, per-host and fanout queues.
    let dispatcher = Dispatcher::new()
        .with(Arc::new(BaseRpcEndpoint::new("compute")))
        .with(Arc::new(ComputeEndpoint::new(agent.clone())));
    let mut scfg =
        ServerConfig::nova_compute(&host, cfg.default.executor_thread_pool_size.max(1) as usize);
    scfg.exchange = cfg.default.control_exchange.clone();
    let server = Arc::new(
        RpcServer::new(transport.clone(), scfg, dispatcher)
            .map_err(|e| ComputeError::Transport(e.to_string()))?,
    );
    let server_stop = CancellationToken::new();
    let mut ready = server.ready();
    let server_task = tokio::spawn({
        let server = server.clone();
        let s = server_stop.clone();
        async move { server.run(s).await }
    });
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = ready.wait_for(|n| *n > 0) => {}
    }
    if !instances.is_empty() {
        // nova: _update_scheduler_instance_info at the end of init_host.
        agent.update_scheduler_list(&instances).await;
    }
    tracing::info!(elapsed = ?started.elapsed(), host = %host, "novakvm compute is up");

    // Heartbeat, Placement loop, scheduler sync.
    let hb = tokio::spawn(heartbeat(
        agent.clone(),
        std::mem::replace(&mut service, Service::empty()),
        Duration::from_secs(cfg.default.report_interval.max(1)),
        stop.clone(),
    ));
    let mut tasks = vec![hb];
    if let (Some(r), Some(interval)) = (
        reporter.clone(),
        crate::placement::report::interval_from_config(cfg.default.update_resources_interval),
    ) {
        let a = agent.clone();
        let rx = agent.placement_changed.subscribe();
        let hr = shared_res.clone();
        tasks.push(tokio::spawn(r.run(interval, rx, stop.clone(), move || {
            let h = hr.lock().unwrap_or_else(|p| p.into_inner()).clone();
            (h, a.disabled.load(Ordering::SeqCst))
        })));
        tasks.push(tokio::spawn(resource_tracker(
            agent.clone(),
            opts.clone(),
            shared_res.clone(),
            interval,
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(scheduler_sync(agent.clone(), stop.clone())));

    stop.cancelled().await;
    tracing::info!("stopping: no new requests; in-flight ones may finish");
    server_stop.cancel();
    match server_task.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "RPC server ended with an error"),
        Err(e) => tracing::warn!(error = %e, "RPC server task failed"),
        Ok(Ok(())) => {}
    }
    for t in tasks {
        let _ = t.await;
    }
    let h = host.clone();
    let _ = tokio::task::spawn_blocking(move || driver.cleanup_host(&h)).await;
    client.close().await;
    Ok(())
}

/// nova's `_init_instance` for builds a crash interrupted: an instance
/// still `building` (or in a build task state) goes to ERROR, so it never
/// stays in BUILD.
async fn recover_interrupted_builds(
    conductor: &Conductor,
    instances: Vec<NovaObject>,
) -> Vec<NovaObject> {
    const BUILD_TASKS: &[&str] = &[
        "scheduling",
        "block_device_mapping",
        "networking",
        "spawning",
    ];
    let mut out = Vec::with_capacity(instances.len());
    for mut inst in instances {
        let vm = inst
            .get("vm_state")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let task = inst
            .get("task_state")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if vm == "building" || BUILD_TASKS.contains(&task) {
            let uuid = inst
                .get("uuid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            tracing::warn!(instance = %uuid, "instance failed to spawn correctly (interrupted build), setting to ERROR state");
            inst.reset_changes_recursive();
            inst.set("vm_state", "error");
            inst.set("task_state", Value::Null);
            if let Err(e) = conductor
                .object_action(&mut inst, "save", vec![], Map::new())
                .await
            {
                tracing::error!(instance = %uuid, error = %e, "cannot put the instance in ERROR");
            }
        }
        out.push(inst);
    }
    out
}

/// A read nova-compute makes at this point whose answer novakvm does not
/// need yet (no migrations, PCI devices); kept so the conductor sees the
/// same conversation as with stock nova-compute. Failures are logged.
async fn read_only(
    conductor: &Conductor,
    objname: &str,
    objmethod: &str,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) {
    if let Err(e) = conductor
        .class_action(objname, objmethod, args, kwargs)
        .await
    {
        tracing::debug!(error = %e, "{objname}.{objmethod}");
    }
}

fn list_objects(v: &Value) -> Result<Vec<NovaObject>, ComputeError> {
    match object_from_reply(v)? {
        None => Ok(Vec::new()),
        Some(list) => list
            .objects("objects")
            .map_err(|e| ComputeError::BadData(format!("{}: {e}", list.name()))),
    }
}

/// nova's `_check_for_host_rename`.
fn check_host_rename(nodes: &Value, host: &str) -> Result<(), ComputeError> {
    for n in list_objects(nodes)? {
        let node_host = n.get("host").and_then(Value::as_str).unwrap_or_default();
        if node_host != host {
            return Err(ComputeError::InvalidConfiguration(format!(
                "My node {} has host {node_host:?} but my host is {host:?}; \
                 Possible rename detected, refusing to start!",
                n.get("uuid").and_then(Value::as_str).unwrap_or("?")
            )));
        }
    }
    Ok(())
}

/// `ComputeNode.get_by_uuid`, then `create` (first start) or `save` of the
/// fields that changed.
async fn ensure_compute_node(
    conductor: &Conductor,
    cfg: &Config,
    inv: &HostInventory,
    node_uuid: Uuid,
    service_id: Option<i64>,
    my_ip: Option<std::net::IpAddr>,
) -> Result<ComputeNode, ComputeError> {
    let mut res = resources::node_resources(cfg, inv, node_uuid, service_id);
    if my_ip.is_some() {
        res.host_ip = my_ip;
    }
    let found = conductor
        .class_action(
            "ComputeNode",
            "get_by_uuid",
            vec![json!(node_uuid.to_string())],
            Map::new(),
        )
        .await;
    match found {
        Ok(v) => {
            let obj = object_from_reply(&v)?
                .ok_or_else(|| ComputeError::BadData("ComputeNode.get_by_uuid: null".into()))?;
            let mut node = ComputeNode::from_object(obj)
                .map_err(|e| ComputeError::BadData(format!("ComputeNode: {e}")))?;
            if node.host() != Some(cfg.default.host.as_str()) {
                return Err(ComputeError::InvalidConfiguration(format!(
                    "My node {node_uuid} has host {:?} but my host is {:?}; \
                     Possible rename detected, refusing to start!",
                    node.host().unwrap_or_default(),
                    cfg.default.host
                )));
            }
            node.object_mut().reset_changes_recursive();
            if refresh_node(&mut node, res) {
                conductor
                    .object_action(node.object_mut(), "save", vec![], Map::new())
                    .await?;
                tracing::info!(node = %node_uuid, "compute node record updated");
            }
            Ok(node)
        }
        Err(e) if remote_not_found(&e) => {
            let mut node = ComputeNode::for_create(&res);
            conductor
                .object_action(node.object_mut(), "create", vec![], Map::new())
                .await?;
            tracing::info!(node = %node_uuid, id = ?node.id(), "compute node record created");
            Ok(node)
        }
        Err(e) => Err(e),
    }
}

/// Updates the node's resource fields from `res`, keeping the record's
/// usage (recomputed by `save_usage`). True when a save is needed.
fn refresh_node(node: &mut ComputeNode, mut res: ComputeNodeResources) -> bool {
    res.vcpus_used = node.vcpus_used().unwrap_or(0);
    res.memory_mb_used = node.memory_mb_used().unwrap_or(res.memory_mb_used);
    res.local_gb_used = node.local_gb_used().unwrap_or(res.local_gb_used);
    let stats = node.stats();
    if !stats.is_empty() {
        res.stats = stats;
    }
    res.service_id = node.service_id().or(res.service_id);
    node.update_resources(&res)
}

/// nova's periodic `update_available_resource`: re-read the host every
/// `interval`; save the ComputeNode fields that changed and hand Placement
/// the new figures (it writes only what changed).
async fn resource_tracker(
    agent: Arc<Agent>,
    opts: StartOptions,
    shared: Arc<StdMutex<HostResources>>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut every = Every::start(interval).await;
    while every.next(&stop).await {
        let inv = match inventory(&agent.cfg, &opts) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "host inventory failed; keeping the last figures");
                continue;
            }
        };
        let mut res = resources::node_resources(&agent.cfg, &inv, agent.node_uuid, None);
        if opts.my_ip.is_some() {
            res.host_ip = opts.my_ip;
        }
        {
            let mut node = agent.node.lock().await;
            node.object_mut().reset_changes_recursive();
            if refresh_node(&mut node, res) {
                match agent
                    .conductor
                    .object_action(node.object_mut(), "save", vec![], Map::new())
                    .await
                {
                    Ok(_) => tracing::info!("compute node record updated"),
                    Err(e) => tracing::warn!(error = %e, "ComputeNode.save failed"),
                }
            }
        }
        let fresh = resources::host_resources(&agent.cfg, &inv, agent.node_uuid);
        let changed = {
            let mut cur = shared.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *cur != fresh;
            *cur = fresh;
            changed
        };
        if changed {
            agent.placement_changed.send_replace(());
        }
    }
}

/// The servicegroup DB driver's `_report_state`: `report_count += 1` and
/// `Service.save` every `report_interval`; errors are logged and the next
/// round tries again. The `disabled` flag in each reply drives Placement's
/// `COMPUTE_STATUS_DISABLED`.
async fn heartbeat(
    agent: Arc<Agent>,
    mut service: Service,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut every = Every::start(interval).await;
    while every.next(&stop).await {
        let before = service.clone();
        service.object_mut().reset_changes_recursive();
        let n = service.report_count().unwrap_or(0) + 1;
        service.set_report_count(Some(n));
        let r = agent
            .conductor
            .object_action(service.object_mut(), "save", vec![], Map::new())
            .await;
        match r {
            Ok(_) => {
                let disabled = service.disabled().unwrap_or(false);
                if agent.disabled.swap(disabled, Ordering::SeqCst) != disabled {
                    tracing::info!(disabled, "service disabled flag changed");
                    agent.placement_changed.send_replace(());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat (Service.save) failed; model server went away?");
                service = before;
            }
        }
    }
}

/// nova's `_sync_scheduler_instance_info` (every 120 s).
async fn scheduler_sync(agent: Arc<Agent>, stop: CancellationToken) {
    let mut every = Every::start(Duration::from_secs(120)).await;
    while every.next(&stop).await {
        agent.sync_scheduler().await;
    }
}

/// The timer of a periodic background task: the first period ends one
/// `period` after the start; a late tick delays the next ones (no bursts).
struct Every(tokio::time::Interval);

impl Every {
    async fn start(period: Duration) -> Self {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        Self(tick)
    }

    /// Waits for the next period; false once `stop` is cancelled.
    async fn next(&mut self, stop: &CancellationToken) -> bool {
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = self.0.tick() => true,
        }
    }
}

/// The Placement reporter, when `[placement]` is configured.
/// The Placement reporter; its capability traits are the driver's answer.
fn placement_reporter(cfg: &Config, capabilities: Capabilities) -> Option<Arc<Reporter>> {
    match PlacementClient::from_options(&cfg.placement, ClientSettings::default()) {
        Ok(c) => {
            let settings = ReportSettings {
                resources: crate::placement::tree::ResourceSettings::from_config(&cfg.default),
                capabilities,
                ..ReportSettings::default()
            };
            Some(Arc::new(Reporter::new(Arc::new(c), settings)))
        }
        Err(e) => {
            tracing::error!(error = %e, "[placement] is not usable; the node is not reported to Placement");
            None
        }
    }
}

/// SIGTERM and SIGINT streams, installed together.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, ServiceError> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(ServiceError::Signal)?,
            int: signal(SignalKind::interrupt()).map_err(ServiceError::Signal)?,
        })
    }

    /// Cancel `token` on the first SIGTERM or SIGINT.
    async fn cancel_on_first(mut self, token: CancellationToken) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received, stopping"),
            _ = self.int.recv() => tracing::info!("SIGINT received, stopping"),
        }
        token.cancel();
    }
}
