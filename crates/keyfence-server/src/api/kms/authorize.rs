//! Every KMS request is authorized before it runs: the action and key it
//! names, the condition keys it brings, then the core's decision over the
//! key policy, the caller's identity policy and the key's grants.
//!
//! A key of another account is reached only by its key ARN, and only by the
//! operations AWS allows across accounts; the request then runs in the key's
//! account. A key that does not resolve is left to the operation, which
//! answers NotFoundException as before.

use std::cell::LazyCell;
use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine;
use keyfence_core::authz::{self, keys, ConditionContext, Decision, Grant, Request};
use keyfence_core::{KeyId, KeyMetadata, Kms};
use serde::Deserialize;

use super::Operation;
use crate::api::messages;
use crate::api::names::AwsName;
use crate::api::wire::parse;
use crate::api::ApiError;
use crate::authz::{Authz, Caller};

/// Longest wait for the store when a grant token names a grant this node
/// has not received yet (see [`Authz::fetch_within`]).
const GRANT_TOKEN_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// How an operation names the key it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyNamed {
    /// No key: the identity policy alone decides (resource `*`).
    NoKey,
    /// `KeyId`.
    KeyId,
    /// `KeyId`, or the key of the ciphertext (Decrypt).
    Ciphertext,
    /// `SourceKeyId` (or the ciphertext's key) and `DestinationKeyId` (ReEncrypt).
    ReEncrypt,
    /// `TargetKeyId` (CreateAlias, UpdateAlias).
    TargetKeyId,
    /// The key `AliasName` points at (DeleteAlias).
    AliasName,
    /// The operation decides itself (RetireGrant: the retiring principal,
    /// the grantee, or the key's account; custom key stores: refused).
    Handler,
}

/// The target of `op`, and whether AWS lets another account's principal use it.
fn target(op: &str) -> (KeyNamed, bool) {
    use KeyNamed::*;
    match op {
        "CreateKey" | "ListKeys" | "ListAliases" | "GenerateRandom" | "ListRetirableGrants" => {
            (NoKey, false)
        }
        "Encrypt"
        | "GenerateDataKey"
        | "GenerateDataKeyWithoutPlaintext"
        | "GenerateDataKeyPair"
        | "GenerateDataKeyPairWithoutPlaintext"
        | "Sign"
        | "Verify"
        | "GetPublicKey"
        | "GenerateMac"
        | "VerifyMac"
        | "DeriveSharedSecret"
        | "Encapsulate"
        | "Decapsulate"
        | "DescribeKey"
        | "GetKeyRotationStatus"
        | "CreateGrant"
        | "ListGrants"
        | "RevokeGrant" => (KeyId, true),
        "Decrypt" => (Ciphertext, true),
        "ReEncrypt" => (ReEncrypt, true),
        "CreateAlias" | "UpdateAlias" => (TargetKeyId, false),
        "DeleteAlias" => (AliasName, false),
        "RetireGrant" => (Handler, false),
        // Refused whatever the caller may do.
        "CreateCustomKeyStore"
        | "ConnectCustomKeyStore"
        | "DeleteCustomKeyStore"
        | "DescribeCustomKeyStores"
        | "DisconnectCustomKeyStore"
        | "UpdateCustomKeyStore" => (Handler, false),
        _ => (KeyId, false),
    }
}

/// One key to check: the action, how the request names the key, its encryption context.
type Check<'a> = (
    String,
    Option<&'a String>,
    Option<&'a BTreeMap<String, String>>,
);

/// The members of a request that authorization reads (every other member is skipped).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Facts {
    key_id: Option<String>,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
    target_key_id: Option<String>,
    alias_name: Option<String>,
    ciphertext_blob: Option<String>,
    encryption_context: Option<BTreeMap<String, String>>,
    source_encryption_context: Option<BTreeMap<String, String>>,
    destination_encryption_context: Option<BTreeMap<String, String>>,
    encryption_algorithm: Option<String>,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
    signing_algorithm: Option<String>,
    grant_tokens: Option<Vec<String>>,
    operations: Option<Vec<String>>,
    grantee_principal: Option<String>,
    retiring_principal: Option<String>,
    constraints: Option<ConstraintFacts>,
    tags: Option<Vec<TagFact>>,
    tag_keys: Option<Vec<String>>,
}

/// CreateGrant's constraint types (kms:GrantConstraintType).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConstraintFacts {
    encryption_context_equals: Option<serde::de::IgnoredAny>,
    encryption_context_subset: Option<serde::de::IgnoredAny>,
}

/// One tag of CreateKey or TagResource (aws:RequestTag/KEY, aws:TagKeys).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagFact {
    tag_key: Option<String>,
    tag_value: Option<String>,
}

