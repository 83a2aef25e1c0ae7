//! The cluster tables of both stores — a real SQLite file, a real PostgreSQL
//! server — with real fence objects: what goes in comes back out after a
//! reopen, and the store refuses what would let an old or foreign record
//! replace a newer one.

use keyfence_abe::Attributes;
use keyfence_core::cluster::{ClusterStore, NodeRecord, NodeState, StoredAuthority, StoredFence};
use keyfence_core::fence::{Authority, AuthorityPublic, FenceRecord, JoinRequest, NodeIdentity};
use keyfence_core::store::StoreError;
use keyfence_core::{LocalRootKey, RootOfTrust, Timestamp};
use keyfence_crypto::SymmetricKey;
use keyfence_store::{PostgresStore, SqliteStore};

fn stored(record: &FenceRecord) -> StoredFence {
    StoredFence {
        id: record.id(),
        policy: record.policy().to_owned(),
        epoch: record.epoch(),
        record: record.to_bytes(),
    }
}

#[test]
fn sqlite_nodes_fences_and_authority_survive_reopen_and_refuse_stale_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    exercise(&|| Box::new(SqliteStore::open(&path).unwrap()));
}

#[test]
fn postgres_nodes_fences_and_authority_survive_reopen_and_refuse_stale_writes() {
    let pg = keyfence_testkit::TempPostgres::new().unwrap();
    let url = pg.connection_string();
    exercise(&|| Box::new(PostgresStore::connect(&url).unwrap()));
}

fn exercise(open: &dyn Fn() -> Box<dyn ClusterStore>) {
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let authority = Authority::new().unwrap();
    let identity =
        NodeIdentity::generate("fra", Attributes::parse("country: DE, region: EU").unwrap())
            .unwrap();
    let request = identity.join_request().unwrap();

    let store = open();
    assert_eq!(store.nodes().unwrap(), []);
    assert_eq!(store.authority().unwrap(), None);
    let mut node = NodeRecord {
        name: "fra".into(),
        address: "127.0.0.1:8443".into(),
        join_request: request.to_bytes(),
        state: NodeState::Pending,
        grant: None,
        last_contact: Timestamp(100),
    };
    store.insert_node(&node).unwrap();
    assert!(matches!(
        store.insert_node(&node),
        Err(StoreError::Conflict(_))
    ));

    let attrs = request.verify().unwrap().attributes().clone();
    let approval = authority.approve(&request, attrs, &[]).unwrap();
    node.state = NodeState::Approved;
    node.grant = Some(approval.grant.to_bytes());
    store.update_node(&node).unwrap();
    store
        .touch_node("fra", "127.0.0.1:9443", Timestamp(200))
        .unwrap();
    // An older heartbeat never moves last contact back.
    store
        .touch_node("fra", "127.0.0.1:9443", Timestamp(150))
        .unwrap();

    let v1 = authority
        .create_fence("region: EU", std::slice::from_ref(&approval.grant))
        .unwrap();
    store.put_fence(&stored(&v1)).unwrap();
    let v2 = authority
        .rotate_fence(&v1, std::slice::from_ref(&approval.grant), &[])
        .unwrap()
        .record;
    store.put_fence(&stored(&v2)).unwrap();
    // Replaying the epoch-1 record (which may name a removed node) is refused.
    assert!(matches!(
        store.put_fence(&stored(&v1)),
        Err(StoreError::Conflict(_))
    ));

    let sealed = root.seal("authority", &authority.to_bytes()).unwrap();
    let public = authority.public().to_bytes();
    store
        .insert_authority(&StoredAuthority {
            public: public.clone(),
            sealed: sealed.clone(),
        })
        .unwrap();
    let other = Authority::new().unwrap();
    assert!(matches!(
        store.insert_authority(&StoredAuthority {
            public: other.public().to_bytes(),
            sealed: sealed.clone(),
        }),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.update_authority(&StoredAuthority {
            public: other.public().to_bytes(),
            sealed: sealed.clone(),
        }),
        Err(StoreError::Conflict(_))
    ));
    drop(store);

    let store = open();
    let nodes = store.nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    let fra = store.node("fra").unwrap().unwrap();
    assert_eq!(fra, nodes[0]);
    assert_eq!(fra.state, NodeState::Approved);
    assert_eq!(fra.address, "127.0.0.1:9443");
    assert_eq!(fra.last_contact, Timestamp(200));
    assert_eq!(
        JoinRequest::from_bytes(&fra.join_request)
            .unwrap()
            .verify()
            .unwrap()
            .name(),
        "fra"
    );
    assert_eq!(store.node("par").unwrap(), None);

    let fences = store.fences().unwrap();
    assert_eq!(fences.len(), 1);
    assert_eq!(fences[0].epoch, 2);
    assert_eq!(fences[0].policy, "region: EU");
    let back = FenceRecord::from_bytes(&fences[0].record).unwrap();
    let authority_public = AuthorityPublic::from_bytes(&public).unwrap();
    back.verify(&authority_public).unwrap();
    assert_eq!(back.epoch(), 2);

    let got = store.authority().unwrap().unwrap();
    assert_eq!(got.public, public);
    let reopened =
        Authority::from_bytes(root.unseal("authority", &got.sealed).unwrap().expose()).unwrap();
    assert_eq!(reopened.public(), authority.public());
    // Sealed under one label, it does not unseal under another.
    assert!(root.unseal("node-identity", &got.sealed).is_err());
}
