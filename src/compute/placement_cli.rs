//! `novakvm host placement [--check]`: the node's resource provider as
//! Placement has it (inventories, usages, traits), and with `--check` every
//! difference from what this host's inventory and configuration say it
//! should be (exit 1 on drift).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::error::ComputeError;
use super::{node_identity, resources};
use crate::config::Config;
use crate::host::InventoryOptions;
use crate::placement::tree::{self, Capabilities, Inventory, ResourceSettings};
use crate::placement::{ClientSettings, PlacementClient};

/// Traits that follow the service state, not the host: not drift.
const STATE_TRAITS: &[&str] = &[tree::COMPUTE_STATUS_DISABLED];

/// What Placement has for the node.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderView {
    /// Provider uuid (the compute node uuid).
    pub uuid: String,
    /// Provider name.
    pub name: String,
    /// Generation.
    pub generation: u64,
    /// Inventories by class.
    pub inventories: BTreeMap<String, Inventory>,
    /// Usages by class.
    pub usages: BTreeMap<String, u64>,
    /// Traits.
    pub traits: BTreeSet<String>,
}

/// Every difference between `have` (Placement) and what the host should
/// report, one sentence each; empty when they agree.
pub fn drift(
    have: &ProviderView,
    want_inv: &BTreeMap<String, Inventory>,
    want_traits: &BTreeSet<String>,
    want_name: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    if have.name != want_name {
        out.push(format!(
            "provider name is {:?}, host says {want_name:?}",
            have.name
        ));
    }
    for (rc, w) in want_inv {
        match have.inventories.get(rc) {
            None => out.push(format!(
                "{rc}: missing in placement (host has total {})",
                w.total
            )),
            Some(h) if !h.same_as(w) => {
                let mut d = Vec::new();
                if h.total != w.total {
                    d.push(format!("total {} != {}", h.total, w.total));
                }
                if h.reserved != w.reserved {
                    d.push(format!("reserved {} != {}", h.reserved, w.reserved));
                }
                if h.max_unit != w.max_unit {
                    d.push(format!("max_unit {} != {}", h.max_unit, w.max_unit));
                }
                if h.min_unit != w.min_unit || h.step_size != w.step_size {
                    d.push(format!(
                        "min_unit/step_size {}/{} != {}/{}",
                        h.min_unit, h.step_size, w.min_unit, w.step_size
                    ));
                }
                if (h.allocation_ratio - w.allocation_ratio).abs() > 1e-4 {
                    d.push(format!(
                        "allocation_ratio {} != {}",
                        h.allocation_ratio, w.allocation_ratio
                    ));
                }
                out.push(format!("{rc}: placement vs host: {}", d.join(", ")));
            }
            Some(_) => {}
        }
    }
    for rc in have.inventories.keys() {
        if !want_inv.contains_key(rc) {
            out.push(format!("{rc}: in placement but not on this host"));
        }
    }
    for t in want_traits.difference(&have.traits) {
        if !STATE_TRAITS.contains(&t.as_str()) {
            out.push(format!("trait {t}: missing in placement"));
        }
    }
    for t in have.traits.difference(want_traits) {
        if !STATE_TRAITS.contains(&t.as_str()) {
            out.push(format!("trait {t}: in placement but not true of this host"));
        }
    }
    out
}

async fn fetch(client: &PlacementClient, uuid: &str) -> Result<Option<ProviderView>, ComputeError> {
    let Some(p) = client.get_provider(uuid).await? else {
        return Ok(None);
    };
    let (_, inventories) = client.get_inventories(uuid).await?;
    let usages = client.get_usages(uuid).await?;
    let (generation, traits) = client.get_provider_traits(uuid).await?;
    Ok(Some(ProviderView {
        uuid: p.uuid,
        name: p.name,
        generation,
        inventories,
        usages,
        traits,
    }))
}

