//! Geo-fencing through the public API: who opens a fence, who does not, and
//! what survives tampering, fence rotation and master rotation.

use keyfence_abe::Attributes;
use keyfence_core::fence::{
    unwrap_backing_key, wrap_backing_key, wrapped_key_fence, Authority, FenceError, FenceId,
    FenceRecord, JoinRequest, NodeGrant, NodeIdentity, NodeKeyring, NodePublic,
};

const POLICY: &str = "region: EU and not country: RU";

struct Node {
    identity_bytes: Vec<u8>,
    grant: NodeGrant,
}

impl Node {
    fn keyring(&self, authority: &Authority) -> NodeKeyring {
        let identity = NodeIdentity::from_bytes(&self.identity_bytes).unwrap();
        NodeKeyring::open(identity, &self.grant, authority.public()).unwrap()
    }
}

struct Cluster {
    authority: Authority,
    nodes: Vec<(&'static str, Node)>,
}

impl Cluster {
    /// fra {DE, EU}, par {FR, EU}, iad {US, NA}, mow {RU, EU}.
    fn new() -> Self {
        let authority = Authority::new().unwrap();
        let mut nodes = Vec::new();
        for (name, attrs) in [
            ("fra", "country: DE, region: EU"),
            ("par", "country: FR, region: EU"),
            ("iad", "country: US, region: NA"),
            ("mow", "country: RU, region: EU"),
        ] {
            nodes.push((name, enroll(&authority, name, attrs, &[]).0));
        }
        Self { authority, nodes }
    }

