//! [`ClusterStore`] on the SQLite file: nodes, fence records and the
//! authority in their own tables, created idempotently next to the key tables.

use keyfence_core::cluster::{ClusterStore, NodeRecord, NodeState, StoredAuthority, StoredFence};
use keyfence_core::fence::FenceId;
use keyfence_core::store::StoreError;
use keyfence_core::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::sqlite::{backend, SqliteStore};

/// The cluster tables; `IF NOT EXISTS`, so a key-only database gains them on open.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cluster_nodes (
    name TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    join_request BLOB NOT NULL,
    state TEXT NOT NULL,
    grant_bytes BLOB,
    last_contact INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_fences (
    id BLOB PRIMARY KEY,
    policy TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_authority (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    public BLOB NOT NULL,
    sealed BLOB NOT NULL
);
";

/// Stored names of node states.
pub(crate) const NODE_STATES: &[(NodeState, &str)] = &[
    (NodeState::Pending, "pending"),
    (NodeState::Approved, "approved"),
    (NodeState::Removed, "removed"),
];

pub(crate) fn state_name(state: NodeState) -> &'static str {
    NODE_STATES
        .iter()
        .find(|(s, _)| *s == state)
        .map(|(_, n)| *n)
        .expect("every state has a stored name")
}

pub(crate) fn state_from_name(name: &str) -> Result<NodeState, StoreError> {
    NODE_STATES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(s, _)| *s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown node state {name:?}")))
}

pub(crate) fn fence_id(bytes: &[u8]) -> Result<FenceId, StoreError> {
    let id: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("fence id of {} bytes", bytes.len())))?;
    Ok(FenceId::from_bytes(id))
}

fn node_row(r: &Row<'_>) -> rusqlite::Result<(NodeRecord, String)> {
    Ok((
        NodeRecord {
            name: r.get(0)?,
            address: r.get(1)?,
            join_request: r.get(2)?,
            state: NodeState::Pending,
            grant: r.get(4)?,
            last_contact: Timestamp(r.get(5)?),
        },
        r.get(3)?,
    ))
}

fn with_state((mut node, state): (NodeRecord, String)) -> Result<NodeRecord, StoreError> {
    node.state = state_from_name(&state)?;
    Ok(node)
}

const NODE_COLUMNS: &str = "name, address, join_request, state, grant_bytes, last_contact";

fn nodes_where(
    conn: &Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<NodeRecord>, StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {NODE_COLUMNS} FROM cluster_nodes {filter} ORDER BY name"
        ))
        .map_err(backend)?;
    let rows = stmt
        .query_map(args, node_row)
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    rows.into_iter().map(with_state).collect()
}

impl ClusterStore for SqliteStore {
    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        nodes_where(&self.connection(), "", &[])
    }

    fn node(&self, name: &str) -> Result<Option<NodeRecord>, StoreError> {
        Ok(
            nodes_where(&self.connection(), "WHERE name = ?1", &[&name])?
                .into_iter()
                .next(),
        )
    }

    fn insert_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        self.connection()
            .execute(
                &format!(
                    "INSERT INTO cluster_nodes ({NODE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    node.name,
                    node.address,
                    node.join_request,
                    state_name(node.state),
                    node.grant,
                    node.last_contact.0
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn update_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        let n = self
            .connection()
            .execute(
                "UPDATE cluster_nodes SET address = ?2, state = ?3, grant_bytes = ?4, last_contact = ?5 WHERE name = ?1",
                params![
                    node.name,
                    node.address,
                    state_name(node.state),
                    node.grant,
                    node.last_contact.0
                ],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("no node {:?}", node.name)));
        }
        Ok(())
    }

    fn touch_node(&self, name: &str, address: &str, at: Timestamp) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "UPDATE cluster_nodes SET address = ?2, last_contact = MAX(last_contact, ?3) WHERE name = ?1",
                params![name, address, at.0],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn fences(&self) -> Result<Vec<StoredFence>, StoreError> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare("SELECT id, policy, epoch, record FROM cluster_fences ORDER BY policy")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(id, policy, epoch, record)| {
                Ok(StoredFence {
                    id: fence_id(&id)?,
                    policy,
                    epoch,
                    record,
                })
            })
            .collect()
    }

    fn put_fence(&self, fence: &StoredFence) -> Result<(), StoreError> {
        let mut conn = self.connection();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let stored: Option<u32> = tx
            .query_row(
                "SELECT epoch FROM cluster_fences WHERE id = ?1",
                [&fence.id.as_bytes()[..]],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if let Some(epoch) = stored.filter(|e| *e > fence.epoch) {
            return Err(StoreError::Conflict(format!(
                "fence {} is at epoch {epoch}; refusing epoch {}",
                fence.id, fence.epoch
            )));
        }
        tx.execute(
            "INSERT INTO cluster_fences (id, policy, epoch, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET policy = excluded.policy, epoch = excluded.epoch, record = excluded.record",
            params![&fence.id.as_bytes()[..], fence.policy, fence.epoch, fence.record],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn authority(&self) -> Result<Option<StoredAuthority>, StoreError> {
        self.connection()
            .query_row(
                "SELECT public, sealed FROM cluster_authority WHERE one = 1",
                [],
                |r| {
                    Ok(StoredAuthority {
                        public: r.get(0)?,
                        sealed: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
    }

    fn insert_authority(&self, authority: &StoredAuthority) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "INSERT INTO cluster_authority (one, public, sealed) VALUES (1, ?1, ?2)",
                params![authority.public, authority.sealed],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn update_authority(&self, authority: &StoredAuthority) -> Result<(), StoreError> {
        let n = self
            .connection()
            .execute(
                "UPDATE cluster_authority SET sealed = ?2 WHERE one = 1 AND public = ?1",
                params![authority.public, authority.sealed],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::Conflict(
                "no authority with this public key is stored".into(),
            ));
        }
        Ok(())
    }
}
