//! Geo-fenced keys through the core service, with several nodes sharing one
//! store — a real SQLite file, then a real PostgreSQL server: who serves a
//! fenced key, who knows it by metadata only, and what the store holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyfence_abe::Attributes;
use keyfence_core::fence::{
    wrapped_key_fence, Authority, FenceId, FenceRecord, JoinRequest, NodeGrant, NodeIdentity,
    NodeKeyring,
};
use keyfence_core::service::{CreateKeyInput, DataKeySize, FenceView, FENCE_TAG};
use keyfence_core::{EncryptionContext, Kms, KmsError, LocalRootKey, Store, SystemClock};
use keyfence_crypto::SymmetricKey;
use keyfence_store::{PostgresStore, SqliteStore};

const A: &str = "111122223333";
const POLICY: &str = "region: EU and not country: RU";

struct Enrolled {
    identity: Vec<u8>,
    grant: NodeGrant,
}

/// Where the nodes' shared store lives.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(keyfence_testkit::TempPostgres),
}

impl Backend {
    fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Self {
        Self::Postgres(keyfence_testkit::TempPostgres::new().unwrap())
    }

    fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(dir) => {
                Arc::new(SqliteStore::open(&dir.path().join("keyfence.db")).unwrap())
            }
            Self::Postgres(pg) => {
                Arc::new(PostgresStore::connect(&pg.connection_string()).unwrap())
            }
        }
    }
}

/// Runs a test body against each backend.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::sqlite())
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::postgres())
            })*
        }
    };
}

on_both_stores!(
    a_fenced_key_is_served_by_satisfying_nodes_only,
    the_fence_tag_is_fixed_at_creation,
    the_region_default_fence_applies_unless_create_key_opts_out,
    a_node_approved_after_start_opens_the_keys_it_kept_sealed,
);

struct Cluster {
    backend: Backend,
    root: LocalRootKey,
    authority: Authority,
    nodes: BTreeMap<&'static str, Enrolled>,
    fences: Vec<FenceRecord>,
}

fn enroll(
    authority: &Authority,
    name: &str,
    attrs: &str,
    fences: &[FenceRecord],
) -> (Enrolled, Vec<FenceRecord>) {
    let identity = NodeIdentity::generate(name, Attributes::parse(attrs).unwrap()).unwrap();
    let request = JoinRequest::from_bytes(&identity.join_request().unwrap().to_bytes()).unwrap();
    let approved = request.verify().unwrap().attributes().clone();
    let approval = authority.approve(&request, approved, fences).unwrap();
    (
        Enrolled {
            identity: identity.to_bytes().to_vec(),
            grant: approval.grant,
        },
        approval.fences,
    )
}