    fn node(&self, name: &str) -> &Node {
        &self.nodes.iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn keyring(&self, name: &str) -> NodeKeyring {
        self.node(name).keyring(&self.authority)
    }

    fn grants(&self) -> Vec<NodeGrant> {
        self.nodes.iter().map(|(_, n)| n.grant.clone()).collect()
    }

    fn fence(&self) -> FenceRecord {
        self.authority.create_fence(POLICY, &self.grants()).unwrap()
    }
}

/// A node generates its keys, asks to join, and is approved with its claimed attributes.
fn enroll(
    authority: &Authority,
    name: &str,
    attrs: &str,
    fences: &[FenceRecord],
) -> (Node, Vec<FenceRecord>) {
    let identity = NodeIdentity::generate(name, Attributes::parse(attrs).unwrap()).unwrap();
    let request = JoinRequest::from_bytes(&identity.join_request().unwrap().to_bytes()).unwrap();
    let approved = request.verify().unwrap().attributes().clone();
    let approval = authority.approve(&request, approved, fences).unwrap();
    let node = Node {
        identity_bytes: identity.to_bytes().to_vec(),
        grant: NodeGrant::from_bytes(&approval.grant.to_bytes()).unwrap(),
    };
    (node, approval.fences)
}

fn not_satisfied(record: &FenceRecord) -> FenceError {
    FenceError::NotSatisfied {
        fence: record.id(),
        policy: record.policy().to_owned(),
    }
}

#[test]
fn fence_record_names_exactly_the_satisfying_nodes() {
    let c = Cluster::new();
    let record = c.fence();
    assert_eq!(record.policy(), "region: EU and not country: RU");
    assert_eq!(record.id(), FenceId::of_policy(POLICY).unwrap());
    assert_eq!(record.nodes(), ["fra", "par"]);
    assert_eq!(record.epoch(), 1);
    assert_eq!(record.generations(), [1]);
    // One fence per normalized policy: a differently written same policy has the same id.
    let same = c
        .authority
        .create_fence("(region: EU) and not (country: RU)", &[])
        .unwrap();
    assert_eq!(same.id(), record.id());
    assert!(matches!(
        c.authority.create_fence("region: EU and", &[]),
        Err(FenceError::InvalidPolicy(_))
    ));
}

#[test]
fn fence_satisfying_nodes_unwrap_and_others_cannot() {
    let c = Cluster::new();
    let record = FenceRecord::from_bytes(&c.fence().to_bytes()).unwrap();
    // Any node may wrap under the fence (the public half is checked against the
    // authority's signature); only satisfying nodes unwrap.
    let public = c.keyring("iad").fence_public(&record).unwrap();
    let material = [0x42u8; 32];
    let wrapped = wrap_backing_key(&public, &material, b"key-1/v1").unwrap();
    assert_eq!(
        wrapped_key_fence(&wrapped).unwrap(),
        (record.id(), record.epoch())
    );
    for name in ["fra", "par"] {
        let key = c.keyring(name).open_policy_key(&record).unwrap();
        assert_eq!(key.fence(), record.id());
        assert_eq!(
            unwrap_backing_key(&key, &wrapped, b"key-1/v1")
                .unwrap()
                .expose(),
            &material
        );
        assert_eq!(
            unwrap_backing_key(&key, &wrapped, b"key-2/v1").unwrap_err(),
            FenceError::Unauthentic {
                what: "wrapped backing key"
            }
        );
        let shown = format!("{key:?}");
        assert!(
            shown.contains("REDACTED") && !shown.contains("4242"),
            "{shown}"
        );
    }
    // A non-satisfying node holding the whole record (every envelope, every
    // ciphertext) and all its own keys gets a typed error naming the fence.
    for name in ["iad", "mow"] {
        let err = c.keyring(name).open_policy_key(&record).unwrap_err();
        assert_eq!(err, not_satisfied(&record));
        assert!(err.to_string().contains("region: EU and not country: RU"));
    }
}

#[test]
fn fence_records_and_grants_from_another_authority_are_refused() {
    let c = Cluster::new();
    let record = c.fence();
    let rogue = Authority::new().unwrap();
    let forged = rogue.create_fence(POLICY, &[]).unwrap();
    let fra = c.keyring("fra");
    assert_eq!(
        fra.open_policy_key(&forged).unwrap_err(),
        FenceError::BadSignature {
            what: "fence record"
        }
    );
    // A store writer cannot swap in its own public half to learn keys wrapped later.
    assert!(matches!(
        fra.fence_public(&forged),
        Err(FenceError::BadSignature { .. })
    ));
    // The authority refuses members it did not sign.
    let identity = NodeIdentity::generate(
        "evil",
        Attributes::parse("region: EU, country: DE").unwrap(),
    )
    .unwrap();
    let rogue_grant = rogue
        .approve(
            &identity.join_request().unwrap(),
            identity.public().attributes().clone(),
            &[],
        )
        .unwrap()
        .grant;
    assert!(matches!(
        c.authority
            .create_fence(POLICY, std::slice::from_ref(&rogue_grant)),
        Err(FenceError::BadSignature { what: "node grant" })
    ));
    assert!(matches!(
        NodeKeyring::open(identity, &rogue_grant, c.authority.public()),
        Err(FenceError::BadSignature { what: "node grant" })
    ));
    // A grant opens only for the node it was issued to.
    let par_identity = NodeIdentity::from_bytes(&c.node("par").identity_bytes).unwrap();
    assert_eq!(
        NodeKeyring::open(par_identity, &c.node("fra").grant, c.authority.public()).unwrap_err(),
        FenceError::WrongNode {
            grant: "fra".into(),
            node: "par".into()
        }
    );
    assert!(c.keyring("fra").open_policy_key(&record).is_ok());
}

#[test]
fn fence_join_requests_are_signed_by_the_joining_node() {
    let attrs = |s: &str| Attributes::parse(s).unwrap();
    let identity = NodeIdentity::generate("ber", attrs("country: DE, region: EU")).unwrap();
    let request = identity.join_request().unwrap().to_bytes();
    assert!(JoinRequest::from_bytes(&request).unwrap().verify().is_ok());
    // The same node claiming other attributes under the original signature
    // (ML-DSA-65 signatures are 3309 bytes, the last field).
    let other = NodeIdentity::generate("ber", attrs("country: DE, region: NA")).unwrap();
    let claimed = other.join_request().unwrap().to_bytes();
    let mut spliced = claimed[..claimed.len() - 3309].to_vec();
    spliced.extend_from_slice(&request[request.len() - 3309..]);
    let mut flipped = request.clone();
    let len = flipped.len();
    flipped[len - 10] ^= 1;
    let authority = Authority::new().unwrap();
    for bad in [spliced, flipped] {
        let bad = JoinRequest::from_bytes(&bad).unwrap();
        assert_eq!(
            bad.verify().unwrap_err(),
            FenceError::BadSignature {
                what: "join request"
            }
        );
        assert!(authority.approve(&bad, Attributes::new(), &[]).is_err());
    }
    assert!(matches!(
        NodeIdentity::generate("no spaces", Attributes::new()),
        Err(FenceError::InvalidName(_))
    ));
}

#[test]
fn a_node_approved_later_gets_an_envelope_in_existing_fences() {
    let c = Cluster::new();
    let record = c.fence();
    let other = c.authority.create_fence("region: NA", &c.grants()).unwrap();
    assert_eq!(other.nodes(), ["iad"]);
    let (ber, updated) = enroll(
        &c.authority,
        "ber",
        "country: DE, region: EU",
        &[record.clone(), other.clone()],
    );
    // Only the fence ber satisfies comes back, with ber added.
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].nodes(), ["ber", "fra", "par"]);
    let ber = ber.keyring(&c.authority);
    assert_eq!(
        ber.open_policy_key(&record).unwrap_err(),
        not_satisfied(&record)
    );
    let key = ber.open_policy_key(&updated[0]).unwrap();
    let wrapped = wrap_backing_key(&key.public(), b"material", b"aad").unwrap();
    let fra_key = c.keyring("fra").open_policy_key(&updated[0]).unwrap();
    assert_eq!(
        unwrap_backing_key(&fra_key, &wrapped, b"aad")
            .unwrap()
            .expose(),
        b"material"
    );
    assert_eq!(
        ber.open_policy_key(&other).unwrap_err(),
        not_satisfied(&other)
    );
}

