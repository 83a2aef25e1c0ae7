//! Domain-key rotation over a store two nodes share (a SQLite file opened
//! twice, a PostgreSQL database reached through two pools): one node
//! rotates, the other picks the new domain key up from the change feed
//! without a restart, the re-wrap moves every version forward and the old
//! domain key is destroyed everywhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use keyfence_core::model::{ImportExpiry, ImportWrapping};
use keyfence_core::service::{CreateKeyInput, RewrapBudget};
use keyfence_core::store::Rewrap;
use keyfence_core::{
    EncryptionContext, KeyState, Kms, LocalRootKey, Origin, RootOfTrust, Store, SystemClock,
};
use keyfence_crypto::asym::{self, WrappingAlgorithm};
use keyfence_crypto::SymmetricKey;
use keyfence_store::{PostgresStore, SqliteStore};
use keyfence_testkit::TempPostgres;

const A: &str = "111122223333";

fn ctx() -> EncryptionContext {
    EncryptionContext::new(BTreeMap::from([("app".to_string(), "dk".to_string())])).unwrap()
}

fn root() -> Arc<dyn RootOfTrust> {
    Arc::new(LocalRootKey::new(
        SymmetricKey::from_slice(&[9; 32]).unwrap(),
    ))
}

/// A node on `store` that keeps its root of trust.
fn node(store: Arc<dyn Store>) -> Kms {
    let root = root();
    Kms::open(store, root.as_ref(), Arc::new(SystemClock), "us-east-1")
        .unwrap()
        .with_root_of_trust(root)
}

fn ids(store: &dyn Store) -> Vec<u32> {
    store.domain_keys().unwrap().iter().map(|d| d.id).collect()
}

fn encrypt(kms: &Kms, key: &str, text: &[u8]) -> Vec<u8> {
    kms.encrypt(A, key, text, &ctx(), None).unwrap().ciphertext
}

fn decrypts(kms: &Kms, blob: &[u8], text: &[u8]) {
    let out = kms.decrypt(A, blob, &ctx(), None, None).unwrap();
    assert_eq!(out.plaintext.expose(), text);
}

