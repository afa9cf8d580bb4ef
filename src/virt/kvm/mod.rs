//! The KVM driver: each instance is one `novakvm vmm --spec` process,
//! started in a session of its own so that it outlives the agent, found
//! again at agent start by pid and start time, and driven only through its
//! spec and control socket ([`control`]). Images come from Glance through
//! [`crate::virt::images`]; the instance's files live in
//! `instances_path/<uuid>/` ([`layout`]).

pub mod control;
pub mod layout;
pub mod spec;

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use self::layout::InstanceDir;
use super::driver::*;
use super::images::{self, GlanceImage, ImageAuth, ImageService};
use crate::config::Config;
use crate::host::process;

/// How long a new VMM has to answer on its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the watcher looks at the VMM processes.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Control requests that should answer at once.
const QUICK: Duration = Duration::from_secs(5);
/// libvirt's `[libvirt] wait_soft_reboot_seconds`.
pub const WAIT_SOFT_REBOOT: Duration = Duration::from_secs(120);

/// A running VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: u32,
    started: u64,
}

#[derive(Debug, Default)]
struct Vm {
    proc: Option<Proc>,
    /// The driver itself is stopping the VMM: its end is no lifecycle event.
    stopping: bool,
    started_at: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    vms: Mutex<HashMap<Uuid, Vm>>,
    listener: Mutex<Option<EventSink>>,
}

impl Shared {
    fn vms(&self) -> MutexGuard<'_, HashMap<Uuid, Vm>> {
        // Every update is a single field assignment or insert/remove.
        self.vms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, ev: LifecycleEvent) {
        if let Some(sink) = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            sink(ev);
        }
    }
}

/// The KVM driver.
pub struct KvmDriver {
    instances_path: PathBuf,
    vmm_binary: PathBuf,
    images: Option<ImageService>,
    runtime: tokio::runtime::Handle,
    shared: Arc<Shared>,
    watcher_started: Mutex<bool>,
}

impl std::fmt::Debug for KvmDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvmDriver")
            .field("instances_path", &self.instances_path)
            .finish()
    }
}

fn host_err(what: &str, e: impl std::fmt::Display) -> DriverError {
    DriverError::Host(format!("{what}: {e}"))
}

