//! Our RPC client against real Python oslo.messaging 18.3.1 servers.

mod rpc_support;

use std::time::Duration;

use novakvm::rpc::{CallOptions, ClientError, RabbitOptions, RequestContext, RpcClient, Target};
use rpc_support::*;
use serde_json::{json, Map, Value};

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_calls_and_casts_python_servers() {
    init_tracing();
    let topic = unique("tpy");
    let (a, b) = (unique("pya"), unique("pyb"));
    let (url, t, a2, b2) = (URL.to_string(), topic.clone(), a.clone(), b.clone());
    let (srv_a, srv_b) = tokio::task::spawn_blocking(move || {
        (
            PyServer::start(&url, &t, &a2),
            PyServer::start(&url, &t, &b2),
        )
    })
    .await
    .unwrap();
    let client = RpcClient::new(transport(URL, RabbitOptions::default()), "nova");
    let ctx = RequestContext {
        user_id: Some("u-rust".into()),
        project_id: Some("p-rust".into()),
        roles: vec!["reader".into()],
        ..RequestContext::admin()
    };
    let target = Target::new(&topic, "1.3");
    let opts = CallOptions {
        timeout: Duration::from_secs(20),
        call_monitor_timeout: None,
    };

    // Call: result comes back; unicode and nesting survive.
    let r = client
        .call(
            &target,
            &ctx,
            "echo",
            args(json!({"a": 1, "s": "é€😀", "n": [null, 1.5]})),
            opts,
        )
        .await
        .unwrap();
    assert_eq!(r, json!({"a": 1, "s": "é€😀", "n": [null, 1.5]}));
    assert!(client.reply_queue().unwrap().starts_with("reply_"));
    assert_eq!(client.reply_queue().unwrap().len(), 6 + 32);
    // A None result.
    assert_eq!(
        client
            .call(&target, &ctx, "noop", Map::new(), opts)
            .await
            .unwrap(),
        Value::Null
    );
    // Directed at one server.
    let r = client
        .call(
            &target.clone().server(&b),
            &ctx,
            "echo",
            args(json!({"to": "b"})),
            opts,
        )
        .await
        .unwrap();
    assert_eq!(r, json!({"to": "b"}));
    // Large payload both ways.
    let big = "z".repeat(4 << 20);
    let r = client
        .call(&target, &ctx, "echo", args(json!({"big": big})), opts)
        .await
        .unwrap();
    assert_eq!(r["big"].as_str().map(str::len), Some(4 << 20));

    // Remote exceptions come back typed.
    match client
        .call(&target, &ctx, "fail", args(json!({"msg": "boom"})), opts)
        .await
    {
        Err(ClientError::Remote(f)) => {
            assert_eq!(
                (f.module.as_str(), f.class.as_str(), f.message.as_str()),
                ("builtins", "ValueError", "boom")
            );
            assert_eq!(f.args, vec![json!("boom")]);
            assert!(f.tb.last().unwrap().starts_with("ValueError: boom"));
        }
        other => panic!("expected a remote ValueError, got {other:?}"),
    }
    match client.call(&target, &ctx, "nope", Map::new(), opts).await {
        Err(ClientError::Remote(f)) => {
            assert_eq!(
                (f.module.as_str(), f.class.as_str()),
                ("oslo_messaging.rpc.dispatcher", "NoSuchMethod")
            );
            // Same text as ours for the same error.
            assert_eq!(
                f.message,
                novakvm::rpc::RemoteFailure::no_such_method("nope").message
            );
        }
        other => panic!("expected NoSuchMethod, got {other:?}"),
    }
    match client
        .call(&Target::new(&topic, "1.9"), &ctx, "echo", Map::new(), opts)
        .await
    {
        Err(ClientError::Remote(f)) => {
            assert_eq!(f.class, "UnsupportedVersion");
            assert_eq!(
                f.message,
                novakvm::rpc::RemoteFailure::unsupported_version("1.9", Some("echo")).message
            );
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }

    // Cast to the topic: exactly one server records it, with our context.
    client
        .cast(&target, &ctx, "record", args(json!({"n": 1})))
        .await
        .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let ra = srv_a.next_json(Duration::from_millis(3000));
        let rb = srv_b.next_json(Duration::from_millis(500));
        (srv_a, srv_b, ra, rb)
    })
    .await
    .unwrap();
    let (srv_a, srv_b, ra, rb) = got;
    let rec = ra.or(rb.clone()).expect("cast recorded");
    assert_eq!(rec["record"], json!({"n": 1}));
    assert_eq!(rec["ctxt"]["user_id"], "u-rust");
    assert_eq!(rec["ctxt"]["roles"], json!(["reader"]));
    assert_eq!(rec["ctxt"]["is_admin"], true);

    // Fanout cast: both servers record it.
    client
        .cast(
            &target.clone().fanout(),
            &ctx,
            "record",
            args(json!({"n": 2})),
        )
        .await
        .unwrap();
    let (ra, rb) = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for s in [&srv_a, &srv_b] {
            while let Some(v) = s.next_json(Duration::from_secs(5)) {
                if v["record"]["n"] == 2 {
                    seen.push(v);
                    break;
                }
            }
        }
        (seen.first().cloned(), seen.get(1).cloned())
    })
    .await
    .unwrap();
    assert!(ra.is_some() && rb.is_some(), "fanout reached both servers");

    // Nobody listening: a timeout, not a hang.
    let short = CallOptions {
        timeout: Duration::from_secs(2),
        call_monitor_timeout: None,
    };
    let err = client
        .call(
            &Target::new(&unique("nobody"), "1.0"),
            &ctx,
            "echo",
            Map::new(),
            short,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    // Bad targets are refused before anything is sent.
    assert!(matches!(
        client
            .call(&Target::new("", "1.0"), &ctx, "x", Map::new(), short)
            .await,
        Err(ClientError::Target(_))
    ));
    assert!(matches!(
        client
            .cast(&Target::new("t", "v1"), &ctx, "x", Map::new())
            .await,
        Err(ClientError::Target(_))
    ));
    client.close().await;
    delete_queues(
        URL,
        &[
            topic.clone(),
            format!("{topic}.{a}"),
            format!("{topic}.{b}"),
        ],
    )
    .await;
}

