//! The quorum port: where a node keeps its operators (public keys only), its
//! rules and the ids of the proposals it executed, shared by every node of
//! the store so that a proposal executes once in the whole cluster.

use std::collections::BTreeMap;

use super::command::CommandKind;
use super::operator::Operator;
use super::proposal::ProposalId;
use crate::clock::Timestamp;
use crate::store::StoreError;

/// The operators and rules as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumState {
    /// The registered operators, by name.
    pub operators: Vec<Operator>,
    /// M per kind of command.
    pub rules: BTreeMap<CommandKind, usize>,
}

/// A change to the operators or rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumChange {
    /// Nothing (a proposal whose command runs elsewhere is only recorded).
    Nothing,
    /// Register an operator; [`StoreError::Conflict`] if the name is taken.
    AddOperator(Operator),
    /// Remove the operator of this name; [`StoreError::Conflict`] if none.
    RemoveOperator(String),
    /// Set M for a kind.
    SetRule(CommandKind, usize),
}

/// An executed proposal: its id (never accepted again) and who approved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutedProposal {
    /// The proposal's id.
    pub id: ProposalId,
    /// Its kind of command.
    pub kind: CommandKind,
    /// The approving operators, in the order given.
    pub approvers: Vec<String>,
    /// When it executed.
    pub at: Timestamp,
}

/// Durable quorum state. Every method returns after its change is durable.
pub trait QuorumStore: Send + Sync {
    /// The operators and rules.
    fn quorum_state(&self) -> Result<QuorumState, StoreError>;
    /// Whether the proposal `id` was executed.
    fn executed(&self, id: &ProposalId) -> Result<bool, StoreError>;
    /// Applies `change` and, if given, records `executed`, in one
    /// transaction: [`StoreError::Conflict`] (and nothing written) if that
    /// proposal was already recorded (a replay, or another node first).
    fn commit_quorum(
        &self,
        change: &QuorumChange,
        executed: Option<&ExecutedProposal>,
    ) -> Result<(), StoreError>;
}

impl QuorumState {
    /// The state after `change`, checked: a name added twice, an unknown
    /// name removed, or a rule left needing more operators than remain is
    /// refused before anything is written.
    pub fn after(&self, change: &QuorumChange) -> Result<QuorumState, super::QuorumError> {
        let mut next = self.clone();
        match change {
            QuorumChange::Nothing => {}
            QuorumChange::AddOperator(op) => next.operators.push(op.clone()),
            QuorumChange::RemoveOperator(name) => {
                let before = next.operators.len();
                next.operators.retain(|o| &o.name != name);
                if next.operators.len() == before {
                    return Err(super::QuorumError::UnknownOperator(name.clone()));
                }
            }
            QuorumChange::SetRule(kind, m) => {
                next.rules.insert(*kind, *m);
            }
        }
        next.quorum()?;
        Ok(next)
    }

    /// The state as a checked [`Quorum`](super::Quorum).
    pub fn quorum(&self) -> Result<super::Quorum, super::QuorumError> {
        super::Quorum::new(self.operators.clone(), self.rules.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::{OperatorSigner, QuorumError, Scheme};

    fn op(name: &str) -> Operator {
        let (s, _) = OperatorSigner::generate(Scheme::Ed25519).unwrap();
        Operator {
            name: name.into(),
            key: s.public().unwrap(),
        }
    }

    #[test]
    fn changes_that_break_the_quorum_are_refused_before_writing() {
        let state = QuorumState::default()
            .after(&QuorumChange::AddOperator(op("alice")))
            .unwrap()
            .after(&QuorumChange::AddOperator(op("bob")))
            .unwrap()
            .after(&QuorumChange::SetRule(CommandKind::ApproveNode, 2))
            .unwrap();
        assert_eq!(state.operators.len(), 2);
        assert_eq!(
            state.after(&QuorumChange::RemoveOperator("bob".into())),
            Err(QuorumError::InvalidQuorum(
                "a rule needs more approvals than there are operators"
            ))
        );
        assert_eq!(
            state.after(&QuorumChange::RemoveOperator("carol".into())),
            Err(QuorumError::UnknownOperator("carol".into()))
        );
        assert_eq!(
            state.after(&QuorumChange::AddOperator(op("alice"))),
            Err(QuorumError::InvalidQuorum("two operators share a name"))
        );
        assert_eq!(
            state.after(&QuorumChange::SetRule(CommandKind::RemoveNode, 3)),
            Err(QuorumError::InvalidQuorum(
                "a rule needs more approvals than there are operators"
            ))
        );
    }
}
