//! Authorization: who may call which KMS action on which key, as AWS KMS
//! decides it. No I/O: callers hand in the key policy, the caller's identity
//! policy and the key's grants, and get a [`Decision`].
//!
//! - [`Principal`]: the caller, an IAM user or role (or an account root) of an account.
//! - [`Policy`]: the IAM JSON policy language (Effect, Principal, Action and
//!   NotAction, Resource and NotResource, Condition with its operators).
//! - [`Grant`]: a KMS grant with its operations and encryption-context constraints.
//! - [`evaluate`]: AWS's order — an explicit deny anywhere wins; the key policy
//!   allows the caller directly, or allows its account and the caller's identity
//!   policy allows too (the default key policy delegates this way); a grant allows;
//!   anything else is an implicit deny.

mod condition;
mod context;
mod error;
mod eval;
mod grant;
mod pattern;
mod policy;
mod principal;
mod store;
mod time;

pub use condition::{Condition, Operator, SetQualifier};
pub use context::{keys, ConditionContext, ConditionSource, Request};
pub use error::PolicyError;
pub use eval::{evaluate, Decision};
pub use grant::{
    check_grant_quota, Grant, GrantConstraints, GrantOperation, MAX_GRANTS_PER_GRANTEE,
    MAX_GRANTS_PER_KEY,
};
pub use pattern::{arn_matches, wildcard_matches};
pub use policy::{default_key_policy, Effect, Policy, PolicyKind, Statement};
pub use principal::{Principal, PrincipalKind};
pub use store::{AuthzSnapshot, AuthzStore, StoredKeyPolicy};
pub use time::parse_date;

#[cfg(test)]
mod tests;
