//! Service tests over an in-memory store (the SQLite adapter has its own tests
//! in keyfence-store, and the server's end-to-end tests use the real file).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use keyfence_crypto::SymmetricKey;

use super::*;
use crate::clock::ManualClock;
use crate::model::KeyState;
use crate::root::LocalRootKey;
use crate::store::{Snapshot, StoreError, StoredKey};
use crate::EncryptionContext;

/// A store that keeps everything in memory; shared between Kms instances to simulate restarts.
#[derive(Default)]
struct MemoryStore(Mutex<Snapshot>);

impl Store for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn insert_domain_key(&self, key: &DomainKeyRecord) -> Result<(), StoreError> {
        self.0.lock().unwrap().domain_keys.push(key.clone());
        Ok(())
    }
    fn insert_key(&self, key: &KeyMetadata, versions: &[VersionRecord]) -> Result<(), StoreError> {
        self.0.lock().unwrap().keys.push(StoredKey {
            metadata: key.clone(),
            versions: versions.to_vec(),
        });
        Ok(())
    }
    fn replace_versions(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
    ) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        let k = s
            .keys
            .iter_mut()
            .find(|k| k.metadata.id == key.id)
            .ok_or(StoreError::Backend("no key".into()))?;
        k.metadata = key.clone();
        k.versions = versions.to_vec();
        Ok(())
    }
    fn update_key(&self, key: &KeyMetadata) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        let k = s
            .keys
            .iter_mut()
            .find(|k| k.metadata.id == key.id)
            .ok_or(StoreError::Backend("no key".into()))?;
        k.metadata = key.clone();
        Ok(())
    }
    fn add_version(&self, key: &KeyMetadata, version: &VersionRecord) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        let k = s
            .keys
            .iter_mut()
            .find(|k| k.metadata.id == key.id)
            .ok_or(StoreError::Backend("no key".into()))?;
        k.metadata = key.clone();
        k.versions.push(version.clone());
        Ok(())
    }
    fn delete_key(&self, id: &KeyId) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        s.keys.retain(|k| k.metadata.id != *id);
        s.aliases.retain(|a| a.target != *id);
        Ok(())
    }
    fn insert_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        if s.aliases
            .iter()
            .any(|a| a.account == alias.account && a.name == alias.name)
        {
            return Err(StoreError::Conflict("alias".into()));
        }
        s.aliases.push(alias.clone());
        Ok(())
    }
    fn update_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        for a in s
            .aliases
            .iter_mut()
            .filter(|a| a.account == alias.account && a.name == alias.name)
        {
            *a = alias.clone();
        }
        Ok(())
    }
    fn delete_alias(&self, account: &str, name: &str) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .aliases
            .retain(|a| !(a.account == account && a.name.as_str() == name));
        Ok(())
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
        Err(KmsError::AlreadyExists(_))
    ));
    assert!(matches!(
        f.kms.create_alias(A, "alias/other", "alias/app"),
        Err(KmsError::Validation(_))
    ));
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
        Err(KmsError::NotFound(_))
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
    let (_, rotations) = f.kms.list_key_rotations(A, &id, None, None).unwrap();
    assert_eq!(rotations.items.len(), 1);
    assert_eq!(
        rotations.items[0].kind,
        crate::model::RotationType::OnDemand
    );
}

#[test]
fn automatic_rotation_follows_the_clock() {
    let f = Fixture::new();
    let id = f.key().id.to_string();
    assert!(matches!(
        f.kms.enable_key_rotation(A, &id, Some(89)),
        Err(KmsError::Validation(_))
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
        Err(KmsError::Disabled(_))
    ));
    assert!(matches!(
        f.kms.decrypt(A, &blob, &ctx(&[]), None, None),
        Err(KmsError::Disabled(_))
    ));
    f.kms.enable_key(A, &id).unwrap();
    for bad in [6, 31] {
        assert!(matches!(
            f.kms.schedule_key_deletion(A, &id, Some(bad)),
            Err(KmsError::Validation(_))
        ));
    }
    let scheduled = f.kms.schedule_key_deletion(A, &id, Some(7)).unwrap();
    assert_eq!(scheduled.deletion_date, f.clock.now().plus_days(7));
    assert!(matches!(
        f.kms.encrypt(A, &id, b"x", &ctx(&[]), None),
        Err(KmsError::InvalidState(_))
    ));
    assert!(matches!(
        f.kms.enable_key(A, &id),
        Err(KmsError::InvalidState(_))
    ));
    let meta = f.kms.cancel_key_deletion(A, &id).unwrap();
    assert_eq!(meta.state, KeyState::Disabled);
    assert!(matches!(
        f.kms.cancel_key_deletion(A, &id),
        Err(KmsError::InvalidState(_))
    ));
}

#[test]
fn key_past_its_deletion_date_is_destroyed() {
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
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        f.kms.describe_key(A, &id),
        Err(KmsError::NotFound(_))
    ));
    assert!(
        f.store.0.lock().unwrap().keys.is_empty(),
        "material must be gone from the store"
    );
    assert!(f
        .kms
        .list_aliases(A, None, None, None)
        .unwrap()
        .items
        .is_empty());
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
        Err(KmsError::IncorrectKey(_))
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
        Err(KmsError::Validation(_))
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
        .generate_data_key(
            A,
            &k1.arn(),
            DataKeySize::from_request(Some("AES_256"), None).unwrap(),
            &c1,
            true,
        )
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
    assert!(DataKeySize::from_request(None, None).is_err());
    assert!(DataKeySize::from_request(Some("AES_256"), Some(32)).is_err());
    assert!(DataKeySize::from_request(None, Some(1025)).is_err());
    assert_eq!(
        DataKeySize::from_request(Some("AES_128"), None),
        Ok(DataKeySize::Bytes(16))
    );
    assert!(f.kms.generate_random(Some(0)).is_err());
    assert_eq!(f.kms.generate_random(Some(1024)).unwrap().len(), 1024);
}

#[test]
fn plaintext_limits() {
    let f = Fixture::new();
    let id = f.key().id.to_string();
    assert!(matches!(
        f.kms.encrypt(A, &id, b"", &ctx(&[]), None),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        f.kms.encrypt(A, &id, &[0; 4097], &ctx(&[]), None),
        Err(KmsError::Validation(_))
    ));
    assert!(f.kms.encrypt(A, &id, &[0; 4096], &ctx(&[]), None).is_ok());
    assert!(matches!(
        f.kms
            .encrypt(A, &id, b"x", &ctx(&[]), Some("RSAES_OAEP_SHA_256")),
        Err(KmsError::InvalidKeyUsage(_))
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
        Err(KmsError::Tag(_))
    ));
}
