//! M-of-N approvals in the node: the quorum state (operators, rules,
//! executed proposals) in the store every node shares, the gate that refuses
//! a guarded admin command sent without a proposal, and the check of a
//! signed proposal before the admin API carries it out.
//!
//! A proposal is spent when it is cleared: its id is recorded (in the same
//! transaction as a change to the operators or rules) before its command
//! runs, so a replay — at this node or any other of the store — is refused
//! even if the command then fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_core::quorum::{
    authorize, Approval, Authorized, CommandKind, ExecutedProposal, Operator, OperatorKey,
    Proposal, ProposalId, QuorumChange, QuorumError, QuorumState, QuorumStore, Scheme,
};
use keyfence_core::{Clock, StoreError};
use serde::Deserialize;

use crate::api::ApiError;

/// The file an earlier build kept the quorum state in (data directory).
pub const LEGACY_FILE: &str = "quorum.json";

/// The node's quorum: its store and clock.
pub struct Approvals {
    store: Arc<dyn QuorumStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Approvals")
    }
}

fn unavailable(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "quorum store failed");
    ApiError {
        status: 500,
        code: "KMSInternalException",
        message: "An internal error occurred.".into(),
        fence: None,
    }
}

/// Kinds of command that never run on one admin credential: without a
/// quorum rule for them they do not run at all (a proposal needs a rule
/// too). Destroying a key before its waiting period cannot be undone, and
/// an exported audit signing key cannot be taken back (its holder can sign
/// heads as the log), so neither is ever a one-person act. Other kinds run directly until a rule guards
/// them (bootstrap: the first operators and rules are set that way).
pub const NEVER_DIRECT: &[CommandKind] =
    &[CommandKind::DestroyKeyEarly, CommandKind::ExportAuditKey];

/// The refusal of a [`NEVER_DIRECT`] kind for which no rule is set.
pub fn no_rule(kind: CommandKind) -> ApiError {
    ApiError::new(
        "AccessDeniedException",
        format!(
            "{} needs a quorum rule and none is set: set one (keyfence admin quorum set {} M), \
             then execute a proposal approved by M operators (keyfence admin propose, sign, execute)",
            kind.name(),
            kind.name()
        ),
    )
}

/// A refused proposal: AccessDenied, with the quorum's own reason.
fn refused(e: &QuorumError) -> ApiError {
    ApiError::new("AccessDeniedException", format!("proposal refused: {e}"))
}

