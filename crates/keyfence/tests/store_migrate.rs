//! `keyfence store migrate`: a SQLite node's keys, versions, aliases, tags
//! and imported material decrypt old ciphertexts on a node over PostgreSQL.

use std::process::Command;
use std::time::Duration;

use keyfence_core::service::CreateKeyInput;
use keyfence_core::EncryptionContext;
use keyfence_server::config::StoreLocation;
use keyfence_server::{Config, Node};
use keyfence_testkit::TempPostgres;

const A: &str = "111122223333";

async fn start(dir: &std::path::Path, store: StoreLocation) -> Node {
    Node::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: "us-east-1".into(),
        post_quantum: false,
        credentials: Vec::new(),
        store,
        max_staleness: Duration::from_secs(60),
        audit: Default::default(),
        limits: Default::default(),
        node: None,
        default_fence: None,
    })
    .await
    .unwrap()
}

fn migrate(dir: &std::path::Path, url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyfence"))
        .args(["store", "migrate", "--from"])
        .arg(dir)
        .args(["--to", url])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_nodes_ciphertexts_decrypt_on_postgres_after_the_move() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ctx = EncryptionContext::default();
    let node = start(data.as_path(), StoreLocation::DataDir).await;
    let kms = node.kms.clone();
    let key = kms
        .create_key(
            A,
            CreateKeyInput {
                tags: vec![("team".into(), "a".into())],
                ..Default::default()
            },
        )
        .unwrap();
    kms.create_alias(A, "alias/app", &key.arn()).unwrap();
    let v1 = kms.encrypt(A, "alias/app", b"one", &ctx, None).unwrap();
    kms.rotate_key_on_demand(A, &key.arn()).unwrap();
    let v2 = kms.encrypt(A, "alias/app", b"two", &ctx, None).unwrap();
    drop(kms);
    node.shutdown().await;

    let pg = TempPostgres::new().unwrap();
    let url = pg.connection_string();
    let (ok, out) = tokio::task::spawn_blocking({
        let (d, u) = (data.as_path().to_path_buf(), url.clone());
        move || migrate(&d, &u)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("1 keys (2 versions), 1 aliases"), "{out}");
    let (ok, out) = tokio::task::spawn_blocking({
        let (d, u) = (data.as_path().to_path_buf(), url.clone());
        move || migrate(&d, &u)
    })
    .await
    .unwrap();
    assert!(!ok && out.contains("already holds"), "{out}");

    let node = start(data.as_path(), StoreLocation::Postgres(url)).await;
    let kms = node.kms.clone();
    for (blob, plain) in [(&v1, &b"one"[..]), (&v2, &b"two"[..])] {
        let out = kms.decrypt(A, &blob.ciphertext, &ctx, None, None).unwrap();
        assert_eq!(out.plaintext.expose(), plain);
    }
    let meta = kms.describe_key(A, "alias/app").unwrap();
    assert_eq!(meta.id, key.id);
    assert_eq!(meta.current_version, 2);
    assert_eq!(meta.tags.get("team").map(String::as_str), Some("a"));
    drop(kms);
    node.shutdown().await;
}
