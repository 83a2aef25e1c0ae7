//! AWS KMS JSON 1.1 operations: request shapes in, core call, response shapes out.
//! Names and members follow the AWS KMS service model (botocore's service-2.json).

use std::collections::BTreeMap;

use keyfence_core::model::{Alias, KeyMetadata};
use keyfence_core::service::DataKeySize;
use keyfence_core::{EncryptionContext, Kms};
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire::{b64, date, parse, Blob};
use super::ApiError;

/// One KMS operation: its wire name, where it runs, whether it honours
/// `DryRun`, and its handler. [`OPERATIONS`] holds one row per operation; the
/// dispatcher and the metrics labels both read it.
pub struct Operation {
    /// The name in `X-Amz-Target: TrentService.<name>`, also its metrics label.
    pub name: &'static str,
    /// Whether it may block its thread, and so runs on the blocking pool
    /// instead of an async worker.
    pub runs: Runs,
    /// Whether its request has a `DryRun` member (every such operation is free
    /// of side effects here, so a dry run is the real checks without a result).
    pub dry_run: bool,
    handler: Handler,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("runs", &self.runs)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Parses the body into the operation's input and runs it.
type Handler = fn(&Ops<'_>, &[u8]) -> Result<Value, ApiError>;

/// Where an operation runs. Writes and CPU-heavy work (key generation, RSA and
/// ML-DSA private-key operations) go to the blocking pool, so that one slow
/// request cannot stall the other connections of an async worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// On the async worker: no durable write, little CPU.
    Worker,
    /// On the blocking pool: a durable write or key generation.
    BlockingPool,
    /// On the blocking pool when a key the request names is CPU-heavy
    /// ([`Kms::is_cpu_heavy_key`]), on the worker otherwise (the symmetric and
    /// elliptic-curve common path pays no thread hand-off).
    BlockingPoolForHeavyKeys,
}

/// Short names for the table.
const WORKER: Runs = Runs::Worker;
const BLOCKING: Runs = Runs::BlockingPool;
const HEAVY_KEY: Runs = Runs::BlockingPoolForHeavyKeys;
/// Honours `DryRun`.
const DRY_RUN: bool = true;
/// Has no `DryRun` member.
const NO_DRY_RUN: bool = false;

const fn op(name: &'static str, runs: Runs, dry_run: bool, handler: Handler) -> Operation {
    Operation {
        name,
        runs,
        dry_run,
        handler,
    }
}

/// Every operation this node serves, one row each.
pub static OPERATIONS: &[Operation] = &[
    // Key lifecycle.
    op("CreateKey", BLOCKING, NO_DRY_RUN, |o, b| {
        o.create_key(parse(b)?)
    }),
    op("DescribeKey", WORKER, NO_DRY_RUN, |o, b| {
        o.describe_key(parse(b)?)
    }),
    op("ListKeys", WORKER, NO_DRY_RUN, |o, b| {
        o.list_keys(parse(b)?)
    }),
    op("UpdateKeyDescription", BLOCKING, NO_DRY_RUN, |o, b| {
        o.update_key_description(parse(b)?)
    }),
    op("EnableKey", BLOCKING, NO_DRY_RUN, |o, b| {
        o.key_only(parse(b)?, Kms::enable_key)
    }),
    op("DisableKey", BLOCKING, NO_DRY_RUN, |o, b| {
        o.key_only(parse(b)?, Kms::disable_key)
    }),
    op("ScheduleKeyDeletion", BLOCKING, NO_DRY_RUN, |o, b| {
        o.schedule_key_deletion(parse(b)?)
    }),
    op("CancelKeyDeletion", BLOCKING, NO_DRY_RUN, |o, b| {
        o.cancel_key_deletion(parse(b)?)
    }),
    // Aliases.
    op("CreateAlias", BLOCKING, NO_DRY_RUN, |o, b| {
        o.alias(parse(b)?, Kms::create_alias)
    }),
    op("UpdateAlias", BLOCKING, NO_DRY_RUN, |o, b| {
        o.alias(parse(b)?, Kms::update_alias)
    }),
    op("DeleteAlias", BLOCKING, NO_DRY_RUN, |o, b| {
        o.delete_alias(parse(b)?)
    }),
    op("ListAliases", WORKER, NO_DRY_RUN, |o, b| {
        o.list_aliases(parse(b)?)
    }),
    // Symmetric cryptography and data keys.
    op("Encrypt", WORKER, DRY_RUN, |o, b| o.encrypt(parse(b)?)),
    op("Decrypt", HEAVY_KEY, DRY_RUN, |o, b| o.decrypt(parse(b)?)),
    op("ReEncrypt", HEAVY_KEY, DRY_RUN, |o, b| {
        o.re_encrypt(parse(b)?)
    }),
    op("GenerateDataKey", WORKER, DRY_RUN, |o, b| {
        o.generate_data_key(parse(b)?, true)
    }),
    op(
        "GenerateDataKeyWithoutPlaintext",
        WORKER,
        DRY_RUN,
        |o, b| o.generate_data_key(parse(b)?, false),
    ),
    op("GenerateRandom", WORKER, NO_DRY_RUN, |o, b| {
        o.generate_random(parse(b)?)
    }),
    // Rotation.
    op("EnableKeyRotation", BLOCKING, NO_DRY_RUN, |o, b| {
        o.enable_key_rotation(parse(b)?)
    }),
    op("DisableKeyRotation", BLOCKING, NO_DRY_RUN, |o, b| {
        o.key_only(parse(b)?, Kms::disable_key_rotation)
    }),
    op("GetKeyRotationStatus", WORKER, NO_DRY_RUN, |o, b| {
        o.get_key_rotation_status(parse(b)?)
    }),
    op("RotateKeyOnDemand", BLOCKING, NO_DRY_RUN, |o, b| {
        o.rotate_key_on_demand(parse(b)?)
    }),
    op("ListKeyRotations", WORKER, NO_DRY_RUN, |o, b| {
        o.list_key_rotations(parse(b)?)
    }),
    // Tags.
    op("TagResource", BLOCKING, NO_DRY_RUN, |o, b| {
        o.tag_resource(parse(b)?)
    }),
    op("UntagResource", BLOCKING, NO_DRY_RUN, |o, b| {
        o.untag_resource(parse(b)?)
    }),
    op("ListResourceTags", WORKER, NO_DRY_RUN, |o, b| {
        o.list_resource_tags(parse(b)?)
    }),
    // Asymmetric, HMAC and KEM keys.
    op("Sign", HEAVY_KEY, DRY_RUN, |o, b| o.sign(parse(b)?)),
    op("Verify", WORKER, DRY_RUN, |o, b| o.verify(parse(b)?)),
    op("GetPublicKey", WORKER, NO_DRY_RUN, |o, b| {
        o.get_public_key(parse(b)?)
    }),
    op("GenerateMac", WORKER, DRY_RUN, |o, b| {
        o.generate_mac(parse(b)?)
    }),
    op("VerifyMac", WORKER, DRY_RUN, |o, b| o.verify_mac(parse(b)?)),
    op("Encapsulate", WORKER, DRY_RUN, |o, b| {
        o.encapsulate(parse(b)?)
    }),
    op("Decapsulate", WORKER, DRY_RUN, |o, b| {
        o.decapsulate(parse(b)?)
    }),
    op("DeriveSharedSecret", WORKER, DRY_RUN, |o, b| {
        o.derive_shared_secret(parse(b)?)
    }),
    op("GenerateDataKeyPair", BLOCKING, DRY_RUN, |o, b| {
        o.generate_data_key_pair(parse(b)?, true)
    }),
    op(
        "GenerateDataKeyPairWithoutPlaintext",
        BLOCKING,
        DRY_RUN,
        |o, b| o.generate_data_key_pair(parse(b)?, false),
    ),
    // Imported key material.
    op("GetParametersForImport", BLOCKING, NO_DRY_RUN, |o, b| {
        o.get_parameters_for_import(parse(b)?)
    }),
    op("ImportKeyMaterial", BLOCKING, NO_DRY_RUN, |o, b| {
        o.import_key_material(parse(b)?)
    }),
    op("DeleteImportedKeyMaterial", BLOCKING, NO_DRY_RUN, |o, b| {
        o.delete_imported_key_material(parse(b)?)
    }),
];

/// The row of `name`, if this node serves it.
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// UnknownOperationException for a name no row has.
pub fn unknown_operation(name: &str) -> ApiError {
    ApiError::new(
        "UnknownOperationException",
        format!("Operation {name} is not supported by keyfence"),
    )
}

/// The members through which a request may name the key it uses.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NamedKeys {
    key_id: Option<String>,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
}

