//! Rotating the domain key on demand through the admin API
//! (`KeyfenceAdmin.RotateDomainKey`): carried out directly while no quorum
//! rule guards rotate-domain-key; once one does, refused directly and with
//! too few operator signatures, carried out by a proposal with enough, and
//! never twice by the same proposal. Then the node's schedule re-wraps what
//! the older domain keys wrapped and destroys them; what was encrypted
//! before still decrypts, after a restart too.
//!
//! And two running nodes on one shared store (a SQLite file, a PostgreSQL
//! database): a domain key one node makes reaches the other through its
//! replica task, without a restart, and so does its destruction.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_core::quorum::{
    Command, CommandKind, Operator, OperatorSigner, Proposal, QuorumChange, QuorumStore, Scheme,
};
use keyfence_core::service::{CreateKeyInput, RewrapBudget};
use keyfence_core::{
    Clock, EncryptionContext, Kms, LocalRootKey, RootOfTrust, Store, SystemClock, Timestamp,
};
use keyfence_crypto::SymmetricKey;
use keyfence_server::admin::{self, Node};
use keyfence_server::approvals::Approvals;
use keyfence_server::config::{StoreLocation, DEFAULT_ACCOUNT};
use keyfence_server::domain_keys::{check, Schedule};
use keyfence_server::sigv4::VerifiedCaller;
use keyfence_server::{Config, Node as RunningNode};
use keyfence_store::SqliteStore;
use keyfence_testkit::TempPostgres;
use serde_json::{json, Value};

fn admin_caller() -> VerifiedCaller {
    VerifiedCaller {
        access_key_id: "AKIAADMIN".into(),
        account_id: DEFAULT_ACCOUNT.into(),
        user_name: admin::ADMIN_USER.into(),
        region: "us-east-1".into(),
        service: "kms".into(),
    }
}

fn open(path: &std::path::Path) -> (Arc<SqliteStore>, Kms) {
    let store = Arc::new(SqliteStore::open(path).unwrap());
    let root: Arc<dyn RootOfTrust> = Arc::new(LocalRootKey::new(
        SymmetricKey::from_slice(&[3; 32]).unwrap(),
    ));
    let kms = Kms::open(
        Arc::clone(&store) as Arc<dyn Store>,
        root.as_ref(),
        Arc::new(SystemClock),
        "us-east-1",
    )
    .unwrap()
    .with_root_of_trust(root);
    (store, kms)
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new(BTreeMap::from([("k".to_string(), "v".to_string())])).unwrap()
}

fn run(kms: &Kms, approvals: &Approvals, op: &str, body: Value) -> Result<Value, (String, String)> {
    let node = Node {
        cluster: None,
        kms,
        approvals: Some(approvals),
        audit: None,
    };
    admin::handle(node, &admin_caller(), op, body.to_string().as_bytes())
        .map_err(|e| (e.code.to_string(), e.message))
}

/// A rotate-domain-key proposal and approval lines by `signers`.
fn proposal(signers: &[(&str, &OperatorSigner)]) -> (String, Vec<String>) {
    let now = SystemClock.now();
    let p = Proposal {
        command: Command::new(CommandKind::RotateDomainKey, BTreeMap::new()).unwrap(),
        nonce: keyfence_crypto::rand::array::<16>().unwrap(),
        created: now,
        expires: Timestamp(now.0 + 3_600_000),
    };
    let lines = signers
        .iter()
        .map(|(name, s)| {
            format!(
                "keyfence-approval v1 {name} {}",
                B64.encode(s.sign(&p.signed_bytes()).unwrap())
            )
        })
        .collect();
    (p.text(), lines)
}

