//! Our RPC server against the real Python oslo.messaging 18.3.1 client.

mod rpc_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use novakvm::rpc::envelope;
use novakvm::rpc::{
    BaseRpcEndpoint, CallOptions, ClientError, Dispatcher, Endpoint, RabbitOptions, RemoteFailure,
    RequestContext, RpcClient, ServerConfig, Target,
};
use rpc_support::*;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

type Records = mpsc::UnboundedSender<(RequestContext, Map<String, Value>)>;

fn test_endpoint(records: Records) -> Endpoint {
    Endpoint::new(None, "1.3")
        .unwrap()
        .method("echo", |_ctx, args| async move { Ok(Value::Object(args)) })
        .method("noop", |_ctx, _args| async move { Ok(Value::Null) })
        .method("fail", |_ctx, args| async move {
            Err(RemoteFailure::new(
                "nova.exception",
                "InstanceNotFound",
                format!(
                    "Instance {} could not be found.",
                    args.get("id").and_then(Value::as_str).unwrap_or("?")
                ),
            )
            .with_kwarg("code", json!(404))
            .with_kwarg(
                "instance_id",
                args.get("id").cloned().unwrap_or(Value::Null),
            ))
        })
        .method("explode", |_ctx, _args| async move {
            if std::env::var("NOVAKVM_NEVER_SET_THIS").is_err() {
                panic!("handler exploded");
            }
            Ok(Value::Null)
        })
        .method("sleep", |_ctx, args| async move {
            let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!(ms))
        })
        .method("big", |_ctx, args| async move {
            let n = args.get("n").and_then(Value::as_u64).unwrap_or(0) as usize;
            Ok(Value::String("x".repeat(n)))
        })
        .method("record", move |ctx, args| {
            let records = records.clone();
            async move {
                let _ = records.send((ctx, args));
                Ok(Value::Null)
            }
        })
}

