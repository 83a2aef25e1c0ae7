//! The operation table and dispatch, through the API layer over a real SQLite store.

use std::collections::HashSet;
use std::sync::Arc;

use keyfence_core::{LocalRootKey, SystemClock};
use keyfence_crypto::SymmetricKey;
use keyfence_store::SqliteStore;
use serde_json::json;

use crate::api::names::AwsName;

use super::*;

fn kms(dir: &std::path::Path) -> Kms {
    let store = SqliteStore::open(&dir.join("keyfence.db")).unwrap();
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    Kms::open(Arc::new(store), &root, Arc::new(SystemClock), "us-east-1").unwrap()
}

#[test]
fn table_rows_are_unique_and_found_by_name() {
    let names: HashSet<&str> = OPERATIONS.iter().map(|o| o.name).collect();
    assert_eq!(names.len(), OPERATIONS.len(), "one row per operation");
    for op in OPERATIONS {
        assert!(std::ptr::eq(operation(op.name).unwrap(), op));
    }
    assert!(operation("MadeUpOperation").is_none());
    assert!(operation("encrypt").is_none(), "names are case-sensitive");
}

#[test]
fn every_row_is_dispatched_to_its_handler() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms(dir.path());
    for op in OPERATIONS {
        // An empty input reaches the handler, which names what is missing
        // (or, for the operations without required members, answers).
        let result = handle(&kms, "111122223333", op, b"{}");
        if let Err(e) = &result {
            assert_ne!(e.code, "UnknownOperationException", "{}", op.name);
            assert!(e.status < 500, "{}: {e:?}", op.name);
        }
    }
}

