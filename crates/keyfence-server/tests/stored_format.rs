//! A database written by keyfence before the store owned its stored format
//! (tests/data/v1-keyfence.db, made by keyfence at commit 22d2ca0 with a fixed
//! root key and clock; tests/data/v1-keyfence.json holds its ids, ciphertexts
//! and signatures) opens, and every key in it still works.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_core::{Kms, LocalRootKey, ManualClock, Timestamp};
use keyfence_crypto::SymmetricKey;
use keyfence_server::api::kms::{handle, operation};
use keyfence_server::api::ApiError;
use keyfence_store::SqliteStore;
use serde_json::{json, Value};

struct Old {
    kms: Kms,
    fixture: Value,
    _dir: tempfile::TempDir,
}

impl Old {
    fn open() -> Self {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let fixture: Value =
            serde_json::from_slice(&std::fs::read(data.join("v1-keyfence.json")).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("keyfence.db");
        std::fs::copy(data.join("v1-keyfence.db"), &db).unwrap();
        let root =
            SymmetricKey::from_slice(&B64.decode(fixture["root_key"].as_str().unwrap()).unwrap())
                .unwrap();
        let clock = ManualClock::new(Timestamp(fixture["now_ms"].as_i64().unwrap() + 60_000));
        let kms = Kms::open(
            Arc::new(SqliteStore::open(&db).unwrap()),
            &LocalRootKey::new(root),
            Arc::new(clock),
            "us-east-1",
        )
        .unwrap();
        Self {
            kms,
            fixture,
            _dir: dir,
        }
    }

    fn call(&self, op: &str, body: Value) -> Result<Value, ApiError> {
        handle(
            &self.kms,
            self.fixture["account"].as_str().unwrap(),
            operation(op).unwrap(),
            &serde_json::to_vec(&body).unwrap(),
        )
    }

    fn ok(&self, op: &str, body: Value) -> Value {
        self.call(op, body.clone())
            .unwrap_or_else(|e| panic!("{op} {body}: {e:?}"))
    }

    fn f(&self, name: &str) -> Value {
        self.fixture[name].clone()
    }

    fn describe(&self, key: &str) -> Value {
        self.ok("DescribeKey", json!({"KeyId": self.f(key)}))["KeyMetadata"].clone()
    }
}

fn b64(v: &[u8]) -> Value {
    json!(B64.encode(v))
}

#[test]
fn an_old_database_opens_and_decrypts() {
    let old = Old::open();
    let ctx = json!({"purpose": "fixture"});
    for (blob, plaintext) in [
        ("ciphertext_v1", &b"version one"[..]),
        ("ciphertext_v2", b"version two"),
        ("external_ciphertext", b"imported"),
    ] {
        let out = old.ok(
            "Decrypt",
            json!({"CiphertextBlob": old.f(blob), "EncryptionContext": ctx}),
        );
        assert_eq!(out["Plaintext"], b64(plaintext), "{blob}");
    }
    let dk = old.ok(
        "Decrypt",
        json!({"CiphertextBlob": old.f("data_key_ciphertext"), "EncryptionContext": ctx}),
    );
    assert_eq!(dk["Plaintext"], old.f("data_key"));
    let rsa = old.ok(
        "Decrypt",
        json!({"KeyId": old.f("rsa"), "CiphertextBlob": old.f("rsa_ciphertext"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    );
    assert_eq!(rsa["Plaintext"], b64(b"rsa secret"));
    old.ok(
        "Verify",
        json!({"KeyId": old.f("ecc"), "Message": b64(b"signed message"), "Signature": old.f("ecc_signature"), "SigningAlgorithm": "ECDSA_SHA_256"}),
    );
    old.ok(
        "VerifyMac",
        json!({"KeyId": old.f("hmac"), "Message": b64(b"mac message"), "Mac": old.f("mac"), "MacAlgorithm": "HMAC_SHA_384"}),
    );
    let kem = old.ok(
        "Decapsulate",
        json!({"KeyId": old.f("kem"), "SharedSecretCiphertextBlob": old.f("kem_ciphertext"), "EncapsulationAlgorithm": "ML_KEM"}),
    );
    assert_eq!(kem["SharedSecret"], old.f("kem_shared_secret"));
    for (key, alg) in [
        ("ed25519", "ED25519_SHA_512"),
        ("ml_dsa", "ML_DSA_SHAKE_256"),
    ] {
        let sig = old.ok(
            "Sign",
            json!({"KeyId": old.f(key), "Message": b64(b"m"), "SigningAlgorithm": alg}),
        );
        old.ok(
            "Verify",
            json!({"KeyId": old.f(key), "Message": b64(b"m"), "Signature": sig["Signature"], "SigningAlgorithm": alg}),
        );
    }
    old.ok("GetPublicKey", json!({"KeyId": old.f("agreement")}));
    let alias = old.ok(
        "Encrypt",
        json!({"KeyId": "alias/fixture", "Plaintext": b64(b"x")}),
    );
    assert_eq!(alias["KeyId"], old.describe("symmetric")["Arn"]);
}

#[test]
fn an_old_database_keeps_every_metadata_field() {
    let old = Old::open();
    let expect = [
        (
            "symmetric",
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            "Enabled",
            "AWS_KMS",
        ),
        ("rsa", "RSA_2048", "ENCRYPT_DECRYPT", "Enabled", "AWS_KMS"),
        ("ecc", "ECC_NIST_P256", "SIGN_VERIFY", "Enabled", "AWS_KMS"),
        (
            "ed25519",
            "ECC_NIST_EDWARDS25519",
            "SIGN_VERIFY",
            "Enabled",
            "AWS_KMS",
        ),
        ("ml_dsa", "ML_DSA_44", "SIGN_VERIFY", "Enabled", "AWS_KMS"),
        (
            "hmac",
            "HMAC_384",
            "GENERATE_VERIFY_MAC",
            "Enabled",
            "AWS_KMS",
        ),
        (
            "kem",
            "ML_KEM_768",
            "ENCAPSULATE_DECAPSULATE",
            "Enabled",
            "AWS_KMS",
        ),
        (
            "agreement",
            "ECC_NIST_P384",
            "KEY_AGREEMENT",
            "Enabled",
            "AWS_KMS",
        ),
        (
            "external",
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            "Enabled",
            "EXTERNAL",
        ),
        (
            "pending_import",
            "HMAC_256",
            "GENERATE_VERIFY_MAC",
            "PendingImport",
            "EXTERNAL",
        ),
        (
            "disabled",
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            "Disabled",
            "AWS_KMS",
        ),
        (
            "pending_deletion",
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            "PendingDeletion",
            "AWS_KMS",
        ),
    ];
    for (key, spec, usage, state, origin) in expect {
        let m = old.describe(key);
        assert_eq!(
            (&m["KeySpec"], &m["KeyUsage"], &m["KeyState"], &m["Origin"]),
            (&json!(spec), &json!(usage), &json!(state), &json!(origin)),
            "{key}"
        );
        assert_eq!(m["Description"], json!(format!("{spec} {usage}")));
    }
    let ext = old.describe("external");
    assert_eq!(ext["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert!(ext["ValidTo"].is_number());
    assert_eq!(
        old.describe("pending_deletion")["PendingDeletionWindowInDays"],
        7
    );
    let rotation = old.ok("GetKeyRotationStatus", json!({"KeyId": old.f("symmetric")}));
    assert_eq!(
        (
            &rotation["KeyRotationEnabled"],
            &rotation["RotationPeriodInDays"]
        ),
        (&json!(true), &json!(180))
    );
    let rotations = old.ok("ListKeyRotations", json!({"KeyId": old.f("symmetric")}));
    assert_eq!(rotations["Rotations"][0]["RotationType"], "ON_DEMAND");
    let tags = old.ok("ListResourceTags", json!({"KeyId": old.f("hmac")}));
    assert_eq!(
        tags["Tags"],
        json!([{"TagKey": "team", "TagValue": "core"}])
    );
    // The outstanding X-Wing import parameters were stored with their names:
    // a wrong token is refused as such, not as a corrupt record.
    let e = old
        .call(
            "ImportKeyMaterial",
            json!({"KeyId": old.f("pending_import"), "ImportToken": b64(&[0; 32]), "EncryptedKeyMaterial": b64(&[0; 64]), "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
        )
        .unwrap_err();
    assert_eq!(e.code, "InvalidImportTokenException");
    // Changes are written in the same format and read back.
    old.ok(
        "TagResource",
        json!({"KeyId": old.f("rsa"), "Tags": [{"TagKey": "new", "TagValue": "tag"}]}),
    );
}
