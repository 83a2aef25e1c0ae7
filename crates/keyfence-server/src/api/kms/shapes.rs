//! Response shapes shared by several operations: KeyMetadata, the algorithm
//! lists of a key, alias list entries, paged lists.

use keyfence_core::model::{Alias, KeyMetadata};
use serde_json::{json, Value};

use crate::api::names::{aws_names, AwsName, ML_KEM};
use crate::api::wire::date;

/// The KeyMetadata structure of DescribeKey/CreateKey.
pub(super) fn key_metadata(m: &KeyMetadata) -> Value {
    let mut v = json!({
        "AWSAccountId": m.account,
        "KeyId": m.id.public().to_string(),
        "Arn": m.arn(),
        "CreationDate": date(m.created),
        "Enabled": m.state == keyfence_core::KeyState::Enabled,
        "Description": m.description,
        "KeyUsage": m.usage.aws_name(),
        "KeyState": m.state.aws_name(),
        "Origin": m.origin.aws_name(),
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": m.spec.aws_name(),
        "KeySpec": m.spec.aws_name(),
        "MultiRegion": m.multi_region.is_some(),
    });
    if let Some(d) = m.deletion_date {
        v["DeletionDate"] = date(d);
    }
    // Symmetric encryption keys name their current material, as AWS's do.
    if m.spec == keyfence_core::KeySpec::SymmetricDefault && m.current_version > 0 {
        if let Ok(id) = keyfence_core::KeyMaterialId::of(&m.id, m.current_version) {
            v["CurrentKeyMaterialId"] = json!(id.to_hex());
        }
    }
    algorithm_lists(&mut v, m);
    if let Some(import) = &m.import {
        if let Some(model) = import.expiration_model {
            v["ExpirationModel"] = json!(model.aws_name());
        }
        if let Some(t) = import.valid_to {
            v["ValidTo"] = date(t);
        }
    }
    if let Some(w) = m.pending_window_days {
        v["PendingDeletionWindowInDays"] = json!(w);
    }
    if let Some(f) = &m.fence {
        // keyfence's own member: AWS SDKs drop it, ListResourceTags shows the fence to them.
        v["KeyfenceFence"] = json!({"FenceId": f.id.to_string(), "Policy": f.policy});
    }
    v
}

/// The algorithm lists AWS returns for a key's usage (KeyMetadata and GetPublicKey).
pub(super) fn algorithm_lists(v: &mut Value, m: &KeyMetadata) {
    use keyfence_core::model::KeyUsage;
    match (m.usage, m.spec.asymmetric()) {
        (KeyUsage::EncryptDecrypt, _) => {
            v["EncryptionAlgorithms"] = json!(aws_names(m.spec.encryption_algorithms()))
        }
        (KeyUsage::SignVerify, Some(s)) => {
            v["SigningAlgorithms"] = json!(aws_names(s.signing_algorithms().iter().copied()))
        }
        (KeyUsage::GenerateVerifyMac, Some(s)) => {
            v["MacAlgorithms"] = json!(aws_names(s.mac_algorithms().iter().copied()))
        }
        (KeyUsage::KeyAgreement, Some(s)) => {
            v["KeyAgreementAlgorithms"] =
                json!(aws_names(s.key_agreement_algorithms().iter().copied()))
        }
        (KeyUsage::EncapsulateDecapsulate, Some(_)) => {
            v["EncapsulationAlgorithms"] = json!([ML_KEM])
        }
        _ => {}
    }
}

pub(super) fn alias_entry(a: &Alias) -> Value {
    json!({
        "AliasName": a.name.as_str(),
        "AliasArn": keyfence_core::ids::alias_arn(&a.region, &a.account, &a.name),
        "TargetKeyId": a.target.public().to_string(),
        "CreationDate": date(a.created),
        "LastUpdatedDate": date(a.updated),
    })
}

pub(super) fn paged(mut v: Value, member: &str, items: Vec<Value>, next: Option<String>) -> Value {
    v[member] = Value::Array(items);
    v["Truncated"] = json!(next.is_some());
    if let Some(m) = next {
        v["NextMarker"] = json!(m);
    }
    v
}
