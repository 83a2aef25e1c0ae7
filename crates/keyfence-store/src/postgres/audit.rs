//! [`AuditStore`] on PostgreSQL (schema migration 5): one append-only table
//! of records per node's log, the signed heads and each log's sealed signing
//! key. A trigger refuses `UPDATE`, `DELETE` and `TRUNCATE` on all three.
//! Migration 6 adds each log's tree edge (the writer's cache, replaced at
//! every append; not evidence).

use keyfence_core::audit::{AuditStore, Frontier, LogKey, SignedTreeHead, StoredEntry, TreeHead};
use keyfence_core::{StoreError, Timestamp};

use super::error::{db, pool as pool_err, release, suspect};
use super::PostgresStore;

/// Migration 3: the audit log.
pub(crate) const V5: &str = r#"
CREATE TABLE audit_records (
    log TEXT NOT NULL,
    seq BIGINT NOT NULL CHECK (seq >= 0),
    data BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL,
    PRIMARY KEY (log, seq)
);
CREATE TABLE audit_heads (
    log TEXT NOT NULL,
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    time BIGINT NOT NULL,
    signature BYTEA NOT NULL,
    PRIMARY KEY (log, size)
);
CREATE TABLE audit_keys (
    log TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    sealed BYTEA NOT NULL
);
CREATE FUNCTION keyfence_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION keyfence_audit_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION keyfence_audit_append_only();
CREATE TRIGGER audit_heads_append_only BEFORE UPDATE OR DELETE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION keyfence_audit_append_only();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION keyfence_audit_append_only();
CREATE TRIGGER audit_keys_append_only BEFORE UPDATE OR DELETE ON audit_keys
    FOR EACH ROW EXECUTE FUNCTION keyfence_audit_append_only();
CREATE TRIGGER audit_keys_no_truncate BEFORE TRUNCATE ON audit_keys
    FOR EACH STATEMENT EXECUTE FUNCTION keyfence_audit_append_only();
"#;

/// Migration 7: each log's tree edge, so a writer restarts in O(log n).
pub(crate) const V7: &str = r#"
CREATE TABLE audit_frontiers (
    log TEXT PRIMARY KEY,
    edge BYTEA NOT NULL
);
"#;

fn hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| StoreError::Corrupt(format!("audit hash of {} bytes", b.len())))
}

fn position(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("audit position {v}")))
}

