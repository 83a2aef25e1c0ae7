//! Service tests over an in-memory store (the SQLite adapter has its own tests
//! in keyfence-store, and the server's end-to-end tests use the real file).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use keyfence_crypto::asym::{
    self, KeyAgreementAlgorithm, MacAlgorithm, MessageType,
    SigningAlgorithm::{EcdsaSha256, RsassaPssSha256},
    WrappingAlgorithm::{self, RsaAesKeyWrapSha256, RsaesOaepSha1, RsaesOaepSha256},
};
use keyfence_crypto::SymmetricKey;

use super::*;
use crate::clock::ManualClock;
use crate::model::{
    EncryptionAlgorithm, ImportExpiry, ImportWrapping, KeyMetadata, KeySpec, KeyState, KeyUsage,
    Origin,
};
use crate::{CryptoOperation, Invalid, Member, Unsupported};
use asym::KeySpec::{
    EccNistEdwards25519, EccNistP256, EccNistP384, Hmac256, Hmac384, MlKem768, Rsa2048, Rsa3072,
};

const OAEP_256: EncryptionAlgorithm =
    EncryptionAlgorithm::Rsa(asym::EncryptionAlgorithm::RsaesOaepSha256);
const OAEP_1: EncryptionAlgorithm =
    EncryptionAlgorithm::Rsa(asym::EncryptionAlgorithm::RsaesOaepSha1);

fn rsa_wrapping(algorithm: WrappingAlgorithm, spec: asym::KeySpec) -> ImportWrapping {
    ImportWrapping::Rsa { spec, algorithm }
}
use crate::root::LocalRootKey;
use crate::store::{
    ChangeBatch, FeedCursor, Revision, Snapshot, StoreError, StoredKey, VersionRecord,
};
use crate::EncryptionContext;

mod feed_lock;
mod fenced;
mod regions;

/// A store that keeps everything in memory; shared between Kms instances to
/// simulate restarts. Conditional writes check revisions; it has no feed
/// (one node: nothing to follow), but its feed read can be made to hang.
#[derive(Default)]
struct MemoryStore(Mutex<Snapshot>, FeedGate);

/// Holds the next `changes_since` until the test releases it (a database
/// that hangs): it reports entering on the first channel and waits on the
/// second. Counts every `changes_since`.
#[derive(Default)]
struct FeedGate(
    Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
    std::sync::atomic::AtomicUsize,
);

impl MemoryStore {
    fn change(
        &self,
        id: &KeyId,
        expected: Revision,
        f: impl FnOnce(&mut StoredKey),
    ) -> Result<Revision, StoreError> {
        let mut s = self.0.lock().unwrap();
        let k = s.keys.iter_mut().find(|k| k.metadata.id == *id);
        match k {
            Some(k) if k.revision == expected => {
                f(k);
                k.revision += 1;
                Ok(k.revision)
            }
            other => Err(StoreError::Stale {
                key_id: *id,
                expected,
                found: other.map(|k| k.revision),
            }),
        }
    }
}

impl Store for MemoryStore {
    fn is_shared(&self) -> bool {
        false
    }
    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn load_key(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        let s = self.0.lock().unwrap();
        Ok(s.keys.iter().find(|k| k.metadata.id == *id).cloned())
    }
    fn load_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        let s = self.0.lock().unwrap();
        Ok(s.aliases
            .iter()
            .find(|a| a.account == account && a.region == region && a.name.as_str() == name)
            .cloned())
    }
    fn key_revision(&self, id: &KeyId) -> Result<Option<Revision>, StoreError> {
        Ok(self.load_key(id)?.map(|k| k.revision))
    }
    fn changes_since(&self, cursor: FeedCursor) -> Result<ChangeBatch, StoreError> {
        self.1 .1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let gate = self.1 .0.lock().unwrap().take();
        if let Some((entered, release)) = gate {
            entered.send(()).unwrap();
            release.recv().unwrap();
        }
        Ok(ChangeBatch {
            changes: Vec::new(),
            cursor,
            rewound: false,
        })
    }
    fn insert_domain_key(&self, key: &DomainKeyRecord) -> Result<(), StoreError> {
        self.0.lock().unwrap().domain_keys.push(key.clone());
        Ok(())
    }
    fn insert_key(&self, key: &KeyMetadata, versions: &[VersionRecord]) -> Result<(), StoreError> {
        self.0.lock().unwrap().keys.push(StoredKey {
            metadata: key.clone(),
            versions: versions.to_vec(),
            revision: 1,
        });
        Ok(())
    }
    fn replace_versions(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.change(&key.id, expected, |k| {
            k.metadata = key.clone();
            k.versions = versions.to_vec();
        })
    }
    fn update_key(&self, key: &KeyMetadata, expected: Revision) -> Result<Revision, StoreError> {
        self.change(&key.id, expected, |k| k.metadata = key.clone())
    }
    fn add_version(
        &self,
        key: &KeyMetadata,
        version: &VersionRecord,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.change(&key.id, expected, |k| {
            k.metadata = key.clone();
            k.versions.push(version.clone());
        })
    }
    fn delete_key(&self, id: &KeyId, expected: Revision) -> Result<(), StoreError> {
        self.change(id, expected, |_| ())?;
        let mut s = self.0.lock().unwrap();
        s.keys.retain(|k| k.metadata.id != *id);
        s.aliases.retain(|a| a.target != *id);
        Ok(())
    }
    fn insert_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        if s.aliases
            .iter()
            .any(|a| a.account == alias.account && a.region == alias.region && a.name == alias.name)
        {
            return Err(StoreError::Conflict("alias".into()));
        }
        s.aliases.push(alias.clone());
        Ok(())
    }
    fn update_alias(&self, alias: &Alias) -> Result<Option<Alias>, StoreError> {
        let mut s = self.0.lock().unwrap();
        let found = s.aliases.iter_mut().find(|a| {
            a.account == alias.account && a.region == alias.region && a.name == alias.name
        });
        Ok(found.map(|a| {
            a.target = alias.target;
            a.updated = alias.updated;
            a.clone()
        }))
    }
    fn delete_alias(&self, account: &str, region: &str, name: &str) -> Result<bool, StoreError> {
        let mut s = self.0.lock().unwrap();
        let before = s.aliases.len();
        s.aliases
            .retain(|a| !(a.account == account && a.region == region && a.name.as_str() == name));
        Ok(s.aliases.len() != before)
    }
}