/// Flipping any byte of a stored record, grant or wrapped key gives a typed
/// error, never a panic and never a key.
#[test]
fn fence_tampered_bytes_give_typed_errors() {
    let c = Cluster::new();
    let record = c.fence();
    let fra = c.keyring("fra");
    let key = fra.open_policy_key(&record).unwrap();
    let bytes = record.to_bytes();
    let mut checked = 0;
    for i in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let outcome = FenceRecord::from_bytes(&bad).and_then(|r| fra.open_policy_key(&r));
        assert!(outcome.is_err(), "byte {i} of {}", bytes.len());
        checked += 1;
    }
    assert!(checked > 100);
    for cut in [0, 3, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(FenceRecord::from_bytes(&bytes[..cut]).is_err());
    }
    let mut future = bytes.clone();
    future[3] = 2;
    assert_eq!(
        FenceRecord::from_bytes(&future).unwrap_err(),
        FenceError::UnsupportedVersion {
            what: "fence record",
            version: 2
        }
    );

    let wrapped = wrap_backing_key(&key.public(), &[7; 32], b"aad").unwrap();
    for i in 0..wrapped.len() {
        let mut bad = wrapped.clone();
        bad[i] ^= 0x80;
        let err = unwrap_backing_key(&key, &bad, b"aad").unwrap_err();
        assert!(
            matches!(
                err,
                FenceError::Unauthentic { .. }
                    | FenceError::Malformed { .. }
                    | FenceError::UnsupportedVersion { .. }
                    | FenceError::WrongPolicyKey { .. }
            ),
            "byte {i}: {err:?}"
        );
    }

    let grant = c.node("fra").grant.to_bytes();
    for i in (0..grant.len()).step_by(53) {
        let mut bad = grant.clone();
        bad[i] ^= 0x01;
        let identity = NodeIdentity::from_bytes(&c.node("fra").identity_bytes).unwrap();
        let outcome = NodeGrant::from_bytes(&bad)
            .and_then(|g| NodeKeyring::open(identity, &g, c.authority.public()));
        assert!(outcome.is_err(), "grant byte {i}");
    }
}

