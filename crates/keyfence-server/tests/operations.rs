//! The operation table over a real node: every row is dispatched and labelled
//! by its own name in `keyfence_requests_total`.

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_server::api::kms::OPERATIONS;
use keyfence_server::tls::ClientGroups;
use serde_json::json;
use support::{scrape, start_node, Client, Signer};

#[tokio::test]
async fn every_operation_is_dispatched_and_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let me = Signer::of(&node);

    // A real Sign with an RSA key: labelled Sign, outcome ok.
    let key = client
        .kms(
            &me,
            "CreateKey",
            json!({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}),
        )
        .await;
    assert_eq!(key.status, 200, "{:?}", key.json());
    let key_id = key.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let signed = client
        .kms(
            &me,
            "Sign",
            json!({"KeyId": key_id, "Message": B64.encode(b"hello"), "SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
        )
        .await;
    assert_eq!(signed.status, 200, "{:?}", signed.json());

    // Every row, with an empty input: the handler answers (never "unknown").
    for op in OPERATIONS {
        let reply = client.kms(&me, op.name, json!({})).await;
        assert_ne!(
            reply.error_code().as_deref(),
            Some("UnknownOperationException"),
            "{}",
            op.name
        );
        assert!(reply.status < 500, "{}: {:?}", op.name, reply.json());
    }
    let unknown = client.kms(&me, "MadeUpOperation", json!({})).await;
    assert_eq!(
        unknown.error_code().as_deref(),
        Some("UnknownOperationException")
    );

    let metrics = scrape(&node).await;
    assert!(
        metrics.contains(r#"keyfence_requests_total{operation="Sign",outcome="ok"} 1"#),
        "{metrics}"
    );
    for op in OPERATIONS {
        let label = format!(r#"keyfence_requests_total{{operation="{}","#, op.name);
        assert!(metrics.contains(&label), "{} is not labelled", op.name);
    }
    assert!(
        metrics.contains(
            r#"keyfence_requests_total{operation="unknown",outcome="UnknownOperationException"} 1"#
        ),
        "only the made-up operation is unknown: {metrics}"
    );
    node.shutdown().await;
}