const A: &str = "111122223333";
const B: &str = "444455556666";

struct Fixture {
    store: Arc<MemoryStore>,
    root: LocalRootKey,
    clock: Arc<ManualClock>,
    kms: Kms,
}

impl Fixture {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::default());
        let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
        let kms = Kms::open(store.clone(), &root, clock.clone(), "us-east-1").unwrap();
        Self {
            store,
            root,
            clock,
            kms,
        }
    }

    fn restart(self) -> Self {
        let kms = Kms::open(
            self.store.clone(),
            &self.root,
            self.clock.clone(),
            "us-east-1",
        )
        .unwrap();
        Self { kms, ..self }
    }

    fn key(&self) -> KeyMetadata {
        self.kms.create_key(A, CreateKeyInput::default()).unwrap()
    }
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
    .unwrap()
}

#[test]
fn encrypt_decrypt_with_context() {
    let f = Fixture::new();
    let key = f.key();
    let c = ctx(&[("purpose", "test")]);
    let out = f
        .kms
        .encrypt(A, &key.id.to_string(), b"secret", &c, None)
        .unwrap();
    assert_eq!(out.key_arn, key.arn());
    let plain = f.kms.decrypt(A, &out.ciphertext, &c, None, None).unwrap();
    assert_eq!(plain.plaintext.expose(), b"secret");
    assert_eq!(plain.key_arn, key.arn());
    for wrong in [
        ctx(&[]),
        ctx(&[("purpose", "other")]),
        ctx(&[("purpose", "test"), ("x", "y")]),
    ] {
        assert!(matches!(
            f.kms.decrypt(A, &out.ciphertext, &wrong, None, None),
            Err(KmsError::InvalidCiphertext(_))
        ));
    }
}

#[test]
fn key_is_named_four_ways() {
    let f = Fixture::new();
    let key = f.key();
    f.kms
        .create_alias(A, "alias/app", &key.id.to_string())
        .unwrap();
    for r in [
        key.id.to_string(),
        key.arn(),
        "alias/app".into(),
        "arn:aws:kms:us-east-1:111122223333:alias/app".into(),
    ] {
        assert_eq!(f.kms.describe_key(A, &r).unwrap().id, key.id, "{r}");
    }
    assert!(matches!(
        f.kms
            .describe_key(A, "arn:aws:kms:eu-west-1:111122223333:alias/app"),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        f.kms.describe_key(A, "alias/nope"),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        f.kms.create_alias(A, "alias/app", &key.id.to_string()),
        Err(KmsError::AlreadyExists { .. })
    ));
    assert!(matches!(
        f.kms.create_alias(A, "alias/other", "alias/app"),
        Err(KmsError::NotFound(_))
    ));
    for refused in ["alias/app", "arn:aws:kms:us-east-1:111122223333:alias/app"] {
        assert!(
            matches!(f.kms.disable_key(A, refused), Err(KmsError::NotFound(_))),
            "{refused}"
        );
        assert!(matches!(
            f.kms.schedule_key_deletion(A, refused, Some(7)),
            Err(KmsError::NotFound(_))
        ));
        assert!(matches!(
            f.kms.list_resource_tags(A, refused, None, None),
            Err(KmsError::NotFound(_))
        ));
    }
    assert_eq!(
        f.kms.describe_key(A, &key.id.to_string()).unwrap().state,
        KeyState::Enabled
    );
}

#[test]
fn accounts_are_isolated() {
    let f = Fixture::new();
    let key = f.key();
    let out = f.kms.encrypt(A, &key.arn(), b"x", &ctx(&[]), None).unwrap();
    assert!(matches!(
        f.kms.describe_key(B, &key.id.to_string()),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        f.kms.describe_key(B, &key.arn()),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        f.kms.decrypt(B, &out.ciphertext, &ctx(&[]), None, None),
        // A blob naming no key of the caller's account: no key-id oracle.
        Err(KmsError::InvalidCiphertext(_))
    ));
    assert!(f.kms.list_keys(B, None, None).unwrap().items.is_empty());
    f.kms
        .create_alias(A, "alias/same", &key.id.to_string())
        .unwrap();
    let kb = f.kms.create_key(B, CreateKeyInput::default()).unwrap();
    f.kms
        .create_alias(B, "alias/same", &kb.id.to_string())
        .unwrap();
    assert_eq!(f.kms.describe_key(B, "alias/same").unwrap().id, kb.id);
    assert!(matches!(
        f.kms.create_alias(B, "alias/x", &key.id.to_string()),
        Err(KmsError::NotFound(_))
    ));
}

