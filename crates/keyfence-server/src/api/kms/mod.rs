//! AWS KMS JSON 1.1 operations: request shapes in, core call, response shapes out.
//! Names and members follow the AWS KMS service model (botocore's service-2.json).
//!
//! This module holds the table of operations and the dispatch; each family of
//! operations has its own module with its request shapes and handlers.

mod aliases;
mod asymmetric;
mod crypto;
mod import;
mod keys;
mod rotation;
mod shapes;
mod tags;

use std::collections::BTreeMap;

use keyfence_core::{EncryptionContext, Kms};
use serde::Deserialize;
use serde_json::Value;

use super::wire::{parse, Blob};
use super::ApiError;

/// One KMS operation: its wire name, where it runs, whether it honours
/// `DryRun`, and its handler. [`OPERATIONS`] holds one row per operation; the
/// dispatcher and the metrics labels both read it.
pub struct Operation {
    /// The name in `X-Amz-Target: TrentService.<name>`, also its metrics label.
    pub name: &'static str,
    /// Whether it may block its thread, and so runs on the blocking pool
    /// instead of an async worker.
    pub runs: Runs,
    /// Whether its request has a `DryRun` member (every such operation is free
    /// of side effects here, so a dry run is the real checks without a result).
    pub dry_run: bool,
    handler: Handler,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("runs", &self.runs)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Parses the body into the operation's input and runs it.
type Handler = fn(&Ops<'_>, &[u8]) -> Result<Value, ApiError>;

/// Where an operation runs. Writes and CPU-heavy work (key generation, RSA and
/// ML-DSA private-key operations) go to the blocking pool, so that one slow
/// request cannot stall the other connections of an async worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// On the async worker: no durable write, little CPU.
    Worker,
    /// On the blocking pool: a durable write or key generation.
    BlockingPool,
    /// On the blocking pool when a key the request names is CPU-heavy
    /// ([`Kms::is_cpu_heavy_key`]), on the worker otherwise (the symmetric and
    /// elliptic-curve common path pays no thread hand-off).
    BlockingPoolForHeavyKeys,
}

/// Short names for the table.
const WORKER: Runs = Runs::Worker;
const BLOCKING: Runs = Runs::BlockingPool;
const HEAVY_KEY: Runs = Runs::BlockingPoolForHeavyKeys;
/// Honours `DryRun`.
const DRY_RUN: bool = true;
/// Has no `DryRun` member.
const NO_DRY_RUN: bool = false;

const fn op(name: &'static str, runs: Runs, dry_run: bool, handler: Handler) -> Operation {
    Operation {
        name,
        runs,
        dry_run,
        handler,
    }
}

/// Every operation this node serves, one row each.
pub static OPERATIONS: &[Operation] = &[
    // Key lifecycle.
    op("CreateKey", BLOCKING, NO_DRY_RUN, |o, b| {
        o.create_key(parse(b)?)
    }),
    op("DescribeKey", WORKER, NO_DRY_RUN, |o, b| {
        o.describe_key(parse(b)?)
    }),
    op("ListKeys", WORKER, NO_DRY_RUN, |o, b| {
        o.list_keys(parse(b)?)
    }),
    op("UpdateKeyDescription", BLOCKING, NO_DRY_RUN, |o, b| {
        o.update_key_description(parse(b)?)
    }),
    op("EnableKey", BLOCKING, NO_DRY_RUN, |o, b| {
        o.key_only(parse(b)?, Kms::enable_key)
    }),
    op("DisableKey", BLOCKING, NO_DRY_RUN, |o, b| {
        o.key_only(parse(b)?, Kms::disable_key)
    }),
    op("ScheduleKeyDeletion", BLOCKING, NO_DRY_RUN, |o, b| {
        o.schedule_key_deletion(parse(b)?)
    }),
    op("CancelKeyDeletion", BLOCKING, NO_DRY_RUN, |o, b| {
        o.cancel_key_deletion(parse(b)?)
    }),
    // Aliases.
    op("CreateAlias", BLOCKING, NO_DRY_RUN, |o, b| {
        o.alias(parse(b)?, Kms::create_alias)
    }),
    op("UpdateAlias", BLOCKING, NO_DRY_RUN, |o, b| {
        o.alias(parse(b)?, Kms::update_alias)
    }),
    op("DeleteAlias", BLOCKING, NO_DRY_RUN, |o, b| {
        o.delete_alias(parse(b)?)
    }),
    op("ListAliases", WORKER, NO_DRY_RUN, |o, b| {
        o.list_aliases(parse(b)?)
    }),
    // Symmetric cryptography and data keys.
    op("Encrypt", WORKER, DRY_RUN, |o, b| o.encrypt(parse(b)?)),
    op("Decrypt", HEAVY_KEY, DRY_RUN, |o, b| o.decrypt(parse(b)?)),
    op("ReEncrypt", HEAVY_KEY, DRY_RUN, |o, b| {
        o.re_encrypt(parse(b)?)
    }),
    op("GenerateDataKey", WORKER, DRY_RUN, |o, b| {
        o.generate_data_key(parse(b)?, true)
    }),
    op(
        "GenerateDataKeyWithoutPlaintext",
        WORKER,
        DRY_RUN,
        |o, b| o.generate_data_key(parse(b)?, false),
    ),
    op("GenerateRandom", WORKER, NO_DRY_RUN, |o, b| {
        o.generate_random(parse(b)?)
    }),
    // Rotation.
    op("EnableKeyRotation", BLOCKING, NO_DRY_RUN, |o, b| {
        o.enable_key_rotation(parse(b)?)
    }),
    op("DisableKeyRotation", BLOCKING, NO_DRY_RUN, |o, b| {
        o.key_only(parse(b)?, Kms::disable_key_rotation)
    }),
    op("GetKeyRotationStatus", WORKER, NO_DRY_RUN, |o, b| {
        o.get_key_rotation_status(parse(b)?)
    }),
    op("RotateKeyOnDemand", BLOCKING, NO_DRY_RUN, |o, b| {
        o.rotate_key_on_demand(parse(b)?)
    }),
    op("ListKeyRotations", WORKER, NO_DRY_RUN, |o, b| {
        o.list_key_rotations(parse(b)?)
    }),
    // Tags.
    op("TagResource", BLOCKING, NO_DRY_RUN, |o, b| {
        o.tag_resource(parse(b)?)
    }),
    op("UntagResource", BLOCKING, NO_DRY_RUN, |o, b| {
        o.untag_resource(parse(b)?)
    }),
    op("ListResourceTags", WORKER, NO_DRY_RUN, |o, b| {
        o.list_resource_tags(parse(b)?)
    }),
    // Asymmetric, HMAC and KEM keys.
    op("Sign", HEAVY_KEY, DRY_RUN, |o, b| o.sign(parse(b)?)),
    op("Verify", WORKER, DRY_RUN, |o, b| o.verify(parse(b)?)),
    op("GetPublicKey", WORKER, NO_DRY_RUN, |o, b| {
        o.get_public_key(parse(b)?)
    }),
    op("GenerateMac", WORKER, DRY_RUN, |o, b| {
        o.generate_mac(parse(b)?)
    }),
    op("VerifyMac", WORKER, DRY_RUN, |o, b| o.verify_mac(parse(b)?)),
    op("Encapsulate", WORKER, DRY_RUN, |o, b| {
        o.encapsulate(parse(b)?)
    }),
    op("Decapsulate", WORKER, DRY_RUN, |o, b| {
        o.decapsulate(parse(b)?)
    }),
    op("DeriveSharedSecret", WORKER, DRY_RUN, |o, b| {
        o.derive_shared_secret(parse(b)?)
    }),
    op("GenerateDataKeyPair", BLOCKING, DRY_RUN, |o, b| {
        o.generate_data_key_pair(parse(b)?, true)
    }),
    op(
        "GenerateDataKeyPairWithoutPlaintext",
        BLOCKING,
        DRY_RUN,
        |o, b| o.generate_data_key_pair(parse(b)?, false),
    ),
    // Imported key material.
    op("GetParametersForImport", BLOCKING, NO_DRY_RUN, |o, b| {
        o.get_parameters_for_import(parse(b)?)
    }),
    op("ImportKeyMaterial", BLOCKING, NO_DRY_RUN, |o, b| {
        o.import_key_material(parse(b)?)
    }),
    op("DeleteImportedKeyMaterial", BLOCKING, NO_DRY_RUN, |o, b| {
        o.delete_imported_key_material(parse(b)?)
    }),
];

/// The row of `name`, if this node serves it.
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// UnknownOperationException for a name no row has.
pub fn unknown_operation(name: &str) -> ApiError {
    super::messages::unknown_operation(name)
}

/// The members through which a request may name the key it uses.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NamedKeys {
    key_id: Option<String>,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
}