#[test]
fn on_demand_rotation_goes_through_the_quorum_then_the_schedule_rewraps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let (store, kms) = open(&path);
    let approvals = Approvals::new(
        Arc::clone(&store) as Arc<dyn QuorumStore>,
        Arc::new(SystemClock),
    );
    // Three keys under domain key 1.
    let keys: Vec<String> = (0..3)
        .map(|_| {
            kms.create_key(DEFAULT_ACCOUNT, CreateKeyInput::default())
                .unwrap()
                .arn()
        })
        .collect();
    let mut blobs = vec![
        kms.encrypt(DEFAULT_ACCOUNT, &keys[2], b"dk1", &ctx(), None)
            .unwrap()
            .ciphertext,
    ];

    // No rule: one admin may rotate.
    let out = run(&kms, &approvals, "RotateDomainKey", json!({})).unwrap();
    assert_eq!(out["DomainKey"], 2, "{out}");
    assert_eq!(kms.current_domain_key(), 2);

    // A 2-of-2 rule for rotate-domain-key.
    let mut signers = Vec::new();
    for name in ["alice", "bob"] {
        let (signer, _) = OperatorSigner::generate(Scheme::Ed25519).unwrap();
        approvals
            .commit(
                &QuorumChange::AddOperator(Operator {
                    name: name.into(),
                    key: signer.public().unwrap(),
                }),
                None,
            )
            .unwrap();
        signers.push((name, signer));
    }
    approvals
        .commit(
            &QuorumChange::SetRule(CommandKind::RotateDomainKey, 2),
            None,
        )
        .unwrap();
    let (alice, bob) = ((signers[0].0, &signers[0].1), (signers[1].0, &signers[1].1));

    // Refused directly, and with one signature of two.
    let (code, message) = run(&kms, &approvals, "RotateDomainKey", json!({})).unwrap_err();
    assert_eq!(code, "AccessDeniedException", "{message}");
    assert!(message.contains("rotate-domain-key"), "{message}");
    let (text, lines) = proposal(&[alice]);
    let refused = run(
        &kms,
        &approvals,
        "Execute",
        json!({"Proposal": text, "Approvals": lines}),
    );
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(kms.current_domain_key(), 2, "nothing rotated");

    // Two signatures: carried out, once.
    let (text, lines) = proposal(&[alice, bob]);
    let body = json!({"Proposal": text, "Approvals": lines});
    let out = run(&kms, &approvals, "Execute", body.clone()).unwrap();
    assert_eq!(out["Executed"], "rotate-domain-key", "{out}");
    assert_eq!(out["Result"]["DomainKey"], 3, "{out}");
    let replay = run(&kms, &approvals, "Execute", body);
    assert!(replay.is_err(), "{replay:?}");
    assert_eq!(kms.current_domain_key(), 3);
    assert_eq!(kms.held_domain_keys(), [1, 2, 3]);

    let newer = kms
        .create_key(DEFAULT_ACCOUNT, CreateKeyInput::default())
        .unwrap()
        .arn();
    blobs.push(
        kms.encrypt(DEFAULT_ACCOUNT, &newer, b"dk3", &ctx(), None)
            .unwrap()
            .ciphertext,
    );

    // The schedule (not due: rotated just now) re-wraps, one version per
    // pass here (a rest after each), and destroys 1 and 2.
    let schedule = Schedule {
        pass: RewrapBudget {
            batch: 1,
            batches: 1,
        },
        ..Schedule::new(Duration::from_secs(24 * 3600), None)
    };
    let outcome = check(&kms, &schedule, None).unwrap().unwrap();
    assert!(outcome.finished, "{outcome:?}");
    assert_eq!(outcome.rewrapped, 3, "the first three keys, {outcome:?}");
    assert_eq!(outcome.destroyed, [1, 2], "{outcome:?}");
    assert_eq!(kms.held_domain_keys(), [3]);
    let under: HashSet<u32> = store
        .load()
        .unwrap()
        .keys
        .iter()
        .flat_map(|k| k.versions.iter().map(|v| v.domain_key_id))
        .collect();
    assert_eq!(under, HashSet::from([3]));
    assert_eq!(check(&kms, &schedule, None).unwrap(), None, "nothing left");

    // After a restart, both still decrypt.
    drop(kms);
    drop(store);
    let (_, kms) = open(&path);
    assert_eq!(kms.held_domain_keys(), [3]);
    for (blob, text) in blobs.iter().zip([b"dk1", b"dk3"]) {
        let out = kms
            .decrypt(DEFAULT_ACCOUNT, blob, &ctx(), None, None)
            .unwrap();
        assert_eq!(out.plaintext.expose(), text);
    }
}

