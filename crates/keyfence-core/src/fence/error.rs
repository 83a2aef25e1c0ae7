//! The typed errors of geo-fencing. Messages name fences and nodes, never material.

use keyfence_crypto::CryptoError;

use super::FenceId;

/// Why a fencing operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FenceError {
    /// Stored or received bytes do not parse as the named format.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which format was being parsed.
        what: &'static str,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The bytes carry a format version this build does not read.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Which format was being parsed.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// A node name is not acceptable.
    #[error("invalid node name {0:?}: 1 to 63 ASCII letters, digits, '.', '_' or '-'")]
    InvalidName(String),
    /// A policy string does not parse (keyfence-abe's grammar).
    #[error("invalid fence policy: {0}")]
    InvalidPolicy(String),
    /// An attribute set is not acceptable.
    #[error("invalid attributes: {0}")]
    InvalidAttributes(String),
    /// A signature (join request, grant, fence record) does not verify.
    #[error("signature on {what} does not verify")]
    BadSignature {
        /// What was signed.
        what: &'static str,
    },
    /// The node cannot open the fence: its attributes do not satisfy the policy,
    /// or the authority has not handed it the fence's per-policy secret.
    #[error("this node does not satisfy fence {fence} ({policy})")]
    NotSatisfied {
        /// The fence.
        fence: FenceId,
        /// Its policy.
        policy: String,
    },
    /// The node holds an attribute key for no master generation the fence is
    /// encrypted under (its grant or the record must be refreshed).
    #[error("no common master generation with fence {fence} ({policy})")]
    StaleGeneration {
        /// The fence.
        fence: FenceId,
        /// Its policy.
        policy: String,
    },
    /// A wrapped backing key belongs to another fence or another policy key epoch.
    #[error(
        "wrapped key is for fence {found} epoch {found_epoch}, not fence {fence} epoch {epoch}"
    )]
    WrongPolicyKey {
        /// The fence of the policy key given.
        fence: FenceId,
        /// The epoch of the policy key given.
        epoch: u32,
        /// The fence named in the wrapped key.
        found: FenceId,
        /// The epoch named in the wrapped key.
        found_epoch: u32,
    },
    /// Authenticated decryption failed: tampered bytes, a wrong key or wrong AAD.
    #[error("{what} is not authentic (tampered, or not meant for this key)")]
    Unauthentic {
        /// What failed to open.
        what: &'static str,
    },
    /// A grant or keyring does not belong to this node.
    #[error("grant is for node {grant}, not {node}")]
    WrongNode {
        /// The node named in the grant.
        grant: String,
        /// The node holding the identity.
        node: String,
    },
    /// A master key generation the authority does not hold (retired or never made).
    #[error("unknown master key generation {0}")]
    UnknownGeneration(u32),
    /// The request contradicts the current state (e.g. retiring the active generation).
    #[error("{0}")]
    Conflict(String),
    /// A primitive failed for a reason other than authentication (e.g. the RNG).
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// keyfence-abe failed for a reason other than an unsatisfied policy.
    #[error("attribute-based encryption: {0}")]
    Abe(keyfence_abe::Error),
}
