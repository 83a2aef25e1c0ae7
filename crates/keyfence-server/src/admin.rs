//! The cluster admin API: `X-Amz-Target: KeyfenceAdmin.<Operation>`, AWS
//! JSON 1.1 over the same TLS and SigV4 as the KMS API (credential scope
//! service `kms`), for the user `admin` of the default account only.
//!
//! | operation | input | output |
//! |---|---|---|
//! | `ListNodes` | `{}` | `Nodes`: name, address, state, claimed attributes, last contact |
//! | `ApproveNode` | `Name` | `Node` (authority node only) |
//! | `ListFences` | `{}` | `Fences`: id, policy, epoch, generations, nodes holding its secret |
//! | `CreateFence` | `Policy` | `Fence` (authority node only) |

use keyfence_core::cluster::{NodeRecord, NodeState};
use keyfence_core::fence::{FenceError, FenceRecord, JoinRequest};
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::cluster::{ClusterError, Membership};
use crate::config::DEFAULT_ACCOUNT;
use crate::sigv4::VerifiedCaller;

/// The `X-Amz-Target` prefix of admin operations.
pub const TARGET_PREFIX: &str = "KeyfenceAdmin.";

/// The admin operations, by name (for metrics labels).
pub const OPERATIONS: &[&str] = &["ListNodes", "ApproveNode", "ListFences", "CreateFence"];

/// The user allowed to call the admin API (in [`DEFAULT_ACCOUNT`]).
pub const ADMIN_USER: &str = "admin";

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Pending => "PENDING",
        NodeState::Approved => "APPROVED",
        NodeState::Removed => "REMOVED",
    }
}

fn node_json(node: &NodeRecord) -> Value {
    let attributes: serde_json::Map<String, Value> = JoinRequest::from_bytes(&node.join_request)
        .map(|r| {
            r.claimed()
                .attributes()
                .iter()
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "Name": node.name,
        "Address": node.address,
        "State": state_name(node.state),
        "Attributes": attributes,
        "LastContact": node.last_contact.0 as f64 / 1000.0,
    })
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
        ClusterError::NotPending { .. } => ApiError::new("KMSInvalidStateException", e.to_string()),
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
            }
        }
    }
}

fn string_member<'a>(input: &'a Value, member: &str) -> Result<&'a str, ApiError> {
    input[member]
        .as_str()
        .ok_or_else(|| ApiError::validation(format!("{member} is required")))
}

/// Runs admin operation `op` for `caller` with JSON `body`.
pub fn handle(
    cluster: Option<&Membership>,
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
