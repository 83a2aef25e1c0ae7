//! The cluster admin API: `X-Amz-Target: KeyfenceAdmin.<Operation>`, AWS
//! JSON 1.1 over the same TLS and SigV4 as the KMS API (credential scope
//! service `kms`), for the user `admin` of the default account only.
//!
//! | operation | input | output |
//! |---|---|---|
//! | `ListNodes` | `{}` | `Nodes`: name, address, state, claimed and approved attributes, last contact |
//! | `ApproveNode` | `Name` | `Node` (authority node only) |
//! | `RemoveNode` | `Name` | `Node`, `RotatedFences`, `RewrappedKeys` (authority node only) |
//! | `SetNodeAttributes` | `Name`, `Attributes` (object) | `Node`, `RotatedFences`, `RewrappedKeys` (authority node only) |
//! | `ListFences` | `{}` | `Fences`: id, policy, epoch, generations, nodes holding its secret |
//! | `CreateFence` | `Policy` | `Fence` (authority node only) |
//! | `RotateMaster` | `{}` | `Generations`, `Fences`, `Nodes` refreshed (authority node only) |
//! | `RetireGeneration` | `Generation` | as `RotateMaster` (authority node only) |

use keyfence_abe::Attributes;
use keyfence_core::cluster::{NodeRecord, NodeState};
use keyfence_core::fence::{FenceError, FenceRecord, JoinRequest, NodeGrant};
use keyfence_core::Kms;
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::cluster::{ClusterError, MasterChange, Membership, MembershipChange};
use crate::config::DEFAULT_ACCOUNT;
use crate::sigv4::VerifiedCaller;

/// The `X-Amz-Target` prefix of admin operations.
pub const TARGET_PREFIX: &str = "KeyfenceAdmin.";

/// The admin operations, by name (for metrics labels).
pub const OPERATIONS: &[&str] = &[
    "ListNodes",
    "ApproveNode",
    "RemoveNode",
    "SetNodeAttributes",
    "ListFences",
    "CreateFence",
    "RotateMaster",
    "RetireGeneration",
];

/// The user allowed to call the admin API (in [`DEFAULT_ACCOUNT`]).
pub const ADMIN_USER: &str = "admin";

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Pending => "PENDING",
        NodeState::Approved => "APPROVED",
        NodeState::Removed => "REMOVED",
    }
}

fn attributes_json(attributes: &Attributes) -> Value {
    Value::Object(
        attributes
            .iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect(),
    )
}

fn node_json(node: &NodeRecord) -> Value {
    let claimed = JoinRequest::from_bytes(&node.join_request)
        .map(|r| attributes_json(r.claimed().attributes()))
        .unwrap_or_else(|_| json!({}));
    let approved = node
        .grant
        .as_deref()
        .and_then(|g| NodeGrant::from_bytes(g).ok())
        .map(|g| attributes_json(g.approved()));
    let mut v = json!({
        "Name": node.name,
        "Address": node.address,
        "State": state_name(node.state),
        "Attributes": claimed,
        "LastContact": node.last_contact.0 as f64 / 1000.0,
    });
    if let Some(approved) = approved {
        v["ApprovedAttributes"] = approved;
    }
    v
}

fn change_json(change: &MembershipChange) -> Value {
    json!({
        "Node": change.node.as_ref().map(node_json),
        "RotatedFences": change.rotated,
        "RewrappedKeys": change.rewrapped,
    })
}

fn master_json(change: &MasterChange) -> Value {
    json!({
        "Generations": change.generations,
        "ActiveGeneration": change.generations.last(),
        "Fences": change.fences,
        "Nodes": change.nodes,
    })
}

/// `Attributes` as a JSON object of strings, e.g. `{"country": "DE"}`.
fn attributes_member(input: &Value) -> Result<Attributes, ApiError> {
    let object = input["Attributes"]
        .as_object()
        .ok_or_else(|| ApiError::validation("Attributes is required (an object of strings)"))?;
    let mut pairs = Vec::with_capacity(object.len());
    for (k, v) in object {
        let v = v.as_str().ok_or_else(|| {
            ApiError::validation(format!("attribute {k} must have a string value"))
        })?;
        pairs.push((k.as_str(), v));
    }
    Attributes::from_pairs(pairs).map_err(|e| ApiError::validation(e.to_string()))
}

