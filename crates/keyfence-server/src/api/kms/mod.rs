//! AWS KMS JSON 1.1 operations: request shapes in, core call, response shapes out.
//! Names and members follow the AWS KMS service model (botocore's service-2.json).
//!
//! This module holds the table of operations and the dispatch; each family of
//! operations has its own module with its request shapes and handlers.

mod aliases;
mod asymmetric;
mod authorize;
mod crypto;
mod custom_key_stores;
mod grants;
mod import;
mod keys;
pub mod last_usage;
mod policy;
mod rotation;
mod shapes;
mod tags;

pub use authorize::{Authorized, Origin};

use std::collections::BTreeMap;

use keyfence_core::{EncryptionContext, Kms};
use serde::Deserialize;
use serde_json::Value;

use super::wire::{parse, Blob};
use super::ApiError;
use crate::authz::{Authz, Caller};

/// One KMS operation: its wire name, where it runs, whether it honours
/// `DryRun`, and its handler. [`OPERATIONS`] holds one row per operation; the
/// dispatcher and the metrics labels both read it.
pub struct Operation {
    /// The name in `X-Amz-Target: TrentService.<name>`, also its metrics label.
    pub name: &'static str,
    /// Where it runs: on an async worker, the blocking pool (durable writes)
    /// or the heavy pool (CPU-heavy work); see [`place`].
    pub runs: Runs,
    /// Whether its request has a `DryRun` member (every such operation is free
    /// of side effects here, so a dry run is the real checks without a result).
    pub dry_run: bool,
    /// Whether it is a cryptographic operation on the material of the key it
    /// names, refused at a node where that key is sealed: such a request is
    /// refused there before its authorization is evaluated, and forwarded
    /// ([`authorize::authorize`]).
    pub material: bool,
    handler: Handler,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("runs", &self.runs)
            .field("dry_run", &self.dry_run)
            .field("material", &self.material)
            .finish_non_exhaustive()
    }
}

/// Parses the body into the operation's input and runs it.
type Handler = fn(&Ops<'_>, &[u8]) -> Result<Value, ApiError>;

/// Where an operation runs. Durable writes go to the blocking pool, so that a
/// slow disk cannot stall the other connections of an async worker; CPU-heavy
/// work (RSA and ML-DSA private-key operations, key pair generation) goes to the
/// heavy pool ([`crate::heavy::HeavyPool`]), whose threads yield the CPU to
/// every other request, so that 1 % of slow requests cannot queue the cheap ones
/// behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// On the async worker: no durable write, little CPU.
    Worker,
    /// On the blocking pool: a durable write.
    BlockingPool,
    /// On the heavy pool: key pair generation (RSA ones take tens of ms),
    /// unless the key the request names is fenced away from this node (then
    /// it is refused at once and forwarded, on the worker).
    HeavyPool,
    /// On the heavy pool when a key the request names is CPU-heavy
    /// ([`Kms::is_cpu_heavy_key`]), on the worker otherwise (the symmetric and
    /// elliptic-curve common path pays no thread hand-off).
    HeavyPoolForHeavyKeys,
    /// On the heavy pool when the key spec the request asks for is RSA or
    /// ML-DSA (key generation), on the blocking pool otherwise (CreateKey).
    HeavyPoolForHeavySpecs,
}

/// Where one request runs, decided by [`place`] from its operation's [`Runs`]
/// and its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// On the async worker that read it.
    Worker,
    /// On tokio's blocking pool.
    BlockingPool,
    /// On the node's heavy pool.
    HeavyPool,
}

/// Runs on the worker (short name for the table).
const WORKER: Runs = Runs::Worker;
/// Runs on the blocking pool.
const BLOCKING: Runs = Runs::BlockingPool;
/// Runs on the heavy pool.
const HEAVY: Runs = Runs::HeavyPool;
/// Runs on the heavy pool for RSA and ML-DSA keys.
const HEAVY_KEY: Runs = Runs::HeavyPoolForHeavyKeys;
/// Runs on the heavy pool for RSA and ML-DSA key specs, else the blocking pool.
const HEAVY_SPEC: Runs = Runs::HeavyPoolForHeavySpecs;
/// Honours `DryRun`.
const DRY_RUN: bool = true;
/// Has no `DryRun` member.
const NO_DRY_RUN: bool = false;

const fn op(name: &'static str, runs: Runs, dry_run: bool, handler: Handler) -> Operation {
    Operation {
        name,
        runs,
        dry_run,
        material: false,
        handler,
    }
}

/// A row for a cryptographic operation on the named key's material.
const fn crypto(name: &'static str, runs: Runs, dry_run: bool, handler: Handler) -> Operation {
    Operation {
        material: true,
        ..op(name, runs, dry_run, handler)
    }
}