#[test]
fn rotation_keeps_old_ciphertexts() {
    let f = Fixture::new();
    let key = f.key();
    let id = key.id.to_string();
    let before = f
        .kms
        .encrypt(A, &id, b"v1", &ctx(&[]), None)
        .unwrap()
        .ciphertext;
    f.kms.rotate_key_on_demand(A, &id).unwrap();
    let after = f
        .kms
        .encrypt(A, &id, b"v2", &ctx(&[]), None)
        .unwrap()
        .ciphertext;
    assert_eq!(
        keyfence_crypto::blob::CiphertextBlob::parse(&after)
            .unwrap()
            .header
            .key_version,
        2
    );
    let f = f.restart();
    assert_eq!(
        f.kms
            .decrypt(A, &before, &ctx(&[]), None, None)
            .unwrap()
            .plaintext
            .expose(),
        b"v1"
    );
    assert_eq!(
        f.kms
            .decrypt(A, &after, &ctx(&[]), None, None)
            .unwrap()
            .plaintext
            .expose(),
        b"v2"
    );
    let (_, rotations) = f.kms.list_key_rotations(A, &id, false, None, None).unwrap();
    assert_eq!(rotations.items.len(), 1);
    assert_eq!(
        rotations.items[0].rotation.as_ref().unwrap().kind,
        crate::model::RotationType::OnDemand
    );
}

#[test]
fn automatic_rotation_follows_the_clock() {
    let f = Fixture::new();
    let id = f.key().id.to_string();
    assert!(matches!(
        f.kms.enable_key_rotation(A, &id, Some(89)),
        Err(KmsError::OutOfBounds {
            member: Member::RotationPeriodInDays,
            ..
        })
    ));
    f.kms.enable_key_rotation(A, &id, Some(90)).unwrap();
    f.clock.advance_days(89);
    assert_eq!(f.kms.run_due_tasks().unwrap(), 0);
    f.clock.advance_days(1);
    assert_eq!(f.kms.run_due_tasks().unwrap(), 1);
    let status = f.kms.get_key_rotation_status(A, &id).unwrap();
    assert!(status.enabled);
    assert_eq!(status.metadata.current_version, 2);
    assert_eq!(status.next_rotation, Some(f.clock.now().plus_days(90)));
}

#[test]
fn states_are_enforced() {
    let f = Fixture::new();
    let id = f.key().id.to_string();
    let blob = f
        .kms
        .encrypt(A, &id, b"x", &ctx(&[]), None)
        .unwrap()
        .ciphertext;
    f.kms.disable_key(A, &id).unwrap();
    assert!(matches!(
        f.kms.encrypt(A, &id, b"x", &ctx(&[]), None),
        Err(KmsError::Disabled { .. })
    ));
    assert!(matches!(
        f.kms.decrypt(A, &blob, &ctx(&[]), None, None),
        Err(KmsError::Disabled { .. })
    ));
    f.kms.enable_key(A, &id).unwrap();
    for bad in [6, 31] {
        assert!(matches!(
            f.kms.schedule_key_deletion(A, &id, Some(bad)),
            Err(KmsError::OutOfBounds {
                member: Member::PendingWindowInDays,
                ..
            })
        ));
    }
    let scheduled = f.kms.schedule_key_deletion(A, &id, Some(7)).unwrap();
    assert_eq!(scheduled.deletion_date, f.clock.now().plus_days(7));
    assert!(matches!(
        f.kms.encrypt(A, &id, b"x", &ctx(&[]), None),
        Err(KmsError::InvalidState { .. })
    ));
    assert!(matches!(
        f.kms.enable_key(A, &id),
        Err(KmsError::InvalidState { .. })
    ));
    let meta = f.kms.cancel_key_deletion(A, &id).unwrap();
    assert_eq!(meta.state, KeyState::Disabled);
    assert!(matches!(
        f.kms.cancel_key_deletion(A, &id),
        Err(KmsError::InvalidState { .. })
    ));
}

#[test]
fn key_past_its_deletion_date_answers_as_destroyed_and_the_sweeper_destroys_it() {
    let f = Fixture::new();
    let id = f.key().id.to_string();
    f.kms.create_alias(A, "alias/doomed", &id).unwrap();
    let blob = f
        .kms
        .encrypt(A, &id, b"x", &ctx(&[]), None)
        .unwrap()
        .ciphertext;
    f.kms.schedule_key_deletion(A, &id, Some(7)).unwrap();
    f.clock.advance_days(6);
    assert_eq!(
        f.kms.describe_key(A, &id).unwrap().state,
        KeyState::PendingDeletion
    );
    f.clock.advance_days(1);
    assert!(matches!(
        f.kms.decrypt(A, &blob, &ctx(&[]), None, None),
        Err(KmsError::InvalidCiphertext(_))
    ));
    assert!(matches!(
        f.kms.describe_key(A, &id),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        f.kms.encrypt(A, "alias/doomed", b"x", &ctx(&[]), None),
        Err(KmsError::NotFound(_))
    ));
    assert!(f.kms.list_keys(A, None, None).unwrap().items.is_empty());
    assert!(f
        .kms
        .list_aliases(A, None, None, None)
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        f.store.0.lock().unwrap().keys.len(),
        1,
        "requests never write: the key is still stored until the sweeper runs"
    );
    assert_eq!(f.kms.run_due_tasks().unwrap(), 1);
    assert!(
        f.store.0.lock().unwrap().keys.is_empty(),
        "material must be gone from the store"
    );
    assert!(f.store.0.lock().unwrap().aliases.is_empty());
    assert_eq!(f.kms.run_due_tasks().unwrap(), 0);
    let f = f.restart();
    assert!(matches!(
        f.kms.describe_key(A, &id),
        Err(KmsError::NotFound(_))
    ));
}

#[test]
fn sweeper_destroys_without_access() {
    let f = Fixture::new();
    let id = f.key().id.to_string();
    f.kms.schedule_key_deletion(A, &id, None).unwrap();
    f.clock.advance_days(30);
    assert_eq!(f.kms.run_due_tasks().unwrap(), 1);
    assert!(f.store.0.lock().unwrap().keys.is_empty());
}

