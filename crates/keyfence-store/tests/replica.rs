//! Two `Kms` nodes over one shared store — a SQLite file opened by both, and
//! a PostgreSQL database reached through two `PostgresStore`s — racing state
//! changes, following each other through the change feed, and losing the store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use keyfence_core::service::CreateKeyInput;
use keyfence_core::{
    Clock, EncryptionContext, KeyState, Kms, KmsError, LocalRootKey, Store, SystemClock, Timestamp,
};
use keyfence_crypto::SymmetricKey;
use keyfence_store::{PostgresOptions, PostgresStore, SqliteStore};
use keyfence_testkit::TempPostgres;

const A: &str = "111122223333";

/// A clock moved by the test in milliseconds.
struct StepClock(AtomicI64);

impl StepClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(1_700_000_000_000)))
    }

    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for StepClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}
const ROUNDS: usize = 12;

fn ctx() -> EncryptionContext {
    EncryptionContext::new(BTreeMap::from([("app".to_string(), "x".to_string())])).unwrap()
}

/// Two stores over the same data, and what keeps the data alive.
struct Shared {
    stores: [Arc<dyn Store>; 2],
    _keep: Box<dyn std::any::Any>,
}

fn sqlite() -> Shared {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let one: Arc<dyn Store> = Arc::new(SqliteStore::open_shared(&path).unwrap());
    let two: Arc<dyn Store> = Arc::new(SqliteStore::open_shared(&path).unwrap());
    Shared {
        stores: [one, two],
        _keep: Box::new(dir),
    }
}

fn postgres() -> Shared {
    let pg = TempPostgres::new().unwrap();
    let url = pg.connection_string();
    let one: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).unwrap());
    let two: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).unwrap());
    Shared {
        stores: [one, two],
        _keep: Box::new(pg),
    }
}

fn nodes(shared: &Shared, clock: Arc<dyn Clock>) -> [Arc<Kms>; 2] {
    let root = LocalRootKey::new(SymmetricKey::from_slice(&[7; 32]).unwrap());
    shared
        .stores
        .clone()
        .map(|s| Arc::new(Kms::open(s, &root, clock.clone(), "us-east-1").unwrap()))
}

/// Runs `a` on one thread and `b` on another, released together.
fn race<T: Send, U: Send>(a: impl FnOnce() -> T + Send, b: impl FnOnce() -> U + Send) -> (T, U) {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let ha = s.spawn(|| {
            barrier.wait();
            a()
        });
        let hb = s.spawn(|| {
            barrier.wait();
            b()
        });
        (ha.join().unwrap(), hb.join().unwrap())
    })
}

/// ScheduleKeyDeletion at one node against CancelKeyDeletion at the other:
/// every outcome is one that the two calls would give one after the other,
/// and both nodes agree after syncing.
fn schedule_against_cancel(shared: Shared) {
    let [n1, n2] = nodes(&shared, Arc::new(SystemClock));
    let key = n1.create_key(A, CreateKeyInput::default()).unwrap();
    let arn = key.arn();
    n2.sync().unwrap();
    let mut seen = BTreeMap::new();
    for round in 0..ROUNDS {
        let (scheduled, cancelled) = race(
            || n1.schedule_key_deletion(A, &arn, Some(7)),
            || n2.cancel_key_deletion(A, &arn),
        );
        scheduled.unwrap_or_else(|e| panic!("round {round}: schedule failed: {e}"));
        n1.sync().unwrap();
        n2.sync().unwrap();
        let s1 = n1.describe_key(A, &arn).unwrap();
        let s2 = n2.describe_key(A, &arn).unwrap();
        assert_eq!(s1, s2, "round {round}: nodes disagree");
        match cancelled {
            // Cancel came second: the key is back to Disabled.
            Ok(meta) => {
                assert_eq!(meta.state, KeyState::Disabled);
                assert_eq!(s1.state, KeyState::Disabled, "round {round}");
                assert_eq!(s1.deletion_date, None);
                *seen.entry("cancel second").or_insert(0) += 1;
            }
            // Cancel came first, when nothing was pending.
            Err(KmsError::InvalidState { .. }) => {
                assert_eq!(s1.state, KeyState::PendingDeletion, "round {round}");
                *seen.entry("cancel first").or_insert(0) += 1;
                n1.cancel_key_deletion(A, &arn).unwrap();
            }
            Err(e) => panic!("round {round}: unexpected {e:?}"),
        }
        n1.enable_key(A, &arn).unwrap();
        n2.sync().unwrap();
    }
    assert_eq!(seen.values().sum::<i32>(), ROUNDS as i32, "{seen:?}");
}

