//! Symmetric cryptography and data keys: Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey(WithoutPlaintext), GenerateRandom.

use keyfence_core::service::DataKeySize;
use keyfence_core::{EncryptionAlgorithm, KeyMaterialId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{context, required_blob, Context, Ops};
use crate::api::messages;
use crate::api::names::{aws_names, AwsName};
use crate::api::wire::{b64, Blob};
use crate::api::ApiError;

/// Sets `member` (`KeyMaterialId`, `SourceKeyMaterialId`, …) to the 64 hex digits of
/// `id`, when the key has one (AWS reports it for symmetric keys only).
pub(super) fn set_material_id(reply: &mut Value, member: &str, id: Option<KeyMaterialId>) {
    if let Some(id) = id {
        reply[member] = json!(id.to_hex());
    }
}

/// An EncryptionAlgorithm member, if given.
fn encryption_algorithm(
    name: Option<&str>,
    member: &str,
) -> Result<Option<EncryptionAlgorithm>, ApiError> {
    name.map(|n| {
        EncryptionAlgorithm::from_aws_name(n).ok_or_else(|| {
            messages::not_in_enum_of(n, member, &aws_names(EncryptionAlgorithm::all()))
        })
    })
    .transpose()
}

/// GenerateDataKey's KeySpec / NumberOfBytes pair: exactly one.
fn data_key_size(
    key_spec: Option<&str>,
    number_of_bytes: Option<i64>,
) -> Result<DataKeySize, ApiError> {
    match (key_spec, number_of_bytes) {
        (Some(_), Some(_)) => Err(messages::data_key_size_twice()),
        (None, None) => Err(messages::data_key_size_missing()),
        (Some("AES_256"), None) => Ok(DataKeySize::Bytes(32)),
        (Some("AES_128"), None) => Ok(DataKeySize::Bytes(16)),
        (Some(other), None) => Err(messages::not_in_enum_of(
            other,
            "keySpec",
            &["AES_256", "AES_128"],
        )),
        (None, Some(n)) => Ok(DataKeySize::number_of_bytes(n)?),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EncryptInput {
    key_id: String,
    plaintext: Option<Blob>,
    encryption_context: Context,
    encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DecryptInput {
    ciphertext_blob: Option<Blob>,
    encryption_context: Context,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReEncryptInput {
    ciphertext_blob: Option<Blob>,
    source_encryption_context: Context,
    source_key_id: Option<String>,
    destination_key_id: String,
    destination_encryption_context: Context,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GenerateDataKeyInput {
    key_id: String,
    encryption_context: Context,
    number_of_bytes: Option<i64>,
    key_spec: Option<String>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GenerateRandomInput {
    number_of_bytes: Option<i64>,
    custom_key_store_id: Option<String>,
    recipient: Option<Value>,
}

impl Ops<'_> {
    pub(super) fn encrypt(&self, i: EncryptInput) -> Result<Value, ApiError> {
        let plaintext = required_blob(i.plaintext, "Plaintext")?;
        let out = self.kms.encrypt(
            self.account,
            &i.key_id,
            &plaintext.0,
            &context(i.encryption_context)?,
            encryption_algorithm(i.encryption_algorithm.as_deref(), "encryptionAlgorithm")?,
        )?;
        Ok(json!({
            "CiphertextBlob": b64(&out.ciphertext),
            "KeyId": out.key_arn,
            "EncryptionAlgorithm": out.algorithm.aws_name(),
        }))
    }

    pub(super) fn decrypt(&self, i: DecryptInput) -> Result<Value, ApiError> {
        let blob = required_blob(i.ciphertext_blob, "CiphertextBlob")?;
        messages::no_recipient(i.recipient.as_ref())?;
        let out = self.kms.decrypt(
            self.account,
            &blob.0,
            &context(i.encryption_context)?,
            i.key_id.as_deref(),
            encryption_algorithm(i.encryption_algorithm.as_deref(), "encryptionAlgorithm")?,
        )?;
        let mut v = json!({
            "KeyId": out.key_arn,
            "Plaintext": b64(out.plaintext.expose()),
            "EncryptionAlgorithm": out.algorithm.aws_name(),
        });
        set_material_id(&mut v, "KeyMaterialId", out.key_material_id);
        Ok(v)
    }

    pub(super) fn re_encrypt(&self, i: ReEncryptInput) -> Result<Value, ApiError> {
        let blob = required_blob(i.ciphertext_blob, "CiphertextBlob")?;
        let out = self.kms.re_encrypt(
            self.account,
            &blob.0,
            &context(i.source_encryption_context)?,
            i.source_key_id.as_deref(),
            &i.destination_key_id,
            &context(i.destination_encryption_context)?,
            encryption_algorithm(
                i.source_encryption_algorithm.as_deref(),
                "sourceEncryptionAlgorithm",
            )?,
            encryption_algorithm(
                i.destination_encryption_algorithm.as_deref(),
                "destinationEncryptionAlgorithm",
            )?,
        )?;
        let mut v = json!({
            "CiphertextBlob": b64(&out.ciphertext),
            "SourceKeyId": out.source_key_arn,
            "KeyId": out.key_arn,
            "SourceEncryptionAlgorithm": out.source_algorithm.aws_name(),
            "DestinationEncryptionAlgorithm": out.destination_algorithm.aws_name(),
        });
        set_material_id(&mut v, "SourceKeyMaterialId", out.source_key_material_id);
        set_material_id(
            &mut v,
            "DestinationKeyMaterialId",
            out.destination_key_material_id,
        );
        Ok(v)
    }

    pub(super) fn generate_data_key(
        &self,
        i: GenerateDataKeyInput,
        with_plaintext: bool,
    ) -> Result<Value, ApiError> {
        let size = data_key_size(i.key_spec.as_deref(), i.number_of_bytes)?;
        messages::no_recipient(i.recipient.as_ref())?;
        let out = self.kms.generate_data_key(
            self.account,
            &i.key_id,
            size,
            &context(i.encryption_context)?,
            with_plaintext,
        )?;
        let mut v = json!({ "CiphertextBlob": b64(&out.ciphertext), "KeyId": out.key_arn });
        set_material_id(&mut v, "KeyMaterialId", out.key_material_id);
        if let Some(p) = out.plaintext {
            v["Plaintext"] = json!(b64(p.expose()));
        }
        Ok(v)
    }

    pub(super) fn generate_random(&self, i: GenerateRandomInput) -> Result<Value, ApiError> {
        messages::no_recipient(i.recipient.as_ref())?;
        if i.custom_key_store_id.is_some() {
            return Err(ApiError::new(
                "CustomKeyStoreNotFoundException",
                "keyfence has no custom key stores",
            ));
        }
        let n = i
            .number_of_bytes
            .ok_or_else(messages::number_of_bytes_required)?;
        let bytes = self.kms.generate_random(n)?;
        Ok(json!({ "Plaintext": b64(&bytes) }))
    }
}