/// A named key that is not the ciphertext's is IncorrectKeyException before
/// any check of the named key's usage or state, in Decrypt and ReEncrypt.
#[test]
fn incorrect_key_comes_before_usage_checks() {
    let f = Fixture::new();
    let k1 = f.key();
    let signer = create(&f, EccNistP256, KeyUsage::SignVerify);
    let blob = f
        .kms
        .encrypt(A, &k1.arn(), b"x", &ctx(&[]), None)
        .unwrap()
        .ciphertext;
    assert!(matches!(
        f.kms
            .decrypt(A, &blob, &ctx(&[]), Some(&signer.arn()), None),
        Err(KmsError::IncorrectKey)
    ));
    // ReEncrypt: the wrong source wins over a destination that cannot encrypt.
    assert!(matches!(
        f.kms.re_encrypt(
            A,
            &blob,
            &ctx(&[]),
            Some(&signer.arn()),
            &signer.arn(),
            &ctx(&[]),
            None,
            None
        ),
        Err(KmsError::IncorrectKey)
    ));
    // Not a blob of another key: the named key's usage is what is wrong.
    assert!(matches!(
        f.kms
            .decrypt(A, b"garbage", &ctx(&[]), Some(&signer.arn()), None),
        Err(KmsError::WrongKeyUsage { .. })
    ));
}

#[test]
fn decrypt_checks_named_key_and_blob() {
    let f = Fixture::new();
    let (k1, k2) = (f.key(), f.key());
    let blob = f
        .kms
        .encrypt(A, &k1.arn(), b"x", &ctx(&[]), None)
        .unwrap()
        .ciphertext;
    assert!(matches!(
        f.kms.decrypt(A, &blob, &ctx(&[]), Some(&k2.arn()), None),
        Err(KmsError::IncorrectKey)
    ));
    assert!(f
        .kms
        .decrypt(A, &blob, &ctx(&[]), Some(&k1.arn()), None)
        .is_ok());
    assert!(matches!(
        f.kms.decrypt(A, b"garbage", &ctx(&[]), None, None),
        Err(KmsError::InvalidCiphertext(_))
    ));
    assert!(matches!(
        f.kms.decrypt(A, &vec![0; 6145], &ctx(&[]), None, None),
        Err(KmsError::OutOfBounds {
            member: Member::CiphertextBlob,
            ..
        })
    ));
    let mut flipped = blob.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        f.kms.decrypt(A, &flipped, &ctx(&[]), None, None),
        Err(KmsError::InvalidCiphertext(_))
    ));
}

#[test]
fn re_encrypt_and_data_keys() {
    let f = Fixture::new();
    let (k1, k2) = (f.key(), f.key());
    let c1 = ctx(&[("a", "1")]);
    let c2 = ctx(&[("b", "2")]);
    let dk = f
        .kms
        .generate_data_key(A, &k1.arn(), DataKeySize::Bytes(32), &c1, true)
        .unwrap();
    let plain = dk.plaintext.unwrap();
    assert_eq!(plain.len(), 32);
    let re = f
        .kms
        .re_encrypt(A, &dk.ciphertext, &c1, None, &k2.arn(), &c2, None, None)
        .unwrap();
    assert_eq!(
        (re.source_key_arn.as_str(), re.key_arn.as_str()),
        (k1.arn().as_str(), k2.arn().as_str())
    );
    assert_eq!(
        f.kms
            .decrypt(A, &re.ciphertext, &c2, None, None)
            .unwrap()
            .plaintext,
        plain
    );
    assert!(DataKeySize::number_of_bytes(0).is_err());
    assert!(DataKeySize::number_of_bytes(1025).is_err());
    assert_eq!(DataKeySize::number_of_bytes(16), Ok(DataKeySize::Bytes(16)));
    assert!(f.kms.generate_random(0).is_err());
    assert_eq!(f.kms.generate_random(1024).unwrap().len(), 1024);
}

#[test]
fn plaintext_limits() {
    let f = Fixture::new();
    let id = f.key().id.to_string();
    assert!(matches!(
        f.kms.encrypt(A, &id, b"", &ctx(&[]), None),
        Err(KmsError::OutOfBounds {
            member: Member::Plaintext,
            ..
        })
    ));
    assert!(matches!(
        f.kms.encrypt(A, &id, &[0; 4097], &ctx(&[]), None),
        Err(KmsError::OutOfBounds {
            member: Member::Plaintext,
            ..
        })
    ));
    assert!(f.kms.encrypt(A, &id, &[0; 4096], &ctx(&[]), None).is_ok());
    assert!(matches!(
        f.kms.encrypt(A, &id, b"x", &ctx(&[]), Some(OAEP_256)),
        Err(KmsError::DataKeyNeedsSymmetric { .. }
            | KmsError::WrongKeyUsage { .. }
            | KmsError::IncompatibleAlgorithm { .. })
    ));
}

#[test]
fn list_keys_pages_and_tags() {
    let f = Fixture::new();
    let mut ids: Vec<String> = (0..5).map(|_| f.key().id.to_string()).collect();
    ids.sort();
    let p1 = f.kms.list_keys(A, Some(2), None).unwrap();
    let p2 = f
        .kms
        .list_keys(A, Some(2), p1.next_marker.as_deref())
        .unwrap();
    let p3 = f
        .kms
        .list_keys(A, Some(2), p2.next_marker.as_deref())
        .unwrap();
    assert!(p3.next_marker.is_none());
    let seen: Vec<String> = [p1, p2, p3]
        .into_iter()
        .flat_map(|p| p.items)
        .map(|k| k.id.to_string())
        .collect();
    assert_eq!(seen, ids);
    f.kms
        .tag_resource(
            A,
            &ids[0],
            vec![("team".into(), "a".into()), ("env".into(), "prod".into())],
        )
        .unwrap();
    f.kms.untag_resource(A, &ids[0], &["env".into()]).unwrap();
    let tags = f.kms.list_resource_tags(A, &ids[0], None, None).unwrap();
    assert_eq!(tags.items, vec![("team".to_string(), "a".to_string())]);
    assert!(matches!(
        f.kms
            .tag_resource(A, &ids[0], vec![("aws:x".into(), "v".into())]),
        Err(KmsError::InvalidTag(_))
    ));
}