/// Whether this request runs on the blocking pool (see [`Runs`]). A body that
/// does not parse runs on the worker, where it is refused at once.
pub fn runs_on_blocking_pool(kms: &Kms, account: &str, operation: &Operation, body: &[u8]) -> bool {
    match operation.runs {
        Runs::Worker => false,
        Runs::BlockingPool => true,
        Runs::BlockingPoolForHeavyKeys => serde_json::from_slice::<NamedKeys>(body)
            .ok()
            .is_some_and(|n| {
                [n.key_id, n.source_key_id, n.destination_key_id]
                    .iter()
                    .flatten()
                    .any(|k| kms.is_cpu_heavy_key(account, k))
            }),
    }
}

#[derive(Deserialize)]
struct DryRunFlag {
    #[serde(rename = "DryRun")]
    dry_run: Option<bool>,
}

/// Whether the request asks for a dry run (only looked for when the body names it).
fn is_dry_run(operation: &Operation, body: &[u8]) -> Result<bool, ApiError> {
    if !operation.dry_run || !body.windows(6).any(|w| w == b"DryRun") {
        return Ok(false);
    }
    Ok(parse::<DryRunFlag>(body)?.dry_run.unwrap_or(false))
}

/// Runs one operation for a caller in `account`, returning the response document.
/// With `DryRun`, every check runs and success is reported as DryRunOperationException.
pub fn handle(
    kms: &Kms,
    account: &str,
    operation: &Operation,
    body: &[u8],
) -> Result<Value, ApiError> {
    let dry_run = is_dry_run(operation, body)?;
    let result = (operation.handler)(&Ops { kms, account }, body);
    match result {
        Ok(_) if dry_run => Err(ApiError {
            status: 412,
            code: "DryRunOperationException",
            message: "The request would have succeeded, but the DryRun option is set.".into(),
        }),
        other => other,
    }
}

