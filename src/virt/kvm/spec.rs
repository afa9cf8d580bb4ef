//! From a Nova instance (flavor, image, block devices) to a VM spec, the
//! way nova's libvirt driver builds its domain XML for a direct kernel boot.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::layout::InstanceDir;
use crate::virt::SpawnRequest;

/// libvirt's console log bound (nova's `MAX_CONSOLE_BYTES`, 100 KiB).
pub const CONSOLE_LOG_BYTES: u64 = 100 * 1024;

/// nova's libvirt `CONSOLE` kernel arguments.
pub const CONSOLE_ARGS: &str = "console=tty0 console=ttyS0 console=hvc0";

/// Extra-spec namespaces the scheduler or Placement consume: they shape
/// where an instance goes, not the guest, so the driver has nothing to do.
const SCHEDULER_NAMESPACES: &[&str] = &[
    "resources",
    "trait",
    "aggregate_instance_extra_specs",
    "capabilities",
    "group_policy",
];

/// Image properties the guest gets as they are (virtio disks, virtio NICs)
/// or that only describe the image.
const HONOURED_IMAGE_PROPS: &[(&str, &[&str])] = &[
    ("hw_disk_bus", &["virtio"]),
    ("hw_vif_model", &["virtio"]),
    ("hw_architecture", &["x86_64"]),
    ("hw_machine_type", &[]),
];

/// The flavor extra specs and image properties this driver cannot honour
/// yet, named, so the build fails instead of silently ignoring them.
pub fn unsupported(
    extra_specs: &BTreeMap<String, String>,
    image_props: &BTreeMap<String, Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in extra_specs {
        let ns = k.split(':').next().unwrap_or_default();
        if k.contains(':') && SCHEDULER_NAMESPACES.contains(&ns) {
            continue;
        }
        if !k.contains(':') {
            // Un-namespaced keys are for scheduler filters
            // (ComputeCapabilitiesFilter without a scope).
            continue;
        }
        out.push(format!("extra spec {k}={v}"));
    }
    for (k, v) in image_props {
        if !k.starts_with("hw_") && !k.starts_with("img_hide_hypervisor") {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match HONOURED_IMAGE_PROPS.iter().find(|(name, _)| name == k) {
            Some((_, allowed)) if allowed.is_empty() || allowed.contains(&text.as_str()) => {}
            _ => out.push(format!("image property {k}={text}")),
        }
    }
    out
}

/// The kernel command line: the image's `os_command_line`, else libvirt's
/// default `root=<root device> console=...`.
pub fn cmdline(os_command_line: Option<&str>, root_device_name: &str) -> String {
    match os_command_line {
        Some(c) if !c.trim().is_empty() => c.to_string(),
        _ => format!("root={root_device_name} {CONSOLE_ARGS}"),
    }
}

/// The VM spec (JSON, `api-schemas/vm-spec.schema.json`) of an instance.
pub fn vm_spec(
    req: &SpawnRequest,
    dir: &InstanceDir,
    cmdline: &str,
    has_ramdisk: bool,
    disks: &[(&Path, String)],
) -> Value {
    let disks: Vec<Value> = disks
        .iter()
        .map(|(p, serial)| json!({"path": p, "serial": serial}))
        .collect();
    json!({
        "name": format!("instance-{}", req.uuid),
        "cpus": {"count": req.vcpus},
        "memory": {"size_mib": req.memory_mb},
        "boot": {
            "kernel": dir.kernel(),
            "initrd": if has_ramdisk { json!(dir.ramdisk()) } else { Value::Null },
            "cmdline": cmdline,
        },
        "serial": {"log_path": dir.console_log(), "log_max_bytes": CONSOLE_LOG_BYTES},
        "control_socket": dir.control_socket(),
        "on_reset": "restart",
        "disks": disks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hw_specs_are_named() {
        let mut es = BTreeMap::new();
        es.insert("hw:cpu_policy".to_string(), "dedicated".to_string());
        es.insert("resources:VGPU".to_string(), "1".to_string());
        es.insert("trait:HW_CPU_X86_AVX".to_string(), "required".to_string());
        es.insert("plain".to_string(), "x".to_string());
        let mut props = BTreeMap::new();
        props.insert("hw_disk_bus".to_string(), json!("virtio"));
        props.insert("hw_vif_model".to_string(), json!("e1000"));
        props.insert("os_distro".to_string(), json!("debian"));
        let u = unsupported(&es, &props);
        assert_eq!(
            u,
            vec![
                "extra spec hw:cpu_policy=dedicated".to_string(),
                "image property hw_vif_model=e1000".to_string()
            ]
        );
    }

    #[test]
    fn default_cmdline_is_libvirts() {
        assert_eq!(
            cmdline(None, "/dev/vda"),
            "root=/dev/vda console=tty0 console=ttyS0 console=hvc0"
        );
        assert_eq!(cmdline(Some("quiet"), "/dev/vda"), "quiet");
        assert_eq!(
            cmdline(Some("  "), "/dev/vdb"),
            format!("root=/dev/vdb {CONSOLE_ARGS}")
        );
    }
}