/// An authorized request: who calls, and the account it runs in (the key's,
/// for a key of another account reached by ARN).
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The caller.
    pub caller: Caller,
    /// The account the operation runs in.
    pub account: String,
}

/// What the request's environment adds to its condition keys.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The client's address (aws:SourceIp).
    pub source_ip: IpAddr,
    /// The region of the request's credential scope (`None`: the node's default region).
    pub region: Option<keyfence_core::Region>,
}

/// Authorizes `op` with `body` for `caller`.
pub fn authorize(
    kms: &Kms,
    authz: &Authz,
    caller: Caller,
    origin: Origin,
    op: &Operation,
    body: &[u8],
) -> Result<Authorized, ApiError> {
    let mut caller = caller;
    caller.source_ip = Some(origin.source_ip);
    let own = caller.principal.account().to_string();
    let (target, cross_account) = target(op.name);
    let action = format!("kms:{}", op.name);
    if target == KeyNamed::Handler {
        return Ok(Authorized {
            caller,
            account: own,
        });
    }
    let facts: Facts = parse(body)?;
    if target == KeyNamed::NoKey {
        let context = LazyCell::new(|| {
            context_for(
                &caller,
                origin,
                kms,
                None,
                &facts,
                facts.encryption_context.as_ref(),
            )
        });
        let req = Request {
            principal: &caller.principal,
            action: &action,
            resource: "*",
            resource_account: None,
            context: &context,
        };
        check(
            &req,
            authz::evaluate(&req, None, &caller.identity, &[]),
            None,
        )?;
        return Ok(Authorized {
            caller,
            account: own,
        });
    }
    let mut checks: Vec<Check<'_>> = Vec::new();
    match target {
        KeyNamed::KeyId => checks.push((
            action,
            facts.key_id.as_ref(),
            facts.encryption_context.as_ref(),
        )),
        KeyNamed::TargetKeyId => checks.push((action, facts.target_key_id.as_ref(), None)),
        KeyNamed::AliasName => checks.push((action, facts.alias_name.as_ref(), None)),
        KeyNamed::Ciphertext => checks.push((
            action,
            facts.key_id.as_ref(),
            facts.encryption_context.as_ref(),
        )),
        KeyNamed::ReEncrypt => {
            checks.push((
                "kms:ReEncryptFrom".into(),
                facts.source_key_id.as_ref(),
                facts.source_encryption_context.as_ref(),
            ));
            checks.push((
                "kms:ReEncryptTo".into(),
                facts.destination_key_id.as_ref(),
                facts.destination_encryption_context.as_ref(),
            ));
        }
        KeyNamed::NoKey | KeyNamed::Handler => unreachable!("handled above"),
    }
    // A grant made at another node a moment ago: its token works at once
    // (the key's grants are read, briefly, for the key it is checked on).
    let tokens_known = authz.knows_grants(
        facts
            .grant_tokens
            .iter()
            .flatten()
            .filter_map(|t| grant_id_of_token(t))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    let mut account: Option<String> = None;
    for (i, (action, key_ref, encryption_context)) in checks.iter().enumerate() {
        let ciphertext_key = (i == 0
            && key_ref.is_none()
            && matches!(target, KeyNamed::Ciphertext | KeyNamed::ReEncrypt))
        .then(|| ciphertext_key(facts.ciphertext_blob.as_deref()))
        .flatten();
        let Some(meta) = resolve(kms, authz, &own, *key_ref, ciphertext_key, cross_account) else {
            // Unknown here: the operation answers NotFoundException (or its
            // validation error) in the caller's own account.
            return Ok(Authorized {
                caller,
                account: own,
            });
        };
        // A cryptographic operation on a key sealed here (fenced away) is
        // refused as the operation itself would refuse it, before its policy
        // is evaluated: the request is forwarded, and the node that holds the
        // key (whose copy of the policy is the one that counts) decides.
        if op.material && meta.fence.is_some() {
            if let Some(refused) = kms.sealed_refusal(&meta.account, &meta.id) {
                return Err(refused.into());
            }
        }
        // The key's policy and grants came with it (the replica holds them
        // before the key): deciding reads no store, unless a grant token
        // names a grant not known here yet.
        if !tokens_known {
            authz.fetch_within(&meta.id, GRANT_TOKEN_WAIT);
        }
        let policy = authz.key_policy(&meta.id);
        let aliases = policy
            .as_ref()
            .is_some_and(|p| p.policy.uses_condition_key(keys::RESOURCE_ALIASES))
            || caller.identity.uses_condition_key(keys::RESOURCE_ALIASES);
        let key = KeyFacts {
            meta: &meta,
            key_ref: key_ref.map(String::as_str),
            aliases,
        };
        // Built only if a condition or a grant reads it.
        let context = LazyCell::new(|| {
            context_for(&caller, origin, kms, Some(key), &facts, *encryption_context)
        });
        let resource = meta.arn();
        let req = Request {
            principal: &caller.principal,
            action,
            resource: &resource,
            resource_account: Some(&meta.account),
            context: &context,
        };
        let grants: std::sync::Arc<[Grant]> = authz.grants(&meta.id);
        let decision = authz::evaluate(
            &req,
            policy.as_ref().map(|p| &p.policy),
            &caller.identity,
            &grants,
        );
        check(&req, decision, Some(&resource))?;
        match &account {
            Some(a) if *a != meta.account => {
                // ReEncrypt between two accounts' keys runs in the caller's
                // own account, where the other account's key is not found.
                return Ok(Authorized {
                    caller,
                    account: own,
                });
            }
            _ => account = Some(meta.account.clone()),
        }
    }
    Ok(Authorized {
        caller,
        account: account.unwrap_or(own),
    })
}

/// AccessDeniedException unless allowed.
fn check(req: &Request<'_>, decision: Decision, resource: Option<&String>) -> Result<(), ApiError> {
    if decision.is_allowed() {
        return Ok(());
    }
    let resource = resource.map_or("*", String::as_str);
    Err(access_denied(
        req.principal.arn(),
        req.action,
        resource,
        decision,
        req.resource_account.is_some(),
    ))
}

/// AccessDeniedException for `decision` (see [`messages::access_denied`]).
pub(crate) fn access_denied(
    arn: &str,
    action: &str,
    resource: &str,
    decision: Decision,
    on_key: bool,
) -> ApiError {
    messages::access_denied(
        arn,
        action,
        resource,
        decision == Decision::ExplicitDeny,
        on_key,
    )
}

/// The key a request names, with its metadata. A key ARN of another account
/// resolves there when `cross_account`; everything else in `own`.
fn resolve(
    kms: &Kms,
    authz: &Authz,
    own: &str,
    key_ref: Option<&String>,
    ciphertext_key: Option<KeyId>,
    cross_account: bool,
) -> Option<KeyMetadata> {
    if let Some(key_ref) = key_ref {
        if let Some(account) = key_arn_account(key_ref).filter(|a| *a != own) {
            return cross_account
                .then(|| kms.find_key(account, key_ref).ok())
                .flatten();
        }
        return kms.find_key(own, key_ref).ok();
    }
    let id = ciphertext_key?;
    let owner = authz.owner_of(&id).unwrap_or_else(|| own.to_string());
    if owner != own && !cross_account {
        return None;
    }
    kms.find_key(&owner, &id.to_string()).ok()
}

/// The account of a key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`), not of an alias ARN.
fn key_arn_account(key_ref: &str) -> Option<&str> {
    let rest = key_ref.strip_prefix("arn:aws:kms:")?;
    let mut parts = rest.splitn(3, ':');
    let (_region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    resource.starts_with("key/").then_some(account)
}

/// The key id in a symmetric ciphertext's header, if it is one.
fn ciphertext_key(blob: Option<&str>) -> Option<KeyId> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob?)
        .ok()?;
    let blob = keyfence_crypto::blob::CiphertextBlob::parse(&bytes).ok()?;
    Some(KeyId::from_bytes(blob.header.key_id))
}