type Context = Option<BTreeMap<String, String>>;

fn context(c: Context) -> Result<EncryptionContext, ApiError> {
    Ok(EncryptionContext::new(c.unwrap_or_default())?)
}

fn required_blob(b: Option<Blob>, member: &str) -> Result<Blob, ApiError> {
    b.ok_or_else(|| ApiError::validation(format!("missing field `{member}`")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    tag_key: String,
    tag_value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdInput {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyListInput {
    key_id: String,
    limit: Option<i64>,
    marker: Option<String>,
}

/// The caller and the KMS an operation runs against.
struct Ops<'a> {
    kms: &'a Kms,
    account: &'a str,
}

#[cfg(test)]
mod tests {
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
    fn heavy_keys_go_to_the_blocking_pool() {
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
        let on_pool = |name: &str, body: Value| {
            runs_on_blocking_pool(
                &kms,
                account,
                operation(name).unwrap(),
                &serde_json::to_vec(&body).unwrap(),
            )
        };
        assert!(on_pool("Sign", json!({"KeyId": rsa_sign})));
        assert!(on_pool("Sign", json!({"KeyId": ml_dsa})));
        assert!(!on_pool("Sign", json!({"KeyId": ecc})));
        assert!(on_pool("Decrypt", json!({"KeyId": rsa_encrypt})));
        assert!(!on_pool("Decrypt", json!({"KeyId": symmetric})));
        assert!(!on_pool("Decrypt", json!({"CiphertextBlob": "AAAA"})));
        assert!(on_pool(
            "ReEncrypt",
            json!({"SourceKeyId": rsa_encrypt, "DestinationKeyId": symmetric})
        ));
        assert!(on_pool(
            "ReEncrypt",
            json!({"DestinationKeyId": rsa_encrypt})
        ));
        assert!(!on_pool(
            "ReEncrypt",
            json!({"DestinationKeyId": symmetric})
        ));
        assert!(
            !on_pool("Sign", json!({"KeyId": 7})),
            "unparsable: refused on the worker"
        );
        assert!(!on_pool("Encrypt", json!({"KeyId": rsa_encrypt})));
        assert!(on_pool("GenerateDataKeyPair", json!({"KeyId": symmetric})));
        assert!(on_pool("CreateKey", json!({})));
        assert!(!on_pool(
            "Sign",
            json!({"KeyId": rsa_sign.replace('-', "")})
        ));
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
            ("UnsupportedOperationException", "KeySpec SM2 is available only in AWS China Regions and is not supported by keyfence".into())
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
                format!(
                    "The MAC algorithm HMAC_SHA_512 is not compatible with {hmac_arn} (HMAC_256)"
                )
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
                format!(
                    "{rsa_arn} is a RSA_2048 key; only symmetric encryption keys can be rotated"
                )
            )
        );
        let long = refused(
            "Encrypt",
            json!({"KeyId": rsa, "Plaintext": crate::api::wire::b64(&[1; 300]), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
        );
        assert_eq!(long.0, "ValidationException");
        assert!(long.1.starts_with("Plaintext of 300 bytes cannot be encrypted with RSAES_OAEP_SHA_256 under RSA_2048: "), "{}", long.1);
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
            let mut body =
                json!({"KeyId": sym, "ImportToken": "eA==", "EncryptedKeyMaterial": "eA=="});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            refused("ImportKeyMaterial", body)
        };
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
            validation(
                "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE"
            )
        );
        assert_eq!(
            import(json!({"ValidTo": 1.0})),
            validation("ValidTo must be in the future and at most 365 days away")
        );
    }
}