#[test]
fn removing_a_node_rotates_the_fence_and_rewraps_backing_keys() {
    let c = Cluster::new();
    let record = c.fence();
    let public = record.public_key(c.authority.public()).unwrap();
    let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..5u8)
        .map(|i| {
            let aad = format!("key-{i}/v1").into_bytes();
            (wrap_backing_key(&public, &[i; 32], &aad).unwrap(), aad)
        })
        .collect();
    let fra_old = c.keyring("fra");
    let fra_old_key = fra_old.open_policy_key(&record).unwrap();

    // fra leaves: its attributes would still satisfy the policy.
    let members: Vec<NodeGrant> = c
        .grants()
        .into_iter()
        .filter(|g| g.name() != "fra")
        .collect();
    let refs: Vec<(&[u8], &[u8])> = keys
        .iter()
        .map(|(w, a)| (w.as_slice(), a.as_slice()))
        .collect();
    let rotation = c.authority.rotate_fence(&record, &members, &refs).unwrap();
    let new = rotation.record;
    assert_eq!(new.id(), record.id());
    assert_eq!(new.epoch(), 2);
    assert_eq!(new.nodes(), ["par"]);
    assert_eq!(rotation.rewrapped.len(), keys.len());

    // fra's old keyring and its cached old policy key open nothing new.
    assert_eq!(
        fra_old.open_policy_key(&new).unwrap_err(),
        not_satisfied(&new)
    );
    for ((_, aad), rewrapped) in keys.iter().zip(&rotation.rewrapped) {
        assert!(matches!(
            unwrap_backing_key(&fra_old_key, rewrapped, aad),
            Err(FenceError::WrongPolicyKey {
                found_epoch: 2,
                epoch: 1,
                ..
            })
        ));
        // Relabelling the wrapped key as epoch 1 does not help either.
        let mut relabelled = rewrapped.clone();
        relabelled[4 + 16..4 + 20].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            unwrap_backing_key(&fra_old_key, &relabelled, aad).unwrap_err(),
            FenceError::Unauthentic {
                what: "wrapped backing key"
            }
        );
    }

    // par still unwraps every re-wrapped backing key; the material is unchanged.
    let par_key = c.keyring("par").open_policy_key(&new).unwrap();
    assert_eq!(par_key.epoch(), 2);
    for (i, ((_, aad), rewrapped)) in keys.iter().zip(&rotation.rewrapped).enumerate() {
        assert_eq!(
            unwrap_backing_key(&par_key, rewrapped, aad)
                .unwrap()
                .expose(),
            &[i as u8; 32]
        );
    }
    // Non-satisfying nodes stay out.
    for name in ["iad", "mow"] {
        assert_eq!(
            c.keyring(name).open_policy_key(&new).unwrap_err(),
            not_satisfied(&new)
        );
    }
    // A wrapped key of another fence is refused, not silently carried over.
    let other = c.authority.create_fence("region: NA", &c.grants()).unwrap();
    let stray = wrap_backing_key(
        &other.public_key(c.authority.public()).unwrap(),
        &[1; 32],
        b"x",
    )
    .unwrap();
    assert!(matches!(
        c.authority
            .rotate_fence(&new, &members, &[(stray.as_slice(), b"x".as_slice())]),
        Err(FenceError::WrongPolicyKey { .. })
    ));
}

