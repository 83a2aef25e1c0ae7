//! Prometheus metrics: TLS handshakes by key-exchange group, handshake failures,
//! KMS requests and their latency, and the process's resident memory.
//!
//! [`serve_metrics`] exposes them at `GET /metrics` on a separate plain-HTTP listener
//! (meant for 127.0.0.1 or an internal network, never the client-facing port).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Content type of the `/metrics` response.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a metrics client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ForwardLabels {
    peer: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    quota: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

/// Why a connection was shed: to make room at the connection cap, or to give
/// a file descriptor back after an accept failed for want of one.
pub const SHED_REASONS: &[&str] = &["at_cap", "out_of_fds"];
/// Limits that refuse a request before authentication: the request-bytes
/// budget (503) and the body-size limit (413).
pub const REFUSING_LIMITS: &[&str] = &["request_budget", "body_too_large"];
/// Where a client can be timed out: sending its header block, sending its
/// body, or holding a connection with no request in flight.
pub const TIMEOUT_STAGES: &[&str] = &["header", "body", "idle"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

fn request_duration_histogram() -> Histogram {
    // 0.25 ms … ~4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The node's metrics registry.
///
/// Label values should come from small fixed sets (group names, failure reasons, KMS
/// operation names, outcome codes); never pass client-chosen strings, which would
/// grow the registry without bound.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    handshakes: Family<GroupLabels, Counter>,
    handshake_failures: Family<ReasonLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    forwards: Family<ForwardLabels, Counter>,
    shed: Family<ReasonLabels, Counter>,
    refused_connections: Counter,
    refused_requests: Family<LimitLabels, Counter>,
    throttled: Family<QuotaLabels, Counter>,
    timeouts: Family<StageLabels, Counter>,
    heavy_refused: Family<ReasonLabels, Counter>,
}

impl Metrics {
    /// A registry with all keyfence metrics registered: the handshake counters at zero
    /// for every key-exchange group and failure reason, no request samples yet.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let handshakes = Family::<GroupLabels, Counter>::default();
        registry.register(
            "keyfence_tls_handshakes",
            "Completed TLS handshakes by negotiated key exchange group",
            handshakes.clone(),
        );
        let handshake_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "keyfence_tls_handshake_failures",
            "Failed or refused TLS handshakes by reason (classical_only, tls_error, timeout)",
            handshake_failures.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "keyfence_requests",
            "API requests by operation and outcome",
            requests.clone(),
        );
        let request_duration: Family<OperationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(request_duration_histogram);
        registry.register(
            "keyfence_request_duration_seconds",
            "API request latency in seconds by operation",
            request_duration.clone(),
        );
        let forwards = Family::<ForwardLabels, Counter>::default();
        registry.register(
            "keyfence_forwarded_requests",
            "Requests for keys fenced away from this node, forwarded by peer node and outcome (ok, or the error code; peer none when no satisfying node answered)",
            forwards.clone(),
        );
        let shed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "keyfence_connections_shed",
            "Idle connections closed by the node to make room: at the connection cap, or when an accept failed for want of file descriptors (reason at_cap, out_of_fds)",
            shed.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "keyfence_connections_refused",
            "New connections refused at the connection cap because every open connection had a request in flight",
            refused_connections.clone(),
        );
        let refused_requests = Family::<LimitLabels, Counter>::default();
        registry.register(
            "keyfence_requests_refused",
            "Requests refused before authentication by a limit (limit request_budget: 503 ThrottlingException; body_too_large: 413)",
            refused_requests.clone(),
        );
        let throttled = Family::<QuotaLabels, Counter>::default();
        registry.register(
            "keyfence_throttled_requests",
            "Requests refused with ThrottlingException because their account's request-rate quota was used up, by quota",
            throttled.clone(),
        );
        let timeouts = Family::<StageLabels, Counter>::default();
        registry.register(
            "keyfence_timeouts",
            "Clients timed out, by stage (header: the header block; body: the request body; idle: a connection with no request in flight)",
            timeouts.clone(),
        );
        let heavy_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "keyfence_heavy_requests_refused",
            "CPU-heavy requests (RSA and ML-DSA private keys, key pairs) refused with ThrottlingException by the heavy pool, by reason (queue_full, waited_too_long) or failed (failed: a panic, or shutting down)",
            heavy_refused.clone(),
        );
        for reason in SHED_REASONS {
            shed.get_or_create(&ReasonLabels {
                reason: (*reason).to_owned(),
            })
            .inc_by(0);
        }
        for limit in REFUSING_LIMITS {
            refused_requests
                .get_or_create(&LimitLabels {
                    limit: (*limit).to_owned(),
                })
                .inc_by(0);
        }
        for (quota, _) in crate::throttle::QUOTAS {
            throttled
                .get_or_create(&QuotaLabels {
                    quota: (*quota).to_owned(),
                })
                .inc_by(0);
        }
        for stage in TIMEOUT_STAGES {
            timeouts
                .get_or_create(&StageLabels {
                    stage: (*stage).to_owned(),
                })
                .inc_by(0);
        }
        registry.register_collector(Box::new(ProcessCollector));
        // Every group and failure reason exists from the start, at zero, so dashboards
        // and alerts see the series before the first handshake.
        for group in crate::tls::server_group_names() {
            handshakes
                .get_or_create(&GroupLabels {
                    group: group.to_owned(),
                })
                .inc_by(0);
        }
        for reason in crate::tls::TlsError::METRIC_REASONS {
            handshake_failures
                .get_or_create(&ReasonLabels {
                    reason: reason.to_owned(),
                })
                .inc_by(0);
        }
        Arc::new(Metrics {
            registry,
            handshakes,
            handshake_failures,
            requests,
            request_duration,
            forwards,
            shed,
            refused_connections,
            refused_requests,
            throttled,
            timeouts,
            heavy_refused,
        })
    }

    /// Counts a connection shed: `keyfence_connections_shed_total{reason}`,
    /// reason one of [`SHED_REASONS`].
    pub fn record_shed(&self, reason: &str) {
        self.shed
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a connection refused at the cap: `keyfence_connections_refused_total`.
    pub fn record_refused_connection(&self) {
        self.refused_connections.inc();
    }

    /// Counts a request refused by a limit before authentication:
    /// `keyfence_requests_refused_total{limit}`, limit one of [`REFUSING_LIMITS`].
    pub fn record_refused_request(&self, limit: &str) {
        self.refused_requests
            .get_or_create(&LimitLabels {
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// Counts a throttled request: `keyfence_throttled_requests_total{quota}`,
    /// quota a name from [`QUOTAS`](crate::throttle::QUOTAS).
    pub fn record_throttled(&self, quota: &str) {
        self.throttled
            .get_or_create(&QuotaLabels {
                quota: quota.to_owned(),
            })
            .inc();
    }

    /// Counts a heavy request refused: `keyfence_heavy_requests_refused_total{reason}`,
    /// reason from [`HeavyRefusal::reason`](crate::heavy::HeavyRefusal::reason).
    pub fn record_heavy_refused(&self, reason: &str) {
        self.heavy_refused
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a client timed out: `keyfence_timeouts_total{stage}`, stage one
    /// of [`TIMEOUT_STAGES`].
    pub fn record_timeout(&self, stage: &str) {
        self.timeouts
            .get_or_create(&StageLabels {
                stage: stage.to_owned(),
            })
            .inc();
    }

    /// Counts a completed handshake: `keyfence_tls_handshakes_total{group}`.
    pub fn record_handshake(&self, group: &str) {
        self.handshakes
            .get_or_create(&GroupLabels {
                group: group.to_owned(),
            })
            .inc();
    }

    /// Counts a failed handshake: `keyfence_tls_handshake_failures_total{reason}`, with
    /// reason `classical_only`, `tls_error` or `timeout` (see
    /// [`TlsError::metric_reason`](crate::tls::TlsError::metric_reason)).
    pub fn record_handshake_failure(&self, reason: &str) {
        self.handshake_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a request, `keyfence_requests_total{operation,outcome}`, and observes its
    /// latency in `keyfence_request_duration_seconds{operation}`.
    pub fn record_request(&self, operation: &str, outcome: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.request_duration
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts a forwarded request: `keyfence_forwarded_requests_total{peer,outcome}`
    /// (peer is a node name from the cluster store, a small operator-chosen set).
    pub fn record_forward(&self, peer: &str, outcome: &str) {
        self.forwards
            .get_or_create(&ForwardLabels {
                peer: peer.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The text exposition of every metric, including `process_resident_memory_bytes`
    /// read at this moment (Linux only).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String cannot fail; a collector error is logged, not served.
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Reports `process_resident_memory_bytes` at scrape time.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(bytes) = resident_memory_bytes() {
            let gauge = ConstGauge::new(bytes);
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// This process's resident set size from `/proc/self/status` (`VmRSS`, in kB), the same figure as
/// the resident pages of `/proc/self/statm` without needing the page size.
pub fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Serves `GET /metrics` (and `HEAD`) over plain HTTP/1.1 on `listener` until the
/// returned future is dropped; other paths get 404, other methods 405. Connection tasks
/// end with it.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving metrics at /metrics");
    }
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    connections.spawn(serve_connection(tcp, Arc::clone(&metrics)));
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(tcp: TcpStream, metrics: Arc<Metrics>) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let metrics = Arc::clone(&metrics);
        async move { Ok::<_, Infallible>(respond(&req, &metrics)) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "metrics connection ended with an error");
    }
}

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let mut resp = Response::new(Full::new(Bytes::from(metrics.encode())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    resp
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    fn populated() -> Arc<Metrics> {
        let m = Metrics::new();
        m.record_handshake("X25519MLKEM768");
        m.record_handshake("X25519MLKEM768");
        m.record_handshake("X25519");
        m.record_handshake_failure("classical_only");
        m.record_request("Encrypt", "ok", 0.002);
        m.record_request("Encrypt", "ok", 0.003);
        m.record_request("Decrypt", "InvalidCiphertextException", 0.5);
        m
    }

    #[test]
    fn handshake_counters_exist_at_zero_from_the_start() {
        let text = Metrics::new().encode();
        for group in [
            "X25519MLKEM768",
            "secp256r1MLKEM768",
            "X25519",
            "secp256r1",
            "secp384r1",
        ] {
            let series = format!(r#"keyfence_tls_handshakes_total{{group="{group}"}}"#);
            assert_eq!(sample(&text, &series), Some(0.0), "{series} in {text}");
        }
        for reason in ["classical_only", "timeout", "tls_error"] {
            let series = format!(r#"keyfence_tls_handshake_failures_total{{reason="{reason}"}}"#);
            assert_eq!(sample(&text, &series), Some(0.0), "{series} in {text}");
        }
    }

    #[test]
    fn limit_counters_exist_at_zero_from_the_start() {
        let text = Metrics::new().encode();
        let mut series: Vec<String> = SHED_REASONS
            .iter()
            .map(|r| format!(r#"keyfence_connections_shed_total{{reason="{r}"}}"#))
            .chain(
                REFUSING_LIMITS
                    .iter()
                    .map(|l| format!(r#"keyfence_requests_refused_total{{limit="{l}"}}"#)),
            )
            .chain(
                TIMEOUT_STAGES
                    .iter()
                    .map(|s| format!(r#"keyfence_timeouts_total{{stage="{s}"}}"#)),
            )
            .chain(
                crate::throttle::QUOTAS
                    .iter()
                    .map(|(q, _)| format!(r#"keyfence_throttled_requests_total{{quota="{q}"}}"#)),
            )
            .collect();
        series.push("keyfence_connections_refused_total".into());
        for s in series {
            assert_eq!(sample(&text, &s), Some(0.0), "{s} in {text}");
        }
        let m = Metrics::new();
        m.record_shed("at_cap");
        m.record_timeout("idle");
        m.record_refused_connection();
        let text = m.encode();
        assert_eq!(
            sample(&text, r#"keyfence_connections_shed_total{reason="at_cap"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"keyfence_timeouts_total{stage="idle"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "keyfence_connections_refused_total"),
            Some(1.0)
        );
    }

    #[test]
    fn encode_shows_labelled_counters_and_histograms() {
        let text = populated().encode();
        assert!(
            text.contains("# TYPE keyfence_tls_handshakes counter"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"keyfence_tls_handshakes_total{group="X25519MLKEM768"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"keyfence_tls_handshakes_total{group="X25519"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"keyfence_tls_handshake_failures_total{reason="classical_only"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"keyfence_requests_total{operation="Encrypt",outcome="ok"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"keyfence_requests_total{operation="Decrypt",outcome="InvalidCiphertextException"}"#
            ),
            Some(1.0)
        );
        assert!(text.contains("# TYPE keyfence_request_duration_seconds histogram"));
        assert_eq!(
            sample(
                &text,
                r#"keyfence_request_duration_seconds_count{operation="Encrypt"}"#
            ),
            Some(2.0)
        );
        let sum = sample(
            &text,
            r#"keyfence_request_duration_seconds_sum{operation="Encrypt"}"#,
        )
        .unwrap();
        assert!((sum - 0.005).abs() < 1e-9, "{sum}");
        assert_eq!(
            sample(
                &text,
                r#"keyfence_request_duration_seconds_bucket{le="+Inf",operation="Decrypt"}"#
            ),
            Some(1.0)
        );
        let rss = sample(&text, "process_resident_memory_bytes").expect("rss on Linux");
        assert!(rss > 1_000_000.0, "{rss}");
    }

    async fn http(addr: std::net::SocketAddr, request: &str) -> String {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let metrics = populated();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_metrics(listener, Arc::clone(&metrics)));

        let resp = http(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert_eq!(
            sample(
                body,
                r#"keyfence_tls_handshakes_total{group="X25519MLKEM768"}"#
            ),
            Some(2.0)
        );
        assert!(body.contains("process_resident_memory_bytes "));

        // Values are read at scrape time.
        metrics.record_handshake("X25519MLKEM768");
        let resp = http(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(
            sample(
                resp.split_once("\r\n\r\n").unwrap().1,
                r#"keyfence_tls_handshakes_total{group="X25519MLKEM768"}"#
            ),
            Some(3.0)
        );

        let resp = http(
            addr,
            "GET /other HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
        let resp = http(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
        let resp = http(addr, "garbage\r\n\r\n").await;
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 400"),
            "{resp}"
        );

        server.abort();
        assert!(server.await.unwrap_err().is_cancelled());
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }
}
