//! Asymmetric, HMAC and KEM keys: Sign, Verify, GetPublicKey, GenerateMac,
//! VerifyMac, Encapsulate, Decapsulate, DeriveSharedSecret,
//! GenerateDataKeyPair(WithoutPlaintext).

use keyfence_crypto::asym::{
    self, KeyAgreementAlgorithm, MacAlgorithm, MessageType, SigningAlgorithm,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::algorithm_lists;
use super::{context, required_blob, Context, KeyIdInput, Ops};
use crate::api::messages;
use crate::api::names::{aws_names, AwsName, ML_KEM};
use crate::api::wire::{b64, Blob};
use crate::api::ApiError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SignInput {
    key_id: String,
    message: Option<Blob>,
    message_type: Option<String>,
    signing_algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct VerifyInput {
    key_id: String,
    message: Option<Blob>,
    message_type: Option<String>,
    signature: Option<Blob>,
    signing_algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct MacInput {
    key_id: String,
    message: Option<Blob>,
    mac_algorithm: String,
    mac: Option<Blob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EncapsulateInput {
    key_id: String,
    encapsulation_algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DecapsulateInput {
    key_id: String,
    shared_secret_ciphertext_blob: Option<Blob>,
    encapsulation_algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeriveSharedSecretInput {
    key_id: String,
    key_agreement_algorithm: String,
    public_key: Option<Blob>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GenerateDataKeyPairInput {
    key_id: String,
    key_pair_spec: String,
    encryption_context: Context,
    recipient: Option<Value>,
}

fn signing_algorithm(name: &str) -> Result<SigningAlgorithm, ApiError> {
    SigningAlgorithm::from_aws_name(name)
        .ok_or_else(|| messages::not_in_enum(name, "signingAlgorithm"))
}

/// MessageType, RAW when absent.
fn message_type(name: Option<&str>) -> Result<MessageType, ApiError> {
    let Some(name) = name else {
        return Ok(MessageType::Raw);
    };
    MessageType::from_aws_name(name).ok_or_else(|| {
        messages::not_in_enum_of(
            name,
            "messageType",
            &aws_names(MessageType::ALL.iter().copied()),
        )
    })
}

fn mac_algorithm(name: &str) -> Result<MacAlgorithm, ApiError> {
    MacAlgorithm::from_aws_name(name).ok_or_else(|| messages::unknown_mac_algorithm(name))
}

fn check_kem_algorithm(name: &str) -> Result<(), ApiError> {
    if name != ML_KEM {
        return Err(messages::not_in_enum_of(
            name,
            "encapsulationAlgorithm",
            &[ML_KEM],
        ));
    }
    Ok(())
}

/// A KeyPairSpec (AWS `DataKeyPairSpec`) keyfence generates.
fn data_key_pair_spec(name: &str) -> Result<asym::KeySpec, ApiError> {
    asym::KeySpec::from_aws_name(name)
        .filter(asym::KeySpec::is_data_key_pair_spec)
        .ok_or_else(|| match name {
            "SM2" => messages::sm2_key_pair_spec(),
            "ML_KEM_512" | "ML_KEM_768" | "ML_KEM_1024" => messages::ml_kem_key_pair_spec(name),
            other => messages::not_in_enum(other, "keyPairSpec"),
        })
}

impl Ops<'_> {
    pub(super) fn sign(&self, i: SignInput) -> Result<Value, ApiError> {
        let message = required_blob(i.message, "Message")?;
        let out = self.kms.sign(
            self.account,
            &i.key_id,
            &message.0,
            message_type(i.message_type.as_deref())?,
            signing_algorithm(&i.signing_algorithm)?,
        )?;
        Ok(json!({
            "KeyId": out.key_arn,
            "Signature": b64(&out.signature),
            "SigningAlgorithm": out.algorithm.aws_name(),
        }))
    }

    pub(super) fn verify(&self, i: VerifyInput) -> Result<Value, ApiError> {
        let message = required_blob(i.message, "Message")?;
        let signature = required_blob(i.signature, "Signature")?;
        let (arn, alg) = self.kms.verify(
            self.account,
            &i.key_id,
            &message.0,
            message_type(i.message_type.as_deref())?,
            &signature.0,
            signing_algorithm(&i.signing_algorithm)?,
        )?;
        Ok(json!({ "KeyId": arn, "SignatureValid": true, "SigningAlgorithm": alg.aws_name() }))
    }

    pub(super) fn get_public_key(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let (meta, public) = self.kms.get_public_key(self.account, &i.key_id)?;
        let mut v = json!({
            "KeyId": meta.arn(),
            "PublicKey": b64(&public),
            "CustomerMasterKeySpec": meta.spec.aws_name(),
            "KeySpec": meta.spec.aws_name(),
            "KeyUsage": meta.usage.aws_name(),
        });
        algorithm_lists(&mut v, &meta);
        Ok(v)
    }

    pub(super) fn generate_mac(&self, i: MacInput) -> Result<Value, ApiError> {
        let message = required_blob(i.message, "Message")?;
        let algorithm = mac_algorithm(&i.mac_algorithm)?;
        let (arn, mac) = self
            .kms
            .generate_mac(self.account, &i.key_id, &message.0, algorithm)?;
        Ok(json!({ "KeyId": arn, "Mac": b64(&mac), "MacAlgorithm": i.mac_algorithm }))
    }

    pub(super) fn verify_mac(&self, i: MacInput) -> Result<Value, ApiError> {
        let message = required_blob(i.message, "Message")?;
        let mac = required_blob(i.mac, "Mac")?;
        let algorithm = mac_algorithm(&i.mac_algorithm)?;
        let arn = self
            .kms
            .verify_mac(self.account, &i.key_id, &message.0, &mac.0, algorithm)?;
        Ok(json!({ "KeyId": arn, "MacValid": true, "MacAlgorithm": i.mac_algorithm }))
    }

    pub(super) fn encapsulate(&self, i: EncapsulateInput) -> Result<Value, ApiError> {
        check_kem_algorithm(&i.encapsulation_algorithm)?;
        let (arn, ciphertext, shared) = self.kms.encapsulate(self.account, &i.key_id)?;
        Ok(json!({
            "KeyId": arn,
            "SharedSecret": b64(shared.expose()),
            "SharedSecretCiphertextBlob": b64(&ciphertext),
            "EncapsulationAlgorithm": i.encapsulation_algorithm,
        }))
    }

    pub(super) fn decapsulate(&self, i: DecapsulateInput) -> Result<Value, ApiError> {
        let ciphertext = required_blob(
            i.shared_secret_ciphertext_blob,
            "SharedSecretCiphertextBlob",
        )?;
        check_kem_algorithm(&i.encapsulation_algorithm)?;
        let (arn, shared) = self
            .kms
            .decapsulate(self.account, &i.key_id, &ciphertext.0)?;
        Ok(json!({
            "KeyId": arn,
            "SharedSecret": b64(shared.expose()),
            "EncapsulationAlgorithm": i.encapsulation_algorithm,
        }))
    }

    pub(super) fn derive_shared_secret(
        &self,
        i: DeriveSharedSecretInput,
    ) -> Result<Value, ApiError> {
        messages::no_recipient(i.recipient.as_ref())?;
        let public = required_blob(i.public_key, "PublicKey")?;
        let algorithm = KeyAgreementAlgorithm::from_aws_name(&i.key_agreement_algorithm)
            .ok_or_else(|| {
                messages::not_in_enum_of(
                    &i.key_agreement_algorithm,
                    "keyAgreementAlgorithm",
                    &aws_names(KeyAgreementAlgorithm::ALL.iter().copied()),
                )
            })?;
        let (meta, shared) =
            self.kms
                .derive_shared_secret(self.account, &i.key_id, algorithm, &public.0)?;
        Ok(json!({
            "KeyId": meta.arn(),
            "SharedSecret": b64(shared.expose()),
            "KeyAgreementAlgorithm": i.key_agreement_algorithm,
            "KeyOrigin": meta.origin.aws_name(),
        }))
    }

    pub(super) fn generate_data_key_pair(
        &self,
        i: GenerateDataKeyPairInput,
        with_plaintext: bool,
    ) -> Result<Value, ApiError> {
        messages::no_recipient(i.recipient.as_ref())?;
        let context = context(i.encryption_context)?;
        let spec = data_key_pair_spec(&i.key_pair_spec)?;
        let out = self.kms.generate_data_key_pair(
            self.account,
            &i.key_id,
            spec,
            &context,
            with_plaintext,
        )?;
        let mut v = json!({
            "PrivateKeyCiphertextBlob": b64(&out.private_key_ciphertext),
            "PublicKey": b64(&out.public_key),
            "KeyId": out.key_arn,
            "KeyPairSpec": out.spec.aws_name(),
        });
        super::crypto::set_material_id(&mut v, "KeyMaterialId", out.key_material_id);
        if let Some(p) = out.private_key {
            v["PrivateKeyPlaintext"] = json!(b64(p.expose()));
        }
        Ok(v)
    }
}
