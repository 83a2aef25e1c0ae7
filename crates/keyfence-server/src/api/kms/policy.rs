//! Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, and CreateKey's
//! `Policy` and `BypassPolicyLockoutSafetyCheck`.

use keyfence_core::authz::{self, ConditionContext, Policy, PolicyKind, Request};
use serde::Deserialize;
use serde_json::{json, Value};

use super::keys::CreateKeyInput;
use super::Ops;
use crate::api::messages;
use crate::api::wire::parse;
use crate::api::ApiError;
use crate::authz::{Authz, Caller};

/// The one policy name AWS KMS keys have.
const DEFAULT_NAME: &str = "default";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetKeyPolicyInput {
    key_id: String,
    policy_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutKeyPolicyInput {
    key_id: String,
    policy_name: Option<String>,
    policy: String,
    #[serde(default)]
    bypass_policy_lockout_safety_check: bool,
}

/// CreateKey's policy members (the rest is [`CreateKeyInput`]).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyPolicy {
    policy: Option<String>,
    #[serde(default)]
    bypass_policy_lockout_safety_check: bool,
}

fn policy_name(name: Option<&str>) -> Result<(), ApiError> {
    match name {
        None | Some(DEFAULT_NAME) => Ok(()),
        Some(other) => Err(messages::no_such_policy(other)),
    }
}

pub(super) fn parts<'a>(o: &Ops<'a>) -> Result<(&'a Authz, &'a Caller), ApiError> {
    match (o.authz, o.caller) {
        (Some(a), Some(c)) => Ok((a, c)),
        _ => Err(ApiError::from(keyfence_core::KmsError::Internal(
            "key policies need an authorized caller".into(),
        ))),
    }
}

/// Parses a key policy and, unless bypassed, refuses one under which the
/// caller could not change the policy again (AWS's lockout safety check).
pub(super) fn checked_policy(
    o: &Ops<'_>,
    caller: &Caller,
    text: &str,
    key_arn: &str,
    bypass: bool,
) -> Result<Policy, ApiError> {
    let policy =
        Policy::parse(text, PolicyKind::Key).map_err(|e| messages::malformed_policy(&e))?;
    if !bypass {
        let mut context = ConditionContext::new(&caller.principal, o.kms.now());
        if let Some(ip) = caller.source_ip {
            context.set_source_ip(ip);
        }
        let req = Request {
            principal: &caller.principal,
            action: "kms:PutKeyPolicy",
            resource: key_arn,
            resource_account: Some(o.account),
            context: &context,
        };
        if !authz::evaluate(&req, Some(&policy), &caller.identity, &[]).is_allowed() {
            return Err(messages::policy_lockout());
        }
    }
    Ok(policy)
}

impl Ops<'_> {
    /// CreateKey, with the key's policy if the request gives one.
    pub(super) fn create_key_with_policy(&self, body: &[u8]) -> Result<Value, ApiError> {
        let p: CreateKeyPolicy = parse(body)?;
        let input: CreateKeyInput = parse(body)?;
        let Some(text) = p.policy else {
            return self.create_key(input, None);
        };
        let (_, caller) = parts(self)?;
        // Checked against a stand-in ARN first, so a bad policy creates no key.
        let pending = format!("arn:aws:kms:{}:{}:key/*", self.kms.region(), self.account);
        checked_policy(
            self,
            caller,
            &text,
            &pending,
            p.bypass_policy_lockout_safety_check,
        )?;
        // The key and its policy in one transaction: a crash cannot leave
        // the key with the default policy.
        self.create_key(input, Some(text))
    }

    pub(super) fn get_key_policy(&self, i: GetKeyPolicyInput) -> Result<Value, ApiError> {
        policy_name(i.policy_name.as_deref())?;
        let (authz, _) = parts(self)?;
        let meta = self.kms.describe_key(self.account, &i.key_id)?;
        let text = match authz.key_policy(&meta.id) {
            Some(p) => p.text.clone(),
            None => authz::default_key_policy(&meta.account),
        };
        Ok(json!({ "Policy": text, "PolicyName": DEFAULT_NAME }))
    }

    pub(super) fn put_key_policy(&self, i: PutKeyPolicyInput) -> Result<Value, ApiError> {
        policy_name(i.policy_name.as_deref())?;
        let (authz, caller) = parts(self)?;
        let meta = self.kms.describe_key(self.account, &i.key_id)?;
        checked_policy(
            self,
            caller,
            &i.policy,
            &meta.arn(),
            i.bypass_policy_lockout_safety_check,
        )?;
        authz
            .set_key_policy(meta.id, &meta.account, i.policy)
            .map_err(|e| ApiError::from(keyfence_core::KmsError::from(e)))?;
        tracing::info!(key_id = %meta.id, "key policy replaced");
        Ok(json!({}))
    }

    pub(super) fn list_key_policies(&self, i: super::KeyListInput) -> Result<Value, ApiError> {
        // One policy name: every Limit from 1 to 1000 shows it, and no marker is issued.
        keyfence_core::page::limit(i.limit, 100, 1000)?;
        let _ = i.marker;
        self.kms.describe_key(self.account, &i.key_id)?;
        Ok(json!({ "PolicyNames": [DEFAULT_NAME], "Truncated": false }))
    }
}
