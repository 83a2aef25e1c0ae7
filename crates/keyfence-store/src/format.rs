//! The stored form of key metadata: a JSON document per key, whose enum
//! values are the store's own names (mapped here, one table per enum). The
//! names happen to be the AWS wire names of format version 1, and must never
//! change without a schema migration: they are what is on disk.

use std::collections::BTreeMap;

use keyfence_core::fence::FenceId;
use keyfence_core::model::{
    ExpirationModel, ImportState, ImportWrapping, KeyFence, KeyMetadata, KeySpec, KeyState,
    KeyUsage, MultiRegionKeyType, Origin, PendingImportParameters, PendingRotation, RotationRecord,
    RotationSchedule, RotationType,
};
use keyfence_core::{StoreError, Timestamp};
use keyfence_crypto::asym::{self, WrappingAlgorithm};
use serde::{Deserialize, Serialize};

/// Schema version 8 (both stores): key rows may hold multi-Region keys, whose
/// metadata has a `multi_region` member and whose id is `mrk-…@region` (one
/// row per region: the primary and each replica). No table changes; the
/// version tells builds that cannot read such rows to refuse the database.
pub(crate) const V8_MULTI_REGION: &str = "-- schema version 8: multi-Region key rows\n";

/// A two-way table between an enum and its stored names.
trait StoredName: Copy + PartialEq + std::fmt::Debug + 'static {
    /// Every value with its stored name.
    const NAMES: &'static [(Self, &'static str)];

    fn stored_name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(v, _)| *v == self)
            .map(|(_, n)| *n)
            .expect("every value has a stored name")
    }

    fn from_stored_name(name: &str) -> Result<Self, StoreError> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(v, _)| *v)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "unknown {} {name:?}",
                    std::any::type_name::<Self>()
                ))
            })
    }
}

impl StoredName for asym::KeySpec {
    const NAMES: &'static [(Self, &'static str)] = {
        use asym::KeySpec::*;
        &[
            (Rsa2048, "RSA_2048"),
            (Rsa3072, "RSA_3072"),
            (Rsa4096, "RSA_4096"),
            (EccNistP256, "ECC_NIST_P256"),
            (EccNistP384, "ECC_NIST_P384"),
            (EccNistP521, "ECC_NIST_P521"),
            (EccSecgP256k1, "ECC_SECG_P256K1"),
            (EccNistEdwards25519, "ECC_NIST_EDWARDS25519"),
            (Hmac224, "HMAC_224"),
            (Hmac256, "HMAC_256"),
            (Hmac384, "HMAC_384"),
            (Hmac512, "HMAC_512"),
            (MlDsa44, "ML_DSA_44"),
            (MlDsa65, "ML_DSA_65"),
            (MlDsa87, "ML_DSA_87"),
            (MlKem512, "ML_KEM_512"),
            (MlKem768, "ML_KEM_768"),
            (MlKem1024, "ML_KEM_1024"),
        ]
    };
}

/// A key's spec: the symmetric name, or its asymmetric spec's.
fn spec_name(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
        KeySpec::Asymmetric(s) => s.stored_name(),
    }
}

fn spec_from_name(name: &str) -> Result<KeySpec, StoreError> {
    match name {
        "SYMMETRIC_DEFAULT" => Ok(KeySpec::SymmetricDefault),
        other => asym::KeySpec::from_stored_name(other).map(KeySpec::Asymmetric),
    }
}

impl StoredName for MultiRegionKeyType {
    const NAMES: &'static [(Self, &'static str)] = &[
        (MultiRegionKeyType::Primary, "PRIMARY"),
        (MultiRegionKeyType::Replica, "REPLICA"),
    ];
}

impl StoredName for KeyUsage {
    const NAMES: &'static [(Self, &'static str)] = &[
        (KeyUsage::SignVerify, "SIGN_VERIFY"),
        (KeyUsage::EncryptDecrypt, "ENCRYPT_DECRYPT"),
        (KeyUsage::GenerateVerifyMac, "GENERATE_VERIFY_MAC"),
        (KeyUsage::KeyAgreement, "KEY_AGREEMENT"),
        (KeyUsage::EncapsulateDecapsulate, "ENCAPSULATE_DECAPSULATE"),
    ];
}