impl KvmDriver {
    /// A driver for `cfg`, running blocking work of image downloads on
    /// `runtime`. The VMM is this very binary (`novakvm vmm`).
    pub fn new(cfg: &Config, runtime: tokio::runtime::Handle) -> Self {
        let images = match ImageService::new(cfg) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "the image service cannot be used; builds will fail");
                None
            }
        };
        let vmm_binary = std::env::var_os("NOVAKVM_VMM_BINARY")
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("novakvm"));
        Self {
            instances_path: cfg.default.instances_path(),
            vmm_binary,
            images,
            runtime,
            shared: Arc::new(Shared::default()),
            watcher_started: Mutex::new(false),
        }
    }

    fn dir(&self, uuid: Uuid) -> InstanceDir {
        InstanceDir::new(&self.instances_path, uuid)
    }

    fn proc_of(&self, uuid: Uuid) -> Option<Proc> {
        let p = self.shared.vms().get(&uuid).and_then(|v| v.proc)?;
        process::is_same_process(p.pid, p.started).then_some(p)
    }

    /// Starts the watcher thread once: a VMM that ends without the driver
    /// asking is reported as a lifecycle event within [`WATCH_INTERVAL`].
    fn start_watcher(&self) {
        let mut started = self
            .watcher_started
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *started {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        let base = self.instances_path.clone();
        let r = std::thread::Builder::new()
            .name("kvm-watch".into())
            .spawn(move || loop {
                std::thread::sleep(WATCH_INTERVAL);
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let mut ended = Vec::new();
                for (uuid, vm) in shared.vms().iter_mut() {
                    let Some(p) = vm.proc else { continue };
                    if process::is_same_process(p.pid, p.started) {
                        continue;
                    }
                    vm.proc = None;
                    vm.started_at = None;
                    if !vm.stopping {
                        ended.push(*uuid);
                    }
                }
                for uuid in ended {
                    let status = read_status(&InstanceDir::new(&base, uuid));
                    tracing::warn!(%uuid, ?status, "the VMM ended on its own");
                    let ev = match status.as_deref() {
                        Some("crash") | Some("vmm_error") => LifecycleEvent::Crashed(uuid),
                        _ => LifecycleEvent::Stopped(uuid),
                    };
                    shared.emit(ev);
                }
            });
        match r {
            Ok(_) => *started = true,
            Err(e) => tracing::error!(error = %e, "cannot start the VMM watcher"),
        }
    }

    /// Starts the instance's VMM from its spec and waits until it answers.
    fn launch(&self, uuid: Uuid) -> Result<(), DriverError> {
        let dir = self.dir(uuid);
        if let Some(p) = self.proc_of(uuid) {
            return Err(DriverError::Host(format!(
                "instance {uuid} already has a running VMM (pid {})",
                p.pid
            )));
        }
        for f in [dir.control_socket(), dir.status_file(), dir.pid_file()] {
            let _ = std::fs::remove_file(f);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.vmm_log())
            .map_err(|e| host_err("vmm.log", e))?;
        let log2 = log.try_clone().map_err(|e| host_err("vmm.log", e))?;
        let mut cmd = Command::new(&self.vmm_binary);
        cmd.arg("vmm")
            .arg("--spec")
            .arg(dir.spec())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let mut child = process::spawn_detached(&mut cmd, "novakvm vmm")
            .map_err(|e| spawn_err(uuid, e.to_string()))?;
        let pid = child.id();
        let started = process::start_time(pid).unwrap_or(0);
        // Reap the child when it ends so it leaves no zombie; after an agent
        // restart the VMM is no child of ours and init reaps it.
        let _ = std::thread::Builder::new()
            .name("vmm-reap".into())
            .spawn(move || {
                let _ = child.wait();
            });
        let _ = std::fs::write(dir.pid_file(), format!("{pid} {started}\n"));
        {
            let mut vms = self.shared.vms();
            let vm = vms.entry(uuid).or_default();
            vm.proc = Some(Proc { pid, started });
            vm.stopping = false;
            vm.started_at = Some(Instant::now());
        }
        let t0 = Instant::now();
        loop {
            if control::simple(&dir.control_socket(), "status", QUICK).is_ok() {
                tracing::info!(%uuid, pid, elapsed = ?t0.elapsed(), "VMM started");
                return Ok(());
            }
            if !process::is_same_process(pid, started) {
                if let Some(vm) = self.shared.vms().get_mut(&uuid) {
                    vm.proc = None;
                }
                return Err(spawn_err(
                    uuid,
                    format!("the VMM exited at start: {}", tail_of(&dir.vmm_log(), 600)),
                ));
            }
            if t0.elapsed() > START_TIMEOUT {
                let _ = process::kill(pid);
                return Err(spawn_err(
                    uuid,
                    format!("the VMM did not answer within {START_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the VMM: a clean shutdown within `grace` (0: at once), then
    /// forced; waits until the process is gone.
    fn stop_vmm(&self, uuid: Uuid, grace: Duration) -> Result<(), DriverError> {
        let Some(p) = self.proc_of(uuid) else {
            return Ok(());
        };
        if let Some(vm) = self.shared.vms().get_mut(&uuid) {
            vm.stopping = true;
        }
        let sock = self.dir(uuid).control_socket();
        let r = if grace.is_zero() {
            control::simple(&sock, "power_off", QUICK)
        } else {
            control::shutdown(&sock, grace)
        };
        if let Err(e) = r {
            tracing::warn!(%uuid, error = %e, "the VMM did not take the stop request; killing it");
            let _ = process::kill(p.pid);
        }
        let t0 = Instant::now();
        while process::is_same_process(p.pid, p.started) {
            if t0.elapsed() > Duration::from_secs(10) {
                process::kill(p.pid).map_err(|e| host_err("kill", e))?;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                return Err(DriverError::Host(format!(
                    "the VMM of {uuid} (pid {}) does not end",
                    p.pid
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(vm) = self.shared.vms().get_mut(&uuid) {
            vm.proc = None;
            vm.started_at = None;
            vm.stopping = false;
        }
        Ok(())
    }

    fn require(&self, uuid: Uuid) -> Result<InstanceDir, DriverError> {
        let d = self.dir(uuid);
        if d.exists() {
            Ok(d)
        } else {
            Err(DriverError::InstanceNotFound(uuid))
        }
    }

    fn require_running(&self, uuid: Uuid, op: &'static str) -> Result<InstanceDir, DriverError> {
        let d = self.require(uuid)?;
        if self.proc_of(uuid).is_none() {
            return Err(DriverError::InvalidState {
                uuid,
                state: PowerState::Shutdown,
                op,
            });
        }
        Ok(d)
    }

    /// Builds the instance's files: kernel, ramdisk, disks, spec.
    fn create_files(&self, req: &SpawnRequest, dir: &InstanceDir) -> Result<(), DriverError> {
        let uuid = req.uuid;
        if req.image.is_null() {
            return Err(spawn_err(
                uuid,
                "instances without an image (boot from volume) are not supported".into(),
            ));
        }
        let image = GlanceImage::from_nova_image_dict(&req.image)
            .map_err(|e| spawn_err(uuid, e.to_string()))?;
        let bad = spec::unsupported(&req.extra_specs, &image.properties);
        if !bad.is_empty() {
            return Err(spawn_err(
                uuid,
                format!("the KVM driver cannot honour {}", bad.join(", ")),
            ));
        }
        let Some(kernel_id) = image.property_str("kernel_id").map(str::to_string) else {
            return Err(spawn_err(
                uuid,
                format!(
                    "image {} has no kernel_id: direct kernel boot is required \
                     (firmware boot of whole-disk images is not supported yet)",
                    image.id
                ),
            ));
        };
        let ramdisk_id = image.property_str("ramdisk_id").map(str::to_string);
        let svc = self
            .images
            .as_ref()
            .ok_or_else(|| spawn_err(uuid, "the image service is not configured".into()))?;
        let auth = ImageAuth::from_context(&req.context);
        std::fs::create_dir_all(dir.path()).map_err(|e| host_err("instance dir", e))?;
        let img_err = |e: images::ImageError| spawn_err(uuid, e.to_string());
        self.runtime.block_on(async {
            svc.fetch_file(&auth, &kernel_id, &dir.kernel())
                .await
                .map_err(img_err)?;
            if let Some(r) = &ramdisk_id {
                svc.fetch_file(&auth, r, &dir.ramdisk())
                    .await
                    .map_err(img_err)?;
            }
            let base = svc.fetch_to_raw(&auth, &image).await.map_err(img_err)?;
            images::create_root_disk(&base, &dir.disk(), req.root_gb).map_err(img_err)
        })?;
        let mut disks: Vec<(PathBuf, String)> = vec![(dir.disk(), "root".to_string())];
        for (n, e) in req.block_devices.ephemerals.iter().enumerate() {
            let p = dir.ephemeral(n);
            images::create_ephemeral(&p, e.size_gb).map_err(img_err)?;
            disks.push((p, format!("ephemeral{n}")));
        }
        if let Some(s) = &req.block_devices.swap {
            images::create_swap(&dir.swap(), s.size_mb).map_err(img_err)?;
            disks.push((dir.swap(), "swap".to_string()));
        }
        let root = if req.block_devices.root_device_name.is_empty() {
            "/dev/vda"
        } else {
            req.block_devices.root_device_name.as_str()
        };
        let cmdline = spec::cmdline(image.property_str("os_command_line"), root);
        let disk_refs: Vec<(&Path, String)> = disks
            .iter()
            .map(|(p, s)| (p.as_path(), s.clone()))
            .collect();
        let spec = spec::vm_spec(req, dir, &cmdline, ramdisk_id.is_some(), &disk_refs);
        // The VMM validates the spec again; checking here turns a bad one
        // into a build fault instead of a VMM that will not start.
        crate::vmm::spec::VmSpec::from_json(&spec.to_string())
            .map_err(|e| spawn_err(uuid, format!("VM spec: {e}")))?;
        let tmp = dir.path().join("spec.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&spec).unwrap_or_default())
            .and_then(|()| std::fs::rename(&tmp, dir.spec()))
            .map_err(|e| host_err("spec.json", e))?;
        Ok(())
    }
}

fn spawn_err(uuid: Uuid, reason: String) -> DriverError {
    DriverError::Spawn { uuid, reason }
}

/// The `reason` of the VMM's exit status file, if it wrote one.
fn read_status(dir: &InstanceDir) -> Option<String> {
    let text = std::fs::read_to_string(dir.status_file()).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("reason").and_then(Value::as_str).map(str::to_string)
}

/// The last `n` bytes of a file, as text, for messages.
fn tail_of(path: &Path, n: usize) -> String {
    let data = std::fs::read(path).unwrap_or_default();
    let start = data.len().saturating_sub(n);
    String::from_utf8_lossy(&data[start..]).trim().to_string()
}

impl ComputeDriver for KvmDriver {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::novakvm()
    }

    fn init_host(&self, _host: &str) -> Result<(), DriverError> {
        std::fs::create_dir_all(&self.instances_path)
            .map_err(|e| host_err(&self.instances_path.display().to_string(), e))?;
        for uuid in layout::list(&self.instances_path) {
            let dir = self.dir(uuid);
            let found = std::fs::read_to_string(dir.pid_file())
                .ok()
                .and_then(|t| {
                    let mut it = t.split_whitespace();
                    Some(Proc {
                        pid: it.next()?.parse().ok()?,
                        started: it.next()?.parse().ok()?,
                    })
                })
                .filter(|p| process::is_same_process(p.pid, p.started));
            let alive =
                found.is_some() && control::simple(&dir.control_socket(), "status", QUICK).is_ok();
            tracing::info!(%uuid, running = alive, "instance found on this host");
            self.shared.vms().insert(
                uuid,
                Vm {
                    proc: found,
                    stopping: false,
                    started_at: found.map(|_| Instant::now()),
                },
            );
        }
        self.start_watcher();
        Ok(())
    }

    fn get_info(&self, uuid: Uuid) -> Result<InstanceInfo, DriverError> {
        let dir = self.require(uuid)?;
        let state = match self.proc_of(uuid) {
            None => PowerState::Shutdown,
            Some(_) => match control::simple(&dir.control_socket(), "status", QUICK) {
                Ok(v) => match v.get("state").and_then(Value::as_str) {
                    Some("paused") => PowerState::Paused,
                    Some("stopped") => PowerState::Shutdown,
                    _ => PowerState::Running,
                },
                Err(e) => {
                    tracing::warn!(%uuid, error = %e, "VMM status");
                    PowerState::NoState
                }
            },
        };
        Ok(InstanceInfo {
            state,
            internal_id: Some(format!("instance-{uuid}")),
        })
    }

    fn list_instance_uuids(&self) -> Result<Vec<Uuid>, DriverError> {
        Ok(layout::list(&self.instances_path))
    }

    fn spawn(&self, req: &SpawnRequest) -> Result<(), DriverError> {
        let dir = self.dir(req.uuid);
        if dir.exists() || self.proc_of(req.uuid).is_some() {
            return Err(DriverError::InstanceExists(req.uuid));
        }
        let existed = dir.path().exists();
        let r = self.create_files(req, &dir).and_then(|()| {
            if req.power_on {
                self.launch(req.uuid)
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => {
                self.shared.vms().entry(req.uuid).or_default();
                if req.power_on {
                    self.shared.emit(LifecycleEvent::Started(req.uuid));
                }
                Ok(())
            }
            Err(e) => {
                // Nothing of a failed build stays behind.
                let _ = self.stop_vmm(req.uuid, Duration::ZERO);
                self.shared.vms().remove(&req.uuid);
                if !existed {
                    let _ = std::fs::remove_dir_all(dir.path());
                }
                Err(e)
            }
        }
    }

    fn destroy(&self, uuid: Uuid, destroy_disks: bool) -> Result<(), DriverError> {
        self.stop_vmm(uuid, Duration::ZERO)?;
        self.shared.vms().remove(&uuid);
        let dir = self.dir(uuid);
        if destroy_disks && dir.path().exists() {
            std::fs::remove_dir_all(dir.path()).map_err(|e| host_err("instance dir", e))?;
        }
        Ok(())
    }

    fn reboot(&self, uuid: Uuid, kind: RebootType) -> Result<(), DriverError> {
        self.require(uuid)?;
        match kind {
            RebootType::Soft => {
                self.require_running(uuid, "soft reboot")?;
                // libvirt's _soft_reboot: an ACPI shutdown, then start again;
                // a guest that does not stop in time is hard rebooted.
                self.stop_vmm(uuid, WAIT_SOFT_REBOOT)?;
            }
            RebootType::Hard => self.stop_vmm(uuid, Duration::ZERO)?,
        }
        self.launch(uuid)?;
        self.shared.emit(LifecycleEvent::Started(uuid));
        Ok(())
    }

    fn power_off(&self, uuid: Uuid, timeout: Duration) -> Result<(), DriverError> {
        self.require(uuid)?;
        self.stop_vmm(uuid, timeout)?;
        self.shared.emit(LifecycleEvent::Stopped(uuid));
        Ok(())
    }

    fn power_on(&self, uuid: Uuid) -> Result<(), DriverError> {
        self.require(uuid)?;
        if self.proc_of(uuid).is_some() {
            return Ok(());
        }
        self.launch(uuid)?;
        self.shared.emit(LifecycleEvent::Started(uuid));
        Ok(())
    }

    fn pause(&self, uuid: Uuid) -> Result<(), DriverError> {
        let dir = self.require_running(uuid, "pause")?;
        control::simple(&dir.control_socket(), "pause", QUICK).map_err(|e| host_err("pause", e))?;
        self.shared.emit(LifecycleEvent::Paused(uuid));
        Ok(())
    }

    fn unpause(&self, uuid: Uuid) -> Result<(), DriverError> {
        let dir = self.require_running(uuid, "unpause")?;
        control::simple(&dir.control_socket(), "resume", QUICK)
            .map_err(|e| host_err("unpause", e))?;
        self.shared.emit(LifecycleEvent::Resumed(uuid));
        Ok(())
    }

    fn get_console_output(&self, uuid: Uuid) -> Result<Vec<u8>, DriverError> {
        let dir = self.require(uuid)?;
        // libvirt returns the last MAX_CONSOLE_BYTES of console.log, also
        // for a stopped guest.
        let data = match std::fs::read(dir.console_log()) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(host_err("console.log", e)),
        };
        let n = usize::try_from(spec::CONSOLE_LOG_BYTES).unwrap_or(usize::MAX);
        let start = data.len().saturating_sub(n);
        Ok(data[start..].to_vec())
    }

    fn get_instance_diagnostics(&self, uuid: Uuid) -> Result<Diagnostics, DriverError> {
        let dir = self.require(uuid)?;
        let info = self.get_info(uuid)?;
        let spec: Value = std::fs::read_to_string(dir.spec())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let vcpus = spec["cpus"]["count"].as_u64().unwrap_or(0) as u32;
        let mem = spec["memory"]["size_mib"].as_u64().unwrap_or(0);
        let disks: Vec<DiskDiagnostics> = spec["disks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, _)| DiskDiagnostics {
                        name: format!("vd{}", char::from(b'a' + (i as u8 % 26))),
                        ..DiskDiagnostics::default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let proc = self.proc_of(uuid);
        let cpu_details = (0..vcpus)
            .map(|id| CpuDiagnostics {
                id,
                time: proc.map_or(0, |p| vcpu_time_ns(p.pid, id)),
                utilisation: None,
            })
            .collect();
        let uptime = self
            .shared
            .vms()
            .get(&uuid)
            .and_then(|v| v.started_at)
            .map_or(0, |t| t.elapsed().as_secs());
        Ok(Diagnostics {
            state: info.state,
            driver: "novakvm".into(),
            hypervisor: "kvm".into(),
            hypervisor_os: "linux".into(),
            uptime,
            config_drive: false,
            num_cpus: vcpus,
            num_nics: 0,
            num_disks: disks.len() as u32,
            cpu_details,
            nic_details: Vec::new(),
            disk_details: disks,
            memory_maximum_mb: mem,
            memory_used_mb: if proc.is_some() { mem } else { 0 },
        })
    }

    fn manage_image_cache(&self, in_use: &HashSet<String>) -> Result<(), DriverError> {
        if let Some(svc) = &self.images {
            let r = svc
                .cleanup(in_use)
                .map_err(|e| host_err("image cache", e))?;
            tracing::info!(report = ?r, "image cache pass");
        }
        Ok(())
    }

    fn get_available_resource(&self, _nodename: &str) -> Result<AvailableResource, DriverError> {
        Err(DriverError::NotSupported("get_available_resource", "kvm"))
    }

    fn get_available_nodes(&self) -> Vec<String> {
        Vec::new()
    }

    fn register_event_listener(&self, sink: EventSink) {
        *self
            .shared
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }
}

/// CPU time (ns) of the VMM's thread `vcpu<id>`, from its schedstat.
fn vcpu_time_ns(pid: u32, id: u32) -> u64 {
    let want = format!("vcpu{id}");
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    for t in rd.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == want {
            return std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}