impl AuditStore for PostgresStore {
    fn append(
        &self,
        log: &str,
        entries: &[StoredEntry],
        frontier: &Frontier,
    ) -> Result<(), StoreError> {
        let Some(first) = entries.first().map(|e| e.seq as i64) else {
            return Ok(());
        };
        let log = log.to_owned();
        let edge = frontier.to_bytes();
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.seq as i64, e.data.clone(), e.leaf_hash.to_vec()))
            .collect();
        self.run("append to the audit log", move |pool| async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            let result = async {
                let tx = client.transaction().await.map_err(db)?;
                let next: i64 = tx
                    .query_one(
                        "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_records WHERE log = $1",
                        &[&log],
                    )
                    .await
                    .map_err(db)?
                    .get(0);
                if next != first {
                    return Err(StoreError::Conflict(format!(
                        "audit log {log} continues at {next}, not {first}"
                    )));
                }
                let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
                let data: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
                let leaves: Vec<&[u8]> = rows.iter().map(|r| r.2.as_slice()).collect();
                tx.execute(
                    "INSERT INTO audit_records (log, seq, data, leaf_hash) \
                     SELECT $1, * FROM unnest($2::BIGINT[], $3::BYTEA[], $4::BYTEA[])",
                    &[&log, &seqs, &data, &leaves],
                )
                .await
                .map_err(db)?;
                tx.execute(
                    "INSERT INTO audit_frontiers (log, edge) VALUES ($1, $2) \
                     ON CONFLICT (log) DO UPDATE SET edge = excluded.edge",
                    &[&log, &edge],
                )
                .await
                .map_err(db)?;
                tx.commit().await.map_err(db)
            }
            .await;
            release(client, suspect(&result));
            result
        })
    }

    fn read(&self, log: &str, from: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        let log = log.to_owned();
        let (from, limit) = (from as i64, limit as i64);
        let rows = self.run("read the audit log", move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            client
                .query(
                    "SELECT seq, data, leaf_hash FROM audit_records WHERE log = $1 AND seq >= $2 \
                     ORDER BY seq LIMIT $3",
                    &[&log, &from, &limit],
                )
                .await
                .map_err(db)
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredEntry {
                    seq: position(r.get(0))?,
                    data: r.get(1),
                    leaf_hash: hash(r.get(2))?,
                })
            })
            .collect()
    }

    fn add_head(&self, log: &str, head: &SignedTreeHead) -> Result<(), StoreError> {
        let log = log.to_owned();
        let (size, root, time, signature) = (
            head.head.size as i64,
            head.head.root.to_vec(),
            head.head.time.0,
            head.signature.clone(),
        );
        self.run("sign the audit log", move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            client
                .execute(
                    "INSERT INTO audit_heads (log, size, root, time, signature) VALUES ($1, $2, $3, $4, $5)",
                    &[&log, &size, &root, &time, &signature],
                )
                .await
                .map(drop)
                .map_err(db)
        })
    }

    fn heads(&self, log: &str) -> Result<Vec<SignedTreeHead>, StoreError> {
        let log = log.to_owned();
        let rows = self.run("read the audit heads", move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            client
                .query(
                    "SELECT size, root, time, signature FROM audit_heads WHERE log = $1 ORDER BY size",
                    &[&log],
                )
                .await
                .map_err(db)
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(SignedTreeHead {
                    head: TreeHead {
                        size: position(r.get(0))?,
                        root: hash(r.get(1))?,
                        time: Timestamp(r.get(2)),
                    },
                    signature: r.get(3),
                })
            })
            .collect()
    }

    fn frontier(&self, log: &str) -> Result<(Option<Frontier>, u64), StoreError> {
        let log = log.to_owned();
        let (size, edge) = self.run("read the audit tree edge", move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            let size: i64 = client
                .query_one(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_records WHERE log = $1",
                    &[&log],
                )
                .await
                .map_err(db)?
                .get(0);
            let edge = client
                .query_opt("SELECT edge FROM audit_frontiers WHERE log = $1", &[&log])
                .await
                .map_err(db)?
                .map(|r| r.get::<_, Vec<u8>>(0));
            Ok((size, edge))
        })?;
        Ok((
            edge.as_deref().and_then(Frontier::from_bytes),
            position(size)?,
        ))
    }

    fn signing_key(&self, log: &str) -> Result<Option<LogKey>, StoreError> {
        let log = log.to_owned();
        let row = self.run("read the audit key", move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            client
                .query_opt(
                    "SELECT public_key, sealed FROM audit_keys WHERE log = $1",
                    &[&log],
                )
                .await
                .map_err(db)
        })?;
        Ok(row.map(|r| LogKey {
            public_key: r.get(0),
            sealed: r.get(1),
        }))
    }

    fn put_signing_key(&self, log: &str, key: &LogKey) -> Result<(), StoreError> {
        let log = log.to_owned();
        let (public, sealed) = (key.public_key.clone(), key.sealed.clone());
        self.run("store the audit key", move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            client
                .execute(
                    "INSERT INTO audit_keys (log, public_key, sealed) VALUES ($1, $2, $3)",
                    &[&log, &public, &sealed],
                )
                .await
                .map(drop)
                .map_err(db)
        })
    }

    fn logs(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.run("list the audit logs", move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            client
                .query("SELECT log FROM audit_keys ORDER BY log", &[])
                .await
                .map_err(db)
        })?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}