#[test]
fn master_rotation_keeps_every_node_working_and_touches_fence_records_only() {
    let mut c = Cluster::new();
    let records = [
        c.fence(),
        c.authority.create_fence("region: EU", &c.grants()).unwrap(),
    ];
    let wrapped: Vec<Vec<u8>> = records
        .iter()
        .map(|r| {
            wrap_backing_key(&r.public_key(c.authority.public()).unwrap(), &[9; 32], b"k").unwrap()
        })
        .collect();
    let old_keyrings: Vec<NodeKeyring> =
        ["fra", "par", "mow"].iter().map(|n| c.keyring(n)).collect();

    assert_eq!(c.authority.rotate_master().unwrap(), 2);
    assert_eq!(c.authority.generations(), [1, 2]);
    let refreshed: Vec<FenceRecord> = records
        .iter()
        .map(|r| c.authority.refresh_fence(r).unwrap())
        .collect();
    for (old, new) in records.iter().zip(&refreshed) {
        assert_eq!(new.generations(), [1, 2]);
        assert_eq!(new.epoch(), old.epoch());
        assert_eq!(new.nodes(), old.nodes());
        // The public half (so every wrapped backing key) is unchanged.
        assert_eq!(
            new.public_key(c.authority.public()).unwrap(),
            old.public_key(c.authority.public()).unwrap()
        );
    }
    // Nodes on the old generation keep working.
    let open = |k: &NodeKeyring, r: &FenceRecord, w: &[u8]| {
        let key = k.open_policy_key(r).unwrap();
        assert_eq!(
            unwrap_backing_key(&key, w, b"k").unwrap().expose(),
            &[9; 32]
        );
    };
    open(&old_keyrings[0], &refreshed[0], &wrapped[0]);
    open(&old_keyrings[2], &refreshed[1], &wrapped[1]);

    // Nodes get keys of the new generation; then the old one is retired.
    for (_, node) in &mut c.nodes {
        node.grant = c.authority.refresh_grant(&node.grant).unwrap();
        assert_eq!(node.grant.generations(), [1, 2]);
    }
    c.authority.retire_generation(1).unwrap();
    assert_eq!(c.authority.generations(), [2]);
    assert_eq!(
        c.authority.retire_generation(2).unwrap_err(),
        FenceError::Conflict("the active master generation cannot be retired".into())
    );
    assert_eq!(
        c.authority.retire_generation(1).unwrap_err(),
        FenceError::UnknownGeneration(1)
    );
    let current: Vec<FenceRecord> = refreshed
        .iter()
        .map(|r| c.authority.refresh_fence(r).unwrap())
        .collect();
    let grants: Vec<NodeGrant> = c
        .nodes
        .iter()
        .map(|(_, n)| c.authority.refresh_grant(&n.grant).unwrap())
        .collect();
    assert!(grants.iter().all(|g| g.generations() == [2]));
    for r in &current {
        assert_eq!(r.generations(), [2]);
    }
    // Refreshed nodes open under generation 2; a node still on generation 1 only is stale.
    open(&c.keyring("fra"), &current[0], &wrapped[0]);
    open(&c.keyring("par"), &current[0], &wrapped[0]);
    open(&c.keyring("mow"), &current[1], &wrapped[1]);
    assert_eq!(
        old_keyrings[0].open_policy_key(&current[0]).unwrap_err(),
        FenceError::StaleGeneration {
            fence: current[0].id(),
            policy: current[0].policy().to_owned()
        }
    );
    assert_eq!(
        c.keyring("iad").open_policy_key(&current[0]).unwrap_err(),
        not_satisfied(&current[0])
    );
}

#[test]
fn fence_encodings_round_trip_and_the_authority_reloads() {
    let c = Cluster::new();
    let record = c.fence();
    let reloaded = Authority::from_bytes(&c.authority.to_bytes()).unwrap();
    assert_eq!(reloaded.public(), c.authority.public());
    assert_eq!(reloaded.generations(), [1]);
    // The reloaded authority still opens and rotates what the original made.
    let key = reloaded.open_fence(&record).unwrap();
    assert_eq!(
        key.public(),
        record.public_key(c.authority.public()).unwrap()
    );
    let rotated = reloaded.rotate_fence(&record, &c.grants(), &[]).unwrap();
    assert!(c.keyring("par").open_policy_key(&rotated.record).is_ok());

    assert_eq!(FenceRecord::from_bytes(&record.to_bytes()).unwrap(), record);
    let grant = &c.node("fra").grant;
    assert_eq!(&NodeGrant::from_bytes(&grant.to_bytes()).unwrap(), grant);
    let public = NodeIdentity::from_bytes(&c.node("fra").identity_bytes)
        .unwrap()
        .public()
        .clone();
    assert_eq!(NodePublic::from_bytes(&public.to_bytes()).unwrap(), public);
    assert_eq!(public.attributes().to_string(), "{country: DE, region: EU}");
    // Types are not interchangeable.
    assert!(matches!(
        NodeGrant::from_bytes(&record.to_bytes()),
        Err(FenceError::Malformed { .. })
    ));
    let shown = format!("{:?} {:?}", c.authority, c.keyring("fra"));
    assert!(shown.matches("[REDACTED]").count() == 2, "{shown}");
}

