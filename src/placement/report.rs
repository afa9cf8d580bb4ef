//! Keeping the compute node's provider true in Placement, as nova's resource
//! tracker and `SchedulerReportClient` do:
//!
//! - first update (or after a conflict, or when the cache is older than
//!   `association_refresh`): `GET /resource_providers?in_tree=` and either
//!   create the provider (`POST`) or read its inventories, aggregates and
//!   traits;
//! - then `PUT` inventories and traits only when they differ from the cached
//!   state, each with the cached generation;
//! - a generation conflict (409 `placement.concurrent_update`) drops the cache
//!   and redrives the whole update, up to `conflict_retries` times;
//! - inventory that would drop below usage (409 `placement.inventory.inuse`)
//!   is returned as [`PlacementError::InventoryInUse`]; nothing is forced and
//!   the next update tries again. Placement itself accepts a total below
//!   usage (it only logs), so a shrinking class is checked against
//!   `GET .../usages` first and kept as it is while the rest is updated.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex};
use tokio_util::sync::CancellationToken;

use super::client::{ConsumerAllocations, PlacementClient};
use super::tree::{self, Capabilities, HostResources, Inventory, ResourceSettings};
use super::{PlacementError, Result};

/// Reporter settings.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Reserved amounts and allocation ratios from `[DEFAULT]`.
    pub resources: ResourceSettings,
    /// What the driver supports (capability traits).
    pub capabilities: Capabilities,
    /// Re-read the provider from Placement when the cache is older than this
    /// (`[compute] resource_provider_association_refresh`, 300 s in nova).
    pub association_refresh: Duration,
    /// Redrives of an update after generation conflicts (nova: 4 tries).
    pub conflict_retries: u32,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            resources: ResourceSettings::default(),
            capabilities: Capabilities::novakvm(),
            association_refresh: Duration::from_secs(300),
            conflict_retries: 4,
        }
    }
}

/// The provider as last seen in (or written to) Placement.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderState {
    pub uuid: String,
    pub name: String,
    pub generation: u64,
    pub inventories: BTreeMap<String, Inventory>,
    pub traits: BTreeSet<String>,
    pub aggregates: Vec<String>,
}

/// What one update did.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateOutcome {
    /// The provider was created by this update.
    pub created: bool,
    /// Inventories were written.
    pub inventory_written: bool,
    /// Traits were written.
    pub traits_written: bool,
    /// Generation conflicts met (and recovered from).
    pub conflicts: u32,
    /// The provider afterwards.
    pub state: ProviderState,
}

#[derive(Debug)]
struct Cache {
    state: ProviderState,
    refreshed: Instant,
}

/// Reports one compute node's provider to Placement.
#[derive(Debug)]
pub struct Reporter {
    client: Arc<PlacementClient>,
    settings: ReportSettings,
    cache: Mutex<Option<Cache>>,
}

impl Reporter {
    /// A reporter using `client`.
    pub fn new(client: Arc<PlacementClient>, settings: ReportSettings) -> Self {
        Self {
            client,
            settings,
            cache: Mutex::new(None),
        }
    }

    /// The client in use.
    pub fn client(&self) -> &Arc<PlacementClient> {
        &self.client
    }

    /// The cached provider state, if any.
    pub async fn cached(&self) -> Option<ProviderState> {
        self.cache.lock().await.as_ref().map(|c| c.state.clone())
    }

    /// Drop the cache; the next update reads the provider afresh.
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    /// Bring Placement in line with `host`: create the provider if needed,
    /// write inventories and traits when they changed. `service_disabled`
    /// drives `COMPUTE_STATUS_DISABLED`.
    #[tracing::instrument(skip(self, host), fields(node = %host.node_uuid, name = %host.hypervisor_hostname))]
    pub async fn update(
        &self,
        host: &HostResources,
        service_disabled: bool,
    ) -> Result<UpdateOutcome> {
        tree::validate(host)?;
        let mut cache = self.cache.lock().await;
        let attempts = self.settings.conflict_retries.max(1);
        let mut conflicts = 0;
        for _ in 0..attempts {
            match self.update_once(&mut cache, host, service_disabled).await {
                Ok(mut outcome) => {
                    outcome.conflicts = conflicts;
                    return Ok(outcome);
                }
                Err(PlacementError::GenerationConflict { provider, .. }) => {
                    conflicts += 1;
                    tracing::info!(%provider, "generation conflict; refreshing the provider and retrying");
                    *cache = None;
                }
                Err(e) => {
                    if !matches!(e, PlacementError::InventoryInUse { .. }) {
                        // Unknown state: read it afresh next time (nova's catch_all).
                        *cache = None;
                    }
                    return Err(e);
                }
            }
        }
        Err(PlacementError::GenerationConflict {
            provider: host.node_uuid.to_string(),
            attempts,
        })
    }

