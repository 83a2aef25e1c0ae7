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
//! | `DestroyKey` | `KeyId` (a key ARN, pending deletion) | `KeyId`, `Destroyed` |
//! | `ListQuorum` | `{}` | `Operators` (name, scheme), `Rules` (kind, threshold, of) |
//! | `AddOperator` | `Name`, `Scheme`, `PublicKey` (base64 DER) | as `ListQuorum`, `Added` |
//! | `RemoveOperator` | `Name` | as `ListQuorum`, `Removed` |
//! | `SetQuorumRule` | `Kind`, `Threshold` | as `ListQuorum` |
//! | `ExportAuditKey` | `Recipient` (base64 X-Wing public key) | `Log`, `PublicKey` (base64 DER), `WrappedKey` (base64: the log's signing key wrapped to `Recipient`); only as `Execute` of a proposal |
//! | `RotateDomainKey` | `{}` | `DomainKey`: the new domain key's number (older ones are re-wrapped, then destroyed, by the schedule) |
//! | `Execute` | `Proposal` (text), `Approvals` (lines) | `Executed`, `ProposalId`, `Approvers`, `Result` (the operation's output) |
//!
//! Once a quorum rule exists for an operation's kind of command
//! (approve-node: `ApproveNode`; change-attributes: `SetNodeAttributes`;
//! remove-node: `RemoveNode`; rotate-abe-master: `RotateMaster` and
//! `RetireGeneration`; destroy-key-early: `DestroyKey`; change-quorum:
//! `SetQuorumRule`; add-operator, remove-operator, export-audit-key,
//! rotate-domain-key), the
//! operation is refused (AccessDeniedException) unless it comes as
//! `Execute` of a proposal with M distinct valid operator signatures
//! (see `approvals`). `DestroyKey` is refused without a rule too: destroying
//! a key before its waiting period is never one admin's act, so it runs only
//! as `Execute` of a proposal under a destroy-key-early rule; so does
//! `ExportAuditKey` under an export-audit-key rule.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_abe::Attributes;
use keyfence_core::cluster::{NodeRecord, NodeState};
use keyfence_core::fence::{FenceError, FenceRecord, JoinRequest, NodeGrant};
use keyfence_core::quorum::{Authorized, Command, CommandKind, QuorumChange};
use keyfence_core::{KeyRef, Kms};
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::approvals::{no_rule, Approvals, NEVER_DIRECT};
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
    "DestroyKey",
    "ListQuorum",
    "AddOperator",
    "RemoveOperator",
    "SetQuorumRule",
    "ExportAuditKey",
    "RotateDomainKey",
    "Execute",
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

/// Why an admin operation cannot run on a node outside a cluster.
fn not_in_cluster() -> ApiError {
    ApiError::new(
        "UnsupportedOperationException",
        "this node is not in a cluster (no [node] table in its config)",
    )
}

/// The kind of command an admin operation is, when a quorum rule may guard it.
fn guarded_kind(op: &str) -> Option<CommandKind> {
    Some(match op {
        "ApproveNode" => CommandKind::ApproveNode,
        "SetNodeAttributes" => CommandKind::ChangeAttributes,
        "RemoveNode" => CommandKind::RemoveNode,
        "RotateMaster" | "RetireGeneration" => CommandKind::RotateAbeMaster,
        "DestroyKey" => CommandKind::DestroyKeyEarly,
        "SetQuorumRule" => CommandKind::ChangeQuorum,
        "AddOperator" => CommandKind::AddOperator,
        "RemoveOperator" => CommandKind::RemoveOperator,
        "ExportAuditKey" => CommandKind::ExportAuditKey,
        "RotateDomainKey" => CommandKind::RotateDomainKey,
        _ => return None,
    })
}

/// What a node offers the admin API: its cluster membership (if any), its
/// KMS and its quorum.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// This node's cluster membership.
    pub cluster: Option<&'a Membership>,
    /// This node's KMS.
    pub kms: &'a Kms,
    /// The quorum kept in its store.
    pub approvals: Option<&'a Approvals>,
    /// Its audit log, where each executed proposal is recorded.
    pub audit: Option<&'a crate::audit::AuditLog>,
}