impl StoredName for KeyState {
    const NAMES: &'static [(Self, &'static str)] = &[
        (KeyState::Enabled, "Enabled"),
        (KeyState::Disabled, "Disabled"),
        (KeyState::PendingDeletion, "PendingDeletion"),
        (KeyState::PendingImport, "PendingImport"),
    ];
}

impl StoredName for Origin {
    const NAMES: &'static [(Self, &'static str)] =
        &[(Origin::AwsKms, "AWS_KMS"), (Origin::External, "EXTERNAL")];
}

impl StoredName for ExpirationModel {
    const NAMES: &'static [(Self, &'static str)] = &[
        (ExpirationModel::Expires, "KEY_MATERIAL_EXPIRES"),
        (
            ExpirationModel::DoesNotExpire,
            "KEY_MATERIAL_DOES_NOT_EXPIRE",
        ),
    ];
}

impl StoredName for RotationType {
    const NAMES: &'static [(Self, &'static str)] = &[
        (RotationType::Automatic, "AUTOMATIC"),
        (RotationType::OnDemand, "ON_DEMAND"),
    ];
}

impl StoredName for WrappingAlgorithm {
    const NAMES: &'static [(Self, &'static str)] = &[
        (WrappingAlgorithm::RsaesOaepSha1, "RSAES_OAEP_SHA_1"),
        (WrappingAlgorithm::RsaesOaepSha256, "RSAES_OAEP_SHA_256"),
        (
            WrappingAlgorithm::RsaAesKeyWrapSha1,
            "RSA_AES_KEY_WRAP_SHA_1",
        ),
        (
            WrappingAlgorithm::RsaAesKeyWrapSha256,
            "RSA_AES_KEY_WRAP_SHA_256",
        ),
    ];
}

/// The X-Wing import wrapping's stored (wrapping key spec, algorithm) names.
const XWING_NAMES: (&str, &str) = ("X25519_ML_KEM_768", "XWING_AES_KEY_WRAP");

fn wrapping_names(w: ImportWrapping) -> (&'static str, &'static str) {
    match w {
        ImportWrapping::Rsa { spec, algorithm } => (spec.stored_name(), algorithm.stored_name()),
        ImportWrapping::XWing => XWING_NAMES,
    }
}

fn wrapping_from_names(spec: &str, algorithm: &str) -> Result<ImportWrapping, StoreError> {
    if (spec, algorithm) == XWING_NAMES {
        return Ok(ImportWrapping::XWing);
    }
    Ok(ImportWrapping::Rsa {
        spec: asym::KeySpec::from_stored_name(spec)?,
        algorithm: WrappingAlgorithm::from_stored_name(algorithm)?,
    })
}

/// [`KeyMetadata`] as stored.
#[derive(Serialize, Deserialize)]
struct Metadata {
    id: String,
    account: String,
    region: String,
    description: String,
    created: i64,
    state: String,
    deletion_date: Option<i64>,
    pending_window_days: Option<u32>,
    spec: String,
    usage: String,
    origin: String,
    rotation: Rotation,
    rotations: Vec<Rotated>,
    current_version: u32,
    tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    import: Option<Import>,
    /// Absent in rows written before geo-fencing: an unfenced key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fence: Option<Fence>,
    /// `PRIMARY` or `REPLICA` for a multi-Region key; absent in rows
    /// written before schema version 8 (single-Region keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multi_region: Option<String>,
}

/// A key's fence as stored: the id in hex and the canonical policy.
#[derive(Serialize, Deserialize)]
struct Fence {
    id: String,
    policy: String,
}

fn fence_id_from_hex(hex_id: &str) -> Result<FenceId, StoreError> {
    let bytes: [u8; 16] = hex::decode(hex_id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("fence id {hex_id:?}")))?;
    Ok(FenceId::from_bytes(bytes))
}