    async fn update_once(
        &self,
        cache: &mut Option<Cache>,
        host: &HostResources,
        service_disabled: bool,
    ) -> Result<UpdateOutcome> {
        let uuid = host.node_uuid.to_string();
        let stale = cache.as_ref().map_or(true, |c| {
            c.state.uuid != uuid || c.refreshed.elapsed() > self.settings.association_refresh
        });
        let mut created = false;
        if stale {
            let (state, was_created) = self
                .load_or_create(&uuid, &host.hypervisor_hostname)
                .await?;
            created = was_created;
            *cache = Some(Cache {
                state,
                refreshed: Instant::now(),
            });
        }
        let c = cache.as_mut().ok_or_else(|| {
            PlacementError::InvalidInput("provider cache vanished during update".to_string())
        })?;
        if c.state.name != host.hypervisor_hostname {
            // nova does not rename providers either.
            tracing::warn!(
                provider = %uuid,
                placement_name = %c.state.name,
                hypervisor_hostname = %host.hypervisor_hostname,
                "resource provider name differs from the hypervisor hostname; not renamed"
            );
        }

        let mut wanted_inv =
            tree::inventories(host, &self.settings.resources, &c.state.inventories)?;
        let in_use = self
            .keep_what_is_in_use(&uuid, &c.state.inventories, &mut wanted_inv)
            .await?;
        let mut inventory_written = false;
        if !tree::inventories_equal(&wanted_inv, &c.state.inventories) {
            self.client
                .ensure_resource_classes(wanted_inv.keys())
                .await?;
            let (generation, inventories) = self
                .client
                .put_inventories(&uuid, c.state.generation, &wanted_inv)
                .await?;
            c.state.generation = generation;
            c.state.inventories = inventories;
            inventory_written = true;
        }

        let wanted_traits = tree::traits(
            &c.state.traits,
            host,
            &self.settings.capabilities,
            service_disabled,
        );
        let mut traits_written = false;
        if wanted_traits != c.state.traits {
            self.client.ensure_traits(&wanted_traits).await?;
            let (generation, traits) = self
                .client
                .put_provider_traits(&uuid, c.state.generation, &wanted_traits)
                .await?;
            c.state.generation = generation;
            c.state.traits = traits;
            traits_written = true;
        }

        if !in_use.is_empty() {
            return Err(PlacementError::InventoryInUse {
                provider: uuid,
                detail: in_use.join("; "),
            });
        }
        Ok(UpdateOutcome {
            created,
            inventory_written,
            traits_written,
            conflicts: 0,
            state: c.state.clone(),
        })
    }

    /// Placement accepts inventory below what is allocated (it only logs a
    /// warning), so check first: where a class would shrink below its usage
    /// (or vanish while in use), keep its current record and say so. The
    /// other classes are still updated.
    async fn keep_what_is_in_use(
        &self,
        uuid: &str,
        current: &BTreeMap<String, Inventory>,
        wanted: &mut BTreeMap<String, Inventory>,
    ) -> Result<Vec<String>> {
        let shrinking: Vec<&String> = current
            .iter()
            .filter(|(rc, cur)| {
                wanted
                    .get(*rc)
                    .map_or(true, |w| w.capacity() < cur.capacity())
            })
            .map(|(rc, _)| rc)
            .collect();
        if shrinking.is_empty() {
            return Ok(Vec::new());
        }
        let usages = self.client.get_usages(uuid).await?;
        let mut problems = Vec::new();
        for rc in shrinking {
            let used = usages.get(rc).copied().unwrap_or(0);
            if used == 0 {
                continue;
            }
            let capacity = wanted.get(rc).map_or(0.0, Inventory::capacity);
            if (used as f64) > capacity {
                let what = match wanted.get(rc) {
                    Some(w) => format!(
                        "{rc}: {used} in use, new capacity would be {capacity} (total {} - reserved {}) x ratio {}",
                        w.total, w.reserved, w.allocation_ratio
                    ),
                    None => format!("{rc}: {used} in use, the class would be removed"),
                };
                problems.push(what);
                if let Some(cur) = current.get(rc) {
                    wanted.insert(rc.clone(), *cur);
                }
            }
        }
        Ok(problems)
    }