/// Runs admin operation `op` for `caller` with JSON `body` (`node.kms`:
/// this node's KMS, whose fenced keys a membership change re-wraps).
///
/// Once a quorum rule exists for an operation's kind of command, the
/// operation is refused unless it arrives as a signed proposal (`Execute`).
pub fn handle(
    node: Node<'_>,
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
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::serialization(e.to_string()))?
    };
    match (guarded_kind(op), node.approvals) {
        (Some(kind), Some(approvals)) => approvals.gate(kind)?,
        (Some(kind), None) if NEVER_DIRECT.contains(&kind) => return Err(no_rule(kind)),
        _ => {}
    }
    match op {
        "Execute" => execute(node, &input),
        "ListQuorum" => list_quorum(quorum_of(node)?),
        _ => run(node, op, &input, None),
    }
}

/// Records an executed proposal in the audit log (a local act, durable with
/// the `Execute` request's own record, before its reply): operation
/// `ExecuteProposal:KIND`, the approving operators as principal, the
/// proposal's id as request id, the key it names if any, and its outcome.
fn record_executed(
    audit: Option<&crate::audit::AuditLog>,
    cleared: &Authorized,
    input: &Value,
    result: &Result<Value, ApiError>,
) -> Result<(), ApiError> {
    use keyfence_core::audit::Outcome;
    let Some(audit) = audit else {
        return Ok(());
    };
    let outcome = match result {
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(e.code.to_owned()),
    };
    let mut record = audit.local(
        &format!("ExecuteProposal:{}", cleared.command.kind.name()),
        &cleared.approvers.join(","),
        input["KeyId"].as_str(),
        outcome,
    );
    record.request_id = cleared.id.to_string();
    audit
        .enqueue(record)
        .map_err(|e| ApiError::from(keyfence_core::KmsError::Internal(format!("audit log: {e}"))))
}

fn quorum_of(node: Node<'_>) -> Result<&Approvals, ApiError> {
    node.approvals.ok_or_else(|| {
        ApiError::new(
            "UnsupportedOperationException",
            "this node keeps no quorum (a sealed node answers only seal operations)",
        )
    })
}

/// Runs operation `op` with `input`; `proposal`: the cleared proposal it
/// carries out, recorded with a quorum change in one transaction.
fn run(
    node: Node<'_>,
    op: &str,
    input: &Value,
    proposal: Option<&Authorized>,
) -> Result<Value, ApiError> {
    let cluster = || node.cluster.ok_or_else(not_in_cluster);
    let kms = node.kms;
    match op {
        "ListNodes" => {
            let nodes = cluster()?.store().nodes().map_err(|e| error(e.into()))?;
            Ok(json!({"Nodes": nodes.iter().map(node_json).collect::<Vec<_>>()}))
        }
        "ApproveNode" => {
            let node = cluster()?
                .approve(string_member(input, "Name")?)
                .map_err(error)?;
            Ok(json!({"Node": node_json(&node)}))
        }
        "RemoveNode" => {
            let change = cluster()?
                .remove(string_member(input, "Name")?, kms)
                .map_err(error)?;
            Ok(change_json(&change))
        }
        "SetNodeAttributes" => {
            let name = string_member(input, "Name")?;
            let attributes = attributes_member(input)?;
            let change = cluster()?
                .set_attributes(name, attributes, kms)
                .map_err(error)?;
            Ok(change_json(&change))
        }
        "RotateMaster" => Ok(master_json(&cluster()?.rotate_master().map_err(error)?)),
        "RetireGeneration" => {
            let generation = input["Generation"]
                .as_u64()
                .and_then(|g| u32::try_from(g).ok())
                .ok_or_else(|| ApiError::validation("Generation is required (a number)"))?;
            Ok(master_json(
                &cluster()?.retire_generation(generation).map_err(error)?,
            ))
        }
        "ListFences" => {
            let fences = cluster()?.store().fences().map_err(|e| error(e.into()))?;
            let records = fences
                .iter()
                .map(|f| FenceRecord::from_bytes(&f.record).map_err(|e| error(e.into())))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"Fences": records.iter().map(fence_json).collect::<Vec<_>>()}))
        }
        "CreateFence" => {
            let record = cluster()?
                .create_fence(string_member(input, "Policy")?)
                .map_err(error)?;
            Ok(json!({"Fence": fence_json(&record)}))
        }
        "DestroyKey" => {
            let arn = string_member(input, "KeyId")?;
            let account = match KeyRef::parse(arn) {
                Ok(KeyRef::Arn { account, .. }) => account,
                _ => return Err(ApiError::validation("KeyId must be a key ARN")),
            };
            let meta = kms.destroy_key_now(&account, arn).map_err(ApiError::from)?;
            Ok(json!({"KeyId": meta.arn(), "Destroyed": true}))
        }
        "AddOperator" => {
            let op = crate::approvals::operator(
                string_member(input, "Name")?,
                string_member(input, "Scheme")?,
                string_member(input, "PublicKey")?,
            )?;
            let name = op.name.clone();
            quorum_of(node)?.commit(&QuorumChange::AddOperator(op), proposal)?;
            list_quorum_named(quorum_of(node)?, "Added", &name)
        }
        "RemoveOperator" => {
            let name = string_member(input, "Name")?.to_owned();
            quorum_of(node)?.commit(&QuorumChange::RemoveOperator(name.clone()), proposal)?;
            list_quorum_named(quorum_of(node)?, "Removed", &name)
        }
        "SetQuorumRule" => {
            let kind = CommandKind::from_name(string_member(input, "Kind")?)
                .ok_or_else(|| ApiError::validation("Kind is not a kind of command"))?;
            let m = input["Threshold"]
                .as_u64()
                .and_then(|m| usize::try_from(m).ok())
                .ok_or_else(|| ApiError::validation("Threshold is required (a number)"))?;
            quorum_of(node)?.commit(&QuorumChange::SetRule(kind, m), proposal)?;
            list_quorum(quorum_of(node)?)
        }
        "ExportAuditKey" => export_audit_key(node.audit, string_member(input, "Recipient")?),
        "RotateDomainKey" => Ok(json!({"DomainKey": kms.rotate_domain_key()?})),
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown admin operation {other}"),
        )),
    }
}