/// Calls shaped as nova-compute sends them to nova-conductor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conductor_style_call_reaches_python() {
    init_tracing();
    let topic = unique("tcond");
    let (url, t) = (URL.to_string(), topic.clone());
    let srv = tokio::task::spawn_blocking(move || PyServer::start(&url, &t, "c1"))
        .await
        .unwrap();
    let client = RpcClient::new(transport(URL, RabbitOptions::default()), "nova");
    let a = args(json!({
        "objname": "Service", "objmethod": "get_minimum_version",
        "object_versions": {"Service": "1.22"}, "args": ["nova-compute"], "kwargs": {}
    }));
    // The Python endpoint has no object_class_action_versions: NoSuchMethod proves it was dispatched there.
    let err = client
        .call(
            &Target::new(&topic, "1.3"),
            &RequestContext::admin(),
            "object_class_action_versions",
            a,
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    match err {
        ClientError::Remote(f) => assert_eq!(f.class, "NoSuchMethod"),
        other => panic!("{other:?}"),
    }
    drop(srv);
    client.close().await;
    delete_queues(URL, &[topic.clone(), format!("{topic}.c1")]).await;
}

/// What our client publishes carries kombu's AMQP properties, as in the
/// nova-wire captures: priority 0, persistent, empty headers, JSON in
/// UTF-8, and on calls `expiration` = timeout in ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_properties_match_kombu() {
    use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};
    init_tracing();
    let topic = unique("tprops");
    let t = transport(URL, RabbitOptions::default());
    let conn = t.connect_once().await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "nova".into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongLongInt(60_000));
    ch.queue_declare(topic.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    ch.queue_bind(
        topic.as_str().into(),
        "nova".into(),
        topic.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let client = RpcClient::new(t.clone(), "nova");
    let ctx = RequestContext::admin();
    client
        .cast(&Target::new(&topic, "1.0"), &ctx, "c", Map::new())
        .await
        .unwrap();
    let opts = CallOptions {
        timeout: Duration::from_secs(10),
        call_monitor_timeout: None,
    };
    // Nobody answers: give up on the call long before its 10 s TTL ends, so the
    // published request is still in the queue (not expired) when we read it.
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        client.call(
            &Target::new(&topic, "1.0").namespace("baseapi"),
            &ctx,
            "ping",
            args_of(json!({"arg": "x"})),
            opts,
        ),
    )
    .await;
    let wire: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::PathBuf::from(std::env::var("NOVAKVM_NOVA_WIRE").unwrap_or_else(|_| {
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nova-wire").into()
            }))
            .join("0004-conductor-ping.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for (i, want_exp) in [(0, None), (1, Some("10000"))] {
        let m = ch
            .basic_get(topic.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("message {i} published"));
        let p = &m.delivery.properties;
        assert_eq!(p.priority(), &Some(0));
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(p.headers().as_ref().map(|h| h.inner().len()), Some(0));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(
            p.content_encoding().as_ref().map(|s| s.as_str()),
            Some("utf-8")
        );
        assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), want_exp);
        let msg = novakvm::rpc::envelope::open(&m.delivery.data).unwrap();
        if i == 1 {
            assert_eq!(wire["properties"]["expiration"], "10000");
            // Same keys in the same order as nova-compute's ping to the conductor.
            let theirs: Vec<&String> = wire["message"].as_object().unwrap().keys().collect();
            let ours: Vec<&String> = msg.keys().collect();
            assert_eq!(ours, theirs);
        }
    }
    client.close().await;
    let _ = conn.close(200, "bye".into()).await;
    delete_queues(URL, &[topic]).await;
}

fn args_of(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}
