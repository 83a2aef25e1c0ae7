//! [`ClusterStore`] on PostgreSQL: nodes, fence records and the authority in
//! their own tables (schema migration 2), so many nodes on many hosts share
//! one cluster state. Each call is one statement or one transaction.

use keyfence_core::cluster::{ClusterStore, NodeRecord, StoredAuthority, StoredFence};
use keyfence_core::{StoreError, Timestamp};
use tokio_postgres::Row;

use super::error::{db, pool as pool_err};
use super::PostgresStore;
use crate::sqlite_cluster::{fence_id, state_from_name, state_name};

/// Migration 2: the cluster tables.
pub(crate) const V2: &str = r#"
CREATE TABLE cluster_nodes (
    name TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    join_request BYTEA NOT NULL,
    state TEXT NOT NULL,
    grant_bytes BYTEA,
    last_contact BIGINT NOT NULL
);
CREATE TABLE cluster_fences (
    id BYTEA PRIMARY KEY,
    policy TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE TABLE cluster_authority (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    public BYTEA NOT NULL,
    sealed BYTEA NOT NULL
);
"#;

const NODE_COLUMNS: &str = "name, address, join_request, state, grant_bytes, last_contact";

fn node(row: &Row) -> Result<NodeRecord, StoreError> {
    Ok(NodeRecord {
        name: row.get(0),
        address: row.get(1),
        join_request: row.get(2),
        state: state_from_name(row.get(3))?,
        grant: row.get(4),
        last_contact: Timestamp(row.get(5)),
    })
}

fn fence(row: &Row) -> Result<StoredFence, StoreError> {
    let epoch: i64 = row.get(2);
    Ok(StoredFence {
        id: fence_id(row.get(0))?,
        policy: row.get(1),
        epoch: u32::try_from(epoch)
            .map_err(|_| StoreError::Corrupt(format!("fence epoch {epoch}")))?,
        record: row.get(3),
    })
}

/// Runs one statement on a pooled connection and returns its rows.
async fn query(
    pool: deadpool_postgres::Pool,
    sql: String,
    args: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
) -> Result<Vec<Row>, StoreError> {
    let client = pool.get().await.map_err(pool_err)?;
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        args.iter().map(|a| a.as_ref() as _).collect();
    client.query(&sql, &refs).await.map_err(db)
}

type Args = Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>;

impl PostgresStore {
    fn cluster_query(
        &self,
        what: &'static str,
        sql: &str,
        args: Args,
    ) -> Result<Vec<Row>, StoreError> {
        let sql = sql.to_owned();
        self.run(what, move |pool| query(pool, sql, args))
    }
}

impl ClusterStore for PostgresStore {
    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM cluster_nodes ORDER BY name");
        self.cluster_query("list nodes", &sql, Vec::new())?
            .iter()
            .map(node)
            .collect()
    }

    fn node(&self, name: &str) -> Result<Option<NodeRecord>, StoreError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM cluster_nodes WHERE name = $1");
        self.cluster_query("read a node", &sql, vec![Box::new(name.to_owned())])?
            .first()
            .map(node)
            .transpose()
    }

    fn insert_node(&self, n: &NodeRecord) -> Result<(), StoreError> {
        let sql =
            format!("INSERT INTO cluster_nodes ({NODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
        self.cluster_query(
            "insert a node",
            &sql,
            vec![
                Box::new(n.name.clone()),
                Box::new(n.address.clone()),
                Box::new(n.join_request.clone()),
                Box::new(state_name(n.state).to_owned()),
                Box::new(n.grant.clone()),
                Box::new(n.last_contact.0),
            ],
        )
        .map(drop)
    }

    fn update_node(&self, n: &NodeRecord) -> Result<(), StoreError> {
        let rows = self.cluster_query(
            "update a node",
            "UPDATE cluster_nodes SET address = $2, state = $3, grant_bytes = $4, last_contact = $5 \
             WHERE name = $1 RETURNING name",
            vec![
                Box::new(n.name.clone()),
                Box::new(n.address.clone()),
                Box::new(state_name(n.state).to_owned()),
                Box::new(n.grant.clone()),
                Box::new(n.last_contact.0),
            ],
        )?;
        if rows.is_empty() {
            return Err(StoreError::Conflict(format!("no node {:?}", n.name)));
        }
        Ok(())
    }

    fn touch_node(&self, name: &str, address: &str, at: Timestamp) -> Result<(), StoreError> {
        self.cluster_query(
            "touch a node",
            "UPDATE cluster_nodes SET address = $2, last_contact = GREATEST(last_contact, $3) WHERE name = $1",
            vec![
                Box::new(name.to_owned()),
                Box::new(address.to_owned()),
                Box::new(at.0),
            ],
        )
        .map(drop)
    }

    fn fences(&self) -> Result<Vec<StoredFence>, StoreError> {
        self.cluster_query(
            "list fences",
            "SELECT id, policy, epoch, record FROM cluster_fences ORDER BY policy",
            Vec::new(),
        )?
        .iter()
        .map(fence)
        .collect()
    }

    fn put_fence(&self, f: &StoredFence) -> Result<(), StoreError> {
        // One statement: the update applies only if the stored epoch is not higher.
        let rows = self.cluster_query(
            "store a fence",
            "INSERT INTO cluster_fences (id, policy, epoch, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET policy = excluded.policy, epoch = excluded.epoch, record = excluded.record \
             WHERE cluster_fences.epoch <= excluded.epoch RETURNING epoch",
            vec![
                Box::new(f.id.as_bytes().to_vec()),
                Box::new(f.policy.clone()),
                Box::new(i64::from(f.epoch)),
                Box::new(f.record.clone()),
            ],
        )?;
        if rows.is_empty() {
            return Err(StoreError::Conflict(format!(
                "fence {} is at a higher epoch than {}",
                f.id, f.epoch
            )));
        }
        Ok(())
    }

    fn authority(&self) -> Result<Option<StoredAuthority>, StoreError> {
        Ok(self
            .cluster_query(
                "read the authority",
                "SELECT public, sealed FROM cluster_authority WHERE one = 1",
                Vec::new(),
            )?
            .first()
            .map(|r| StoredAuthority {
                public: r.get(0),
                sealed: r.get(1),
            }))
    }

    fn insert_authority(&self, a: &StoredAuthority) -> Result<(), StoreError> {
        self.cluster_query(
            "store the authority",
            "INSERT INTO cluster_authority (one, public, sealed) VALUES (1, $1, $2)",
            vec![Box::new(a.public.clone()), Box::new(a.sealed.clone())],
        )
        .map(drop)
    }

    fn update_authority(&self, a: &StoredAuthority) -> Result<(), StoreError> {
        let rows = self.cluster_query(
            "update the authority",
            "UPDATE cluster_authority SET sealed = $2 WHERE one = 1 AND public = $1 RETURNING one",
            vec![Box::new(a.public.clone()), Box::new(a.sealed.clone())],
        )?;
        if rows.is_empty() {
            return Err(StoreError::Conflict(
                "no authority with this public key is stored".into(),
            ));
        }
        Ok(())
    }
}
