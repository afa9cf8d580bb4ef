//! Rendering of the provider tree novakvm would report, for the `host` CLI
//! (`novakvm host placement`, wired up once host inventory fills
//! [`HostResources`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::tree::{self, Capabilities, HostResources, ResourceSettings};
use super::Result;

/// The root provider as JSON: uuid, name, inventories (as they would be
/// `PUT`) and traits (for a provider with no operator traits yet).
pub fn provider_tree_json(
    host: &HostResources,
    settings: &ResourceSettings,
    caps: &Capabilities,
    service_disabled: bool,
) -> Result<Value> {
    tree::validate(host)?;
    let inventories = tree::inventories(host, settings, &BTreeMap::new())?;
    let traits = tree::traits(&BTreeSet::new(), host, caps, service_disabled);
    Ok(json!({
        "uuid": host.node_uuid.to_string(),
        "name": host.hypervisor_hostname,
        "inventories": inventories,
        "traits": traits,
    }))
}

/// The same as human-readable text.
pub fn provider_tree_text(
    host: &HostResources,
    settings: &ResourceSettings,
    caps: &Capabilities,
    service_disabled: bool,
) -> Result<String> {
    tree::validate(host)?;
    let inventories = tree::inventories(host, settings, &BTreeMap::new())?;
    let traits = tree::traits(&BTreeSet::new(), host, caps, service_disabled);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "resource provider {} ({})",
        host.hypervisor_hostname, host.node_uuid
    );
    let _ = writeln!(out, "  inventories:");
    let _ = writeln!(
        out,
        "    {:<10} {:>10} {:>9} {:>6} {:>9} {:>9}",
        "class", "total", "reserved", "ratio", "min_unit", "max_unit"
    );
    for (rc, inv) in &inventories {
        let _ = writeln!(
            out,
            "    {:<10} {:>10} {:>9} {:>6} {:>9} {:>9}",
            rc, inv.total, inv.reserved, inv.allocation_ratio, inv.min_unit, inv.max_unit
        );
    }
    let _ = writeln!(out, "  traits:");
    for t in &traits {
        let _ = writeln!(out, "    {t}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn host() -> HostResources {
        HostResources {
            node_uuid: Uuid::from_u128(7),
            hypervisor_hostname: "node-7".into(),
            shared_cpus: vec![0, 1],
            dedicated_cpus: vec![2, 3],
            memory_mb: 4096,
            disk_gb: 20,
            cpu_flags: vec!["avx".into()],
            smt: false,
            arch: Some("x86_64".into()),
        }
    }

    #[test]
    fn json_and_text() {
        let s = ResourceSettings::default();
        let v = provider_tree_json(&host(), &s, &Capabilities::novakvm(), false).unwrap();
        assert_eq!(v["name"], "node-7");
        assert_eq!(v["inventories"]["PCPU"]["total"], 2);
        assert_eq!(v["inventories"]["MEMORY_MB"]["reserved"], 512);
        let traits: Vec<&str> = v["traits"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert!(traits.contains(&"HW_CPU_X86_AVX"));
        assert!(traits.contains(&"OWNER_NOVA"));
        let t = provider_tree_text(&host(), &s, &Capabilities::novakvm(), true).unwrap();
        assert!(t.contains("COMPUTE_STATUS_DISABLED"), "{t}");
        assert!(t.contains("VCPU"), "{t}");
    }

    #[test]
    fn garbage_host_is_an_error() {
        let mut h = host();
        h.hypervisor_hostname.clear();
        let s = ResourceSettings::default();
        assert!(provider_tree_json(&h, &s, &Capabilities::default(), false).is_err());
        let mut h = host();
        h.shared_cpus = vec![2];
        assert!(provider_tree_text(&h, &s, &Capabilities::default(), false).is_err());
    }
}
