//! Proposals, approvals and the quorum check.
//!
//! A proposal's text (what `keyfence admin propose` prints and operators sign
//! offline) is
//!
//! ```text
//! keyfence-proposal v1
//! nonce <32 hex digits>
//! created <ms since the epoch>
//! expires <ms since the epoch>
//! <the command's canonical text>
//! ```
//!
//! and an operator signs `"keyfence/v1/proposal\0" ‖ text`. Its id is the
//! SHA-256 of those bytes; an executed id is never accepted again.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::digest::{digest, SHA256};

use super::command::{Command, CommandKind};
use super::operator::Operator;
use super::QuorumError;
use crate::clock::Timestamp;

const HEADER: &str = "keyfence-proposal v1\n";
const CONTEXT: &[u8] = b"keyfence/v1/proposal\0";

/// A proposal's id: SHA-256 of its signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(pub [u8; 32]);

impl std::fmt::Display for ProposalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A command put to the operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The exact command.
    pub command: Command,
    /// Random; two proposals of the same command differ.
    pub nonce: [u8; 16],
    /// When it was made.
    pub created: Timestamp,
    /// After this it cannot execute.
    pub expires: Timestamp,
}

impl Proposal {
    /// The text operators read and sign.
    pub fn text(&self) -> String {
        format!(
            "{HEADER}nonce {}\ncreated {}\nexpires {}\n{}",
            hex::encode(self.nonce),
            self.created.0,
            self.expires.0,
            self.command.canonical()
        )
    }

    /// Parses [`Self::text`], and only that.
    pub fn parse(text: &str) -> Result<Self, QuorumError> {
        let bad = |reason| QuorumError::Malformed {
            what: "proposal",
            reason,
        };
        let rest = text.strip_prefix(HEADER).ok_or(bad("not a v1 proposal"))?;
        let field = |rest: &mut &str, name: &str| -> Result<String, QuorumError> {
            let (line, tail) = rest.split_once('\n').ok_or(bad("truncated"))?;
            let value = line
                .strip_prefix(name)
                .and_then(|v| v.strip_prefix(' '))
                .ok_or(bad("fields missing or out of order"))?;
            *rest = tail;
            Ok(value.to_owned())
        };
        let mut rest = rest;
        let nonce: [u8; 16] = hex::decode(field(&mut rest, "nonce")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(bad("nonce is not 32 hex digits"))?;
        let number = |s: String| s.parse::<i64>().map_err(|_| bad("a time is not a number"));
        let created = Timestamp(number(field(&mut rest, "created")?)?);
        let expires = Timestamp(number(field(&mut rest, "expires")?)?);
        let proposal = Self {
            command: Command::parse(rest)?,
            nonce,
            created,
            expires,
        };
        if proposal.text() != text {
            return Err(bad("not canonical"));
        }
        Ok(proposal)
    }

    /// What an operator signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = CONTEXT.to_vec();
        out.extend_from_slice(self.text().as_bytes());
        out
    }

    /// The proposal's id.
    pub fn id(&self) -> ProposalId {
        let mut id = [0u8; 32];
        id.copy_from_slice(digest(&SHA256, &self.signed_bytes()).as_ref());
        ProposalId(id)
    }
}

/// One operator's signature over a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The operator's name.
    pub operator: String,
    /// Signature over [`Proposal::signed_bytes`].
    pub signature: Vec<u8>,
}

/// The operators (N) and, per kind of command, how many must approve (M).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    operators: Vec<Operator>,
    rules: BTreeMap<CommandKind, usize>,
}

impl Quorum {
    /// Checks that names are distinct and every rule is 1 ≤ M ≤ N.
    pub fn new(
        operators: Vec<Operator>,
        rules: BTreeMap<CommandKind, usize>,
    ) -> Result<Self, QuorumError> {
        let names: BTreeSet<&str> = operators.iter().map(|o| o.name.as_str()).collect();
        if names.len() != operators.len() {
            return Err(QuorumError::InvalidQuorum("two operators share a name"));
        }
        for m in rules.values() {
            if *m == 0 {
                return Err(QuorumError::InvalidQuorum(
                    "a rule needs at least one approval",
                ));
            }
            if *m > operators.len() {
                return Err(QuorumError::InvalidQuorum(
                    "a rule needs more approvals than there are operators",
                ));
            }
        }
        Ok(Self { operators, rules })
    }

    /// The operators.
    pub fn operators(&self) -> &[Operator] {
        &self.operators
    }

    /// M for `kind`.
    pub fn threshold(&self, kind: CommandKind) -> Option<usize> {
        self.rules.get(&kind).copied()
    }
}

/// A proposal cleared to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// Its id (record it as executed).
    pub id: ProposalId,
    /// The command to run.
    pub command: Command,
    /// Who approved, in the order given.
    pub approvers: Vec<String>,
}

/// Whether `proposal` may execute now: not executed before (`executed`
/// answers for an id), not expired at `now`, and approved by at least M
/// distinct registered operators whose signatures all verify over it. Any
/// bad approval refuses the whole set: it is evidence of a mistake or an attack.
pub fn authorize(
    quorum: &Quorum,
    proposal: &Proposal,
    approvals: &[Approval],
    now: Timestamp,
    executed: impl Fn(&ProposalId) -> bool,
) -> Result<Authorized, QuorumError> {
    let id = proposal.id();
    if executed(&id) {
        return Err(QuorumError::Replayed);
    }
    if now >= proposal.expires {
        return Err(QuorumError::Expired);
    }
    let need = quorum
        .threshold(proposal.command.kind)
        .ok_or(QuorumError::NoRule(proposal.command.kind))?;
    let message = proposal.signed_bytes();
    let mut seen = BTreeSet::new();
    for a in approvals {
        let operator = quorum
            .operators
            .iter()
            .find(|o| o.name == a.operator)
            .ok_or_else(|| QuorumError::UnknownOperator(a.operator.clone()))?;
        if !seen.insert(a.operator.as_str()) {
            return Err(QuorumError::DuplicateOperator(a.operator.clone()));
        }
        if !operator.key.verifies(&message, &a.signature) {
            return Err(QuorumError::BadSignature(a.operator.clone()));
        }
    }
    if seen.len() < need {
        return Err(QuorumError::NotEnough {
            have: seen.len(),
            need,
        });
    }
    Ok(Authorized {
        id,
        command: proposal.command.clone(),
        approvers: approvals.iter().map(|a| a.operator.clone()).collect(),
    })
}

#[cfg(test)]
mod tests;
