//! Imported key material: GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{required_blob, KeyIdInput, Ops};
use crate::api::wire::{b64, date, Blob};
use crate::api::ApiError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetParametersForImportInput {
    key_id: String,
    wrapping_algorithm: String,
    wrapping_key_spec: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ImportKeyMaterialInput {
    key_id: String,
    import_token: Option<Blob>,
    encrypted_key_material: Option<Blob>,
    valid_to: Option<f64>,
    expiration_model: Option<String>,
    import_type: Option<String>,
}

impl Ops<'_> {
    pub(super) fn get_parameters_for_import(
        &self,
        i: GetParametersForImportInput,
    ) -> Result<Value, ApiError> {
        let p = self.kms.get_parameters_for_import(
            self.account,
            &i.key_id,
            &i.wrapping_algorithm,
            &i.wrapping_key_spec,
        )?;
        Ok(json!({
            "KeyId": p.key_arn,
            "ImportToken": b64(&p.import_token),
            "PublicKey": b64(&p.public_key),
            "ParametersValidTo": date(p.valid_to),
        }))
    }

    pub(super) fn import_key_material(&self, i: ImportKeyMaterialInput) -> Result<Value, ApiError> {
        if i.import_type
            .as_deref()
            .is_some_and(|t| t != "NEW_KEY_MATERIAL" && t != "EXISTING_KEY_MATERIAL")
        {
            return Err(ApiError::validation(
                "ImportType must be NEW_KEY_MATERIAL or EXISTING_KEY_MATERIAL",
            ));
        }
        let token = required_blob(i.import_token, "ImportToken")?;
        let material = required_blob(i.encrypted_key_material, "EncryptedKeyMaterial")?;
        let valid_to = i
            .valid_to
            .map(|secs| keyfence_core::Timestamp((secs * 1000.0) as i64));
        let meta = self.kms.import_key_material(
            self.account,
            &i.key_id,
            &token.0,
            &material.0,
            valid_to,
            i.expiration_model.as_deref(),
        )?;
        tracing::info!(key_id = %meta.id, "key material imported");
        Ok(json!({ "KeyId": meta.arn() }))
    }

    pub(super) fn delete_imported_key_material(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let meta = self
            .kms
            .delete_imported_key_material(self.account, &i.key_id)?;
        tracing::info!(key_id = %meta.id, "imported key material deleted");
        Ok(json!({ "KeyId": meta.arn() }))
    }
}
