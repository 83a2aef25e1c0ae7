//! A first start on a taken port fails before writing anything, so the next start
//! is still a first start and still shows the new credential.

use keyfence_server::config::Config;
use keyfence_server::{Node, NodeError};

#[tokio::test]
async fn a_taken_port_fails_before_the_data_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = |listen| Config {
        listen,
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.clone(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum: false,
        credentials: Vec::new(),
        principals: Default::default(),
        node: None,
        default_fence: None,
        store: keyfence_server::config::StoreLocation::DataDir,
        max_staleness: std::time::Duration::from_secs(60),
        feed_retention: std::time::Duration::from_secs(900),
        audit: Default::default(),
        limits: Default::default(),
        root: Default::default(),
    };
    let err = match Node::start(config(taken.local_addr().unwrap())).await {
        Ok(_) => panic!("the port is taken"),
        Err(e) => e,
    };
    assert!(matches!(err, NodeError::Bind { .. }), "{err}");
    assert!(!data.exists(), "nothing written on a failed start");

    // Once the port is free, the first start creates the directory and reports it.
    drop(taken);
    let node = Node::start(config("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    assert!(node.initialized.is_some(), "this is the first start");
    node.shutdown().await;
}
