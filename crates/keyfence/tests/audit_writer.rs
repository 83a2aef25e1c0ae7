//! The audit log's writer over a real SQLite file: it restarts from the tree
//! edge stored with its last batch (and rebuilds a missing or wrong one),
//! records queued without waiting become durable in order (and, alone,
//! linger to share one commit), and a quorum-sealed node keeps its log from
//! start, signing heads once unsealed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyfence_core::audit::{
    merkle, AuditRecord, AuditStore, Frontier, LogKey, LogVerifier, Outcome, SignedTreeHead,
    Source, StoredEntry,
};
use keyfence_core::{LocalRootKey, StoreError, SystemClock};
use keyfence_crypto::SymmetricKey;
use keyfence_server::audit::AuditLog;
use keyfence_store::SqliteAuditStore;

fn records(store: &SqliteAuditStore, log: &str) -> Vec<AuditRecord> {
    store
        .read(log, 0, 10_000)
        .unwrap()
        .iter()
        .map(|e| AuditRecord::decode(&e.data).unwrap())
        .collect()
}

/// `n` local records appended through `log`, positions checked.
async fn append_n(log: &AuditLog, from: u64, n: u64) {
    for seq in from..from + n {
        let record = log.local("Test", "operator-1", None, Outcome::Success);
        assert_eq!(log.append(record).await.unwrap(), seq);
    }
}

fn verify(store: &SqliteAuditStore, key: &[u8]) -> keyfence_core::audit::Report {
    verify_log(store, "local", key)
}

fn verify_log(store: &SqliteAuditStore, log: &str, key: &[u8]) -> keyfence_core::audit::Report {
    let mut v = LogVerifier::new(key, store.heads(log).unwrap());
    let mut from = 0;
    loop {
        let page = store.read(log, from, 1000).unwrap();
        page.iter().for_each(|e| v.push(e));
        from += page.len() as u64;
        if page.len() < 1000 {
            return v.finish();
        }
    }
}

fn open(store: &Arc<SqliteAuditStore>, root: &LocalRootKey) -> AuditLog {
    AuditLog::open(
        Arc::clone(store) as Arc<dyn AuditStore>,
        "local",
        Some(root),
        Arc::new(SystemClock),
        Duration::from_secs(3600),
    )
    .unwrap()
}

#[tokio::test]
async fn a_writer_restarts_from_its_stored_edge_and_rebuilds_a_missing_or_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let store = Arc::new(SqliteAuditStore::open(&path).unwrap());
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let sql = rusqlite::Connection::open(&path).unwrap();

    let log = open(&store, &root);
    append_n(&log, 0, 10).await;
    let head = log.sign_now().await.unwrap().unwrap();
    log.close();
    let (edge, size) = store.frontier("local").unwrap();
    assert_eq!(size, 10);
    assert_eq!(
        edge.unwrap().root(),
        head.head.root,
        "the stored edge is the tree's"
    );

    // Restarted from the edge: positions and tree continue.
    let log = open(&store, &root);
    append_n(&log, 10, 5).await;
    log.close();
    let key = log.public_key().unwrap();

    // No edge (a log from before schema 6): rebuilt from the records.
    sql.execute("DELETE FROM audit_frontiers", []).unwrap();
    let log = open(&store, &root);
    append_n(&log, 15, 3).await;
    log.close();
    assert_eq!(verify(&store, &key).problem, None);

    // An edge of the right size but not the signed root (the latest head is at
    // its size): rebuilt, and the heads signed after it still verify.
    let mut forged = Frontier::new();
    (0..18u32).for_each(|i| forged.push(merkle::leaf_hash(&i.to_be_bytes())));
    sql.execute("UPDATE audit_frontiers SET edge = ?1", [forged.to_bytes()])
        .unwrap();
    let log = open(&store, &root);
    append_n(&log, 18, 2).await;
    log.close();
    // An edge that does not cover every record: rebuilt too.
    let mut short = Frontier::new();
    short.push(merkle::leaf_hash(b"x"));
    sql.execute("UPDATE audit_frontiers SET edge = ?1", [short.to_bytes()])
        .unwrap();
    let log = open(&store, &root);
    append_n(&log, 20, 1).await;
    log.close();
    let report = verify(&store, &key);
    assert_eq!((report.problem, report.records), (None, 21));
    assert_eq!(report.latest.unwrap().size, 21);
}

