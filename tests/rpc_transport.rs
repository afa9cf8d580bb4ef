//! Transport against the real broker: failover, heartbeats, bad credentials,
//! TLS files.

mod rpc_support;

use novakvm::rpc::{RabbitOptions, Transport, TransportError};
use rpc_support::*;

fn dead_port() -> u16 {
    // Bound then released: nothing listens there.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn fails_over_to_the_next_host_with_heartbeats_on() {
    init_tracing();
    let url = format!(
        "rabbit://guest:guest@127.0.0.1:{},guest:guest@127.0.0.1:5672/",
        dead_port()
    );
    let opts = RabbitOptions {
        heartbeat_timeout_threshold: 17,
        ..Default::default()
    };
    let t = Transport::new(&url, opts).unwrap();
    let conn = t.connect_once().await.expect("second host used");
    assert_eq!(conn.configuration().heartbeat(), 17);
    assert!(conn.status().connected());
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test]
async fn clear_errors_for_bad_credentials_dead_hosts_and_tls_files() {
    init_tracing();
    let t = Transport::new(
        "rabbit://guest:wrong@127.0.0.1:5672/",
        RabbitOptions::default(),
    )
    .unwrap();
    let err = t.connect_once().await.unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(!err.to_string().contains("wrong"), "password leaked: {err}");

    let url = format!("rabbit://guest:guest@127.0.0.1:{}/", dead_port());
    let t = Transport::new(&url, RabbitOptions::default()).unwrap();
    let err = t.connect_once().await.unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");

    let opts = RabbitOptions {
        ssl: true,
        ssl_ca_file: Some("/nonexistent/ca.pem".into()),
        ..Default::default()
    };
    let t = Transport::new(URL, opts).unwrap();
    let err = t.connect_once().await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::TlsFile {
                option: "ssl_ca_file",
                ..
            }
        ),
        "{err}"
    );
    // connect() gives up at once on such errors instead of retrying forever.
    let stop = tokio_util::sync::CancellationToken::new();
    assert!(t.connect(&stop).await.is_err());

    // TLS to a plain AMQP port fails cleanly (no panic, no hang).
    let opts = RabbitOptions {
        ssl: true,
        ..Default::default()
    };
    let t = Transport::new(URL, opts).unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), t.connect_once()).await;
    assert!(
        matches!(r, Ok(Err(_))),
        "TLS against a plain port must fail"
    );

    for bad in ["", "kafka://h", "rabbit://h:port/", "rabbit://u:p@/vh"] {
        assert!(
            matches!(
                Transport::new(bad, RabbitOptions::default()),
                Err(TransportError::Url { .. })
            ),
            "{bad}"
        );
    }
}