/// The key of one check, for its condition keys.
struct KeyFacts<'a> {
    meta: &'a KeyMetadata,
    /// How the request named it.
    key_ref: Option<&'a str>,
    /// Whether a policy reads kms:ResourceAliases (only then are they looked up).
    aliases: bool,
}

/// The condition keys of one check.
fn context_for(
    caller: &Caller,
    origin: Origin,
    kms: &Kms,
    key: Option<KeyFacts<'_>>,
    facts: &Facts,
    encryption_context: Option<&BTreeMap<String, String>>,
) -> ConditionContext {
    let mut c = ConditionContext::new(&caller.principal, kms.now());
    c.set_source_ip(origin.source_ip);
    if let Some(KeyFacts {
        meta,
        key_ref,
        aliases,
    }) = key
    {
        c.set(keys::KEY_SPEC, meta.spec.aws_name());
        c.set(keys::KEY_USAGE, meta.usage.aws_name());
        if let Some(alias) = key_ref.filter(|r| r.starts_with("alias/")) {
            c.set(keys::REQUEST_ALIAS, alias);
        }
        let listed = aliases
            .then(|| {
                kms.list_aliases(&meta.account, Some(&meta.id.to_string()), Some(100), None)
                    .ok()
            })
            .flatten();
        if let Some(page) = listed {
            if !page.items.is_empty() {
                c.set_all(
                    keys::RESOURCE_ALIASES,
                    page.items
                        .iter()
                        .map(|a| a.name.as_str().to_string())
                        .collect(),
                );
            }
        }
    }
    c.set_encryption_context(encryption_context.unwrap_or(&BTreeMap::new()));
    let algorithm = facts
        .encryption_algorithm
        .as_ref()
        .or(facts.source_encryption_algorithm.as_ref())
        .or(facts.destination_encryption_algorithm.as_ref());
    if let Some(a) = algorithm {
        c.set(keys::ENCRYPTION_ALGORITHM, a.clone());
    }
    if let Some(a) = &facts.signing_algorithm {
        c.set(keys::SIGNING_ALGORITHM, a.clone());
    }
    if let Some(ops) = &facts.operations {
        c.set_all(keys::GRANT_OPERATIONS, ops.clone());
        c.set(keys::GRANT_IS_FOR_AWS_RESOURCE, "false");
    }
    if let Some(g) = &facts.grantee_principal {
        c.set(keys::GRANTEE_PRINCIPAL, g.clone());
    }
    if let Some(r) = &facts.retiring_principal {
        c.set(keys::RETIRING_PRINCIPAL, r.clone());
    }
    if let Some(k) = &facts.constraints {
        let types: Vec<String> = [
            (
                k.encryption_context_equals.is_some(),
                "EncryptionContextEquals",
            ),
            (
                k.encryption_context_subset.is_some(),
                "EncryptionContextSubset",
            ),
        ]
        .iter()
        .filter(|(present, _)| *present)
        .map(|(_, name)| name.to_string())
        .collect();
        if !types.is_empty() {
            c.set_all(keys::GRANT_CONSTRAINT_TYPE, types);
        }
    }
    if let Some(tags) = &facts.tags {
        for t in tags {
            if let (Some(k), Some(v)) = (&t.tag_key, &t.tag_value) {
                c.set(&format!("{}{k}", keys::REQUEST_TAG_PREFIX), v.clone());
            }
        }
        c.set_all(
            keys::TAG_KEYS,
            tags.iter().filter_map(|t| t.tag_key.clone()).collect(),
        );
    }
    if let Some(k) = &facts.tag_keys {
        c.set_all(keys::TAG_KEYS, k.clone());
    }
    c
}