#[test]
fn heavy_work_goes_to_the_heavy_pool_and_writes_to_the_blocking_pool() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms(dir.path());
    let account = "111122223333";
    let create = |spec: &str, usage: &str| {
        let meta = kms
            .create_key(
                account,
                keyfence_core::service::CreateKeyInput {
                    spec: keyfence_core::KeySpec::from_aws_name(spec).unwrap(),
                    usage: keyfence_core::KeyUsage::from_aws_name(usage).unwrap(),
                    ..Default::default()
                },
            )
            .unwrap();
        meta.id.to_string()
    };
    let rsa_sign = create("RSA_2048", "SIGN_VERIFY");
    let rsa_encrypt = create("RSA_2048", "ENCRYPT_DECRYPT");
    let ml_dsa = create("ML_DSA_44", "SIGN_VERIFY");
    let ecc = create("ECC_NIST_P256", "SIGN_VERIFY");
    let symmetric = create("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let place_of = |name: &str, body: Value| {
        place(
            &kms,
            account,
            operation(name).unwrap(),
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    let (worker, blocking, heavy) = (Place::Worker, Place::BlockingPool, Place::HeavyPool);
    assert_eq!(place_of("Sign", json!({"KeyId": rsa_sign})), heavy);
    assert_eq!(place_of("Sign", json!({"KeyId": ml_dsa})), heavy);
    assert_eq!(place_of("Sign", json!({"KeyId": ecc})), worker);
    assert_eq!(place_of("Decrypt", json!({"KeyId": rsa_encrypt})), heavy);
    assert_eq!(place_of("Decrypt", json!({"KeyId": symmetric})), worker);
    assert_eq!(
        place_of("Decrypt", json!({"CiphertextBlob": "AAAA"})),
        worker
    );
    assert_eq!(
        place_of(
            "ReEncrypt",
            json!({"SourceKeyId": rsa_encrypt, "DestinationKeyId": symmetric})
        ),
        heavy
    );
    assert_eq!(
        place_of("ReEncrypt", json!({"DestinationKeyId": rsa_encrypt})),
        heavy
    );
    assert_eq!(
        place_of("ReEncrypt", json!({"DestinationKeyId": symmetric})),
        worker
    );
    assert_eq!(
        place_of("Sign", json!({"KeyId": 7})),
        worker,
        "unparsable: refused on the worker"
    );
    assert_eq!(place_of("Encrypt", json!({"KeyId": rsa_encrypt})), worker);
    assert_eq!(
        place_of("GenerateDataKeyPair", json!({"KeyId": symmetric})),
        heavy
    );
    assert_eq!(
        place_of("GetParametersForImport", json!({"KeyId": symmetric})),
        heavy
    );
    assert_eq!(place_of("CreateKey", json!({})), blocking);
    assert_eq!(
        place_of("CreateKey", json!({"KeySpec": "ECC_NIST_P384"})),
        blocking
    );
    assert_eq!(place_of("CreateKey", json!({"KeySpec": "RSA_4096"})), heavy);
    assert_eq!(
        place_of("CreateKey", json!({"KeySpec": "ML_DSA_65"})),
        heavy
    );
    assert_eq!(
        place_of("CreateKey", json!({"CustomerMasterKeySpec": "RSA_3072"})),
        heavy
    );
    assert_eq!(place_of("CreateAlias", json!({})), blocking);
    assert_eq!(
        place_of("Sign", json!({"KeyId": rsa_sign.replace('-', "")})),
        worker
    );
}

/// The refusals the API words itself, and the core's typed refusals it
/// words, read as they did when the core worded them.
#[test]
fn refusals_keep_their_wording() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms(dir.path());
    let account = "111122223333";
    let call = |name: &str, body: Value| {
        handle(
            &kms,
            account,
            operation(name).unwrap(),
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    let refused = |name: &str, body: Value| {
        let e = call(name, body).unwrap_err();
        (e.code, e.message)
    };
    let key = |spec: &str, usage: &str| {
        let out = call("CreateKey", json!({"KeySpec": spec, "KeyUsage": usage})).unwrap();
        (
            out["KeyMetadata"]["KeyId"].as_str().unwrap().to_string(),
            out["KeyMetadata"]["Arn"].as_str().unwrap().to_string(),
        )
    };
    let validation = |m: &str| ("ValidationException", m.to_string());
    assert_eq!(
        refused("CreateKey", json!({"KeySpec": "SM2"})),
        (
            "UnsupportedOperationException",
            "KeySpec SM2 is available only in AWS China Regions and is not supported by keyfence"
                .into()
        )
    );
    assert_eq!(
        refused("CreateKey", json!({"KeySpec": "AES_999"})),
        validation("1 validation error detected: Value 'AES_999' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set")
    );
    assert_eq!(
        refused(
            "CreateKey",
            json!({"KeySpec": "HMAC_256", "KeyUsage": "SIGN_VERIFY"})
        ),
        validation("KeyUsage SIGN_VERIFY is not compatible with KeySpec HMAC_256")
    );
    assert_eq!(
        refused("CreateKey", json!({"KeyUsage": "NOPE"})),
        validation("KeyUsage NOPE is not compatible with KeySpec SYMMETRIC_DEFAULT")
    );
    assert_eq!(
        refused("CreateKey", json!({"Origin": "AWS_CLOUDHSM"})),
        (
            "UnsupportedOperationException",
            "Origin AWS_CLOUDHSM is not supported by keyfence".into()
        )
    );
    let (sym, sym_arn) = key("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
    let (ecc, ecc_arn) = key("ECC_NIST_P256", "SIGN_VERIFY");
    let (rsa, rsa_arn) = key("RSA_2048", "ENCRYPT_DECRYPT");
    let (hmac, hmac_arn) = key("HMAC_256", "GENERATE_VERIFY_MAC");
    assert_eq!(
        refused("GenerateDataKey", json!({"KeyId": sym, "KeySpec": "AES_999"})),
        validation("1 validation error detected: Value 'AES_999' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]")
    );
    assert_eq!(
        refused("GenerateDataKey", json!({"KeyId": sym})),
        validation("Please specify either number of bytes or key spec.")
    );
    assert_eq!(
        refused(
            "GenerateDataKey",
            json!({"KeyId": sym, "KeySpec": "AES_256", "NumberOfBytes": 32})
        ),
        validation("KeySpec and NumberOfBytes are mutually exclusive; specify one")
    );
    assert_eq!(
        refused("Encrypt", json!({"KeyId": ecc, "Plaintext": "eA=="})),
        (
            "InvalidKeyUsageException",
            format!("{ecc_arn} has KeyUsage SIGN_VERIFY; this operation needs ENCRYPT_DECRYPT")
        )
    );
    assert_eq!(
        refused(
            "Sign",
            json!({"KeyId": sym, "Message": "eA==", "SigningAlgorithm": "ECDSA_SHA_256"})
        ),
        (
            "InvalidKeyUsageException",
            format!("{sym_arn} has KeyUsage ENCRYPT_DECRYPT; this operation needs SIGN_VERIFY")
        )
    );
    assert_eq!(
        refused("Encrypt", json!({"KeyId": rsa, "Plaintext": "eA=="})),
        ("InvalidKeyUsageException", format!("The encryption algorithm SYMMETRIC_DEFAULT is not compatible with {rsa_arn} (RSA_2048)"))
    );
    assert_eq!(
        refused("Encrypt", json!({"KeyId": sym, "Plaintext": "eA==", "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"})),
        ("InvalidKeyUsageException", format!("The encryption algorithm RSAES_OAEP_SHA_1 is not compatible with {sym_arn} (SYMMETRIC_DEFAULT)"))
    );
    assert_eq!(
        refused("Sign", json!({"KeyId": ecc, "Message": "eA==", "SigningAlgorithm": "RSASSA_PSS_SHA_256"})),
        ("InvalidKeyUsageException", format!("The signing algorithm RSASSA_PSS_SHA_256 is not compatible with {ecc_arn} (ECC_NIST_P256)"))
    );
    assert_eq!(
        refused(
            "GenerateMac",
            json!({"KeyId": hmac, "Message": "eA==", "MacAlgorithm": "HMAC_SHA_512"})
        ),
        (
            "InvalidKeyUsageException",
            format!("The MAC algorithm HMAC_SHA_512 is not compatible with {hmac_arn} (HMAC_256)")
        )
    );
    assert_eq!(
        refused(
            "GenerateMac",
            json!({"KeyId": hmac, "Message": "eA==", "MacAlgorithm": "MD5"})
        ),
        validation("MacAlgorithm MD5 is not a MAC algorithm")
    );
    assert_eq!(
        refused("Sign", json!({"KeyId": ecc, "Message": "eA==", "SigningAlgorithm": "ECDSA_SHA_256", "MessageType": "HEX"})),
        validation("1 validation error detected: Value 'HEX' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]")
    );
    assert_eq!(
        refused("GetPublicKey", json!({"KeyId": hmac})),
        (
            "UnsupportedOperationException",
            format!("{hmac_arn} is a HMAC_256 key; it has no public key")
        )
    );
    assert_eq!(
        refused("RotateKeyOnDemand", json!({"KeyId": rsa})),
        (
            "UnsupportedOperationException",
            format!("{rsa_arn} is a RSA_2048 key; only symmetric encryption keys can be rotated")
        )
    );
    let long = refused(
        "Encrypt",
        json!({"KeyId": rsa, "Plaintext": crate::api::wire::b64(&[1; 300]), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    );
    assert_eq!(
        long,
        (
            "ValidationException",
            "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes."
                .to_string()
        )
    );
    assert_eq!(
        refused(
            "GenerateDataKeyPair",
            json!({"KeyId": sym, "KeyPairSpec": "ML_KEM_768"})
        )
        .0,
        "UnsupportedOperationException"
    );
    assert_eq!(
        refused("GenerateDataKeyPair", json!({"KeyId": sym, "KeyPairSpec": "HMAC_256"})),
        validation("1 validation error detected: Value 'HMAC_256' at 'keyPairSpec' failed to satisfy constraint: Member must satisfy enum value set")
    );
    assert_eq!(
        refused("Encapsulate", json!({"KeyId": sym, "EncapsulationAlgorithm": "RSA"})),
        validation("1 validation error detected: Value 'RSA' at 'encapsulationAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [ML_KEM]")
    );
    assert_eq!(
        refused("DeriveSharedSecret", json!({"KeyId": sym, "KeyAgreementAlgorithm": "X25519", "PublicKey": "eA=="})),
        validation("1 validation error detected: Value 'X25519' at 'keyAgreementAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [ECDH]")
    );
    assert_eq!(
        refused(
            "GetParametersForImport",
            json!({"KeyId": sym, "WrappingAlgorithm": "XWING_AES_KEY_WRAP", "WrappingKeySpec": "RSA_2048"})
        ),
        validation(
            "XWING_AES_KEY_WRAP goes with WrappingKeySpec X25519_ML_KEM_768, and only with it"
        )
    );
    assert_eq!(
        refused("GetParametersForImport", json!({"KeyId": sym, "WrappingAlgorithm": "RSAES_PKCS1_V1_5", "WrappingKeySpec": "RSA_2048"})),
        validation("WrappingAlgorithm RSAES_PKCS1_V1_5 is not supported; use RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256 or XWING_AES_KEY_WRAP")
    );
    assert_eq!(
        refused("GetParametersForImport", json!({"KeyId": sym, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "ECC_NIST_P256"})),
        validation("WrappingKeySpec ECC_NIST_P256 is not supported; use RSA_2048, RSA_3072, RSA_4096 or X25519_ML_KEM_768")
    );
    let import = |extra: Value| {
        let mut body = json!({"KeyId": sym, "ImportToken": "eA==", "EncryptedKeyMaterial": "eA=="});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        refused("ImportKeyMaterial", body)
    };
    assert_eq!(
        refused("ListKeys", json!({"Limit": 0})),
        validation("1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000")
    );
    assert_eq!(
        refused("GenerateRandom", json!({})),
        validation("NumberOfBytes is required")
    );
    assert_eq!(
        refused("GenerateRandom", json!({"NumberOfBytes": 1025})),
        validation("1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024")
    );
    assert_eq!(
        refused("ScheduleKeyDeletion", json!({"KeyId": sym, "PendingWindowInDays": 6})),
        validation("1 validation error detected: Value '6' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30")
    );
    assert_eq!(
        refused("EnableKeyRotation", json!({"KeyId": sym, "RotationPeriodInDays": 2561})),
        validation("1 validation error detected: Value '2561' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value between 90 and 2560")
    );
    assert_eq!(
        refused("Encrypt", json!({"KeyId": sym, "Plaintext": ""})),
        validation("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and 4096 (got 0)")
    );
    assert_eq!(
        refused("Decrypt", json!({"CiphertextBlob": crate::api::wire::b64(&[0; 6145])})),
        validation("1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length between 1 and 6144 (got 6145)")
    );
    assert_eq!(
        refused("Sign", json!({"KeyId": ecc, "Message": "", "SigningAlgorithm": "ECDSA_SHA_256"})),
        validation("1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length between 1 and 4096 (got 0)")
    );
    assert_eq!(
        refused("UpdateKeyDescription", json!({"KeyId": sym, "Description": "d".repeat(8193)})),
        validation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192")
    );
    assert_eq!(
        import(json!({"ExpirationModel": "SOMETIMES"})),
        validation("ExpirationModel SOMETIMES is not valid")
    );
    assert_eq!(
        import(json!({"ExpirationModel": "KEY_MATERIAL_EXPIRES"})),
        validation("ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES")
    );
    assert_eq!(
        import(json!({"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ValidTo": 4e9})),
        validation("ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE")
    );
    assert_eq!(
        import(json!({"ValidTo": 1.0})),
        validation("ValidTo must be in the future and at most 365 days away")
    );

    // A missing key is named by its full ARN, however the request named it.
    let gone = "1234abcd-12ab-34cd-56ef-1234567890ab";
    let gone_arn = format!("arn:aws:kms:us-east-1:{account}:key/{gone}");
    let not_found = |arn: &str| ("NotFoundException", format!("Key '{arn}' does not exist"));
    assert_eq!(
        refused("DescribeKey", json!({"KeyId": gone})),
        not_found(&gone_arn)
    );
    assert_eq!(
        refused("DescribeKey", json!({"KeyId": gone_arn})),
        not_found(&gone_arn)
    );
    assert_eq!(
        refused("DescribeKey", json!({"KeyId": "not a key"})),
        ("NotFoundException", "Invalid keyId 'not a key'".into())
    );
    assert_eq!(
        refused("DisableKey", json!({"KeyId": "alias/app"})),
        (
            "NotFoundException",
            "Invalid keyId 'alias/app': this operation takes a key ID or key ARN, not an alias"
                .into()
        )
    );
    let alias_arn = format!("arn:aws:kms:us-east-1:{account}:alias/app");
    assert_eq!(
        refused("DescribeKey", json!({"KeyId": "alias/app"})),
        (
            "NotFoundException",
            format!("Alias {alias_arn} is not found.")
        )
    );
    assert_eq!(
        refused("DeleteAlias", json!({"AliasName": "alias/app"})),
        (
            "NotFoundException",
            format!("Alias {alias_arn} is not found.")
        )
    );
    assert_eq!(
        refused("CreateAlias", json!({"AliasName": "alias/aws/app", "TargetKeyId": sym})),
        (
            "InvalidAliasNameException",
            r#"Alias name "alias/aws/app" is invalid: the alias/aws/ prefix is reserved for AWS managed keys"#.into()
        )
    );
    call(
        "CreateAlias",
        json!({"AliasName": "alias/app", "TargetKeyId": sym}),
    )
    .unwrap();
    assert_eq!(
        refused(
            "CreateAlias",
            json!({"AliasName": "alias/app", "TargetKeyId": sym})
        ),
        (
            "AlreadyExistsException",
            format!("An alias with the name {alias_arn} already exists")
        )
    );
    assert_eq!(
        refused("ListKeys", json!({"Marker": "nope"})),
        (
            "InvalidMarkerException",
            "The request was rejected because the marker is not valid".into()
        )
    );
    assert_eq!(
        refused(
            "TagResource",
            json!({"KeyId": sym, "Tags": [{"TagKey": "aws:x", "TagValue": "v"}]})
        ),
        (
            "TagException",
            r#"Tag key "aws:x" uses the reserved prefix aws:"#.into()
        )
    );
    assert_eq!(
        refused("GenerateDataKey", json!({"KeyId": rsa, "KeySpec": "AES_256"})),
        (
            "InvalidKeyUsageException",
            format!("{rsa_arn} is an asymmetric key; data keys are encrypted under symmetric encryption keys")
        )
    );
    assert_eq!(
        refused("GetParametersForImport", json!({"KeyId": sym, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"})),
        (
            "UnsupportedOperationException",
            format!("{sym_arn} was not created with Origin EXTERNAL; its key material cannot be imported or deleted")
        )
    );
    call("DisableKey", json!({"KeyId": sym})).unwrap();
    assert_eq!(
        refused("Encrypt", json!({"KeyId": sym, "Plaintext": "eA=="})),
        ("DisabledException", format!("{sym_arn} is disabled."))
    );
    assert_eq!(
        refused("CancelKeyDeletion", json!({"KeyId": sym})),
        (
            "KMSInvalidStateException",
            format!("{sym_arn} is not pending deletion.")
        )
    );
    call(
        "ScheduleKeyDeletion",
        json!({"KeyId": sym, "PendingWindowInDays": 7}),
    )
    .unwrap();
    assert_eq!(
        refused("Encrypt", json!({"KeyId": sym, "Plaintext": "eA=="})),
        (
            "KMSInvalidStateException",
            format!("{sym_arn} is pending deletion.")
        )
    );
}

#[test]
fn key_material_ids_name_the_version_that_did_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let kms = kms(dir.path());
    let account = "111122223333";
    let call = |name: &str, body: serde_json::Value| {
        handle(
            &kms,
            account,
            operation(name).unwrap(),
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
    };
    let key = call("CreateKey", json!({}))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let data_key = call(
        "GenerateDataKey",
        json!({"KeyId": key, "KeySpec": "AES_256"}),
    );
    let first = data_key["KeyMaterialId"].as_str().unwrap().to_owned();
    assert_eq!(first.len(), 64, "{first}");
    assert!(first
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let without = call(
        "GenerateDataKeyWithoutPlaintext",
        json!({"KeyId": key, "NumberOfBytes": 16}),
    );
    assert_eq!(without["KeyMaterialId"], first.as_str());
    let pair = call(
        "GenerateDataKeyPairWithoutPlaintext",
        json!({"KeyId": key, "KeyPairSpec": "ECC_NIST_P256"}),
    );
    assert_eq!(pair["KeyMaterialId"], first.as_str());
    let blob = data_key["CiphertextBlob"].clone();
    assert_eq!(
        call("Decrypt", json!({"CiphertextBlob": blob}))["KeyMaterialId"],
        first.as_str()
    );

    // After a rotation, old ciphertexts still name the old material, new work the new.
    call("RotateKeyOnDemand", json!({"KeyId": key}));
    let second = call(
        "GenerateDataKey",
        json!({"KeyId": key, "NumberOfBytes": 32}),
    )["KeyMaterialId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    assert_eq!(
        call("Decrypt", json!({"CiphertextBlob": blob}))["KeyMaterialId"],
        first.as_str()
    );
    let re = call(
        "ReEncrypt",
        json!({"CiphertextBlob": blob, "DestinationKeyId": key}),
    );
    assert_eq!(re["SourceKeyMaterialId"], first.as_str());
    assert_eq!(re["DestinationKeyMaterialId"], second.as_str());

    // The same key id and version give the same id on any node.
    let id: keyfence_core::KeyId = key.parse().unwrap();
    assert_eq!(
        keyfence_core::KeyMaterialId::of(&id, 1).unwrap().to_hex(),
        first
    );
    // Asymmetric keys have no KeyMaterialId (as in AWS).
    let rsa = call(
        "CreateKey",
        json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
    )["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let enc = call(
        "Encrypt",
        json!({"KeyId": rsa, "Plaintext": "aGk=", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    );
    let dec = call(
        "Decrypt",
        json!({"KeyId": rsa, "CiphertextBlob": enc["CiphertextBlob"], "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    );
    assert!(dec.get("KeyMaterialId").is_none(), "{dec}");
}