/// RotateKeyOnDemand at both nodes at once: both rotations happen, one
/// after the other, and every version decrypts at both nodes.
fn rotate_against_rotate(shared: Shared) {
    let [n1, n2] = nodes(&shared, Arc::new(SystemClock));
    let key = n1.create_key(A, CreateKeyInput::default()).unwrap();
    let arn = key.arn();
    n2.sync().unwrap();
    let mut blobs = vec![n1.encrypt(A, &arn, b"v1", &ctx(), None).unwrap().ciphertext];
    for round in 0..ROUNDS / 2 {
        let (r1, r2) = race(
            || n1.rotate_key_on_demand(A, &arn),
            || n2.rotate_key_on_demand(A, &arn),
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        let mut versions = [r1.current_version, r2.current_version];
        versions.sort();
        let expected = 1 + 2 * round as u32;
        assert_eq!(versions, [expected + 1, expected + 2], "round {round}");
        n1.sync().unwrap();
        n2.sync().unwrap();
        let meta = n2.describe_key(A, &arn).unwrap();
        assert_eq!(meta, n1.describe_key(A, &arn).unwrap());
        assert_eq!(meta.current_version, expected + 2);
        assert_eq!(meta.rotations.len(), 2 * (round + 1));
        blobs.push(n2.encrypt(A, &arn, b"vn", &ctx(), None).unwrap().ciphertext);
    }
    for blob in &blobs {
        for node in [&n1, &n2] {
            node.decrypt(A, blob, &ctx(), None, None).unwrap();
        }
    }
}

/// A change made at one node is visible there at once, and at the other
/// after it syncs: a disabled key stops working there, a new alias resolves.
fn changes_reach_the_other_node(shared: Shared) {
    let [n1, n2] = nodes(&shared, Arc::new(SystemClock));
    let key = n1.create_key(A, CreateKeyInput::default()).unwrap();
    assert!(n2.describe_key(A, &key.arn()).is_err());
    // A management operation at the other node finds the key in the store
    // even before that node syncs.
    n2.tag_resource(A, &key.id.to_string(), vec![("t".into(), "v".into())])
        .unwrap();
    let outcome = n2.sync().unwrap();
    assert!(outcome.applied >= 1, "{outcome:?}");
    let blob = n2
        .encrypt(A, &key.arn(), b"hello", &ctx(), None)
        .unwrap()
        .ciphertext;

    n1.create_alias(A, "alias/app", &key.arn()).unwrap();
    n1.disable_key(A, &key.arn()).unwrap();
    // Read-your-writes at the writer.
    assert!(matches!(
        n1.decrypt(A, &blob, &ctx(), None, None),
        Err(KmsError::Disabled { .. })
    ));
    // The other node still answers from its replica until it syncs.
    n2.decrypt(A, &blob, &ctx(), None, None).unwrap();
    n2.sync().unwrap();
    assert!(matches!(
        n2.decrypt(A, &blob, &ctx(), None, None),
        Err(KmsError::Disabled { .. })
    ));
    assert_eq!(n2.describe_key(A, "alias/app").unwrap().id, key.id);

    // Deletion, through the sweeper at one node, reaches the other.
    n1.enable_key(A, &key.arn()).unwrap();
    n1.delete_alias(A, "alias/app").unwrap();
    n2.sync().unwrap();
    assert!(matches!(
        n2.describe_key(A, "alias/app"),
        Err(KmsError::NotFound(_))
    ));
    // A stale replica's refusal is confirmed with the store: n2 still holds
    // the key Enabled when n1 schedules deletion, and n2's cancel succeeds.
    n1.schedule_key_deletion(A, &key.arn(), Some(7)).unwrap();
    assert_eq!(
        n2.cancel_key_deletion(A, &key.arn()).unwrap().state,
        KeyState::Disabled
    );
    n1.sync().unwrap();
    assert_eq!(
        n1.describe_key(A, &key.arn()).unwrap().state,
        KeyState::Disabled
    );
}

/// A replica older than the bound refuses to answer, then recovers on sync.
fn staleness_bound(shared: Shared) {
    let clock = StepClock::new();
    let [n1, _n2] = nodes(&shared, clock.clone());
    let key = n1.create_key(A, CreateKeyInput::default()).unwrap();
    n1.encrypt(A, &key.arn(), b"x", &ctx(), None).unwrap();
    clock.advance(Duration::from_secs(59));
    n1.encrypt(A, &key.arn(), b"x", &ctx(), None).unwrap();
    clock.advance(Duration::from_secs(2));
    assert!(matches!(
        n1.encrypt(A, &key.arn(), b"x", &ctx(), None),
        Err(KmsError::DependencyTimeout(_))
    ));
    n1.sync().unwrap();
    assert_eq!(n1.replica_age_ms(), 0);
    n1.encrypt(A, &key.arn(), b"x", &ctx(), None).unwrap();
}

#[test]
fn sqlite_schedule_against_cancel() {
    schedule_against_cancel(sqlite());
}

#[test]
fn postgres_schedule_against_cancel() {
    schedule_against_cancel(postgres());
}

#[test]
fn sqlite_rotate_against_rotate() {
    rotate_against_rotate(sqlite());
}

#[test]
fn postgres_rotate_against_rotate() {
    rotate_against_rotate(postgres());
}

#[test]
fn sqlite_changes_reach_the_other_node() {
    changes_reach_the_other_node(sqlite());
}

#[test]
fn postgres_changes_reach_the_other_node() {
    changes_reach_the_other_node(postgres());
}

#[test]
fn sqlite_staleness_bound() {
    staleness_bound(sqlite());
}

#[test]
fn postgres_staleness_bound() {
    staleness_bound(postgres());
}

/// A single SQLite node is its own source of truth: it never goes stale.
#[test]
fn a_single_sqlite_node_never_goes_stale() {
    let dir = tempfile::tempdir().unwrap();
    let clock = StepClock::new();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("k.db")).unwrap());
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let kms = Kms::open(store, &root, clock.clone(), "us-east-1").unwrap();
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    clock.advance(Duration::from_secs(3600));
    kms.encrypt(A, &key.arn(), b"x", &ctx(), None).unwrap();
}

