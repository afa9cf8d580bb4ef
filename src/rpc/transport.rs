//! Connections to RabbitMQ from an oslo `transport_url`, with oslo's
//! failover over several hosts, reconnect backoff, heartbeats and TLS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use super::options::RabbitOptions;

/// Transport errors.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid transport_url {url:?}: {what}")]
    Url { url: String, what: String },
    #[error("unsupported [oslo_messaging_rabbit] {option}: {what}")]
    Option { option: &'static str, what: String },
    #[error("cannot read {option} {path:?}: {source}")]
    TlsFile {
        option: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to any RabbitMQ host ({hosts}): {last}")]
    Connect { hosts: String, last: String },
    #[error("no async runtime for lapin: {0}")]
    Runtime(String),
    #[error("stopped while connecting")]
    Stopped,
}

/// One broker of a transport URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerHost {
    pub username: String,
    pub password: String,
    pub host: String,
    pub port: u16,
}

/// A parsed `rabbit://user:pass@host:port[,user:pass@host2:port]/vhost?opts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportUrl {
    pub hosts: Vec<BrokerHost>,
    /// Virtual host; an empty path means `/` (kombu's default).
    pub vhost: String,
    /// `ssl=1` in the query enables TLS as `[oslo_messaging_rabbit] ssl` does.
    pub ssl: Option<bool>,
}

fn pct_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("bad escape in {s:?}"))?;
            let b =
                u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape %{hex} in {s:?}"))?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

