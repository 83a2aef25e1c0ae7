//! Rotating the domain key on demand through the admin API
//! (`KeyfenceAdmin.RotateDomainKey`): carried out directly while no quorum
//! rule guards rotate-domain-key; once one does, refused directly and with
//! too few operator signatures, carried out by a proposal with enough, and
//! never twice by the same proposal. Then the node's schedule re-wraps what
//! the older domain keys wrapped and destroys them; what was encrypted
//! before still decrypts, after a restart too.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_core::quorum::{
    Command, CommandKind, Operator, OperatorSigner, Proposal, QuorumChange, QuorumStore, Scheme,
};
use keyfence_core::service::CreateKeyInput;
use keyfence_core::{
    Clock, EncryptionContext, Kms, LocalRootKey, RootOfTrust, Store, SystemClock, Timestamp,
};
use keyfence_crypto::SymmetricKey;
use keyfence_server::admin::{self, Node};
use keyfence_server::approvals::Approvals;
use keyfence_server::config::DEFAULT_ACCOUNT;
use keyfence_server::domain_keys::{check, Schedule};
use keyfence_server::sigv4::VerifiedCaller;
use keyfence_store::SqliteStore;
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
    };
    admin::handle(
        node,
        &admin_caller(),
        op,
        body.to_string().as_bytes(),
    )
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
    let key = kms
        .create_key(DEFAULT_ACCOUNT, CreateKeyInput::default())
        .unwrap()
        .arn();
    let mut blobs = vec![kms
        .encrypt(DEFAULT_ACCOUNT, &key, b"dk1", &ctx(), None)
        .unwrap()
        .ciphertext];

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

    // The schedule (not due: rotated just now) re-wraps and destroys 1 and 2.
    let schedule = Schedule::new(Duration::from_secs(24 * 3600), None);
    let outcome = check(&kms, &schedule, None).unwrap().unwrap();
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
