//! The domain-key schedule of a node: every [`CHECK_INTERVAL`] it rotates
//! the domain key if the newest one (in the store: any node of a cluster may
//! have made it) is older than the configured period
//! (`domain_key_rotation_hours`, default 24), then, while older domain keys
//! exist, re-wraps the versions under them and destroys each once nothing
//! names it and the grace period has passed (see [`Kms::rewrap_domain_keys`]).
//!
//! The re-wrap runs off the async workers in passes of [`PASS_BATCHES`]
//! conditional transactions of [`REWRAP_BATCH`] versions, and rests after
//! each pass as long as the pass took: it takes at most half of one core
//! from the request path, whatever the number of keys.
//!
//! On a shared store every node runs it: the first to find a rotation due
//! makes it and the others take its key; several re-wrapping at once is
//! wasted work, never a wrong write. A quorum-sealed node runs it only while
//! unsealed. Rotations and destructions are recorded in the audit log as
//! local records (`RotateDomainKey`, `DestroyDomainKey`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyfence_core::audit::Outcome;
use keyfence_core::service::{RewrapBudget, RewrapOutcome, REWRAP_BATCH};
use keyfence_core::{Kms, KmsError};

use crate::audit::AuditLog;

/// How often a node checks whether a rotation is due or a re-wrap is left.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Store transactions per re-wrap pass (then a rest as long as the pass).
pub const PASS_BATCHES: usize = 16;

/// When a node rotates and re-wraps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The newest domain key's age that makes a rotation due.
    pub every: Duration,
    /// How old the newest domain key must be before an older one is
    /// destroyed: twice the staleness bound on a shared store (every node
    /// still answering has read the newest key by then), none on a store of
    /// the node's own.
    pub grace: Duration,
    /// What one re-wrap pass may do (a rest as long as it took follows it).
    pub pass: RewrapBudget,
}

impl Schedule {
    /// Rotation every `every`, on a store shared by nodes whose replicas are
    /// at most `max_staleness` old (`None`: a store of this node's own).
    pub fn new(every: Duration, max_staleness: Option<Duration>) -> Self {
        Self {
            every,
            grace: max_staleness.map_or(Duration::ZERO, |s| s.saturating_mul(2)),
            pass: RewrapBudget {
                batch: REWRAP_BATCH,
                batches: PASS_BATCHES,
            },
        }
    }
}

/// Runs until dropped: one [`check`] every [`CHECK_INTERVAL`] (the first at once).
pub async fn run(kms: Arc<Kms>, schedule: Schedule, audit: Option<Arc<AuditLog>>) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (kms, schedule, audit) = (Arc::clone(&kms), schedule.clone(), audit.clone());
        let checked =
            tokio::task::spawn_blocking(move || check(&kms, &schedule, audit.as_deref())).await;
        match checked {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "domain-key schedule failed"),
            Err(e) => tracing::error!(error = %e, "domain-key schedule task panicked"),
        }
    }
}

/// Rotates the domain key if due, then, if older domain keys are held,
/// re-wraps in passes with rests between them (blocking: run it off the
/// async workers) until one finishes or does nothing. Returns the passes'
/// outcome added up, if any ran.
pub fn check(
    kms: &Kms,
    schedule: &Schedule,
    audit: Option<&AuditLog>,
) -> Result<Option<RewrapOutcome>, KmsError> {
    if let Some(id) = kms.rotate_domain_key_if_due(schedule.every)? {
        tracing::info!(domain_key = id, "domain key rotated on schedule");
        record(audit, "RotateDomainKey");
    }
    if kms.held_domain_keys().len() < 2 {
        return Ok(None);
    }
    let mut outcome = RewrapOutcome::default();
    loop {
        let started = Instant::now();
        let pass = kms.rewrap_domain_keys(schedule.pass, schedule.grace)?;
        outcome.rewrapped += pass.rewrapped;
        outcome.import_parameters += pass.import_parameters;
        outcome.destroyed.extend(pass.destroyed);
        outcome.remaining = pass.remaining;
        outcome.finished = pass.finished;
        if pass.finished || pass.rewrapped == 0 {
            break;
        }
        std::thread::sleep(started.elapsed());
    }
    for id in &outcome.destroyed {
        tracing::info!(domain_key = id, "older domain key destroyed");
        record(audit, "DestroyDomainKey");
    }
    if outcome.rewrapped > 0 || outcome.import_parameters > 0 {
        tracing::info!(
            versions = outcome.rewrapped,
            import_parameters = outcome.import_parameters,
            remaining = ?outcome.remaining,
            "re-wrapped under the newest domain key"
        );
    }
    Ok(Some(outcome))
}

/// Queues a local audit record of a schedule's action.
fn record(audit: Option<&AuditLog>, operation: &str) {
    if let Some(audit) = audit {
        if let Err(e) = audit.enqueue(audit.local(operation, "", None, Outcome::Success)) {
            tracing::error!(error = %e, operation, "recording a domain-key change failed");
        }
    }
}