fn fence_json(record: &FenceRecord) -> Value {
    json!({
        "FenceId": record.id().to_string(),
        "Policy": record.policy(),
        "Epoch": record.epoch(),
        "Generations": record.generations(),
        "Nodes": record.nodes(),
    })
}

fn error(e: ClusterError) -> ApiError {
    match e {
        ClusterError::NoSuchNode(_) => ApiError::new("NotFoundException", e.to_string()),
        ClusterError::NotPending { .. }
        | ClusterError::NotApproved { .. }
        | ClusterError::Fence(FenceError::Conflict(_) | FenceError::UnknownGeneration(_)) => {
            ApiError::new("KMSInvalidStateException", e.to_string())
        }
        ClusterError::NotAuthority | ClusterError::NoAuthority => {
            ApiError::new("UnsupportedOperationException", e.to_string())
        }
        ClusterError::Fence(FenceError::InvalidPolicy(_)) => ApiError::validation(e.to_string()),
        other => {
            tracing::error!(error = %other, "admin operation failed");
            ApiError {
                status: 500,
                code: "KMSInternalException",
                message: "An internal error occurred.".into(),
                fence: None,
            }
        }
    }
}

fn string_member<'a>(input: &'a Value, member: &str) -> Result<&'a str, ApiError> {
    input[member]
        .as_str()
        .ok_or_else(|| ApiError::validation(format!("{member} is required")))
}

/// Runs admin operation `op` for `caller` with JSON `body` (`kms`: this
/// node's KMS, whose fenced keys a membership change re-wraps).
pub fn handle(
    cluster: Option<&Membership>,
    kms: &Kms,
    caller: &VerifiedCaller,
    op: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    if caller.account_id != DEFAULT_ACCOUNT || caller.user_name != ADMIN_USER {
        return Err(ApiError::new(
            "AccessDeniedException",
            format!(
                "{} is not allowed to call the keyfence admin API",
                caller.arn()
            ),
        ));
    }
    let cluster = cluster.ok_or_else(|| {
        ApiError::new(
            "UnsupportedOperationException",
            "this node is not in a cluster (no [node] table in its config)",
        )
    })?;
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::serialization(e.to_string()))?
    };
    match op {
        "ListNodes" => {
            let nodes = cluster.store().nodes().map_err(|e| error(e.into()))?;
            Ok(json!({"Nodes": nodes.iter().map(node_json).collect::<Vec<_>>()}))
        }
        "ApproveNode" => {
            let node = cluster
                .approve(string_member(&input, "Name")?)
                .map_err(error)?;
            Ok(json!({"Node": node_json(&node)}))
        }
        "RemoveNode" => {
            let change = cluster
                .remove(string_member(&input, "Name")?, kms)
                .map_err(error)?;
            Ok(change_json(&change))
        }
        "SetNodeAttributes" => {
            let name = string_member(&input, "Name")?;
            let attributes = attributes_member(&input)?;
            let change = cluster
                .set_attributes(name, attributes, kms)
                .map_err(error)?;
            Ok(change_json(&change))
        }
        "RotateMaster" => Ok(master_json(&cluster.rotate_master().map_err(error)?)),
        "RetireGeneration" => {
            let generation = input["Generation"]
                .as_u64()
                .and_then(|g| u32::try_from(g).ok())
                .ok_or_else(|| ApiError::validation("Generation is required (a number)"))?;
            Ok(master_json(
                &cluster.retire_generation(generation).map_err(error)?,
            ))
        }
        "ListFences" => {
            let fences = cluster.store().fences().map_err(|e| error(e.into()))?;
            let records = fences
                .iter()
                .map(|f| FenceRecord::from_bytes(&f.record).map_err(|e| error(e.into())))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"Fences": records.iter().map(fence_json).collect::<Vec<_>>()}))
        }
        "CreateFence" => {
            let record = cluster
                .create_fence(string_member(&input, "Policy")?)
                .map_err(error)?;
            Ok(json!({"Fence": fence_json(&record)}))
        }
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown admin operation {other}"),
        )),
    }
}
