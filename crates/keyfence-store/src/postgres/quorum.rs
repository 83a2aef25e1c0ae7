//! [`QuorumStore`] on PostgreSQL: operators (public keys), rules and
//! executed proposals (schema migration 9), shared by every node of the
//! database, so a proposal executes once in the whole cluster.

use keyfence_core::quorum::{ExecutedProposal, ProposalId, QuorumChange, QuorumState, QuorumStore};
use keyfence_core::StoreError;

use super::error::{db, pool as pool_err};
use super::PostgresStore;
use crate::sqlite_quorum::{kind, operator, threshold};

/// Migration 9: the quorum tables.
pub(crate) const V9: &str = r#"
CREATE TABLE quorum_operators (
    name TEXT PRIMARY KEY,
    scheme TEXT NOT NULL,
    public_key BYTEA NOT NULL
);
CREATE TABLE quorum_rules (
    kind TEXT PRIMARY KEY,
    threshold BIGINT NOT NULL CHECK (threshold > 0)
);
CREATE TABLE quorum_executed (
    id BYTEA PRIMARY KEY,
    kind TEXT NOT NULL,
    approvers TEXT NOT NULL,
    executed BIGINT NOT NULL
);
"#;

impl QuorumStore for PostgresStore {
    fn quorum_state(&self) -> Result<QuorumState, StoreError> {
        let (operators, rules) = self.run("read the quorum", |pool| async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(db)?;
            let operators = tx
                .query(
                    "SELECT name, scheme, public_key FROM quorum_operators ORDER BY name",
                    &[],
                )
                .await
                .map_err(db)?;
            let rules = tx
                .query("SELECT kind, threshold FROM quorum_rules", &[])
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok::<_, StoreError>((operators, rules))
        })?;
        let mut state = QuorumState::default();
        for r in &operators {
            state
                .operators
                .push(operator(r.get(0), r.get::<_, &str>(1), r.get(2))?);
        }
        for r in &rules {
            state
                .rules
                .insert(kind(r.get::<_, &str>(0))?, threshold(r.get(1))?);
        }
        Ok(state)
    }

    fn executed(&self, id: &ProposalId) -> Result<bool, StoreError> {
        let id = id.0.to_vec();
        self.run("read an executed proposal", |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            let rows = client
                .query("SELECT 1 FROM quorum_executed WHERE id = $1", &[&id])
                .await
                .map_err(db)?;
            Ok(!rows.is_empty())
        })
    }

    fn commit_quorum(
        &self,
        change: &QuorumChange,
        executed: Option<&ExecutedProposal>,
    ) -> Result<(), StoreError> {
        let change = change.clone();
        let executed = executed.cloned();
        self.run("change the quorum", |pool| async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(db)?;
            if let Some(e) = &executed {
                tx.execute(
                    "INSERT INTO quorum_executed (id, kind, approvers, executed) VALUES ($1, $2, $3, $4)",
                    &[&e.id.0.to_vec(), &e.kind.name(), &e.approvers.join(","), &e.at.0],
                )
                .await
                .map_err(db)?;
            }
            match &change {
                QuorumChange::Nothing => {}
                QuorumChange::AddOperator(op) => {
                    tx.execute(
                        "INSERT INTO quorum_operators (name, scheme, public_key) VALUES ($1, $2, $3)",
                        &[&op.name, &op.key.scheme.name(), &op.key.public_key],
                    )
                    .await
                    .map_err(db)?;
                }
                QuorumChange::RemoveOperator(name) => {
                    let n = tx
                        .execute("DELETE FROM quorum_operators WHERE name = $1", &[name])
                        .await
                        .map_err(db)?;
                    if n == 0 {
                        return Err(StoreError::Conflict(format!("no operator {name:?}")));
                    }
                }
                QuorumChange::SetRule(k, m) => {
                    let m = i64::try_from(*m)
                        .map_err(|_| StoreError::Conflict(format!("threshold {m}")))?;
                    tx.execute(
                        "INSERT INTO quorum_rules (kind, threshold) VALUES ($1, $2) \
                         ON CONFLICT (kind) DO UPDATE SET threshold = excluded.threshold",
                        &[&k.name(), &m],
                    )
                    .await
                    .map_err(db)?;
                }
            }
            tx.commit().await.map_err(db)
        })
    }
}