/// The node's audit signing key wrapped to `recipient` (base64 X-Wing
/// public key), with the log's name and public key to check it against.
fn export_audit_key(
    audit: Option<&crate::audit::AuditLog>,
    recipient: &str,
) -> Result<Value, ApiError> {
    use crate::audit::AuditLogError;
    let audit = audit.ok_or_else(|| {
        ApiError::new(
            "UnsupportedOperationException",
            "this node keeps no audit log ([audit] enabled = false)",
        )
    })?;
    let recipient = B64
        .decode(recipient)
        .ok()
        .filter(|k| k.len() == keyfence_crypto::asym::xwing::PUBLIC_KEY_LEN)
        .ok_or_else(|| {
            ApiError::validation(format!(
                "Recipient is a base64 X-Wing public key ({} bytes), as `keyfence audit recipient` writes it",
                keyfence_crypto::asym::xwing::PUBLIC_KEY_LEN
            ))
        })?;
    let wrapped = audit.export_key(&recipient).map_err(|e| match e {
        AuditLogError::Sealed => ApiError::new("KMSInvalidStateException", e.to_string()),
        other => ApiError::from(keyfence_core::KmsError::Internal(format!(
            "exporting the audit key: {other}"
        ))),
    })?;
    let public_key = audit.public_key().unwrap_or_default();
    Ok(json!({
        "Log": audit.name(),
        "PublicKey": B64.encode(public_key),
        "WrappedKey": B64.encode(wrapped),
    }))
}

fn list_quorum(approvals: &Approvals) -> Result<Value, ApiError> {
    let state = approvals.state()?;
    let n = state.operators.len();
    Ok(json!({
        "Operators": state.operators.iter().map(|o| json!({
            "Name": o.name,
            "Scheme": o.key.scheme.name(),
        })).collect::<Vec<_>>(),
        "Rules": state.rules.iter().map(|(k, m)| json!({
            "Kind": k.name(),
            "Threshold": m,
            "Of": n,
        })).collect::<Vec<_>>(),
    }))
}

