//! The store work of one fenced CreateKey, at the node that makes it and at
//! the nodes that receive it through the change feed, must not grow with
//! the number of keys in the store.
//!
//! Issue 10: on a branch that predated the paged-load change, reading one
//! key (`WHERE ?1 IS NULL OR id = ?1`) walked the whole key index, and each
//! node read every new key that way from the feed; fenced CreateKey on a
//! three-node shared store fell from 416/s to 52/s past 18,000 keys. The
//! work is counted here in SQLite virtual-machine steps over every statement
//! the three nodes' connections run (a deterministic count, not a time):
//! index lookups take the same steps at any size, a scan takes one per row.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use keyfence_abe::Attributes;
use keyfence_core::fence::{
    Authority, FenceRecord, JoinRequest, NodeGrant, NodeIdentity, NodeKeyring,
};
use keyfence_core::service::{CreateKeyInput, FenceView, FENCE_TAG};
use keyfence_core::{Kms, LocalRootKey, Store, SystemClock};
use keyfence_crypto::SymmetricKey;
use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::StatementStatus;

use crate::SqliteStore;

const A: &str = "111122223333";
const POLICY: &str = "region: EU";

thread_local! {
    /// VM steps of each running statement when it started, by SQL text.
    static STARTED: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
    /// VM steps of the statements finished since the count was reset.
    static STEPS: Cell<i64> = const { Cell::new(0) };
}

/// Trace callback: adds each finished statement's own steps to [`STEPS`]
/// (a cached statement's counter runs on across executions, hence the
/// difference from its value when it started).
fn on_trace(event: TraceEvent<'_>) {
    match event {
        TraceEvent::Stmt(stmt, _) => {
            let now = i64::from(stmt.get_status(StatementStatus::VmStep));
            // A trigger's start is reported on its statement again: keep the first.
            STARTED.with(|s| {
                s.borrow_mut().entry(stmt.sql().into_owned()).or_insert(now);
            });
        }
        TraceEvent::Profile(stmt, _) => {
            let now = i64::from(stmt.get_status(StatementStatus::VmStep));
            let started = STARTED.with(|s| s.borrow_mut().remove(stmt.sql().as_ref()));
            STEPS.with(|t| t.set(t.get() + now - started.unwrap_or(0)));
        }
        _ => {}
    }
}

/// The VM steps every statement of `stores` takes while `op` runs (on this thread).
fn steps(stores: &[&SqliteStore], op: impl FnOnce()) -> i64 {
    for store in stores {
        store.connection().trace_v2(
            TraceEventCodes::SQLITE_TRACE_STMT | TraceEventCodes::SQLITE_TRACE_PROFILE,
            Some(on_trace),
        );
    }
    STARTED.with(|s| s.borrow_mut().clear());
    STEPS.with(|t| t.set(0));
    op();
    for store in stores {
        store.connection().trace_v2(TraceEventCodes::empty(), None);
    }
    STEPS.with(Cell::get)
}

/// A node approved by `authority`: its identity and grant.
fn enroll(authority: &Authority, name: &str, attrs: &str) -> (NodeIdentity, NodeGrant) {
    let identity = NodeIdentity::generate(name, Attributes::parse(attrs).unwrap()).unwrap();
    let request = JoinRequest::from_bytes(&identity.join_request().unwrap().to_bytes()).unwrap();
    let approved = request.verify().unwrap().attributes().clone();
    let grant = authority.approve(&request, approved, &[]).unwrap().grant;
    (identity, grant)
}

fn fenced() -> CreateKeyInput {
    CreateKeyInput {
        tags: vec![(FENCE_TAG.into(), POLICY.into())],
        ..Default::default()
    }
}

#[test]
fn a_fenced_create_key_and_its_propagation_cost_the_same_at_any_store_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let authority = Authority::new().unwrap();
    let nodes = [
        ("fra", "country: DE, region: EU"),
        ("par", "country: FR, region: EU"),
        ("iad", "country: US, region: NA"),
    ];
    let enrolled: Vec<(NodeIdentity, NodeGrant)> = nodes
        .iter()
        .map(|(name, attrs)| enroll(&authority, name, attrs))
        .collect();
    let grants: Vec<NodeGrant> = enrolled.iter().map(|(_, g)| g.clone()).collect();
    let fence: FenceRecord = authority.create_fence(POLICY, &grants).unwrap();
    let stores: Vec<Arc<SqliteStore>> = nodes
        .iter()
        .map(|_| Arc::new(SqliteStore::open_shared(&path).unwrap()))
        .collect();
    let kms: Vec<Kms> = stores
        .iter()
        .zip(enrolled)
        .map(|(store, (identity, grant))| {
            let keyring = NodeKeyring::open(identity, &grant, authority.public()).unwrap();
            let view = FenceView {
                authority: Some(authority.public().clone()),
                keyring: Some(keyring),
                records: vec![fence.clone()],
            };
            let store: Arc<dyn Store> = store.clone();
            Kms::open_fenced(store, &root, Arc::new(SystemClock), "eu-central-1", view).unwrap()
        })
        .collect();
    let traced: Vec<&SqliteStore> = stores.iter().map(AsRef::as_ref).collect();
    // One fenced key made at fra and read from the feed by every node.
    let create_and_propagate = || {
        kms[0].create_key(A, fenced()).unwrap();
        for node in &kms {
            node.sync().unwrap();
        }
    };
    create_and_propagate(); // first use: the policy key opened at fra and par
    let small = steps(&traced, create_and_propagate);

    // 2,000 more keys (unfenced: cheap to make; the store reads the same rows).
    stores[0]
        .connection()
        .pragma_update(None, "synchronous", "OFF")
        .unwrap();
    for _ in 0..2_000 {
        kms[0].create_key(A, CreateKeyInput::default()).unwrap();
    }
    stores[0]
        .connection()
        .pragma_update(None, "synchronous", "FULL")
        .unwrap();
    for node in &kms {
        node.sync().unwrap();
    }
    let large = steps(&traced, create_and_propagate);

    assert!(small > 0, "nothing was counted");
    // A scan of 2,000 keys would add thousands of steps per read.
    assert!(
        large <= small + small / 4,
        "one fenced CreateKey and its propagation took {small} VM steps with 2 keys \
         in the store and {large} with 2,002"
    );
    eprintln!("VM steps of a fenced CreateKey and 3 syncs: {small} at 2 keys, {large} at 2,002");
}
