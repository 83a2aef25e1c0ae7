//! The audit log over a real node: every request is recorded before its reply,
//! with who, what, which key and how it ended, and the log verifies against
//! its signed heads; it survives a restart and continues the same tree.

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_core::audit::{AuditRecord, AuditStore, LogVerifier, Outcome, Source};
use keyfence_server::tls::ClientGroups;
use keyfence_store::SqliteAuditStore;
use serde_json::json;
use support::{start_node, Client, Signer};

fn records(store: &SqliteAuditStore) -> Vec<AuditRecord> {
    store
        .read("local", 0, 10_000)
        .unwrap()
        .iter()
        .map(|e| AuditRecord::decode(&e.data).unwrap())
        .collect()
}

#[tokio::test]
async fn every_request_is_recorded_before_its_reply_and_the_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = start_node(&data, false).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let me = Signer::of(&node);
    // A lone node's log is in a file of its own, beside (not in) its key store.
    let file = node.data_dir.path.join(keyfence_server::audit::OWN_FILE);
    let store = SqliteAuditStore::open_existing(&file).unwrap();
    let key_store = SqliteAuditStore::open_existing(&node.data_dir.database()).unwrap();

    let created = client.kms(&me, "CreateKey", json!({})).await;
    let arn = created.json()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let key_id = created.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_value = "do-not-log-this-value";
    let encrypted = client
        .kms(
            &me,
            "Encrypt",
            json!({"KeyId": key_id, "Plaintext": B64.encode(b"top secret plaintext"),
                   "EncryptionContext": {"tenant": secret_value}}),
        )
        .await;
    assert_eq!(encrypted.status, 200);
    // Durable before the reply: the record is in the table as soon as the
    // answer is back; the data directory's creation is the first record.
    let log = records(&store);
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        key_store.logs().unwrap().is_empty(),
        "no log in keyfence.db"
    );
    assert_eq!(
        (log[0].seq, log[0].source, log[0].operation.as_str()),
        (0, Source::Local, "Init")
    );
    let e = &log[2];
    assert_eq!(
        (e.seq, e.source, e.operation.as_str()),
        (2, Source::Kms, "Encrypt")
    );
    assert_eq!(e.key.as_deref(), Some(arn.as_str()));
    assert_eq!(e.context_keys, vec!["tenant"]);
    assert_eq!(e.outcome, Outcome::Success);
    assert!(e
        .principal
        .starts_with(&format!("arn:aws:iam::{}:user/", e.account)));
    assert!(!e.account.is_empty());
    assert_eq!(e.access_key_id, me.access_key_id);
    assert!(e.source_address.starts_with("127.0.0.1:"));

    // A refusal and an unauthenticated request are recorded too.
    let refused = client
        .kms(&me, "DescribeKey", json!({"KeyId": "alias/none"}))
        .await;
    assert_eq!(refused.error_code().as_deref(), Some("NotFoundException"));
    let unsigned = client
        .send(
            &[
                ("x-amz-target", "TrentService.ListKeys"),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            b"{}".to_vec(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(unsigned.status, 400);
    let log = records(&store);
    assert_eq!(log.len(), 5);
    assert_eq!(log[3].outcome, Outcome::Failure("NotFoundException".into()));
    assert_eq!(log[3].key.as_deref(), Some("alias/none"));
    assert!(matches!(log[4].outcome, Outcome::Failure(_)));
    assert_eq!(
        (log[4].principal.as_str(), log[4].operation.as_str()),
        ("", "ListKeys")
    );

    // Nothing secret in the stored bytes.
    for entry in store.read("local", 0, 100).unwrap() {
        for needle in [
            secret_value.as_bytes(),
            b"top secret plaintext",
            encrypted.json()["CiphertextBlob"]
                .as_str()
                .unwrap()
                .as_bytes(),
        ] {
            assert!(!entry.data.windows(needle.len()).any(|w| w == needle));
        }
    }

    // A signed head covers the log, and the whole log verifies against it.
    let audit = node.audit.clone().unwrap();
    let head = audit.sign_now().await.unwrap().unwrap();
    assert_eq!(head.head.size, 5);
    assert_eq!(
        audit.sign_now().await.unwrap(),
        None,
        "no new head when nothing was added"
    );
    let key = store.signing_key("local").unwrap().unwrap();
    assert_eq!(Some(key.public_key.clone()), audit.public_key());
    let mut v = LogVerifier::new(&key.public_key, store.heads("local").unwrap());
    store
        .read("local", 0, 100)
        .unwrap()
        .iter()
        .for_each(|e| v.push(e));
    let report = v.finish();
    assert_eq!((report.problem, report.records, report.heads), (None, 5, 1));
    drop(audit);
    node.shutdown().await;

    // After a restart the log continues the same tree with the same key.
    let node = start_node(&data, false).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    assert_eq!(client.kms(&me, "ListKeys", json!({})).await.status, 200);
    node.shutdown().await;
    let heads = store.heads("local").unwrap();
    assert_eq!(
        heads.last().unwrap().head.size,
        6,
        "shutdown signs a final head (no second Init: the directory existed)"
    );
    assert_eq!(store.signing_key("local").unwrap().unwrap(), key);
    let mut v = LogVerifier::new(&key.public_key, heads);
    store
        .read("local", 0, 100)
        .unwrap()
        .iter()
        .for_each(|e| v.push(e));
    assert_eq!(v.finish().problem, None);
}
