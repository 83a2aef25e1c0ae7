//! No silent 500s: every operation of the table, fed malformed key ids,
//! garbled ciphertexts, signatures, MACs, public keys, import tokens and
//! wrapped material, out-of-range numbers, unknown enum names, members of the
//! wrong JSON type and bodies that are not JSON, answers with the typed 400
//! error a client can act on — never a 5xx.

mod support;

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_server::api::kms::OPERATIONS;
use keyfence_server::tls::ClientGroups;
use serde_json::{json, Value};
use support::{start_node, Client, Reply, Signer};

const NOT_FOUND: &[&str] = &["NotFoundException"];
const SERIALIZATION: &[&str] = &["SerializationException"];
const VALIDATION: &[&str] = &["ValidationException"];
const INVALID_CIPHERTEXT: &[&str] = &["InvalidCiphertextException"];
const MALFORMED_POLICY: &[&str] = &["MalformedPolicyDocumentException"];
/// The development account's default key policy.
const ADMIN_POLICY: &str = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}}"#;
/// A grantee for the grant operations.
const GRANTEE: &str = "arn:aws:iam::111122223333:user/grantee";
/// A well-formed grant id no grant has.
const NO_GRANT: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn b64(bytes: &[u8]) -> Value {
    json!(B64.encode(bytes))
}

/// Keys of every kind and valid values to start each request from.
struct World {
    symmetric: String,
    lifecycle: String,
    rsa_encrypt: String,
    ecc_sign: String,
    ecc_agreement: String,
    hmac: String,
    kem: String,
    external: String,
    ciphertext: Vec<u8>,
    rsa_ciphertext: Vec<u8>,
    signature: Vec<u8>,
    mac: Vec<u8>,
    kem_ciphertext: Vec<u8>,
    peer_public_key: Vec<u8>,
    import_token: Vec<u8>,
}

async fn ok(client: &Client, me: &Signer, op: &str, body: Value) -> Value {
    let reply = client.kms(me, op, body).await;
    assert_eq!(reply.status, 200, "{op}: {:?}", reply.json());
    reply.json()
}

fn blob(v: &Value, member: &str) -> Vec<u8> {
    B64.decode(v[member].as_str().unwrap()).unwrap()
}

