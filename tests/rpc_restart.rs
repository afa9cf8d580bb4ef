//! Broker restart in the middle of a stream of casts: nothing the broker
//! confirmed is lost, nothing is handled twice, and the server carries on.
//! Runs its own RabbitMQ node (the shared one on 5672 is left alone).

mod rpc_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use novakvm::rpc::{
    CallOptions, Dispatcher, Endpoint, RabbitOptions, RequestContext, RpcClient, ServerConfig,
    Target, Transport,
};
use rpc_support::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private RabbitMQ node in a temporary directory.
struct PrivateRabbit {
    dir: tempfile::TempDir,
    node: String,
    port: u16,
    dist_port: u16,
    child: Option<Child>,
}

impl PrivateRabbit {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // rabbitmq-server drops to the rabbitmq user when started as root.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let (port, dist_port) = (free_port(), free_port());
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.path().join("rabbitmq-env.conf"), "").unwrap();
        let node = format!("{}@localhost", unique("novakvm-rpctest"));
        let mut r = Self {
            dir,
            node,
            port,
            dist_port,
            child: None,
        };
        r.start();
        r
    }

    fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    fn env(&self, cmd: &mut Command) {
        let d: &Path = self.dir.path();
        cmd.env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
    }

    fn start(&mut self) {
        let mut cmd = Command::new("rabbitmq-server");
        self.env(&mut cmd);
        cmd.current_dir(self.dir.path());
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server (apt-get install rabbitmq-server)");
        self.child = Some(child);
        // Ready when the AMQP listener accepts a real connection.
        let deadline = Instant::now() + Duration::from_secs(120);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = Transport::new(&self.url(), RabbitOptions::default()).unwrap();
        loop {
            if rt.block_on(t.connect_once()).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "private RabbitMQ did not start; logs in {:?}",
                self.dir.path()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn stop(&mut self) {
        let mut cmd = Command::new("rabbitmqctl");
        self.env(&mut cmd);
        let _ = cmd
            .args(["-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_no_confirmed_cast() {
    init_tracing();
    let mut rabbit = tokio::task::spawn_blocking(PrivateRabbit::new)
        .await
        .unwrap();
    let url = rabbit.url();
    let opts = RabbitOptions {
        amqp_durable_queues: true,
        rabbit_retry_interval: 1,
        rabbit_retry_backoff: 1,
        rabbit_interval_max: 2,
        heartbeat_timeout_threshold: 10,
        ..Default::default()
    };
    let topic = unique("trestart");
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let ep = Endpoint::new(None, "1.0")
        .unwrap()
        .method("record", move |_ctx, args| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(args.get("n").and_then(Value::as_u64).unwrap_or(u64::MAX));
                Ok(Value::Null)
            }
        })
        .method("echo", |_c, a| async move { Ok(Value::Object(a)) });
    let cfg = ServerConfig {
        exchange: "nova".into(),
        topics: vec![topic.clone()],
        server: "h".into(),
        max_concurrency: 4,
    };
    let srv = OurServer::start(
        &url,
        opts.clone(),
        cfg,
        Dispatcher::new().with(Arc::new(ep)),
    )
    .await;
    let client = Arc::new(RpcClient::new(transport(&url, opts.clone()), "nova"));

    const N: u64 = 300;
    let restarted = Arc::new(AtomicBool::new(false));
    let caster = tokio::spawn({
        let (client, topic, restarted) = (client.clone(), topic.clone(), restarted.clone());
        async move {
            let target = Target::new(&topic, "1.0");
            let mut confirmed = Vec::new();
            let mut after_restart = 0;
            for n in 0..N {
                let args = json!({"n": n}).as_object().cloned().unwrap();
                client
                    .cast(&target, &RequestContext::admin(), "record", args)
                    .await
                    .expect("cast confirmed");
                confirmed.push(n);
                if restarted.load(Ordering::SeqCst) {
                    after_restart += 1;
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            (confirmed, after_restart)
        }
    });
    // Let part of the stream through, then restart the broker.
    let mut received = BTreeSet::new();
    let mut duplicates = 0;
    while received.len() < 80 {
        let n = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if !received.insert(n) {
            duplicates += 1;
        }
    }
    rabbit = tokio::task::spawn_blocking(move || {
        rabbit.stop();
        std::thread::sleep(Duration::from_secs(1));
        rabbit.start();
        rabbit
    })
    .await
    .unwrap();
    restarted.store(true, Ordering::SeqCst);
    let (confirmed, after_restart) = tokio::time::timeout(Duration::from_secs(180), caster)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(confirmed.len() as u64, N);
    assert!(after_restart > 0, "the stream went on after the restart");
    let deadline = Instant::now() + Duration::from_secs(90);
    while received.len() < confirmed.len() && Instant::now() < deadline {
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            if !received.insert(n) {
                duplicates += 1;
            }
        }
    }
    let missing: Vec<_> = confirmed.iter().filter(|n| !received.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "lost {} confirmed casts: {missing:?}",
        missing.len()
    );
    assert_eq!(duplicates, 0, "a cast was handled twice");
    // The server answers calls after the restart.
    let r = client
        .call(
            &Target::new(&topic, "1.0"),
            &RequestContext::admin(),
            "echo",
            json!({"alive": true}).as_object().cloned().unwrap(),
            CallOptions {
                timeout: Duration::from_secs(30),
                call_monitor_timeout: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(r, json!({"alive": true}));
    client.close().await;
    srv.stop().await;
    tokio::task::spawn_blocking(move || drop(rabbit))
        .await
        .unwrap();
}
