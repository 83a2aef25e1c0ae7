//! A real node over real post-quantum TLS: signed requests, errors on the wire,
//! strict mode, durability across restarts.

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_server::tls::ClientGroups;
use serde_json::json;
use support::{scrape, start_node, Client, Signer};

#[tokio::test]
async fn hybrid_client_uses_kms_over_x25519mlkem768() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let me = Signer::of(&node);

    let created = client
        .kms(&me, "CreateKey", json!({"Description": "t"}))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.json());
    assert_eq!(created.group, "X25519MLKEM768");
    let arn = created.json()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let enc = client
        .kms(&me, "Encrypt", json!({"KeyId": arn, "Plaintext": B64.encode(b"hello"), "EncryptionContext": {"a": "b"}}))
        .await;
    assert_eq!(enc.json()["KeyId"], arn.as_str());
    let blob = enc.json()["CiphertextBlob"].as_str().unwrap().to_string();
    let dec = client
        .kms(
            &me,
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": {"a": "b"}}),
        )
        .await;
    assert_eq!(dec.json()["Plaintext"], B64.encode(b"hello"));
    let dry = client
        .kms(
            &me,
            "Encrypt",
            json!({"KeyId": arn, "Plaintext": B64.encode(b"x"), "DryRun": true}),
        )
        .await;
    assert_eq!(
        (dry.status, dry.error_code().as_deref()),
        (400, Some("DryRunOperationException"))
    );
    let dry_fail = client
        .kms(
            &me,
            "Encrypt",
            json!({"KeyId": "alias/none", "Plaintext": B64.encode(b"x"), "DryRun": true}),
        )
        .await;
    assert_eq!(
        dry_fail.error_code().as_deref(),
        Some("NotFoundException"),
        "a dry run still checks"
    );
    let wrong = client
        .kms(&me, "Decrypt", json!({"CiphertextBlob": blob}))
        .await;
    assert_eq!(
        (wrong.status, wrong.error_code().as_deref()),
        (400, Some("InvalidCiphertextException"))
    );

    let metrics = scrape(&node).await;
    assert!(
        metrics.contains("keyfence_tls_handshakes_total{group=\"X25519MLKEM768\"} 6"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "keyfence_requests_total{operation=\"Decrypt\",outcome=\"InvalidCiphertextException\"} 1"
    ));
    node.shutdown().await;
}

#[tokio::test]
async fn strict_mode_refuses_classical_clients() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), true).await;
    let me = Signer::of(&node);
    let classical = Client::new(&node, ClientGroups::ClassicalOnly);
    let err = classical
        .send(&[], Vec::new(), None)
        .await
        .err()
        .expect("refused");
    assert!(err.starts_with("handshake"), "{err}");
    let hybrid = Client::new(&node, ClientGroups::HybridOnly);
    assert_eq!(hybrid.kms(&me, "ListKeys", json!({})).await.status, 200);
    assert!(scrape(&node)
        .await
        .contains("keyfence_tls_handshake_failures_total{reason=\"classical_only\"} 1"));
    node.shutdown().await;

    let node = start_node(&dir.path().join("data"), false).await;
    let classical = Client::new(&node, ClientGroups::ClassicalOnly);
    let reply = classical.kms(&me, "ListKeys", json!({})).await;
    assert_eq!((reply.status, reply.group), (200, "X25519"));
    node.shutdown().await;
}

