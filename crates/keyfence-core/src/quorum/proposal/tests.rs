//! Every refusal of the quorum check, with real ML-DSA-65 and Ed25519 keys.

use std::collections::BTreeMap;

use super::*;
use crate::quorum::operator::{OperatorSigner, Scheme};

struct Team {
    quorum: Quorum,
    signers: Vec<(String, OperatorSigner)>,
}

/// Five operators (four ML-DSA-65, one Ed25519); approving a node needs 3,
/// destroying a key early needs 4.
fn team() -> Team {
    let mut operators = Vec::new();
    let mut signers = Vec::new();
    for (i, name) in ["alice", "bob", "carol", "dave", "erin"].iter().enumerate() {
        let scheme = if i == 4 {
            Scheme::Ed25519
        } else {
            Scheme::MlDsa65
        };
        let (signer, _) = OperatorSigner::generate(scheme).unwrap();
        operators.push(Operator {
            name: name.to_string(),
            key: signer.public().unwrap(),
        });
        signers.push((name.to_string(), signer));
    }
    let rules = BTreeMap::from([
        (CommandKind::ApproveNode, 3),
        (CommandKind::DestroyKeyEarly, 4),
    ]);
    Team {
        quorum: Quorum::new(operators, rules).unwrap(),
        signers,
    }
}

fn proposal(kind: CommandKind, node: &str) -> Proposal {
    Proposal {
        command: Command::new(kind, BTreeMap::from([("node".into(), node.into())])).unwrap(),
        nonce: [7; 16],
        created: Timestamp(1_000),
        expires: Timestamp(1_000 + 3_600_000),
    }
}

fn approve(team: &Team, p: &Proposal, who: &[usize]) -> Vec<Approval> {
    who.iter()
        .map(|&i| {
            let (name, signer) = &team.signers[i];
            Approval {
                operator: name.clone(),
                signature: signer.sign(&p.signed_bytes()).unwrap(),
            }
        })
        .collect()
}

const NOW: Timestamp = Timestamp(5_000);
fn never(_: &ProposalId) -> bool {
    false
}

#[test]
fn m_distinct_valid_signatures_authorize_including_ed25519() {
    let t = team();
    let p = proposal(CommandKind::ApproveNode, "fra");
    let ok = authorize(&t.quorum, &p, &approve(&t, &p, &[0, 2, 4]), NOW, never).unwrap();
    assert_eq!(ok.id, p.id());
    assert_eq!(ok.approvers, vec!["alice", "carol", "erin"]);
    assert_eq!(ok.command, p.command);
    // More than M is fine too.
    assert!(authorize(&t.quorum, &p, &approve(&t, &p, &[0, 1, 2, 3]), NOW, never).is_ok());
}

#[test]
fn m_minus_one_is_refused() {
    let t = team();
    let p = proposal(CommandKind::ApproveNode, "fra");
    assert_eq!(
        authorize(&t.quorum, &p, &approve(&t, &p, &[0, 1]), NOW, never),
        Err(QuorumError::NotEnough { have: 2, need: 3 })
    );
    let p = proposal(CommandKind::DestroyKeyEarly, "k");
    assert_eq!(
        authorize(&t.quorum, &p, &approve(&t, &p, &[0, 1, 2]), NOW, never),
        Err(QuorumError::NotEnough { have: 3, need: 4 })
    );
    assert_eq!(
        authorize(&t.quorum, &p, &[], NOW, never),
        Err(QuorumError::NotEnough { have: 0, need: 4 })
    );
}

#[test]
fn the_same_operator_twice_is_refused() {
    let t = team();
    let p = proposal(CommandKind::ApproveNode, "fra");
    // alice signs twice (two distinct ML-DSA signatures: hedged signing).
    let approvals = approve(&t, &p, &[0, 1, 0]);
    assert_ne!(approvals[0].signature, approvals[2].signature);
    assert_eq!(
        authorize(&t.quorum, &p, &approvals, NOW, never),
        Err(QuorumError::DuplicateOperator("alice".into()))
    );
}