/// Renders the provider as text.
pub fn render(p: &ProviderView) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "provider   {} ({})", p.uuid, p.name);
    let _ = writeln!(s, "generation {}", p.generation);
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>8} {:>6} {:>8} {:>8}",
        "class", "total", "reserved", "ratio", "max_unit", "used"
    );
    for (rc, i) in &p.inventories {
        let _ = writeln!(
            s,
            "{:<10} {:>8} {:>8} {:>6} {:>8} {:>8}",
            rc,
            i.total,
            i.reserved,
            i.allocation_ratio,
            i.max_unit,
            p.usages.get(rc).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(s, "traits ({}):", p.traits.len());
    for t in &p.traits {
        let _ = writeln!(s, "  {t}");
    }
    s
}

/// Run `novakvm host placement`. Exit codes: 0 fine, 1 drift or provider
/// missing, 2 the agent cannot tell (no `compute_id`, Placement unreachable,
/// bad configuration).
pub fn run(cfg: &Config, root: &Path, check: bool, as_json: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("novakvm host placement: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run_async(cfg, root, check, as_json)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("novakvm host placement: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run_async(
    cfg: &Config,
    root: &Path,
    check: bool,
    as_json: bool,
) -> Result<ExitCode, ComputeError> {
    let node =
        node_identity::read(std::slice::from_ref(&cfg.default.state_path))?.ok_or_else(|| {
            ComputeError::InvalidNodeConfiguration(format!(
                "no {} in {}: novakvm compute has not registered this node yet",
                node_identity::COMPUTE_ID_FILE,
                cfg.default.state_path.display()
            ))
        })?;
    let client = PlacementClient::from_options(&cfg.placement, ClientSettings::default())?;
    let have = fetch(&client, &node.to_string()).await?;
    let Some(have) = have else {
        eprintln!("novakvm host placement: provider {node} is not in placement");
        return Ok(ExitCode::from(1));
    };
    let mut diffs = Vec::new();
    if check {
        let inv = crate::host::collect(root, &InventoryOptions::from_config(cfg))?;
        let host = resources::host_resources(cfg, &inv, node);
        let settings = ResourceSettings::from_config(&cfg.default);
        let want_inv = tree::inventories(&host, &settings, &have.inventories)?;
        let disabled = have.traits.contains(tree::COMPUTE_STATUS_DISABLED);
        let want_traits = tree::traits(&have.traits, &host, &Capabilities::novakvm(), disabled);
        diffs = drift(&have, &want_inv, &want_traits, &host.hypervisor_hostname);
    }
    if as_json {
        let v = json!({
            "uuid": have.uuid,
            "name": have.name,
            "generation": have.generation,
            "inventories": have.inventories,
            "usages": have.usages,
            "traits": have.traits,
            "drift": diffs,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", render(&have));
        if check {
            if diffs.is_empty() {
                println!("check: placement matches this host");
            } else {
                println!("check: {} difference(s):", diffs.len());
                for d in &diffs {
                    println!("  DRIFT {d}");
                }
            }
        }
    }
    Ok(if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(total: u64) -> Inventory {
        Inventory {
            total,
            min_unit: 1,
            max_unit: total,
            step_size: 1,
            allocation_ratio: 1.0,
            reserved: 0,
        }
    }

    #[test]
    fn names_each_difference() {
        let have = ProviderView {
            uuid: "u".into(),
            name: "h".into(),
            generation: 1,
            inventories: [("VCPU".to_string(), inv(4)), ("PCPU".to_string(), inv(2))].into(),
            usages: BTreeMap::new(),
            traits: [
                "OWNER_NOVA".to_string(),
                "COMPUTE_STATUS_DISABLED".to_string(),
            ]
            .into(),
        };
        let want_inv = [
            ("VCPU".to_string(), inv(8)),
            ("MEMORY_MB".to_string(), inv(1024)),
        ]
        .into();
        let want_traits = ["OWNER_NOVA".to_string(), "COMPUTE_NODE".to_string()].into();
        let d = drift(&have, &want_inv, &want_traits, "h");
        assert!(
            d.iter()
                .any(|s| s.contains("VCPU") && s.contains("total 4 != 8")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|s| s.starts_with("MEMORY_MB: missing")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|s| s.starts_with("PCPU: in placement but not")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|s| s.contains("trait COMPUTE_NODE: missing")),
            "{d:?}"
        );
        assert!(
            !d.iter().any(|s| s.contains("COMPUTE_STATUS_DISABLED")),
            "{d:?}"
        );
        assert_eq!(d.len(), 4);
        let same = drift(&have, &have.inventories, &have.traits, "h");
        assert!(same.is_empty());
    }
}
