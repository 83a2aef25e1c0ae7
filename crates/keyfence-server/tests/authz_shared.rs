//! Key policies and grants on two nodes sharing one SQLite file: a policy put
//! at one node holds at the other within its polling interval, and a grant
//! made at one node works at the other at once when its token comes along.

mod support;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_server::config::{Config, StoreLocation};
use keyfence_server::tls::ClientGroups;
use keyfence_server::Node;
use serde_json::{json, Value};
use support::{Client, Signer};

async fn start(dir: &std::path::Path, store: &StoreLocation) -> Node {
    Node::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum: false,
        credentials: Vec::new(),
        principals: Default::default(),
        audit: Default::default(),
        store: store.clone(),
        max_staleness: Duration::from_secs(60),
        feed_retention: Duration::from_secs(900),
        limits: Default::default(),
        node: None,
        root: Default::default(),
        default_fence: None,
    })
    .await
    .expect("node starts")
}

/// Copies a data directory: both nodes use the same root key and credential.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "node.addr.json" && entry.file_name() != "keyfence.db" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn code(v: &Value) -> Option<&str> {
    v["__type"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_grants_reach_the_other_node() {
    let dirs = tempfile::tempdir().unwrap();
    let store = StoreLocation::SharedSqlite(dirs.path().join("shared.db"));
    let (d1, d2) = (dirs.path().join("n1"), dirs.path().join("n2"));
    let n1 = start(&d1, &store).await;
    copy_dir(&d1, &d2);
    let n2 = start(&d2, &store).await;
    let (c1, c2) = (
        Client::new(&n1, ClientGroups::HybridOnly),
        Client::new(&n2, ClientGroups::HybridOnly),
    );
    let me = Signer::of(&n1);
    let me_arn = "arn:aws:iam::111122223333:user/admin";

    let key = c1.kms(&me, "CreateKey", json!({})).await.json();
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let encrypt = json!({"KeyId": key_id, "Plaintext": B64.encode(b"x")});
    assert_eq!(c2.kms(&me, "Encrypt", encrypt.clone()).await.status, 200);

    // At node 1: the admin may do everything but cryptography with this key.
    let policy = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "NotAction": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]})
    .to_string();
    let put = c1
        .kms(
            &me,
            "PutKeyPolicy",
            json!({"KeyId": key_id, "Policy": policy}),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.json());
    assert_eq!(
        code(&c1.kms(&me, "Encrypt", encrypt.clone()).await.json()),
        Some("AccessDeniedException")
    );
    // Node 2 follows within its polling interval (1 s).
    let started = Instant::now();
    loop {
        let r = c2.kms(&me, "Encrypt", encrypt.clone()).await;
        if code(&r.json()) == Some("AccessDeniedException") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node 2 never saw the policy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = c2
        .kms(&me, "GetKeyPolicy", json!({"KeyId": key_id}))
        .await
        .json();
    assert_eq!(got["Policy"], policy);

    // A grant made at node 1 works at node 2 at once with its token.
    let grant = c1
        .kms(
            &me,
            "CreateGrant",
            json!({"KeyId": key_id, "GranteePrincipal": me_arn, "Operations": ["Encrypt"]}),
        )
        .await
        .json();
    let token = grant["GrantToken"].as_str().unwrap();
    let with_token =
        json!({"KeyId": key_id, "Plaintext": B64.encode(b"x"), "GrantTokens": [token]});
    let r = c2.kms(&me, "Encrypt", with_token).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    // A key created at node 1 with a policy: node 2, which has synced neither
    // the key nor its policy, still decides under that policy at once.
    let guarded = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "NotAction": "kms:ScheduleKeyDeletion", "Resource": "*"}]})
    .to_string();
    let fresh = c1
        .kms(&me, "CreateKey", json!({"Policy": guarded}))
        .await
        .json();
    let fresh_id = fresh["KeyMetadata"]["KeyId"].as_str().unwrap();
    let refused = c2
        .kms(
            &me,
            "ScheduleKeyDeletion",
            json!({"KeyId": fresh_id, "PendingWindowInDays": 7}),
        )
        .await;
    assert_eq!(
        code(&refused.json()),
        Some("AccessDeniedException"),
        "{:?}",
        refused.json()
    );

    // Revoked at node 2: node 1 follows.
    let revoke = c2
        .kms(
            &me,
            "RevokeGrant",
            json!({"KeyId": key_id, "GrantId": grant["GrantId"]}),
        )
        .await;
    assert_eq!(revoke.status, 200, "{:?}", revoke.json());
    let started = Instant::now();
    while code(&c1.kms(&me, "Encrypt", encrypt.clone()).await.json())
        != Some("AccessDeniedException")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node 1 never saw the revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
