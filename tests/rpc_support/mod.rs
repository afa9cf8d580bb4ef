//! Shared helpers of the RPC integration tests: real RabbitMQ on
//! 127.0.0.1:5672 and the real Python oslo.messaging from `.venv`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use novakvm::rpc::{Dispatcher, RabbitOptions, RpcServer, ServerConfig, Transport};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const URL: &str = "rabbit://guest:guest@127.0.0.1:5672/";

/// The repo root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Python with oslo.messaging 18.3.1: `NOVAKVM_PYTHON` or `<repo>/.venv/bin/python`.
pub fn python() -> PathBuf {
    let p = std::env::var_os("NOVAKVM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "no Python with oslo.messaging at {}: run scripts/python-env first (or set NOVAKVM_PYTHON)",
        p.display()
    );
    p
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NOVAKVM_TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn transport(url: &str, opts: RabbitOptions) -> Arc<Transport> {
    Arc::new(Transport::new(url, opts).expect("transport"))
}

/// A running server of ours.
pub struct OurServer {
    pub server: Arc<RpcServer>,
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
    url: String,
    cfg: ServerConfig,
}

impl OurServer {
    pub async fn start(
        url: &str,
        opts: RabbitOptions,
        cfg: ServerConfig,
        dispatcher: Dispatcher,
    ) -> Self {
        let server = Arc::new(
            RpcServer::new(transport(url, opts), cfg.clone(), dispatcher).expect("server"),
        );
        let mut ready = server.ready();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (server, stop) = (server.clone(), stop.clone());
            async move {
                server.run(stop).await.expect("server run");
            }
        });
        tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|n| *n > 0))
            .await
            .expect("server ready in time")
            .expect("ready channel");
        Self {
            server,
            stop,
            task,
            url: url.to_string(),
            cfg,
        }
    }

    /// Stop, then delete the test's topic queues (they have no expiry, as
    /// nova's) and its exchange unless it is `nova`.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        let Ok(conn) = transport(&self.url, RabbitOptions::default())
            .connect_once()
            .await
        else {
            return;
        };
        if let Ok(ch) = conn.create_channel().await {
            for t in &self.cfg.topics {
                for q in [t.clone(), format!("{t}.{}", self.cfg.server)] {
                    let _ = ch
                        .queue_delete(
                            q.as_str().into(),
                            lapin::options::QueueDeleteOptions::default(),
                        )
                        .await;
                }
            }
            if self.cfg.exchange != "nova" {
                let _ = ch
                    .exchange_delete(
                        self.cfg.exchange.as_str().into(),
                        lapin::options::ExchangeDeleteOptions::default(),
                    )
                    .await;
            }
        }
        let _ = conn.close(200, "bye".into()).await;
    }
}

/// Run the Python oslo client on `ops` and return one JSON value per op.
pub fn py_client(url: &str, ops: &Value) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(repo().join("tests/python/oslo_peer.py"))
        .args(["client", "--url", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ops.to_string().as_bytes())
        .expect("write ops");
    let out = child.wait_with_output().expect("python client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let res: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(
        res.len(),
        ops.as_array().map(Vec::len).unwrap_or(0),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    res
}

/// Async wrapper of [`py_client`].
pub async fn py_client_async(url: &str, ops: Value) -> Vec<Value> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || py_client(&url, &ops))
        .await
        .expect("join")
}

/// A Python oslo RPC server (tests/python/oslo_peer.py server).
pub struct PyServer {
    child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl PyServer {
    pub fn start(url: &str, topic: &str, server: &str) -> Self {
        let mut child = Command::new(python())
            .arg(repo().join("tests/python/oslo_peer.py"))
            .args(["server", "--url", url, "--topic", topic, "--server", server])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("python server READY");
        assert_eq!(first, "READY");
        Self { child, lines: rx }
    }

    /// Next stdout line as JSON.
    pub fn next_json(&self, timeout: Duration) -> Option<Value> {
        self.lines
            .recv_timeout(timeout)
            .ok()
            .and_then(|l| serde_json::from_str(&l).ok())
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rabbitmqctl list_queues name durable auto_delete arguments` rows whose name contains `needle`.
pub fn list_queues(needle: &str) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_queues",
            "name",
            "durable",
            "auto_delete",
            "arguments",
        ])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// `rabbitmqctl list_exchanges name type durable auto_delete` rows containing `needle`.
pub fn list_exchanges(needle: &str) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_exchanges",
            "name",
            "type",
            "durable",
            "auto_delete",
        ])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// `rabbitmqctl list_bindings source_name destination_name routing_key` rows containing `needle`.
pub fn list_bindings(needle: &str) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_bindings",
            "source_name",
            "destination_name",
            "routing_key",
        ])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Delete queues (topic queues of Python servers have no expiry).
pub async fn delete_queues(url: &str, names: &[String]) {
    let Ok(conn) = transport(url, RabbitOptions::default())
        .connect_once()
        .await
    else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        for q in names {
            let _ = ch
                .queue_delete(
                    q.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await;
        }
    }
    let _ = conn.close(200, "bye".into()).await;
}
