//! The status page on `GET /`, fetched over real TLS from a real node: it shows the
//! key-exchange group of the very connection that asked.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use keyfence_server::tls::ClientGroups;
use rustls::pki_types::ServerName;
use support::{start_node, Client};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// GETs `/` over a fresh TLS connection: (status, content type, body).
async fn get_root(client: &Client) -> (u16, String, String) {
    let tcp = TcpStream::connect(client.addr).await.unwrap();
    let tls = TlsConnector::from(Arc::clone(&client.config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("https://localhost:{}/", client.addr.port()))
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn status_page_shows_this_connections_group() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;

    let (status, content_type, page) = get_root(&Client::new(&node, ClientGroups::Default)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(
        page.contains("<td id=\"key-exchange\">X25519MLKEM768</td>"),
        "{page}"
    );
    assert!(
        page.contains("<td id=\"tls-version\">TLS 1.3</td>"),
        "{page}"
    );
    assert!(page.contains(env!("CARGO_PKG_VERSION")), "{page}");
    assert!(page.contains(node.kms.region()), "{page}");

    // A classical client on the same node sees its own, classical, group.
    let (status, _, page) = get_root(&Client::new(&node, ClientGroups::ClassicalOnly)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<td id=\"key-exchange\">X25519</td>"),
        "{page}"
    );
    assert!(page.contains("no (classical only)"), "{page}");
    node.shutdown().await;
}