fn list_quorum_named(approvals: &Approvals, what: &str, name: &str) -> Result<Value, ApiError> {
    let mut v = list_quorum(approvals)?;
    v[what] = Value::from(name);
    Ok(v)
}

/// The admin operation a cleared command is carried out by, and its input.
fn operation_of(command: &Command) -> Result<(&'static str, Value), ApiError> {
    let arg = |n: &str| {
        command
            .args
            .get(n)
            .cloned()
            .ok_or_else(|| ApiError::validation(format!("{} needs {n}=…", command.kind.name())))
    };
    Ok(match command.kind {
        CommandKind::ApproveNode => ("ApproveNode", json!({"Name": arg("node")?})),
        CommandKind::RemoveNode => ("RemoveNode", json!({"Name": arg("node")?})),
        CommandKind::ChangeAttributes => {
            let attributes: Value = serde_json::from_str(&arg("attributes")?)
                .map_err(|_| ApiError::validation("attributes= is a JSON object of strings"))?;
            (
                "SetNodeAttributes",
                json!({"Name": arg("node")?, "Attributes": attributes}),
            )
        }
        CommandKind::RotateAbeMaster => match command.args.get("generation") {
            Some(g) => (
                "RetireGeneration",
                json!({"Generation": g.parse::<u64>().map_err(|_| {
                    ApiError::validation("generation= is a number")
                })?}),
            ),
            None => ("RotateMaster", json!({})),
        },
        CommandKind::RotateDomainKey => ("RotateDomainKey", json!({})),
        CommandKind::DestroyKeyEarly => ("DestroyKey", json!({"KeyId": arg("key")?})),
        CommandKind::ChangeQuorum => {
            let m = arg("threshold")?
                .parse::<u64>()
                .map_err(|_| ApiError::validation("threshold= is a number"))?;
            (
                "SetQuorumRule",
                json!({"Kind": arg("kind")?, "Threshold": m}),
            )
        }
        CommandKind::AddOperator => (
            "AddOperator",
            json!({"Name": arg("name")?, "Scheme": arg("scheme")?, "PublicKey": arg("public-key")?}),
        ),
        CommandKind::RemoveOperator => ("RemoveOperator", json!({"Name": arg("name")?})),
        CommandKind::ExportAuditKey => ("ExportAuditKey", json!({"Recipient": arg("recipient")?})),
    })
}

/// `Execute`: `Proposal` (its text) and `Approvals` (approval lines). The
/// proposal is checked against the stored quorum, recorded as executed (so
/// never accepted again), then carried out.
fn execute(node: Node<'_>, input: &Value) -> Result<Value, ApiError> {
    let approvals = quorum_of(node)?;
    let text = string_member(input, "Proposal")?;
    let lines: Vec<String> = input["Approvals"]
        .as_array()
        .ok_or_else(|| ApiError::validation("Approvals is required (a list of approval lines)"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ApiError::validation("each approval is a string"))
        })
        .collect::<Result<_, _>>()?;
    let cleared = approvals.authorize(text, &lines)?;
    let (op, op_input) = operation_of(&cleared.command)?;
    if node.cluster.is_none()
        && matches!(
            cleared.command.kind,
            CommandKind::ApproveNode
                | CommandKind::RemoveNode
                | CommandKind::ChangeAttributes
                | CommandKind::RotateAbeMaster
        )
    {
        return Err(not_in_cluster());
    }
    let changes_quorum = matches!(
        cleared.command.kind,
        CommandKind::ChangeQuorum | CommandKind::AddOperator | CommandKind::RemoveOperator
    );
    if !changes_quorum {
        // Spent before it runs: a replay is refused even if the command fails.
        approvals.commit(&QuorumChange::Nothing, Some(&cleared))?;
    }
    let result = run(node, op, &op_input, changes_quorum.then_some(&cleared));
    record_executed(node.audit, &cleared, &op_input, &result)?;
    let result = result?;
    tracing::info!(
        proposal = %cleared.id,
        kind = cleared.command.kind.name(),
        approvers = %cleared.approvers.join(","),
        "executed an approved proposal"
    );
    Ok(json!({
        "Executed": cleared.command.kind.name(),
        "ProposalId": cleared.id.to_string(),
        "Approvers": cleared.approvers,
        "Result": result,
    }))
}