fn exercise(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    let a = node(Arc::clone(&one));
    let b = node(Arc::clone(&two));
    assert_eq!((a.current_domain_key(), b.current_domain_key()), (1, 1));
    let old = a.create_key(A, CreateKeyInput::default()).unwrap().arn();
    let old_blob = encrypt(&a, &old, b"before");
    // A key awaiting imported material: its import parameters are wrapped
    // under the domain key too.
    let external = a
        .create_key(
            A,
            CreateKeyInput {
                origin: Origin::External,
                ..Default::default()
            },
        )
        .unwrap()
        .arn();
    let params = a
        .get_parameters_for_import(
            A,
            &external,
            ImportWrapping::Rsa {
                spec: asym::KeySpec::Rsa2048,
                algorithm: WrappingAlgorithm::RsaesOaepSha256,
            },
        )
        .unwrap();
    b.sync().unwrap();

    assert_eq!(a.rotate_domain_key().unwrap(), 2);
    assert_eq!(ids(one.as_ref()), [1, 2]);
    let new = a.create_key(A, CreateKeyInput::default()).unwrap();
    let stored = one.load_key(&new.id).unwrap().unwrap();
    assert_eq!(
        stored.versions[0].domain_key_id, 2,
        "new keys under the new domain key"
    );
    let new_blob = encrypt(&a, &new.arn(), b"after");
    // Node b has not read the feed yet: what it creates is under key 1.
    let slow = b.create_key(A, CreateKeyInput::default()).unwrap();
    assert_eq!(
        two.load_key(&slow.id).unwrap().unwrap().versions[0].domain_key_id,
        1
    );
    let slow_blob = encrypt(&b, &slow.arn(), b"slow");

    // Node b picks the new domain key up from the feed, without a restart.
    b.sync().unwrap();
    assert_eq!(b.held_domain_keys(), [1, 2]);
    assert_eq!(b.current_domain_key(), 2);
    decrypts(&b, &new_blob, b"after");
    decrypts(&b, &old_blob, b"before");

    // The re-wrap, in batches of one version: a pass of one batch stops
    // unfinished, destroying nothing.
    let single = RewrapBudget {
        batch: 1,
        batches: 1,
    };
    let first = a.rewrap_domain_keys(single, Duration::ZERO).unwrap();
    assert_eq!((first.finished, first.rewrapped), (false, 1), "{first:?}");
    assert!(
        first.destroyed.is_empty() && first.remaining == [1],
        "{first:?}"
    );
    assert_eq!(ids(one.as_ref()), [1, 2]);
    let outcome = a
        .rewrap_domain_keys(
            RewrapBudget {
                batch: 1,
                batches: usize::MAX,
            },
            Duration::ZERO,
        )
        .unwrap();
    assert!(outcome.finished, "{outcome:?}");
    assert_eq!(outcome.rewrapped, 1, "the other one, {outcome:?}");
    assert_eq!(outcome.import_parameters, 1, "{outcome:?}");
    assert_eq!(outcome.destroyed, [1], "{outcome:?}");
    assert!(outcome.remaining.is_empty(), "{outcome:?}");
    assert!(one.versions_under(1, None, 100).unwrap().is_empty());
    assert_eq!(
        ids(one.as_ref()),
        [2],
        "the old domain key is gone from the store"
    );
    for key in one.load().unwrap().keys {
        for v in key.versions {
            assert_eq!(v.domain_key_id, 2, "{} v{}", key.metadata.id, v.version);
        }
    }
    assert_eq!(a.held_domain_keys(), [2]);
    // Nothing left to do.
    let again = a
        .rewrap_domain_keys(RewrapBudget::UNLIMITED, Duration::ZERO)
        .unwrap();
    assert_eq!((again.rewrapped, again.destroyed.len()), (0, 0));

    // Node b drops the destroyed key from the feed and still answers.
    b.sync().unwrap();
    assert_eq!(b.held_domain_keys(), [2]);
    a.sync().unwrap();
    for kms in [&a, &b] {
        decrypts(kms, &old_blob, b"before");
        decrypts(kms, &new_blob, b"after");
        decrypts(kms, &slow_blob, b"slow");
    }

    // A node started now reads every version under the new key, and the
    // import parameters handed out before the rotation still work.
    let c = node(Arc::clone(&two));
    assert_eq!(c.held_domain_keys(), [2]);
    decrypts(&c, &old_blob, b"before");
    decrypts(&c, &slow_blob, b"slow");
    let material = [0x5au8; 32];
    let wrapped = asym::encrypt_with_public_key(
        asym::KeySpec::Rsa2048,
        &params.public_key,
        asym::EncryptionAlgorithm::RsaesOaepSha256,
        &material,
    )
    .unwrap();
    let (meta, _) = c
        .import_key_material(
            A,
            &external,
            &params.import_token,
            &wrapped,
            ImportExpiry::Never,
            None,
            None,
        )
        .unwrap();
    assert_eq!(meta.state, KeyState::Enabled);
    let imported_blob = encrypt(&c, &external, b"imported");
    a.sync().unwrap();
    decrypts(&a, &imported_blob, b"imported");
}

#[test]
fn sqlite_nodes_rotate_rewrap_and_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    exercise(
        Arc::new(SqliteStore::open_shared(&path).unwrap()),
        Arc::new(SqliteStore::open_shared(&path).unwrap()),
    );
}

#[test]
fn postgres_nodes_rotate_rewrap_and_destroy() {
    let pg = TempPostgres::new().unwrap();
    let url = pg.connection_string();
    exercise(
        Arc::new(PostgresStore::connect(&url).unwrap()),
        Arc::new(PostgresStore::connect(&url).unwrap()),
    );
}

/// The store's side on its own: a re-wrap is written only over the version
/// as it was read, and a domain key some version names is not destroyed.
fn conditional(store: Arc<dyn Store>) {
    let kms = node(Arc::clone(&store));
    let key = kms.create_key(A, CreateKeyInput::default()).unwrap();
    kms.rotate_domain_key().unwrap();
    let stored = store.load_key(&key.id).unwrap().unwrap();
    let version = &stored.versions[0];
    assert!(!store.destroy_domain_key(1).unwrap(), "version 1 names it");
    let stale = Rewrap {
        key_id: key.id,
        version: version.version,
        from_domain_key: 1,
        from_wrapped: b"not what is stored".to_vec(),
        to_domain_key: 2,
        wrapped: b"junk".to_vec(),
    };
    assert_eq!(store.rewrap_versions(&[stale]).unwrap(), 0);
    assert_eq!(store.load_key(&key.id).unwrap().unwrap(), stored);
    assert_eq!(ids(store.as_ref()), [1, 2]);
    // The key's revision is untouched by a re-wrap.
    let outcome = kms
        .rewrap_domain_keys(RewrapBudget::UNLIMITED, Duration::ZERO)
        .unwrap();
    assert_eq!((outcome.rewrapped, outcome.destroyed), (1, vec![1]));
    let after = store.load_key(&key.id).unwrap().unwrap();
    assert_eq!(after.revision, stored.revision);
    assert_ne!(after.versions[0].wrapped, version.wrapped);
}

