//! Attacks on the API port without any credential, at reduced scale: silent
//! connections, slow headers, short bodies, a stalled HTTP/2 preface. Each
//! test bounds its own run time; a normal client must keep being served.

mod support;

use std::time::{Duration, Instant};

use keyfence_server::limits::Limits;
use keyfence_server::tls::ClientGroups;
use serde_json::json;
use support::{scrape, start_node_with, Client, Signer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn test_limits() -> Limits {
    Limits {
        max_connections: 100,
        header_read_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3),
        ..Limits::default()
    }
}

/// Reads until the peer closes; returns what arrived and when the close came,
/// or `None` if it did not close within `limit`.
async fn closed_within(
    stream: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((start.elapsed(), got)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The value of one series in the node's metrics.
async fn metric(node: &keyfence_server::Node, series: &str) -> f64 {
    let text = scrape(node).await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

async fn served(client: &Client, signer: &Signer) -> bool {
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        client.kms(signer, "ListKeys", json!({})),
    )
    .await;
    matches!(reply, Ok(r) if r.status == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_connections_do_not_lock_out_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(&dir.path().join("data"), false, test_limits()).await;
    let client = Client::new(&node, ClientGroups::Default);
    let signer = Signer::of(&node);
    assert!(served(&client, &signer).await);
    let shed = r#"keyfence_connections_shed_total{reason="at_cap"}"#;
    assert_eq!(metric(&node, shed).await, 0.0);

    // Some complete TLS and then say nothing; most never even say hello.
    let mut silent_tls = Vec::new();
    for _ in 0..20 {
        silent_tls.push(client.connect().await.unwrap());
    }
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(TcpStream::connect(node.api_addr).await.unwrap());
    }
    // Well inside the TLS handshake timeout (10 s) and the idle timeout: only
    // the cap and shedding can let this client in.
    let started = Instant::now();
    for _ in 0..3 {
        assert!(served(&client, &signer).await, "a normal client is served");
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    // The node shed the oldest idle connections: at most the cap is open.
    let mut still_open = 0;
    for s in silent.iter_mut() {
        if closed_within(s, Duration::from_millis(2)).await.is_none() {
            still_open += 1;
        }
    }
    for s in silent_tls.iter_mut() {
        if closed_within(s, Duration::from_millis(2)).await.is_none() {
            still_open += 1;
        }
    }
    assert!(
        still_open <= 100,
        "{still_open} silent connections still open with a cap of 100"
    );
    // 1,020 silent connections and 4 served ones through a cap of 100.
    let shed = metric(&node, shed).await;
    assert!((920.0..=1024.0).contains(&shed), "{shed} shed");
    assert_eq!(
        metric(&node, "keyfence_connections_refused_total").await,
        0.0
    );
    drop((silent, silent_tls));
    node.shutdown().await;
}

#[tokio::test]
async fn a_slow_loris_header_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(
        &dir.path().join("data"),
        false,
        Limits {
            idle_timeout: Duration::from_secs(30),
            ..test_limits()
        },
    )
    .await;
    let client = Client::new(&node, ClientGroups::Default);
    let mut tls = client.connect().await.unwrap();
    tls.write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header byte every 200 ms: never idle, never done.
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(8) {
        if tls.write_all(b"x").await.is_err() || tls.flush().await.is_err() {
            closed = true;
            break;
        }
        if closed_within(&mut tls, Duration::from_millis(200))
            .await
            .is_some()
        {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "a header dribbled for 8 s was still being read");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "closed after {took:?}, header read timeout is 2 s"
    );
    let header = r#"keyfence_timeouts_total{stage="header"}"#;
    assert_eq!(metric(&node, header).await, 1.0);
    let idle = r#"keyfence_timeouts_total{stage="idle"}"#;
    assert_eq!(metric(&node, idle).await, 0.0);
    node.shutdown().await;
}

#[tokio::test]
async fn a_body_shorter_than_its_length_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(
        &dir.path().join("data"),
        false,
        Limits {
            idle_timeout: Duration::from_secs(30),
            ..test_limits()
        },
    )
    .await;
    let client = Client::new(&node, ClientGroups::Default);
    let mut tls = client.connect().await.unwrap();
    tls.write_all(
        b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\n\
          Content-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{\"Limit\":",
    )
    .await
    .unwrap();
    let (took, reply) = closed_within(&mut tls, Duration::from_secs(8))
        .await
        .expect("the node gives up on the body");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("RequestTimeoutException"), "{reply}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let body = r#"keyfence_timeouts_total{stage="body"}"#;
    assert_eq!(metric(&node, body).await, 1.0);
    node.shutdown().await;
}

#[tokio::test]
async fn an_http2_preface_on_http1_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(&dir.path().join("data"), false, test_limits()).await;
    let client = Client::new(&node, ClientGroups::Default);
    // No ALPN: the connection is HTTP/1.1 as far as TLS knows.
    for preface in [
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
        &b"PRI * HTTP/2.0\r\n"[..],
    ] {
        let mut tls = client.connect().await.unwrap();
        tls.write_all(preface).await.unwrap();
        let (took, _) = closed_within(&mut tls, Duration::from_secs(8))
            .await
            .expect("the connection is closed, not held forever");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    // A keep-alive connection that goes quiet is closed after the idle timeout.
    let mut tls = client.connect().await.unwrap();
    let (took, _) = closed_within(&mut tls, Duration::from_secs(8))
        .await
        .expect("idle connection closed");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let idle = r#"keyfence_timeouts_total{stage="idle"}"#;
    assert!(metric(&node, idle).await >= 1.0);
    node.shutdown().await;
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(&dir.path().join("data"), false, test_limits()).await;
    let mut tls = Client::new(&node, ClientGroups::Default)
        .connect()
        .await
        .unwrap();
    tls.write_all(
        b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\n\
          Content-Length: 999999999\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf))
        .await
        .expect("answered at once")
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    let too_large = r#"keyfence_requests_refused_total{limit="body_too_large"}"#;
    assert_eq!(metric(&node, too_large).await, 1.0);
    let budget = r#"keyfence_requests_refused_total{limit="request_budget"}"#;
    assert_eq!(metric(&node, budget).await, 0.0);
    node.shutdown().await;
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(
        &dir.path().join("data"),
        false,
        Limits {
            max_connections: 2,
            ..test_limits()
        },
    )
    .await;
    let client = Client::new(&node, ClientGroups::Default);
    // Two connections, each with a request in flight (its body still owed).
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut tls = client.connect().await.unwrap();
        tls.write_all(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\n\
              Content-Length: 10\r\n\r\n{",
        )
        .await
        .unwrap();
        busy.push(tls);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(node.api_addr).await.unwrap();
    let (took, _) = closed_within(&mut third, Duration::from_secs(1))
        .await
        .expect("refused at once");
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(
        metric(&node, "keyfence_connections_refused_total").await,
        1.0
    );
    let shed = r#"keyfence_connections_shed_total{reason="at_cap"}"#;
    assert_eq!(metric(&node, shed).await, 0.0, "nothing idle to shed");
    drop(busy);
    node.shutdown().await;
}

#[tokio::test]
async fn malformed_chunked_framing_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(&dir.path().join("data"), false, test_limits()).await;
    let mut tls = Client::new(&node, ClientGroups::Default)
        .connect()
        .await
        .unwrap();
    tls.write_all(
        b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\n\
          Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let (_, reply) = closed_within(&mut tls, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("SerializationException"), "{reply}");
    node.shutdown().await;
}
