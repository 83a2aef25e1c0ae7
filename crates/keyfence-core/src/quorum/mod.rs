//! M-of-N approvals, without I/O: operators with signing keys, a quorum rule
//! per kind of command, proposals (the exact canonical command, a nonce, an
//! expiry) signed offline, and the check that lets a proposal execute only
//! once M distinct operators have validly signed it, before it expires, and
//! never twice.

pub mod command;
pub mod operator;
pub mod proposal;
pub mod store;

pub use command::{Command, CommandKind};
pub use operator::{Operator, OperatorKey, OperatorSigner, Scheme};
pub use proposal::{authorize, Approval, Authorized, Proposal, ProposalId, Quorum};
pub use store::{ExecutedProposal, QuorumChange, QuorumState, QuorumStore};

/// Why a quorum refused, or an input was malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// Fewer distinct valid signatures than the rule needs.
    #[error("{have} of the {need} approvals needed")]
    NotEnough {
        /// Distinct operators whose signature verified.
        have: usize,
        /// The rule's M.
        need: usize,
    },
    /// An operator signed twice.
    #[error("operator {0} approved twice")]
    DuplicateOperator(String),
    /// An approval names no registered operator.
    #[error("no operator {0}")]
    UnknownOperator(String),
    /// A signature does not verify over this proposal (another command,
    /// nonce or expiry, or a forged signature).
    #[error("the signature of {0} is not over this proposal")]
    BadSignature(String),
    /// The proposal's expiry has passed.
    #[error("the proposal expired")]
    Expired,
    /// The proposal was already executed.
    #[error("the proposal was already executed")]
    Replayed,
    /// No rule covers this kind of command.
    #[error("no quorum rule for {0:?}")]
    NoRule(CommandKind),
    /// A rule or operator set that cannot hold (M of 0, M > N, a name twice).
    #[error("invalid quorum: {0}")]
    InvalidQuorum(&'static str),
    /// Bytes or text that are not a canonical command, proposal or key.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was parsed.
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A key could not be generated or used.
    #[error("operator key: {0} failed")]
    Crypto(&'static str),
}