#[derive(Serialize, Deserialize)]
struct Rotation {
    enabled: bool,
    period_days: Option<u32>,
    next_rotation: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Rotated {
    date: i64,
    kind: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct Import {
    expiration_model: Option<String>,
    valid_to: Option<i64>,
    material_commitment: Option<Vec<u8>>,
    pending: Option<Pending>,
    /// Absent in rows written before imported material rotated: none pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_rotation: Option<PendingRotated>,
}

/// Imported material waiting for on-demand rotation, as stored.
#[derive(Serialize, Deserialize)]
struct PendingRotated {
    version: u32,
    commitment: Vec<u8>,
    expiration_model: String,
    valid_to: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    token: Vec<u8>,
    wrapped_private_key: Vec<u8>,
    domain_key_id: u32,
    wrapping_key_spec: String,
    wrapping_algorithm: String,
    valid_to: i64,
}

/// The stored JSON document of a key's metadata.
pub(crate) fn encode(m: &KeyMetadata) -> Result<String, StoreError> {
    let stored = Metadata {
        id: m.id.to_string(),
        account: m.account.clone(),
        region: m.region.clone(),
        description: m.description.clone(),
        created: m.created.0,
        state: m.state.stored_name().into(),
        deletion_date: m.deletion_date.map(|t| t.0),
        pending_window_days: m.pending_window_days,
        spec: spec_name(m.spec).into(),
        usage: m.usage.stored_name().into(),
        origin: m.origin.stored_name().into(),
        rotation: Rotation {
            enabled: m.rotation.enabled,
            period_days: m.rotation.period_days,
            next_rotation: m.rotation.next_rotation.map(|t| t.0),
        },
        rotations: m
            .rotations
            .iter()
            .map(|r| Rotated {
                date: r.date.0,
                kind: r.kind.stored_name().into(),
                version: r.version,
            })
            .collect(),
        current_version: m.current_version,
        tags: m.tags.clone(),
        import: m.import.as_ref().map(|i| Import {
            expiration_model: i.expiration_model.map(|e| e.stored_name().into()),
            valid_to: i.valid_to.map(|t| t.0),
            material_commitment: i.material_commitment.clone(),
            pending: i.pending.as_ref().map(|p| {
                let (spec, algorithm) = wrapping_names(p.wrapping);
                Pending {
                    token: p.token.clone(),
                    wrapped_private_key: p.wrapped_private_key.clone(),
                    domain_key_id: p.domain_key_id,
                    wrapping_key_spec: spec.into(),
                    wrapping_algorithm: algorithm.into(),
                    valid_to: p.valid_to.0,
                }
            }),
            pending_rotation: i.pending_rotation.as_ref().map(|p| PendingRotated {
                version: p.version,
                commitment: p.commitment.clone(),
                expiration_model: p.expiration_model.stored_name().into(),
                valid_to: p.valid_to.map(|t| t.0),
            }),
        }),
        fence: m.fence.as_ref().map(|f| Fence {
            id: hex::encode(f.id.as_bytes()),
            policy: f.policy.clone(),
        }),
        multi_region: m.multi_region.map(|t| t.stored_name().into()),
    };
    serde_json::to_string(&stored).map_err(|e| StoreError::Backend(format!("encode metadata: {e}")))
}

/// Reads a stored metadata document.
pub(crate) fn decode(json: &str) -> Result<KeyMetadata, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("metadata: {e}"));
    let m: Metadata = serde_json::from_str(json).map_err(corrupt)?;
    let import = match m.import {
        None => None,
        Some(i) => Some(ImportState {
            expiration_model: i
                .expiration_model
                .as_deref()
                .map(ExpirationModel::from_stored_name)
                .transpose()?,
            valid_to: i.valid_to.map(Timestamp),
            material_commitment: i.material_commitment,
            pending: match i.pending {
                None => None,
                Some(p) => Some(PendingImportParameters {
                    wrapping: wrapping_from_names(&p.wrapping_key_spec, &p.wrapping_algorithm)?,
                    token: p.token,
                    wrapped_private_key: p.wrapped_private_key,
                    domain_key_id: p.domain_key_id,
                    valid_to: Timestamp(p.valid_to),
                }),
            },
            pending_rotation: match i.pending_rotation {
                None => None,
                Some(p) => Some(PendingRotation {
                    version: p.version,
                    commitment: p.commitment,
                    expiration_model: ExpirationModel::from_stored_name(&p.expiration_model)?,
                    valid_to: p.valid_to.map(Timestamp),
                }),
            },
        }),
    };
    Ok(KeyMetadata {
        id: m
            .id
            .parse()
            .map_err(|()| StoreError::Corrupt(format!("key id {:?}", m.id)))?,
        account: m.account,
        region: m.region,
        description: m.description,
        created: Timestamp(m.created),
        state: KeyState::from_stored_name(&m.state)?,
        deletion_date: m.deletion_date.map(Timestamp),
        pending_window_days: m.pending_window_days,
        spec: spec_from_name(&m.spec)?,
        usage: KeyUsage::from_stored_name(&m.usage)?,
        origin: Origin::from_stored_name(&m.origin)?,
        rotation: RotationSchedule {
            enabled: m.rotation.enabled,
            period_days: m.rotation.period_days,
            next_rotation: m.rotation.next_rotation.map(Timestamp),
        },
        rotations: m
            .rotations
            .into_iter()
            .map(|r| {
                Ok(RotationRecord {
                    date: Timestamp(r.date),
                    kind: RotationType::from_stored_name(&r.kind)?,
                    version: r.version,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        current_version: m.current_version,
        tags: m.tags,
        import,
        fence: match m.fence {
            None => None,
            Some(f) => Some(KeyFence {
                id: fence_id_from_hex(&f.id)?,
                policy: f.policy,
            }),
        },
        multi_region: m
            .multi_region
            .as_deref()
            .map(MultiRegionKeyType::from_stored_name)
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata rows as keyfence wrote them before the store owned this format
    /// (one key of every kind; see keyfence-server's tests/stored_format.rs).
    const VERSION_1_ROWS: &str = include_str!("stored_v1.jsonl");

    #[test]
    fn version_1_rows_read_and_write_back_unchanged() {
        let mut seen = 0;
        for row in VERSION_1_ROWS.lines() {
            let meta = decode(row).unwrap();
            let again = encode(&meta).unwrap();
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(row).unwrap(),
                serde_json::from_str(&again).unwrap(),
            );
            assert_eq!(a, b, "{row}");
            assert_eq!(decode(&again).unwrap(), meta);
            seen += 1;
        }
        assert_eq!(seen, 12);
    }

    #[test]
    fn a_fence_is_stored_and_read_back_and_its_absence_means_unfenced() {
        let row = VERSION_1_ROWS.lines().next().unwrap();
        let mut meta = decode(row).unwrap();
        assert_eq!(meta.fence, None);
        assert!(!encode(&meta).unwrap().contains("fence"));
        let policy = "region: EU and not country: RU".to_string();
        meta.fence = Some(KeyFence {
            id: FenceId::of_policy(&policy).unwrap(),
            policy,
        });
        let json = encode(&meta).unwrap();
        assert_eq!(decode(&json).unwrap(), meta);
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["fence"]["policy"], "region: EU and not country: RU");
        let bad = json.replace(
            &hex::encode(meta.fence.as_ref().unwrap().id.as_bytes()),
            "zz",
        );
        assert!(matches!(decode(&bad), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn every_value_has_one_stored_name() {
        fn check<T: StoredName>(all: &[T]) {
            let mut names: Vec<&str> = all.iter().map(|v| v.stored_name()).collect();
            for v in all {
                assert_eq!(T::from_stored_name(v.stored_name()).unwrap(), *v);
            }
            names.sort();
            names.dedup();
            assert_eq!(names.len(), all.len());
        }
        check(asym::KeySpec::ALL);
        check(KeyUsage::ALL);
        check(WrappingAlgorithm::ALL);
        check(&[
            KeyState::Enabled,
            KeyState::Disabled,
            KeyState::PendingDeletion,
            KeyState::PendingImport,
        ]);
        for spec in KeySpec::all() {
            assert_eq!(spec_from_name(spec_name(spec)).unwrap(), spec);
        }
    }

    #[test]
    fn unknown_names_are_corrupt_records() {
        let row = VERSION_1_ROWS.lines().next().unwrap();
        for (from, to) in [
            ("\"SYMMETRIC_DEFAULT\"", "\"SYMMETRIC\""),
            ("\"ENCRYPT_DECRYPT\"", "\"encrypt_decrypt\""),
            ("\"Enabled\"", "\"On\""),
            ("\"AWS_KMS\"", "\"AWS\""),
            ("\"ON_DEMAND\"", "\"BY_HAND\""),
        ] {
            assert!(row.contains(from), "{from}");
            assert!(
                matches!(decode(&row.replace(from, to)), Err(StoreError::Corrupt(_))),
                "{to}"
            );
        }
    }
}