/// Prefix of keyfence's grant tokens (base64 of it and the grant id).
const TOKEN_PREFIX: &[u8] = b"keyfence-grant-token/1/";

/// The grant token of `grant_id`.
pub(crate) fn grant_token(grant_id: &str) -> String {
    let mut bytes = TOKEN_PREFIX.to_vec();
    bytes.extend_from_slice(grant_id.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The grant id a token names, if it is one of keyfence's.
pub(crate) fn grant_id_of_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let id = bytes.strip_prefix(TOKEN_PREFIX)?;
    let id = std::str::from_utf8(id).ok()?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_tokens_name_their_grant() {
        let id = "ab".repeat(32);
        let token = grant_token(&id);
        assert_eq!(grant_id_of_token(&token), Some(id));
        assert_eq!(grant_id_of_token("not base64!"), None);
        let foreign = base64::engine::general_purpose::STANDARD.encode(b"something/else");
        assert_eq!(grant_id_of_token(&foreign), None);
        assert_eq!(grant_id_of_token(&grant_token("short")), None);
    }

    #[test]
    fn only_key_arns_name_another_account() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            key_arn_account(&format!("arn:aws:kms:us-east-1:444455556666:key/{id}")),
            Some("444455556666")
        );
        assert_eq!(
            key_arn_account("arn:aws:kms:us-east-1:444455556666:alias/x"),
            None
        );
        assert_eq!(key_arn_account(id), None);
        assert_eq!(key_arn_account("alias/x"), None);
    }

    #[test]
    fn cross_account_operations_are_awss() {
        let cross: Vec<&str> = super::super::OPERATIONS
            .iter()
            .map(|o| o.name)
            .filter(|n| target(n).1)
            .collect();
        let mut expected = vec![
            "CreateGrant",
            "Decapsulate",
            "Decrypt",
            "DeriveSharedSecret",
            "DescribeKey",
            "Encapsulate",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
            "GenerateDataKeyWithoutPlaintext",
            "GenerateMac",
            "GetKeyRotationStatus",
            "GetPublicKey",
            "ListGrants",
            "ReEncrypt",
            "RevokeGrant",
            "Sign",
            "Verify",
            "VerifyMac",
        ];
        let mut cross = cross;
        cross.sort_unstable();
        expected.sort_unstable();
        assert_eq!(cross, expected);
        assert_eq!(target("ListKeys").0, KeyNamed::NoKey);
        assert_eq!(target("PutKeyPolicy"), (KeyNamed::KeyId, false));
    }
}
