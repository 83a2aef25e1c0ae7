//! CreateAlias's insert is conditional on the target key's revision, in the
//! same transaction, on a real SQLite file and a real PostgreSQL: a change
//! to the key committed between the caller's check and the insert (its
//! deletion scheduled at another node, or the key destroyed) refuses it.

use std::sync::Arc;

use keyfence_core::model::Alias;
use keyfence_core::service::CreateKeyInput;
use keyfence_core::{AliasName, Kms, LocalRootKey, Store, StoreError, SystemClock, Timestamp};
use keyfence_crypto::SymmetricKey;
use keyfence_store::{PostgresStore, SqliteStore};
use keyfence_testkit::TempPostgres;

const A: &str = "111122223333";

fn alias(name: &str, target: keyfence_core::KeyId) -> Alias {
    Alias {
        account: A.into(),
        region: "us-east-1".into(),
        name: AliasName::parse(name).unwrap(),
        target,
        created: Timestamp(1),
        updated: Timestamp(1),
    }
}

fn exercise(store: Arc<dyn Store>) {
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let kms = Kms::open(
        Arc::clone(&store),
        &root,
        Arc::new(SystemClock),
        "us-east-1",
    )
    .unwrap();
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap().id;
    let checked = store.key_revision(&key).unwrap().unwrap();
    // Another node schedules the key's deletion after this node checked it.
    kms.schedule_key_deletion(A, &key.to_string(), Some(7))
        .unwrap();
    assert_eq!(
        store.insert_alias_at(&alias("alias/late", key), checked),
        Err(StoreError::Stale {
            key_id: key,
            expected: checked,
            found: Some(checked + 1),
        })
    );
    assert_eq!(
        store.load_alias(A, "us-east-1", "alias/late").unwrap(),
        None
    );
    // At the key's revision: inserted; the name taken: Conflict.
    let now = checked + 1;
    store.insert_alias_at(&alias("alias/a", key), now).unwrap();
    assert!(matches!(
        store.insert_alias_at(&alias("alias/a", key), now),
        Err(StoreError::Conflict(_))
    ));
    // The key destroyed: Stale, found nothing.
    store.delete_key(&key, now).unwrap();
    assert_eq!(
        store.insert_alias_at(&alias("alias/b", key), now),
        Err(StoreError::Stale {
            key_id: key,
            expected: now,
            found: None,
        })
    );
    // Through the service: CreateAlias on a key whose deletion another node
    // scheduled is refused, not written.
    let other = kms.create_key(A, CreateKeyInput::default()).unwrap().id;
    let revision = store.key_revision(&other).unwrap().unwrap();
    let mut meta = store.load_key(&other).unwrap().unwrap().metadata;
    meta.state = keyfence_core::KeyState::PendingDeletion;
    meta.deletion_date = Some(Timestamp(i64::MAX / 2));
    meta.pending_window_days = Some(7);
    store.update_key(&meta, revision).unwrap();
    assert!(kms.create_alias(A, "alias/c", &other.to_string()).is_err());
    assert_eq!(store.load_alias(A, "us-east-1", "alias/c").unwrap(), None);
}

#[test]
fn sqlite_alias_insert_is_conditional_on_the_target_revision() {
    let dir = tempfile::tempdir().unwrap();
    exercise(Arc::new(
        SqliteStore::open_shared(&dir.path().join("k.db")).unwrap(),
    ));
}

#[test]
fn postgres_alias_insert_is_conditional_on_the_target_revision() {
    let pg = TempPostgres::new().unwrap();
    exercise(Arc::new(
        PostgresStore::connect(&pg.connection_string()).unwrap(),
    ));
}
