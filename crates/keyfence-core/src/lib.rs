//! The keyfence domain: KMS keys and their versions, the key-state machine,
//! envelope encryption semantics, aliases, tags and rotation.
//!
//! The core does no I/O. It reaches durable storage only through the [`Store`]
//! trait and the root of trust only through [`RootOfTrust`]; time comes from a
//! [`Clock`] so tests can move it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod authz;
pub mod clock;
pub mod cluster;
pub mod context;
pub mod error;
pub mod fence;
pub mod ids;
pub mod model;
pub mod page;
pub mod quorum;
pub mod root;
pub mod service;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use context::EncryptionContext;
pub use error::{
    Algorithm, AliasNameProblem, Bound, CiphertextProblem, CryptoOperation, Invalid, KmsError,
    Limit, Member, Missing, SpecOperation, StateRefusal, TagProblem, Unsupported,
};
pub use ids::{AliasName, KeyId, KeyMaterialId, KeyRef, Region};
pub use model::{EncryptionAlgorithm, KeyMetadata, KeySpec, KeyState, KeyUsage, Origin};
pub use root::{LocalRootKey, RootOfTrust};
pub use service::Kms;
pub use store::{Store, StoreError};
