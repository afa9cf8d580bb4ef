//! Faults: Placement down then up (a REAL openstack-placement stopped and
//! restarted), and garbage answers from a tiny local HTTP server (junk, HTML,
//! 500s, truncated and oversized bodies, old microversions): clear errors,
//! retries where they make sense, never a panic.

#[path = "placement/common.rs"]
mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fast_settings, host, restart_keeping_db, start_placement};
use novakvm::placement::auth::AuthConfig;
use novakvm::placement::{
    ClientSettings, PlacementClient, PlacementError, ReportSettings, Reporter, RetryPolicy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DOWN_UP_PORT: u16 = 18782;

fn client_with(url: &str, settings: ClientSettings) -> Arc<PlacementClient> {
    Arc::new(PlacementClient::new(AuthConfig::admin_token(url, "admin"), settings).unwrap())
}

#[tokio::test]
async fn placement_down_then_up() {
    let url = tokio::task::spawn_blocking(|| start_placement(DOWN_UP_PORT))
        .await
        .unwrap();
    let mut h = host("downup");
    let patient = ClientSettings {
        retry: RetryPolicy {
            attempts: 12,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(2),
        },
        ..fast_settings()
    };
    let r = Reporter::new(client_with(&url, patient), ReportSettings::default());
    assert!(r.update(&h, false).await.unwrap().created);

    // Placement goes away: a short-retry reporter gives a clear error.
    let pidfile = format!(
        "{}/novakvm-placement-{DOWN_UP_PORT}/gunicorn.pid",
        std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".to_string())
    );
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    assert!(std::process::Command::new("kill")
        .arg(&pid)
        .status()
        .unwrap()
        .success());
    for _ in 0..50 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.memory_mb = 4096;
    let quick = Reporter::new(
        client_with(&url, fast_settings()),
        ReportSettings::default(),
    );
    let e = quick.update(&h, false).await.unwrap_err();
    assert!(
        matches!(e, PlacementError::Unreachable { attempts: 4, .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&DOWN_UP_PORT.to_string()), "{e}");

    // It comes back while the patient reporter is retrying: success.
    let restart = tokio::task::spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(500));
        restart_keeping_db(DOWN_UP_PORT)
    });
    let o = r.update(&h, false).await.unwrap();
    assert!(!o.created, "provider duplicated after Placement restart");
    assert!(o.inventory_written);
    assert_eq!(o.state.inventories["MEMORY_MB"].total, 4096);
    restart.await.unwrap();
    let before = r.client().requests_sent();
    r.update(&h, false).await.unwrap();
    assert_eq!(r.client().requests_sent(), before);
}

#[tokio::test]
async fn nothing_listening_is_unreachable_after_the_retries() {
    // A port nobody listens on: bind, learn the port, drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client_with(&format!("http://127.0.0.1:{port}"), fast_settings());
    let e = Reporter::new(c.clone(), ReportSettings::default())
        .update(&host("nothing"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(e, PlacementError::Unreachable { attempts: 4, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("connection failed"), "{e}");
    assert_eq!(c.requests_sent(), 4);
}

/// A tiny HTTP server: `answer(method, path)` gives the raw bytes to send.
struct Junk {
    url: String,
    hits: Arc<AtomicU32>,
}

async fn junk_server<F>(answer: F) -> Junk
where
    F: Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU32::new(0));
    let h2 = hits.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            let hits = h2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // Read the head (and whatever body came with it).
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&got).to_string();
                let mut first = head.lines().next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_string();
                let path = first.next().unwrap_or("").to_string();
                let _ = sock.write_all(&answer(&method, &path)).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Junk { url, hits }
}