#[tokio::test]
async fn queued_records_are_durable_with_the_next_acknowledged_one_and_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteAuditStore::open(&dir.path().join("k.db")).unwrap());
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let log = open(&store, &root);
    log.enqueue(log.local("Sealed", "", None, Outcome::Success))
        .unwrap();
    append_n(&log, 1, 1).await;
    assert_eq!(store.read("local", 0, 10).unwrap().len(), 2);
    log.enqueue(log.local("Unsealed", "", None, Outcome::Success))
        .unwrap();
    log.close();
    let all = records(&store, "local");
    assert_eq!(
        all.iter().map(|r| r.operation.as_str()).collect::<Vec<_>>(),
        ["Sealed", "Test", "Unsealed"]
    );
    assert!(matches!(
        log.append(log.local("Late", "", None, Outcome::Success))
            .await,
        Err(keyfence_server::audit::AuditLogError::Stopped)
    ));
}

/// A real SQLite audit store that counts the writer's commits.
struct CountingStore {
    inner: Arc<SqliteAuditStore>,
    commits: AtomicUsize,
}

impl AuditStore for CountingStore {
    fn append(
        &self,
        log: &str,
        entries: &[StoredEntry],
        frontier: &Frontier,
    ) -> Result<(), StoreError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.append(log, entries, frontier)
    }
    fn frontier(&self, log: &str) -> Result<(Option<Frontier>, u64), StoreError> {
        self.inner.frontier(log)
    }
    fn read(&self, log: &str, from: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.read(log, from, limit)
    }
    fn add_head(&self, log: &str, head: &SignedTreeHead) -> Result<(), StoreError> {
        self.inner.add_head(log, head)
    }
    fn heads(&self, log: &str) -> Result<Vec<SignedTreeHead>, StoreError> {
        self.inner.heads(log)
    }
    fn signing_key(&self, log: &str) -> Result<Option<LogKey>, StoreError> {
        self.inner.signing_key(log)
    }
    fn put_signing_key(&self, log: &str, key: &LogKey) -> Result<(), StoreError> {
        self.inner.put_signing_key(log, key)
    }
    fn logs(&self) -> Result<Vec<String>, StoreError> {
        self.inner.logs()
    }
}

