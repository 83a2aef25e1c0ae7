//! Answers that used to be wrong, over the real wire: aliases moved across key
//! kinds, an ignored `Recipient`, a key-id oracle in ciphertexts, and
//! validation in AWS's order with messages that echo only a short prefix.

mod support;

use base64::Engine;
use keyfence_server::tls::ClientGroups;
use serde_json::{json, Value};
use support::{start_node, Client, Reply, Signer};

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

fn code(reply: &Reply) -> String {
    reply.error_code().unwrap_or_else(|| {
        panic!(
            "expected an error, got {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )
    })
}

async fn create(client: &Client, signer: &Signer, body: Value) -> String {
    let reply = client.kms(signer, "CreateKey", body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    reply.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A raw (already JSON-encoded, possibly malformed) body for `operation`.
async fn raw(client: &Client, signer: &Signer, operation: &str, body: &[u8]) -> Reply {
    let target = format!("TrentService.{operation}");
    client
        .send(
            &[
                ("x-amz-target", &target),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            body.to_vec(),
            Some((signer, "kms")),
        )
        .await
        .unwrap()
}

/// The 16 bytes of a key id (a UUID).
fn uuid_bytes(id: &str) -> Vec<u8> {
    hex::decode(id.replace('-', "")).unwrap()
}

#[tokio::test]
async fn wrong_answers_are_right() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::Default);
    let s = Signer::of(&node);

    // UpdateAlias onto a key of another type or usage is refused; the alias
    // keeps working.
    let symmetric = create(&client, &s, json!({})).await;
    let symmetric2 = create(&client, &s, json!({})).await;
    let rsa = create(
        &client,
        &s,
        json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
    )
    .await;
    let hmac = create(
        &client,
        &s,
        json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}),
    )
    .await;
    let alias = "alias/wrong-answers";
    let r = client
        .kms(
            &s,
            "CreateAlias",
            json!({"AliasName": alias, "TargetKeyId": symmetric}),
        )
        .await;
    assert_eq!(r.status, 200);
    for other in [&rsa, &hmac] {
        let r = client
            .kms(
                &s,
                "UpdateAlias",
                json!({"AliasName": alias, "TargetKeyId": other}),
            )
            .await;
        assert_eq!(code(&r), "ValidationException", "{:?}", r.json());
    }
    let r = client
        .kms(&s, "Encrypt", json!({"KeyId": alias, "Plaintext": "aGk="}))
        .await;
    assert_eq!(r.status, 200, "Encrypt through the alias still works");
    let r = client
        .kms(
            &s,
            "UpdateAlias",
            json!({"AliasName": alias, "TargetKeyId": symmetric2}),
        )
        .await;
    assert_eq!(r.status, 200, "same kind: moved");

    // Recipient is refused, not ignored.
    let blob = client
        .kms(
            &s,
            "Encrypt",
            json!({"KeyId": symmetric, "Plaintext": "aGk="}),
        )
        .await
        .json()["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_string();
    let recipient =
        json!({"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": "AAAA"});
    for (op, body) in [
        (
            "Decrypt",
            json!({"CiphertextBlob": blob, "Recipient": recipient}),
        ),
        (
            "GenerateDataKey",
            json!({"KeyId": symmetric, "KeySpec": "AES_256", "Recipient": recipient}),
        ),
        (
            "GenerateRandom",
            json!({"NumberOfBytes": 16, "Recipient": recipient}),
        ),
    ] {
        let r = client.kms(&s, op, body).await;
        assert_eq!(code(&r), "UnsupportedOperationException", "{op}");
        assert!(r.json()["message"].as_str().unwrap().contains("Recipient"));
        assert!(r.json().get("Plaintext").is_none());
    }

    // Altered key-id bytes: InvalidCiphertext, whether or not the id exists.
    let bytes = B64.decode(&blob).unwrap();
    let mut altered = bytes.clone();
    altered[7] ^= 0x55;
    let mut other_key = bytes.clone();
    other_key[5..21].copy_from_slice(&uuid_bytes(&symmetric2));
    for tampered in [altered, other_key] {
        let r = client
            .kms(
                &s,
                "Decrypt",
                json!({"CiphertextBlob": B64.encode(&tampered)}),
            )
            .await;
        assert_eq!(code(&r), "InvalidCiphertextException");
    }

    // Validation in AWS's order.
    let long = "k".repeat(3000);
    let cases = [
        (
            "DescribeKey",
            r#"{"KeyId": null}"#.to_string(),
            "ValidationException",
        ),
        (
            "DescribeKey",
            r#"{"KeyId": ""}"#.to_string(),
            "ValidationException",
        ),
        (
            "DescribeKey",
            format!(r#"{{"KeyId": "{long}"}}"#),
            "ValidationException",
        ),
        (
            "ListKeys",
            r#"{"Marker": ""}"#.to_string(),
            "ValidationException",
        ),
        (
            "ListAliases",
            format!(r#"{{"Marker": "{long}"}}"#),
            "ValidationException",
        ),
        (
            "Encrypt",
            format!(
                r#"{{"KeyId": "{symmetric}", "Plaintext": "aGk=", "EncryptionAlgorithm": "ROT13"}}"#
            ),
            "ValidationException",
        ),
        (
            "DescribeKey",
            format!(r#"{{"KeyId": "{symmetric}"}} trailing"#),
            "SerializationException",
        ),
    ];
    for (op, body, expected) in cases {
        let r = raw(&client, &s, op, body.as_bytes()).await;
        assert_eq!(code(&r), expected, "{op} {}", &body[..body.len().min(80)]);
        assert_eq!(r.status, 400);
    }
    let mut bad_utf8 = format!(r#"{{"KeyId": "{symmetric}", "Description": "x"#).into_bytes();
    bad_utf8.extend_from_slice(b"\xc3\x28\"}");
    let r = raw(&client, &s, "UpdateKeyDescription", &bad_utf8).await;
    assert_eq!(code(&r), "SerializationException");

    // Messages repeat at most a short prefix of what the client sent: 64
    // characters where the API words the message, and no message is longer
    // than 640 characters (a core message naming a 2,000-character key id).
    let huge = "Z".repeat(10_000);
    let replies = [
        (
            raw(
                &client,
                &s,
                "Encrypt",
                format!(r#"{{"KeyId": "{symmetric}", "Plaintext": "aGk=", "EncryptionAlgorithm": "{huge}"}}"#)
                    .as_bytes(),
            )
            .await,
            64,
        ),
        (raw(&client, &s, &huge[..5000], b"{}").await, 64),
        (
            raw(
                &client,
                &s,
                "DescribeKey",
                format!(r#"{{"KeyId": "{}"}}"#, &huge[..2000]).as_bytes(),
            )
            .await,
            640,
        ),
    ];
    for (r, bound) in replies {
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(r.status >= 400 && r.status < 500, "{}", r.status);
        assert!(message.chars().count() <= 643, "{}", message.len());
        assert!(
            message.matches('Z').count() <= bound,
            "{} characters of input echoed: {message}",
            message.matches('Z').count()
        );
    }
    node.shutdown().await;
}
