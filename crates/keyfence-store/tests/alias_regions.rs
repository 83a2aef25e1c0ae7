//! Aliases are named per (account, region), on a real SQLite file and a real
//! PostgreSQL: the same name in two regions, each for a key of its own
//! region, written at one node and followed by another through the change
//! feed; and an old database's aliases move to their target key's region.

use std::sync::Arc;

use keyfence_core::service::CreateKeyInput;
use keyfence_core::{Kms, KmsError, LocalRootKey, Store, SystemClock};
use keyfence_crypto::SymmetricKey;
use keyfence_store::{PostgresStore, SqliteStore};
use keyfence_testkit::TempPostgres;

const A: &str = "111122223333";
const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";

fn node(store: Arc<dyn Store>) -> Kms {
    let root = LocalRootKey::new(SymmetricKey::from_slice(&[7; 32]).unwrap());
    Kms::open(store, &root, Arc::new(SystemClock), EAST)
        .unwrap()
        .with_regions(&[WEST])
        .unwrap()
}

fn west<T>(kms: &Kms, f: impl FnOnce() -> T) -> T {
    kms.in_region(WEST, f).unwrap()
}

fn exercise(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    let (n1, n2) = (node(Arc::clone(&one)), node(two));
    let east = n1.create_key(A, CreateKeyInput::default()).unwrap();
    let west_key = west(&n1, || n1.create_key(A, CreateKeyInput::default()).unwrap());
    n1.create_alias(A, "alias/app", &east.arn()).unwrap();
    west(&n1, || n1.create_alias(A, "alias/app", &west_key.arn())).unwrap();
    // Stored once per region, each with its region.
    let mut stored: Vec<(String, String)> = one
        .load()
        .unwrap()
        .aliases
        .into_iter()
        .map(|a| (a.region, a.target.to_string()))
        .collect();
    stored.sort();
    let mut wanted = vec![
        (EAST.to_string(), east.id.to_string()),
        (WEST.to_string(), west_key.id.to_string()),
    ];
    wanted.sort();
    assert_eq!(stored, wanted);
    assert_eq!(
        one.load_alias(A, WEST, "alias/app")
            .unwrap()
            .unwrap()
            .target,
        west_key.id
    );
    // The name is taken per region.
    assert!(matches!(
        west(&n1, || n1.create_alias(A, "alias/app", &west_key.arn())),
        Err(KmsError::AlreadyExists { .. })
    ));
    // The other node follows through the feed, per region.
    n2.sync().unwrap();
    assert_eq!(n2.describe_key(A, "alias/app").unwrap().id, east.id);
    assert_eq!(
        west(&n2, || n2.describe_key(A, "alias/app")).unwrap().id,
        west_key.id
    );
    // Deleting the alias in one region leaves the other's.
    west(&n1, || n1.delete_alias(A, "alias/app")).unwrap();
    assert!(one.load_alias(A, WEST, "alias/app").unwrap().is_none());
    assert!(one.load_alias(A, EAST, "alias/app").unwrap().is_some());
    n2.sync().unwrap();
    assert!(matches!(
        west(&n2, || n2.describe_key(A, "alias/app")),
        Err(KmsError::NotFound(_))
    ));
    assert_eq!(n2.describe_key(A, "alias/app").unwrap().id, east.id);
    // Retargeting in one region, seen at the other node.
    let east_two = n1.create_key(A, CreateKeyInput::default()).unwrap();
    n1.update_alias(A, "alias/app", &east_two.arn()).unwrap();
    n2.sync().unwrap();
    assert_eq!(n2.describe_key(A, "alias/app").unwrap().id, east_two.id);
}

#[test]
fn sqlite_aliases_are_named_per_region() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    exercise(
        Arc::new(SqliteStore::open_shared(&path).unwrap()),
        Arc::new(SqliteStore::open_shared(&path).unwrap()),
    );
}