impl Cluster {
    fn new(backend: Backend) -> Self {
        let authority = Authority::new().unwrap();
        let mut nodes = BTreeMap::new();
        for (name, attrs) in [
            ("fra", "country: DE, region: EU, security: high"),
            ("par", "country: FR, region: EU"),
            ("iad", "country: US, region: NA"),
        ] {
            nodes.insert(name, enroll(&authority, name, attrs, &[]).0);
        }
        let grants: Vec<NodeGrant> = nodes.values().map(|n| n.grant.clone()).collect();
        let fences = vec![
            authority.create_fence(POLICY, &grants).unwrap(),
            authority.create_fence("region: NA", &grants).unwrap(),
        ];
        Self {
            backend,
            root: LocalRootKey::new(SymmetricKey::generate().unwrap()),
            authority,
            nodes,
            fences,
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        self.backend.open()
    }

    fn keyring(&self, name: &str) -> NodeKeyring {
        let node = &self.nodes[name];
        NodeKeyring::open(
            NodeIdentity::from_bytes(&node.identity).unwrap(),
            &node.grant,
            self.authority.public(),
        )
        .unwrap()
    }

    fn view(&self, name: &str) -> FenceView {
        FenceView {
            authority: Some(self.authority.public().clone()),
            keyring: Some(self.keyring(name)),
            records: self.fences.clone(),
        }
    }

    /// Node `name` over the shared file (opening it reads every key anew).
    fn node(&self, name: &str) -> Kms {
        Kms::open_fenced(
            self.store(),
            &self.root,
            Arc::new(SystemClock),
            "eu-central-1",
            self.view(name),
        )
        .unwrap()
    }
}

fn fenced(policy: &str) -> CreateKeyInput {
    CreateKeyInput {
        tags: vec![
            (FENCE_TAG.into(), policy.into()),
            ("team".into(), "a".into()),
        ],
        ..Default::default()
    }
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new(BTreeMap::from([("app".to_string(), "geo".to_string())])).unwrap()
}

fn fence_id(policy: &str) -> FenceId {
    FenceId::of_policy(policy).unwrap()
}

fn assert_elsewhere(err: KmsError, key: &str) {
    match err {
        KmsError::FencedElsewhere {
            key: k,
            fence,
            policy,
        } => {
            assert_eq!(
                (k.as_str(), fence, policy.as_str()),
                (key, fence_id(POLICY), POLICY)
            );
        }
        other => panic!("expected FencedElsewhere, got {other:?}"),
    }
}

fn a_fenced_key_is_served_by_satisfying_nodes_only(backend: Backend) {
    let c = Cluster::new(backend);
    let fra = c.node("fra");
    // Written differently, normalized to the one canonical policy.
    let meta = fra
        .create_key(A, fenced("(region: EU) and not (country: RU)"))
        .unwrap();
    let fence = meta.fence.clone().unwrap();
    assert_eq!(
        (fence.id, fence.policy.as_str()),
        (fence_id(POLICY), POLICY)
    );
    assert_eq!(meta.tags[FENCE_TAG], POLICY);
    assert_eq!(meta.tags["team"], "a");
    let ct = fra
        .encrypt(A, &meta.arn(), b"geo secret", &ctx(), None)
        .unwrap()
        .ciphertext;

    // The store holds the version wrapped under the fence, not a domain key.
    let stored = c.store().load().unwrap();
    let key = stored
        .keys
        .iter()
        .find(|k| k.metadata.id == meta.id)
        .unwrap();
    assert_eq!(key.metadata.fence, Some(fence.clone()));
    assert_eq!(key.versions.len(), 1);
    assert_eq!(
        wrapped_key_fence(&key.versions[0].wrapped).unwrap(),
        (fence.id, 1)
    );

    // Another satisfying node, over the same file, decrypts what fra encrypted.
    let par = c.node("par");
    assert_eq!(
        par.decrypt(A, &ct, &ctx(), None, None)
            .unwrap()
            .plaintext
            .expose(),
        b"geo secret"
    );
    par.rotate_key_on_demand(A, &meta.arn()).unwrap();

    // A node outside the fence with the whole store and its own keys: metadata only.
    let iad = c.node("iad");
    let described = iad.describe_key(A, &meta.arn()).unwrap();
    assert_eq!(described.fence, Some(fence.clone()));
    assert_elsewhere(
        iad.decrypt(A, &ct, &ctx(), None, None).unwrap_err(),
        &meta.arn(),
    );
    assert_elsewhere(
        iad.encrypt(A, &meta.arn(), b"x", &ctx(), None).unwrap_err(),
        &meta.arn(),
    );
    assert_elsewhere(
        iad.generate_data_key(A, &meta.arn(), DataKeySize::Bytes(32), &ctx(), true)
            .unwrap_err(),
        &meta.arn(),
    );
    assert_elsewhere(
        iad.rotate_key_on_demand(A, &meta.arn()).unwrap_err(),
        &meta.arn(),
    );
    // CreateKey of a key fenced away from iad is refused before any material exists.
    let before = c.store().load().unwrap().keys.len();
    assert_elsewhere(iad.create_key(A, fenced(POLICY)).unwrap_err(), "a new key");
    assert_eq!(c.store().load().unwrap().keys.len(), before);
    // iad serves the fence it satisfies.
    let na = iad.create_key(A, fenced("region: NA")).unwrap();
    assert!(iad.encrypt(A, &na.arn(), b"x", &ctx(), None).is_ok());

    // fra after a restart still serves the key, both versions.
    drop(fra);
    let fra = c.node("fra");
    assert_eq!(
        fra.decrypt(A, &ct, &ctx(), None, None)
            .unwrap()
            .plaintext
            .expose(),
        b"geo secret"
    );
    let ct2 = fra
        .encrypt(A, &meta.arn(), b"v2", &ctx(), None)
        .unwrap()
        .ciphertext;
    // Version 2 was made at par; fra read it from the store.
    assert_eq!(
        par.decrypt(A, &ct2, &ctx(), None, None)
            .unwrap()
            .plaintext
            .expose(),
        b"v2"
    );
}

fn the_fence_tag_is_fixed_at_creation(backend: Backend) {
    let c = Cluster::new(backend);
    let fra = c.node("fra");
    let meta = fra.create_key(A, fenced(POLICY)).unwrap();
    let plain = fra.create_key(A, CreateKeyInput::default()).unwrap();
    for key in [&meta, &plain] {
        for attempt in [
            fra.tag_resource(A, &key.arn(), vec![(FENCE_TAG.into(), "region: NA".into())]),
            fra.untag_resource(A, &key.arn(), &[FENCE_TAG.to_string()]),
        ] {
            match attempt.unwrap_err() {
                KmsError::Tag(m) => assert!(m.contains(FENCE_TAG), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
    // Other tags still change; the fence and its tag stay.
    fra.tag_resource(A, &meta.arn(), vec![("team".into(), "b".into())])
        .unwrap();
    let now = fra.describe_key(A, &meta.arn()).unwrap();
    assert_eq!(now.tags[FENCE_TAG], POLICY);
    assert_eq!(now.tags["team"], "b");
    assert_eq!(now.fence, meta.fence);
    assert_eq!(fra.describe_key(A, &plain.arn()).unwrap().fence, None);

    // A policy that does not parse is a tag error; one with no fence record yet is UnknownFence.
    assert!(matches!(
        fra.create_key(A, fenced("region: EU and")),
        Err(KmsError::Tag(_))
    ));
    match fra.create_key(A, fenced("security: high")).unwrap_err() {
        KmsError::UnknownFence { fence, policy } => {
            assert_eq!(
                (fence, policy.as_str()),
                (fence_id("security: high"), "security: high")
            )
        }
        other => panic!("{other:?}"),
    }
}

fn the_region_default_fence_applies_unless_create_key_opts_out(backend: Backend) {
    let c = Cluster::new(backend);
    let fra = c.node("fra").with_default_fence(Some(POLICY)).unwrap();
    let by_default = fra.create_key(A, CreateKeyInput::default()).unwrap();
    assert_eq!(by_default.fence.as_ref().unwrap().policy, POLICY);
    assert_eq!(by_default.tags[FENCE_TAG], POLICY);
    let opted_out = fra.create_key(A, fenced("")).unwrap();
    assert_eq!(opted_out.fence, None);
    assert!(!opted_out.tags.contains_key(FENCE_TAG));
    // iad defaults to the same fence: it cannot create keys there by default.
    let iad = c.node("iad").with_default_fence(Some(POLICY)).unwrap();
    assert_elsewhere(
        iad.create_key(A, CreateKeyInput::default()).unwrap_err(),
        "a new key",
    );
}

fn a_node_approved_after_start_opens_the_keys_it_kept_sealed(backend: Backend) {
    let mut c = Cluster::new(backend);
    let fra = c.node("fra");
    let meta = fra.create_key(A, fenced(POLICY)).unwrap();
    let ct = fra
        .encrypt(A, &meta.arn(), b"later", &ctx(), None)
        .unwrap()
        .ciphertext;

    // ber starts before it is approved: it knows the fences but holds no keyring.
    let ber = Kms::open_fenced(
        c.store(),
        &c.root,
        Arc::new(SystemClock),
        "eu-central-1",
        FenceView {
            authority: Some(c.authority.public().clone()),
            keyring: None,
            records: c.fences.clone(),
        },
    )
    .unwrap();
    assert_elsewhere(
        ber.decrypt(A, &ct, &ctx(), None, None).unwrap_err(),
        &meta.arn(),
    );

    // Approved: its grant, and the fence records updated with its s_policy envelope.
    let (enrolled, updated) = enroll(&c.authority, "ber", "country: DE, region: EU", &c.fences);
    assert_eq!(updated.len(), 1, "ber satisfies the EU fence only");
    c.nodes.insert("ber", enrolled);
    // A forged record (signed by another authority) is refused, and nothing opens.
    let rogue = Authority::new().unwrap();
    let forged = rogue.create_fence(POLICY, &[]).unwrap();
    assert!(matches!(
        ber.install_fences(FenceView {
            authority: None,
            keyring: Some(c.keyring("ber")),
            records: vec![forged],
        }),
        Err(KmsError::Internal(_))
    ));
    assert_elsewhere(
        ber.decrypt(A, &ct, &ctx(), None, None).unwrap_err(),
        &meta.arn(),
    );
    let opened = ber
        .install_fences(FenceView {
            authority: None,
            keyring: Some(c.keyring("ber")),
            records: updated,
        })
        .unwrap();
    assert_eq!(opened, 1);
    assert_eq!(
        ber.decrypt(A, &ct, &ctx(), None, None)
            .unwrap()
            .plaintext
            .expose(),
        b"later"
    );
}
