//! RPC round trip: our server vs a Python oslo.messaging 18.3.1 server, same
//! broker (127.0.0.1:5672), same run, same client (ours, Rust) for both.
//!
//!   scripts/python-env && cargo bench --bench rpc_roundtrip
//!
//! Env: RPC_BENCH_CALLS (sequential calls per server, default 2000),
//! RPC_BENCH_PARALLEL (in-flight calls for the throughput run, default 16).

#[path = "../tests/rpc_support/mod.rs"]
mod rpc_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use novakvm::rpc::{
    CallOptions, Dispatcher, Endpoint, RabbitOptions, RequestContext, RpcClient, ServerConfig,
    Target,
};
use rpc_support::*;
use serde_json::{Map, Value};

struct Stats {
    calls_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    parallel_calls_per_sec: f64,
}

async fn measure(client: Arc<RpcClient>, target: Target, calls: usize, parallel: usize) -> Stats {
    let ctx = RequestContext::admin();
    let opts = CallOptions {
        timeout: Duration::from_secs(30),
        call_monitor_timeout: None,
    };
    for _ in 0..100 {
        client
            .call(&target, &ctx, "noop", Map::new(), opts)
            .await
            .expect("warm-up call");
    }
    let mut lat = Vec::with_capacity(calls);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let r = client
            .call(&target, &ctx, "noop", Map::new(), opts)
            .await
            .expect("call");
        assert_eq!(r, Value::Null);
        lat.push(t.elapsed());
    }
    let seq = start.elapsed();
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (client, target, ctx) = (client.clone(), target.clone(), ctx.clone());
        let n = calls / parallel;
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                client
                    .call(&target, &ctx, "noop", Map::new(), opts)
                    .await
                    .expect("call");
            }
            n
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.expect("join");
    }
    let par = start.elapsed();
    Stats {
        calls_per_sec: calls as f64 / seq.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        parallel_calls_per_sec: done as f64 / par.as_secs_f64(),
    }
}

fn main() {
    let calls: usize = std::env::var("RPC_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let parallel: usize = std::env::var("RPC_BENCH_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let ours_topic = unique("bench-ours");
        let py_topic = unique("bench-py");
        let ep = Endpoint::new(None, "1.3")
            .expect("endpoint")
            .method("noop", |_c, _a| async move { Ok(Value::Null) });
        let cfg = ServerConfig {
            exchange: "nova".into(),
            topics: vec![ours_topic.clone()],
            server: "bench".into(),
            max_concurrency: 64,
        };
        let ours = OurServer::start(URL, RabbitOptions::default(), cfg, Dispatcher::new().with(Arc::new(ep))).await;
        let t = py_topic.clone();
        let py = tokio::task::spawn_blocking(move || PyServer::start(URL, &t, "bench")).await.expect("python server");
        let client = Arc::new(RpcClient::new(transport(URL, RabbitOptions::default()), "nova"));
        let a = measure(client.clone(), Target::new(&ours_topic, "1.3"), calls, parallel).await;
        let b = measure(client.clone(), Target::new(&py_topic, "1.3"), calls, parallel).await;
        println!("rpc_roundtrip: {calls} sequential no-op calls, then {parallel} in flight; client: novakvm RpcClient (Rust) for both");
        println!("{:<28} {:>12} {:>10} {:>10} {:>14}", "server", "calls/s", "p50 us", "p99 us", "parallel c/s");
        for (name, s) in [("novakvm (Rust)", &a), ("oslo.messaging 18.3.1 (Py)", &b)] {
            println!(
                "{:<28} {:>12.0} {:>10.0} {:>10.0} {:>14.0}",
                name, s.calls_per_sec, s.p50_us, s.p99_us, s.parallel_calls_per_sec
            );
        }
        println!(
            "ratios novakvm/oslo: calls/s x{:.2}, p50 x{:.2}, p99 x{:.2}, parallel calls/s x{:.2}",
            a.calls_per_sec / b.calls_per_sec,
            a.p50_us / b.p50_us,
            a.p99_us / b.p99_us,
            a.parallel_calls_per_sec / b.parallel_calls_per_sec
        );
        client.close().await;
        drop(py);
        ours.stop().await;
        delete_queues(URL, &[py_topic.clone(), format!("{py_topic}.bench")]).await;
    });
}
