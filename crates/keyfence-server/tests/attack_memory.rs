//! Memory pinned by unauthenticated HTTP/2 clients: many connections, many
//! streams, each promising a 128 KiB body and sending half of it. The request
//! budget, the stream cap and the flow-control windows bound what the node
//! holds; requests beyond the budget are refused with 503 ThrottlingException.
//!
//! Alone in its own test binary so the process's resident memory is this
//! test's (node and attacker in one process; the attacker's bodies share one
//! buffer). After the attack the node gives the freed memory back
//! (`limits::trim_after_load`): resident memory returns near where it was.

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyfence_server::limits::Limits;
use keyfence_server::tls::ClientGroups;
use rustls::pki_types::ServerName;
use serde_json::json;
use support::{scrape, start_node_with, Client, Signer};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Connections the attacker opens.
const CONNECTIONS: usize = 24;
/// Streams the attacker opens on each (the node allows 32 at once).
const STREAMS: usize = 64;
/// Budget of buffered request bytes in this test.
const BUDGET: usize = 4 * 1024 * 1024;
/// Bound on the growth of resident memory while under attack. Without the
/// budget and window limits the same attack holds 24 × 64 × 64 KiB = 96 MiB
/// of bodies alone.
const RSS_GROWTH_BOUND: u64 = 40 * 1024 * 1024;
/// Bound on resident memory after the attack, over what it was before: the
/// node keeps its caches and thread stacks, and gives the rest back. (Measured:
/// +3 MiB with the trim, +21 MiB without it, i.e. the peak.)
const RSS_AFTER_BOUND: u64 = 8 * 1024 * 1024;
/// How often the node in this test gives freed memory back.
const TRIM_INTERVAL: Duration = Duration::from_millis(250);

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series}"))
}

/// A body that sends one chunk and then never finishes.
struct Stalled(Option<Bytes>);

impl Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_http2_streams_do_not_pin_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(
        &dir.path().join("data"),
        false,
        Limits {
            request_bytes_budget: BUDGET,
            budget_wait: Duration::from_millis(500),
            body_read_timeout: Duration::from_secs(3),
            memory_trim_interval: TRIM_INTERVAL,
            ..Limits::default()
        },
    )
    .await;
    let client = Client::new(&node, ClientGroups::Default);
    let signer = Signer::of(&node);
    assert_eq!(client.kms(&signer, "ListKeys", json!({})).await.status, 200);
    let before = rss_bytes();

    let mut config = (*client.config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let mut attacks = tokio::task::JoinSet::new();
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        let tcp = TcpStream::connect(node.api_addr).await.unwrap();
        let tls = TlsConnector::from(Arc::clone(&config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        connections.push(tokio::spawn(conn));
        for _ in 0..STREAMS {
            let mut sender = sender.clone();
            let chunk = chunk.clone();
            attacks.spawn(async move {
                let req = Request::post("https://localhost/")
                    .header("x-amz-target", "TrentService.Encrypt")
                    .header("content-type", "application/x-amz-json-1.1")
                    .header("content-length", "131072")
                    .body(Stalled(Some(chunk)))
                    .unwrap();
                match sender.send_request(req).await {
                    Ok(resp) => Ok(resp.status().as_u16()),
                    // Streams sent before the node's SETTINGS arrived, beyond its cap.
                    Err(e) if format!("{e:?}").contains("REFUSED_STREAM") => {
                        Err("REFUSED_STREAM".to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let peak = rss_bytes();

    let mut statuses = std::collections::BTreeMap::<Result<u16, String>, usize>::new();
    while let Ok(Some(done)) =
        tokio::time::timeout(Duration::from_secs(10), attacks.join_next()).await
    {
        *statuses.entry(done.unwrap()).or_default() += 1;
    }
    for c in connections {
        c.abort();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The budget is whole again: a normal client is served.
    assert_eq!(client.kms(&signer, "ListKeys", json!({})).await.status, 200);
    // Over two trim intervals after the last request ended.
    tokio::time::sleep(3 * TRIM_INTERVAL).await;
    let after = rss_bytes();
    eprintln!(
        "RSS before {} KiB, under attack {} KiB (+{} KiB), after {} KiB; replies {statuses:?}",
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024,
        after / 1024
    );
    assert!(
        peak.saturating_sub(before) < RSS_GROWTH_BOUND,
        "RSS grew by {} KiB under attack",
        peak.saturating_sub(before) / 1024
    );
    assert!(
        after.saturating_sub(before) < RSS_AFTER_BOUND,
        "RSS stayed {} KiB above where it was before the attack",
        after.saturating_sub(before) / 1024
    );
    let metrics = scrape(&node).await;
    let count = |code: u16| statuses.get(&Ok(code)).copied().unwrap_or(0) as f64;
    assert_eq!(
        sample(
            &metrics,
            r#"keyfence_requests_refused_total{limit="request_budget"}"#
        ),
        count(503),
        "every 503 was counted"
    );
    assert_eq!(
        sample(&metrics, r#"keyfence_timeouts_total{stage="body"}"#),
        count(408),
        "every 408 was counted"
    );
    assert!(
        statuses.get(&Ok(503)).copied().unwrap_or(0) > 0,
        "requests beyond the budget were refused: {statuses:?}"
    );
    assert!(
        statuses.get(&Ok(408)).copied().unwrap_or(0) > 0,
        "requests holding the budget timed out: {statuses:?}"
    );
    assert!(
        statuses.keys().all(|k| matches!(
            k.as_ref().map_err(String::as_str),
            Ok(408 | 503) | Err("REFUSED_STREAM")
        )),
        "only timeouts, throttling and the stream cap: {statuses:?}"
    );
    assert_eq!(
        statuses.values().sum::<usize>(),
        CONNECTIONS * STREAMS,
        "every stream was answered: {statuses:?}"
    );
    node.shutdown().await;
}
