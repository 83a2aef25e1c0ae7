//! The status page on `GET /`, fetched over real TLS from a real node: it shows the
//! key-exchange group of the very connection that asked.

mod support;

use keyfence_server::tls::ClientGroups;
use support::{get_root, start_node, Client};

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
