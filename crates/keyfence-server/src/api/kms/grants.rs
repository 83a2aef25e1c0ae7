//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.

use std::collections::BTreeMap;

use keyfence_core::authz::{
    self, keys, ConditionContext, Grant, GrantConstraints, GrantOperation, Principal,
    PrincipalKind, Request,
};
use keyfence_core::page;
use keyfence_core::KmsError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::authorize::{access_denied, grant_id_of_token, grant_token};
use super::shapes::paged;
use super::Ops;
use crate::api::messages;
use crate::api::names::AwsName;
use crate::api::wire::date;
use crate::api::ApiError;
use crate::authz::{Authz, Caller};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConstraintsInput {
    encryption_context_subset: Option<BTreeMap<String, String>>,
    encryption_context_equals: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateGrantInput {
    key_id: String,
    grantee_principal: String,
    retiring_principal: Option<String>,
    operations: Vec<String>,
    constraints: Option<ConstraintsInput>,
    name: Option<String>,
    /// With DryRun every check runs and nothing is written (the dispatcher
    /// then answers DryRunOperationException).
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListGrantsInput {
    key_id: String,
    limit: Option<i64>,
    marker: Option<String>,
    grant_id: Option<String>,
    grantee_principal: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListRetirableGrantsInput {
    retiring_principal: String,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RetireGrantInput {
    grant_token: Option<String>,
    key_id: Option<String>,
    grant_id: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RevokeGrantInput {
    key_id: String,
    grant_id: String,
    dry_run: Option<bool>,
}

fn not_in_operations(name: &str) -> ApiError {
    let names: Vec<&str> = GrantOperation::ALL.iter().map(|o| o.name()).collect();
    messages::not_in_enum_of(name, "operations", &names)
}

fn store(e: keyfence_core::StoreError) -> ApiError {
    ApiError::from(KmsError::from(e))
}

fn parts<'a>(o: &Ops<'a>) -> Result<(&'a Authz, &'a Caller), ApiError> {
    match (o.authz, o.caller) {
        (Some(a), Some(c)) => Ok((a, c)),
        _ => Err(ApiError::from(KmsError::Internal(
            "grants need an authorized caller".into(),
        ))),
    }
}

/// A grantee or retiring principal: an IAM user, role or account root ARN.
fn principal(p: &str) -> Result<Principal, ApiError> {
    Principal::parse_arn(p).map_err(|_| messages::invalid_principal(p))
}

/// The kms:GrantConstraintType values of a grant's constraints.
pub(super) fn constraint_types(c: &GrantConstraints) -> Vec<String> {
    let mut types = Vec::new();
    if c.equals.is_some() {
        types.push("EncryptionContextEquals".to_string());
    }
    if c.subset.is_some() {
        types.push("EncryptionContextSubset".to_string());
    }
    types
}

/// Whether `id` has the shape of a grant id (64 hexadecimal characters).
fn is_grant_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The GrantListEntry shape.
fn entry(g: &Grant, key_arn: &str) -> Value {
    let mut v = json!({
        "KeyId": key_arn,
        "GrantId": g.id,
        "CreationDate": date(g.created),
        "GranteePrincipal": g.grantee,
        "IssuingAccount": format!("arn:aws:iam::{}:root", g.key_account),
        "Operations": g.operations.iter().map(|o| o.name()).collect::<Vec<_>>(),
    });
    if let Some(n) = &g.name {
        v["Name"] = json!(n);
    }
    if let Some(r) = &g.retiring {
        v["RetiringPrincipal"] = json!(r);
    }
    if !g.constraints.is_empty() {
        let mut c = json!({});
        if let Some(e) = &g.constraints.equals {
            c["EncryptionContextEquals"] = json!(e);
        }
        if let Some(s) = &g.constraints.subset {
            c["EncryptionContextSubset"] = json!(s);
        }
        v["Constraints"] = c;
    }
    v
}

impl Ops<'_> {
    pub(super) fn create_grant(&self, i: CreateGrantInput) -> Result<Value, ApiError> {
        let (authz, caller) = parts(self)?;
        let meta = self.kms.describe_key(self.account, &i.key_id)?;
        principal(&i.grantee_principal)?;
        if let Some(r) = &i.retiring_principal {
            principal(r)?;
        }
        if i.operations.is_empty() {
            return Err(messages::no_grant_operations());
        }
        let mut operations = Vec::new();
        for name in &i.operations {
            let op = GrantOperation::from_name(name).ok_or_else(|| not_in_operations(name))?;
            if !operations.contains(&op) {
                operations.push(op);
            }
        }
        let constraints =
            i.constraints
                .map_or_else(GrantConstraints::default, |c| GrantConstraints {
                    equals: c.encryption_context_equals,
                    subset: c.encryption_context_subset,
                });
        if !constraints.is_empty() {
            let unsupported: Vec<&str> = operations
                .iter()
                .filter(|o| !o.takes_encryption_context())
                .map(|o| o.name())
                .collect();
            if !unsupported.is_empty() {
                return Err(messages::constraints_not_supported(&unsupported));
            }
        }
        if let Some(name) = &i.name {
            if name.is_empty()
                || name.len() > 256
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'))
            {
                return Err(messages::invalid_grant_name(name));
            }
        }
        // A caller allowed CreateGrant only by a grant may pass on no more
        // than that grant allows, under constraints at least as strict.
        let mut context = ConditionContext::new(&caller.principal, self.kms.now());
        if let Some(ip) = caller.source_ip {
            context.set_source_ip(ip);
        }
        context.set(keys::KEY_SPEC, meta.spec.aws_name());
        context.set(keys::KEY_USAGE, meta.usage.aws_name());
        context.set_all(
            keys::GRANT_OPERATIONS,
            operations.iter().map(|o| o.name().to_string()).collect(),
        );
        context.set(keys::GRANT_IS_FOR_AWS_RESOURCE, "false");
        let constraint_types = constraint_types(&constraints);
        if !constraint_types.is_empty() {
            context.set_all(keys::GRANT_CONSTRAINT_TYPE, constraint_types);
        }
        context.set(keys::GRANTEE_PRINCIPAL, i.grantee_principal.clone());
        if let Some(r) = &i.retiring_principal {
            context.set(keys::RETIRING_PRINCIPAL, r.clone());
        }
        let arn = meta.arn();
        let req = Request {
            principal: &caller.principal,
            action: "kms:CreateGrant",
            resource: &arn,
            resource_account: Some(&meta.account),
            context: &context,
        };
        let policy = authz.key_policy(&meta.id);
        let by_policy = authz::evaluate(
            &req,
            policy.as_ref().map(|p| &p.policy),
            &caller.identity,
            &[],
        );
        if !by_policy.is_allowed() {
            let parent = authz.grants(&meta.id);
            let covered = parent.iter().any(|g| {
                g.grantee == caller.principal.arn()
                    && g.operations.contains(&GrantOperation::CreateGrant)
                    && operations.iter().all(|o| g.operations.contains(o))
                    && constraints.within(&g.constraints)
            });
            if !covered {
                return Err(access_denied(
                    caller.principal.arn(),
                    "kms:CreateGrant",
                    &arn,
                    by_policy,
                    true,
                ));
            }
        }
        if let Some(name) = &i.name {
            let same = authz
                .grants(&meta.id)
                .iter()
                .find(|g| {
                    g.name.as_deref() == Some(name)
                        && g.grantee == i.grantee_principal
                        && g.retiring == i.retiring_principal
                        && g.operations == operations
                        && g.constraints == constraints
                })
                .cloned();
            if let Some(g) = same {
                return Ok(json!({ "GrantId": g.id, "GrantToken": grant_token(&g.id) }));
            }
        }
        authz::check_grant_quota(&authz.grants(&meta.id), &arn, &i.grantee_principal)?;
        if i.dry_run == Some(true) {
            return Ok(json!({}));
        }
        let id = hex::encode(keyfence_crypto::rand::array::<32>().map_err(|_| {
            ApiError::from(KmsError::Internal("the random generator failed".into()))
        })?);
        let grant = Grant {
            id: id.clone(),
            key_id: meta.id,
            key_account: meta.account.clone(),
            name: i.name,
            grantee: i.grantee_principal,
            retiring: i.retiring_principal,
            operations,
            constraints,
            issuer: caller.principal.arn().to_string(),
            created: self.kms.now(),
        };
        authz.add_grant(grant).map_err(store)?;
        tracing::info!(key_id = %meta.id, grant_id = %id, "grant created");
        Ok(json!({ "GrantId": id, "GrantToken": grant_token(&id) }))
    }

    pub(super) fn list_grants(&self, i: ListGrantsInput) -> Result<Value, ApiError> {
        let (authz, _) = parts(self)?;
        let limit = page::limit(i.limit, 50, 100)?;
        let meta = self.kms.describe_key(self.account, &i.key_id)?;
        if let Some(id) = i.grant_id.as_deref().filter(|id| !is_grant_id(id)) {
            return Err(messages::invalid_grant_id(id));
        }
        let grants: Vec<Grant> = authz
            .grants(&meta.id)
            .iter()
            .filter(|g| i.grant_id.as_ref().is_none_or(|id| *id == g.id))
            .filter(|g| i.grantee_principal.as_ref().is_none_or(|p| *p == g.grantee))
            .cloned()
            .collect();
        self.grant_page(grants, i.marker.as_deref(), limit)
    }

    pub(super) fn list_retirable_grants(
        &self,
        i: ListRetirableGrantsInput,
    ) -> Result<Value, ApiError> {
        let (authz, _) = parts(self)?;
        let limit = page::limit(i.limit, 50, 100)?;
        principal(&i.retiring_principal)?;
        let grants =
            authz.grants_where(|g| g.retiring.as_deref() == Some(i.retiring_principal.as_str()));
        self.grant_page(grants, i.marker.as_deref(), limit)
    }

    fn grant_page(
        &self,
        mut grants: Vec<Grant>,
        marker: Option<&str>,
        limit: usize,
    ) -> Result<Value, ApiError> {
        let sort_key = |g: &Grant| format!("{:020}/{}/{}", g.created.0, g.key_id, g.id);
        grants.sort_by_key(sort_key);
        let page = page::paginate(grants, sort_key, marker, limit)?;
        let region = self.kms.region();
        let items = page
            .items
            .iter()
            .map(|g| {
                entry(
                    g,
                    &keyfence_core::ids::key_arn(region, &g.key_account, &g.key_id),
                )
            })
            .collect();
        Ok(paged(json!({}), "Grants", items, page.next_marker))
    }

    pub(super) fn retire_grant(&self, i: RetireGrantInput) -> Result<Value, ApiError> {
        if i.grant_token.is_none() && (i.key_id.is_none() || i.grant_id.is_none()) {
            return Err(messages::retire_grant_needs_a_grant());
        }
        let (authz, caller) = parts(self)?;
        let grant = match (&i.grant_token, &i.key_id, &i.grant_id) {
            (Some(token), _, _) => {
                let id = grant_id_of_token(token).ok_or_else(messages::invalid_grant_token)?;
                if authz.find_grant(&id).is_none() {
                    authz.reload().map_err(store)?;
                }
                authz
                    .find_grant(&id)
                    .ok_or_else(|| messages::grant_not_found(&id))?
            }
            (None, Some(key), Some(id)) => {
                if !is_grant_id(id) {
                    return Err(messages::invalid_grant_id(id));
                }
                let meta = self.kms.describe_key(self.account, key).or_else(|e| {
                    // A key of another account, by its ARN: the retiring principal may be here.
                    authz
                        .find_grant(id)
                        .filter(|g| {
                            keyfence_core::ids::key_arn(
                                self.kms.region(),
                                &g.key_account,
                                &g.key_id,
                            ) == *key
                        })
                        .and_then(|g| self.kms.describe_key(&g.key_account, key).ok())
                        .ok_or(e)
                })?;
                authz
                    .grants(&meta.id)
                    .iter()
                    .find(|g| g.id == *id)
                    .cloned()
                    .ok_or_else(|| messages::grant_not_found(id))?
            }
            _ => unreachable!("checked above"),
        };
        let me = caller.principal.arn();
        let allowed = grant.retiring.as_deref() == Some(me)
            || (grant.grantee == me && grant.operations.contains(&GrantOperation::RetireGrant))
            || (caller.principal.kind() == PrincipalKind::Root
                && caller.principal.account() == grant.key_account);
        if !allowed {
            let arn =
                keyfence_core::ids::key_arn(self.kms.region(), &grant.key_account, &grant.key_id);
            return Err(access_denied(
                me,
                "kms:RetireGrant",
                &arn,
                authz::Decision::ImplicitDeny,
                true,
            ));
        }
        if i.dry_run == Some(true) {
            return Ok(json!({}));
        }
        authz
            .remove_grant(&grant.key_id, &grant.id)
            .map_err(store)?;
        tracing::info!(key_id = %grant.key_id, grant_id = %grant.id, "grant retired");
        Ok(json!({}))
    }

    pub(super) fn revoke_grant(&self, i: RevokeGrantInput) -> Result<Value, ApiError> {
        let (authz, _) = parts(self)?;
        let meta = self.kms.describe_key(self.account, &i.key_id)?;
        if !is_grant_id(&i.grant_id) {
            return Err(messages::invalid_grant_id(&i.grant_id));
        }
        if i.dry_run == Some(true) {
            return if authz.grants(&meta.id).iter().any(|g| g.id == i.grant_id) {
                Ok(json!({}))
            } else {
                Err(messages::grant_not_found(&i.grant_id))
            };
        }
        if !authz.remove_grant(&meta.id, &i.grant_id).map_err(store)? {
            return Err(messages::grant_not_found(&i.grant_id));
        }
        tracing::info!(key_id = %meta.id, grant_id = %i.grant_id, "grant revoked");
        Ok(json!({}))
    }
}
