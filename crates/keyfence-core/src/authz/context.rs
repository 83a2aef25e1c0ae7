//! What a request brings to the evaluation: the caller, the action, the key,
//! and the values of the condition keys.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::time::format_date;
use super::Principal;
use crate::Timestamp;

/// The condition keys keyfence sets, lowercased (condition key names are
/// case-insensitive; lookups lowercase the policy's spelling).
pub mod keys {
    /// The account of the caller.
    pub const CALLER_ACCOUNT: &str = "kms:calleraccount";
    /// The key's KeySpec.
    pub const KEY_SPEC: &str = "kms:keyspec";
    /// The key's KeyUsage.
    pub const KEY_USAGE: &str = "kms:keyusage";
    /// The request's EncryptionAlgorithm.
    pub const ENCRYPTION_ALGORITHM: &str = "kms:encryptionalgorithm";
    /// The request's SigningAlgorithm.
    pub const SIGNING_ALGORITHM: &str = "kms:signingalgorithm";
    /// The keys of the request's encryption context (multi-valued).
    pub const ENCRYPTION_CONTEXT_KEYS: &str = "kms:encryptioncontextkeys";
    /// Prefix of one encryption-context pair's key (`kms:EncryptionContext:KEY`).
    pub const ENCRYPTION_CONTEXT_PREFIX: &str = "kms:encryptioncontext:";
    /// The operations of a grant being created (multi-valued).
    pub const GRANT_OPERATIONS: &str = "kms:grantoperations";
    /// The constraint types of a grant being created (multi-valued:
    /// EncryptionContextEquals, EncryptionContextSubset).
    pub const GRANT_CONSTRAINT_TYPE: &str = "kms:grantconstrainttype";
    /// The AWS service a request came through (never set: keyfence has no
    /// AWS services in front of it, so `kms:ViaService` conditions never match).
    pub const VIA_SERVICE: &str = "kms:viaservice";
    /// Prefix of a tag in the request (`aws:RequestTag/KEY`).
    pub const REQUEST_TAG_PREFIX: &str = "aws:requesttag/";
    /// The tag keys in the request (multi-valued).
    pub const TAG_KEYS: &str = "aws:tagkeys";
    /// Whether a grant is created for an AWS service (never, here).
    pub const GRANT_IS_FOR_AWS_RESOURCE: &str = "kms:grantisforawsresource";
    /// The grantee of a grant being created.
    pub const GRANTEE_PRINCIPAL: &str = "kms:granteeprincipal";
    /// The retiring principal of a grant being created.
    pub const RETIRING_PRINCIPAL: &str = "kms:retiringprincipal";
    /// The alias the request named the key by.
    pub const REQUEST_ALIAS: &str = "kms:requestalias";
    /// The aliases of the key (multi-valued).
    pub const RESOURCE_ALIASES: &str = "kms:resourcealiases";
    /// The caller's ARN.
    pub const PRINCIPAL_ARN: &str = "aws:principalarn";
    /// The calling IAM user's name (also the `${aws:username}` policy variable).
    pub const USERNAME: &str = "aws:username";
    /// The caller's account.
    pub const PRINCIPAL_ACCOUNT: &str = "aws:principalaccount";
    /// The client's IP address.
    pub const SOURCE_IP: &str = "aws:sourceip";
    /// The time of the request (ISO 8601).
    pub const CURRENT_TIME: &str = "aws:currenttime";
    /// The time of the request (seconds since the epoch).
    pub const EPOCH_TIME: &str = "aws:epochtime";
}

/// The condition keys' values of one request.
#[derive(Debug, Clone)]
pub struct ConditionContext {
    values: Vec<(String, Vec<String>)>,
    source_ip: Option<IpAddr>,
    now: Timestamp,
    encryption_context: Option<BTreeMap<String, String>>,
}

