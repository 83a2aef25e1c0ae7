//! Fenced keys at a node outside their fence, over the in-memory store: the
//! node checks a fence's record (its signature, then whether it holds an
//! envelope) once per record and keyring, not once per key. Issue 10: with
//! 100,000 keys fenced away from it, a node re-checked the record for every
//! key it received and for every sealed key at each install of a changed
//! record (a master rotation, a new fence), which is O(keys) per change; and
//! it kept every sealed key's wrapped versions in memory.

use std::sync::atomic::Ordering::Relaxed;

use keyfence_abe::Attributes;

use super::*;
use crate::fence::{Authority, FenceRecord, JoinRequest, NodeGrant, NodeIdentity, NodeKeyring};
use crate::service::FENCE_TAG;

const POLICY: &str = "region: EU";
const KEYS: usize = 40;

/// A node's identity (as stored) and its join request.
struct Node {
    identity: Vec<u8>,
    request: JoinRequest,
}

fn node(name: &str, attrs: &str) -> Node {
    let identity = NodeIdentity::generate(name, Attributes::parse(attrs).unwrap()).unwrap();
    Node {
        request: identity.join_request().unwrap(),
        identity: identity.to_bytes().to_vec(),
    }
}

fn grant(
    authority: &Authority,
    node: &Node,
    fences: &[FenceRecord],
) -> (NodeGrant, Vec<FenceRecord>) {
    let approved = node.request.verify().unwrap().attributes().clone();
    let approval = authority.approve(&node.request, approved, fences).unwrap();
    (approval.grant, approval.fences)
}

fn view(
    authority: &Authority,
    node: &Node,
    grant: &NodeGrant,
    records: &[FenceRecord],
) -> FenceView {
    let identity = NodeIdentity::from_bytes(&node.identity).unwrap();
    FenceView {
        authority: Some(authority.public().clone()),
        keyring: Some(NodeKeyring::open(identity, grant, authority.public()).unwrap()),
        records: records.to_vec(),
    }
}

fn open(f: &Fixture, view: FenceView) -> Kms {
    Kms::open_fenced(f.store.clone(), &f.root, f.clock.clone(), "us-east-1", view).unwrap()
}

fn attempts(kms: &Kms) -> usize {
    kms.fencing.attempts.load(Relaxed)
}

/// A fence of [`POLICY`] that only fra opens, fra's KMS (which makes keys in
/// it), and a second node `other` approved before the fence existed, so its
/// record holds no envelope for it: `other` is outside.
struct OneFence {
    authority: Authority,
    other: Node,
    other_grant: NodeGrant,
    record: FenceRecord,
    maker: Kms,
}

fn one_fence(f: &Fixture, other: (&str, &str)) -> OneFence {
    let authority = Authority::new().unwrap();
    let fra = node("fra", "country: DE, region: EU");
    let other = node(other.0, other.1);
    let (fra_grant, _) = grant(&authority, &fra, &[]);
    let (other_grant, _) = grant(&authority, &other, &[]);
    let record = authority
        .create_fence(POLICY, std::slice::from_ref(&fra_grant))
        .unwrap();
    let maker = open(
        f,
        view(&authority, &fra, &fra_grant, std::slice::from_ref(&record)),
    );
    OneFence {
        authority,
        other,
        other_grant,
        record,
        maker,
    }
}

#[test]
fn a_node_outside_a_fence_checks_its_record_once_not_once_per_key() {
    let f = Fixture::new();
    // par is approved before the fence exists, so the record holds no
    // envelope for it: par is outside until the authority adds it.
    let OneFence {
        authority,
        other: par,
        other_grant: par_grant,
        record,
        maker,
    } = one_fence(&f, ("par", "country: FR, region: EU"));
    let fenced = CreateKeyInput {
        tags: vec![(FENCE_TAG.into(), POLICY.into())],
        ..CreateKeyInput::default()
    };
    let arns: Vec<String> = (0..KEYS)
        .map(|_| maker.create_key(A, fenced.clone()).unwrap().arn())
        .collect();

    // par loads every key: all sealed, the record checked once.
    let outside = open(
        &f,
        view(&authority, &par, &par_grant, std::slice::from_ref(&record)),
    );
    assert_eq!(attempts(&outside), 1);
    for arn in &arns {
        let refused = outside.encrypt(A, arn, b"x", &EncryptionContext::default(), None);
        assert!(
            matches!(refused, Err(KmsError::FencedElsewhere { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(attempts(&outside), 1, "one check per key");
    // A poll that installs the same records tries nothing.
    let same = FenceView {
        authority: Some(authority.public().clone()),
        keyring: None,
        records: vec![record.clone()],
    };
    assert_eq!(outside.install_fences(same).unwrap(), 0);
    assert_eq!(attempts(&outside), 1, "the unchanged record checked again");
    // A new keyring (a re-issued grant) is tried once for the fence.
    let again = view(&authority, &par, &par_grant, std::slice::from_ref(&record));
    assert_eq!(outside.install_fences(again).unwrap(), 0);
    assert_eq!(attempts(&outside), 2, "one check per sealed key");

    // A key changes at fra meanwhile (par has no feed here, so only the store knows).
    maker.rotate_key_on_demand(A, &arns[0]).unwrap();

    // The authority adds par to the fence (same epoch, one more envelope):
    // the changed record is tried once, and opens every sealed key, as the
    // store holds it now (a sealed key's versions are not kept in memory).
    let (_, added) = grant(&authority, &par, &[record]);
    let changed = FenceView {
        authority: Some(authority.public().clone()),
        keyring: None,
        records: added,
    };
    assert_eq!(outside.install_fences(changed).unwrap(), KEYS);
    assert_eq!(attempts(&outside), 3);
    assert_eq!(
        outside.describe_key(A, &arns[0]).unwrap().current_version,
        2
    );
    for arn in &arns {
        outside
            .encrypt(A, arn, b"x", &EncryptionContext::default(), None)
            .unwrap();
    }
}

#[test]
fn a_key_fenced_away_is_not_cpu_heavy_here_and_says_so() {
    let f = Fixture::new();
    let OneFence {
        authority,
        other: iad,
        other_grant: iad_grant,
        record,
        maker,
    } = one_fence(&f, ("iad", "country: US, region: NA"));
    let fenced = |spec: KeySpec, usage: KeyUsage| CreateKeyInput {
        spec,
        usage,
        tags: vec![(FENCE_TAG.into(), POLICY.into())],
        ..CreateKeyInput::default()
    };
    let rsa = maker
        .create_key(
            A,
            fenced(KeySpec::Asymmetric(Rsa2048), KeyUsage::SignVerify),
        )
        .unwrap()
        .arn();
    let symmetric = maker
        .create_key(
            A,
            fenced(KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt),
        )
        .unwrap()
        .arn();
    let outside = open(
        &f,
        view(&authority, &iad, &iad_grant, std::slice::from_ref(&record)),
    );
    // Inside the fence: an RSA key is heavy work, nothing is fenced away.
    assert!(maker.is_cpu_heavy_key(A, &rsa));
    assert!(!maker.is_fenced_away(A, &rsa));
    assert!(!maker.is_fenced_away(A, &symmetric));
    // Outside: known by metadata, refused at once, so not heavy here.
    assert!(!outside.is_cpu_heavy_key(A, &rsa));
    assert!(outside.is_fenced_away(A, &rsa));
    assert!(outside.is_fenced_away(A, &symmetric));
    assert!(!outside.is_fenced_away(A, "alias/none"));
}