fn create(f: &Fixture, spec: asym::KeySpec, usage: KeyUsage) -> KeyMetadata {
    f.kms
        .create_key(
            A,
            CreateKeyInput {
                spec: KeySpec::Asymmetric(spec),
                usage,
                ..Default::default()
            },
        )
        .unwrap()
}

#[test]
fn usage_must_fit_the_spec() {
    let f = Fixture::new();
    for (spec, usage) in [
        (KeySpec::Asymmetric(EccNistP256), KeyUsage::EncryptDecrypt),
        (KeySpec::Asymmetric(Hmac256), KeyUsage::SignVerify),
        (KeySpec::Asymmetric(MlKem768), KeyUsage::SignVerify),
        (
            KeySpec::Asymmetric(EccNistEdwards25519),
            KeyUsage::KeyAgreement,
        ),
        (KeySpec::SymmetricDefault, KeyUsage::SignVerify),
        (KeySpec::Asymmetric(Rsa2048), KeyUsage::KeyAgreement),
    ] {
        let r = f.kms.create_key(
            A,
            CreateKeyInput {
                spec,
                usage,
                ..Default::default()
            },
        );
        assert_eq!(
            r.err(),
            Some(KmsError::UsageNotForSpec { usage, spec }),
            "{spec:?}/{usage:?}"
        );
    }
}

#[test]
fn sign_and_verify_survive_a_restart() {
    let f = Fixture::new();
    let key = create(&f, EccNistP256, KeyUsage::SignVerify);
    let id = key.id.to_string();
    let out = f
        .kms
        .sign(A, &id, b"message", MessageType::Raw, EcdsaSha256)
        .unwrap();
    assert_eq!(out.key_arn, key.arn());
    let (_, public) = f.kms.get_public_key(A, &id).unwrap();
    let f = f.restart();
    assert_eq!(
        f.kms.get_public_key(A, &id).unwrap().1,
        public,
        "the same key pair after restart"
    );
    f.kms
        .verify(
            A,
            &id,
            b"message",
            MessageType::Raw,
            &out.signature,
            EcdsaSha256,
        )
        .unwrap();
    assert!(matches!(
        f.kms.verify(
            A,
            &id,
            b"messagE",
            MessageType::Raw,
            &out.signature,
            EcdsaSha256
        ),
        Err(KmsError::InvalidSignature)
    ));
    assert!(matches!(
        f.kms.sign(A, &id, b"m", MessageType::Raw, RsassaPssSha256),
        Err(KmsError::DataKeyNeedsSymmetric { .. }
            | KmsError::WrongKeyUsage { .. }
            | KmsError::IncompatibleAlgorithm { .. })
    ));
    assert!(matches!(
        f.kms
            .sign(A, &id, b"short", MessageType::Digest, EcdsaSha256),
        Err(KmsError::Refused {
            operation: CryptoOperation::Sign,
            ..
        })
    ));
    assert!(f
        .kms
        .sign(A, &id, &[7; 32], MessageType::Digest, EcdsaSha256)
        .is_ok());
    assert!(matches!(
        f.kms
            .sign(A, &id, &[0; 4097], MessageType::Raw, EcdsaSha256),
        Err(KmsError::OutOfBounds {
            member: Member::Message,
            ..
        })
    ));
    assert!(matches!(
        f.kms.encrypt(A, &id, b"x", &ctx(&[]), None),
        Err(KmsError::DataKeyNeedsSymmetric { .. }
            | KmsError::WrongKeyUsage { .. }
            | KmsError::IncompatibleAlgorithm { .. })
    ));
    assert!(matches!(
        f.kms.rotate_key_on_demand(A, &id),
        Err(KmsError::SpecCannot {
            operation: crate::SpecOperation::Rotate,
            ..
        })
    ));
    assert!(matches!(
        f.kms.enable_key_rotation(A, &id, None),
        Err(KmsError::SpecCannot {
            operation: crate::SpecOperation::Rotate,
            ..
        })
    ));
    f.kms.disable_key(A, &id).unwrap();
    assert!(matches!(
        f.kms.sign(A, &id, b"m", MessageType::Raw, EcdsaSha256),
        Err(KmsError::Disabled { .. })
    ));
}