#[tokio::test]
async fn authentication_errors_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::Default);
    let me = Signer::of(&node);
    let headers = [
        ("x-amz-target", "TrentService.ListKeys"),
        ("content-type", "application/x-amz-json-1.1"),
    ];

    let unsigned = client.send(&headers, b"{}".to_vec(), None).await.unwrap();
    assert_eq!(
        (unsigned.status, unsigned.error_code().as_deref()),
        (400, Some("MissingAuthenticationTokenException"))
    );

    let wrong_secret = Signer {
        secret: "x".repeat(40),
        ..me.clone()
    };
    let r = client
        .send(&headers, b"{}".to_vec(), Some((&wrong_secret, "kms")))
        .await
        .unwrap();
    assert_eq!(r.error_code().as_deref(), Some("InvalidSignatureException"));
    assert!(!String::from_utf8_lossy(&r.body).contains(&me.secret));

    let unknown = Signer {
        access_key_id: "AKIAUNKNOWN000000000".into(),
        ..me.clone()
    };
    let r = client
        .send(&headers, b"{}".to_vec(), Some((&unknown, "kms")))
        .await
        .unwrap();
    assert_eq!(
        r.error_code().as_deref(),
        Some("UnrecognizedClientException")
    );

    let skewed = Signer {
        time: me.time - std::time::Duration::from_secs(20 * 60),
        ..me.clone()
    };
    let r = client
        .send(&headers, b"{}".to_vec(), Some((&skewed, "kms")))
        .await
        .unwrap();
    assert_eq!(r.error_code().as_deref(), Some("InvalidSignatureException"));
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("Signature expired"));

    let other_region = Signer {
        region: "eu-west-1".into(),
        ..me.clone()
    };
    let r = client
        .send(&headers, b"{}".to_vec(), Some((&other_region, "kms")))
        .await
        .unwrap();
    assert_eq!(r.error_code().as_deref(), Some("InvalidSignatureException"));

    let sts = [("content-type", "application/x-www-form-urlencoded")];
    let form = b"Action=GetCallerIdentity&Version=2011-06-15".to_vec();
    let r = client
        .send(&sts, form.clone(), Some((&wrong_secret, "sts")))
        .await
        .unwrap();
    let xml = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, 403);
    assert!(xml.contains("<Code>SignatureDoesNotMatch</Code>"), "{xml}");
    let r = client
        .send(&sts, form, Some((&unknown, "sts")))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&r.body).contains("<Code>InvalidClientTokenId</Code>"));

    let r = client
        .send(&headers, b"{}".to_vec(), Some((&me, "s3")))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    node.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_typed_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::Default);
    let me = Signer::of(&node);
    let send = |target: &'static str, body: Vec<u8>| {
        let client = &client;
        let me = &me;
        async move {
            client
                .send(
                    &[
                        ("x-amz-target", target),
                        ("content-type", "application/x-amz-json-1.1"),
                    ],
                    body,
                    Some((me, "kms")),
                )
                .await
                .unwrap()
        }
    };
    for body in [
        &b"{"[..],
        b"[]",
        b"\"x\"",
        b"{\"Description\": 5}",
        b"\xff\xfe",
    ] {
        let r = send("TrentService.CreateKey", body.to_vec()).await;
        assert_eq!(
            r.error_code().as_deref(),
            Some("SerializationException"),
            "{body:?}"
        );
    }
    let r = send(
        "TrentService.Encrypt",
        br#"{"KeyId": "x", "Plaintext": "%%%"}"#.to_vec(),
    )
    .await;
    assert_eq!(r.error_code().as_deref(), Some("SerializationException"));
    let r = send("TrentService.Encrypt", br#"{"Plaintext": "aGk="}"#.to_vec()).await;
    assert_eq!(r.error_code().as_deref(), Some("ValidationException"));
    let r = send("TrentService.Frobnicate", b"{}".to_vec()).await;
    assert_eq!(r.error_code().as_deref(), Some("UnknownOperationException"));
    let r = send("TrentService.Decrypt", vec![b' '; 200 * 1024]).await;
    assert_eq!(r.status, 413);
    let keys = client.kms(&me, "ListKeys", json!({})).await;
    assert_eq!(
        keys.json()["Keys"],
        json!([]),
        "no bad request created a key"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn sts_and_restart_durability() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = start_node(&data, false).await;
    let client = Client::new(&node, ClientGroups::Default);
    let me = Signer::of(&node);

    let r = client
        .send(
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
            Some((&me, "sts")),
        )
        .await
        .unwrap();
    let xml = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, 200, "{xml}");
    assert!(xml.contains("<Account>111122223333</Account>"), "{xml}");

    let key = client.kms(&me, "CreateKey", json!({})).await.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        client
            .kms(
                &me,
                "CreateAlias",
                json!({"AliasName": "alias/keep", "TargetKeyId": key})
            )
            .await
            .status,
        200
    );
    let blob = client
        .kms(
            &me,
            "Encrypt",
            json!({"KeyId": "alias/keep", "Plaintext": B64.encode(b"kept")}),
        )
        .await
        .json()["CiphertextBlob"]
        .clone();
    node.shutdown().await;

    let node = start_node(&data, false).await;
    let client = Client::new(&node, ClientGroups::Default);
    let dec = client
        .kms(
            &me,
            "Decrypt",
            json!({"CiphertextBlob": blob, "KeyId": "alias/keep"}),
        )
        .await;
    assert_eq!(
        dec.json()["Plaintext"],
        B64.encode(b"kept"),
        "{:?}",
        dec.json()
    );
    node.shutdown().await;
}

/// A node asked for port 0 publishes the ports it got in the data directory,
/// and removes the file when it stops cleanly.
#[tokio::test]
async fn bound_addresses_are_published_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = start_node(&data, false).await;
    let path = data.join(keyfence_server::node::ADDR_FILE);
    let published: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        published,
        json!({
            "api": node.api_addr.to_string(),
            "metrics": node.metrics_addr.to_string(),
            "pid": std::process::id(),
        })
    );
    assert_ne!(node.api_addr.port(), 0);
    assert_ne!(node.metrics_addr.port(), 0);
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    node.shutdown().await;
    assert!(!path.exists());
}
