//! Key lifecycle: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription,
//! EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion; and the
//! multi-Region operations ReplicateKey and UpdatePrimaryRegion.

use keyfence_core::model::KeyMetadata;
use keyfence_core::service::{MultiRegionMember, ReplicateKeyInput as CoreReplicateKeyInput};
use keyfence_core::{KeySpec, KeyUsage, Kms, Origin};
use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::{key_metadata, paged};
use super::{KeyIdInput, ListInput, Ops, Tag};
use crate::api::messages;
use crate::api::names::AwsName;
use crate::api::wire::date;
use crate::api::ApiError;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateKeyInput {
    description: Option<String>,
    key_spec: Option<String>,
    customer_master_key_spec: Option<String>,
    key_usage: Option<String>,
    origin: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    multi_region: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReplicateKeyInput {
    key_id: String,
    replica_region: String,
    description: Option<String>,
    policy: Option<String>,
    #[serde(default)]
    bypass_policy_lockout_safety_check: bool,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdatePrimaryRegionInput {
    key_id: String,
    primary_region: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeKeyInput {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateKeyDescriptionInput {
    key_id: String,
    description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ScheduleKeyDeletionInput {
    key_id: String,
    pending_window_in_days: Option<i64>,
}

impl Ops<'_> {
    /// CreateKey; `policy`: the key's policy (checked), stored with the key.
    pub(super) fn create_key(
        &self,
        i: CreateKeyInput,
        policy: Option<String>,
    ) -> Result<Value, ApiError> {
        if i.key_spec.is_some() && i.customer_master_key_spec.is_some() {
            return Err(ApiError::validation(
                "KeySpec and CustomerMasterKeySpec cannot both be specified",
            ));
        }
        let spec = match i.key_spec.or(i.customer_master_key_spec).as_deref() {
            None => KeySpec::SymmetricDefault,
            Some("SM2") => return Err(messages::sm2_key_spec()),
            Some(name) => KeySpec::from_aws_name(name)
                .ok_or_else(|| messages::not_in_enum(name, "keySpec"))?,
        };
        let usage = match i.key_usage.as_deref() {
            None => KeyUsage::EncryptDecrypt,
            Some(name) => KeyUsage::from_aws_name(name)
                .ok_or_else(|| messages::usage_not_for_spec(name, spec))?,
        };
        let origin = match i.origin.as_deref() {
            None => Origin::AwsKms,
            Some(name) => {
                Origin::from_aws_name(name).ok_or_else(|| messages::unsupported_origin(name))?
            }
        };
        let meta = self.kms.create_key_with_policy(
            self.account,
            keyfence_core::service::CreateKeyInput {
                description: i.description,
                spec,
                usage,
                origin,
                tags: i
                    .tags
                    .into_iter()
                    .map(|t| (t.tag_key, t.tag_value))
                    .collect(),
                multi_region: i.multi_region == Some(true),
            },
            policy,
        )?;
        tracing::info!(key_id = %meta.id, account = self.account, "key created");
        Ok(json!({ "KeyMetadata": self.full_key_metadata(&meta) }))
    }

    pub(super) fn describe_key(&self, i: DescribeKeyInput) -> Result<Value, ApiError> {
        let meta = self.kms.describe_key(self.account, &i.key_id)?;
        Ok(json!({ "KeyMetadata": self.full_key_metadata(&meta) }))
    }

    /// KeyMetadata with, for a multi-Region key, its MultiRegionConfiguration.
    fn full_key_metadata(&self, meta: &KeyMetadata) -> Value {
        let mut v = key_metadata(meta);
        if let Some(c) = self.kms.multi_region_configuration(meta) {
            let member = |m: &MultiRegionMember| json!({"Arn": m.arn, "Region": m.region});
            let mut config = json!({
                "MultiRegionKeyType": c.key_type.aws_name(),
                "ReplicaKeys": c.replicas.iter().map(member).collect::<Vec<_>>(),
            });
            if let Some(p) = &c.primary {
                config["PrimaryKey"] = member(p);
            }
            v["MultiRegionConfiguration"] = config;
        }
        v
    }

    /// ReplicateKey: a replica of a multi-Region primary key in another
    /// region this node serves, with its own description, tags and key policy.
    pub(super) fn replicate_key(&self, i: ReplicateKeyInput) -> Result<Value, ApiError> {
        crate::api::messages::check_region_name("replicaRegion", &i.replica_region)?;
        let policy = match &i.policy {
            None => None,
            Some(text) => {
                let (_, caller) = super::policy::parts(self)?;
                let pending = format!("arn:aws:kms:{}:{}:key/*", i.replica_region, self.account);
                Some(super::policy::checked_policy(
                    self,
                    caller,
                    text,
                    &pending,
                    i.bypass_policy_lockout_safety_check,
                )?)
            }
        };
        let tags: Vec<(String, String)> = i
            .tags
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect();
        let replica = self.kms.replicate_key(
            self.account,
            &i.key_id,
            &i.replica_region,
            CoreReplicateKeyInput {
                description: i.description,
                tags: tags.clone(),
            },
        )?;
        let text = match (policy, i.policy) {
            (Some(_checked), Some(text)) => {
                let (authz, _) = super::policy::parts(self)?;
                authz
                    .set_key_policy(replica.id, self.account, text.clone())
                    .map_err(|e| ApiError::from(keyfence_core::KmsError::from(e)))?;
                text
            }
            _ => keyfence_core::authz::default_key_policy(self.account),
        };
        tracing::info!(key_id = %replica.id, "multi-Region key replicated");
        let shown = self
            .kms
            .in_region(&replica.region, || self.full_key_metadata(&replica))?;
        Ok(json!({
            "ReplicaKeyMetadata": shown,
            "ReplicaPolicy": text,
            "ReplicaTags": tags
                .iter()
                .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
                .collect::<Vec<_>>(),
        }))
    }

    /// UpdatePrimaryRegion.
    pub(super) fn update_primary_region(
        &self,
        i: UpdatePrimaryRegionInput,
    ) -> Result<Value, ApiError> {
        crate::api::messages::check_region_name("primaryRegion", &i.primary_region)?;
        self.kms
            .update_primary_region(self.account, &i.key_id, &i.primary_region)?;
        tracing::info!(key_id = %i.key_id, region = %i.primary_region, "primary region updated");
        Ok(json!({}))
    }

    pub(super) fn list_keys(&self, i: ListInput) -> Result<Value, ApiError> {
        let page = self
            .kms
            .list_keys(self.account, i.limit, i.marker.as_deref())?;
        let items = page
            .items
            .iter()
            .map(|k| json!({"KeyId": k.id.public().to_string(), "KeyArn": k.arn()}))
            .collect();
        Ok(paged(json!({}), "Keys", items, page.next_marker))
    }

    pub(super) fn update_key_description(
        &self,
        i: UpdateKeyDescriptionInput,
    ) -> Result<Value, ApiError> {
        self.kms
            .update_key_description(self.account, &i.key_id, &i.description)?;
        Ok(json!({}))
    }

    pub(super) fn key_only(
        &self,
        i: KeyIdInput,
        op: impl FnOnce(&Kms, &str, &str) -> Result<(), keyfence_core::KmsError>,
    ) -> Result<Value, ApiError> {
        op(self.kms, self.account, &i.key_id)?;
        Ok(json!({}))
    }

    pub(super) fn schedule_key_deletion(
        &self,
        i: ScheduleKeyDeletionInput,
    ) -> Result<Value, ApiError> {
        let s =
            self.kms
                .schedule_key_deletion(self.account, &i.key_id, i.pending_window_in_days)?;
        tracing::info!(key_id = %s.metadata.id, days = s.pending_window_days, "key deletion scheduled");
        Ok(json!({
            "KeyId": s.metadata.arn(),
            "DeletionDate": date(s.deletion_date),
            "KeyState": s.metadata.state.aws_name(),
            "PendingWindowInDays": s.pending_window_days,
        }))
    }

    pub(super) fn cancel_key_deletion(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let meta = self.kms.cancel_key_deletion(self.account, &i.key_id)?;
        Ok(json!({ "KeyId": meta.arn() }))
    }
}