/// Every operation this node serves, one row each.
pub static OPERATIONS: &[Operation] = &[
    // Key lifecycle.
    op("CreateKey", HEAVY_SPEC, NO_DRY_RUN, |o, b| {
        o.create_key_with_policy(b)
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
    // Multi-Region keys.
    op("ReplicateKey", BLOCKING, NO_DRY_RUN, |o, b| {
        o.replicate_key(parse(b)?)
    }),
    op("UpdatePrimaryRegion", BLOCKING, NO_DRY_RUN, |o, b| {
        o.update_primary_region(parse(b)?)
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
    crypto("Encrypt", WORKER, DRY_RUN, |o, b| o.encrypt(parse(b)?)),
    crypto("Decrypt", HEAVY_KEY, DRY_RUN, |o, b| o.decrypt(parse(b)?)),
    crypto("ReEncrypt", HEAVY_KEY, DRY_RUN, |o, b| {
        o.re_encrypt(parse(b)?)
    }),
    crypto("GenerateDataKey", WORKER, DRY_RUN, |o, b| {
        o.generate_data_key(parse(b)?, true)
    }),
    crypto(
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
    op("GetKeyLastUsage", WORKER, NO_DRY_RUN, |o, b| {
        o.get_key_last_usage(parse(b)?)
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
    crypto("Sign", HEAVY_KEY, DRY_RUN, |o, b| o.sign(parse(b)?)),
    op("Verify", WORKER, DRY_RUN, |o, b| o.verify(parse(b)?)),
    op("GetPublicKey", WORKER, NO_DRY_RUN, |o, b| {
        o.get_public_key(parse(b)?)
    }),
    crypto("GenerateMac", WORKER, DRY_RUN, |o, b| {
        o.generate_mac(parse(b)?)
    }),
    crypto("VerifyMac", WORKER, DRY_RUN, |o, b| o.verify_mac(parse(b)?)),
    op("Encapsulate", WORKER, DRY_RUN, |o, b| {
        o.encapsulate(parse(b)?)
    }),
    crypto("Decapsulate", WORKER, DRY_RUN, |o, b| {
        o.decapsulate(parse(b)?)
    }),
    crypto("DeriveSharedSecret", WORKER, DRY_RUN, |o, b| {
        o.derive_shared_secret(parse(b)?)
    }),
    crypto("GenerateDataKeyPair", HEAVY, DRY_RUN, |o, b| {
        o.generate_data_key_pair(parse(b)?, true)
    }),
    crypto(
        "GenerateDataKeyPairWithoutPlaintext",
        HEAVY,
        DRY_RUN,
        |o, b| o.generate_data_key_pair(parse(b)?, false),
    ),
    // Imported key material.
    op("GetParametersForImport", HEAVY, NO_DRY_RUN, |o, b| {
        o.get_parameters_for_import(parse(b)?)
    }),
    op("ImportKeyMaterial", BLOCKING, NO_DRY_RUN, |o, b| {
        o.import_key_material(parse(b)?)
    }),
    op("DeleteImportedKeyMaterial", BLOCKING, NO_DRY_RUN, |o, b| {
        o.delete_imported_key_material(parse(b)?)
    }),
    // Key policies.
    op("GetKeyPolicy", WORKER, NO_DRY_RUN, |o, b| {
        o.get_key_policy(parse(b)?)
    }),
    op("PutKeyPolicy", BLOCKING, NO_DRY_RUN, |o, b| {
        o.put_key_policy(parse(b)?)
    }),
    op("ListKeyPolicies", WORKER, NO_DRY_RUN, |o, b| {
        o.list_key_policies(parse(b)?)
    }),
    // Grants.
    op("CreateGrant", BLOCKING, DRY_RUN, |o, b| {
        o.create_grant(parse(b)?)
    }),
    op("ListGrants", WORKER, NO_DRY_RUN, |o, b| {
        o.list_grants(parse(b)?)
    }),
    op("ListRetirableGrants", WORKER, NO_DRY_RUN, |o, b| {
        o.list_retirable_grants(parse(b)?)
    }),
    op("RetireGrant", BLOCKING, DRY_RUN, |o, b| {
        o.retire_grant(parse(b)?)
    }),
    op("RevokeGrant", BLOCKING, DRY_RUN, |o, b| {
        o.revoke_grant(parse(b)?)
    }),
    // Custom key stores: out of scope, refused.
    op("CreateCustomKeyStore", WORKER, NO_DRY_RUN, |o, b| {
        o.custom_key_store(b)
    }),
    op("ConnectCustomKeyStore", WORKER, NO_DRY_RUN, |o, b| {
        o.custom_key_store(b)
    }),
    op("DeleteCustomKeyStore", WORKER, NO_DRY_RUN, |o, b| {
        o.custom_key_store(b)
    }),
    op("DescribeCustomKeyStores", WORKER, NO_DRY_RUN, |o, b| {
        o.custom_key_store(b)
    }),
    op("DisconnectCustomKeyStore", WORKER, NO_DRY_RUN, |o, b| {
        o.custom_key_store(b)
    }),
    op("UpdateCustomKeyStore", WORKER, NO_DRY_RUN, |o, b| {
        o.custom_key_store(b)
    }),
];

/// The row of `name`, if this node serves it.
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// UnknownOperationException for a name no row has.
pub fn unknown_operation(name: &str) -> ApiError {
    super::messages::unknown_operation(name)
}

/// The members through which a request may name the key it uses.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NamedKeys {
    key_id: Option<String>,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
}

/// The keys a request names (none if its body does not parse).
fn named_keys(body: &[u8]) -> impl Iterator<Item = String> {
    serde_json::from_slice::<NamedKeys>(body)
        .ok()
        .into_iter()
        .flat_map(|n| [n.key_id, n.source_key_id, n.destination_key_id])
        .flatten()
}

/// The key spec a CreateKey request asks for, under either of its names.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RequestedSpec {
    key_spec: Option<String>,
    customer_master_key_spec: Option<String>,
}

/// Whether generating a key of this AWS key spec takes real CPU (RSA: tens of
/// ms to seconds; ML-DSA signing keys are cheap to make but are used on the
/// heavy pool, and are kept with them so that a key's cost class is one rule).
fn is_cpu_heavy_spec(spec: &str) -> bool {
    spec.starts_with("RSA_") || spec.starts_with("ML_DSA_")
}

/// Where this request runs (see [`Runs`]). A body that does not parse runs on
/// the worker (or, for CreateKey, the blocking pool), where it is refused at once.
pub fn place(kms: &Kms, account: &str, operation: &Operation, body: &[u8]) -> Place {
    match operation.runs {
        Runs::Worker => Place::Worker,
        Runs::BlockingPool => Place::BlockingPool,
        Runs::HeavyPool => {
            let fenced_away = named_keys(body).any(|k| kms.is_fenced_away(account, &k));
            if fenced_away {
                Place::Worker
            } else {
                Place::HeavyPool
            }
        }
        Runs::HeavyPoolForHeavyKeys => {
            let heavy = named_keys(body).any(|k| kms.is_cpu_heavy_key(account, &k));
            if heavy {
                Place::HeavyPool
            } else {
                Place::Worker
            }
        }
        Runs::HeavyPoolForHeavySpecs => {
            let heavy = serde_json::from_slice::<RequestedSpec>(body)
                .ok()
                .is_some_and(|r| {
                    [r.key_spec, r.customer_master_key_spec]
                        .iter()
                        .flatten()
                        .any(|s| is_cpu_heavy_spec(s))
                });
            if heavy {
                Place::HeavyPool
            } else {
                Place::BlockingPool
            }
        }
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

/// Runs one operation for a caller in `account`, unauthorized (every
/// caller of the account may do everything), returning the response document.
pub fn handle(
    kms: &Kms,
    account: &str,
    operation: &Operation,
    body: &[u8],
) -> Result<Value, ApiError> {
    let ops = Ops {
        kms,
        account,
        caller: None,
        authz: None,
    };
    run(&ops, operation, body)
}

/// Authorizes one operation for `caller` (key policy, identity policy,
/// grants), then runs it in the account it is authorized in.
pub fn serve(
    kms: &Kms,
    authz: &Authz,
    caller: Caller,
    origin: Origin,
    operation: &Operation,
    body: &[u8],
) -> Result<Value, ApiError> {
    let serve_here = || {
        let authorized = authorize::authorize(kms, authz, caller, origin, operation, body)?;
        let ops = Ops {
            kms,
            account: &authorized.account,
            caller: Some(&authorized.caller),
            authz: Some(authz),
        };
        run(&ops, operation, body)
    };
    match origin.region {
        Some(region) => kms.in_region(region.as_str(), serve_here)?,
        None => serve_here(),
    }
}

/// Runs one operation. With `DryRun`, every check runs and success is
/// reported as DryRunOperationException.
fn run(ops: &Ops<'_>, operation: &Operation, body: &[u8]) -> Result<Value, ApiError> {
    let dry_run = is_dry_run(operation, body)?;
    let result = (operation.handler)(ops, body);
    match result {
        Ok(reply) if !dry_run => {
            last_usage::record(ops.kms, operation.name, &reply);
            Ok(reply)
        }
        Ok(_) => Err(ApiError {
            status: 400,
            code: "DryRunOperationException",
            message: crate::api::messages::DRY_RUN.into(),
            fence: None,
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

/// The caller and the KMS an operation runs against.
struct Ops<'a> {
    kms: &'a Kms,
    account: &'a str,
    /// The authorized caller (`None` when run unauthorized, in tests).
    caller: Option<&'a Caller>,
    /// Key policies and grants (`None` when run unauthorized).
    authz: Option<&'a Authz>,
}

#[cfg(test)]
mod tests;