/// Whether this request runs on the blocking pool (see [`Runs`]). A body that
/// does not parse runs on the worker, where it is refused at once.
pub fn runs_on_blocking_pool(kms: &Kms, account: &str, operation: &Operation, body: &[u8]) -> bool {
    match operation.runs {
        Runs::Worker => false,
        Runs::BlockingPool => true,
        Runs::BlockingPoolForHeavyKeys => serde_json::from_slice::<NamedKeys>(body)
            .ok()
            .is_some_and(|n| {
                [n.key_id, n.source_key_id, n.destination_key_id]
                    .iter()
                    .flatten()
                    .any(|k| kms.is_cpu_heavy_key(account, k))
            }),
    }
}

#[derive(Deserialize)]
struct DryRunFlag {
    #[serde(rename = "DryRun")]
    dry_run: Option<bool>,
}

/// Whether the request asks for a dry run (only looked for when the body names it).
fn is_dry_run(operation: &Operation, body: &[u8]) -> Result<bool, ApiError> {
    if !operation.dry_run || !body.windows(6).any(|w| w == b"DryRun") {
        return Ok(false);
    }
    Ok(parse::<DryRunFlag>(body)?.dry_run.unwrap_or(false))
}

/// Runs one operation for a caller in `account`, returning the response document.
/// With `DryRun`, every check runs and success is reported as DryRunOperationException.
pub fn handle(
    kms: &Kms,
    account: &str,
    operation: &Operation,
    body: &[u8],
) -> Result<Value, ApiError> {
    let dry_run = is_dry_run(operation, body)?;
    let result = (operation.handler)(&Ops { kms, account }, body);
    match result {
        Ok(_) if dry_run => Err(ApiError {
            status: 412,
            code: "DryRunOperationException",
            message: "The request would have succeeded, but the DryRun option is set.".into(),
        }),
        other => other,
    }
}