impl TransportUrl {
    /// Parse an oslo transport URL (`rabbit://` or `amqp://`).
    pub fn parse(url: &str) -> Result<Self, TransportError> {
        let bad = |what: &str| TransportError::Url {
            url: redact(url),
            what: what.to_string(),
        };
        let rest = url
            .strip_prefix("rabbit://")
            .or_else(|| url.strip_prefix("amqp://"))
            .ok_or_else(|| bad("only rabbit:// (or amqp://) transports are supported"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (netloc, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if netloc.is_empty() {
            return Err(bad("no host"));
        }
        let mut hosts = Vec::new();
        let (mut last_user, mut last_pass) = ("guest".to_string(), "guest".to_string());
        for entry in netloc.split(',') {
            let (creds, hostport) = match entry.rsplit_once('@') {
                Some((c, h)) => (Some(c), h),
                None => (None, entry),
            };
            if let Some(c) = creds {
                let (u, p) = c.split_once(':').unwrap_or((c, ""));
                last_user = pct_decode(u).map_err(|e| bad(&e))?;
                last_pass = pct_decode(p).map_err(|e| bad(&e))?;
            }
            let (host, port) = split_host_port(hostport).map_err(|e| bad(&e))?;
            hosts.push(BrokerHost {
                username: last_user.clone(),
                password: last_pass.clone(),
                host,
                port,
            });
        }
        let vhost = pct_decode(path).map_err(|e| bad(&e))?;
        let vhost = if vhost.is_empty() {
            "/".to_string()
        } else {
            vhost
        };
        let mut ssl = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "ssl" {
                ssl = Some(matches!(
                    v.to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                ));
            }
        }
        Ok(Self { hosts, vhost, ssl })
    }
}

fn split_host_port(hp: &str) -> Result<(String, u16), String> {
    if hp.is_empty() {
        return Err("empty host".into());
    }
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed [ in IPv6 host")?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hp.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        None | Some("") => 5672,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("port {p:?} is not a number"))?,
    };
    Ok((host, port))
}

/// A URL with passwords replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    let mut out = String::new();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    out.push_str(scheme);
    out.push_str("://");
    let (netloc, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let parts: Vec<String> = netloc
        .split(',')
        .map(|e| match e.rsplit_once('@') {
            Some((c, h)) => format!("{}:***@{h}", c.split(':').next().unwrap_or("")),
            None => e.to_string(),
        })
        .collect();
    out.push_str(&parts.join(","));
    out.push_str(tail);
    out
}

/// oslo/kombu reconnect delays: `rabbit_retry_interval`, then
/// `+ rabbit_retry_backoff` per attempt, at most `rabbit_interval_max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    start: u64,
    step: u64,
    max: u64,
    attempt: u64,
}

impl Backoff {
    /// From the `[oslo_messaging_rabbit]` options.
    pub fn new(opts: &RabbitOptions) -> Self {
        Self {
            start: opts.rabbit_retry_interval.max(1),
            step: opts.rabbit_retry_backoff,
            max: opts.rabbit_interval_max.max(1),
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let secs = self
            .start
            .saturating_add(self.step.saturating_mul(self.attempt))
            .min(self.max);
        self.attempt += 1;
        Duration::from_secs(secs)
    }

    /// Start over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Check options novakvm cannot honour; errors name the option.
pub fn check_options(opts: &RabbitOptions) -> Result<(), TransportError> {
    let bad = |option, what: &str| TransportError::Option {
        option,
        what: what.to_string(),
    };
    if opts.rabbit_stream_fanout {
        return Err(bad(
            "rabbit_stream_fanout",
            "stream fanout queues are not supported",
        ));
    }
    if opts.use_queue_manager {
        return Err(bad(
            "use_queue_manager",
            "the oslo queue manager (/dev/shm counters) is not supported",
        ));
    }
    if opts.rabbit_quorum_queue && opts.rabbit_ha_queues {
        return Err(bad(
            "rabbit_quorum_queue",
            "rabbit_quorum_queue and rabbit_ha_queues both enabled, queue type is quorum or HA (mirrored) not both",
        ));
    }
    if opts.heartbeat_timeout_threshold > u64::from(u16::MAX) {
        return Err(bad("heartbeat_timeout_threshold", "must fit in 16 bits"));
    }
    match opts.ssl_version.as_deref() {
        None | Some("") | Some("TLSv1_2") | Some("TLSv1_3") | Some("PROTOCOL_TLS") => {}
        Some(v) => {
            return Err(TransportError::Option {
                option: "ssl_version",
                what: format!("{v:?} is not supported (rustls: TLSv1_2 or TLSv1_3)"),
            })
        }
    }
    if opts.ssl_cert_file.is_some() != opts.ssl_key_file.is_some() {
        return Err(bad(
            "ssl_cert_file",
            "ssl_cert_file and ssl_key_file must be given together",
        ));
    }
    Ok(())
}

/// A RabbitMQ transport: where and how to connect.
#[derive(Debug)]
pub struct Transport {
    url: TransportUrl,
    opts: RabbitOptions,
    tls: bool,
    next_host: AtomicUsize,
    name: String,
}

impl Transport {
    /// Parse `transport_url` and check the options.
    pub fn new(transport_url: &str, opts: RabbitOptions) -> Result<Self, TransportError> {
        check_options(&opts)?;
        let url = TransportUrl::parse(transport_url)?;
        let tls = url.ssl.unwrap_or(opts.ssl);
        Ok(Self {
            url,
            opts,
            tls,
            next_host: AtomicUsize::new(0),
            name: "novakvm".to_string(),
        })
    }

    /// The connection name shown by `rabbitmqctl list_connections`
    /// (suffixed with `:<pid>:<uuid>` as oslo does).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The driver options.
    pub fn options(&self) -> &RabbitOptions {
        &self.opts
    }

    /// The parsed URL.
    pub fn url(&self) -> &TransportUrl {
        &self.url
    }

    fn tls_config(&self) -> Result<OwnedTLSConfig, TransportError> {
        let read = |option: &'static str, path: &str| {
            std::fs::read(path).map_err(|source| TransportError::TlsFile {
                option,
                path: path.to_string(),
                source,
            })
        };
        let cert_chain = match &self.opts.ssl_ca_file {
            Some(p) => Some(String::from_utf8_lossy(&read("ssl_ca_file", p)?).into_owned()),
            None => None,
        };
        let identity = match (&self.opts.ssl_cert_file, &self.opts.ssl_key_file) {
            (Some(c), Some(k)) => Some(OwnedIdentity::PKCS8 {
                pem: read("ssl_cert_file", c)?,
                key: read("ssl_key_file", k)?,
            }),
            _ => None,
        };
        Ok(OwnedTLSConfig {
            identity,
            cert_chain,
        })
    }

    fn amqp_uri(&self, h: &BrokerHost) -> AMQPUri {
        AMQPUri {
            scheme: if self.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: h.username.clone(),
                    password: h.password.clone(),
                },
                host: h.host.clone(),
                port: h.port,
            },
            vhost: self.url.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: Some(self.opts.heartbeat_timeout_threshold as u16),
                connection_timeout: Some(10_000),
                ..Default::default()
            },
        }
    }

    /// Try each host once, starting after the last one that worked (oslo's
    /// round-robin failover).
    pub async fn connect_once(&self) -> Result<Connection, TransportError> {
        let tls = if self.tls {
            Some(self.tls_config()?)
        } else {
            None
        };
        let n = self.url.hosts.len();
        let first = self.next_host.load(Ordering::Relaxed);
        let mut last = String::from("no hosts");
        for i in 0..n {
            let idx = (first + i) % n;
            let h = &self.url.hosts[idx];
            let props = ConnectionProperties::default().with_connection_name(
                format!(
                    "{}:{}:{}",
                    self.name,
                    std::process::id(),
                    uuid::Uuid::new_v4()
                )
                .into(),
            );
            let runtime = lapin::runtime::default_runtime()
                .map_err(|e| TransportError::Runtime(e.to_string()))?;
            let uri = self.amqp_uri(h);
            let res = Connection::connect_uri_with_config(
                uri,
                props,
                tls.clone().unwrap_or_default(),
                runtime,
            )
            .await;
            match res {
                Ok(conn) => {
                    self.next_host.store(idx, Ordering::Relaxed);
                    tracing::info!(host = %h.host, port = h.port, vhost = %self.url.vhost, "connected to RabbitMQ");
                    return Ok(conn);
                }
                Err(e) => {
                    tracing::warn!(host = %h.host, port = h.port, error = %e, "cannot connect to RabbitMQ");
                    last = format!("{}:{}: {e}", h.host, h.port);
                }
            }
        }
        self.next_host
            .store((first + 1) % n.max(1), Ordering::Relaxed);
        Err(TransportError::Connect {
            hosts: self
                .url
                .hosts
                .iter()
                .map(|h| format!("{}:{}", h.host, h.port))
                .collect::<Vec<_>>()
                .join(","),
            last,
        })
    }

    /// Connect, retrying with oslo's backoff until it works or `stop` fires.
    pub async fn connect(&self, stop: &CancellationToken) -> Result<Connection, TransportError> {
        let mut backoff = Backoff::new(&self.opts);
        loop {
            match self.connect_once().await {
                Ok(c) => return Ok(c),
                Err(e @ (TransportError::TlsFile { .. } | TransportError::Runtime(_))) => {
                    return Err(e)
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::error!(error = %e, retry_in = ?delay, "AMQP server unreachable, retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Err(TransportError::Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

/// Queue arguments as oslo's `_get_queue_arguments` builds them.
pub fn queue_arguments(opts: &RabbitOptions, ttl_secs: u64, quorum: bool) -> FieldTable {
    let mut args = FieldTable::default();
    if opts.rabbit_ha_queues {
        args.insert("x-ha-policy".into(), AMQPValue::LongString("all".into()));
    }
    if quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        if opts.rabbit_quorum_delivery_limit > 0 {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(opts.rabbit_quorum_delivery_limit as i64),
            );
        }
        if opts.rabbit_quorum_max_memory_length > 0 {
            args.insert(
                "x-max-in-memory-length".into(),
                AMQPValue::LongLongInt(opts.rabbit_quorum_max_memory_length as i64),
            );
        }
        if opts.rabbit_quorum_max_memory_bytes > 0 {
            args.insert(
                "x-max-in-memory-bytes".into(),
                AMQPValue::LongLongInt(opts.rabbit_quorum_max_memory_bytes as i64),
            );
        }
    }
    if ttl_secs > 0 {
        args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt((ttl_secs * 1000) as i64),
        );
    }
    args
}

/// The AMQP properties kombu gives every oslo message: priority 0,
/// persistent, empty headers, `application/json` in `utf-8`; calls also
/// carry `expiration` (the call timeout in milliseconds).
pub fn message_properties(expiration_ms: Option<u64>) -> BasicProperties {
    let p = BasicProperties::default()
        .with_priority(0)
        .with_delivery_mode(2)
        .with_headers(FieldTable::default())
        .with_content_encoding(ShortString::from("utf-8"))
        .with_content_type(ShortString::from("application/json"));
    match expiration_ms {
        Some(ms) => p.with_expiration(ShortString::from(ms.to_string())),
        None => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_urls() {
        let u = TransportUrl::parse("rabbit://guest:guest@127.0.0.1:5672/").unwrap();
        assert_eq!(u.vhost, "/");
        assert_eq!(u.hosts.len(), 1);
        assert_eq!(u.hosts[0].port, 5672);
        let u = TransportUrl::parse("rabbit://a:p%40ss@h1:5671,b:q@h2,[::1]:5673/nova%2Fvh?ssl=1")
            .unwrap();
        assert_eq!(u.hosts[0].password, "p@ss");
        assert_eq!(u.hosts[1].username, "b");
        assert_eq!(u.hosts[1].port, 5672);
        assert_eq!(u.hosts[2].host, "::1");
        assert_eq!(u.hosts[2].username, "b");
        assert_eq!(u.vhost, "nova/vh");
        assert_eq!(u.ssl, Some(true));
    }

    #[test]
    fn garbage_urls_rejected() {
        for bad in [
            "",
            "http://x",
            "rabbit://",
            "rabbit://u:p@/",
            "rabbit://h:notaport/",
            "rabbit://h:99999/",
            "rabbit://[::1/",
            "rabbit://h/%zz",
            "rabbit://u%ff:p@h/",
        ] {
            assert!(TransportUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("rabbit://u:secret@h:1,v:x@g/vh"),
            "rabbit://u:***@h:1,v:***@g/vh"
        );
    }

    #[test]
    fn backoff_like_kombu() {
        let mut b = Backoff::new(&RabbitOptions::default());
        let d: Vec<u64> = (0..20).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(&d[..4], &[1, 3, 5, 7]);
        assert_eq!(d[19], 30);
    }

    #[test]
    fn unsupported_options_rejected() {
        let mut o = RabbitOptions {
            rabbit_stream_fanout: true,
            ..Default::default()
        };
        assert!(check_options(&o).is_err());
        o.rabbit_stream_fanout = false;
        o.rabbit_quorum_queue = true;
        o.rabbit_ha_queues = true;
        assert!(check_options(&o).is_err());
        o.rabbit_ha_queues = false;
        assert!(check_options(&o).is_ok());
        o.ssl_version = Some("SSLv3".into());
        assert!(check_options(&o).is_err());
    }

    #[test]
    fn default_queue_arguments() {
        let a = queue_arguments(&RabbitOptions::default(), 1800, false);
        assert_eq!(a.inner().len(), 1);
        assert_eq!(
            a.inner().get(&ShortString::from("x-expires")),
            Some(&AMQPValue::LongLongInt(1_800_000))
        );
    }
}
