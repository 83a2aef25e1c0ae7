//! An HTTP/1.1 connection (ALPN `http/1.1`) gives its HTTP buffers back after
//! a second with no request in flight and takes up again where it was: the
//! same keep-alive connection keeps serving, requests pipelined into one write
//! after the release are all answered in order, and `Connection: close` still
//! closes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keyfence_server::tls::ClientGroups;
use rustls::pki_types::ServerName;
use serde_json::json;
use support::{start_node, Client, Signer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longer than the node's release delay (one second).
const PAST_RELEASE: Duration = Duration::from_millis(1600);

/// A TLS connection that offers ALPN `http/1.1`, as the AWS CLI and SDKs do.
async fn connect_http1(client: &Client) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut config = (*client.config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(client.addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(b"http/1.1".as_slice())
    );
    tls
}

/// Reads from `tls` until `count` complete status-page responses arrived
/// (each ends with the page's closing tag); returns their status lines.
async fn read_responses(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
    count: usize,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while String::from_utf8_lossy(&seen).matches("</html>").count() < count {
        let n = tokio::time::timeout_at(deadline, tls.read(&mut buf))
            .await
            .expect("responses in time")
            .unwrap();
        assert!(n > 0, "the node closed the connection early");
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    text.lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_keep_alive_connection_serves_again_after_its_buffers_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let me = Signer::of(&node);
    let tls = connect_http1(&client).await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let key = client.kms(&me, "CreateKey", json!({})).await.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    for round in 0..3 {
        let body = serde_json::to_vec(&json!({"KeyId": key, "Plaintext": "aGVsbG8="})).unwrap();
        let mut parts = hyper::Request::post(format!("https://localhost:{}/", client.addr.port()))
            .header("x-amz-target", "TrentService.Encrypt")
            .header("content-type", "application/x-amz-json-1.1")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        support::sign_parts(&mut parts, &body, &me);
        let reply = sender
            .send_request(hyper::Request::from_parts(
                parts,
                http_body_util::Full::new(bytes::Bytes::from(body)),
            ))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(reply.status(), 200, "round {round}");
        tokio::time::sleep(PAST_RELEASE).await;
    }
    assert!(!conn.is_finished(), "one connection served every round");
    node.shutdown().await;
}

#[tokio::test]
async fn requests_pipelined_after_the_release_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let mut tls = connect_http1(&client).await;
    let get = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls.write_all(get).await.unwrap();
    assert_eq!(read_responses(&mut tls, 1).await, ["HTTP/1.1 200 OK"]);
    tokio::time::sleep(PAST_RELEASE).await;
    // Three requests in one write: the first byte wakes the connection, the
    // rest must reach the new HTTP layer intact.
    tls.write_all(&get.repeat(3)).await.unwrap();
    assert_eq!(read_responses(&mut tls, 3).await, ["HTTP/1.1 200 OK"; 3]);
    node.shutdown().await;
}

#[tokio::test]
async fn connection_close_still_closes_after_a_release() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let mut tls = connect_http1(&client).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_responses(&mut tls, 1).await;
    tokio::time::sleep(PAST_RELEASE).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .expect("the node closes after a Connection: close request")
        .unwrap();
    assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 200 OK"));
    node.shutdown().await;
}

/// Reads until the node closes; how long that took (panics after `limit`).
async fn closed_after(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
    limit: Duration,
) -> Duration {
    let started = tokio::time::Instant::now();
    let mut sink = Vec::new();
    tokio::time::timeout(limit, tls.read_to_end(&mut sink))
        .await
        .expect("the node closes the connection")
        .ok();
    started.elapsed()
}

#[tokio::test]
async fn a_released_connection_keeps_the_idle_and_header_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let limits = keyfence_server::limits::Limits {
        header_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(6),
        ..Default::default()
    };
    let node = support::start_node_with(&dir.path().join("data"), false, limits).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let get = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

    // Silent after a request: closed at the idle timeout, not before.
    let mut tls = connect_http1(&client).await;
    tls.write_all(get).await.unwrap();
    read_responses(&mut tls, 1).await;
    let took = closed_after(&mut tls, Duration::from_secs(12)).await;
    assert!(took >= Duration::from_millis(5500), "{took:?}");

    // Half a header block after the release: closed at the header timeout.
    let mut tls = connect_http1(&client).await;
    tls.write_all(get).await.unwrap();
    read_responses(&mut tls, 1).await;
    tokio::time::sleep(PAST_RELEASE).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let took = closed_after(&mut tls, Duration::from_secs(12)).await;
    assert!(took < Duration::from_secs(4), "{took:?}");
    node.shutdown().await;
}