#[test]
fn hmac_kem_ecdh_and_rsa_encryption() {
    let f = Fixture::new();
    let hmac = create(&f, Hmac384, KeyUsage::GenerateVerifyMac)
        .id
        .to_string();
    let (_, mac) = f
        .kms
        .generate_mac(A, &hmac, b"data", MacAlgorithm::HmacSha384)
        .unwrap();
    assert_eq!(mac.len(), 48);
    f.kms
        .verify_mac(A, &hmac, b"data", &mac, MacAlgorithm::HmacSha384)
        .unwrap();
    assert!(matches!(
        f.kms
            .verify_mac(A, &hmac, b"datA", &mac, MacAlgorithm::HmacSha384),
        Err(KmsError::InvalidMac)
    ));
    assert!(matches!(
        f.kms
            .generate_mac(A, &hmac, b"data", MacAlgorithm::HmacSha256),
        Err(KmsError::DataKeyNeedsSymmetric { .. }
            | KmsError::WrongKeyUsage { .. }
            | KmsError::IncompatibleAlgorithm { .. })
    ));
    assert!(matches!(
        f.kms.get_public_key(A, &hmac),
        Err(KmsError::SpecCannot {
            operation: crate::SpecOperation::GetPublicKey,
            ..
        })
    ));

    let kem = create(&f, MlKem768, KeyUsage::EncapsulateDecapsulate)
        .id
        .to_string();
    let (_, ct, shared) = f.kms.encapsulate(A, &kem).unwrap();
    assert_eq!(f.kms.decapsulate(A, &kem, &ct).unwrap().1, shared);
    assert!(matches!(
        f.kms.decapsulate(A, &kem, &ct[1..]),
        Err(KmsError::InvalidCiphertext(_))
    ));

    let a = create(&f, EccNistP384, KeyUsage::KeyAgreement)
        .id
        .to_string();
    let b = create(&f, EccNistP384, KeyUsage::KeyAgreement)
        .id
        .to_string();
    let (pa, pb) = (
        f.kms.get_public_key(A, &a).unwrap().1,
        f.kms.get_public_key(A, &b).unwrap().1,
    );
    assert_eq!(
        f.kms
            .derive_shared_secret(A, &a, KeyAgreementAlgorithm::Ecdh, &pb)
            .unwrap()
            .1,
        f.kms
            .derive_shared_secret(A, &b, KeyAgreementAlgorithm::Ecdh, &pa)
            .unwrap()
            .1
    );
    assert!(matches!(
        f.kms
            .derive_shared_secret(A, &a, KeyAgreementAlgorithm::Ecdh, b"junk"),
        Err(KmsError::Refused {
            operation: CryptoOperation::DeriveSharedSecret,
            ..
        })
    ));

    let rsa = create(&f, Rsa2048, KeyUsage::EncryptDecrypt).id.to_string();
    let out = f
        .kms
        .encrypt(A, &rsa, b"secret", &ctx(&[]), Some(OAEP_256))
        .unwrap();
    let plain = f
        .kms
        .decrypt(A, &out.ciphertext, &ctx(&[]), Some(&rsa), Some(OAEP_256))
        .unwrap();
    assert_eq!(plain.plaintext.expose(), b"secret");
    assert!(matches!(
        f.kms
            .decrypt(A, &out.ciphertext, &ctx(&[]), Some(&rsa), Some(OAEP_1)),
        Err(KmsError::InvalidCiphertext(_))
    ));
    assert!(matches!(
        f.kms.encrypt(A, &rsa, b"x", &ctx(&[]), None),
        Err(KmsError::DataKeyNeedsSymmetric { .. }
            | KmsError::WrongKeyUsage { .. }
            | KmsError::IncompatibleAlgorithm { .. })
    ));
    assert!(matches!(
        f.kms.encrypt(A, &rsa, &[1; 300], &ctx(&[]), Some(OAEP_256)),
        Err(KmsError::PlaintextTooLong { len: 300, .. })
    ));
}

#[test]
fn data_key_pairs_are_encrypted_under_symmetric_keys() {
    let f = Fixture::new();
    let sym = f.key().id.to_string();
    let c = ctx(&[("pair", "1")]);
    let out = f
        .kms
        .generate_data_key_pair(A, &sym, EccNistP256, &c, true)
        .unwrap();
    let private = out.private_key.unwrap();
    assert_eq!(
        f.kms
            .decrypt(A, &out.private_key_ciphertext, &c, None, None)
            .unwrap()
            .plaintext,
        private
    );
    let without = f
        .kms
        .generate_data_key_pair(A, &sym, Rsa2048, &c, false)
        .unwrap();
    assert!(without.private_key.is_none());
    assert!(matches!(
        f.kms.generate_data_key_pair(A, &sym, Hmac256, &c, true),
        Err(KmsError::Validation(Invalid::NotDataKeyPairSpec(Hmac256)))
    ));
    let signing = create(&f, EccNistP256, KeyUsage::SignVerify).id.to_string();
    assert!(matches!(
        f.kms
            .generate_data_key_pair(A, &signing, EccNistP256, &c, true),
        Err(KmsError::DataKeyNeedsSymmetric { .. }
            | KmsError::WrongKeyUsage { .. }
            | KmsError::IncompatibleAlgorithm { .. })
    ));
}

mod import {
    use super::*;
    use keyfence_crypto::asym::{self, EncryptionAlgorithm, WrappingAlgorithm};

