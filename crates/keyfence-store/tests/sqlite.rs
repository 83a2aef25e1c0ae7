//! The SQLite adapter against a real database file, through the core service.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyfence_core::service::CreateKeyInput;
use keyfence_core::store::{FeedCursor, StoreError};
use keyfence_core::{
    EncryptionContext, Kms, KmsError, LocalRootKey, ManualClock, Store, SystemClock, Timestamp,
};
use keyfence_crypto::SymmetricKey;
use keyfence_store::SqliteStore;

const A: &str = "111122223333";

fn open(path: &std::path::Path, root: &LocalRootKey) -> Kms {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).unwrap());
    Kms::open(store, root, Arc::new(SystemClock), "us-east-1").unwrap()
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let ctx =
        EncryptionContext::new(BTreeMap::from([("app".to_string(), "x".to_string())])).unwrap();

    let kms = open(&path, &root);
    let key = kms
        .create_key(
            A,
            CreateKeyInput {
                description: Some("d".into()),
                tags: vec![("t".into(), "v".into())],
                ..Default::default()
            },
        )
        .unwrap();
    kms.create_alias(A, "alias/app", &key.arn()).unwrap();
    let v1 = kms
        .encrypt(A, "alias/app", b"one", &ctx, None)
        .unwrap()
        .ciphertext;
    kms.rotate_key_on_demand(A, &key.arn()).unwrap();
    let v2 = kms
        .encrypt(A, "alias/app", b"two", &ctx, None)
        .unwrap()
        .ciphertext;
    kms.disable_key(A, &key.arn()).unwrap();
    drop(kms);

    let kms = open(&path, &root);
    let meta = kms.describe_key(A, "alias/app").unwrap();
    assert_eq!(meta.description, "d");
    assert_eq!(meta.current_version, 2);
    assert_eq!(meta.state, keyfence_core::KeyState::Disabled);
    kms.enable_key(A, &meta.arn()).unwrap();
    assert_eq!(
        kms.decrypt(A, &v1, &ctx, None, None)
            .unwrap()
            .plaintext
            .expose(),
        b"one"
    );
    assert_eq!(
        kms.decrypt(A, &v2, &ctx, None, None)
            .unwrap()
            .plaintext
            .expose(),
        b"two"
    );
    assert!(matches!(
        kms.create_alias(A, "alias/app", &key.arn()),
        Err(KmsError::AlreadyExists { .. })
    ));
}

#[test]
fn wrong_root_key_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    drop(open(&path, &root));
    let other = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    assert!(matches!(
        Kms::open(store, &other, Arc::new(SystemClock), "us-east-1"),
        Err(KmsError::Internal(_))
    ));
}

#[test]
fn material_is_stored_wrapped_and_destroyed_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let kms = Kms::open(store.clone(), &root, clock.clone(), "us-east-1").unwrap();
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    kms.create_alias(A, "alias/gone", &key.arn()).unwrap();
    kms.schedule_key_deletion(A, &key.arn(), Some(7)).unwrap();
    clock.advance_days(7);
    assert_eq!(kms.run_due_tasks().unwrap(), 1);
    let snapshot = store.load().unwrap();
    assert!(snapshot.keys.is_empty());
    assert!(snapshot.aliases.is_empty());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: i64 = conn
        .query_row("SELECT COUNT(*) FROM key_versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, 0);
}

#[test]
fn duplicate_alias_is_a_conflict_and_corrupt_rows_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let kms = Kms::open(store.clone(), &root, Arc::new(SystemClock), "us-east-1").unwrap();
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    kms.create_alias(A, "alias/a", &key.arn()).unwrap();
    let alias = store.load().unwrap().aliases.remove(0);
    assert!(matches!(
        store.insert_alias(&alias),
        Err(StoreError::Conflict(_))
    ));

    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE keys SET metadata = '{not json'", [])
        .unwrap();
    assert!(matches!(store.load(), Err(StoreError::Corrupt(_))));
}

/// `PRAGMA synchronous` is per connection (a fresh connection reports the build's
/// default), so the store's own connection is asked, on a new file and on reopen.
#[test]
fn journal_is_wal_and_sync_is_full() {
    const FULL: i64 = 2;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.durability().unwrap(), ("wal".to_string(), FULL));
    drop(store);

    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.durability().unwrap(), ("wal".to_string(), FULL));

    // WAL is persistent in the file: another connection sees it too.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// A version 1 file (no revisions, no change feed) migrates on open: keys
