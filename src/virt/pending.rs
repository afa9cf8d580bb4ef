//! The KVM driver's place-holder until the VMM driver lands: the host is
//! reported and managed normally, but every guest operation answers that
//! KVM builds are not supported yet, so the compute manager puts a build
//! in ERROR with that fault instead of leaving it in BUILD.

use std::time::Duration;

use uuid::Uuid;

use super::driver::*;

/// What [`PendingKvmDriver::spawn`] says.
pub const KVM_NOT_SUPPORTED: &str = "builds on KVM are not supported by novakvm yet";

/// A driver with no guests that refuses to create any.
#[derive(Debug, Default)]
pub struct PendingKvmDriver;

impl ComputeDriver for PendingKvmDriver {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            supports_image_type_raw: true,
            supports_pcpus: true,
            ..Capabilities::default()
        }
    }

    fn init_host(&self, _host: &str) -> Result<(), DriverError> {
        Ok(())
    }

    fn get_info(&self, uuid: Uuid) -> Result<InstanceInfo, DriverError> {
        Err(DriverError::InstanceNotFound(uuid))
    }

    fn list_instance_uuids(&self) -> Result<Vec<Uuid>, DriverError> {
        Ok(Vec::new())
    }

    fn spawn(&self, req: &SpawnRequest) -> Result<(), DriverError> {
        Err(DriverError::Spawn {
            uuid: req.uuid,
            reason: KVM_NOT_SUPPORTED.to_string(),
        })
    }

    fn destroy(&self, _uuid: Uuid, _destroy_disks: bool) -> Result<(), DriverError> {
        Ok(())
    }

    fn reboot(&self, uuid: Uuid, _kind: RebootType) -> Result<(), DriverError> {
        Err(DriverError::InstanceNotFound(uuid))
    }

    fn power_off(&self, uuid: Uuid, _timeout: Duration) -> Result<(), DriverError> {
        Err(DriverError::InstanceNotFound(uuid))
    }

    fn power_on(&self, uuid: Uuid) -> Result<(), DriverError> {
        Err(DriverError::InstanceNotFound(uuid))
    }

    fn pause(&self, uuid: Uuid) -> Result<(), DriverError> {
        Err(DriverError::InstanceNotFound(uuid))
    }

    fn unpause(&self, uuid: Uuid) -> Result<(), DriverError> {
        Err(DriverError::InstanceNotFound(uuid))
    }

    fn get_console_output(&self, uuid: Uuid) -> Result<Vec<u8>, DriverError> {
        Err(DriverError::InstanceNotFound(uuid))
    }

    fn get_available_resource(&self, _nodename: &str) -> Result<AvailableResource, DriverError> {
        Err(DriverError::NotSupported("get_available_resource", "kvm"))
    }

    fn get_available_nodes(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_says_not_supported() {
        let d = PendingKvmDriver;
        let req = SpawnRequest {
            uuid: Uuid::new_v4(),
            name: "x".into(),
            vcpus: 1,
            memory_mb: 64,
            root_gb: 0,
            ephemeral_gb: 0,
            swap_mb: 0,
            image: serde_json::Value::Null,
            block_devices: BlockDeviceInfo::default(),
            network_info: Vec::new(),
            extra_specs: Default::default(),
            context: crate::rpc::RequestContext::default(),
            power_on: true,
        };
        let e = d.spawn(&req).unwrap_err();
        assert!(e.to_string().contains(KVM_NOT_SUPPORTED));
        assert!(d.list_instance_uuids().unwrap().is_empty());
    }
}