async fn start(dir: &std::path::Path, store: &StoreLocation) -> RunningNode {
    RunningNode::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum: false,
        credentials: Vec::new(),
        principals: Default::default(),
        store: store.clone(),
        max_staleness: Duration::from_secs(60),
        feed_retention: Duration::from_secs(900),
        audit: Default::default(),
        limits: Default::default(),
        root: Default::default(),
        node: None,
        default_fence: None,
    })
    .await
    .expect("node starts")
}

/// Copies a data directory: every node of a cluster uses the same root key.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "node.addr.json" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Waits (at most 10 s) until `check` holds.
async fn until(mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `f` with `kms` off the async workers.
async fn blocking<T: Send + 'static>(
    kms: &Arc<Kms>,
    f: impl FnOnce(&Kms) -> T + Send + 'static,
) -> T {
    let kms = Arc::clone(kms);
    tokio::task::spawn_blocking(move || f(&kms)).await.unwrap()
}

async fn two_nodes_follow_a_rotation(store: StoreLocation) {
    let dirs = tempfile::tempdir().unwrap();
    let (d1, d2) = (dirs.path().join("n1"), dirs.path().join("n2"));
    let n1 = start(&d1, &store).await;
    copy_dir(&d1, &d2);
    let n2 = start(&d2, &store).await;
    let (k1, k2) = (Arc::clone(&n1.kms), Arc::clone(&n2.kms));
    let old = blocking(&k1, |k| {
        let key = k
            .create_key(DEFAULT_ACCOUNT, CreateKeyInput::default())
            .unwrap();
        k.encrypt(DEFAULT_ACCOUNT, &key.arn(), b"old", &ctx(), None)
            .unwrap()
            .ciphertext
    })
    .await;
    assert_eq!(blocking(&k1, |k| k.rotate_domain_key().unwrap()).await, 2);
    let new = blocking(&k1, |k| {
        let key = k
            .create_key(DEFAULT_ACCOUNT, CreateKeyInput::default())
            .unwrap();
        k.encrypt(DEFAULT_ACCOUNT, &key.arn(), b"new", &ctx(), None)
            .unwrap()
            .ciphertext
    })
    .await;
    // The other node decrypts under the key made after the rotation.
    until(|| {
        k2.decrypt(DEFAULT_ACCOUNT, &new, &ctx(), None, None)
            .is_ok()
    })
    .await;
    assert_eq!(k2.held_domain_keys(), [1, 2]);
    assert_eq!(k2.current_domain_key(), 2);
    // A re-wrap pass at the first node (no grace: the test's choice)
    // destroys key 1; the second node lets it go.
    let schedule = Schedule {
        grace: Duration::ZERO,
        ..Schedule::new(
            Duration::from_secs(24 * 3600),
            Some(Duration::from_secs(60)),
        )
    };
    let outcome = blocking(&k1, move |k| check(k, &schedule, None).unwrap()).await;
    assert!(
        outcome.as_ref().is_none_or(|o| o.remaining.is_empty()),
        "{outcome:?}"
    );
    until(|| k2.held_domain_keys() == [2]).await;
    for (blob, text) in [(&old, b"old"), (&new, b"new")] {
        for k in [&k1, &k2] {
            let out = k
                .decrypt(DEFAULT_ACCOUNT, blob, &ctx(), None, None)
                .unwrap();
            assert_eq!(out.plaintext.expose(), text);
        }
    }
    n2.shutdown().await;
    n1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_a_shared_sqlite_file_follow_a_rotation_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    two_nodes_follow_a_rotation(StoreLocation::SharedSqlite(dir.path().join("shared.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_postgres_follow_a_rotation_without_restart() {
    let pg = TempPostgres::new().unwrap();
    two_nodes_follow_a_rotation(StoreLocation::Postgres(pg.connection_string())).await;
}