/// PostgreSQL stopped: crypto keeps working from the replica, state
/// changes fail with StoreUnavailable; after restart everything recovers
/// without reopening the nodes, and no acknowledged write is lost.
#[test]
fn postgres_outage_keeps_crypto_and_refuses_changes_then_recovers() {
    let mut pg = TempPostgres::new().unwrap();
    let options = PostgresOptions {
        operation_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..PostgresOptions::default()
    };
    let url = pg.connection_string();
    let stores: [Arc<dyn Store>; 2] = [
        Arc::new(PostgresStore::connect_with(&url, options.clone()).unwrap()),
        Arc::new(PostgresStore::connect_with(&url, options).unwrap()),
    ];
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let [n1, n2] = stores.map(|s| Kms::open(s, &root, Arc::new(SystemClock), "us-east-1").unwrap());
    let mut acknowledged = Vec::new();
    for _ in 0..5 {
        acknowledged.push(n1.create_key(A, CreateKeyInput::default()).unwrap());
    }
    n2.sync().unwrap();

    pg.stop().unwrap();
    for key in &acknowledged {
        let blob = n2
            .encrypt(A, &key.arn(), b"during", &ctx(), None)
            .unwrap()
            .ciphertext;
        n1.decrypt(A, &blob, &ctx(), None, None).unwrap();
    }
    assert!(matches!(
        n1.create_key(A, CreateKeyInput::default()),
        Err(KmsError::StoreUnavailable { .. })
    ));
    assert!(matches!(
        n2.disable_key(A, &acknowledged[0].arn()),
        Err(KmsError::StoreUnavailable { .. })
    ));
    assert!(matches!(n2.sync(), Err(KmsError::StoreUnavailable { .. })));

    pg.start().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let created = loop {
        match n1.create_key(A, CreateKeyInput::default()) {
            Ok(k) => break k,
            Err(e) if std::time::Instant::now() > deadline => panic!("no recovery: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    n2.sync().unwrap();
    for key in acknowledged.iter().chain([&created]) {
        assert_eq!(n2.describe_key(A, &key.arn()).unwrap().id, key.id);
    }
    n2.disable_key(A, &created.arn()).unwrap();
}

/// Racing UpdateAlias calls at one node (no writer lock): the replica ends
/// with what the store holds, never with the target of the call that
/// committed first but published last.
#[test]
fn racing_alias_updates_leave_the_replica_as_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).unwrap());
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let kms = Kms::open(store.clone(), &root, Arc::new(SystemClock), "us-east-1").unwrap();
    let a = kms.create_key(A, CreateKeyInput::default()).unwrap();
    let b = kms.create_key(A, CreateKeyInput::default()).unwrap();
    kms.create_alias(A, "alias/x", &a.arn()).unwrap();
    for _ in 0..20 {
        race(
            || kms.update_alias(A, "alias/x", &a.arn()).unwrap(),
            || kms.update_alias(A, "alias/x", &b.arn()).unwrap(),
        );
        let stored = store
            .load_alias(A, "us-east-1", "alias/x")
            .unwrap()
            .unwrap();
        assert_eq!(kms.describe_key(A, "alias/x").unwrap().id, stored.target);
    }
}

