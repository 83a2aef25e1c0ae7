//! [`AuditStore`] on the SQLite file: the audit tables (schema versions 5 and 7),
//! written through a connection of their own so that appending never waits
//! for the key store's connection, and the key store's never for the log.
//!
//! The tables refuse `UPDATE` and `DELETE` (triggers): the log is
//! append-only to anything that goes through SQLite's rules. Someone who
//! edits the file directly is caught by `keyfence audit verify`. The one
//! table that is updated, `audit_frontiers`, is the writer's cache of its
//! tree's right edge (not evidence: a wrong edge makes the writer sign heads
//! the records do not match, which `verify` reports).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use keyfence_core::audit::{AuditStore, Frontier, LogKey, SignedTreeHead, StoredEntry, TreeHead};
use keyfence_core::store::StoreError;
use keyfence_core::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};

use crate::sqlite::{backend, SqliteStore};

/// Schema version 5: the audit log.
pub(crate) const V5: &str = "
CREATE TABLE audit_records (
    log TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    PRIMARY KEY (log, seq)
) WITHOUT ROWID;
CREATE TABLE audit_heads (
    log TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    time INTEGER NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (log, size)
);
CREATE TABLE audit_keys (
    log TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    sealed BLOB NOT NULL
);
CREATE TRIGGER audit_records_append_only_update BEFORE UPDATE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_records_append_only_delete BEFORE DELETE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_heads_append_only_update BEFORE UPDATE ON audit_heads
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_heads_append_only_delete BEFORE DELETE ON audit_heads
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_keys_append_only_update BEFORE UPDATE ON audit_keys
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_keys_append_only_delete BEFORE DELETE ON audit_keys
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// Schema version 7: each log's tree edge, so a writer restarts in O(log n).
pub(crate) const V7: &str = "
CREATE TABLE audit_frontiers (
    log TEXT PRIMARY KEY,
    edge BLOB NOT NULL
);
";

/// The audit log in a SQLite file (the key store's file), on its own connection.
pub struct SqliteAuditStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteAuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteAuditStore")
    }
}

fn hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| StoreError::Corrupt(format!("audit hash of {} bytes", b.len())))
}

/// Runs one cached statement that returns no rows.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(backend)
}

/// Runs `f` in an `IMMEDIATE` transaction whose `BEGIN`, `COMMIT` and
/// `ROLLBACK` are cached statements: the writer commits once per batch, and
/// parsing those three afresh each time (as `Connection::transaction` does)
/// was a measurable share of its CPU.
fn in_cached_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    run_cached(conn, "BEGIN IMMEDIATE")?;
    match f(conn).and_then(|v| run_cached(conn, "COMMIT").map(|()| v)) {
        Ok(v) => Ok(v),
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = run_cached(conn, "ROLLBACK");
            }
            Err(e)
        }
    }
}

fn seq(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("audit position {v}")))
}

impl SqliteAuditStore {
    /// Opens the audit tables of the key store file at `path`, creating the
    /// file and migrating its schema as [`SqliteStore::open`] does.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        drop(SqliteStore::open(path)?);
        Self::open_existing(path)
    }

    /// Opens the audit tables of an existing, migrated file, without writing
    /// to it (an auditor's read).
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Backend(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AuditStore for SqliteAuditStore {
    fn append(
        &self,
        log: &str,
        entries: &[StoredEntry],
        frontier: &Frontier,
    ) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let conn = self.conn();
        in_cached_transaction(&conn, |tx| {
            let next: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_records WHERE log = ?1",
                )
                .and_then(|mut s| s.query_row([log], |r| r.get(0)))
                .map_err(backend)?;
            if seq(next)? != first.seq {
                return Err(StoreError::Conflict(format!(
                    "audit log {log} continues at {next}, not {}",
                    first.seq
                )));
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit_records (log, seq, data, leaf_hash) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(backend)?;
            for e in entries {
                insert
                    .execute(params![log, e.seq as i64, e.data, &e.leaf_hash[..]])
                    .map_err(backend)?;
            }
            tx.prepare_cached(
                "INSERT INTO audit_frontiers (log, edge) VALUES (?1, ?2) \
                 ON CONFLICT (log) DO UPDATE SET edge = excluded.edge",
            )
            .map_err(backend)?
            .execute(params![log, frontier.to_bytes()])
            .map_err(backend)?;
            Ok(())
        })
    }

    fn frontier(&self, log: &str) -> Result<(Option<Frontier>, u64), StoreError> {
        let conn = self.conn();
        let size: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_records WHERE log = ?1",
                [log],
                |r| r.get(0),
            )
            .map_err(backend)?;
        let edge: Option<Vec<u8>> = conn
            .query_row(
                "SELECT edge FROM audit_frontiers WHERE log = ?1",
                [log],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        Ok((edge.as_deref().and_then(Frontier::from_bytes), seq(size)?))
    }

    fn read(&self, log: &str, from: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, data, leaf_hash FROM audit_records WHERE log = ?1 AND seq >= ?2 \
                 ORDER BY seq LIMIT ?3",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![log, from as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (s, data, leaf) = row.map_err(backend)?;
            Ok(StoredEntry {
                seq: seq(s)?,
                data,
                leaf_hash: hash(leaf)?,
            })
        })
        .collect()
    }

    fn add_head(&self, log: &str, head: &SignedTreeHead) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO audit_heads (log, size, root, time, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    log,
                    head.head.size as i64,
                    &head.head.root[..],
                    head.head.time.0,
                    head.signature
                ],
            )
            .map(drop)
            .map_err(backend)
    }

    fn heads(&self, log: &str) -> Result<Vec<SignedTreeHead>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT size, root, time, signature FROM audit_heads WHERE log = ?1 ORDER BY size",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([log], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (size, root, time, signature) = row.map_err(backend)?;
            Ok(SignedTreeHead {
                head: TreeHead {
                    size: seq(size)?,
                    root: hash(root)?,
                    time: Timestamp(time),
                },
                signature,
            })
        })
        .collect()
    }

    fn signing_key(&self, log: &str) -> Result<Option<LogKey>, StoreError> {
        self.conn()
            .query_row(
                "SELECT public_key, sealed FROM audit_keys WHERE log = ?1",
                [log],
                |r| {
                    Ok(LogKey {
                        public_key: r.get(0)?,
                        sealed: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
    }

    fn put_signing_key(&self, log: &str, key: &LogKey) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO audit_keys (log, public_key, sealed) VALUES (?1, ?2, ?3)",
                params![log, key.public_key, key.sealed],
            )
            .map(drop)
            .map_err(backend)
    }

    fn logs(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT log FROM audit_keys ORDER BY log")
            .map_err(backend)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
        rows.map(|r| r.map_err(backend)).collect()
    }
}
