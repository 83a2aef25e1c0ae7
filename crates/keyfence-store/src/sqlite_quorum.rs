//! [`QuorumStore`] on the SQLite file: operators (public keys), rules and
//! executed proposals in their own tables (schema version 9).

use keyfence_core::quorum::{
    CommandKind, ExecutedProposal, Operator, OperatorKey, ProposalId, QuorumChange, QuorumState,
    QuorumStore, Scheme,
};
use keyfence_core::store::StoreError;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::sqlite::{backend, SqliteStore};

/// Schema version 9: the quorum tables.
pub(crate) const V9: &str = "
CREATE TABLE quorum_operators (
    name TEXT PRIMARY KEY,
    scheme TEXT NOT NULL,
    public_key BLOB NOT NULL
);
CREATE TABLE quorum_rules (
    kind TEXT PRIMARY KEY,
    threshold INTEGER NOT NULL CHECK (threshold > 0)
);
CREATE TABLE quorum_executed (
    id BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    approvers TEXT NOT NULL,
    executed INTEGER NOT NULL
);
";

/// An operator from its stored columns.
pub(crate) fn operator(
    name: String,
    scheme: &str,
    public_key: Vec<u8>,
) -> Result<Operator, StoreError> {
    let scheme = Scheme::from_name(scheme)
        .ok_or_else(|| StoreError::Corrupt(format!("operator {name}: scheme {scheme:?}")))?;
    Ok(Operator {
        name,
        key: OperatorKey { scheme, public_key },
    })
}

/// A rule's kind from its stored name.
pub(crate) fn kind(name: &str) -> Result<CommandKind, StoreError> {
    CommandKind::from_name(name)
        .ok_or_else(|| StoreError::Corrupt(format!("quorum rule for {name:?}")))
}

/// A threshold from its stored value.
pub(crate) fn threshold(m: i64) -> Result<usize, StoreError> {
    usize::try_from(m).map_err(|_| StoreError::Corrupt(format!("quorum threshold {m}")))
}

impl QuorumStore for SqliteStore {
    fn quorum_state(&self) -> Result<QuorumState, StoreError> {
        let conn = self.connection();
        let mut state = QuorumState::default();
        let mut stmt = conn
            .prepare("SELECT name, scheme, public_key FROM quorum_operators ORDER BY name")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        for (name, scheme, key) in rows {
            state.operators.push(operator(name, &scheme, key)?);
        }
        let mut stmt = conn
            .prepare("SELECT kind, threshold FROM quorum_rules")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        for (k, m) in rows {
            state.rules.insert(kind(&k)?, threshold(m)?);
        }
        Ok(state)
    }

    fn executed(&self, id: &ProposalId) -> Result<bool, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT 1 FROM quorum_executed WHERE id = ?1",
                [&id.0[..]],
                |_| Ok(()),
            )
            .optional()
            .map_err(backend)?
            .is_some())
    }

    fn commit_quorum(
        &self,
        change: &QuorumChange,
        executed: Option<&ExecutedProposal>,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        if let Some(e) = executed {
            tx.execute(
                "INSERT INTO quorum_executed (id, kind, approvers, executed) VALUES (?1, ?2, ?3, ?4)",
                params![&e.id.0[..], e.kind.name(), e.approvers.join(","), e.at.0],
            )
            .map_err(backend)?;
        }
        match change {
            QuorumChange::Nothing => {}
            QuorumChange::AddOperator(op) => {
                tx.execute(
                    "INSERT INTO quorum_operators (name, scheme, public_key) VALUES (?1, ?2, ?3)",
                    params![op.name, op.key.scheme.name(), op.key.public_key],
                )
                .map_err(backend)?;
            }
            QuorumChange::RemoveOperator(name) => {
                let n = tx
                    .execute("DELETE FROM quorum_operators WHERE name = ?1", [name])
                    .map_err(backend)?;
                if n == 0 {
                    return Err(StoreError::Conflict(format!("no operator {name:?}")));
                }
            }
            QuorumChange::SetRule(k, m) => {
                let m = i64::try_from(*m)
                    .map_err(|_| StoreError::Conflict(format!("threshold {m}")))?;
                tx.execute(
                    "INSERT INTO quorum_rules (kind, threshold) VALUES (?1, ?2)
                     ON CONFLICT (kind) DO UPDATE SET threshold = excluded.threshold",
                    params![k.name(), m],
                )
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }
}
