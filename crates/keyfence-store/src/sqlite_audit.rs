//! [`AuditStore`] on the SQLite file: the audit tables (schema versions 5, 7
//! and 12), written through a connection of their own so that appending never
//! waits for the key store's connection, and the key store's never for the log.
//!
//! A log's records are in its segment file beside the database
//! ([`crate::audit_segment`]: one `pwrite` and one `fdatasync` per batch);
//! the database holds its signed heads, its key, where the segment starts
//! (`audit_segments`) and an index of marks into it (`audit_marks`, every
//! [`MARK_EVERY`] records: a position, its byte offset and the tree there).
//! Records of a log written before segments existed stay in `audit_records`
//! and the segment continues after them.
//!
//! The tables refuse `UPDATE` and `DELETE` (triggers): the log is
//! append-only to anything that goes through SQLite's rules. Someone who
//! edits the file directly is caught by `keyfence audit verify`. The one
//! table that is updated, `audit_frontiers`, is the writer's cache of its
//! tree's right edge (not evidence: a wrong edge makes the writer sign heads
//! the records do not match, which `verify` reports).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use keyfence_core::audit::{AuditStore, Frontier, LogKey, SignedTreeHead, StoredEntry, TreeHead};
use keyfence_core::store::StoreError;
use keyfence_core::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};

use crate::audit_segment::{self, segment_path, Mark, SegmentWriter, MARK_EVERY};
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

/// Schema version 12: records in segment files, indexed here.
pub(crate) const V12: &str = "
CREATE TABLE audit_segments (
    log TEXT PRIMARY KEY,
    base INTEGER NOT NULL
);
CREATE TABLE audit_marks (
    log TEXT NOT NULL,
    size INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    edge BLOB NOT NULL,
    PRIMARY KEY (log, size)
) WITHOUT ROWID;
CREATE TRIGGER audit_segments_append_only_update BEFORE UPDATE ON audit_segments
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_segments_append_only_delete BEFORE DELETE ON audit_segments
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_marks_append_only_update BEFORE UPDATE ON audit_marks
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_marks_append_only_delete BEFORE DELETE ON audit_marks
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// The audit log in a SQLite file (the key store's file), on its own
/// connection, with each log's records in a segment file beside it.
pub struct SqliteAuditStore {
    conn: Mutex<Connection>,
    /// The SQLite file: segments are named after it.
    database: PathBuf,
    /// False for an auditor's read: never creates, locks or cuts a segment.
    writable: bool,
    /// The segments this store writes, by log.
    writers: Mutex<HashMap<String, SegmentWriter>>,
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
        let mut store = Self::open_existing(path)?;
        store.writable = true;
        Ok(store)
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
            database: path.to_path_buf(),
            writable: false,
            writers: Mutex::new(HashMap::new()),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writers(&self) -> MutexGuard<'_, HashMap<String, SegmentWriter>> {
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The segment file of `log`.
    pub fn segment_path(&self, log: &str) -> PathBuf {
        segment_path(&self.database, log)
    }

    /// The writer of `log`'s segment, opened on first use; `None` if the
    /// log has no segment and `create` is false.
    fn writer<'w>(
        &self,
        writers: &'w mut HashMap<String, SegmentWriter>,
        log: &str,
        create: bool,
    ) -> Result<Option<&'w mut SegmentWriter>, StoreError> {
        if !writers.contains_key(log) {
            let mark = {
                let conn = self.conn();
                match latest_mark(&conn, log, u64::MAX)? {
                    Some(mark) => mark,
                    None if create => start_segment(&conn, log)?,
                    None => return Ok(None),
                }
            };
            let writer = SegmentWriter::open(&self.segment_path(log), mark)?;
            writers.insert(log.to_owned(), writer);
        }
        Ok(writers.get_mut(log))
    }
}

/// The base of `log`'s segment, if it has one.
fn segment_base(conn: &Connection, log: &str) -> Result<Option<u64>, StoreError> {
    conn.prepare_cached("SELECT base FROM audit_segments WHERE log = ?1")
        .and_then(|mut s| s.query_row([log], |r| r.get::<_, i64>(0)).optional())
        .map_err(backend)?
        .map(seq)
        .transpose()
}

/// The latest index mark of `log` at or before position `at_most`.
fn latest_mark(conn: &Connection, log: &str, at_most: u64) -> Result<Option<Mark>, StoreError> {
    let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
    let row: Option<(i64, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT size, offset, edge FROM audit_marks WHERE log = ?1 AND size <= ?2 \
             ORDER BY size DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![log, at_most], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(backend)?;
    row.map(|(size, offset, edge)| {
        let size = seq(size)?;
        let edge = Frontier::from_bytes(&edge)
            .filter(|e| e.size() == size)
            .ok_or_else(|| StoreError::Corrupt(format!("audit mark of {log} at {size}")))?;
        Ok(Mark {
            size,
            offset: seq(offset)?,
            edge,
        })
    })
    .transpose()
}

fn insert_mark(conn: &Connection, log: &str, mark: &Mark) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO audit_marks (log, size, offset, edge) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut s| {
            s.execute(params![
                log,
                mark.size as i64,
                mark.offset as i64,
                mark.edge.to_bytes()
            ])
        })
        .map(drop)
        .map_err(backend)
}

