//! Key policies and grants on a real SQLite file and a real PostgreSQL
//! (keyfence-testkit): round trips, the version every change bumps, removal
//! with the key, and refusal for a key that does not exist.

use std::sync::Arc;

use keyfence_core::authz::{AuthzStore, Grant, GrantConstraints, GrantOperation, StoredKeyPolicy};
use keyfence_core::service::CreateKeyInput;
use keyfence_core::store::{ChangedEntity, FeedCursor, KeyAuthz};
use keyfence_core::{KeyId, Kms, LocalRootKey, Store, StoreError, SystemClock, Timestamp};
use keyfence_crypto::SymmetricKey;
use keyfence_store::{PostgresStore, SqliteStore};
use keyfence_testkit::TempPostgres;

const A: &str = "111122223333";

fn key_of(store: Arc<dyn Store>) -> (Kms, KeyId) {
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let kms = Kms::open(store, &root, Arc::new(SystemClock), "us-east-1").unwrap();
    let id = kms.create_key(A, CreateKeyInput::default()).unwrap().id;
    (kms, id)
}

fn grant(key: &KeyId, id: &str) -> Grant {
    Grant {
        id: id.to_string(),
        key_id: *key,
        key_account: A.into(),
        name: Some("n".into()),
        grantee: "arn:aws:iam::111122223333:user/bob".into(),
        retiring: None,
        operations: vec![GrantOperation::Encrypt, GrantOperation::Decrypt],
        constraints: GrantConstraints {
            equals: None,
            subset: Some([("app".to_string(), "x".to_string())].into()),
        },
        issuer: "arn:aws:iam::111122223333:user/admin".into(),
        created: Timestamp(1_700_000_000_000),
    }
}

fn exercise(store: &dyn AuthzStore, kms: &Kms, key: KeyId) {
    let v0 = store.authz_version().unwrap();
    assert_eq!(store.load_authz().unwrap().policies, vec![]);
    let policy = StoredKeyPolicy {
        key_id: key,
        account: A.into(),
        text: "{\"Statement\":[]}".into(),
    };
    let first = store.put_key_policy(&policy).unwrap();
    assert_eq!(first.version, v0 + 1, "the state as of the change");
    assert_eq!(first.policy.as_ref(), Some(&policy));
    let replaced = StoredKeyPolicy {
        text: "{ \"Version\": \"2012-10-17\" }".into(),
        ..policy.clone()
    };
    store.put_key_policy(&replaced).unwrap();
    let g = grant(&key, &"a".repeat(64));
    let with_grant = store.insert_grant(&g).unwrap();
    assert_eq!(
        (with_grant.version, with_grant.grants.clone()),
        (v0 + 3, vec![g.clone()])
    );
    assert_eq!(with_grant.policy.as_ref(), Some(&replaced));
    assert_eq!(store.key_authz(&key).unwrap(), Some(with_grant));
    assert!(matches!(
        store.insert_grant(&g),
        Err(StoreError::Conflict(_))
    ));
    let snapshot = store.load_authz().unwrap();
    assert_eq!(snapshot.policies, vec![replaced]);
    assert_eq!(snapshot.grants, vec![g.clone()]);
    assert_eq!(
        snapshot.version,
        v0 + 3,
        "each change bumps the version once"
    );
    assert_eq!(store.authz_version().unwrap(), snapshot.version);
    let unknown: KeyId = "00000000-0000-4000-8000-000000000000".parse().unwrap();
    assert!(matches!(
        store.put_key_policy(&StoredKeyPolicy {
            key_id: unknown,
            ..policy
        }),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.insert_grant(&grant(&unknown, "b")),
        Err(StoreError::Conflict(_))
    ));
    let (existed, state) = store.delete_grant(&key, &g.id).unwrap();
    assert!(existed);
    assert_eq!(state.unwrap().grants, vec![]);
    assert!(!store.delete_grant(&key, &g.id).unwrap().0);
    store.insert_grant(&g).unwrap();
    kms.schedule_key_deletion(A, &key.to_string(), Some(7))
        .unwrap();
    assert_eq!(
        store.load_authz().unwrap().grants.len(),
        1,
        "kept while pending deletion"
    );
}

#[test]
fn sqlite_keeps_policies_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let (kms, key) = key_of(store.clone());
    exercise(store.as_ref(), &kms, key);
    drop(kms);
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(
        reopened.load_authz().unwrap().grants.len(),
        1,
        "durable across reopen"
    );
}

#[test]
fn postgres_keeps_policies_and_grants() {
    let pg = TempPostgres::new().unwrap();
    let store = Arc::new(PostgresStore::connect(&pg.connection_string()).unwrap());
    let (kms, key) = key_of(store.clone());
    exercise(store.as_ref(), &kms, key);
}

/// Every change to a key's policy or grants is in the change feed with the
/// key's state as of the batch (a key created with its policy: in the same
/// batch as the key), and a deleted key's go with it.
fn feed<S: Store + AuthzStore>(store: &S, kms: &Kms) {
    let start = store.changes_since(FeedCursor::START).unwrap().cursor;
    let policy = "{\"Statement\":[]}".to_string();
    let key = kms
        .create_key_with_policy(A, CreateKeyInput::default(), Some(policy.clone()))
        .unwrap()
        .id;
    let batch = store.changes_since(start).unwrap();
    let authz: Vec<&KeyAuthz> = batch
        .changes
        .iter()
        .filter_map(|c| match &c.entity {
            ChangedEntity::KeyAuthz { id, current } if *id == key => current.as_ref(),
            _ => None,
        })
        .collect();
    assert_eq!(authz.len(), 1, "{:?}", batch.changes);
    assert_eq!(authz[0].policy.as_ref().map(|p| &p.text), Some(&policy));
    assert_eq!(authz[0].version, store.authz_version().unwrap());
    assert!(batch
        .changes
        .iter()
        .any(|c| matches!(&c.entity, ChangedEntity::Key { id, current: Some(_) } if *id == key)));
    let g = grant(&key, &"c".repeat(64));
    store.insert_grant(&g).unwrap();
    let batch2 = store.changes_since(batch.cursor).unwrap();
    match &batch2.changes[..] {
        [c] => match &c.entity {
            ChangedEntity::KeyAuthz {
                id,
                current: Some(state),
            } => {
                assert_eq!(*id, key);
                assert_eq!(state.grants, vec![g]);
                assert!(state.version > authz[0].version);
            }
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("unexpected {other:?}"),
    }
    let revision = store.key_revision(&key).unwrap().unwrap();
    store.delete_key(&key, revision).unwrap();
    let batch3 = store.changes_since(batch2.cursor).unwrap();
    assert!(
        batch3.changes.iter().any(
            |c| matches!(&c.entity, ChangedEntity::KeyAuthz { id, current: None } if *id == key)
        ),
        "{:?}",
        batch3.changes
    );
}

#[test]
fn sqlite_feeds_policies_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).unwrap());
    let (kms, _) = key_of(store.clone());
    feed(store.as_ref(), &kms);
}

#[test]
fn postgres_feeds_policies_and_grants() {
    let pg = TempPostgres::new().unwrap();
    let store = Arc::new(PostgresStore::connect(&pg.connection_string()).unwrap());
    let (kms, _) = key_of(store.clone());
    feed(store.as_ref(), &kms);
}
