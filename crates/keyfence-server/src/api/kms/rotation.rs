//! Rotation: EnableKeyRotation, DisableKeyRotation (through `key_only`),
//! GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations.

use keyfence_core::service::{KeyMaterialEntry, KeyMaterialState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::paged;
use super::{KeyIdInput, Ops};
use crate::api::messages;
use crate::api::names::AwsName;
use crate::api::wire::date;
use crate::api::ApiError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EnableKeyRotationInput {
    key_id: String,
    rotation_period_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListKeyRotationsInput {
    key_id: String,
    include_key_material: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
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

    pub(super) fn list_key_rotations(&self, i: ListKeyRotationsInput) -> Result<Value, ApiError> {
        let all = match i.include_key_material.as_deref() {
            None | Some("ROTATIONS_ONLY") => false,
            Some("ALL_KEY_MATERIAL") => true,
            Some(other) => return Err(messages::not_in_enum(other, "includeKeyMaterial")),
        };
        let (meta, page) = self.kms.list_key_rotations(
            self.account,
            &i.key_id,
            all,
            i.limit,
            i.marker.as_deref(),
        )?;
        let items = page
            .items
            .iter()
            .map(|e| material_entry(&meta.arn(), e))
            .collect();
        Ok(paged(json!({}), "Rotations", items, page.next_marker))
    }
}

/// One RotationsListEntry.
fn material_entry(key_arn: &str, e: &KeyMaterialEntry) -> Value {
    let mut v = json!({
        "KeyId": key_arn,
        "KeyMaterialId": e.material_id.to_hex(),
        "KeyMaterialState": match e.state {
            KeyMaterialState::Current => "CURRENT",
            KeyMaterialState::NonCurrent => "NON_CURRENT",
            KeyMaterialState::PendingRotation => "PENDING_ROTATION",
        },
    });
    if let Some(imported) = e.imported {
        v["ImportState"] = json!(if imported {
            "IMPORTED"
        } else {
            "PENDING_IMPORT"
        });
    }
    if let Some(model) = e.expiration_model {
        v["ExpirationModel"] = json!(model.aws_name());
    }
    if let Some(t) = e.valid_to {
        v["ValidTo"] = date(t);
    }
    if let Some(r) = &e.rotation {
        v["RotationDate"] = date(r.date);
        v["RotationType"] = json!(r.kind.aws_name());
    }
    v
}