#[test]
fn a_signature_over_a_different_command_is_refused() {
    let t = team();
    let p = proposal(CommandKind::ApproveNode, "fra");
    let other = proposal(CommandKind::ApproveNode, "evil");
    let mut approvals = approve(&t, &p, &[0, 1]);
    approvals.extend(approve(&t, &other, &[2]));
    assert_eq!(
        authorize(&t.quorum, &p, &approvals, NOW, never),
        Err(QuorumError::BadSignature("carol".into()))
    );
    // Same command, another nonce or expiry: another proposal.
    let mut renonced = p.clone();
    renonced.nonce[0] ^= 1;
    let mut extended = p.clone();
    extended.expires = Timestamp(p.expires.0 + 1);
    for q in [renonced, extended] {
        assert_eq!(
            authorize(&t.quorum, &q, &approve(&t, &p, &[0, 1, 2]), NOW, never),
            Err(QuorumError::BadSignature("alice".into()))
        );
    }
    // A signature under another operator's name.
    let mut stolen = approve(&t, &p, &[0, 1, 2]);
    stolen[2].operator = "dave".into();
    assert_eq!(
        authorize(&t.quorum, &p, &stolen, NOW, never),
        Err(QuorumError::BadSignature("dave".into()))
    );
}

#[test]
fn an_expired_proposal_is_refused() {
    let t = team();
    let p = proposal(CommandKind::ApproveNode, "fra");
    let approvals = approve(&t, &p, &[0, 1, 2]);
    assert_eq!(
        authorize(&t.quorum, &p, &approvals, p.expires, never),
        Err(QuorumError::Expired)
    );
    assert!(authorize(&t.quorum, &p, &approvals, Timestamp(p.expires.0 - 1), never).is_ok());
}

#[test]
fn a_replay_of_an_executed_proposal_is_refused() {
    let t = team();
    let p = proposal(CommandKind::ApproveNode, "fra");
    let approvals = approve(&t, &p, &[0, 1, 2]);
    let done = authorize(&t.quorum, &p, &approvals, NOW, never).unwrap();
    let executed = |id: &ProposalId| *id == done.id;
    assert_eq!(
        authorize(&t.quorum, &p, &approvals, NOW, executed),
        Err(QuorumError::Replayed)
    );
    // The same command proposed again (new nonce) is a new proposal.
    let mut again = p.clone();
    again.nonce = [8; 16];
    assert!(authorize(
        &t.quorum,
        &again,
        &approve(&t, &again, &[0, 1, 2]),
        NOW,
        executed
    )
    .is_ok());
}

#[test]
fn unknown_operators_and_commands_without_a_rule_are_refused() {
    let t = team();
    let p = proposal(CommandKind::ApproveNode, "fra");
    let mut approvals = approve(&t, &p, &[0, 1, 2]);
    approvals[1].operator = "mallory".into();
    assert_eq!(
        authorize(&t.quorum, &p, &approvals, NOW, never),
        Err(QuorumError::UnknownOperator("mallory".into()))
    );
    let p = proposal(CommandKind::RemoveNode, "fra");
    assert_eq!(
        authorize(
            &t.quorum,
            &p,
            &approve(&t, &p, &[0, 1, 2, 3, 4]),
            NOW,
            never
        ),
        Err(QuorumError::NoRule(CommandKind::RemoveNode))
    );
}

#[test]
fn impossible_rules_are_refused() {
    let t = team();
    let ops = t.quorum.operators().to_vec();
    for (m, why) in [
        (0, "a rule needs at least one approval"),
        (6, "a rule needs more approvals than there are operators"),
    ] {
        assert_eq!(
            Quorum::new(ops.clone(), BTreeMap::from([(CommandKind::ApproveNode, m)])),
            Err(QuorumError::InvalidQuorum(why))
        );
    }
    let mut twice = ops.clone();
    twice.push(ops[0].clone());
    assert_eq!(
        Quorum::new(twice, BTreeMap::new()),
        Err(QuorumError::InvalidQuorum("two operators share a name"))
    );
}

#[test]
fn proposal_text_round_trips_and_only_canonical_text_parses() {
    let p = proposal(CommandKind::ApproveNode, "fra");
    let text = p.text();
    assert!(text.starts_with("keyfence-proposal v1\nnonce 07070707"));
    assert_eq!(Proposal::parse(&text).unwrap(), p);
    assert!(Proposal::parse(&text.replace("created 1000", "created 01000")).is_err());
    assert!(Proposal::parse(&text.replace("expires", "expiry")).is_err());
    assert!(Proposal::parse(&text[..text.len() - 1]).is_err());
}