impl Approvals {
    /// The quorum kept in `store`, timed by `clock`.
    pub fn new(store: Arc<dyn QuorumStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The operators and rules.
    pub fn state(&self) -> Result<QuorumState, ApiError> {
        self.store.quorum_state().map_err(unavailable)
    }

    /// Refuses a direct (unsigned) admin command of `kind` once a rule
    /// guards it: it then runs only as a signed proposal. A kind in
    /// [`NEVER_DIRECT`] is refused even without a rule (see [`no_rule`]).
    pub fn gate(&self, kind: CommandKind) -> Result<(), ApiError> {
        match self.state()?.rules.get(&kind) {
            None if NEVER_DIRECT.contains(&kind) => Err(no_rule(kind)),
            None => Ok(()),
            Some(m) => Err(ApiError::new(
                "AccessDeniedException",
                format!(
                    "a quorum rule guards {}: it needs a proposal approved by {m} operators \
                     (keyfence admin propose, sign, execute)",
                    kind.name()
                ),
            )),
        }
    }

    /// Checks `proposal` (its text) with `approvals` (one `keyfence-approval
    /// v1 NAME SIGNATURE` line each) against the stored quorum, now.
    pub fn authorize(&self, proposal: &str, approvals: &[String]) -> Result<Authorized, ApiError> {
        let proposal =
            Proposal::parse(proposal).map_err(|e| ApiError::validation(e.to_string()))?;
        let approvals = approvals
            .iter()
            .map(|a| parse_approval(a))
            .collect::<Result<Vec<_>, _>>()?;
        let quorum = self
            .state()?
            .quorum()
            .map_err(|e| ApiError::new("KMSInvalidStateException", e.to_string()))?;
        let executed = |id: &ProposalId| self.store.executed(id);
        // Read the executed mark first, so a store failure is not a replay.
        let spent = executed(&proposal.id()).map_err(unavailable)?;
        authorize(&quorum, &proposal, &approvals, self.clock.now(), |_| spent)
            .map_err(|e| refused(&e))
    }

    /// Applies `change` (checked against the stored state first) and, for a
    /// proposal, records it executed, in one transaction; a proposal already
    /// recorded is a replay.
    pub fn commit(
        &self,
        change: &QuorumChange,
        proposal: Option<&Authorized>,
    ) -> Result<(), ApiError> {
        self.state()?
            .after(change)
            .map_err(|e| ApiError::new("KMSInvalidStateException", e.to_string()))?;
        let executed = proposal.map(|p| ExecutedProposal {
            id: p.id,
            kind: p.command.kind,
            approvers: p.approvers.clone(),
            at: self.clock.now(),
        });
        match self.store.commit_quorum(change, executed.as_ref()) {
            Err(StoreError::Conflict(_)) if proposal.is_some() => {
                Err(refused(&QuorumError::Replayed))
            }
            Err(StoreError::Conflict(e)) => Err(ApiError::new("KMSInvalidStateException", e)),
            other => other.map_err(unavailable),
        }
    }

    /// Moves the quorum state of an earlier build (`quorum.json` in
    /// `data_dir`) into the store, if the store has none yet, then renames
    /// the file `quorum.json.migrated`. Returns whether it did.
    pub fn import_legacy(&self, data_dir: &Path) -> Result<bool, String> {
        let path = data_dir.join(LEGACY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let legacy: Legacy =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let stored = self.store.quorum_state().map_err(|e| e.to_string())?;
        if stored.operators.is_empty() && stored.rules.is_empty() {
            let mut state = QuorumState::default();
            for o in &legacy.operators {
                let op = operator(&o.name, &o.scheme, &o.public_key)
                    .map_err(|e| format!("{}: {}", path.display(), e.message))?;
                state = state
                    .after(&QuorumChange::AddOperator(op))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            for (k, m) in &legacy.rules {
                let k = CommandKind::from_name(k)
                    .ok_or_else(|| format!("{}: unknown kind {k:?}", path.display()))?;
                state = state
                    .after(&QuorumChange::SetRule(k, *m))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            for op in state.operators {
                self.store
                    .commit_quorum(&QuorumChange::AddOperator(op), None)
                    .map_err(|e| e.to_string())?;
            }
            for (k, m) in state.rules {
                self.store
                    .commit_quorum(&QuorumChange::SetRule(k, m), None)
                    .map_err(|e| e.to_string())?;
            }
        }
        // Executed ids are carried over whatever the store held: a replay
        // of a proposal executed from the file must stay refused.
        for id in &legacy.executed {
            let bytes: [u8; 32] = hex::decode(id)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("{}: executed id {id:?}", path.display()))?;
            let record = ExecutedProposal {
                id: ProposalId(bytes),
                kind: CommandKind::ChangeQuorum,
                approvers: vec![format!("imported from {LEGACY_FILE}")],
                at: self.clock.now(),
            };
            match self
                .store
                .commit_quorum(&QuorumChange::Nothing, Some(&record))
            {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let done = data_dir.join(format!("{LEGACY_FILE}.migrated"));
        std::fs::rename(&path, &done).map_err(|e| format!("{}: {e}", path.display()))?;
        tracing::info!(from = %path.display(), "quorum state moved into the store");
        Ok(true)
    }
}

#[derive(Deserialize)]
struct LegacyOperator {
    name: String,
    scheme: String,
    public_key: String,
}

#[derive(Deserialize)]
struct Legacy {
    #[serde(default)]
    operators: Vec<LegacyOperator>,
    #[serde(default)]
    rules: BTreeMap<String, usize>,
    #[serde(default)]
    executed: Vec<String>,
}

/// An operator from its name, scheme name and base64 public key.
pub fn operator(name: &str, scheme: &str, public_key: &str) -> Result<Operator, ApiError> {
    let scheme = Scheme::from_name(scheme)
        .ok_or_else(|| ApiError::validation(format!("scheme {scheme:?}: ML-DSA-65 or Ed25519")))?;
    let public_key = B64
        .decode(public_key)
        .map_err(|_| ApiError::validation(format!("operator {name}: public key is not base64")))?;
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_whitespace() || c == ',') {
        return Err(ApiError::validation(
            "an operator name is 1 to 64 characters, without spaces or commas",
        ));
    }
    Ok(Operator {
        name: name.to_owned(),
        key: OperatorKey { scheme, public_key },
    })
}

/// One approval line: `keyfence-approval v1 NAME BASE64-SIGNATURE`.
pub fn parse_approval(text: &str) -> Result<Approval, ApiError> {
    let mut parts = text.split_whitespace();
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("keyfence-approval"), Some("v1"), Some(name), Some(sig), None) => Ok(Approval {
            operator: name.to_owned(),
            signature: B64
                .decode(sig)
                .map_err(|_| ApiError::validation("approval signature is not base64"))?,
        }),
        _ => Err(ApiError::validation("not a keyfence-approval v1 line")),
    }
}

/// The node's quorum over `store`, after moving an earlier build's
/// `quorum.json` from `data_dir` into it.
pub fn open(
    store: Arc<dyn QuorumStore>,
    data_dir: &Path,
) -> Result<Arc<Approvals>, crate::node::NodeError> {
    let approvals = Approvals::new(store, Arc::new(keyfence_core::SystemClock));
    approvals
        .import_legacy(data_dir)
        .map_err(crate::node::NodeError::Quorum)?;
    Ok(Arc::new(approvals))
}
