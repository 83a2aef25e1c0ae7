//! Imported key material: GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial.

use keyfence_core::model::{ImportExpiry, ImportType, ImportWrapping};
use keyfence_core::Timestamp;
use keyfence_crypto::asym::{self, WrappingAlgorithm};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{required_blob, Ops};
use crate::api::messages;
use crate::api::names::{AwsName, PQ_WRAPPING_ALGORITHM, PQ_WRAPPING_KEY_SPEC};
use crate::api::wire::{b64, date, Blob};
use crate::api::ApiError;

/// GetParametersForImport's WrappingAlgorithm and WrappingKeySpec.
fn wrapping(algorithm: &str, key_spec: &str) -> Result<ImportWrapping, ApiError> {
    if algorithm == PQ_WRAPPING_ALGORITHM || key_spec == PQ_WRAPPING_KEY_SPEC {
        if (algorithm, key_spec) != (PQ_WRAPPING_ALGORITHM, PQ_WRAPPING_KEY_SPEC) {
            return Err(messages::pq_wrapping_mismatch());
        }
        return Ok(ImportWrapping::XWing);
    }
    let algorithm = WrappingAlgorithm::from_aws_name(algorithm)
        .ok_or_else(|| messages::unsupported_wrapping_algorithm(algorithm))?;
    let spec = asym::KeySpec::from_aws_name(key_spec)
        .filter(asym::KeySpec::is_wrapping_key_spec)
        .ok_or_else(|| messages::unsupported_wrapping_key_spec(key_spec))?;
    Ok(ImportWrapping::Rsa { spec, algorithm })
}

/// ImportKeyMaterial's ValidTo / ExpirationModel pair. The model defaults to
/// KEY_MATERIAL_EXPIRES, as in AWS, so neither member is a missing ValidTo.
fn expiry(valid_to: Option<Timestamp>, model: Option<&str>) -> Result<ImportExpiry, ApiError> {
    let expires = match model {
        None => true,
        Some("KEY_MATERIAL_EXPIRES") => true,
        Some("KEY_MATERIAL_DOES_NOT_EXPIRE") => false,
        Some(other) => return Err(messages::unknown_expiration_model(other)),
    };
    match (expires, valid_to) {
        (true, Some(t)) => Ok(ImportExpiry::At(t)),
        (true, None) => Err(messages::valid_to_required()),
        (false, Some(_)) => Err(messages::valid_to_forbidden()),
        (false, None) => Ok(ImportExpiry::Never),
    }
}

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
    key_material_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteImportedKeyMaterialInput {
    key_id: String,
    key_material_id: Option<String>,
}

/// A KeyMaterialId member: 64 lowercase hex digits (AWS's BackingKeyIdType).
fn check_material_id(id: &str) -> Result<(), ApiError> {
    if id.len() != 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(messages::invalid_material_id(id));
    }
    Ok(())
}

impl Ops<'_> {
    pub(super) fn get_parameters_for_import(
        &self,
        i: GetParametersForImportInput,
    ) -> Result<Value, ApiError> {
        let wrapping = wrapping(&i.wrapping_algorithm, &i.wrapping_key_spec)?;
        let p = self
            .kms
            .get_parameters_for_import(self.account, &i.key_id, wrapping)?;
        Ok(json!({
            "KeyId": p.key_arn,
            "ImportToken": b64(&p.import_token),
            "PublicKey": b64(&p.public_key),
            "ParametersValidTo": date(p.valid_to),
        }))
    }

    pub(super) fn import_key_material(&self, i: ImportKeyMaterialInput) -> Result<Value, ApiError> {
        let import_type = match i.import_type.as_deref() {
            None => None,
            Some("NEW_KEY_MATERIAL") => Some(ImportType::NewKeyMaterial),
            Some("EXISTING_KEY_MATERIAL") => Some(ImportType::ExistingKeyMaterial),
            Some(other) => return Err(messages::not_in_enum(other, "importType")),
        };
        if let Some(id) = i.key_material_id.as_deref() {
            check_material_id(id)?;
        }
        let token = required_blob(i.import_token, "ImportToken")?;
        let material = required_blob(i.encrypted_key_material, "EncryptedKeyMaterial")?;
        let valid_to = i.valid_to.map(|secs| Timestamp((secs * 1000.0) as i64));
        let expiry = expiry(valid_to, i.expiration_model.as_deref())?;
        let (meta, material_id) = self.kms.import_key_material(
            self.account,
            &i.key_id,
            &token.0,
            &material.0,
            expiry,
            import_type,
            i.key_material_id.as_deref(),
        )?;
        tracing::info!(key_id = %meta.id, "key material imported");
        Ok(json!({ "KeyId": meta.arn(), "KeyMaterialId": material_id.to_hex() }))
    }

    pub(super) fn delete_imported_key_material(
        &self,
        i: DeleteImportedKeyMaterialInput,
    ) -> Result<Value, ApiError> {
        if let Some(id) = i.key_material_id.as_deref() {
            check_material_id(id)?;
        }
        let (meta, deleted) = self.kms.delete_imported_key_material(
            self.account,
            &i.key_id,
            i.key_material_id.as_deref(),
        )?;
        tracing::info!(key_id = %meta.id, "imported key material deleted");
        let mut v = json!({ "KeyId": meta.arn() });
        super::crypto::set_material_id(&mut v, "KeyMaterialId", deleted);
        Ok(v)
    }
}
