//! The PostgreSQL adapter against a real PostgreSQL that each test starts
//! itself (keyfence-testkit), directly and through the core service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyfence_core::service::CreateKeyInput;
use keyfence_core::store::{StoreError, VersionRecord};
use keyfence_core::{
    EncryptionContext, KeyId, Kms, KmsError, LocalRootKey, ManualClock, Store, SystemClock,
    Timestamp,
};
use keyfence_crypto::SymmetricKey;
use keyfence_store::postgres::{ChangedEntity, FeedCursor};
use keyfence_store::{PostgresOptions, PostgresStore};
use keyfence_testkit::TempPostgres;

const A: &str = "111122223333";

fn root() -> LocalRootKey {
    LocalRootKey::new(SymmetricKey::generate().unwrap())
}

fn server() -> (TempPostgres, Arc<PostgresStore>) {
    let pg = TempPostgres::new().unwrap();
    let store = Arc::new(PostgresStore::connect(&pg.connection_string()).unwrap());
    (pg, store)
}

fn kms(store: &Arc<PostgresStore>, root: &LocalRootKey) -> Kms {
    Kms::open(store.clone(), root, Arc::new(SystemClock), "us-east-1").unwrap()
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new(BTreeMap::from([("app".to_string(), "x".to_string())])).unwrap()
}

fn short_timeouts() -> PostgresOptions {
    PostgresOptions {
        operation_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        ..PostgresOptions::default()
    }
}

/// Retries `f` until it succeeds or `limit` passes (a node riding out a database outage).
fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Result<T, StoreError>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("still failing after {limit:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn kms_state_survives_reopen() {
    let (_pg, store) = server();
    let root = root();
    let kms1 = kms(&store, &root);
    let key = kms1
        .create_key(
            A,
            CreateKeyInput {
                description: Some("d".into()),
                tags: vec![("t".into(), "v".into())],
                ..Default::default()
            },
        )
        .unwrap();
    kms1.create_alias(A, "alias/app", &key.arn()).unwrap();
    let v1 = kms1
        .encrypt(A, "alias/app", b"one", &ctx(), None)
        .unwrap()
        .ciphertext;
    kms1.rotate_key_on_demand(A, &key.arn()).unwrap();
    let v2 = kms1
        .encrypt(A, "alias/app", b"two", &ctx(), None)
        .unwrap()
        .ciphertext;
    kms1.disable_key(A, &key.arn()).unwrap();
    drop(kms1);

    let kms2 = kms(&store, &root);
    let meta = kms2.describe_key(A, "alias/app").unwrap();
    assert_eq!(meta.description, "d");
    assert_eq!(meta.current_version, 2);
    assert_eq!(meta.tags.get("t").map(String::as_str), Some("v"));
    assert_eq!(meta.state, keyfence_core::KeyState::Disabled);
    kms2.enable_key(A, &meta.arn()).unwrap();
    for (blob, plain) in [(&v1, b"one"), (&v2, b"two")] {
        let out = kms2.decrypt(A, blob, &ctx(), None, None).unwrap();
        assert_eq!(out.plaintext.expose(), plain);
    }
    assert!(matches!(
        kms2.create_alias(A, "alias/app", &key.arn()),
        Err(KmsError::AlreadyExists { .. })
    ));
}

#[test]
fn wrong_root_key_refuses_to_open() {
    let (_pg, store) = server();
    drop(kms(&store, &root()));
    assert!(matches!(
        Kms::open(store.clone(), &root(), Arc::new(SystemClock), "us-east-1"),
        Err(KmsError::Internal(_))
    ));
}