/// Feed trimming on a shared store: a node trims what it read at least the
/// retention ago; a node that has not synced since then is behind the
/// trimmed part, reloads its whole replica on its next sync, and reads the
/// feed normally after that. The trimming node itself never reloads.
fn trimming_the_feed(shared: Shared) {
    let clock = StepClock::new();
    let retention = Duration::from_secs(60);
    let root = LocalRootKey::new(SymmetricKey::from_slice(&[7; 32]).unwrap());
    let [n1, n2] = shared.stores.clone().map(|s| {
        Arc::new(
            Kms::open(s, &root, clock.clone(), "us-east-1")
                .unwrap()
                .with_feed_retention(retention)
                .with_max_staleness(None),
        )
    });
    let k1 = n1.create_key(A, CreateKeyInput::default()).unwrap();
    // Nothing is older than the retention yet.
    assert_eq!(n1.trim_feed().unwrap(), 0);
    clock.advance(Duration::from_secs(61));
    n1.sync().unwrap();
    let k2 = n1.create_key(A, CreateKeyInput::default()).unwrap();
    n1.disable_key(A, &k1.arn()).unwrap();
    clock.advance(Duration::from_secs(61));
    n1.sync().unwrap();
    // n1 trims up to where it was 61 s ago (after k1's creation); n2,
    // opened before k1, has not synced since.
    let removed = n1.trim_feed().unwrap();
    assert!(removed >= 2, "{removed}");
    let outcome = n2.sync().unwrap();
    assert!(outcome.reloaded, "{outcome:?}");
    assert_eq!(
        n2.describe_key(A, &k1.arn()).unwrap().state,
        KeyState::Disabled
    );
    n2.describe_key(A, &k2.arn()).unwrap();
    // From there on both read the feed as usual.
    let k3 = n1.create_key(A, CreateKeyInput::default()).unwrap();
    let outcome = n2.sync().unwrap();
    assert!(!outcome.reloaded, "{outcome:?}");
    n2.describe_key(A, &k3.arn()).unwrap();
    assert!(!n1.sync().unwrap().reloaded);
    // Trimming again later removes what was trimmed no more.
    clock.advance(Duration::from_secs(61));
    n1.sync().unwrap();
    n2.sync().unwrap();
    n1.trim_feed().unwrap();
    n2.trim_feed().unwrap();
    assert!(!n1.sync().unwrap().reloaded);
    assert!(!n2.sync().unwrap().reloaded);
    assert_eq!(n2.list_keys(A, None, None).unwrap().items.len(), 3);
}

#[test]
fn sqlite_trimming_the_feed() {
    trimming_the_feed(sqlite());
}

#[test]
fn postgres_trimming_the_feed() {
    trimming_the_feed(postgres());
}