    fn external(f: &Fixture) -> String {
        let key = f
            .kms
            .create_key(
                A,
                CreateKeyInput {
                    origin: Origin::External,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(key.state, KeyState::PendingImport);
        key.id.to_string()
    }

    fn wrap(public: &[u8], material: &[u8]) -> Vec<u8> {
        asym::encrypt_with_public_key(
            asym::KeySpec::Rsa2048,
            public,
            EncryptionAlgorithm::RsaesOaepSha256,
            material,
        )
        .unwrap()
    }

    #[test]
    fn import_use_delete_reimport() {
        let f = Fixture::new();
        let id = external(&f);
        assert!(matches!(
            f.kms.encrypt(A, &id, b"x", &ctx(&[]), None),
            Err(KmsError::InvalidState { .. })
        ));
        let material = [0x42u8; 32];
        let p = f
            .kms
            .get_parameters_for_import(A, &id, rsa_wrapping(RsaesOaepSha256, Rsa2048))
            .unwrap();
        assert!(matches!(
            f.kms.import_key_material(
                A,
                &id,
                b"wrong token",
                &wrap(&p.public_key, &material),
                ImportExpiry::Never,
                None,
                None
            ),
            Err(KmsError::InvalidImportToken)
        ));
        assert!(matches!(
            f.kms.import_key_material(
                A,
                &id,
                &p.import_token,
                b"garbage",
                ImportExpiry::Never,
                None,
                None
            ),
            Err(KmsError::InvalidCiphertext(_))
        ));
        f.kms
            .import_key_material(
                A,
                &id,
                &p.import_token,
                &wrap(&p.public_key, &material),
                ImportExpiry::Never,
                None,
                None,
            )
            .unwrap();
        let blob = f
            .kms
            .encrypt(A, &id, b"imported", &ctx(&[]), None)
            .unwrap()
            .ciphertext;

        let f = f.restart();
        assert_eq!(
            f.kms
                .decrypt(A, &blob, &ctx(&[]), None, None)
                .unwrap()
                .plaintext
                .expose(),
            b"imported"
        );
        f.kms.delete_imported_key_material(A, &id, None).unwrap();
        assert!(matches!(
            f.kms.decrypt(A, &blob, &ctx(&[]), None, None),
            Err(KmsError::InvalidState { .. })
        ));
        assert!(
            matches!(
                f.kms.import_key_material(
                    A,
                    &id,
                    &p.import_token,
                    &wrap(&p.public_key, &material),
                    ImportExpiry::Never,
                    None,
                    None
                ),
                Err(KmsError::InvalidImportToken)
            ),
            "a token is single-use"
        );

        let p = f
            .kms
            .get_parameters_for_import(A, &id, rsa_wrapping(RsaAesKeyWrapSha256, Rsa3072))
            .unwrap();
        let other = [0x43u8; 32];
        let wrapped_other = asym::wrap_for_import(
            asym::KeySpec::Rsa3072,
            &p.public_key,
            WrappingAlgorithm::RsaAesKeyWrapSha256,
            &other,
        )
        .unwrap();
        assert!(matches!(
            f.kms.import_key_material(
                A,
                &id,
                &p.import_token,
                &wrapped_other,
                ImportExpiry::Never,
                None,
                None
            ),
            Err(KmsError::IncorrectKeyMaterial)
        ));
        let wrapped = asym::wrap_for_import(
            asym::KeySpec::Rsa3072,
            &p.public_key,
            WrappingAlgorithm::RsaAesKeyWrapSha256,
            &material,
        )
        .unwrap();
        let valid_to = f.clock.now().plus_days(10);
        f.kms
            .import_key_material(
                A,
                &id,
                &p.import_token,
                &wrapped,
                ImportExpiry::At(valid_to),
                None,
                None,
            )
            .unwrap();
        assert_eq!(
            f.kms
                .decrypt(A, &blob, &ctx(&[]), None, None)
                .unwrap()
                .plaintext
                .expose(),
            b"imported"
        );

        f.clock.advance_days(10);
        assert_eq!(f.kms.run_due_tasks().unwrap(), 1);
        assert_eq!(
            f.kms.describe_key(A, &id).unwrap().state,
            KeyState::PendingImport,
            "expired material is deleted"
        );
    }

    /// Imports `material` into `id` with `import_type`, from fresh parameters.
    fn import(
        f: &Fixture,
        id: &str,
        material: &[u8],
        import_type: Option<crate::model::ImportType>,
        material_id: Option<&str>,
    ) -> Result<(KeyMetadata, crate::KeyMaterialId), KmsError> {
        let p = f
            .kms
            .get_parameters_for_import(A, id, rsa_wrapping(RsaesOaepSha256, Rsa2048))?;
        f.kms.import_key_material(
            A,
            id,
            &p.import_token,
            &wrap(&p.public_key, material),
            ImportExpiry::Never,
            import_type,
            material_id,
        )
    }

    /// New material imported into a key with material waits for
    /// RotateKeyOnDemand, which makes it current; old ciphertexts still decrypt;
    /// without pending material the rotation is KMSInvalidStateException.
    #[test]
    fn imported_material_rotates_on_demand() {
        use crate::model::ImportType::{ExistingKeyMaterial, NewKeyMaterial};
        use crate::service::KeyMaterialState::{Current, NonCurrent, PendingRotation};
        let f = Fixture::new();
        let id = external(&f);
        let (_, first) = import(&f, &id, &[1; 32], None, None).unwrap();
        assert_eq!(
            first,
            crate::KeyMaterialId::of(&id.parse().unwrap(), 1).unwrap()
        );
        assert!(matches!(
            f.kms.rotate_key_on_demand(A, &id),
            Err(KmsError::InvalidState {
                refusal: crate::StateRefusal::NoPendingRotation,
                ..
            })
        ));
        let old = f.kms.encrypt(A, &id, b"v1", &ctx(&[]), None).unwrap();
        // Without ImportType, a second import is EXISTING_KEY_MATERIAL: other bytes are refused.
        assert!(matches!(
            import(&f, &id, &[2; 32], None, None),
            Err(KmsError::IncorrectKeyMaterial)
        ));
        assert!(matches!(
            import(
                &f,
                &id,
                &[2; 32],
                Some(NewKeyMaterial),
                Some(&first.to_hex())
            ),
            Err(KmsError::Validation(Invalid::MaterialIdWithNewImport))
        ));
        let (_, second) = import(&f, &id, &[2; 32], Some(NewKeyMaterial), None).unwrap();
        assert_ne!(second, first);
        let (_, listed) = f.kms.list_key_rotations(A, &id, true, None, None).unwrap();
        let states: Vec<_> = listed
            .items
            .iter()
            .map(|e| (e.material_id, e.state))
            .collect();
        assert_eq!(states, vec![(first, Current), (second, PendingRotation)]);
        // Still encrypting under the first material until the rotation.
        let data_key = |f: &Fixture| {
            f.kms
                .generate_data_key(A, &id, DataKeySize::Bytes(32), &ctx(&[]), false)
                .unwrap()
                .key_material_id
        };
        assert_eq!(data_key(&f), Some(first));

        f.kms.rotate_key_on_demand(A, &id).unwrap();
        let f = f.restart();
        let after = f.kms.encrypt(A, &id, b"v2", &ctx(&[]), None).unwrap();
        assert_eq!(data_key(&f), Some(second));
        let old_plain = f
            .kms
            .decrypt(A, &old.ciphertext, &ctx(&[]), None, None)
            .unwrap();
        assert_eq!(old_plain.plaintext.expose(), b"v1");
        assert_eq!(old_plain.key_material_id, Some(first));
        let (_, listed) = f.kms.list_key_rotations(A, &id, false, None, None).unwrap();
        assert_eq!(listed.items.len(), 1);
        assert_eq!(listed.items[0].material_id, second);
        assert_eq!(listed.items[0].state, Current);
        assert_eq!(listed.items[0].imported, Some(true));
        let (_, listed) = f.kms.list_key_rotations(A, &id, true, None, None).unwrap();
        let states: Vec<_> = listed.items.iter().map(|e| e.state).collect();
        assert_eq!(states, vec![NonCurrent, Current]);
        // Nothing pending any more.
        assert!(matches!(
            f.kms.rotate_key_on_demand(A, &id),
            Err(KmsError::InvalidState { .. })
        ));
        // Deleting the current material keeps the old: reimported, both decrypt again.
        let (_, deleted) = f.kms.delete_imported_key_material(A, &id, None).unwrap();
        assert_eq!(deleted, Some(second));
        assert!(matches!(
            import(
                &f,
                &id,
                &[2; 32],
                Some(ExistingKeyMaterial),
                Some(&first.to_hex())
            ),
            Err(KmsError::IncorrectKeyMaterial)
        ));
        import(
            &f,
            &id,
            &[2; 32],
            Some(ExistingKeyMaterial),
            Some(&second.to_hex()),
        )
        .unwrap();
        for (blob, plain) in [(&old.ciphertext, b"v1"), (&after.ciphertext, b"v2")] {
            let out = f.kms.decrypt(A, blob, &ctx(&[]), None, None).unwrap();
            assert_eq!(out.plaintext.expose(), plain);
        }
        // Pending material can be deleted by its id.
        let (_, third) = import(&f, &id, &[3; 32], Some(NewKeyMaterial), None).unwrap();
        let (_, deleted) = f
            .kms
            .delete_imported_key_material(A, &id, Some(&third.to_hex()))
            .unwrap();
        assert_eq!(deleted, Some(third));
        assert_eq!(f.kms.describe_key(A, &id).unwrap().state, KeyState::Enabled);
        assert!(matches!(
            f.kms.rotate_key_on_demand(A, &id),
            Err(KmsError::InvalidState { .. })
        ));
    }

    /// On-demand rotations stop at AWS's limit of 25 per key.
    #[test]
    fn on_demand_rotations_are_limited() {
        let f = Fixture::new();
        let id = f.key().id.to_string();
        for _ in 0..25 {
            f.kms.rotate_key_on_demand(A, &id).unwrap();
        }
        assert!(matches!(
            f.kms.rotate_key_on_demand(A, &id),
            Err(KmsError::LimitExceeded(crate::Limit::OnDemandRotations {
                max: 25,
                ..
            }))
        ));
    }

    #[test]
    fn post_quantum_import_with_xwing() {
        let f = Fixture::new();
        let id = external(&f);
        let p = f
            .kms
            .get_parameters_for_import(A, &id, ImportWrapping::XWing)
            .unwrap();
        assert_eq!(p.public_key.len(), asym::xwing::PUBLIC_KEY_LEN);
        let material = [9u8; 32];
        let mut wrapped = asym::xwing::wrap_key_material(&p.public_key, &material).unwrap();
        let good = wrapped.clone();
        wrapped[5] ^= 1;
        assert!(matches!(
            f.kms.import_key_material(
                A,
                &id,
                &p.import_token,
                &wrapped,
                ImportExpiry::Never,
                None,
                None
            ),
            Err(KmsError::InvalidCiphertext(_))
        ));
        f.kms
            .import_key_material(
                A,
                &id,
                &p.import_token,
                &good,
                ImportExpiry::Never,
                None,
                None,
            )
            .unwrap();
        let blob = f
            .kms
            .encrypt(A, &id, b"pq", &ctx(&[]), None)
            .unwrap()
            .ciphertext;
        assert_eq!(
            f.kms
                .decrypt(A, &blob, &ctx(&[]), None, None)
                .unwrap()
                .plaintext
                .expose(),
            b"pq"
        );
    }

    #[test]
    fn tokens_expire_and_only_external_keys_import() {
        let f = Fixture::new();
        let id = external(&f);
        let p = f
            .kms
            .get_parameters_for_import(A, &id, rsa_wrapping(RsaesOaepSha1, Rsa2048))
            .unwrap();
        f.clock.advance_days(1);
        let wrapped = asym::encrypt_with_public_key(
            asym::KeySpec::Rsa2048,
            &p.public_key,
            EncryptionAlgorithm::RsaesOaepSha1,
            &[1; 32],
        )
        .unwrap();
        assert!(matches!(
            f.kms.import_key_material(
                A,
                &id,
                &p.import_token,
                &wrapped,
                ImportExpiry::Never,
                None,
                None
            ),
            Err(KmsError::ExpiredImportToken)
        ));
        let own = f.key().id.to_string();
        assert!(matches!(
            f.kms
                .get_parameters_for_import(A, &own, rsa_wrapping(RsaesOaepSha1, Rsa2048)),
            Err(KmsError::UnsupportedOperation(
                Unsupported::NotExternal { .. }
            ))
        ));
        assert!(matches!(
            f.kms
                .get_parameters_for_import(A, &id, rsa_wrapping(RsaesOaepSha1, EccNistP256)),
            Err(KmsError::Validation(Invalid::NotWrappingKeySpec(
                EccNistP256
            )))
        ));
    }
}