#[test]
fn postgres_aliases_are_named_per_region() {
    let pg = TempPostgres::new().unwrap();
    let url = pg.connection_string();
    exercise(
        Arc::new(PostgresStore::connect(&url).unwrap()),
        Arc::new(PostgresStore::connect(&url).unwrap()),
    );
}

/// A version 1 database (aliases keyed by account and name) migrates: each
/// alias gets its target key's region.
#[test]
fn sqlite_old_aliases_move_to_their_key_region() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../keyfence-server/tests/data/v1-keyfence.db"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    std::fs::copy(fixture, &path).unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let all = store.load().unwrap();
    assert!(!all.aliases.is_empty());
    for alias in &all.aliases {
        let key = store.load_key(&alias.target).unwrap().unwrap();
        assert_eq!(alias.region, key.metadata.region, "{alias:?}");
        assert_eq!(
            store
                .load_alias(&alias.account, &alias.region, alias.name.as_str())
                .unwrap()
                .as_ref(),
            Some(alias)
        );
    }
}

/// A PostgreSQL database at version 9 (aliases keyed by account and name,
/// alias feed rows without a region) migrates: each alias gets its target
/// key's region, and a reader with an older cursor reloads.
#[test]
fn postgres_old_aliases_move_to_their_key_region() {
    let pg = TempPostgres::new().unwrap();
    let url = pg.connection_string();
    let (east, west_key, cursor) = {
        let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).unwrap());
        let kms = node(Arc::clone(&store));
        let east = kms.create_key(A, CreateKeyInput::default()).unwrap();
        let west_key = west(&kms, || {
            kms.create_key(A, CreateKeyInput::default()).unwrap()
        });
        (east, west_key, store.load().unwrap().cursor)
    };
    // Back to version 9's aliases table, with two aliases in it.
    pg.psql(&format!(
        "DELETE FROM schema_migrations WHERE version >= 10;
         ALTER TABLE changes DROP CONSTRAINT changes_check;
         DELETE FROM changes WHERE entity = 'alias';
         ALTER TABLE changes DROP COLUMN alias_region;
         ALTER TABLE changes ADD CONSTRAINT changes_check CHECK (
             (entity = 'key' AND key_id IS NOT NULL)
             OR (entity = 'domain_key' AND domain_key_id IS NOT NULL)
             OR (entity = 'alias' AND account IS NOT NULL AND alias_name IS NOT NULL)
             OR (entity = 'authz' AND key_id IS NOT NULL));
         ALTER TABLE aliases DROP CONSTRAINT aliases_pkey;
         ALTER TABLE aliases DROP COLUMN region;
         ALTER TABLE aliases ADD PRIMARY KEY (account, name);
         ALTER TABLE aliases DISABLE TRIGGER aliases_feed;
         INSERT INTO aliases (account, name, target, created, updated) VALUES
             ('{A}', 'alias/east', '{}', 1, 1), ('{A}', 'alias/west', '{}', 1, 1);
         INSERT INTO changes (entity, account, alias_name) VALUES ('alias', '{A}', 'alias/east');
         ALTER TABLE aliases ENABLE TRIGGER aliases_feed;",
        east.id, west_key.id
    ))
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).unwrap());
    let mut found: Vec<(String, String)> = store
        .load()
        .unwrap()
        .aliases
        .into_iter()
        .map(|a| (a.name.as_str().to_string(), a.region))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("alias/east".to_string(), EAST.to_string()),
            ("alias/west".to_string(), WEST.to_string())
        ]
    );
    assert!(store.changes_since(cursor).unwrap().rewound);
    let kms = node(store);
    assert_eq!(kms.describe_key(A, "alias/east").unwrap().id, east.id);
    assert_eq!(
        west(&kms, || kms.describe_key(A, "alias/west")).unwrap().id,
        west_key.id
    );
    assert!(kms.describe_key(A, "alias/west").is_err());
}
