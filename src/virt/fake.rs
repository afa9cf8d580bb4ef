//! An in-memory driver, like nova/virt/fake.py: it keeps the semantics every
//! driver must keep, and can be told to fail the next call of an operation so
//! the manager's error paths can be tested.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

use super::driver::*;

/// Operations whose next call can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FakeOp {
    Spawn,
    Destroy,
    Reboot,
    PowerOff,
    PowerOn,
    Pause,
    Unpause,
    GetInfo,
    ConsoleOutput,
}

#[derive(Debug, Clone)]
struct FakeInstance {
    state: PowerState,
    request: SpawnRequest,
}

#[derive(Debug, Default)]
struct Inner {
    instances: HashMap<Uuid, FakeInstance>,
    failures: BTreeMap<FakeOp, String>,
    host: Option<String>,
}

/// The fake driver. Resources are fixed numbers, as nova's fake driver.
#[derive(Default)]
pub struct FakeDriver {
    inner: Mutex<Inner>,
    listener: Mutex<Option<EventSink>>,
    /// vCPUs, memory (MiB) and disk (GiB) the fake host reports.
    pub resources: (u32, u64, u64),
}

impl FakeDriver {
    /// A fake host with 8 vCPUs, 16 GiB and 200 GiB of disk.
    pub fn new() -> Self {
        Self {
            resources: (8, 16384, 200),
            ..Self::default()
        }
    }

    /// Make the next call of `op` fail with `message`.
    pub fn fail_next(&self, op: FakeOp, message: &str) {
        self.lock().failures.insert(op, message.to_string());
    }

