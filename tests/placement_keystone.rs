//! Keystone v3 auth for Placement against a REAL Keystone (keystone 30 from
//! PyPI, tests/placement/start-keystone) and a REAL Placement with
//! `auth_strategy = keystone`: password and application-credential auth, the
//! Placement endpoint from the catalog (by valid_interfaces and region_name),
//! and a new token after a 401.

#[path = "placement/common.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{fast_settings, host};
use novakvm::config::KeystoneAuthOptions;
use novakvm::placement::{PlacementClient, PlacementError, ReportSettings, Reporter};
use serde_json::{json, Value};

const KEYSTONE_PORT: u16 = 18785;
const PLACEMENT_PORT: u16 = 18783;

fn run_script(name: &str, args: &[&str]) -> String {
    let script = format!("{}/tests/placement/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    if !out.status.success() {
        panic!(
            "{script} {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

async fn ks(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.header("X-Auth-Token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("keystone request");
    let status = resp.status().as_u16();
    let subject = resp
        .headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        subject,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn password_token(http: &reqwest::Client, auth: &str, user: &str, password: &str) -> String {
    let (st, tok, body) = ks(
        http,
        reqwest::Method::POST,
        &format!("{auth}/auth/tokens"),
        None,
        Some(json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    tok.expect("X-Subject-Token")
}

fn opts(auth: &str) -> KeystoneAuthOptions {
    KeystoneAuthOptions {
        auth_type: Some("password".into()),
        auth_url: Some(auth.to_string()),
        username: Some("novakvm".into()),
        password: Some("novakvm-secret".into()),
        user_domain_name: Some("Default".into()),
        project_name: Some("admin".into()),
        project_domain_name: Some("Default".into()),
        region_name: Some("RegionOne".into()),
        ..KeystoneAuthOptions::default()
    }
}

#[tokio::test]
async fn keystone_password_app_credential_catalog_and_401() {
    let pid = std::process::id().to_string();
    let (auth, placement) = tokio::task::spawn_blocking(move || {
        let auth = run_script(
            "start-keystone",
            &["--port", &KEYSTONE_PORT.to_string(), "--parent-pid", &pid],
        );
        let placement = run_script(
            "start-placement",
            &[
                "--port",
                &PLACEMENT_PORT.to_string(),
                "--fresh",
                "--parent-pid",
                &pid,
                "--keystone",
                &auth,
            ],
        );
        (auth, placement)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let admin = password_token(&http, &auth, "admin", "secret").await;
    let post = reqwest::Method::POST;

    // Placement in the catalog: internal is the real one; public and admin
    // point nowhere, so only a lookup honouring valid_interfaces works.
    let (st, _, svc) = ks(
        &http,
        post.clone(),
        &format!("{auth}/services"),
        Some(&admin),
        Some(json!({"service": {"type": "placement", "name": "placement"}})),
    )
    .await;
    assert_eq!(st, 201, "{svc}");
    let sid = svc["service"]["id"].as_str().unwrap().to_string();
    for (iface, url) in [
        ("internal", placement.as_str()),
        ("public", "http://127.0.0.1:9/nowhere"),
        ("admin", "http://127.0.0.1:9/nowhere"),
    ] {
        let (st, _, b) = ks(&http, post.clone(), &format!("{auth}/endpoints"), Some(&admin),
            Some(json!({"endpoint": {"service_id": sid, "interface": iface, "url": url, "region_id": "RegionOne"}}))).await;
        assert_eq!(st, 201, "{b}");
    }

    // A service user for novakvm with the admin role on project admin.
    let (_, _, projects) = ks(
        &http,
        reqwest::Method::GET,
        &format!("{auth}/projects?name=admin"),
        Some(&admin),
        None,
    )
    .await;
    let project = projects["projects"][0]["id"].as_str().unwrap().to_string();
    let (_, _, roles) = ks(
        &http,
        reqwest::Method::GET,
        &format!("{auth}/roles?name=admin"),
        Some(&admin),
        None,
    )
    .await;
    let role = roles["roles"][0]["id"].as_str().unwrap().to_string();
    let (st, _, user) = ks(&http, post.clone(), &format!("{auth}/users"), Some(&admin),
        Some(json!({"user": {"name": "novakvm", "password": "novakvm-secret", "domain_id": "default"}}))).await;
    assert_eq!(st, 201, "{user}");
    let uid = user["user"]["id"].as_str().unwrap().to_string();
    let (st, _, b) = ks(
        &http,
        reqwest::Method::PUT,
        &format!("{auth}/projects/{project}/users/{uid}/roles/{role}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, 204, "{b}");

    // Password auth, catalog lookup (internal first, RegionOne).
    let client = Arc::new(PlacementClient::from_options(&opts(&auth), fast_settings()).unwrap());
    let r = Reporter::new(client.clone(), ReportSettings::default());
    let mut h = host("keystone");
    assert!(r.update(&h, false).await.unwrap().created);

    // Revoke the user's tokens (disable, enable): Placement answers 401, the
    // client fetches a new token once and the update goes through.
    for enabled in [false, true] {
        let (st, _, b) = ks(
            &http,
            reqwest::Method::PATCH,
            &format!("{auth}/users/{uid}"),
            Some(&admin),
            Some(json!({"user": {"enabled": enabled}})),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.memory_mb += 1024;
    let before = client.requests_sent();
    let o = r.update(&h, false).await.unwrap();
    assert!(o.inventory_written);
    assert_eq!(
        client.requests_sent() - before,
        2,
        "expected a 401 and one retry with a new token"
    );

    // Application credential of that user.
    let user_token = password_token(&http, &auth, "novakvm", "novakvm-secret").await;
    let (st, _, ac) = ks(
        &http,
        post.clone(),
        &format!("{auth}/users/{uid}/application_credentials"),
        Some(&user_token),
        Some(json!({"application_credential": {"name": "novakvm-compute"}})),
    )
    .await;
    assert_eq!(st, 201, "{ac}");
    let ac_opts = KeystoneAuthOptions {
        auth_type: Some("v3applicationcredential".into()),
        auth_url: Some(auth.clone()),
        application_credential_id: ac["application_credential"]["id"]
            .as_str()
            .map(str::to_string),
        application_credential_secret: ac["application_credential"]["secret"]
            .as_str()
            .map(str::to_string),
        valid_interfaces: Some("internal".into()),
        ..KeystoneAuthOptions::default()
    };
    let r2 = Reporter::new(
        Arc::new(PlacementClient::from_options(&ac_opts, fast_settings()).unwrap()),
        ReportSettings::default(),
    );
    let o = r2.update(&h, false).await.unwrap();
    assert!(
        !o.created && !o.inventory_written && !o.traits_written,
        "{o:?}"
    );

    // Only the public interface: it points nowhere -> unreachable, clearly.
    let mut public = opts(&auth);
    public.valid_interfaces = Some("public".into());
    let e = Reporter::new(
        Arc::new(PlacementClient::from_options(&public, fast_settings()).unwrap()),
        ReportSettings::default(),
    )
    .update(&h, false)
    .await
    .unwrap_err();
    assert!(matches!(e, PlacementError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");

    // endpoint_override wins over the catalog.
    public.endpoint_override = Some(placement.clone());
    Reporter::new(
        Arc::new(PlacementClient::from_options(&public, fast_settings()).unwrap()),
        ReportSettings::default(),
    )
    .update(&h, false)
    .await
    .unwrap();

    // Wrong region, wrong password: clear auth errors.
    let mut wrong = opts(&auth);
    wrong.region_name = Some("RegionNine".into());
    let e = Reporter::new(
        Arc::new(PlacementClient::from_options(&wrong, fast_settings()).unwrap()),
        ReportSettings::default(),
    )
    .update(&h, false)
    .await
    .unwrap_err();
    assert!(matches!(e, PlacementError::Auth { .. }), "{e}");
    assert!(
        e.to_string().contains("no placement endpoint") && e.to_string().contains("RegionNine"),
        "{e}"
    );
    let mut wrong = opts(&auth);
    wrong.password = Some("nope".into());
    let e = Reporter::new(
        Arc::new(PlacementClient::from_options(&wrong, fast_settings()).unwrap()),
        ReportSettings::default(),
    )
    .update(&h, false)
    .await
    .unwrap_err();
    assert!(matches!(e, PlacementError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("HTTP 401"), "{e}");
}
