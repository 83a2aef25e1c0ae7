//! The decision, in AWS's order: explicit deny, key policy (with its
//! delegation to identity policies), grants, implicit deny.

use super::policy::KeyPolicyOutcome;
use super::{Grant, Policy, PrincipalKind, Request};

/// The outcome of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// A Deny statement covers the request.
    ExplicitDeny,
    /// Nothing allows it.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may run.
    pub fn is_allowed(self) -> bool {
        self == Self::Allow
    }
}

/// Decides `req`.
///
/// - For an action on no key (`req.resource_account` is `None`) only the
///   caller's identity policy counts.
/// - Otherwise `key_policy` is the key's policy (`None`: the default key
///   policy, which allows the owning account's root and so delegates to its
///   identity policies). A deny in either policy wins. A caller of the key's
///   account is allowed when the key policy names it, or names its account and
///   its identity policy allows; a caller of another account needs both.
///   Failing that, a grant of the key for the caller allows.
pub fn evaluate(
    req: &Request<'_>,
    key_policy: Option<&Policy>,
    identity: &Policy,
    grants: &[Grant],
) -> Decision {
    let (identity_denies, identity_allows) = identity.evaluate_identity(req);
    let Some(owner) = req.resource_account else {
        return match (identity_denies, identity_allows) {
            (true, _) => Decision::ExplicitDeny,
            (false, true) => Decision::Allow,
            (false, false) => Decision::ImplicitDeny,
        };
    };
    let same_account = req.principal.account() == owner;
    let key = match key_policy {
        Some(p) => p.evaluate_key(req),
        None => KeyPolicyOutcome {
            denied: false,
            allows_caller: same_account && req.principal.kind() == PrincipalKind::Root,
            allows_account: same_account,
        },
    };
    if key.denied || identity_denies {
        return Decision::ExplicitDeny;
    }
    let by_policies = if same_account {
        key.allows_caller || (key.allows_account && identity_allows)
    } else {
        (key.allows_caller || key.allows_account) && identity_allows
    };
    if by_policies || grants.iter().any(|g| g.permits(req)) {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}