#[test]
fn every_store_method_round_trips() {
    let (_pg, store) = server();
    let kms = kms(&store, &root());
    let created = kms.create_key(A, CreateKeyInput::default()).unwrap();
    kms.create_alias(A, "alias/one", &created.arn()).unwrap();

    let seed = store.load().unwrap();
    assert_eq!(seed.domain_keys.len(), 1);
    assert_eq!(seed.domain_keys[0].id, 1);
    assert_eq!(seed.keys.len(), 1);
    assert_eq!(seed.keys[0].revision, 1);
    let stored = seed.keys[0].clone();
    assert_eq!(stored.metadata, created);
    assert_eq!(stored.versions.len(), 1);
    assert_eq!(seed.aliases.len(), 1);
    assert_eq!(seed.aliases[0].target, created.id);
    assert_eq!(store.load().unwrap(), seed.clone());

    // insert_domain_key
    let dk2 = keyfence_core::store::DomainKeyRecord {
        id: 2,
        wrapped: vec![9; 72],
        created: Timestamp(1_700_000_000_000),
    };
    store.insert_domain_key(&dk2).unwrap();
    assert_eq!(
        store.load().unwrap().domain_keys,
        vec![seed.domain_keys[0].clone(), dk2.clone()]
    );
    assert!(matches!(
        store.insert_domain_key(&dk2),
        Err(StoreError::Conflict(_))
    ));

    // update_key
    let mut meta = stored.metadata.clone();
    meta.description = "changed".into();
    assert_eq!(store.update_key(&meta, 1).unwrap(), 2);
    let key = &store.load().unwrap().keys[0];
    assert_eq!(key.metadata.description, "changed");
    assert_eq!(key.versions, stored.versions);
    assert_eq!(store.key_revision(&meta.id).unwrap(), Some(2));

    // add_version
    let v2 = VersionRecord {
        key_id: meta.id,
        version: 2,
        domain_key_id: 1,
        wrapped: vec![7; 60],
        created: Timestamp(1_700_000_000_123),
    };
    meta.current_version = 2;
    assert_eq!(store.add_version(&meta, &v2, 2).unwrap(), 3);
    let key = &store.load().unwrap().keys[0];
    assert_eq!(key.metadata.current_version, 2);
    assert_eq!(key.versions, vec![stored.versions[0].clone(), v2.clone()]);
    assert_eq!(store.key_revision(&meta.id).unwrap(), Some(3));
    assert!(matches!(
        store.add_version(&meta, &v2, 3),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.add_version(&meta, &v2, 2),
        Err(StoreError::Stale {
            expected: 2,
            found: Some(3),
            ..
        })
    ));

    // replace_versions
    store
        .replace_versions(&meta, std::slice::from_ref(&v2), 3)
        .unwrap();
    assert_eq!(store.load().unwrap().keys[0].versions, vec![v2.clone()]);
    store.replace_versions(&meta, &[], 4).unwrap();
    assert!(store.load().unwrap().keys[0].versions.is_empty());

    // insert_key, with and without versions
    let mut other = meta.clone();
    other.id = KeyId::generate().unwrap();
    other.description = "other".into();
    let ov = VersionRecord {
        key_id: other.id,
        version: 1,
        ..v2.clone()
    };
    store.insert_key(&other, std::slice::from_ref(&ov)).unwrap();
    assert!(matches!(
        store.insert_key(&other, &[]),
        Err(StoreError::Conflict(_))
    ));
    let mut empty = meta.clone();
    empty.id = KeyId::generate().unwrap();
    store.insert_key(&empty, &[]).unwrap();
    let snapshot = store.load().unwrap();
    assert_eq!(snapshot.keys.len(), 3);
    let found = snapshot
        .keys
        .iter()
        .find(|k| k.metadata.id == other.id)
        .unwrap();
    assert_eq!(
        (found.metadata.clone(), found.versions.clone()),
        (other.clone(), vec![ov])
    );

    // update_key of a key that is not stored fails
    let mut ghost = meta.clone();
    ghost.id = KeyId::generate().unwrap();
    assert!(matches!(
        store.update_key(&ghost, 1),
        Err(StoreError::Stale { found: None, .. })
    ));

    // aliases
    let mut alias = seed.aliases[0].clone();
    alias.target = other.id;
    alias.updated = Timestamp(1_800_000_000_000);
    assert_eq!(store.update_alias(&alias).unwrap(), Some(alias.clone()));
    assert_eq!(store.load().unwrap().aliases, vec![alias.clone()]);
    let mut second = alias.clone();
    second.name = keyfence_core::AliasName::parse("alias/two").unwrap();
    store.insert_alias(&second).unwrap();
    assert_eq!(store.load().unwrap().aliases.len(), 2);
    assert!(store.delete_alias(A, "us-east-1", "alias/two").unwrap());
    assert!(!store.delete_alias(A, "us-east-1", "alias/two").unwrap());
    assert_eq!(store.load().unwrap().aliases, vec![alias.clone()]);
    let mut missing = alias.clone();
    missing.name = keyfence_core::AliasName::parse("alias/missing").unwrap();
    assert_eq!(store.update_alias(&missing).unwrap(), None);

    // delete_key takes its versions and aliases with it
    assert!(matches!(
        store.delete_key(&other.id, 2),
        Err(StoreError::Stale { found: Some(1), .. })
    ));
    store.delete_key(&other.id, 1).unwrap();
    let snapshot = store.load().unwrap();
    assert_eq!(snapshot.keys.len(), 2);
    assert!(snapshot.aliases.is_empty());
    assert!(snapshot.keys.iter().all(|k| k.metadata.id != other.id));
}