fn http(status: &str, ctype: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const ROOT: &str = r#"{"versions": [{"id": "v1.0", "max_version": "1.39", "min_version": "1.0", "status": "CURRENT", "links": []}]}"#;

fn root_then(
    rest: impl Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static,
) -> impl Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static {
    move |m, p| {
        if p == "/" {
            http("200 OK", "application/json", ROOT)
        } else {
            rest(m, p)
        }
    }
}

async fn update_against(j: &Junk) -> PlacementError {
    let r = Reporter::new(
        client_with(&j.url, fast_settings()),
        ReportSettings::default(),
    );
    let started = Instant::now();
    let e = r.update(&host("junk"), false).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    e
}

#[tokio::test]
async fn html_root_document_is_a_clear_error() {
    let j = junk_server(|_, _| {
        http(
            "200 OK",
            "text/html",
            "<html><body>Welcome to nginx!</body></html>",
        )
    })
    .await;
    let e = update_against(&j).await;
    assert!(matches!(e, PlacementError::BadResponse { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("GET /") && msg.contains("Welcome to nginx"),
        "{msg}"
    );
}

#[tokio::test]
async fn root_without_versions_or_with_junk_versions() {
    let j = junk_server(|_, _| http("200 OK", "application/json", r#"{"versions": []}"#)).await;
    assert!(update_against(&j)
        .await
        .to_string()
        .contains("lists no versions"));
    let j = junk_server(|_, _| {
        http(
            "200 OK",
            "application/json",
            r#"{"versions": [{"min_version": "1.0", "max_version": "one.two"}]}"#,
        )
    })
    .await;
    let e = update_against(&j).await;
    assert!(e.to_string().contains("not major.minor"), "{e}");
}

#[tokio::test]
async fn old_placement_is_a_microversion_error() {
    let j = junk_server(|_, _| {
        http(
            "200 OK",
            "application/json",
            r#"{"versions": [{"id": "v1.0", "min_version": "1.0", "max_version": "1.10"}]}"#,
        )
    })
    .await;
    let e = update_against(&j).await;
    assert!(matches!(e, PlacementError::Microversion { .. }), "{e}");
    assert!(
        e.to_string().contains("1.0 to 1.10, but 1.14 is needed"),
        "{e}"
    );
    // Only the root document was read: nothing sent that the server cannot take.
    assert_eq!(j.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let j = junk_server(root_then(|_, _| {
        http(
            "500 Internal Server Error",
            "text/html",
            "<h1>Internal Server Error</h1>",
        )
    }))
    .await;
    let e = update_against(&j).await;
    assert!(
        matches!(e, PlacementError::Unreachable { attempts: 4, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    // 1 root + 4 tries.
    assert_eq!(j.hits.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn junk_json_and_wrong_shapes_are_bad_responses() {
    let j = junk_server(root_then(|_, _| {
        http(
            "200 OK",
            "application/json",
            "{\"resource_providers\": [{\"uuid\": 5",
        )
    }))
    .await;
    let e = update_against(&j).await;
    assert!(matches!(e, PlacementError::BadResponse { .. }), "{e}");
    assert!(
        e.to_string().contains("/resource_providers?in_tree="),
        "{e}"
    );

    let j = junk_server(root_then(|_, p| {
        if p.starts_with("/resource_providers?in_tree=") {
            http(
                "200 OK",
                "application/json",
                r#"{"resource_providers": [{"uuid": "x", "name": "y", "generation": "abc"}]}"#,
            )
        } else {
            http("200 OK", "application/json", "[]")
        }
    }))
    .await;
    assert!(matches!(
        update_against(&j).await,
        PlacementError::BadResponse { .. }
    ));

    // Binary garbage instead of HTTP.
    let j = junk_server(|_, _| vec![0xff, 0x00, 0x13, 0x37, b'\n', b'\n']).await;
    let e = update_against(&j).await;
    assert!(matches!(e, PlacementError::Unreachable { .. }), "{e}");
}

#[tokio::test]
async fn unexpected_statuses_and_oversized_bodies() {
    let j = junk_server(root_then(|_, _| {
        http(
            "401 Unauthorized",
            "application/json",
            r#"{"message": "This server could not verify that you are authorized"}"#,
        )
    }))
    .await;
    let e = update_against(&j).await;
    assert!(matches!(e, PlacementError::Http { status: 401, .. }), "{e}");
    // No retry on 401 with a fixed token.
    assert_eq!(j.hits.load(Ordering::SeqCst), 2);

    let big = "x".repeat(64 * 1024);
    let j = junk_server(move |_, _| http("200 OK", "application/json", &big)).await;
    let settings = ClientSettings {
        max_body: 1024,
        ..fast_settings()
    };
    let e = Reporter::new(client_with(&j.url, settings), ReportSettings::default())
        .update(&host("big"), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");

    // Content-Length says more than arrives.
    let j =
        junk_server(|_, _| b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"vers".to_vec()).await;
    let e = update_against(&j).await;
    assert!(matches!(e, PlacementError::Unreachable { .. }), "{e}");
}

#[tokio::test]
async fn inventory_put_conflicts_from_a_broken_server_end_in_a_clear_error() {
    // A server that always claims a generation conflict: bounded redrives.
    let j = junk_server(root_then(|m, p| {
        if p.starts_with("/resource_providers?in_tree=") {
            http("200 OK", "application/json", r#"{"resource_providers": []}"#)
        } else if m == "POST" {
            http("200 OK", "application/json", r#"{"uuid": "00000000-0000-0000-0000-000000000001", "name": "n", "generation": 0}"#)
        } else {
            http("409 Conflict", "application/json", r#"{"errors": [{"status": 409, "code": "placement.concurrent_update", "detail": "generation conflict"}]}"#)
        }
    }))
    .await;
    let e = update_against(&j).await;
    assert!(
        matches!(e, PlacementError::GenerationConflict { attempts: 4, .. }),
        "{e}"
    );
}