/// start at revision 1, the feed records changes from then on.
#[test]
fn a_version_1_file_migrates_to_the_latest_version_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    {
        let kms = open(&path, &root);
        kms.create_key(A, CreateKeyInput::default()).unwrap();
    }
    // Turn the file back into version 1.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%_feed'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(triggers.len(), 15, "{triggers:?}");
    for t in triggers {
        conn.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
    }
    conn.execute_batch(
        "DROP TABLE changes; DROP TABLE feed_horizon; ALTER TABLE keys DROP COLUMN revision; \
         UPDATE schema_version SET version = 1; \
         DROP TABLE key_policies; DROP TABLE grants; DROP TABLE authz_version; \
         DROP TABLE audit_records; DROP TABLE audit_heads; DROP TABLE audit_keys; \
         DROP TABLE audit_frontiers; \
         DROP TABLE quorum_operators; DROP TABLE quorum_rules; DROP TABLE quorum_executed; \
         DROP INDEX key_versions_domain_key;",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    let snapshot = store.load().unwrap();
    assert_eq!(snapshot.keys.len(), 1);
    assert_eq!(snapshot.keys[0].revision, 1);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 11);
    let store: Arc<dyn Store> = Arc::new(store);
    let kms = Kms::open(store.clone(), &root, Arc::new(SystemClock), "us-east-1").unwrap();
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    let batch = store.changes_since(snapshot.cursor).unwrap();
    assert!(!batch.rewound);
    assert!(batch.changes.iter().any(|c| matches!(
        &c.entity,
        keyfence_core::store::ChangedEntity::Key { id, current: Some(k) } if *id == key.id && k.revision == 1
    )));
}

/// Keys read page by page come in id order, each once, with their own
/// versions, and a page ends where the next begins.
#[test]
fn keys_load_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let kms = open(&path, &root);
    let mut made = Vec::new();
    for i in 0..25 {
        let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
        if i % 5 == 0 {
            kms.rotate_key_on_demand(A, &key.arn()).unwrap();
        }
        made.push(key.id.to_string());
    }
    made.sort();
    let store = SqliteStore::open(&path).unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.load_keys(after.as_ref(), 10).unwrap();
        assert!(page.len() <= 10);
        for k in &page {
            assert!(k.versions.iter().all(|v| v.key_id == k.metadata.id));
            assert_eq!(k.versions.len() as u32, k.metadata.current_version);
            seen.push(k.metadata.id.to_string());
        }
        match page.last() {
            Some(k) if page.len() == 10 => after = Some(k.metadata.id),
            _ => break,
        }
    }
    assert_eq!(seen, made);
    let head = store.load_head().unwrap();
    assert!(head.keys.is_empty());
    assert_eq!(head.domain_keys.len(), 1);
    // A node loads the same keys through the pages.
    drop(kms);
    let kms = open(&path, &root);
    assert_eq!(kms.list_keys(A, None, None).unwrap().items.len(), 25);
}

/// A bulk insert is one transaction: into a store that is not empty it is
/// refused whole, and a failure half-way leaves nothing behind.
#[test]
fn bulk_inserts_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let source = dir.path().join("source.db");
    {
        let kms = open(&source, &root);
        for _ in 0..3 {
            kms.create_key(A, CreateKeyInput::default()).unwrap();
        }
        let key = kms.list_keys(A, None, None).unwrap().items[0].clone();
        kms.create_alias(A, "alias/one", &key.id.to_string())
            .unwrap();
    }
    let all = SqliteStore::open(&source).unwrap().load().unwrap();
    assert_eq!((all.keys.len(), all.aliases.len()), (3, 1));

    let target = SqliteStore::open(&dir.path().join("target.db")).unwrap();
    target.insert_all(&all, true).unwrap();
    let copied = target.load().unwrap();
    assert_eq!(copied.keys, all.keys);
    assert_eq!(copied.aliases, all.aliases);
    assert_eq!(copied.domain_keys, all.domain_keys);
    assert!(matches!(
        target.insert_all(&all, true),
        Err(StoreError::Conflict(_))
    ));

    // The third key collides: the first two are not left behind either.
    let other = SqliteStore::open(&dir.path().join("other.db")).unwrap();
    let mut clash = all.clone();
    clash.keys[2] = clash.keys[0].clone();
    assert!(matches!(
        other.insert_all(&clash, true),
        Err(StoreError::Conflict(_))
    ));
    let left = other.load().unwrap();
    assert!(left.keys.is_empty() && left.domain_keys.is_empty());
}

/// A single node trims the whole feed it has read (nobody else reads it);
/// the node and a reopened one still hold every key, and the feed goes on
/// from there.
#[test]
fn a_single_node_trims_the_feed_it_has_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let kms = open(&path, &root);
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(kms.create_key(A, CreateKeyInput::default()).unwrap());
    }
    let count = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))
            .unwrap()
    };
    // Per key: the key row and its version row; and the domain key.
    assert_eq!(count(&path), 11);
    assert_eq!(kms.trim_feed().unwrap(), 11);
    assert_eq!(count(&path), 0);
    for key in &keys {
        kms.encrypt(A, &key.arn(), b"x", &EncryptionContext::default(), None)
            .unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let cursor = store.load_head().unwrap().cursor;
    assert_eq!(cursor.as_u64(), 11, "the position survives the trim");
    kms.disable_key(A, &keys[0].arn()).unwrap();
    let batch = store.changes_since(cursor).unwrap();
    assert!(!batch.rewound);
    assert_eq!(batch.changes.len(), 1);
    // A reader from before the trim is told to reload.
    assert!(
        store
            .changes_since(FeedCursor::from_u64(3))
            .unwrap()
            .rewound
    );
    drop(kms);
    let kms = open(&path, &root);
    assert_eq!(kms.list_keys(A, None, None).unwrap().items.len(), 5);
}