#[test]
fn material_is_destroyed_with_the_key() {
    let (pg, store) = server();
    let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
    let kms = Kms::open(store.clone(), &root(), clock.clone(), "us-east-1").unwrap();
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    kms.create_alias(A, "alias/gone", &key.arn()).unwrap();
    kms.schedule_key_deletion(A, &key.arn(), Some(7)).unwrap();
    clock.advance_days(7);
    assert_eq!(kms.run_due_tasks().unwrap(), 1);
    let snapshot = store.load().unwrap();
    assert!(snapshot.keys.is_empty());
    assert!(snapshot.aliases.is_empty());
    assert_eq!(
        pg.psql("SELECT count(*) FROM key_versions").unwrap().trim(),
        "0"
    );
}

#[test]
fn duplicate_alias_is_a_conflict_and_corrupt_rows_are_reported() {
    let (pg, store) = server();
    let kms = kms(&store, &root());
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    kms.create_alias(A, "alias/a", &key.arn()).unwrap();
    let alias = store.load().unwrap().aliases.remove(0);
    assert!(matches!(
        store.insert_alias(&alias),
        Err(StoreError::Conflict(_))
    ));
    pg.psql("UPDATE keys SET metadata = '{\"not\": \"a key\"}'")
        .unwrap();
    assert!(matches!(store.load(), Err(StoreError::Corrupt(_))));
}

#[test]
fn migrations_run_once_when_nodes_start_together_and_refuse_a_newer_schema() {
    let pg = TempPostgres::new().unwrap();
    let url = pg.connection_string();
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::connect(&url))
        })
        .collect();
    for node in nodes {
        node.join().unwrap().unwrap();
    }
    assert_eq!(
        pg.psql("SELECT string_agg(version::text, ',') FROM schema_migrations")
            .unwrap()
            .trim(),
        (1..=PostgresStore::SCHEMA_VERSION)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    pg.psql("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')")
        .unwrap();
    assert!(matches!(
        PostgresStore::connect(&url),
        Err(StoreError::Corrupt(m)) if m.contains("999")
    ));
}