#[test]
fn sqlite_rewrap_and_destroy_are_conditional() {
    let dir = tempfile::tempdir().unwrap();
    conditional(Arc::new(
        SqliteStore::open(&dir.path().join("keyfence.db")).unwrap(),
    ));
}

#[test]
fn postgres_rewrap_and_destroy_are_conditional() {
    let pg = TempPostgres::new().unwrap();
    conditional(Arc::new(
        PostgresStore::connect(&pg.connection_string()).unwrap(),
    ));
}

/// A rotation by one node resets the schedule of the others: they take its
/// key rather than make one more.
#[test]
fn another_nodes_rotation_resets_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let a = node(Arc::new(SqliteStore::open_shared(&path).unwrap()));
    let b = node(Arc::new(SqliteStore::open_shared(&path).unwrap()));
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(a.rotate_domain_key_if_due(day).unwrap(), None);
    assert_eq!(a.rotate_domain_key_if_due(Duration::ZERO).unwrap(), Some(2));
    assert_eq!(b.rotate_domain_key_if_due(day).unwrap(), None);
    assert_eq!(b.current_domain_key(), 2, "b took a's rotation");
}

/// A fenced key's versions are wrapped under their fence, not a domain key:
/// the re-wrap only relabels them, even at a node outside the fence, and the
/// node inside still serves the key after the old domain key is gone.
#[test]
fn fenced_versions_are_relabelled_by_any_node() {
    use keyfence_abe::Attributes;
    use keyfence_core::fence::{Authority, JoinRequest, NodeIdentity, NodeKeyring};
    use keyfence_core::service::{FenceView, FENCE_TAG};

    let authority = Authority::new().unwrap();
    let mut enrolled = Vec::new();
    for (name, attrs) in [("fra", "region: EU"), ("iad", "region: NA")] {
        let identity = NodeIdentity::generate(name, Attributes::parse(attrs).unwrap()).unwrap();
        let request =
            JoinRequest::from_bytes(&identity.join_request().unwrap().to_bytes()).unwrap();
        let approved = request.verify().unwrap().attributes().clone();
        let grant = authority.approve(&request, approved, &[]).unwrap().grant;
        enrolled.push((identity.to_bytes().to_vec(), grant));
    }
    let grants: Vec<_> = enrolled.iter().map(|(_, g)| g.clone()).collect();
    let fence = authority.create_fence("region: EU", &grants).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let node = |i: usize| {
        let (identity, grant) = &enrolled[i];
        let keyring = NodeKeyring::open(
            NodeIdentity::from_bytes(identity).unwrap(),
            grant,
            authority.public(),
        )
        .unwrap();
        let root = root();
        Kms::open_fenced(
            Arc::new(SqliteStore::open_shared(&path).unwrap()),
            root.as_ref(),
            Arc::new(SystemClock),
            "eu-central-1",
            FenceView {
                authority: Some(authority.public().clone()),
                keyring: Some(keyring),
                records: vec![fence.clone()],
            },
        )
        .unwrap()
        .with_root_of_trust(root)
    };
    let (fra, iad) = (node(0), node(1));
    let key = fra
        .create_key(
            A,
            CreateKeyInput {
                tags: vec![(FENCE_TAG.into(), "region: EU".into())],
                ..Default::default()
            },
        )
        .unwrap();
    let blob = fra
        .encrypt(A, &key.arn(), b"fenced", &ctx(), None)
        .unwrap()
        .ciphertext;
    let store = SqliteStore::open_shared(&path).unwrap();
    let before = store.load_key(&key.id).unwrap().unwrap().versions[0].clone();
    assert_eq!(before.domain_key_id, 1);

    // The node outside the fence rotates and re-wraps.
    iad.sync().unwrap();
    assert_eq!(iad.rotate_domain_key().unwrap(), 2);
    let outcome = iad
        .rewrap_domain_keys(RewrapBudget::UNLIMITED, Duration::ZERO)
        .unwrap();
    assert_eq!((outcome.rewrapped, outcome.destroyed), (1, vec![1]));
    let after = store.load_key(&key.id).unwrap().unwrap().versions[0].clone();
    assert_eq!(after.domain_key_id, 2);
    assert_eq!(after.wrapped, before.wrapped, "relabelled, not re-wrapped");

    fra.sync().unwrap();
    assert_eq!(fra.held_domain_keys(), [2]);
    decrypts(&fra, &blob, b"fenced");
}