type Context = Option<BTreeMap<String, String>>;

fn context(c: Context) -> Result<EncryptionContext, ApiError> {
    Ok(EncryptionContext::new(c.unwrap_or_default())?)
}

fn required_blob(b: Option<Blob>, member: &str) -> Result<Blob, ApiError> {
    b.ok_or_else(|| ApiError::validation(format!("missing field `{member}`")))
}

/// The KeyMetadata structure of DescribeKey/CreateKey.
pub fn key_metadata(m: &KeyMetadata) -> Value {
    let mut v = json!({
        "AWSAccountId": m.account,
        "KeyId": m.id.to_string(),
        "Arn": m.arn(),
        "CreationDate": date(m.created),
        "Enabled": m.state == keyfence_core::KeyState::Enabled,
        "Description": m.description,
        "KeyUsage": m.usage.aws_name(),
        "KeyState": m.state.as_str(),
        "Origin": m.origin.as_str(),
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": m.spec.as_str(),
        "KeySpec": m.spec.as_str(),
        "MultiRegion": false,
    });
    if let Some(d) = m.deletion_date {
        v["DeletionDate"] = date(d);
    }
    algorithm_lists(&mut v, m);
    if let Some(import) = &m.import {
        if let Some(model) = import.expiration_model {
            v["ExpirationModel"] = json!(model.as_str());
        }
        if let Some(t) = import.valid_to {
            v["ValidTo"] = date(t);
        }
    }
    if let Some(w) = m.pending_window_days {
        v["PendingDeletionWindowInDays"] = json!(w);
    }
    v
}

/// The algorithm lists AWS returns for a key's usage (KeyMetadata and GetPublicKey).
fn algorithm_lists(v: &mut Value, m: &KeyMetadata) {
    use keyfence_core::model::KeyUsage;
    match (m.usage, m.spec.asymmetric()) {
        (KeyUsage::EncryptDecrypt, _) => {
            v["EncryptionAlgorithms"] = json!(m.spec.encryption_algorithms())
        }
        (KeyUsage::SignVerify, Some(s)) => {
            v["SigningAlgorithms"] = json!(s
                .signing_algorithms()
                .iter()
                .map(|a| a.aws_name())
                .collect::<Vec<_>>())
        }
        (KeyUsage::GenerateVerifyMac, Some(s)) => {
            v["MacAlgorithms"] = json!(s
                .mac_algorithms()
                .iter()
                .map(|a| a.aws_name())
                .collect::<Vec<_>>())
        }
        (KeyUsage::KeyAgreement, Some(s)) => {
            v["KeyAgreementAlgorithms"] = json!(s
                .key_agreement_algorithms()
                .iter()
                .map(|a| a.aws_name())
                .collect::<Vec<_>>())
        }
        (KeyUsage::EncapsulateDecapsulate, Some(_)) => {
            v["EncapsulationAlgorithms"] = json!(["ML_KEM"])
        }
        _ => {}
    }
}