impl ConditionContext {
    /// A context for a request made at `now`, with the caller's keys
    /// (kms:CallerAccount, aws:PrincipalArn, aws:PrincipalAccount) set.
    pub fn new(principal: &Principal, now: Timestamp) -> Self {
        let mut c = Self {
            values: Vec::with_capacity(12),
            source_ip: None,
            now,
            encryption_context: None,
        };
        c.set(keys::CALLER_ACCOUNT, principal.account());
        c.set(keys::PRINCIPAL_ACCOUNT, principal.account());
        c.set(keys::PRINCIPAL_ARN, principal.arn());
        if principal.kind() == super::PrincipalKind::User {
            let name = principal.arn().rsplit('/').next().unwrap_or_default();
            c.set(keys::USERNAME, name);
        }
        c
    }

    /// Sets single-valued `key` (any case) to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.set_all(key, vec![value.into()]);
    }

    /// Sets multi-valued `key` (any case) to `values`.
    pub fn set_all(&mut self, key: &str, values: Vec<String>) {
        let key = key.to_ascii_lowercase();
        self.values.retain(|(k, _)| *k != key);
        self.values.push((key, values));
    }

    /// Sets aws:SourceIp.
    pub fn set_source_ip(&mut self, ip: IpAddr) {
        self.source_ip = Some(ip);
    }

    /// Sets the request's encryption context: kms:EncryptionContext:KEY for
    /// each pair and kms:EncryptionContextKeys (grant constraints read it too).
    pub fn set_encryption_context(&mut self, context: &BTreeMap<String, String>) {
        for (k, v) in context {
            self.set(
                &format!("{}{k}", keys::ENCRYPTION_CONTEXT_PREFIX),
                v.clone(),
            );
        }
        if !context.is_empty() {
            self.set_all(
                keys::ENCRYPTION_CONTEXT_KEYS,
                context.keys().cloned().collect(),
            );
        }
        self.encryption_context = Some(context.clone());
    }

    /// The request's encryption context, if the action takes one.
    pub fn encryption_context(&self) -> Option<&BTreeMap<String, String>> {
        self.encryption_context.as_ref()
    }

    /// The values of `key` (lowercase), `None` if the request has none.
    pub fn get(&self, key: &str) -> Option<Cow<'_, [String]>> {
        match key {
            keys::SOURCE_IP => self.source_ip.map(|ip| Cow::Owned(vec![ip.to_string()])),
            keys::CURRENT_TIME => Some(Cow::Owned(vec![format_date(self.now)])),
            keys::EPOCH_TIME => Some(Cow::Owned(vec![self.now.0.div_euclid(1000).to_string()])),
            _ => self
                .values
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| Cow::Borrowed(v.as_slice())),
        }
    }
}

/// One request to authorize.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller.
    pub principal: &'a Principal,
    /// The IAM action, e.g. `kms:Encrypt`.
    pub action: &'a str,
    /// The key's ARN, or `*` for an action on no key (CreateKey, ListKeys, …).
    pub resource: &'a str,
    /// The account that owns the key; `None` for an action on no key.
    pub resource_account: Option<&'a str>,
    /// The condition keys (built only if a condition or a grant reads them).
    pub context: &'a dyn ConditionSource,
}

/// Where a request's condition keys come from: a [`ConditionContext`]
/// itself, or a [`LazyContext`] that builds it on first use.
pub trait ConditionSource: std::fmt::Debug {
    /// The condition keys.
    fn keys(&self) -> &ConditionContext;
}

impl ConditionSource for ConditionContext {
    fn keys(&self) -> &ConditionContext {
        self
    }
}

/// Condition keys built the first time a policy condition or a grant
/// constraint reads them (`LazyCell::new(|| …)`): most requests meet policies
/// without conditions (the default key policy), and building every key
/// costs allocations.
impl<F: FnOnce() -> ConditionContext> ConditionSource for std::cell::LazyCell<ConditionContext, F> {
    fn keys(&self) -> &ConditionContext {
        std::cell::LazyCell::force(self)
    }
}