fn failure_of(raw_reply: &Value) -> RemoteFailure {
    let body = raw_reply["ok"].as_str().expect("a reply arrived");
    let msg = envelope::open(body.as_bytes()).expect("reply envelope");
    let reply = novakvm::rpc::Reply::from_message(msg).expect("reply");
    assert!(reply.ending);
    RemoteFailure::from_wire(reply.failure.as_deref().expect("failure")).expect("failure json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_and_casts_our_server() {
    init_tracing();
    let topic = unique("tcompute");
    let host = unique("thost");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::new()
        .with(Arc::new(BaseRpcEndpoint::new("compute")))
        .with(Arc::new(test_endpoint(tx)));
    let cfg = ServerConfig {
        exchange: "nova".into(),
        topics: vec![topic.clone(), format!("{topic}-alt")],
        server: host.clone(),
        max_concurrency: 8,
    };
    let srv = OurServer::start(URL, RabbitOptions::default(), cfg, dispatcher).await;
    let huge = "é".repeat(2_000_000);
    let call = |method: &str, args: Value, version: &str| json!({"op": "call", "topic": topic, "method": method, "args": args, "version": version, "timeout": 20});
    let mut ops = vec![
        json!({"op": "call", "topic": topic, "namespace": "baseapi", "method": "ping", "args": {"arg": "1.21 GigaWatts"}, "version": "1.0"}),
        call(
            "echo",
            json!({"a": 1, "u": "é€", "l": [1.5, null, true]}),
            "1.2",
        ),
        call("nope", json!({}), "1.0"),
        call("echo", json!({}), "1.4"),
        call("echo", json!({}), "2.0"),
        call("fail", json!({"id": "abc"}), "1.0"),
        call("explode", json!({}), "1.0"),
        call("big", json!({"n": 6_000_000}), "1.0"),
        call("echo", json!({"huge": huge}), "1.0"),
        json!({"op": "call", "topic": topic, "server": host, "method": "echo", "args": {"direct": true}, "version": "1.0"}),
        json!({"op": "call", "topic": format!("{topic}-alt"), "method": "echo", "args": {"alt": true}, "version": "1.3"}),
        json!({"op": "cast", "topic": topic, "method": "record", "args": {"n": 1}, "version": "1.0"}),
        json!({"op": "cast", "topic": topic, "fanout": true, "method": "record", "args": {"n": 2}, "version": "1.0"}),
        json!({"op": "cast", "topic": topic, "method": "nope", "args": {}, "version": "1.0"}),
    ];
    // Raw, malformed publishes through pika.
    let inner =
        |m: Value| json!({"oslo.version": "2.0", "oslo.message": m.to_string()}).to_string();
    ops.extend([
        json!({"op": "raw", "routing_key": topic, "body": "this is not json"}),
        json!({"op": "raw", "routing_key": topic, "body": "x".repeat(3 << 20)}),
        json!({"op": "raw", "routing_key": topic, "body": json!({"oslo.version": "9.0", "oslo.message": "{}"}).to_string()}),
        json!({"op": "raw", "routing_key": topic, "reply": true,
               "body": inner(json!({"args": {}, "_msg_id": "m1", "_reply_q": "@REPLY_Q@"}))}),
        json!({"op": "raw", "routing_key": topic, "reply": true,
               "body": inner(json!({"method": "echo", "args": [1], "_msg_id": "m2", "_reply_q": "@REPLY_Q@"}))}),
        json!({"op": "raw", "routing_key": topic, "reply": true,
               "body": inner(json!({"method": "echo", "version": "one", "_msg_id": "m3", "_reply_q": "@REPLY_Q@", "_context_roles": "admin"}))}),
        json!({"op": "call", "topic": topic, "namespace": "baseapi", "method": "ping", "args": {"arg": "still alive"}, "version": "1.1"}),
        // oslo's call monitor: 3.5 s handler, 2 s monitor: our heartbeats keep it alive.
        json!({"op": "call", "topic": topic, "method": "sleep", "args": {"ms": 3500}, "version": "1.0", "timeout": 30, "call_monitor_timeout": 2}),
    ]);
    let res = py_client_async(URL, Value::Array(ops)).await;

    assert_eq!(
        res[0],
        json!({"ok": {"service": "compute", "arg": "1.21 GigaWatts"}})
    );
    assert_eq!(
        res[1],
        json!({"ok": {"a": 1, "u": "é€", "l": [1.5, null, true]}})
    );
    let mro = |i: usize| {
        res[i]["error"]["mro"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(mro(2).contains(&json!("NoSuchMethod")), "{}", res[2]);
    assert!(res[2]["error"]["str"]
        .as_str()
        .unwrap()
        .starts_with("Endpoint does not support RPC method nope"));
    assert!(mro(3).contains(&json!("UnsupportedVersion")), "{}", res[3]);
    assert!(res[3]["error"]["str"]
        .as_str()
        .unwrap()
        .starts_with("Endpoint does not support RPC version 1.4. Attempted method: echo"));
    assert!(mro(4).contains(&json!("UnsupportedVersion")), "{}", res[4]);
    assert_eq!(res[5]["error"]["type"], "RemoteError", "{}", res[5]);
    assert_eq!(res[5]["error"]["exc_type"], "InstanceNotFound");
    assert_eq!(res[5]["error"]["value"], "Instance abc could not be found.");
    assert!(mro(6).contains(&json!("RuntimeError")), "{}", res[6]);
    assert!(res[6]["error"]["str"]
        .as_str()
        .unwrap()
        .contains("handler exploded"));
    assert_eq!(res[7]["ok"].as_str().map(str::len), Some(6_000_000));
    assert_eq!(
        res[8]["ok"]["huge"].as_str().map(|s| s.chars().count()),
        Some(2_000_000)
    );
    assert_eq!(res[9], json!({"ok": {"direct": true}}));
    assert_eq!(res[10], json!({"ok": {"alt": true}}));
    for (i, r) in res.iter().enumerate().take(17).skip(11) {
        assert_eq!(*r, json!({"ok": null}), "op {i}");
    }
    for (i, id) in [(17, "m1"), (18, "m2"), (19, "m3")] {
        let f = failure_of(&res[i]);
        assert_eq!(
            (f.module.as_str(), f.class.as_str()),
            ("builtins", "ValueError"),
            "{id}: {f:?}"
        );
        assert!(f.message.starts_with("malformed RPC message"), "{f:?}");
    }
    assert_eq!(
        res[20],
        json!({"ok": {"service": "compute", "arg": "still alive"}})
    );

    // Both casts arrived, with the caller's context (unknown keys kept).
    let mut got = Vec::new();
    for _ in 0..2 {
        let (ctx, args) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ctx.user_id.as_deref(), Some("u1"));
        assert_eq!(ctx.roles, vec!["admin"]);
        assert_eq!(ctx.extra.get("novakvm_extra"), Some(&json!({"k": [1, 2]})));
        got.push(args["n"].as_u64().unwrap());
    }
    got.sort();
    assert_eq!(got, vec![1, 2]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_matches_nova_compute() {
    init_tracing();
    let topic = unique("ttopo");
    let host = unique("thost");
    let cfg = ServerConfig {
        exchange: "nova".into(),
        topics: vec![topic.clone(), format!("{topic}-alt")],
        server: host.clone(),
        max_concurrency: 2,
    };
    let srv = OurServer::start(URL, RabbitOptions::default(), cfg, Dispatcher::new()).await;
    let fq = srv.server.fanout_queue(&topic).unwrap().to_string();
    let fq_alt = srv
        .server
        .fanout_queue(&format!("{topic}-alt"))
        .unwrap()
        .to_string();
    assert!(fq.starts_with(&format!("{topic}_fanout_")) && fq.len() == topic.len() + 8 + 32);
    let mut queues = tokio::task::spawn_blocking({
        let t = topic.clone();
        move || list_queues(&t)
    })
    .await
    .unwrap();
    queues.sort();
    let mut want = vec![
        format!("{topic}\tfalse\tfalse\t[]"),
        format!("{topic}-alt\tfalse\tfalse\t[]"),
        format!("{topic}-alt.{host}\tfalse\tfalse\t[]"),
        format!("{fq_alt}\tfalse\tfalse\t[{{\"x-expires\",1800000}}]"),
        format!("{topic}.{host}\tfalse\tfalse\t[]"),
        format!("{fq}\tfalse\tfalse\t[{{\"x-expires\",1800000}}]"),
    ];
    want.sort();
    assert_eq!(queues, want);
    let ex = list_exchanges(&topic);
    assert!(
        ex.contains(&format!("{topic}_fanout\tfanout\tfalse\ttrue")),
        "{ex:?}"
    );
    assert!(list_exchanges("nova").contains(&"nova\ttopic\tfalse\tfalse".to_string()));
    let b = list_bindings(&topic);
    for want in [
        format!("nova\t{topic}\t{topic}"),
        format!("nova\t{topic}.{host}\t{topic}.{host}"),
        format!("{topic}_fanout\t{fq}\t{topic}"),
        format!("{topic}-alt_fanout\t{fq_alt}\t{topic}-alt"),
    ] {
        assert!(b.contains(&want), "{want} not in {b:?}");
    }
    srv.stop().await;

    // Durable and quorum settings are honoured (own exchange: `nova` is not durable).
    let topic = unique("tdur");
    let opts = RabbitOptions {
        amqp_durable_queues: true,
        rabbit_transient_queues_ttl: 60,
        ..Default::default()
    };
    let cfg = ServerConfig {
        exchange: unique("novakvm-durable"),
        topics: vec![topic.clone()],
        server: "h".into(),
        max_concurrency: 1,
    };
    let srv = OurServer::start(URL, opts, cfg, Dispatcher::new()).await;
    let q = list_queues(&topic);
    assert!(q.contains(&format!("{topic}\ttrue\tfalse\t[]")), "{q:?}");
    assert!(
        q.iter()
            .any(|l| l.contains("_fanout_")
                && l.ends_with("\tfalse\tfalse\t[{\"x-expires\",60000}]")),
        "{q:?}"
    );
    srv.stop().await;

    let topic = unique("tquorum");
    let opts = RabbitOptions {
        rabbit_quorum_queue: true,
        amqp_auto_delete: false,
        ..Default::default()
    };
    let cfg = ServerConfig {
        exchange: unique("novakvm-quorum"),
        topics: vec![topic.clone()],
        server: "h".into(),
        max_concurrency: 1,
    };
    let srv = OurServer::start(URL, opts, cfg, Dispatcher::new()).await;
    let q = list_queues(&topic);
    assert!(
        q.contains(&format!(
            "{topic}\ttrue\tfalse\t[{{\"x-queue-type\",\"quorum\"}}]"
        )),
        "{q:?}"
    );
    srv.stop().await;

    // oslo's fallback: the exchange exists as non-durable, durable asked:
    // the server still starts, with non-durable queues; the client publishes.
    let topic = unique("tfallback");
    let exchange = unique("novakvm-nondurable");
    let conn = transport(URL, RabbitOptions::default())
        .connect_once()
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions::default(),
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap();
    let durable = RabbitOptions {
        amqp_durable_queues: true,
        ..Default::default()
    };
    let cfg = ServerConfig {
        exchange: exchange.clone(),
        topics: vec![topic.clone()],
        server: "h".into(),
        max_concurrency: 1,
    };
    let ep = Endpoint::new(None, "1.0")
        .unwrap()
        .method("echo", |_c, a| async move { Ok(Value::Object(a)) });
    let srv = OurServer::start(
        URL,
        durable.clone(),
        cfg,
        Dispatcher::new().with(Arc::new(ep)),
    )
    .await;
    let q = list_queues(&topic);
    assert!(q.contains(&format!("{topic}\tfalse\tfalse\t[]")), "{q:?}");
    let client = RpcClient::new(transport(URL, durable), &exchange);
    let r = client
        .call(
            &Target::new(&topic, "1.0"),
            &RequestContext::admin(),
            "echo",
            Map::new(),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r, json!({}));
    client.close().await;
    srv.stop().await;
    let _ = ch
        .exchange_delete(
            exchange.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    let _ = ch
        .queue_delete(
            topic.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
    let _ = conn.close(200, "bye".into()).await;

    // Stream fanout is refused with a clear error.
    let err = novakvm::rpc::Transport::new(
        URL,
        RabbitOptions {
            rabbit_stream_fanout: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("rabbit_stream_fanout"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_and_call_monitor_heartbeats() {
    init_tracing();
    let topic = unique("tconc");
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let ep = Endpoint::new(None, "1.0").unwrap().method("slow", {
        let (running, peak) = (running.clone(), peak.clone());
        move |_ctx, args| {
            let (running, peak) = (running.clone(), peak.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(300);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(json!(ms))
            }
        }
    });
    let cfg = ServerConfig {
        exchange: "nova".into(),
        topics: vec![topic.clone()],
        server: "h".into(),
        max_concurrency: 2,
    };
    let srv = OurServer::start(
        URL,
        RabbitOptions::default(),
        cfg,
        Dispatcher::new().with(Arc::new(ep)),
    )
    .await;
    let client = Arc::new(RpcClient::new(
        transport(URL, RabbitOptions::default()),
        "nova",
    ));
    let target = Target::new(&topic, "1.0");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (client, target) = (client.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            client
                .call(
                    &target,
                    &RequestContext::admin(),
                    "slow",
                    json!({"ms": 300}).as_object().cloned().unwrap(),
                    CallOptions::default(),
                )
                .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), json!(300));
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);

    // A 3.5 s handler with call_monitor_timeout 2: heartbeats keep the call alive.
    let opts = CallOptions {
        timeout: Duration::from_secs(20),
        call_monitor_timeout: Some(2),
    };
    let r = client
        .call(
            &target,
            &RequestContext::admin(),
            "slow",
            json!({"ms": 3500}).as_object().cloned().unwrap(),
            opts,
        )
        .await
        .unwrap();
    assert_eq!(r, json!(3500));
    // A short overall timeout still fires.
    let opts = CallOptions {
        timeout: Duration::from_secs(1),
        call_monitor_timeout: None,
    };
    let err = client
        .call(
            &target,
            &RequestContext::admin(),
            "slow",
            json!({"ms": 2500}).as_object().cloned().unwrap(),
            opts,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    client.close().await;
    srv.stop().await;
}