/// Gives `log` a segment that continues its records in `audit_records`,
/// with the mark of where it starts.
fn start_segment(conn: &Connection, log: &str) -> Result<Mark, StoreError> {
    in_cached_transaction(conn, |tx| {
        let base = legacy_size(tx, log)?;
        let edge = legacy_tree(tx, log, base)?;
        tx.prepare_cached("INSERT INTO audit_segments (log, base) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![log, base as i64]))
            .map_err(backend)?;
        let mark = Mark {
            size: base,
            offset: 0,
            edge,
        };
        insert_mark(tx, log, &mark)?;
        Ok(mark)
    })
}

/// Records of `log` in `audit_records` (written before segments).
fn legacy_size(conn: &Connection, log: &str) -> Result<u64, StoreError> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_records WHERE log = ?1")
        .and_then(|mut s| s.query_row([log], |r| r.get(0)))
        .map_err(backend)
        .and_then(seq)
}

/// The tree edge stored with the last append to `audit_records` (unreadable
/// bytes are no edge: the writer rebuilds it).
fn legacy_edge(conn: &Connection, log: &str) -> Result<Option<Frontier>, StoreError> {
    let stored: Option<Vec<u8>> = conn
        .query_row(
            "SELECT edge FROM audit_frontiers WHERE log = ?1",
            [log],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    Ok(stored.as_deref().and_then(Frontier::from_bytes))
}

/// The tree of the `size` records of `log` in `audit_records`: the stored
/// edge if it is of that size, else rebuilt from their leaf hashes.
fn legacy_tree(conn: &Connection, log: &str, size: u64) -> Result<Frontier, StoreError> {
    if let Some(edge) = legacy_edge(conn, log)?.filter(|e| e.size() == size) {
        return Ok(edge);
    }
    let mut tree = Frontier::new();
    for entry in legacy_read(conn, log, 0, usize::MAX)? {
        if entry.seq != tree.size() {
            return Err(StoreError::Corrupt(format!(
                "audit log {log}: record {} at position {}",
                entry.seq,
                tree.size()
            )));
        }
        tree.push(entry.leaf_hash);
    }
    Ok(tree)
}

/// Up to `limit` records of `log` from `audit_records`.
fn legacy_read(
    conn: &Connection,
    log: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, data, leaf_hash FROM audit_records WHERE log = ?1 AND seq >= ?2 \
             ORDER BY seq LIMIT ?3",
        )
        .map_err(backend)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![log, from as i64, limit], |r| {
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

impl AuditStore for SqliteAuditStore {
    fn append(
        &self,
        log: &str,
        entries: &[StoredEntry],
        frontier: &Frontier,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        if !self.writable {
            return Err(StoreError::Backend(format!(
                "{} is open for reading only",
                self.database.display()
            )));
        }
        let mut writers = self.writers();
        let Some(writer) = self.writer(&mut writers, log, true)? else {
            return Err(StoreError::Corrupt(format!(
                "audit log {log} has no segment"
            )));
        };
        if let Err(e) = writer.append(entries, frontier) {
            if !matches!(e, StoreError::Conflict(_)) {
                // Reopen on the next append: it finds the end from the file.
                writers.remove(log);
            }
            return Err(e);
        }
        if writer.size() - writer.marked >= MARK_EVERY {
            let mark = Mark {
                size: writer.size(),
                offset: writer.end(),
                edge: writer.frontier.clone(),
            };
            // A mark is an index, not evidence: without it a restart or a
            // read walks further, nothing is lost.
            match insert_mark(&self.conn(), log, &mark) {
                Ok(()) => writer.marked = mark.size,
                Err(e) => tracing::warn!(error = %e, log, "storing an audit index mark failed"),
            }
        }
        Ok(())
    }

    fn frontier(&self, log: &str) -> Result<(Option<Frontier>, u64), StoreError> {
        if self.writable {
            let mut writers = self.writers();
            if let Some(writer) = self.writer(&mut writers, log, false)? {
                return Ok((Some(writer.frontier.clone()), writer.size()));
            }
        }
        let conn = self.conn();
        if segment_base(&conn, log)?.is_some() {
            let mark = latest_mark(&conn, log, u64::MAX)?
                .ok_or_else(|| StoreError::Corrupt(format!("audit log {log}: no index mark")))?;
            drop(conn);
            let tree = audit_segment::tree(&self.segment_path(log), mark)?;
            let size = tree.size();
            return Ok((Some(tree), size));
        }
        Ok((legacy_edge(&conn, log)?, legacy_size(&conn, log)?))
    }

    fn read(&self, log: &str, from: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        let conn = self.conn();
        let base = segment_base(&conn, log)?;
        let mut out = match base {
            Some(base) if from >= base => Vec::new(),
            _ => legacy_read(&conn, log, from, limit)?,
        };
        let Some(base) = base else {
            return Ok(out);
        };
        if out.len() >= limit {
            return Ok(out);
        }
        let from = from.max(base);
        let mark = latest_mark(&conn, log, from)?
            .ok_or_else(|| StoreError::Corrupt(format!("audit log {log}: no index mark")))?;
        drop(conn);
        out.extend(audit_segment::read(
            &self.segment_path(log),
            &mark,
            from,
            limit - out.len(),
        )?);
        Ok(out)
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
