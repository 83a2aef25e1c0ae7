//! The quorum tables on a real SQLite file and a real PostgreSQL: operators
//! and rules round-trip, a proposal is recorded executed once (a second
//! record is a conflict and writes nothing), and a failed change leaves no
//! executed mark behind.

use std::collections::BTreeMap;

use keyfence_core::quorum::Operator;
use keyfence_core::quorum::{
    CommandKind, ExecutedProposal, OperatorSigner, ProposalId, QuorumChange, QuorumStore, Scheme,
};
use keyfence_core::{StoreError, Timestamp};
use keyfence_store::{PostgresStore, SqliteStore};
use keyfence_testkit::TempPostgres;

fn op(name: &str, scheme: Scheme) -> Operator {
    let (s, _) = OperatorSigner::generate(scheme).unwrap();
    Operator {
        name: name.into(),
        key: s.public().unwrap(),
    }
}

fn exercise(store: &dyn QuorumStore) {
    let (alice, bob) = (op("alice", Scheme::MlDsa65), op("bob", Scheme::Ed25519));
    store
        .commit_quorum(&QuorumChange::AddOperator(alice.clone()), None)
        .unwrap();
    store
        .commit_quorum(&QuorumChange::AddOperator(bob.clone()), None)
        .unwrap();
    assert!(matches!(
        store.commit_quorum(&QuorumChange::AddOperator(bob.clone()), None),
        Err(StoreError::Conflict(_))
    ));
    store
        .commit_quorum(&QuorumChange::SetRule(CommandKind::ApproveNode, 2), None)
        .unwrap();
    store
        .commit_quorum(&QuorumChange::SetRule(CommandKind::ApproveNode, 1), None)
        .unwrap();
    let state = store.quorum_state().unwrap();
    assert_eq!(state.operators, vec![alice, bob]);
    assert_eq!(state.rules, BTreeMap::from([(CommandKind::ApproveNode, 1)]));

    let done = ExecutedProposal {
        id: ProposalId([9; 32]),
        kind: CommandKind::ApproveNode,
        approvers: vec!["alice".into()],
        at: Timestamp(5),
    };
    assert!(!store.executed(&done.id).unwrap());
    store
        .commit_quorum(&QuorumChange::Nothing, Some(&done))
        .unwrap();
    assert!(store.executed(&done.id).unwrap());
    // A replay, here with a change: refused, and the change not applied.
    assert!(matches!(
        store.commit_quorum(&QuorumChange::RemoveOperator("bob".into()), Some(&done)),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.quorum_state().unwrap().operators.len(), 2);
    // A change that fails leaves no executed mark.
    let other = ExecutedProposal {
        id: ProposalId([8; 32]),
        ..done
    };
    assert!(matches!(
        store.commit_quorum(&QuorumChange::RemoveOperator("carol".into()), Some(&other)),
        Err(StoreError::Conflict(_))
    ));
    assert!(!store.executed(&other.id).unwrap());
    store
        .commit_quorum(&QuorumChange::RemoveOperator("bob".into()), Some(&other))
        .unwrap();
    assert_eq!(store.quorum_state().unwrap().operators.len(), 1);
}

#[test]
fn quorum_tables_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    exercise(&SqliteStore::open(&path).unwrap());
    // Durable: another open of the file sees the state.
    let again = SqliteStore::open(&path).unwrap();
    assert!(again.executed(&ProposalId([9; 32])).unwrap());
    assert_eq!(again.quorum_state().unwrap().operators.len(), 1);
}

#[test]
fn quorum_tables_on_postgres() {
    let pg = TempPostgres::new().unwrap();
    let store = PostgresStore::connect(&pg.connection_string()).unwrap();
    exercise(&store);
    let again = PostgresStore::connect(&pg.connection_string()).unwrap();
    assert!(again.executed(&ProposalId([8; 32])).unwrap());
}