fn alias_entry(kms: &Kms, a: &Alias) -> Value {
    json!({
        "AliasName": a.name.as_str(),
        "AliasArn": keyfence_core::ids::alias_arn(kms.region(), &a.account, &a.name),
        "TargetKeyId": a.target.to_string(),
        "CreationDate": date(a.created),
        "LastUpdatedDate": date(a.updated),
    })
}

fn paged(mut v: Value, member: &str, items: Vec<Value>, next: Option<String>) -> Value {
    v[member] = Value::Array(items);
    v["Truncated"] = json!(next.is_some());
    if let Some(m) = next {
        v["NextMarker"] = json!(m);
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    tag_key: String,
    tag_value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdInput {
    key_id: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyInput {
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
struct DescribeKeyInput {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyListInput {
    key_id: String,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAliasesInput {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateKeyDescriptionInput {
    key_id: String,
    description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleKeyDeletionInput {
    key_id: String,
    pending_window_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasInput {
    alias_name: String,
    target_key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteAliasInput {
    alias_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptInput {
    key_id: String,
    plaintext: Option<Blob>,
    encryption_context: Context,
    encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptInput {
    ciphertext_blob: Option<Blob>,
    encryption_context: Context,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptInput {
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
struct GenerateDataKeyInput {
    key_id: String,
    encryption_context: Context,
    number_of_bytes: Option<i64>,
    key_spec: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateRandomInput {
    number_of_bytes: Option<i64>,
    custom_key_store_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnableKeyRotationInput {
    key_id: String,
    rotation_period_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    key_id: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    key_id: String,
    tag_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SignInput {
    key_id: String,
    message: Option<Blob>,
    message_type: Option<String>,
    signing_algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyInput {
    key_id: String,
    message: Option<Blob>,
    message_type: Option<String>,
    signature: Option<Blob>,
    signing_algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MacInput {
    key_id: String,
    message: Option<Blob>,
    mac_algorithm: String,
    mac: Option<Blob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncapsulateInput {
    key_id: String,
    encapsulation_algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecapsulateInput {
    key_id: String,
    shared_secret_ciphertext_blob: Option<Blob>,
    encapsulation_algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeriveSharedSecretInput {
    key_id: String,
    key_agreement_algorithm: String,
    public_key: Option<Blob>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyPairInput {
    key_id: String,
    key_pair_spec: String,
    encryption_context: Context,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetParametersForImportInput {
    key_id: String,
    wrapping_algorithm: String,
    wrapping_key_spec: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImportKeyMaterialInput {
    key_id: String,
    import_token: Option<Blob>,
    encrypted_key_material: Option<Blob>,
    valid_to: Option<f64>,
    expiration_model: Option<String>,
    import_type: Option<String>,
}

fn no_recipient(recipient: &Option<Value>) -> Result<(), ApiError> {
    if recipient.is_some() {
        return Err(ApiError::new(
            "UnsupportedOperationException",
            "Recipient (Nitro Enclaves attestation) is not supported by keyfence",
        ));
    }
    Ok(())
}

struct Ops<'a> {
    kms: &'a Kms,
    account: &'a str,
}

impl Ops<'_> {
    fn create_key(&self, i: CreateKeyInput) -> Result<Value, ApiError> {
        if i.multi_region == Some(true) {
            return Err(ApiError::new(
                "UnsupportedOperationException",
                "Multi-Region keys are not supported by keyfence",
            ));
        }
        if i.key_spec.is_some() && i.customer_master_key_spec.is_some() {
            return Err(ApiError::validation(
                "KeySpec and CustomerMasterKeySpec cannot both be specified",
            ));
        }
        let meta = self.kms.create_key(
            self.account,
            keyfence_core::service::CreateKeyInput {
                description: i.description,
                key_spec: i.key_spec.or(i.customer_master_key_spec),
                key_usage: i.key_usage,
                origin: i.origin,
                tags: i
                    .tags
                    .into_iter()
                    .map(|t| (t.tag_key, t.tag_value))
                    .collect(),
            },
        )?;
        tracing::info!(key_id = %meta.id, account = self.account, "key created");
        Ok(json!({ "KeyMetadata": key_metadata(&meta) }))
    }

    fn describe_key(&self, i: DescribeKeyInput) -> Result<Value, ApiError> {
        let meta = self.kms.describe_key(self.account, &i.key_id)?;
        Ok(json!({ "KeyMetadata": key_metadata(&meta) }))
    }

    fn list_keys(&self, i: ListInput) -> Result<Value, ApiError> {
        let page = self
            .kms
            .list_keys(self.account, i.limit, i.marker.as_deref())?;
        let items = page
            .items
            .iter()
            .map(|k| json!({"KeyId": k.id.to_string(), "KeyArn": k.arn()}))
            .collect();
        Ok(paged(json!({}), "Keys", items, page.next_marker))
    }

    fn update_key_description(&self, i: UpdateKeyDescriptionInput) -> Result<Value, ApiError> {
        self.kms
            .update_key_description(self.account, &i.key_id, &i.description)?;
        Ok(json!({}))
    }

    fn key_only(
        &self,
        i: KeyIdInput,
        op: impl FnOnce(&Kms, &str, &str) -> Result<(), keyfence_core::KmsError>,
    ) -> Result<Value, ApiError> {
        op(self.kms, self.account, &i.key_id)?;
        Ok(json!({}))
    }

    fn schedule_key_deletion(&self, i: ScheduleKeyDeletionInput) -> Result<Value, ApiError> {
        let s =
            self.kms
                .schedule_key_deletion(self.account, &i.key_id, i.pending_window_in_days)?;
        tracing::info!(key_id = %s.metadata.id, days = s.pending_window_days, "key deletion scheduled");
        Ok(json!({
            "KeyId": s.metadata.arn(),
            "DeletionDate": date(s.deletion_date),
            "KeyState": s.metadata.state.as_str(),
            "PendingWindowInDays": s.pending_window_days,
        }))
    }

    fn cancel_key_deletion(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let meta = self.kms.cancel_key_deletion(self.account, &i.key_id)?;
        Ok(json!({ "KeyId": meta.arn() }))
    }

    fn alias(
        &self,
        i: AliasInput,
        op: impl FnOnce(&Kms, &str, &str, &str) -> Result<(), keyfence_core::KmsError>,
    ) -> Result<Value, ApiError> {
        op(self.kms, self.account, &i.alias_name, &i.target_key_id)?;
        Ok(json!({}))
    }

    fn delete_alias(&self, i: DeleteAliasInput) -> Result<Value, ApiError> {
        self.kms.delete_alias(self.account, &i.alias_name)?;
        Ok(json!({}))
    }

    fn list_aliases(&self, i: ListAliasesInput) -> Result<Value, ApiError> {
        let page = self.kms.list_aliases(
            self.account,
            i.key_id.as_deref(),
            i.limit,
            i.marker.as_deref(),
        )?;
        let items = page
            .items
            .iter()
            .map(|a| alias_entry(self.kms, a))
            .collect();
        Ok(paged(json!({}), "Aliases", items, page.next_marker))
    }

    fn encrypt(&self, i: EncryptInput) -> Result<Value, ApiError> {
        let plaintext = required_blob(i.plaintext, "Plaintext")?;
        let out = self.kms.encrypt(
            self.account,
            &i.key_id,
            &plaintext.0,
            &context(i.encryption_context)?,
            i.encryption_algorithm.as_deref(),
        )?;
        Ok(json!({
            "CiphertextBlob": b64(&out.ciphertext),
            "KeyId": out.key_arn,
            "EncryptionAlgorithm": out.algorithm,
        }))
    }

    fn decrypt(&self, i: DecryptInput) -> Result<Value, ApiError> {
        let blob = required_blob(i.ciphertext_blob, "CiphertextBlob")?;
        let out = self.kms.decrypt(
            self.account,
            &blob.0,
            &context(i.encryption_context)?,
            i.key_id.as_deref(),
            i.encryption_algorithm.as_deref(),
        )?;
        Ok(json!({
            "KeyId": out.key_arn,
            "Plaintext": b64(out.plaintext.expose()),
            "EncryptionAlgorithm": out.algorithm,
        }))
    }

    fn re_encrypt(&self, i: ReEncryptInput) -> Result<Value, ApiError> {
        let blob = required_blob(i.ciphertext_blob, "CiphertextBlob")?;
        let out = self.kms.re_encrypt(
            self.account,
            &blob.0,
            &context(i.source_encryption_context)?,
            i.source_key_id.as_deref(),
            &i.destination_key_id,
            &context(i.destination_encryption_context)?,
            i.source_encryption_algorithm.as_deref(),
            i.destination_encryption_algorithm.as_deref(),
        )?;
        Ok(json!({
            "CiphertextBlob": b64(&out.ciphertext),
            "SourceKeyId": out.source_key_arn,
            "KeyId": out.key_arn,
            "SourceEncryptionAlgorithm": out.source_algorithm,
            "DestinationEncryptionAlgorithm": out.destination_algorithm,
        }))
    }

    fn generate_data_key(
        &self,
        i: GenerateDataKeyInput,
        with_plaintext: bool,
    ) -> Result<Value, ApiError> {
        let size = DataKeySize::from_request(i.key_spec.as_deref(), i.number_of_bytes)?;
        let out = self.kms.generate_data_key(
            self.account,
            &i.key_id,
            size,
            &context(i.encryption_context)?,
            with_plaintext,
        )?;
        let mut v = json!({ "CiphertextBlob": b64(&out.ciphertext), "KeyId": out.key_arn });
        if let Some(p) = out.plaintext {
            v["Plaintext"] = json!(b64(p.expose()));
        }
        Ok(v)
    }

    fn generate_random(&self, i: GenerateRandomInput) -> Result<Value, ApiError> {
        if i.custom_key_store_id.is_some() {
            return Err(ApiError::new(
                "CustomKeyStoreNotFoundException",
                "keyfence has no custom key stores",
            ));
        }
        let bytes = self.kms.generate_random(i.number_of_bytes)?;
        Ok(json!({ "Plaintext": b64(&bytes) }))
    }

    fn enable_key_rotation(&self, i: EnableKeyRotationInput) -> Result<Value, ApiError> {
        self.kms
            .enable_key_rotation(self.account, &i.key_id, i.rotation_period_in_days)?;
        Ok(json!({}))
    }

    fn get_key_rotation_status(&self, i: KeyIdInput) -> Result<Value, ApiError> {
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

    fn rotate_key_on_demand(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let meta = self.kms.rotate_key_on_demand(self.account, &i.key_id)?;
        tracing::info!(key_id = %meta.id, version = meta.current_version, "key rotated on demand");
        Ok(json!({ "KeyId": meta.arn() }))
    }

    fn list_key_rotations(&self, i: KeyListInput) -> Result<Value, ApiError> {
        let (meta, page) =
            self.kms
                .list_key_rotations(self.account, &i.key_id, i.limit, i.marker.as_deref())?;
        let items = page
            .items
            .iter()
            .map(|r| json!({"KeyId": meta.arn(), "RotationDate": date(r.date), "RotationType": r.kind.as_str()}))
            .collect();
        Ok(paged(json!({}), "Rotations", items, page.next_marker))
    }

    fn tag_resource(&self, i: TagResourceInput) -> Result<Value, ApiError> {
        let tags = i
            .tags
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect();
        self.kms.tag_resource(self.account, &i.key_id, tags)?;
        Ok(json!({}))
    }

    fn untag_resource(&self, i: UntagResourceInput) -> Result<Value, ApiError> {
        self.kms
            .untag_resource(self.account, &i.key_id, &i.tag_keys)?;
        Ok(json!({}))
    }

    fn list_resource_tags(&self, i: KeyListInput) -> Result<Value, ApiError> {
        let page =
            self.kms
                .list_resource_tags(self.account, &i.key_id, i.limit, i.marker.as_deref())?;
        let items = page
            .items
            .iter()
            .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
            .collect();
        Ok(paged(json!({}), "Tags", items, page.next_marker))
    }

    fn sign(&self, i: SignInput) -> Result<Value, ApiError> {
        let message = required_blob(i.message, "Message")?;
        let out = self.kms.sign(
            self.account,
            &i.key_id,
            &message.0,
            i.message_type.as_deref(),
            &i.signing_algorithm,
        )?;
        Ok(json!({
            "KeyId": out.key_arn,
            "Signature": b64(&out.signature),
            "SigningAlgorithm": out.algorithm.aws_name(),
        }))
    }

    fn verify(&self, i: VerifyInput) -> Result<Value, ApiError> {
        let message = required_blob(i.message, "Message")?;
        let signature = required_blob(i.signature, "Signature")?;
        let (arn, alg) = self.kms.verify(
            self.account,
            &i.key_id,
            &message.0,
            i.message_type.as_deref(),
            &signature.0,
            &i.signing_algorithm,
        )?;
        Ok(json!({ "KeyId": arn, "SignatureValid": true, "SigningAlgorithm": alg.aws_name() }))
    }

    fn get_public_key(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let (meta, public) = self.kms.get_public_key(self.account, &i.key_id)?;
        let mut v = json!({
            "KeyId": meta.arn(),
            "PublicKey": b64(&public),
            "CustomerMasterKeySpec": meta.spec.as_str(),
            "KeySpec": meta.spec.as_str(),
            "KeyUsage": meta.usage.aws_name(),
        });
        algorithm_lists(&mut v, &meta);
        Ok(v)
    }

    fn generate_mac(&self, i: MacInput) -> Result<Value, ApiError> {
        let message = required_blob(i.message, "Message")?;
        let (arn, mac) =
            self.kms
                .generate_mac(self.account, &i.key_id, &message.0, &i.mac_algorithm)?;
        Ok(json!({ "KeyId": arn, "Mac": b64(&mac), "MacAlgorithm": i.mac_algorithm }))
    }

    fn verify_mac(&self, i: MacInput) -> Result<Value, ApiError> {
        let message = required_blob(i.message, "Message")?;
        let mac = required_blob(i.mac, "Mac")?;
        let arn = self.kms.verify_mac(
            self.account,
            &i.key_id,
            &message.0,
            &mac.0,
            &i.mac_algorithm,
        )?;
        Ok(json!({ "KeyId": arn, "MacValid": true, "MacAlgorithm": i.mac_algorithm }))
    }

    fn encapsulate(&self, i: EncapsulateInput) -> Result<Value, ApiError> {
        let (arn, ciphertext, shared) =
            self.kms
                .encapsulate(self.account, &i.key_id, &i.encapsulation_algorithm)?;
        Ok(json!({
            "KeyId": arn,
            "SharedSecret": b64(shared.expose()),
            "SharedSecretCiphertextBlob": b64(&ciphertext),
            "EncapsulationAlgorithm": i.encapsulation_algorithm,
        }))
    }

    fn decapsulate(&self, i: DecapsulateInput) -> Result<Value, ApiError> {
        let ciphertext = required_blob(
            i.shared_secret_ciphertext_blob,
            "SharedSecretCiphertextBlob",
        )?;
        let (arn, shared) = self.kms.decapsulate(
            self.account,
            &i.key_id,
            &ciphertext.0,
            &i.encapsulation_algorithm,
        )?;
        Ok(json!({
            "KeyId": arn,
            "SharedSecret": b64(shared.expose()),
            "EncapsulationAlgorithm": i.encapsulation_algorithm,
        }))
    }

    fn derive_shared_secret(&self, i: DeriveSharedSecretInput) -> Result<Value, ApiError> {
        no_recipient(&i.recipient)?;
        let public = required_blob(i.public_key, "PublicKey")?;
        let (meta, shared) = self.kms.derive_shared_secret(
            self.account,
            &i.key_id,
            &i.key_agreement_algorithm,
            &public.0,
        )?;
        Ok(json!({
            "KeyId": meta.arn(),
            "SharedSecret": b64(shared.expose()),
            "KeyAgreementAlgorithm": i.key_agreement_algorithm,
            "KeyOrigin": meta.origin.as_str(),
        }))
    }

    fn generate_data_key_pair(
        &self,
        i: GenerateDataKeyPairInput,
        with_plaintext: bool,
    ) -> Result<Value, ApiError> {
        no_recipient(&i.recipient)?;
        let out = self.kms.generate_data_key_pair(
            self.account,
            &i.key_id,
            &i.key_pair_spec,
            &context(i.encryption_context)?,
            with_plaintext,
        )?;
        let mut v = json!({
            "PrivateKeyCiphertextBlob": b64(&out.private_key_ciphertext),
            "PublicKey": b64(&out.public_key),
            "KeyId": out.key_arn,
            "KeyPairSpec": out.spec.aws_name(),
        });
        if let Some(p) = out.private_key {
            v["PrivateKeyPlaintext"] = json!(b64(p.expose()));
        }
        Ok(v)
    }

    fn get_parameters_for_import(&self, i: GetParametersForImportInput) -> Result<Value, ApiError> {
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

    fn import_key_material(&self, i: ImportKeyMaterialInput) -> Result<Value, ApiError> {
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

    fn delete_imported_key_material(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let meta = self
            .kms
            .delete_imported_key_material(self.account, &i.key_id)?;
        tracing::info!(key_id = %meta.id, "imported key material deleted");
        Ok(json!({ "KeyId": meta.arn() }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use keyfence_core::{LocalRootKey, SystemClock};
    use keyfence_crypto::SymmetricKey;
    use keyfence_store::SqliteStore;

    use super::*;

    fn kms(dir: &std::path::Path) -> Kms {
        let store = SqliteStore::open(&dir.join("keyfence.db")).unwrap();
        let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
        Kms::open(Arc::new(store), &root, Arc::new(SystemClock), "us-east-1").unwrap()
    }

    #[test]
    fn table_rows_are_unique_and_found_by_name() {
        let names: HashSet<&str> = OPERATIONS.iter().map(|o| o.name).collect();
        assert_eq!(names.len(), OPERATIONS.len(), "one row per operation");
        for op in OPERATIONS {
            assert!(std::ptr::eq(operation(op.name).unwrap(), op));
        }
        assert!(operation("MadeUpOperation").is_none());
        assert!(operation("encrypt").is_none(), "names are case-sensitive");
    }

    #[test]
    fn every_row_is_dispatched_to_its_handler() {
        let dir = tempfile::tempdir().unwrap();
        let kms = kms(dir.path());
        for op in OPERATIONS {
            // An empty input reaches the handler, which names what is missing
            // (or, for the operations without required members, answers).
            let result = handle(&kms, "111122223333", op, b"{}");
            if let Err(e) = &result {
                assert_ne!(e.code, "UnknownOperationException", "{}", op.name);
                assert!(e.status < 500, "{}: {e:?}", op.name);
            }
        }
    }

    #[test]
    fn heavy_keys_go_to_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let kms = kms(dir.path());
        let account = "111122223333";
        let create = |spec: &str, usage: &str| {
            let meta = kms
                .create_key(
                    account,
                    keyfence_core::service::CreateKeyInput {
                        key_spec: Some(spec.into()),
                        key_usage: Some(usage.into()),
                        ..Default::default()
                    },
                )
                .unwrap();
            meta.id.to_string()
        };
        let rsa_sign = create("RSA_2048", "SIGN_VERIFY");
        let rsa_encrypt = create("RSA_2048", "ENCRYPT_DECRYPT");
        let ml_dsa = create("ML_DSA_44", "SIGN_VERIFY");
        let ecc = create("ECC_NIST_P256", "SIGN_VERIFY");
        let symmetric = create("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT");
        let on_pool = |name: &str, body: Value| {
            runs_on_blocking_pool(
                &kms,
                account,
                operation(name).unwrap(),
                &serde_json::to_vec(&body).unwrap(),
            )
        };
        assert!(on_pool("Sign", json!({"KeyId": rsa_sign})));
        assert!(on_pool("Sign", json!({"KeyId": ml_dsa})));
        assert!(!on_pool("Sign", json!({"KeyId": ecc})));
        assert!(on_pool("Decrypt", json!({"KeyId": rsa_encrypt})));
        assert!(!on_pool("Decrypt", json!({"KeyId": symmetric})));
        assert!(!on_pool("Decrypt", json!({"CiphertextBlob": "AAAA"})));
        assert!(on_pool(
            "ReEncrypt",
            json!({"SourceKeyId": rsa_encrypt, "DestinationKeyId": symmetric})
        ));
        assert!(on_pool(
            "ReEncrypt",
            json!({"DestinationKeyId": rsa_encrypt})
        ));
        assert!(!on_pool(
            "ReEncrypt",
            json!({"DestinationKeyId": symmetric})
        ));
        assert!(
            !on_pool("Sign", json!({"KeyId": 7})),
            "unparsable: refused on the worker"
        );
        assert!(!on_pool("Encrypt", json!({"KeyId": rsa_encrypt})));
        assert!(on_pool("GenerateDataKeyPair", json!({"KeyId": symmetric})));
        assert!(on_pool("CreateKey", json!({})));
        assert!(!on_pool(
            "Sign",
            json!({"KeyId": rsa_sign.replace('-', "")})
        ));
    }
}
