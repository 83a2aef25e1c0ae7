//! Rotation: EnableKeyRotation, DisableKeyRotation (through `key_only`),
//! GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations.

use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::paged;
use super::{KeyIdInput, KeyListInput, Ops};
use crate::api::names::AwsName;
use crate::api::wire::date;
use crate::api::ApiError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EnableKeyRotationInput {
    key_id: String,
    rotation_period_in_days: Option<i64>,
}

impl Ops<'_> {
    pub(super) fn enable_key_rotation(&self, i: EnableKeyRotationInput) -> Result<Value, ApiError> {
        self.kms
            .enable_key_rotation(self.account, &i.key_id, i.rotation_period_in_days)?;
        Ok(json!({}))
    }

    pub(super) fn get_key_rotation_status(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let s = self.kms.get_key_rotation_status(self.account, &i.key_id)?;
        let mut v = json!({ "KeyRotationEnabled": s.enabled, "KeyId": s.metadata.arn() });
        if let Some(p) = s.period_days {
            v["RotationPeriodInDays"] = json!(p);
        }
        if let Some(n) = s.next_rotation {
            v["NextRotationDate"] = date(n);
        }
        Ok(v)
    }

    pub(super) fn rotate_key_on_demand(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let meta = self.kms.rotate_key_on_demand(self.account, &i.key_id)?;
        tracing::info!(key_id = %meta.id, version = meta.current_version, "key rotated on demand");
        Ok(json!({ "KeyId": meta.arn() }))
    }

    pub(super) fn list_key_rotations(&self, i: KeyListInput) -> Result<Value, ApiError> {
        let (meta, page) =
            self.kms
                .list_key_rotations(self.account, &i.key_id, i.limit, i.marker.as_deref())?;
        let items = page
            .items
            .iter()
            .map(|r| json!({"KeyId": meta.arn(), "RotationDate": date(r.date), "RotationType": r.kind.aws_name()}))
            .collect();
        Ok(paged(json!({}), "Rotations", items, page.next_marker))
    }
}
