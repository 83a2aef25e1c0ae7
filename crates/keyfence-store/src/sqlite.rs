//! The SQLite adapter.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use keyfence_core::model::{Alias, KeyMetadata};
use keyfence_core::store::{DomainKeyRecord, Snapshot, StoreError, StoredKey, VersionRecord};
use keyfence_core::{AliasName, KeyId, Store, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::format;

/// Schema version this build writes.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS domain_keys (
    id INTEGER PRIMARY KEY,
    wrapped BLOB NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS key_versions (
    key_id TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    domain_key_id INTEGER NOT NULL REFERENCES domain_keys(id),
    wrapped BLOB NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (account, name)
);
";

/// A [`Store`] in one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(err, msg)
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(msg.unwrap_or_else(|| err.to_string()))
        }
        other => StoreError::Backend(other.to_string()),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn parse_key_id(s: &str) -> Result<KeyId, StoreError> {
    s.parse().map_err(|_| corrupt("key id", s))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        conn.execute_batch(crate::sqlite_cluster::SCHEMA)
            .map_err(backend)?;
        let version: Option<i64> = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(backend)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "database schema version {other}; this build reads {SCHEMA_VERSION}"
                )))
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection, for the cluster tables ([`crate::sqlite_cluster`]).
    pub(crate) fn connection(&self) -> MutexGuard<'_, Connection> {
        self.conn()
    }

    /// The durability settings of the store's own connection, as SQLite reports
    /// them: `PRAGMA journal_mode` (`"wal"`) and `PRAGMA synchronous` (2 = FULL).
    pub fn durability(&self) -> Result<(String, i64), StoreError> {
        let conn = self.conn();
        let journal = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(backend)?;
        let synchronous = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(backend)?;
        Ok((journal, synchronous))
    }

    /// Runs `f` in an IMMEDIATE transaction and commits it.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }
}

fn metadata_json(key: &KeyMetadata) -> Result<String, StoreError> {
    format::encode(key)
}

fn put_version(tx: &rusqlite::Transaction<'_>, v: &VersionRecord) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO key_versions (key_id, version, domain_key_id, wrapped, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![v.key_id.to_string(), v.version, v.domain_key_id, v.wrapped, v.created.0],
    )
    .map_err(backend)?;
    Ok(())
}

fn update_metadata(tx: &rusqlite::Transaction<'_>, key: &KeyMetadata) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "UPDATE keys SET metadata = ?2 WHERE id = ?1",
            params![key.id.to_string(), metadata_json(key)?],
        )
        .map_err(backend)?;
    if n != 1 {
        return Err(StoreError::Backend(format!("key {} is not stored", key.id)));
    }
    Ok(())
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let conn = self.conn();
        let mut snapshot = Snapshot::default();

        let mut stmt = conn
            .prepare("SELECT id, wrapped, created FROM domain_keys ORDER BY id")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DomainKeyRecord {
                    id: r.get(0)?,
                    wrapped: r.get(1)?,
                    created: Timestamp(r.get(2)?),
                })
            })
            .map_err(backend)?;
        for row in rows {
            snapshot.domain_keys.push(row.map_err(backend)?);
        }

        let mut stmt = conn
            .prepare("SELECT id, metadata FROM keys ORDER BY id")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(backend)?;
        let mut by_id = std::collections::BTreeMap::new();
        for row in rows {
            let (id, json) = row.map_err(backend)?;
            let metadata =
                format::decode(&json).map_err(|e| corrupt(&format!("metadata of {id}"), e))?;
            if metadata.id.to_string() != id {
                return Err(corrupt(
                    "metadata",
                    format!("row {id} holds key {}", metadata.id),
                ));
            }
            by_id.insert(
                id,
                StoredKey {
                    metadata,
                    versions: Vec::new(),
                },
            );
        }

        let mut stmt = conn
            .prepare("SELECT key_id, version, domain_key_id, wrapped, created FROM key_versions ORDER BY key_id, version")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (key_id, version, domain_key_id, wrapped, created) = row.map_err(backend)?;
            let record = VersionRecord {
                key_id: parse_key_id(&key_id)?,
                version,
                domain_key_id,
                wrapped,
                created: Timestamp(created),
            };
            by_id
                .get_mut(&key_id)
                .ok_or_else(|| corrupt("key version", format!("orphan version of {key_id}")))?
                .versions
                .push(record);
        }
        snapshot.keys = by_id.into_values().collect();

        let mut stmt = conn
            .prepare("SELECT account, name, target, created, updated FROM aliases ORDER BY account, name")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (account, name, target, created, updated) = row.map_err(backend)?;
            snapshot.aliases.push(Alias {
                account,
                name: AliasName::parse(&name).map_err(|e| corrupt("alias", e))?,
                target: parse_key_id(&target)?,
                created: Timestamp(created),
                updated: Timestamp(updated),
            });
        }
        Ok(snapshot)
    }

    fn insert_domain_key(&self, key: &DomainKeyRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO domain_keys (id, wrapped, created) VALUES (?1, ?2, ?3)",
                params![key.id, key.wrapped, key.created.0],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn insert_key(&self, key: &KeyMetadata, versions: &[VersionRecord]) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO keys (id, account, metadata) VALUES (?1, ?2, ?3)",
                params![key.id.to_string(), key.account, metadata_json(key)?],
            )
            .map_err(backend)?;
            versions.iter().try_for_each(|v| put_version(tx, v))
        })
    }

    fn replace_versions(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            update_metadata(tx, key)?;
            tx.execute(
                "DELETE FROM key_versions WHERE key_id = ?1",
                [key.id.to_string()],
            )
            .map_err(backend)?;
            versions.iter().try_for_each(|v| put_version(tx, v))
        })
    }

    fn update_key(&self, key: &KeyMetadata) -> Result<(), StoreError> {
        self.write(|tx| update_metadata(tx, key))
    }

    fn add_version(&self, key: &KeyMetadata, version: &VersionRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            update_metadata(tx, key)?;
            put_version(tx, version)
        })
    }

    fn delete_key(&self, id: &KeyId) -> Result<(), StoreError> {
        self.write(|tx| {
            let id = id.to_string();
            tx.execute("DELETE FROM aliases WHERE target = ?1", [&id])
                .map_err(backend)?;
            tx.execute("DELETE FROM key_versions WHERE key_id = ?1", [&id])
                .map_err(backend)?;
            tx.execute("DELETE FROM keys WHERE id = ?1", [&id])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn insert_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO aliases (account, name, target, created, updated) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![alias.account, alias.name.as_str(), alias.target.to_string(), alias.created.0, alias.updated.0],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn update_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE aliases SET target = ?3, updated = ?4 WHERE account = ?1 AND name = ?2",
                    params![
                        alias.account,
                        alias.name.as_str(),
                        alias.target.to_string(),
                        alias.updated.0
                    ],
                )
                .map_err(backend)?;
            if n != 1 {
                return Err(StoreError::Backend(format!(
                    "alias {} is not stored",
                    alias.name.as_str()
                )));
            }
            Ok(())
        })
    }

    fn delete_alias(&self, account: &str, name: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM aliases WHERE account = ?1 AND name = ?2",
                params![account, name],
            )
            .map_err(backend)?;
            Ok(())
        })
    }
}