    /// The spawn request an instance was created from.
    pub fn spawned(&self, uuid: Uuid) -> Option<SpawnRequest> {
        self.lock().instances.get(&uuid).map(|i| i.request.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is a single insert/remove), so a poisoned lock is safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn injected(inner: &mut Inner, op: FakeOp) -> Result<(), DriverError> {
        match inner.failures.remove(&op) {
            Some(msg) => Err(DriverError::Host(format!("injected failure: {msg}"))),
            None => Ok(()),
        }
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

    /// Move an instance to `to`, if it is in one of `from`.
    fn change(
        &self,
        uuid: Uuid,
        op: FakeOp,
        name: &'static str,
        from: &[PowerState],
        to: PowerState,
    ) -> Result<(), DriverError> {
        let mut inner = self.lock();
        Self::injected(&mut inner, op)?;
        let inst = inner
            .instances
            .get_mut(&uuid)
            .ok_or(DriverError::InstanceNotFound(uuid))?;
        if !from.contains(&inst.state) {
            return Err(DriverError::InvalidState {
                uuid,
                state: inst.state,
                op: name,
            });
        }
        inst.state = to;
        Ok(())
    }
}

impl ComputeDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            supports_image_type_raw: true,
            supports_pcpus: true,
            ..Capabilities::default()
        }
    }

    fn init_host(&self, host: &str) -> Result<(), DriverError> {
        self.lock().host = Some(host.to_string());
        Ok(())
    }

    fn get_info(&self, uuid: Uuid) -> Result<InstanceInfo, DriverError> {
        let mut inner = self.lock();
        Self::injected(&mut inner, FakeOp::GetInfo)?;
        inner
            .instances
            .get(&uuid)
            .map(|i| InstanceInfo {
                state: i.state,
                internal_id: Some(format!("fake-{uuid}")),
            })
            .ok_or(DriverError::InstanceNotFound(uuid))
    }

    fn list_instance_uuids(&self) -> Result<Vec<Uuid>, DriverError> {
        let mut v: Vec<Uuid> = self.lock().instances.keys().copied().collect();
        v.sort();
        Ok(v)
    }

    fn spawn(&self, req: &SpawnRequest) -> Result<(), DriverError> {
        if req.vcpus == 0 || req.memory_mb == 0 {
            return Err(DriverError::Invalid(format!(
                "instance {} asks for {} vCPUs and {} MiB",
                req.uuid, req.vcpus, req.memory_mb
            )));
        }
        {
            let mut inner = self.lock();
            if let Err(e) = Self::injected(&mut inner, FakeOp::Spawn) {
                return Err(DriverError::Spawn {
                    uuid: req.uuid,
                    reason: e.to_string(),
                });
            }
            if inner.instances.contains_key(&req.uuid) {
                return Err(DriverError::InstanceExists(req.uuid));
            }
            let state = if req.power_on {
                PowerState::Running
            } else {
                PowerState::Shutdown
            };
            inner.instances.insert(
                req.uuid,
                FakeInstance {
                    state,
                    request: req.clone(),
                },
            );
        }
        if req.power_on {
            self.emit(LifecycleEvent::Started(req.uuid));
        }
        Ok(())
    }

    fn destroy(&self, uuid: Uuid, _destroy_disks: bool) -> Result<(), DriverError> {
        let mut inner = self.lock();
        Self::injected(&mut inner, FakeOp::Destroy)?;
        let existed = inner.instances.remove(&uuid).is_some();
        drop(inner);
        if existed {
            self.emit(LifecycleEvent::Stopped(uuid));
        }
        Ok(())
    }

    fn reboot(&self, uuid: Uuid, kind: RebootType) -> Result<(), DriverError> {
        let from: &[PowerState] = match kind {
            RebootType::Soft => &[PowerState::Running],
            RebootType::Hard => PowerState::ALL,
        };
        self.change(uuid, FakeOp::Reboot, "reboot", from, PowerState::Running)
    }

    fn power_off(&self, uuid: Uuid, _timeout: Duration) -> Result<(), DriverError> {
        self.change(
            uuid,
            FakeOp::PowerOff,
            "power off",
            PowerState::ALL,
            PowerState::Shutdown,
        )?;
        self.emit(LifecycleEvent::Stopped(uuid));
        Ok(())
    }

    fn power_on(&self, uuid: Uuid) -> Result<(), DriverError> {
        self.change(
            uuid,
            FakeOp::PowerOn,
            "power on",
            PowerState::ALL,
            PowerState::Running,
        )?;
        self.emit(LifecycleEvent::Started(uuid));
        Ok(())
    }

    fn pause(&self, uuid: Uuid) -> Result<(), DriverError> {
        self.change(
            uuid,
            FakeOp::Pause,
            "pause",
            &[PowerState::Running],
            PowerState::Paused,
        )?;
        self.emit(LifecycleEvent::Paused(uuid));
        Ok(())
    }

    fn unpause(&self, uuid: Uuid) -> Result<(), DriverError> {
        self.change(
            uuid,
            FakeOp::Unpause,
            "unpause",
            &[PowerState::Paused],
            PowerState::Running,
        )?;
        self.emit(LifecycleEvent::Resumed(uuid));
        Ok(())
    }

    fn get_console_output(&self, uuid: Uuid) -> Result<Vec<u8>, DriverError> {
        let mut inner = self.lock();
        Self::injected(&mut inner, FakeOp::ConsoleOutput)?;
        if !inner.instances.contains_key(&uuid) {
            return Err(DriverError::InstanceNotFound(uuid));
        }
        Ok(b"FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE".to_vec())
    }

    fn get_available_resource(&self, nodename: &str) -> Result<AvailableResource, DriverError> {
        let inner = self.lock();
        let (vcpus, memory_mb, local_gb) = self.resources;
        let used = inner.instances.values().fold((0u32, 0u64, 0u64), |acc, i| {
            (
                acc.0 + i.request.vcpus,
                acc.1 + i.request.memory_mb,
                acc.2 + i.request.root_gb,
            )
        });
        Ok(AvailableResource {
            vcpus,
            memory_mb,
            local_gb,
            vcpus_used: used.0,
            memory_mb_used: used.1,
            local_gb_used: used.2,
            hypervisor_type: "fake".to_string(),
            hypervisor_version: 1000,
            hypervisor_hostname: nodename.to_string(),
            cpu_info: "{}".to_string(),
        })
    }

    fn get_available_nodes(&self) -> Vec<String> {
        self.lock().host.iter().cloned().collect()
    }

    fn register_event_listener(&self, sink: EventSink) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn req(uuid: Uuid) -> SpawnRequest {
        SpawnRequest {
            uuid,
            name: "vm".into(),
            vcpus: 2,
            memory_mb: 512,
            root_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
            image: serde_json::Value::Null,
            block_devices: BlockDeviceInfo::default(),
            network_info: Vec::new(),
            extra_specs: BTreeMap::new(),
            context: crate::rpc::RequestContext::default(),
            power_on: true,
        }
    }

    #[test]
    fn lifecycle_follows_nova_semantics() {
        let d = FakeDriver::new();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        d.register_event_listener(Box::new(move |e| sink.lock().unwrap().push(e)));
        let id = Uuid::new_v4();
        d.spawn(&req(id)).unwrap();
        assert_eq!(d.get_info(id).unwrap().state, PowerState::Running);
        assert_eq!(d.spawn(&req(id)), Err(DriverError::InstanceExists(id)));
        d.pause(id).unwrap();
        assert!(matches!(d.pause(id), Err(DriverError::InvalidState { .. })));
        d.unpause(id).unwrap();
        d.power_off(id, Duration::ZERO).unwrap();
        assert!(matches!(
            d.reboot(id, RebootType::Soft),
            Err(DriverError::InvalidState { .. })
        ));
        d.reboot(id, RebootType::Hard).unwrap();
        assert_eq!(d.get_available_resource("n").unwrap().vcpus_used, 2);
        d.destroy(id, true).unwrap();
        // Destroying what is gone is fine, as in nova.
        d.destroy(id, true).unwrap();
        assert_eq!(d.get_info(id), Err(DriverError::InstanceNotFound(id)));
        assert_eq!(events.lock().unwrap().len(), 5);
    }

    #[test]
    fn injected_failures_fire_once() {
        let d = FakeDriver::new();
        let id = Uuid::new_v4();
        d.fail_next(FakeOp::Spawn, "no room");
        let err = d.spawn(&req(id)).unwrap_err();
        assert!(err.to_string().contains("no room"));
        assert!(!d.instance_exists(id));
        d.spawn(&req(id)).unwrap();
        assert!(d.instance_exists(id));
    }

    #[test]
    fn unsupported_operations_say_so() {
        let d = FakeDriver::new();
        let err = d.set_host_enabled(false).unwrap_err();
        assert_eq!(err, DriverError::NotSupported("set_host_enabled", "fake"));
        assert!(err.to_string().contains("not supported"));
        assert!(d.live_migration(Uuid::nil(), "other").is_err());
    }

    #[test]
    fn bad_requests_are_refused() {
        let d = FakeDriver::new();
        let mut r = req(Uuid::new_v4());
        r.vcpus = 0;
        assert!(matches!(d.spawn(&r), Err(DriverError::Invalid(_))));
    }
}