impl World {
    async fn new(client: &Client, me: &Signer) -> Self {
        let key = |spec: &'static str, usage: &'static str, origin: &'static str| async move {
            ok(
                client,
                me,
                "CreateKey",
                json!({"KeySpec": spec, "KeyUsage": usage, "Origin": origin}),
            )
            .await["KeyMetadata"]["KeyId"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let symmetric = key("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "AWS_KMS").await;
        let lifecycle = key("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "AWS_KMS").await;
        let rsa_encrypt = key("RSA_2048", "ENCRYPT_DECRYPT", "AWS_KMS").await;
        let ecc_sign = key("ECC_NIST_P256", "SIGN_VERIFY", "AWS_KMS").await;
        let ecc_agreement = key("ECC_NIST_P256", "KEY_AGREEMENT", "AWS_KMS").await;
        let hmac = key("HMAC_256", "GENERATE_VERIFY_MAC", "AWS_KMS").await;
        let kem = key("ML_KEM_768", "ENCAPSULATE_DECAPSULATE", "AWS_KMS").await;
        let external = key("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "EXTERNAL").await;
        let message = b64(b"message");
        let ciphertext = blob(
            &ok(
                client,
                me,
                "Encrypt",
                json!({"KeyId": symmetric, "Plaintext": message}),
            )
            .await,
            "CiphertextBlob",
        );
        let rsa_ciphertext = blob(
            &ok(
                client,
                me,
                "Encrypt",
                json!({"KeyId": rsa_encrypt, "Plaintext": message, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
            )
            .await,
            "CiphertextBlob",
        );
        let signature = blob(
            &ok(
                client,
                me,
                "Sign",
                json!({"KeyId": ecc_sign, "Message": message, "SigningAlgorithm": "ECDSA_SHA_256"}),
            )
            .await,
            "Signature",
        );
        let mac = blob(
            &ok(
                client,
                me,
                "GenerateMac",
                json!({"KeyId": hmac, "Message": message, "MacAlgorithm": "HMAC_SHA_256"}),
            )
            .await,
            "Mac",
        );
        let kem_ciphertext = blob(
            &ok(
                client,
                me,
                "Encapsulate",
                json!({"KeyId": kem, "EncapsulationAlgorithm": "ML_KEM"}),
            )
            .await,
            "SharedSecretCiphertextBlob",
        );
        // A peer's public key on the same curve: another key's.
        let peer_public_key = blob(
            &ok(client, me, "GetPublicKey", json!({"KeyId": ecc_sign})).await,
            "PublicKey",
        );
        let import_token = blob(
            &ok(
                client,
                me,
                "GetParametersForImport",
                json!({"KeyId": external, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}),
            )
            .await,
            "ImportToken",
        );
        Self {
            symmetric,
            lifecycle,
            rsa_encrypt,
            ecc_sign,
            ecc_agreement,
            hmac,
            kem,
            external,
            ciphertext,
            rsa_ciphertext,
            signature,
            mac,
            kem_ciphertext,
            peer_public_key,
            import_token,
        }
    }

    /// A valid request for every operation; the test only ever sends it with
    /// one member broken.
    fn baselines(&self) -> BTreeMap<&'static str, Value> {
        let message = b64(b"message");
        let (sym, life) = (&self.symmetric, &self.lifecycle);
        BTreeMap::from([
            (
                "CreateKey",
                json!({"Description": "d", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "Origin": "AWS_KMS"}),
            ),
            ("DescribeKey", json!({"KeyId": sym})),
            ("ListKeys", json!({"Limit": 10})),
            (
                "UpdateKeyDescription",
                json!({"KeyId": life, "Description": "d"}),
            ),
            ("EnableKey", json!({"KeyId": life})),
            ("DisableKey", json!({"KeyId": life})),
            (
                "ScheduleKeyDeletion",
                json!({"KeyId": life, "PendingWindowInDays": 7}),
            ),
            ("CancelKeyDeletion", json!({"KeyId": life})),
            (
                "CreateAlias",
                json!({"AliasName": "alias/new", "TargetKeyId": sym}),
            ),
            (
                "UpdateAlias",
                json!({"AliasName": "alias/new", "TargetKeyId": sym}),
            ),
            ("DeleteAlias", json!({"AliasName": "alias/new"})),
            ("ListAliases", json!({"KeyId": sym, "Limit": 10})),
            (
                "Encrypt",
                json!({"KeyId": sym, "Plaintext": message, "EncryptionContext": {"a": "b"}}),
            ),
            (
                "Decrypt",
                json!({"KeyId": sym, "CiphertextBlob": b64(&self.ciphertext)}),
            ),
            (
                "ReEncrypt",
                json!({"CiphertextBlob": b64(&self.ciphertext), "SourceKeyId": sym, "DestinationKeyId": sym}),
            ),
            (
                "GenerateDataKey",
                json!({"KeyId": sym, "KeySpec": "AES_256"}),
            ),
            (
                "GenerateDataKeyWithoutPlaintext",
                json!({"KeyId": sym, "NumberOfBytes": 32}),
            ),
            ("GenerateRandom", json!({"NumberOfBytes": 16})),
            (
                "EnableKeyRotation",
                json!({"KeyId": life, "RotationPeriodInDays": 90}),
            ),
            ("DisableKeyRotation", json!({"KeyId": life})),
            ("GetKeyRotationStatus", json!({"KeyId": sym})),
            ("RotateKeyOnDemand", json!({"KeyId": life})),
            ("ListKeyRotations", json!({"KeyId": sym, "Limit": 10})),
            ("GetKeyLastUsage", json!({"KeyId": sym})),
            (
                "ReplicateKey",
                json!({"KeyId": sym, "ReplicaRegion": "eu-west-1", "Description": "d"}),
            ),
            (
                "UpdatePrimaryRegion",
                json!({"KeyId": sym, "PrimaryRegion": "eu-west-1"}),
            ),
            (
                "TagResource",
                json!({"KeyId": life, "Tags": [{"TagKey": "k", "TagValue": "v"}]}),
            ),
            ("UntagResource", json!({"KeyId": life, "TagKeys": ["k"]})),
            ("ListResourceTags", json!({"KeyId": sym, "Limit": 10})),
            (
                "Sign",
                json!({"KeyId": self.ecc_sign, "Message": message, "MessageType": "RAW", "SigningAlgorithm": "ECDSA_SHA_256"}),
            ),
            (
                "Verify",
                json!({"KeyId": self.ecc_sign, "Message": message, "Signature": b64(&self.signature), "SigningAlgorithm": "ECDSA_SHA_256"}),
            ),
            ("GetPublicKey", json!({"KeyId": self.ecc_sign})),
            (
                "GenerateMac",
                json!({"KeyId": self.hmac, "Message": message, "MacAlgorithm": "HMAC_SHA_256"}),
            ),
            (
                "VerifyMac",
                json!({"KeyId": self.hmac, "Message": message, "Mac": b64(&self.mac), "MacAlgorithm": "HMAC_SHA_256"}),
            ),
            (
                "Encapsulate",
                json!({"KeyId": self.kem, "EncapsulationAlgorithm": "ML_KEM"}),
            ),
            (
                "Decapsulate",
                json!({"KeyId": self.kem, "SharedSecretCiphertextBlob": b64(&self.kem_ciphertext), "EncapsulationAlgorithm": "ML_KEM"}),
            ),
            (
                "DeriveSharedSecret",
                json!({"KeyId": self.ecc_agreement, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(&self.peer_public_key)}),
            ),
            (
                "GenerateDataKeyPair",
                json!({"KeyId": sym, "KeyPairSpec": "ECC_NIST_P256", "EncryptionContext": {"a": "b"}}),
            ),
            (
                "GenerateDataKeyPairWithoutPlaintext",
                json!({"KeyId": sym, "KeyPairSpec": "ECC_NIST_P256"}),
            ),
            (
                "GetParametersForImport",
                json!({"KeyId": self.external, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}),
            ),
            (
                "ImportKeyMaterial",
                json!({"KeyId": self.external, "ImportToken": b64(&self.import_token), "EncryptedKeyMaterial": b64(&[7; 256]), "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
            ),
            ("DeleteImportedKeyMaterial", json!({"KeyId": self.external})),
            (
                "GetKeyPolicy",
                json!({"KeyId": sym, "PolicyName": "default"}),
            ),
            (
                "PutKeyPolicy",
                json!({"KeyId": life, "PolicyName": "default", "Policy": ADMIN_POLICY}),
            ),
            ("ListKeyPolicies", json!({"KeyId": sym, "Limit": 10})),
            (
                "CreateGrant",
                json!({"KeyId": sym, "GranteePrincipal": GRANTEE, "Operations": ["Encrypt"]}),
            ),
            ("ListGrants", json!({"KeyId": sym, "Limit": 10})),
            (
                "ListRetirableGrants",
                json!({"RetiringPrincipal": GRANTEE, "Limit": 10}),
            ),
            ("RetireGrant", json!({"KeyId": sym, "GrantId": NO_GRANT})),
            ("RevokeGrant", json!({"KeyId": sym, "GrantId": NO_GRANT})),
            ("CreateCustomKeyStore", json!({})),
            ("ConnectCustomKeyStore", json!({})),
            ("DeleteCustomKeyStore", json!({})),
            ("DescribeCustomKeyStores", json!({})),
            ("DisconnectCustomKeyStore", json!({})),
            ("UpdateCustomKeyStore", json!({})),
        ])
    }
}

/// Malformed key references: none of them names a key of this caller.
fn bad_key_refs() -> Vec<Value> {
    vec![
        json!(""),
        json!("not-a-key"),
        json!("alias/"),
        json!("alias/aws/reserved"),
        json!("alias/does-not-exist"),
        json!("12345678-1234-4234-8234-1234567890ab"),
        json!("12345678-1234-4234-8234-1234567890zz"),
        json!("arn:aws:kms:us-east-1:111122223333"),
        json!("arn:aws:kms:us-east-1:not-an-account:key/12345678-1234-4234-8234-1234567890ab"),
        json!("arn:aws:kms:eu-west-1:000000000000:key/12345678-1234-4234-8234-1234567890ab"),
        json!("arn:aws:kms:us-east-1:000000000000:alias/x"),
        json!("ключ-ключ-ключ-ключ-ключ-ключ"),
        json!("k".repeat(3000)),
        json!("\u{0}"),
    ]
}

fn flip_last(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    *b.last_mut().unwrap() ^= 1;
    b
}

/// Broken values of `member` in `op`'s request and the error codes each may get.
fn mutations(world: &World, op: &str, member: &str) -> Vec<(Value, &'static [&'static str])> {
    let mut out: Vec<(Value, &'static [&'static str])> = Vec::new();
    // Members of the wrong JSON type.
    let wrong_types = match member {
        "Limit" | "NumberOfBytes" | "PendingWindowInDays" | "RotationPeriodInDays" => {
            vec![json!("ten"), json!([1]), json!(true), json!(1.5)]
        }
        "Tags" | "TagKeys" => vec![json!(5), json!("k"), json!({"k": "v"}), json!([5])],
        "EncryptionContext" => vec![json!([1]), json!("a=b"), json!({"a": 1})],
        "Operations" => vec![json!(5), json!("Encrypt"), json!({"x": 1}), json!([5])],
        _ => vec![json!(12345), json!(true), json!(["x"]), json!({"x": 1})],
    };
    out.extend(wrong_types.into_iter().map(|v| (v, SERIALIZATION)));
    let blob_member = matches!(
        member,
        "Plaintext"
            | "CiphertextBlob"
            | "Message"
            | "Signature"
            | "Mac"
            | "SharedSecretCiphertextBlob"
            | "PublicKey"
            | "ImportToken"
            | "EncryptedKeyMaterial"
    );
    if blob_member {
        out.push((json!("not base64!"), SERIALIZATION));
        out.push((json!("QUJD="), SERIALIZATION));
    }
    match member {
        "KeyId" | "SourceKeyId" | "DestinationKeyId" | "TargetKeyId" => {
            // AWS's length constraint (1 to 2048) comes before the lookup.
            out.extend(bad_key_refs().into_iter().map(|v| {
                let len = v.as_str().map_or(0, |s| s.chars().count());
                let codes = if len == 0 || len > 2048 {
                    VALIDATION
                } else {
                    NOT_FOUND
                };
                (v, codes)
            }));
        }
        "AliasName" => {
            let codes: &[&str] = if op == "DeleteAlias" {
                NOT_FOUND
            } else {
                &["InvalidAliasNameException"]
            };
            // Without the `alias/` prefix AWS answers ValidationException.
            if op != "DeleteAlias" {
                out.push((json!("x"), VALIDATION));
            }
            for name in ["alias/", "alias/aws/x", "alias/has space", "alias/ключ"] {
                out.push((json!(name), codes));
            }
            // Longer than AWS's 256: the length constraint answers first.
            out.push((json!(format!("alias/{}", "a".repeat(300))), VALIDATION));
        }
        "CiphertextBlob" => {
            let good = if op == "Decrypt" || op == "ReEncrypt" {
                &world.ciphertext
            } else {
                unreachable!()
            };
            out.push((b64(&[]), VALIDATION));
            out.push((b64(&[0u8; 7000]), VALIDATION));
            for bad in [
                vec![1u8],
                vec![0u8; 64],
                b"KFB\x09garbage".to_vec(),
                good[..good.len() - 1].to_vec(),
                good[..40].to_vec(),
                flip_last(good),
                world.rsa_ciphertext.clone(),
            ] {
                out.push((b64(&bad), INVALID_CIPHERTEXT));
            }
        }
        "Plaintext" | "Message" => {
            out.push((b64(&[]), VALIDATION));
            out.push((b64(&[1u8; 4097]), VALIDATION));
            if op == "Verify" {
                out.push((b64(b"another message"), &["KMSInvalidSignatureException"]));
            }
            if op == "VerifyMac" {
                out.push((b64(b"another message"), &["KMSInvalidMacException"]));
            }
        }
        "Signature" => {
            out.push((b64(&[]), VALIDATION));
            out.push((b64(&[1u8; 7000]), VALIDATION));
            for bad in [
                vec![0u8; 64],
                vec![0x30, 0x02, 0x01],
                flip_last(&world.signature),
            ] {
                out.push((b64(&bad), &["KMSInvalidSignatureException"]));
            }
        }
        "Mac" => {
            for bad in [
                vec![],
                vec![0u8; 32],
                vec![1u8; 5000],
                flip_last(&world.mac),
            ] {
                out.push((b64(&bad), &["KMSInvalidMacException"]));
            }
        }
        "SharedSecretCiphertextBlob" => {
            let good = &world.kem_ciphertext;
            for bad in [vec![], vec![0u8; 16], good[..good.len() - 1].to_vec()] {
                out.push((b64(&bad), INVALID_CIPHERTEXT));
            }
        }
        "PublicKey" => {
            let good = &world.peer_public_key;
            for bad in [
                vec![],
                vec![0u8; 91],
                good[..good.len() - 1].to_vec(),
                flip_last(good),
                b"-----BEGIN PUBLIC KEY-----".to_vec(),
            ] {
                out.push((b64(&bad), VALIDATION));
            }
        }
        "ImportToken" => {
            for bad in [vec![], vec![0u8; 32], flip_last(&world.import_token)] {
                out.push((b64(&bad), &["InvalidImportTokenException"]));
            }
        }
        "EncryptedKeyMaterial" => {
            for bad in [vec![], vec![1u8], vec![0u8; 256], vec![0u8; 5000]] {
                out.push((b64(&bad), INVALID_CIPHERTEXT));
            }
        }
        "Limit" => {
            out.push((json!(0), VALIDATION));
            out.push((json!(100_000), VALIDATION));
            out.push((json!(-1), VALIDATION));
        }
        "NumberOfBytes" => {
            out.push((json!(0), VALIDATION));
            out.push((json!(1025), VALIDATION));
            out.push((json!(i64::MIN), VALIDATION));
        }
        "PendingWindowInDays" => {
            out.push((json!(6), VALIDATION));
            out.push((json!(31), VALIDATION));
        }
        "RotationPeriodInDays" => {
            out.push((json!(89), VALIDATION));
            out.push((json!(2561), VALIDATION));
        }
        "Description" => out.push((json!("d".repeat(8193)), VALIDATION)),
        "Tags" => {
            out.push((
                json!([{"TagKey": "aws:x", "TagValue": "v"}]),
                &["TagException"],
            ));
            out.push((json!([{"TagKey": "", "TagValue": "v"}]), VALIDATION));
            out.push((
                json!([{"TagKey": "AWS:x", "TagValue": "v"}]),
                &["TagException"],
            ));
            out.push((
                json!([{"TagKey": "k", "TagValue": "1"}, {"TagKey": "k", "TagValue": "2"}]),
                &["TagException"],
            ));
            out.push((json!([{"TagKey": "k"}]), VALIDATION));
        }
        "EncryptionContext" => {
            out.push((json!({"k": "v".repeat(9000)}), VALIDATION));
        }
        "KeySpec" if op == "CreateKey" => out.push((json!("RSA_1024"), VALIDATION)),
        "KeySpec" => out.push((json!("AES_512"), VALIDATION)),
        "KeyUsage" => out.push((json!("SIGN_VERIFY"), VALIDATION)),
        "Origin" => out.push((json!("AWS_CLOUDHSM"), &["UnsupportedOperationException"])),
        "MessageType" => out.push((json!("HEX"), VALIDATION)),
        "SigningAlgorithm" => {
            out.push((json!("ECDSA_SHA_1024"), VALIDATION));
            out.push((json!("RSASSA_PSS_SHA_256"), &["InvalidKeyUsageException"]));
        }
        "MacAlgorithm" => {
            out.push((json!("HMAC_SHA_1"), VALIDATION));
            out.push((json!("HMAC_SHA_512"), &["InvalidKeyUsageException"]));
        }
        "EncapsulationAlgorithm" | "KeyAgreementAlgorithm" => {
            out.push((json!("X25519"), VALIDATION));
        }
        "KeyPairSpec" => out.push((json!("RSA_1024"), VALIDATION)),
        "WrappingAlgorithm" | "WrappingKeySpec" => out.push((json!("RSA_1024"), VALIDATION)),
        "ExpirationModel" => out.push((json!("SOMETIMES"), VALIDATION)),
        "TagKeys" => {}
        "Policy" => {
            out.push((json!("not json"), MALFORMED_POLICY));
            out.push((json!("{\"Statement\": 3}"), MALFORMED_POLICY));
            out.push((
                json!("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"kms:*\"}}"),
                MALFORMED_POLICY,
            ));
        }
        "PolicyName" => out.push((json!("other"), NOT_FOUND)),
        "GranteePrincipal" | "RetiringPrincipal" => {
            out.push((json!("bob"), VALIDATION));
            out.push((json!("arn:aws:iam::1:user/x"), VALIDATION));
        }
        "Operations" => {
            out.push((json!([]), VALIDATION));
            out.push((json!(["Fly"]), VALIDATION));
        }
        "GrantId" => {
            out.push((json!("xyz"), &["InvalidGrantIdException"]));
            out.push((json!("f".repeat(64)), NOT_FOUND));
        }
        "ReplicaRegion" | "PrimaryRegion" => {
            // AWS's pattern (^([a-z]+-){2,3}\d+$) and length (1 to 32).
            out.push((json!("Not A Region"), VALIDATION));
            out.push((json!(format!("eu-{}-1", "a".repeat(40))), VALIDATION));
        }
        other => panic!("no mutations for {op}.{other}"),
    }
    out
}

fn check(op: &str, what: &str, reply: &Reply, expected: &[&str]) {
    let code = reply.error_code();
    assert!(
        reply.status < 500,
        "{op} with {what}: {} {:?}",
        reply.status,
        reply.json()
    );
    assert!(
        code.as_deref().is_some_and(|c| expected.contains(&c)),
        "{op} with {what}: got {} {:?}, expected one of {expected:?}",
        reply.status,
        reply.json()
    );
    assert_eq!(reply.status, 400, "{op} with {what}");
}

#[tokio::test]
async fn every_operation_refuses_malformed_input_with_a_typed_400() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("data"), false).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let me = Signer::of(&node);
    let world = World::new(&client, &me).await;
    // An alias for UpdateAlias to find.
    ok(
        &client,
        &me,
        "CreateAlias",
        json!({"AliasName": "alias/new", "TargetKeyId": world.symmetric}),
    )
    .await;
    let baselines = world.baselines();
    let names: Vec<&str> = OPERATIONS.iter().map(|o| o.name).collect();
    assert_eq!(
        baselines.keys().copied().collect::<Vec<_>>(),
        {
            let mut n = names.clone();
            n.sort();
            n
        },
        "a request for every operation of the table"
    );

    let mut sent = 0;
    for op in &names {
        let baseline = &baselines[op];
        // Bodies that are not a JSON object.
        for body in [
            &b"not json"[..],
            b"[1, 2]",
            b"\"KeyId\"",
            b"{",
            b"{\"KeyId\": }",
        ] {
            let target = format!("TrentService.{op}");
            let reply = client
                .send(
                    &[
                        ("x-amz-target", &target),
                        ("content-type", "application/x-amz-json-1.1"),
                    ],
                    body.to_vec(),
                    Some((&me, "kms")),
                )
                .await
                .unwrap();
            check(op, &String::from_utf8_lossy(body), &reply, SERIALIZATION);
            sent += 1;
        }
        for member in baseline.as_object().unwrap().keys() {
            for (value, expected) in mutations(&world, op, member) {
                let mut body = baseline.clone();
                body[member] = value.clone();
                let reply = client.kms(&me, op, body).await;
                let shown: String = value.to_string().chars().take(80).collect();
                check(op, &format!("{member} = {shown}"), &reply, expected);
                sent += 1;
            }
        }
    }
    // Last (an optional member left out may let a request succeed and change
    // a key): a missing required member is named, never a 5xx.
    for op in &names {
        let baseline = &baselines[op];
        for member in baseline.as_object().unwrap().keys() {
            let mut body = baseline.clone();
            body.as_object_mut().unwrap().remove(member);
            let reply = client.kms(&me, op, body).await;
            assert!(
                reply.status < 500,
                "{op} without {member}: {:?}",
                reply.json()
            );
            sent += 1;
        }
    }
    // RSA keys, whose ciphertexts do not name their key.
    let rsa = &world.rsa_encrypt;
    let oaep = "RSAES_OAEP_SHA_256";
    for (op, body, expected) in [
        (
            "Decrypt",
            json!({"KeyId": rsa, "CiphertextBlob": b64(&[0; 256]), "EncryptionAlgorithm": oaep}),
            INVALID_CIPHERTEXT,
        ),
        (
            "Decrypt",
            json!({"KeyId": rsa, "CiphertextBlob": b64(&flip_last(&world.rsa_ciphertext)), "EncryptionAlgorithm": oaep}),
            INVALID_CIPHERTEXT,
        ),
        (
            "Decrypt",
            json!({"KeyId": rsa, "CiphertextBlob": b64(&world.rsa_ciphertext), "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"}),
            INVALID_CIPHERTEXT,
        ),
        // A symmetric ciphertext names its key: naming another key is
        // IncorrectKeyException before any check of that key's usage (AWS's order).
        (
            "Decrypt",
            json!({"KeyId": rsa, "CiphertextBlob": b64(&world.ciphertext), "EncryptionAlgorithm": oaep}),
            &["IncorrectKeyException"],
        ),
        (
            "Decrypt",
            json!({"KeyId": rsa, "CiphertextBlob": b64(&world.rsa_ciphertext)}),
            &["InvalidKeyUsageException"],
        ),
        (
            "Decrypt",
            json!({"KeyId": rsa, "CiphertextBlob": b64(&world.rsa_ciphertext), "EncryptionAlgorithm": "RSAES_PKCS1"}),
            VALIDATION,
        ),
        (
            "Decrypt",
            json!({"KeyId": world.symmetric, "CiphertextBlob": b64(&world.rsa_ciphertext)}),
            INVALID_CIPHERTEXT,
        ),
        (
            "Encrypt",
            json!({"KeyId": rsa, "Plaintext": b64(&[1; 300]), "EncryptionAlgorithm": oaep}),
            VALIDATION,
        ),
        (
            "ReEncrypt",
            json!({"CiphertextBlob": b64(&[0; 256]), "SourceKeyId": rsa, "SourceEncryptionAlgorithm": oaep, "DestinationKeyId": world.symmetric}),
            INVALID_CIPHERTEXT,
        ),
        (
            "ReEncrypt",
            json!({"CiphertextBlob": b64(&world.ciphertext), "DestinationKeyId": rsa}),
            &["InvalidKeyUsageException"],
        ),
        (
            "Sign",
            json!({"KeyId": world.ecc_sign, "Message": b64(&[1; 31]), "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"}),
            VALIDATION,
        ),
        (
            "Sign",
            json!({"KeyId": world.hmac, "Message": b64(b"m"), "SigningAlgorithm": "ECDSA_SHA_256"}),
            &["InvalidKeyUsageException"],
        ),
        (
            "GetPublicKey",
            json!({"KeyId": world.hmac}),
            &["UnsupportedOperationException"],
        ),
        (
            "GetPublicKey",
            json!({"KeyId": world.symmetric}),
            &["UnsupportedOperationException"],
        ),
        (
            "DeriveSharedSecret",
            json!({"KeyId": world.ecc_agreement, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(&world.kem_ciphertext)}),
            VALIDATION,
        ),
        (
            "GenerateDataKeyPair",
            json!({"KeyId": rsa, "KeyPairSpec": "ECC_NIST_P256"}),
            &["InvalidKeyUsageException"],
        ),
    ] {
        let reply = client.kms(&me, op, body.clone()).await;
        check(op, &body.to_string(), &reply, expected);
        sent += 1;
    }
    eprintln!("{sent} malformed requests, none a 5xx");
    assert!(sent > 600, "{sent} requests");
    node.shutdown().await;
}
