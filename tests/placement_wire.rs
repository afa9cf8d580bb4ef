//! The requests novakvm sends to a REAL Placement, recorded by a small
//! forwarding proxy, compared with what stock nova-compute 34 sent in the
//! nova-wire capture (shared/nova-wire/placement-http: first start seq 3-9,
//! restart seq 37-45, delete seq 29-30): same methods, paths and
//! `OpenStack-API-Version` per call, same request bodies.

#[path = "placement/common.rs"]
mod common;

use std::sync::{Arc, Mutex};

use common::{client, host, raw, shared_placement_at};
use novakvm::placement::{ReportSettings, Reporter};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    version: Option<String>,
    token: Option<String>,
    body: Value,
}

/// Forward every request to `upstream`, recording it.
async fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        while let Ok((sock, _)) = listener.accept().await {
            let (http, seen, upstream) = (http.clone(), s2.clone(), upstream.clone());
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                loop {
                    let mut line = String::new();
                    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        rd.read_line(&mut h).await.unwrap();
                        let h = h.trim_end().to_string();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    let get =
                        |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                    let len: usize = get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    rd.read_exact(&mut body).await.unwrap();
                    seen.lock().unwrap().push(Seen {
                        method: method.clone(),
                        path: path.clone(),
                        version: get("openstack-api-version"),
                        token: get("x-auth-token"),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    let mut req = http.request(
                        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                        format!("{upstream}{path}"),
                    );
                    for (k, v) in &headers {
                        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
                            req = req.header(k.as_str(), v.as_str());
                        }
                    }
                    let resp = req.body(body).send().await.unwrap();
                    let status = resp.status();
                    let ctype = resp
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("application/json")
                        .to_string();
                    let bytes = resp.bytes().await.unwrap();
                    let head = format!(
                        "HTTP/1.1 {} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or(""),
                        bytes.len()
                    );
                    wr.write_all(head.as_bytes()).await.unwrap();
                    wr.write_all(&bytes).await.unwrap();
                }
            });
        }
    });
    (url, seen)
}

fn calls(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<(String, String, Option<String>)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone(), s.version.clone()))
        .collect()
}

fn c(m: &str, p: &str, v: Option<&str>) -> (String, String, Option<String>) {
    (
        m.to_string(),
        p.to_string(),
        v.map(|v| format!("placement {v}")),
    )
}

#[tokio::test]
async fn requests_match_stock_nova_compute() {
    let upstream = shared_placement_at(18784);
    let (url, seen) = recording_proxy(upstream.clone()).await;
    let mut h = host("wire");
    h.cpu_flags.clear();
    h.smt = false;
    h.arch = None;
    let u = h.node_uuid.to_string();

    // First start.
    let r = Reporter::new(client(&url), ReportSettings::default());
    r.update(&h, false).await.unwrap();
    let got = calls(&seen);
    let traits_query = got.get(4).map(|c| c.1.clone()).unwrap_or_default();
    assert_eq!(
        got,
        vec![
            c("GET", "/", None),
            c(
                "GET",
                &format!("/resource_providers?in_tree={u}"),
                Some("1.14")
            ),
            c("POST", "/resource_providers", Some("1.20")),
            c(
                "PUT",
                &format!("/resource_providers/{u}/inventories"),
                Some("1.26")
            ),
            c("GET", &traits_query, Some("1.6")),
            c(
                "PUT",
                &format!("/resource_providers/{u}/traits"),
                Some("1.6")
            ),
        ]
    );
    assert!(
        traits_query.starts_with("/traits?name=in:"),
        "{traits_query}"
    );
    {
        let s = seen.lock().unwrap();
        assert_eq!(
            s[0].token, None,
            "the root document is read without a token"
        );
        assert!(s[1..].iter().all(|x| x.token.as_deref() == Some("admin")));
        assert_eq!(s[2].body, json!({"uuid": u, "name": h.hypervisor_hostname}));
        assert_eq!(
            s[3].body,
            json!({"resource_provider_generation": 0, "inventories": {
                "VCPU": {"total": 4, "min_unit": 1, "max_unit": 4, "step_size": 1, "allocation_ratio": 4.0, "reserved": 0},
                "PCPU": {"total": 2, "min_unit": 1, "max_unit": 2, "step_size": 1, "allocation_ratio": 1.0, "reserved": 0},
                "MEMORY_MB": {"total": 8192, "min_unit": 1, "max_unit": 8192, "step_size": 1, "allocation_ratio": 1.0, "reserved": 512},
                "DISK_GB": {"total": 100, "min_unit": 1, "max_unit": 100, "step_size": 1, "allocation_ratio": 1.0, "reserved": 0}}})
        );
        assert_eq!(s[5].body["resource_provider_generation"], 1);
        let mut traits: Vec<&str> = s[5].body["traits"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        traits.sort_unstable();
        assert_eq!(
            traits,
            vec!["COMPUTE_IMAGE_TYPE_RAW", "COMPUTE_NODE", "OWNER_NOVA"]
        );
    }

    // Restart with a changed reserved_host_memory_mb (as the capture did).
    seen.lock().unwrap().clear();
    let mut s = ReportSettings::default();
    s.resources.reserved_host_memory_mb = 1024;
    let r2 = Reporter::new(client(&url), s);
    r2.update(&h, false).await.unwrap();
    assert_eq!(
        calls(&seen),
        vec![
            c("GET", "/", None),
            c(
                "GET",
                &format!("/resource_providers?in_tree={u}"),
                Some("1.14")
            ),
            c("GET", &format!("/resource_providers/{u}/inventories"), None),
            c(
                "GET",
                &format!("/resource_providers/{u}/aggregates"),
                Some("1.19")
            ),
            c(
                "GET",
                &format!("/resource_providers/{u}/traits"),
                Some("1.6")
            ),
            // The one deliberate difference from nova: capacity shrinks (more
            // reserved), so usage is read first; nova would PUT blindly and
            // Placement would accept an over-committed provider.
            c("GET", &format!("/resource_providers/{u}/usages"), None),
            c(
                "PUT",
                &format!("/resource_providers/{u}/inventories"),
                Some("1.26")
            ),
        ]
    );
    assert_eq!(
        seen.lock().unwrap()[6].body["resource_provider_generation"],
        2
    );
    assert_eq!(
        seen.lock().unwrap()[6].body["inventories"]["MEMORY_MB"]["reserved"],
        1024
    );

    // Growing capacity needs no usage check: exactly nova's single PUT.
    seen.lock().unwrap().clear();
    h.disk_gb = 200;
    r2.update(&h, false).await.unwrap();
    assert_eq!(
        calls(&seen),
        vec![c(
            "PUT",
            &format!("/resource_providers/{u}/inventories"),
            Some("1.26")
        )]
    );

    // An instance's allocations: read at 1.28, deleted without a microversion.
    let instance = uuid::Uuid::new_v4().to_string();
    let (st, b) = raw(
        &upstream,
        "PUT",
        &format!("/allocations/{instance}"),
        "1.36",
        Some(json!({
        "allocations": {u.clone(): {"resources": {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}}},
        "project_id": "admin", "user_id": "admin", "consumer_generation": null})),
    )
    .await;
    assert_eq!(st, 204, "{b}");
    seen.lock().unwrap().clear();
    r2.allocations_for_instance(&instance).await.unwrap();
    assert!(r2.delete_allocations_for_instance(&instance).await.unwrap());
    assert_eq!(
        calls(&seen),
        vec![
            c("GET", &format!("/allocations/{instance}"), Some("1.28")),
            c("DELETE", &format!("/allocations/{instance}"), None),
        ]
    );
}