    /// Read the provider (inventories, aggregates, traits) or create it.
    async fn load_or_create(&self, uuid: &str, name: &str) -> Result<(ProviderState, bool)> {
        let in_tree = self.client.providers_in_tree(uuid).await?;
        let Some(rp) = in_tree.into_iter().find(|p| p.uuid == uuid) else {
            let rp = self.client.create_provider(uuid, name, None).await?;
            tracing::info!(provider = %uuid, %name, "created resource provider");
            return Ok((
                ProviderState {
                    uuid: uuid.to_string(),
                    name: rp.name,
                    generation: rp.generation,
                    inventories: BTreeMap::new(),
                    traits: BTreeSet::new(),
                    aggregates: Vec::new(),
                },
                true,
            ));
        };
        let (_, inventories) = self.client.get_inventories(uuid).await?;
        let (_, aggregates) = self.client.get_aggregates(uuid).await?;
        let (generation, traits) = self.client.get_provider_traits(uuid).await?;
        Ok((
            ProviderState {
                uuid: uuid.to_string(),
                name: rp.name,
                generation,
                inventories,
                traits,
                aggregates,
            },
            false,
        ))
    }

    /// `GET /allocations/{instance}`: the instance's allocations.
    pub async fn allocations_for_instance(&self, instance: &str) -> Result<ConsumerAllocations> {
        self.client.get_allocations(instance).await
    }

    /// `DELETE /allocations/{instance}` on delete or failed build; `false`
    /// if there were none.
    pub async fn delete_allocations_for_instance(&self, instance: &str) -> Result<bool> {
        let deleted = self.client.delete_allocations(instance).await?;
        if deleted {
            tracing::info!(%instance, "deleted allocations for instance");
        }
        Ok(deleted)
    }

    /// Update every `interval` and whenever `changed` fires, until `stop`.
    /// `snapshot` gives the host and whether the service is disabled. Errors
    /// are logged and the next round tries again.
    pub async fn run<F>(
        self: Arc<Self>,
        interval: Duration,
        mut changed: watch::Receiver<()>,
        stop: CancellationToken,
        mut snapshot: F,
    ) where
        F: FnMut() -> (HostResources, bool) + Send,
    {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes_open = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
                r = changed.changed(), if changes_open => {
                    if r.is_err() {
                        changes_open = false;
                        continue;
                    }
                }
            }
            let (host, disabled) = snapshot();
            match self.update(&host, disabled).await {
                Ok(o) if o.inventory_written || o.traits_written => {
                    tracing::info!(
                        generation = o.state.generation,
                        inventory = o.inventory_written,
                        traits = o.traits_written,
                        "placement updated"
                    );
                }
                Ok(_) => {}
                Err(e @ PlacementError::InventoryInUse { .. }) => tracing::error!("{e}"),
                Err(e) => tracing::warn!("placement update failed: {e}"),
            }
        }
    }
}

/// The periodic interval from `[DEFAULT] update_resources_interval`: 0 means
/// nova's default of 60 s, a negative value disables the periodic update.
pub fn interval_from_config(update_resources_interval: i64) -> Option<Duration> {
    match update_resources_interval {
        0 => Some(Duration::from_secs(60)),
        n if n < 0 => None,
        n => Some(Duration::from_secs(n.unsigned_abs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_like_nova() {
        assert_eq!(interval_from_config(0), Some(Duration::from_secs(60)));
        assert_eq!(interval_from_config(30), Some(Duration::from_secs(30)));
        assert_eq!(interval_from_config(-1), None);
    }
}