#[tokio::test]
async fn records_queued_without_waiting_linger_to_share_a_commit_until_one_is_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteAuditStore::open(&dir.path().join("k.db")).unwrap());
    let store = Arc::new(CountingStore {
        inner: Arc::clone(&sqlite),
        commits: AtomicUsize::new(0),
    });
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let log = AuditLog::open(
        Arc::clone(&store) as Arc<dyn AuditStore>,
        "local",
        Some(&root),
        Arc::new(SystemClock),
        Duration::from_secs(3600),
    )
    .unwrap();
    // Twenty records a millisecond apart, no one waiting: without the
    // linger each would be a commit of its own.
    for _ in 0..20 {
        log.enqueue(log.local("Hop", "", None, Outcome::Success))
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlite.read("local", 0, 100).unwrap().len() < 20 {
        assert!(
            Instant::now() < deadline,
            "lingering records never committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let commits = store.commits.load(Ordering::SeqCst);
    assert!(commits <= 5, "20 lingering records took {commits} commits");
    // An awaited record is committed at once and takes the lingering one
    // queued before it along, in order.
    log.enqueue(log.local("Hop", "", None, Outcome::Success))
        .unwrap();
    append_n(&log, 21, 1).await;
    assert_eq!(store.commits.load(Ordering::SeqCst), commits + 1);
    let all = records(&sqlite, "local");
    assert_eq!(all.len(), 22);
    assert_eq!(all[21].operation, "Test");
    log.close();
}

/// The long version (`cargo test --release -p keyfence-server --test audit_log
/// -- --ignored --nocapture`; `KEYFENCE_AUDIT_RECORDS`, default 100 000):
/// opening a log of that many records from its stored edge vs rebuilding.
#[tokio::test]
#[ignore]
async fn start_up_from_the_stored_edge_does_not_read_the_log() {
    let n: u64 = std::env::var("KEYFENCE_AUDIT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let store = Arc::new(SqliteAuditStore::open(&path).unwrap());
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let log = open(&store, &root);
    let template = log.local(
        "Encrypt",
        "arn:aws:iam::111122223333:user/alice",
        Some("arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-aaaa-bbbb-cccc-000000000001"),
        Outcome::Success,
    );
    log.close();
    // Filled directly in large transactions (the writer's path is measured by bench/audit.sh).
    let mut frontier = Frontier::new();
    let mut seq = 0;
    while seq < n {
        let batch: Vec<StoredEntry> = (seq..n.min(seq + 10_000))
            .map(|s| {
                let mut r = template.clone();
                r.seq = s;
                let data = r.encode().unwrap();
                let leaf_hash = merkle::leaf_hash(&data);
                frontier.push(leaf_hash);
                StoredEntry {
                    seq: s,
                    data,
                    leaf_hash,
                }
            })
            .collect();
        seq += batch.len() as u64;
        store.append("local", &batch, &frontier).unwrap();
    }
    let time = |label: &str| {
        let t = std::time::Instant::now();
        let log = open(&store, &root);
        let took = t.elapsed();
        log.close();
        println!(
            "audit start-up, {n} records, {label}: {:.1} ms",
            took.as_secs_f64() * 1e3
        );
        took
    };
    let from_edge = time("from the stored edge");
    let sql = rusqlite::Connection::open(&path).unwrap();
    sql.execute("DELETE FROM audit_frontiers", []).unwrap();
    let rebuilt = time("rebuilt from every record");
    println!(
        "rebuilt/from-edge = {:.1}",
        rebuilt.as_secs_f64() / from_edge.as_secs_f64()
    );
    assert!(from_edge < rebuilt);
}

#[tokio::test]
async fn a_quorum_sealed_node_records_while_sealed_and_signs_heads_only_while_unsealed() {
    use keyfence_server::config::{Config, StoreLocation};
    use keyfence_server::datadir::{DataDir, RootInit};
    use keyfence_server::root::RootKind;
    use keyfence_server::seal::SealedNode;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, init) = DataDir::init_with(
        &data,
        &RootInit::Shamir {
            threshold: 2,
            shares: 3,
        },
    )
    .unwrap();
    let node = SealedNode::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.clone(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum: false,
        credentials: Vec::new(),
        principals: Default::default(),
        node: None,
        default_fence: None,
        store: StoreLocation::DataDir,
        max_staleness: Duration::from_secs(60),
        feed_retention: Duration::from_secs(900),
        audit: Default::default(),
        limits: Default::default(),
        root: RootKind::Shamir.into(),
    })
    .await
    .unwrap();
    let audit = node
        .audit
        .clone()
        .expect("a sealed node keeps an audit log");
    // Sealed: recorded (after the record of the data directory's creation,
    // which `init` left for the first start), but no key to sign with.
    let probe = audit.local("Probe", "", None, Outcome::Success);
    assert_eq!(audit.append(probe).await.unwrap(), 1);
    assert_eq!(audit.public_key(), None);
    assert_eq!(audit.sign_now().await.unwrap(), None);

    assert!(node.gate.unseal(&init.shares[0]).unwrap().sealed);
    assert!(!node.gate.unseal(&init.shares[2]).unwrap().sealed);
    let head = audit
        .sign_now()
        .await
        .unwrap()
        .expect("signed once unsealed");
    assert_eq!(head.head.size, 3, "Init, the probe and the Unsealed record");
    let key = audit.public_key().unwrap();

    node.gate.seal();
    let after = audit.local("AfterSeal", "", None, Outcome::Success);
    assert_eq!(audit.append(after).await.unwrap(), 4);
    assert_eq!(
        audit.sign_now().await.unwrap(),
        None,
        "sealed again: no key"
    );
    drop(audit);
    node.shutdown().await;

    let store =
        SqliteAuditStore::open_existing(&data.join(keyfence_server::audit::OWN_FILE)).unwrap();
    let all = records(&store, "local");
    assert_eq!(
        all.iter()
            .map(|r| (r.source, r.operation.as_str()))
            .collect::<Vec<_>>(),
        [
            (Source::Local, "Init"),
            (Source::Local, "Probe"),
            (Source::Local, "Unsealed"),
            (Source::Local, "Sealed"),
            (Source::Local, "AfterSeal"),
        ]
    );
    let heads = store.heads("local").unwrap();
    assert_eq!(
        heads.iter().map(|h| h.head.size).collect::<Vec<_>>(),
        [3, 4],
        "sealing signs a last head"
    );
    let report = verify_log(&store, "local", &key);
    assert_eq!((report.problem, report.unsigned_tail), (None, 1));
}