#[test]
fn acknowledged_writes_survive_kill9_during_writes_and_the_node_recovers_without_restart() {
    let mut pg = TempPostgres::new().unwrap();
    let store =
        Arc::new(PostgresStore::connect_with(&pg.connection_string(), short_timeouts()).unwrap());
    let root = root();
    let kms1 = Arc::new(kms(&store, &root));
    // Writers keep creating keys (and encrypting under them) while the database is killed.
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let kms1 = kms1.clone();
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut failures = 0;
                for i in 0..10_000 {
                    let input = CreateKeyInput {
                        description: Some(format!("w{w}-{i}")),
                        ..Default::default()
                    };
                    match kms1.create_key(A, input) {
                        Ok(key) => {
                            let plain = format!("p{w}-{i}");
                            let blob = kms1
                                .encrypt(A, &key.arn(), plain.as_bytes(), &ctx(), None)
                                .unwrap()
                                .ciphertext;
                            acknowledged.push((key, blob, plain));
                        }
                        Err(_) => {
                            failures += 1;
                            if failures == 3 {
                                break;
                            }
                        }
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    pg.kill9().unwrap();
    let acknowledged: Vec<_> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(acknowledged.len() >= 3, "too few writes before the kill");

    // While the database is gone, a change fails (within the timeout) instead of hanging.
    let started = Instant::now();
    assert!(kms1.create_key(A, CreateKeyInput::default()).is_err());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    pg.start().unwrap();
    // The same store (node) reconnects by itself.
    let seed = eventually(Duration::from_secs(20), || store.load());
    for (key, _, _) in &acknowledged {
        assert!(
            seed.keys.iter().any(|k| k.metadata == *key),
            "acknowledged key {} lost",
            key.id
        );
    }
    let kms2 = kms(&store, &root);
    for (_, blob, plain) in &acknowledged {
        let out = kms2.decrypt(A, blob, &ctx(), None, None).unwrap();
        assert_eq!(out.plaintext.expose(), plain.as_bytes());
    }
    kms2.create_key(A, CreateKeyInput::default()).unwrap();
}

#[test]
fn conditional_update_conflicts_on_a_stale_revision() {
    let (_pg, store) = server();
    let kms = kms(&store, &root());
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    assert_eq!(store.key_revision(&key.id).unwrap(), Some(1));

    let mut meta = key.clone();
    meta.description = "first".into();
    assert_eq!(store.update_key(&meta, 1).unwrap(), 2);
    meta.description = "lost race".into();
    assert_eq!(
        store.update_key(&meta, 1),
        Err(StoreError::Stale {
            key_id: key.id,
            expected: 1,
            found: Some(2)
        })
    );
    assert_eq!(store.load().unwrap().keys[0].metadata.description, "first");

    // Every change bumps the revision, also those made through the plain port.
    kms.rotate_key_on_demand(A, &key.arn()).unwrap();
    let revision = store.key_revision(&key.id).unwrap().unwrap();
    assert!(revision > 2, "{revision}");
    assert!(matches!(
        store.update_key(&meta, 2),
        Err(StoreError::Stale { found: Some(r), .. }) if r == revision
    ));

    let mut ghost = meta.clone();
    ghost.id = KeyId::generate().unwrap();
    assert_eq!(
        store.update_key(&ghost, 1),
        Err(StoreError::Stale {
            key_id: ghost.id,
            expected: 1,
            found: None
        })
    );
}

/// The classic gap: T1 takes feed seq s1, T2 takes s2 > s1, T2 commits
/// first. A reader must not move past s1 while T1 is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_never_skips_a_change_committed_after_a_higher_one() {
    let pg = TempPostgres::new().unwrap();
    let url = pg.connection_string();
    let store = Arc::new(PostgresStore::connect(&url).unwrap());
    let kms = kms(&store, &root());
    let k1 = kms.create_key(A, CreateKeyInput::default()).unwrap();
    let k2 = kms.create_key(A, CreateKeyInput::default()).unwrap();
    let mut cursor = store.load().unwrap().cursor;
    assert!(store.changes_since(cursor).unwrap().changes.is_empty());

    let connect = || async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    };
    let (t1, t2, observer) = (connect().await, connect().await, connect().await);
    let own_seq = "SELECT seq FROM changes WHERE xid = pg_current_xact_id()";
    let bump =
        "UPDATE keys SET metadata = jsonb_set(metadata, '{description}', to_jsonb($2::text)), \
                revision = revision + 1 WHERE id = $1";

    t1.batch_execute("BEGIN").await.unwrap();
    t1.execute(bump, &[&k1.id.to_string(), &"t1"])
        .await
        .unwrap();
    let s1: i64 = t1.query_one(own_seq, &[]).await.unwrap().get(0);
    t2.batch_execute("BEGIN").await.unwrap();
    t2.execute(bump, &[&k2.id.to_string(), &"t2"])
        .await
        .unwrap();
    let s2: i64 = t2.query_one(own_seq, &[]).await.unwrap().get(0);
    assert!(s1 < s2);
    t2.batch_execute("COMMIT").await.unwrap();

    // The hazard is real: s2 is visible while s1 is not.
    let visible: Vec<i64> = observer
        .query(
            "SELECT seq FROM changes WHERE seq >= $1 ORDER BY seq",
            &[&s1],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(visible, vec![s2]);

    // The reader polls between the commits: it must not get past s1.
    let store2 = store.clone();
    let batch = tokio::task::spawn_blocking(move || store2.changes_since(cursor))
        .await
        .unwrap()
        .unwrap();
    assert!(
        batch.changes.iter().all(|c| c.seq < s1),
        "read past an open transaction: {:?}",
        batch.changes
    );
    cursor = batch.cursor;

    t1.batch_execute("COMMIT").await.unwrap();
    let batch = store.changes_since(cursor).unwrap();
    let got: Vec<(i64, KeyId, String)> = batch
        .changes
        .iter()
        .map(|c| match &c.entity {
            ChangedEntity::Key {
                id,
                current: Some(k),
            } => (c.seq, *id, k.metadata.description.clone()),
            other => panic!("unexpected change {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![(s1, k1.id, "t1".to_string()), (s2, k2.id, "t2".to_string())]
    );
    assert!(!batch.rewound);
    // Nothing is delivered twice once read.
    assert!(store
        .changes_since(batch.cursor)
        .unwrap()
        .changes
        .is_empty());
}

#[test]
fn feed_reports_every_kind_of_change_with_current_state() {
    let (_pg, store) = server();
    let cursor = FeedCursor::START;
    let kms = kms(&store, &root());
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    kms.create_alias(A, "alias/f", &key.arn()).unwrap();
    let batch = store.changes_since(cursor).unwrap();
    let kinds: Vec<&str> = batch
        .changes
        .iter()
        .map(|c| match &c.entity {
            ChangedEntity::DomainKey {
                current: Some(d), ..
            } if d.id == 1 => "domain key",
            ChangedEntity::Key {
                id,
                current: Some(k),
            } if *id == key.id && k.versions.len() == 1 => "key",
            ChangedEntity::Alias {
                current: Some(a), ..
            } if a.target == key.id => "alias",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec!["domain key", "key", "alias"]);

    // Deleting the key reports the key and its alias gone, in one batch.
    let cursor = batch.cursor;
    let revision = store.key_revision(&key.id).unwrap().unwrap();
    store.delete_key(&key.id, revision).unwrap();
    let batch = store.changes_since(cursor).unwrap();
    assert_eq!(batch.changes.len(), 2, "{:?}", batch.changes);
    assert!(batch.changes.iter().all(|c| matches!(
        &c.entity,
        ChangedEntity::Key { current: None, .. } | ChangedEntity::Alias { current: None, .. }
    )));
}

#[test]
fn waker_wakes_on_another_nodes_commit_and_after_an_outage() {
    let mut pg = TempPostgres::new().unwrap();
    let node1 = PostgresStore::connect(&pg.connection_string()).unwrap();
    let node2 = Arc::new(PostgresStore::connect(&pg.connection_string()).unwrap());
    let waker = node1.change_waker();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waker.is_listening() {
        assert!(Instant::now() < deadline, "waker never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The wake-up on (re)connection, then quiet.
    waker.wait(Duration::from_secs(1));
    let cursor = node1.load().unwrap().cursor;
    assert!(!waker.wait(Duration::from_millis(200)));

    let kms2 = kms(&node2, &root());
    let started = Instant::now();
    let key = kms2.create_key(A, CreateKeyInput::default()).unwrap();
    assert!(waker.wait(Duration::from_secs(5)), "no wake-up");
    assert!(started.elapsed() < Duration::from_secs(2));
    let batch = node1.changes_since(cursor).unwrap();
    assert!(batch
        .changes
        .iter()
        .any(|c| matches!(&c.entity, ChangedEntity::Key { id, .. } if *id == key.id)));

    // Losing the database: the waker reconnects by itself and wakes on the next commit.
    pg.stop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while waker.is_listening() {
        assert!(Instant::now() < deadline, "waker did not notice the outage");
        std::thread::sleep(Duration::from_millis(10));
    }
    pg.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !waker.is_listening() {
        assert!(Instant::now() < deadline, "waker never reconnected");
        std::thread::sleep(Duration::from_millis(20));
    }
    waker.wait(Duration::from_secs(1));
    let cursor = batch.cursor;
    eventually(Duration::from_secs(20), || {
        let revision = node2.key_revision(&key.id)?.unwrap_or_default();
        node2.update_key(&key, revision)
    });
    assert!(
        waker.wait(Duration::from_secs(5)),
        "no wake-up after reconnecting"
    );
    let batch = eventually(Duration::from_secs(20), || node1.changes_since(cursor));
    assert!(batch
        .changes
        .iter()
        .any(|c| matches!(&c.entity, ChangedEntity::Key { id, .. } if *id == key.id)));
}

#[test]
fn multi_host_string_reaches_the_primary_past_a_dead_host_and_a_standby() {
    let primary = TempPostgres::new().unwrap();
    let standby = TempPostgres::start_standby(&primary, false).unwrap();
    let mut dead = TempPostgres::new().unwrap();
    dead.stop().unwrap();

    let key_value = format!(
        "host=127.0.0.1,127.0.0.1,127.0.0.1 port={},{},{} user=postgres dbname=postgres \
         target_session_attrs=read-write connect_timeout=2",
        dead.port(),
        standby.port(),
        primary.port()
    );
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        dead.port(),
        standby.port(),
        primary.port()
    );
    let root = root();
    for (n, conn) in [key_value, url].iter().enumerate() {
        let store = Arc::new(PostgresStore::connect(conn).unwrap());
        let kms = kms(&store, &root);
        let key = kms
            .create_key(
                A,
                CreateKeyInput {
                    description: Some(format!("via {n}")),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            primary
                .psql(&format!(
                    "SELECT metadata->>'description' FROM keys WHERE id = '{}'",
                    key.id
                ))
                .unwrap()
                .trim(),
            format!("via {n}")
        );
    }
}

#[test]
fn failover_to_a_promoted_synchronous_standby_loses_no_acknowledged_write() {
    let mut primary = TempPostgres::new().unwrap();
    let mut standby = TempPostgres::start_standby(&primary, true).unwrap();
    let conn = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres \
         target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let store = Arc::new(PostgresStore::connect_with(&conn, short_timeouts()).unwrap());
    let root = root();
    let kms1 = kms(&store, &root);
    let acknowledged: Vec<_> = (0..10)
        .map(|_| kms1.create_key(A, CreateKeyInput::default()).unwrap())
        .collect();
    let seed = store.load().unwrap();

    primary.kill9().unwrap();
    standby.promote().unwrap();

    // The same node carries on against the promoted standby.
    let after = eventually(Duration::from_secs(30), || store.load());
    for key in &acknowledged {
        assert!(
            after.keys.iter().any(|k| k.metadata == *key),
            "lost {}",
            key.id
        );
    }
    let kms2 = kms(&store, &root);
    kms2.create_key(A, CreateKeyInput::default()).unwrap();
    let batch = store.changes_since(seed.cursor).unwrap();
    assert!(!batch.rewound);
    assert!(!batch.changes.is_empty());
}

#[test]
fn calls_work_from_plain_threads() {
    let (_pg, store) = server();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || store.load().unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn calls_work_inside_a_current_thread_runtime_and_drop_there() {
    let (_pg, store) = server();
    let kms = kms(&store, &root());
    kms.create_key(A, CreateKeyInput::default()).unwrap();
    assert_eq!(store.load().unwrap().keys.len(), 1);
    let waker = store.change_waker();
    assert!(waker.wait_async(Duration::from_secs(5)).await);
    drop(waker);
    drop(kms);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_work_inside_a_multi_thread_runtime_and_from_spawn_blocking() {
    let (_pg, store) = server();
    assert_eq!(store.load().unwrap().domain_keys.len(), 0);
    let s = store.clone();
    let from_blocking = tokio::task::spawn_blocking(move || {
        let kms = kms(&s, &root());
        kms.create_key(A, CreateKeyInput::default()).unwrap();
        s.load().unwrap().keys.len()
    })
    .await
    .unwrap();
    assert_eq!(from_blocking, 1);
    let s = store.clone();
    let from_task = tokio::spawn(async move { s.load().unwrap().keys.len() })
        .await
        .unwrap();
    assert_eq!(from_task, 1);
    drop(store);
}

/// A switchover where the old primary stays up but read-only: pooled
/// connections to it fail, are dropped, and fresh ones find the new primary.
#[test]
fn switchover_to_a_new_primary_while_the_old_one_turns_read_only() {
    let old = TempPostgres::new().unwrap();
    let mut new = TempPostgres::start_standby(&old, false).unwrap();
    let conn = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres \
         target_session_attrs=read-write",
        old.port(),
        new.port()
    );
    let store = Arc::new(PostgresStore::connect_with(&conn, short_timeouts()).unwrap());
    let root = root();
    let kms1 = kms(&store, &root);
    let before = kms1.create_key(A, CreateKeyInput::default()).unwrap();
    // Let the standby catch up (until it has replayed the schema, the query
    // itself fails: not yet), then swap roles.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !new
        .psql(&format!(
            "SELECT count(*) FROM keys WHERE id = '{}'",
            before.id
        ))
        .is_ok_and(|n| n.trim() == "1")
    {
        assert!(Instant::now() < deadline, "standby never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    new.promote().unwrap();
    old.psql("ALTER SYSTEM SET default_transaction_read_only = on")
        .unwrap();
    old.psql("SELECT pg_reload_conf()").unwrap();

    let after = eventually(Duration::from_secs(20), || {
        kms1.create_key(A, CreateKeyInput::default())
            .map_err(|e| StoreError::Backend(e.to_string()))
    });
    assert_eq!(
        new.psql(&format!(
            "SELECT count(*) FROM keys WHERE id = '{}'",
            after.id
        ))
        .unwrap()
        .trim(),
        "1"
    );
    let seed = store.load().unwrap();
    assert!(seed.keys.iter().any(|k| k.metadata == before));
    assert!(seed.keys.iter().any(|k| k.metadata == after));
}

/// TLS to PostgreSQL, against a server that accepts only TLS connections
/// and whose certificate (for `localhost` only) a throw-away CA issued:
/// `sslmode` and `sslrootcert` in the connection string are honoured as
/// libpq honours them, and the store's connections (pool and LISTEN) are
/// encrypted.
#[test]
fn tls_sslmode_and_sslrootcert_are_honoured() {
    let pg = TempPostgres::new_tls(&["localhost"]).unwrap();
    let ca = pg.ca_cert().unwrap().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong, keyfence_testkit::unrelated_ca_pem().unwrap()).unwrap();
    let wrong = wrong.display().to_string();
    let port = pg.port();
    // `localhost` is the name checked; the address is 127.0.0.1 either way.
    let named = |params: &str| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres {params}"
        )
    };
    let by_ip =
        |params: &str| format!("host=127.0.0.1 port={port} user=postgres dbname=postgres {params}");
    let opens = |s: &str| {
        let store =
            PostgresStore::connect_with(s, short_timeouts()).unwrap_or_else(|e| panic!("{s}: {e}"));
        store.load().unwrap();
        store
    };
    let refused = |s: &str| match PostgresStore::connect_with(s, short_timeouts()) {
        Ok(_) => panic!("{s}: connected"),
        Err(e) => e.to_string(),
    };

    // The server takes no plain connection.
    let e = refused(&by_ip("sslmode=disable"));
    assert!(e.contains("pg_hba.conf") || e.contains("encryption"), "{e}");
    // prefer (the default) and require encrypt without checking the certificate.
    opens(&by_ip(""));
    opens(&by_ip("sslmode=require"));
    // require with a root certificate checks the chain (as libpq).
    opens(&by_ip(&format!("sslmode=require sslrootcert={ca}")));
    let e = refused(&by_ip(&format!("sslmode=require sslrootcert={wrong}")));
    assert!(e.contains("certificate") || e.contains("issuer"), "{e}");
    // verify-ca: the chain, not the name (127.0.0.1 is not in the certificate).
    opens(&by_ip(&format!("sslmode=verify-ca sslrootcert={ca}")));
    refused(&by_ip(&format!("sslmode=verify-ca sslrootcert={wrong}")));
    // verify-full: the chain and the name.
    let e = refused(&by_ip(&format!("sslmode=verify-full sslrootcert={ca}")));
    assert!(e.contains("not valid for") || e.contains("name"), "{e}");
    refused(&named(&format!("sslmode=verify-full sslrootcert={wrong}")));
    let store = Arc::new(opens(&named(&format!(
        "sslmode=verify-full sslrootcert={ca}"
    ))));
    // The URL form, with the root certificate's path percent-encoded.
    let url = format!(
        "postgres://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        ca.replace('/', "%2F")
    );
    opens(&url);

    // Writes, reads and the LISTEN connection all go over TLS.
    let waker = store.change_waker();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waker.is_listening() {
        assert!(Instant::now() < deadline, "waker never listened over TLS");
        std::thread::sleep(Duration::from_millis(10));
    }
    let key = kms(&store, &root())
        .create_key(A, CreateKeyInput::default())
        .unwrap();
    assert!(store.load_key(&key.id).unwrap().is_some());
    let counts = pg
        .psql(
            "SELECT count(*) FILTER (WHERE ssl), count(*) FILTER (WHERE NOT ssl) \
             FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'keyfence'",
        )
        .unwrap();
    let (tls, plain) = counts.trim().split_once('|').unwrap();
    assert!(
        tls.parse::<u32>().unwrap() >= 2,
        "TLS connections: {counts}"
    );
    assert_eq!(plain, "0", "plain connections: {counts}");
}