#[test]
fn the_rewrap_sweep_resumes_from_the_rotated_record_alone() {
    let c = Cluster::new();
    let record = c.fence();
    let public = record.public_key(c.authority.public()).unwrap();
    let old = wrap_backing_key(&public, &[7; 32], b"k/v1").unwrap();
    let members: Vec<NodeGrant> = c
        .grants()
        .into_iter()
        .filter(|g| g.name() != "fra")
        .collect();
    // The rotation re-wraps nothing (as if the authority crashed right after
    // storing the new record); the new record alone finishes the job.
    let new = c
        .authority
        .rotate_fence(&record, &members, &[])
        .unwrap()
        .record;
    let rewrapper = c.authority.rewrapper(&new).unwrap();
    assert_eq!((rewrapper.fence(), rewrapper.epoch()), (new.id(), 2));
    let rewrapped = rewrapper.rewrap(&old, b"k/v1").unwrap().unwrap();
    assert_eq!(wrapped_key_fence(&rewrapped).unwrap(), (new.id(), 2));
    let par = c.keyring("par").open_policy_key(&new).unwrap();
    assert_eq!(
        unwrap_backing_key(&par, &rewrapped, b"k/v1")
            .unwrap()
            .expose(),
        &[7; 32]
    );
    // Already current: nothing to do. Wrong AAD: refused, not re-wrapped.
    assert_eq!(rewrapper.rewrap(&rewrapped, b"k/v1").unwrap(), None);
    assert_eq!(
        rewrapper.rewrap(&old, b"k/v2").unwrap_err(),
        FenceError::Unauthentic {
            what: "wrapped backing key"
        }
    );
    // Two rotations on, epoch 1 is out of reach: a typed error, not a guess.
    let third = c
        .authority
        .rotate_fence(&new, &members, &[])
        .unwrap()
        .record;
    assert!(matches!(
        c.authority.rewrapper(&third).unwrap().rewrap(&old, b"k/v1"),
        Err(FenceError::WrongPolicyKey {
            epoch: 3,
            found_epoch: 1,
            ..
        })
    ));
    // A record made fresh carries no predecessor; the master rotation's
    // refresh keeps the authority's copy (with its predecessor) as it was.
    let mut c = c;
    c.authority.rotate_master().unwrap();
    let refreshed = c.authority.refresh_fence(&new).unwrap();
    assert!(c
        .authority
        .rewrapper(&refreshed)
        .unwrap()
        .rewrap(&old, b"k/v1")
        .unwrap()
        .is_some());
}

#[test]
fn a_node_certificate_rides_in_the_signed_grant_with_its_key_sealed_to_the_node() {
    let c = Cluster::new();
    let fra = c.node("fra");
    let grant = c
        .authority
        .issue_tls(&fra.grant, b"fra certificate DER", b"fra private key")
        .unwrap();
    let decoded = NodeGrant::from_bytes(&grant.to_bytes()).unwrap();
    assert_eq!(decoded, grant);
    decoded.verify(c.authority.public()).unwrap();
    assert_eq!(decoded.tls_certificate(), Some(&b"fra certificate DER"[..]));
    let identity = NodeIdentity::from_bytes(&fra.identity_bytes).unwrap();
    let (cert, key) = decoded.open_tls(&identity).unwrap().unwrap();
    assert_eq!(cert, b"fra certificate DER");
    assert_eq!(key.expose(), b"fra private key");
    // Another node cannot open it; a grant without a certificate has none.
    let par = NodeIdentity::from_bytes(&c.node("par").identity_bytes).unwrap();
    assert!(matches!(
        decoded.open_tls(&par),
        Err(FenceError::WrongNode { .. })
    ));
    assert_eq!(fra.grant.tls_certificate(), None);
    assert!(fra.grant.open_tls(&identity).unwrap().is_none());
    // The certificate is signed with the grant: swapping it breaks the signature.
    let mut bytes = grant.to_bytes();
    let at = bytes
        .windows(b"fra certificate DER".len())
        .position(|w| w == b"fra certificate DER")
        .unwrap();
    bytes[at] ^= 1;
    assert!(NodeGrant::from_bytes(&bytes)
        .unwrap()
        .verify(c.authority.public())
        .is_err());
    // Master rotation keeps the certificate.
    let mut c = c;
    c.authority.rotate_master().unwrap();
    let refreshed = c.authority.refresh_grant(&grant).unwrap();
    assert_eq!(
        refreshed.tls_certificate(),
        Some(&b"fra certificate DER"[..])
    );
}
