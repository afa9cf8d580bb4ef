//! The placement reporter and client against a REAL openstack-placement
//! (from PyPI, noauth2, fresh database) started by tests/placement/start-placement.

#[path = "placement/common.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{client, host, raw, shared_placement};
use novakvm::placement::{PlacementError, ReportSettings, Reporter};
use serde_json::json;
use uuid::Uuid;

fn reporter(url: &str) -> Reporter {
    Reporter::new(client(url), ReportSettings::default())
}

#[tokio::test]
async fn creates_provider_with_inventories_and_traits() {
    let url = shared_placement();
    let h = host("create");
    let r = reporter(&url);
    let o = r.update(&h, false).await.unwrap();
    assert!(
        o.created && o.inventory_written && o.traits_written,
        "{o:?}"
    );

    let (st, rp) = raw(
        &url,
        "GET",
        &format!("/resource_providers/{}", h.node_uuid),
        "1.14",
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(rp["name"], h.hypervisor_hostname.as_str());
    assert_eq!(rp["parent_provider_uuid"], serde_json::Value::Null);

    let (_, inv) = raw(
        &url,
        "GET",
        &format!("/resource_providers/{}/inventories", h.node_uuid),
        "1.0",
        None,
    )
    .await;
    assert_eq!(
        inv["inventories"],
        json!({
            "VCPU": {"total": 4, "reserved": 0, "min_unit": 1, "max_unit": 4, "step_size": 1, "allocation_ratio": 4.0},
            "PCPU": {"total": 2, "reserved": 0, "min_unit": 1, "max_unit": 2, "step_size": 1, "allocation_ratio": 1.0},
            "MEMORY_MB": {"total": 8192, "reserved": 512, "min_unit": 1, "max_unit": 8192, "step_size": 1, "allocation_ratio": 1.0},
            "DISK_GB": {"total": 100, "reserved": 0, "min_unit": 1, "max_unit": 100, "step_size": 1, "allocation_ratio": 1.0}
        })
    );
    let (_, tr) = raw(
        &url,
        "GET",
        &format!("/resource_providers/{}/traits", h.node_uuid),
        "1.6",
        None,
    )
    .await;
    let traits: BTreeSet<String> = serde_json::from_value(tr["traits"].clone()).unwrap();
    for t in [
        "COMPUTE_NODE",
        "OWNER_NOVA",
        "COMPUTE_IMAGE_TYPE_RAW",
        "HW_CPU_X86_AVX",
        "HW_CPU_X86_SSE42",
        "HW_CPU_X86_VMX",
        "HW_CPU_HYPERTHREADING",
        "HW_ARCH_X86_64",
    ] {
        assert!(traits.contains(t), "{t} missing from {traits:?}");
    }
    assert!(!traits.contains("COMPUTE_STATUS_DISABLED"));
    assert_eq!(
        tr["resource_provider_generation"].as_u64(),
        Some(o.state.generation)
    );

    // The scheduler's query finds it (root_required=OWNER_NOVA,!COMPUTE_STATUS_DISABLED).
    let (st, ac) = raw(
        &url,
        "GET",
        &format!("/allocation_candidates?resources=VCPU:1,MEMORY_MB:512&root_required=OWNER_NOVA,!COMPUTE_STATUS_DISABLED&in_tree={}", h.node_uuid),
        "1.36",
        None,
    )
    .await;
    assert_eq!(st, 200, "{ac}");
    assert_eq!(
        ac["allocation_requests"].as_array().map(Vec::len),
        Some(1),
        "{ac}"
    );
}

#[tokio::test]
async fn nothing_sent_when_nothing_changed_and_changes_are_pushed() {
    let url = shared_placement();
    let mut h = host("idle");
    let r = reporter(&url);
    let first = r.update(&h, false).await.unwrap();
    let before = r.client().requests_sent();
    let again = r.update(&h, false).await.unwrap();
    assert_eq!(
        r.client().requests_sent(),
        before,
        "an unchanged update sent requests"
    );
    assert!(!again.inventory_written && !again.traits_written);
    assert_eq!(again.state.generation, first.state.generation);

    // A change is pushed.
    h.memory_mb = 16384;
    let o = r.update(&h, false).await.unwrap();
    assert!(o.inventory_written && !o.traits_written);
    let (_, inv) = raw(
        &url,
        "GET",
        &format!("/resource_providers/{}/inventories", h.node_uuid),
        "1.0",
        None,
    )
    .await;
    assert_eq!(inv["inventories"]["MEMORY_MB"]["total"], 16384);

    // Service disabled -> COMPUTE_STATUS_DISABLED, and back.
    let o = r.update(&h, true).await.unwrap();
    assert!(o.traits_written && o.state.traits.contains("COMPUTE_STATUS_DISABLED"));
    let o = r.update(&h, false).await.unwrap();
    assert!(o.traits_written && !o.state.traits.contains("COMPUTE_STATUS_DISABLED"));
}

#[tokio::test]
async fn restart_finds_the_provider_again() {
    let url = shared_placement();
    let mut h = host("restart");
    reporter(&url).update(&h, false).await.unwrap();

    // A new process: new client, empty cache.
    let r2 = reporter(&url);
    let o = r2.update(&h, false).await.unwrap();
    assert!(
        !o.created && !o.inventory_written && !o.traits_written,
        "{o:?}"
    );
    let (_, list) = raw(
        &url,
        "GET",
        &format!("/resource_providers?name={}", h.hypervisor_hostname),
        "1.14",
        None,
    )
    .await;
    assert_eq!(list["resource_providers"].as_array().map(Vec::len), Some(1));

    // Restart with a changed reserved_host_memory_mb, as in the nova-wire capture.
    let mut s = ReportSettings::default();
    s.resources.reserved_host_memory_mb = 1024;
    let r3 = Reporter::new(client(&url), s);
    let o = r3.update(&h, false).await.unwrap();
    assert!(!o.created && o.inventory_written);
    assert_eq!(o.state.inventories["MEMORY_MB"].reserved, 1024);

    // Same name, new uuid (a re-installed node): a clear error, no duplicate.
    h.node_uuid = Uuid::new_v4();
    let e = reporter(&url).update(&h, false).await.unwrap_err();
    assert!(matches!(e, PlacementError::NameConflict { .. }), "{e}");
    assert!(e.to_string().contains(&h.hypervisor_hostname), "{e}");
}

#[tokio::test]
async fn concurrent_change_is_refreshed_and_retried_and_operator_traits_kept() {
    let url = shared_placement();
    let mut h = host("conflict");
    let r = reporter(&url);
    let o = r.update(&h, false).await.unwrap();

    // Another client (an operator) adds traits, bumping the generation.
    let mut traits: Vec<String> = o.state.traits.iter().cloned().collect();
    traits.push("CUSTOM_GOLD".into());
    traits.push("STORAGE_DISK_SSD".into());
    let (st, _) = raw(&url, "PUT", "/traits/CUSTOM_GOLD", "1.6", None).await;
    assert!(st == 201 || st == 204);
    let (st, body) = raw(
        &url,
        "PUT",
        &format!("/resource_providers/{}/traits", h.node_uuid),
        "1.6",
        Some(json!({"resource_provider_generation": o.state.generation, "traits": traits})),
    )
    .await;
    assert_eq!(st, 200, "{body}");

    // Our cached generation is stale now: 409 concurrent_update, refresh, retry.
    h.disk_gb = 200;
    let o2 = r.update(&h, false).await.unwrap();
    assert_eq!(o2.conflicts, 1, "{o2:?}");
    assert!(o2.inventory_written);
    assert!(
        o2.state.traits.contains("CUSTOM_GOLD") && o2.state.traits.contains("STORAGE_DISK_SSD")
    );

    // Driver-managed traits still follow the host; operator traits stay.
    h.cpu_flags.retain(|f| f != "avx");
    let o3 = r.update(&h, true).await.unwrap();
    assert!(o3.traits_written);
    let (_, tr) = raw(
        &url,
        "GET",
        &format!("/resource_providers/{}/traits", h.node_uuid),
        "1.6",
        None,
    )
    .await;
    let now: BTreeSet<String> = serde_json::from_value(tr["traits"].clone()).unwrap();
    assert!(
        now.contains("CUSTOM_GOLD") && now.contains("STORAGE_DISK_SSD"),
        "{now:?}"
    );
    assert!(now.contains("COMPUTE_STATUS_DISABLED"));
    assert!(!now.contains("HW_CPU_X86_AVX"), "{now:?}");

    // And after a restart of our side.
    let o4 = reporter(&url).update(&h, true).await.unwrap();
    assert!(!o4.traits_written && o4.state.traits.contains("CUSTOM_GOLD"));
}

#[tokio::test]
async fn shrinking_below_usage_is_refused_then_retried() {
    let url = shared_placement();
    let mut h = host("shrink");
    let r = reporter(&url);
    let o = r.update(&h, false).await.unwrap();
    let rp = h.node_uuid.to_string();

    // The scheduler's claim, from outside.
    let instance = Uuid::new_v4().to_string();
    let (st, body) = raw(
        &url,
        "PUT",
        &format!("/allocations/{instance}"),
        "1.36",
        Some(json!({
            "allocations": {rp.clone(): {"resources": {"MEMORY_MB": 6000, "DISK_GB": 10, "VCPU": 2}}},
            "project_id": "admin", "user_id": "admin", "consumer_generation": null
        })),
    )
    .await;
    assert_eq!(st, 204, "{body}");
    let allocs = r.allocations_for_instance(&instance).await.unwrap();
    assert_eq!(allocs.allocations[&rp].resources["MEMORY_MB"], 6000);
    assert_eq!(allocs.consumer_generation, Some(1));

    // Memory shrinks below usage, disk grows: memory refused (clear error),
    // disk still updated; nothing forced.
    h.memory_mb = 4096;
    h.disk_gb = 150;
    let e = r.update(&h, false).await.unwrap_err();
    assert!(matches!(e, PlacementError::InventoryInUse { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("MEMORY_MB: 6000 in use"), "{msg}");
    let (_, inv) = raw(
        &url,
        "GET",
        &format!("/resource_providers/{rp}/inventories"),
        "1.0",
        None,
    )
    .await;
    assert_eq!(
        inv["inventories"]["MEMORY_MB"]["total"], 8192,
        "memory was forced: {inv}"
    );
    assert_eq!(inv["inventories"]["DISK_GB"]["total"], 150);

    // Removing a class that is in use (no disk at all) is refused too.
    let mut h0 = h.clone();
    h0.disk_gb = 0;
    h0.memory_mb = 8192;
    let e = r.update(&h0, false).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("DISK_GB: 10 in use, the class would be removed"),
        "{e}"
    );

    // Retried later: still refused while in use, accepted once the instance is gone.
    assert!(r.update(&h, false).await.is_err());
    assert!(r.delete_allocations_for_instance(&instance).await.unwrap());
    assert!(!r.delete_allocations_for_instance(&instance).await.unwrap());
    assert!(r
        .allocations_for_instance(&instance)
        .await
        .unwrap()
        .allocations
        .is_empty());
    let o2 = r.update(&h, false).await.unwrap();
    assert!(o2.inventory_written);
    assert_eq!(o2.state.inventories["MEMORY_MB"].total, 4096);
    assert!(o2.state.generation > o.state.generation);
}

#[tokio::test]
async fn garbage_input_to_allocation_calls_is_refused() {
    let url = shared_placement();
    let r = reporter(&url);
    let e = r.allocations_for_instance("not-a-uuid").await.unwrap_err();
    assert!(e.to_string().contains("not a uuid"), "{e}");
    let e = r
        .delete_allocations_for_instance("../resource_providers")
        .await
        .unwrap_err();
    assert!(matches!(e, PlacementError::InvalidInput(_)), "{e}");
    let mut h = host("bad");
    h.hypervisor_hostname = String::new();
    assert!(matches!(
        r.update(&h, false).await,
        Err(PlacementError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn microversion_negotiation_reads_the_root_document() {
    let url = shared_placement();
    let c = client(&url);
    let (min, max) = c.server_versions().await.unwrap();
    assert_eq!(min.to_string(), "1.0");
    assert!(max >= novakvm::placement::client::NOVA_MAX, "{max}");
    let e = c
        .check_version(novakvm::placement::Microversion::new(1, 999))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("supports microversions 1.0 to"),
        "{e}"
    );
}

#[tokio::test]
async fn periodic_run_updates_on_change_and_stops() {
    let url = shared_placement();
    let h = host("periodic");
    let r = Arc::new(reporter(&url));
    let (tx, rx) = tokio::sync::watch::channel(());
    let stop = tokio_util::sync::CancellationToken::new();
    let state = Arc::new(std::sync::Mutex::new(h.clone()));
    let s2 = state.clone();
    let task = tokio::spawn(r.clone().run(
        std::time::Duration::from_secs(3600),
        rx,
        stop.clone(),
        move || (s2.lock().unwrap().clone(), false),
    ));
    // The first tick fires at once: provider created.
    for _ in 0..100 {
        if r.cached().await.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        r.cached().await.is_some(),
        "first periodic update did not happen"
    );
    state.lock().unwrap().memory_mb = 12288;
    tx.send(()).unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if r.cached().await.map(|s| s.inventories["MEMORY_MB"].total) == Some(12288) {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "change notification did not lead to an update");
    stop.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("run() did not stop")
        .unwrap();
}
