//! The SQLite adapter: one file, one writer at a time.
//!
//! Several processes may share the file (a development cluster on one host,
//! opened with [`SqliteStore::open_shared`]): WAL lets readers run beside the
//! writer, and a 5 s busy timeout waits for the write lock. Every change runs
//! in an `IMMEDIATE` transaction, so writers are serialized and the change
//! feed's sequence numbers are taken in commit order: a reader that remembers
//! the highest `seq` it has read never skips a change.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use keyfence_core::authz::StoredKeyPolicy;
use keyfence_core::model::{Alias, KeyMetadata};
use keyfence_core::store::{
    Change, ChangeBatch, ChangedEntity, DomainKeyRecord, FeedCursor, KeyAuthz, Revision, Rewrap,
    Snapshot, StoreError, StoredKey, VersionRecord,
};
use keyfence_core::{AliasName, KeyId, Store, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::format;

/// Schema version 1: keys, versions, aliases, domain keys.
const V1: &str = "
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

/// Schema version 2: a revision per key (for conditional writes) and the
/// append-only change feed, written by triggers in the changing transaction.
const V2: &str = "
ALTER TABLE keys ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entity TEXT NOT NULL,
    key_id TEXT,
    domain_key_id INTEGER,
    account TEXT,
    alias_name TEXT
);
CREATE TRIGGER keys_insert_feed AFTER INSERT ON keys
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('key', NEW.id); END;
CREATE TRIGGER keys_update_feed AFTER UPDATE ON keys
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('key', NEW.id); END;
CREATE TRIGGER keys_delete_feed AFTER DELETE ON keys
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('key', OLD.id); END;
CREATE TRIGGER key_versions_insert_feed AFTER INSERT ON key_versions
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('key', NEW.key_id); END;
CREATE TRIGGER key_versions_delete_feed AFTER DELETE ON key_versions
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('key', OLD.key_id); END;
CREATE TRIGGER aliases_insert_feed AFTER INSERT ON aliases
    BEGIN INSERT INTO changes (entity, account, alias_name) VALUES ('alias', NEW.account, NEW.name); END;
CREATE TRIGGER aliases_update_feed AFTER UPDATE ON aliases
    BEGIN INSERT INTO changes (entity, account, alias_name) VALUES ('alias', NEW.account, NEW.name); END;
CREATE TRIGGER aliases_delete_feed AFTER DELETE ON aliases
    BEGIN INSERT INTO changes (entity, account, alias_name) VALUES ('alias', OLD.account, OLD.name); END;
CREATE TRIGGER domain_keys_insert_feed AFTER INSERT ON domain_keys
    BEGIN INSERT INTO changes (entity, domain_key_id) VALUES ('domain_key', NEW.id); END;
";

/// Schema version 3: the feed's horizon. Entries at or below it were trimmed
/// ([`Store::trim_feed`]); a reader whose cursor is below it must reload.
const V3: &str = "
CREATE TABLE feed_horizon (id INTEGER PRIMARY KEY CHECK (id = 1), horizon INTEGER NOT NULL);
INSERT INTO feed_horizon (id, horizon) VALUES (1, 0);
";

/// Schema version 10: aliases are named per (account, region), the region of
/// their target key, as AWS has them; existing aliases move to their target
/// key's region. The feed's alias entries carry the region; older alias
/// entries (without one) are dropped and the horizon raised past them, so a
/// reader whose cursor is older reloads.
const V10: &str = "
CREATE TABLE aliases_v10 (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (account, region, name)
);
INSERT INTO aliases_v10 (account, region, name, target, created, updated)
    SELECT a.account, json_extract(k.metadata, '$.region'), a.name, a.target, a.created, a.updated
    FROM aliases a JOIN keys k ON k.id = a.target;
DROP TABLE aliases;
ALTER TABLE aliases_v10 RENAME TO aliases;
CREATE INDEX aliases_target ON aliases (target);
ALTER TABLE changes ADD COLUMN alias_region TEXT;
UPDATE feed_horizon SET horizon = MAX(horizon, (SELECT COALESCE(MAX(seq), 0) FROM changes));
DELETE FROM changes WHERE entity = 'alias';
CREATE TRIGGER aliases_insert_feed AFTER INSERT ON aliases
    BEGIN INSERT INTO changes (entity, account, alias_region, alias_name)
        VALUES ('alias', NEW.account, NEW.region, NEW.name); END;
CREATE TRIGGER aliases_update_feed AFTER UPDATE ON aliases
    BEGIN INSERT INTO changes (entity, account, alias_region, alias_name)
        VALUES ('alias', NEW.account, NEW.region, NEW.name); END;
CREATE TRIGGER aliases_delete_feed AFTER DELETE ON aliases
    BEGIN INSERT INTO changes (entity, account, alias_region, alias_name)
        VALUES ('alias', OLD.account, OLD.region, OLD.name); END;
";

/// `(version, SQL)` in order; a database at version n gets every later one.
/// Never edit an applied migration: add one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, V1),
    (2, V2),
    (3, V3),
    (4, crate::sqlite_authz::V4),
    (5, crate::sqlite_audit::V5),
    (6, crate::sqlite_authz::V6),
    (7, crate::sqlite_audit::V7),
    (8, crate::format::V8_MULTI_REGION),
    (9, crate::sqlite_quorum::V9),
    (10, V10),
    (11, crate::sqlite_domain_keys::V11),
];

/// Schema version this build writes.
const SCHEMA_VERSION: i64 = 11;

/// A [`Store`] in one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    shared: bool,
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(err, msg)
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(msg.unwrap_or_else(|| err.to_string()))
        }
        rusqlite::Error::SqliteFailure(err, msg)
            if matches!(
                err.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(msg.unwrap_or_else(|| err.to_string()))
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

/// Brings the schema to [`SCHEMA_VERSION`], in one IMMEDIATE transaction so
/// that processes opening the file together migrate it once.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")
        .map_err(backend)?;
    let found: Option<i64> = tx
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    let applied = found.unwrap_or(0);
    if applied > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "database schema version {applied}; this build reads up to {SCHEMA_VERSION}"
        )));
    }
    for (_, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.execute_batch(sql).map_err(backend)?;
    }
    match found {
        None => tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [SCHEMA_VERSION],
        ),
        Some(_) => tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION]),
    }
    .map_err(backend)?;
    tx.commit().map_err(backend)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` for one node, and
    /// migrates an older schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, false)
    }

    /// Opens the database at `path` as one of several nodes sharing it (on
    /// one host): the node's replica follows the change feed and its age is bounded.
    pub fn open_shared(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, shared: bool) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        migrate(&mut conn)?;
        conn.execute_batch(crate::sqlite_cluster::SCHEMA)
            .map_err(backend)?;
        Ok(Self {
            conn: Mutex::new(conn),
            shared,
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

    /// [`Self::write`], for the other tables' modules.
    pub(crate) fn write_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write(f)
    }

    /// [`Self::read`], for the other tables' modules.
    pub(crate) fn read_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read(f)
    }

    /// Runs `f` in a read transaction: one snapshot of the file.
    fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }
}

fn metadata_json(key: &KeyMetadata) -> Result<String, StoreError> {
    format::encode(key)
}

fn put_version(tx: &Connection, v: &VersionRecord) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO key_versions (key_id, version, domain_key_id, wrapped, created) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![v.key_id.to_string(), v.version, v.domain_key_id, v.wrapped, v.created.0]))
    .map_err(backend)?;
    Ok(())
}

fn revision_of(conn: &Connection, id: &KeyId) -> Result<Option<Revision>, StoreError> {
    conn.query_row(
        "SELECT revision FROM keys WHERE id = ?1",
        [id.to_string()],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)
}

/// Replaces a key's metadata at revision `expected` and increments it.
fn update_metadata(
    tx: &Connection,
    key: &KeyMetadata,
    expected: Revision,
) -> Result<Revision, StoreError> {
    let n = tx
        .execute(
            "UPDATE keys SET metadata = ?2, revision = revision + 1 WHERE id = ?1 AND revision = ?3",
            params![key.id.to_string(), metadata_json(key)?, expected],
        )
        .map_err(backend)?;
    if n != 1 {
        return Err(StoreError::Stale {
            key_id: key.id,
            expected,
            found: revision_of(tx, &key.id)?,
        });
    }
    Ok(expected + 1)
}

fn domain_keys(conn: &Connection) -> Result<Vec<DomainKeyRecord>, StoreError> {
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
    rows.map(|r| r.map_err(backend)).collect()
}

/// Which keys [`keys`] reads.
enum KeyFilter<'a> {
    /// Every key.
    All,
    /// The one with this id.
    One(&'a KeyId),
    /// Up to `limit` keys with ids after `after` (text order).
    Page { after: Option<String>, limit: usize },
}

/// Keys with their versions, as `filter` selects them, in id order.
fn keys(conn: &Connection, filter: KeyFilter<'_>) -> Result<Vec<StoredKey>, StoreError> {
    // Each filter has its own statement, so that SQLite walks the primary
    // key's index over exactly the range it needs (a page must not scan the
    // keys before it: loading a million keys would be quadratic). `after` is
    // the lower bound (exclusive; "" is below every id), or the one id.
    let (one, after, limit): (bool, String, i64) = match filter {
        KeyFilter::All => (false, String::new(), -1),
        KeyFilter::One(id) => (true, id.to_string(), -1),
        KeyFilter::Page { after, limit } => (
            false,
            after.unwrap_or_default(),
            i64::try_from(limit).unwrap_or(i64::MAX),
        ),
    };
    let mut stmt = conn
        .prepare_cached(if one {
            "SELECT id, metadata, revision FROM keys WHERE id = ?1 LIMIT ?2"
        } else {
            "SELECT id, metadata, revision FROM keys WHERE id > ?1 ORDER BY id LIMIT ?2"
        })
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(backend)?;
    let mut by_id = BTreeMap::new();
    for row in rows {
        let (id, json, revision) = row.map_err(backend)?;
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
                revision,
            },
        );
    }
    let Some(last) = by_id.keys().next_back().cloned() else {
        return Ok(Vec::new());
    };
    // The versions of exactly the keys read: ids in (after, last], or the one
    // (`last` is then its id).
    let mut stmt = conn
        .prepare_cached(if one {
            "SELECT key_id, version, domain_key_id, wrapped, created FROM key_versions \
             WHERE key_id = ?2 ORDER BY version"
        } else {
            "SELECT key_id, version, domain_key_id, wrapped, created FROM key_versions \
             WHERE key_id > ?1 AND key_id <= ?2 ORDER BY key_id, version"
        })
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![after, last], |r| {
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
    Ok(by_id.into_values().collect())
}

/// Adds one alias row.
fn put_alias(conn: &Connection, a: &Alias) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO aliases (account, region, name, target, created, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            a.account,
            a.region,
            a.name.as_str(),
            a.target.to_string(),
            a.created.0,
            a.updated.0
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// Aliases: all of them, or the one `only` names (account, region, name).
fn aliases(conn: &Connection, only: Option<(&str, &str, &str)>) -> Result<Vec<Alias>, StoreError> {
    let (account, region, name) = match only {
        Some((a, r, n)) => (Some(a), Some(r), Some(n)),
        None => (None, None, None),
    };
    let mut stmt = conn
        .prepare(
            "SELECT account, region, name, target, created, updated FROM aliases \
             WHERE ?1 IS NULL OR (account = ?1 AND region = ?2 AND name = ?3) \
             ORDER BY account, region, name",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![account, region, name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (account, region, name, target, created, updated) = row.map_err(backend)?;
        out.push(Alias {
            account,
            region,
            name: AliasName::parse(&name).map_err(|e| corrupt("alias", e))?,
            target: parse_key_id(&target)?,
            created: Timestamp(created),
            updated: Timestamp(updated),
        });
    }
    Ok(out)
}

/// The feed's position: the highest sequence number written (or trimmed:
/// trimming never removes entries beyond the horizon, which it raises).
fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let seq: i64 = conn
        .query_row(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM changes), 0), \
             (SELECT horizon FROM feed_horizon))",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    u64::try_from(seq).map_err(|_| corrupt("change feed seq", seq))
}

/// The feed's horizon: entries at or below it may have been trimmed.
fn horizon(conn: &Connection) -> Result<u64, StoreError> {
    let seq: i64 = conn
        .query_row("SELECT horizon FROM feed_horizon", [], |r| r.get(0))
        .map_err(backend)?;
    u64::try_from(seq).map_err(|_| corrupt("feed horizon", seq))
}

/// Which entity a feed row names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum EntityRef {
    DomainKey(u32),
    Key(String),
    Alias(String, String, String),
    KeyAuthz(String),
}

/// The changes after `cursor`, each entity once with its current state.
fn changes_in(conn: &Connection, cursor: FeedCursor) -> Result<ChangeBatch, StoreError> {
    let last = last_seq(conn)?;
    if last < cursor.as_u64() || cursor.as_u64() < horizon(conn)? {
        return Ok(ChangeBatch {
            changes: Vec::new(),
            cursor: FeedCursor::from_u64(last),
            rewound: true,
        });
    }
    let mut stmt = conn
        .prepare(
            "SELECT seq, entity, key_id, domain_key_id, account, alias_name, alias_region \
             FROM changes WHERE seq > ?1 ORDER BY seq",
        )
        .map_err(backend)?;
    let from =
        i64::try_from(cursor.as_u64()).map_err(|_| corrupt("feed cursor", cursor.as_u64()))?;
    let rows = stmt
        .query_map([from], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<u32>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .map_err(backend)?;
    let mut latest = BTreeMap::new();
    for row in rows {
        let (seq, entity, key_id, domain_key_id, account, alias_name, alias_region) =
            row.map_err(backend)?;
        let named = match entity.as_str() {
            "key" => key_id.map(EntityRef::Key),
            "domain_key" => domain_key_id.map(EntityRef::DomainKey),
            "alias" => account
                .zip(alias_region)
                .zip(alias_name)
                .map(|((a, r), n)| EntityRef::Alias(a, r, n)),
            "authz" => key_id.map(EntityRef::KeyAuthz),
            _ => None,
        }
        .ok_or_else(|| corrupt("change feed row", format!("seq {seq}: {entity}")))?;
        latest.insert(named, seq);
    }
    let mut changes = Vec::with_capacity(latest.len());
    let mut authz_version = None;
    for (entity, seq) in latest {
        let entity = match entity {
            EntityRef::Key(id) => {
                let id = parse_key_id(&id)?;
                ChangedEntity::Key {
                    current: keys(conn, KeyFilter::One(&id))?.pop().map(Box::new),
                    id,
                }
            }
            EntityRef::DomainKey(id) => ChangedEntity::DomainKey {
                current: domain_keys(conn)?.into_iter().find(|d| d.id == id),
                id,
            },
            EntityRef::Alias(account, region, name) => ChangedEntity::Alias {
                current: aliases(conn, Some((&account, &region, &name)))?.pop(),
                name: AliasName::parse(&name).map_err(|e| corrupt("change feed alias", e))?,
                account,
                region,
            },
            EntityRef::KeyAuthz(id) => {
                let id = parse_key_id(&id)?;
                let version = match authz_version {
                    Some(v) => v,
                    None => *authz_version.insert(crate::sqlite_authz::authz_version_in(conn)?),
                };
                ChangedEntity::KeyAuthz {
                    current: crate::sqlite_authz::key_authz_in(conn, &id, version)?,
                    id,
                }
            }
        };
        changes.push(Change { seq, entity });
    }
    changes.sort_by_key(|c| c.seq);
    Ok(ChangeBatch {
        changes,
        cursor: FeedCursor::from_u64(last),
        rewound: false,
    })
}

impl Store for SqliteStore {
    fn is_shared(&self) -> bool {
        self.shared
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        self.read(|tx| {
            Ok(Snapshot {
                domain_keys: domain_keys(tx)?,
                keys: keys(tx, KeyFilter::All)?,
                aliases: aliases(tx, None)?,
                cursor: FeedCursor::from_u64(last_seq(tx)?),
            })
        })
    }

    fn load_head(&self) -> Result<Snapshot, StoreError> {
        self.read(|tx| {
            Ok(Snapshot {
                domain_keys: domain_keys(tx)?,
                keys: Vec::new(),
                aliases: aliases(tx, None)?,
                cursor: FeedCursor::from_u64(last_seq(tx)?),
            })
        })
    }

    fn load_keys(&self, after: Option<&KeyId>, limit: usize) -> Result<Vec<StoredKey>, StoreError> {
        let after = after.map(ToString::to_string);
        self.read(|tx| keys(tx, KeyFilter::Page { after, limit }))
    }

    fn load_key(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        self.read(|tx| Ok(keys(tx, KeyFilter::One(id))?.pop()))
    }

    fn load_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        Ok(aliases(&self.conn(), Some((account, region, name)))?.pop())
    }

    fn key_revision(&self, id: &KeyId) -> Result<Option<Revision>, StoreError> {
        revision_of(&self.conn(), id)
    }

    fn changes_since(&self, cursor: FeedCursor) -> Result<ChangeBatch, StoreError> {
        self.read(|tx| changes_in(tx, cursor))
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

    fn domain_keys(&self) -> Result<Vec<DomainKeyRecord>, StoreError> {
        self.read(|tx| domain_keys(tx))
    }

    fn versions_under(
        &self,
        domain_key_id: u32,
        after: Option<(&KeyId, u32)>,
        limit: usize,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        self.read(|tx| crate::sqlite_domain_keys::versions_under(tx, domain_key_id, after, limit))
    }

    fn rewrap_versions(&self, rewraps: &[Rewrap]) -> Result<usize, StoreError> {
        self.write(|tx| crate::sqlite_domain_keys::rewrap(tx, rewraps))
    }

    fn destroy_domain_key(&self, id: u32) -> Result<bool, StoreError> {
        self.write(|tx| crate::sqlite_domain_keys::destroy(tx, id))
    }

    fn insert_key(&self, key: &KeyMetadata, versions: &[VersionRecord]) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO keys (id, account, metadata, revision) VALUES (?1, ?2, ?3, 1)",
                params![key.id.to_string(), key.account, metadata_json(key)?],
            )
            .map_err(backend)?;
            versions.iter().try_for_each(|v| put_version(tx, v))
        })
    }

    fn insert_key_with_policy(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
        policy: &StoredKeyPolicy,
    ) -> Result<KeyAuthz, StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO keys (id, account, metadata, revision) VALUES (?1, ?2, ?3, 1)",
                params![key.id.to_string(), key.account, metadata_json(key)?],
            )
            .map_err(backend)?;
            versions.iter().try_for_each(|v| put_version(tx, v))?;
            crate::sqlite_authz::put_policy_in(tx, policy)?;
            crate::sqlite_authz::state_after(tx, &key.id)
        })
    }

    fn replace_versions(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.write(|tx| {
            let revision = update_metadata(tx, key, expected)?;
            tx.execute(
                "DELETE FROM key_versions WHERE key_id = ?1",
                [key.id.to_string()],
            )
            .map_err(backend)?;
            versions.iter().try_for_each(|v| put_version(tx, v))?;
            Ok(revision)
        })
    }

    fn update_key(&self, key: &KeyMetadata, expected: Revision) -> Result<Revision, StoreError> {
        self.write(|tx| update_metadata(tx, key, expected))
    }

    fn add_version(
        &self,
        key: &KeyMetadata,
        version: &VersionRecord,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.write(|tx| {
            let revision = update_metadata(tx, key, expected)?;
            put_version(tx, version)?;
            Ok(revision)
        })
    }

    fn delete_key(&self, id: &KeyId, expected: Revision) -> Result<(), StoreError> {
        self.write(|tx| {
            let found = revision_of(tx, id)?;
            if found != Some(expected) {
                return Err(StoreError::Stale {
                    key_id: *id,
                    expected,
                    found,
                });
            }
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
        self.write(|tx| put_alias(tx, alias))
    }

    fn insert_alias_at(&self, alias: &Alias, target_revision: Revision) -> Result<(), StoreError> {
        self.write(|tx| {
            let found = revision_of(tx, &alias.target)?;
            if found != Some(target_revision) {
                return Err(StoreError::Stale {
                    key_id: alias.target,
                    expected: target_revision,
                    found,
                });
            }
            put_alias(tx, alias)
        })
    }

    fn update_alias(&self, alias: &Alias) -> Result<Option<Alias>, StoreError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE aliases SET target = ?4, updated = ?5 \
                     WHERE account = ?1 AND region = ?2 AND name = ?3",
                    params![
                        alias.account,
                        alias.region,
                        alias.name.as_str(),
                        alias.target.to_string(),
                        alias.updated.0
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Ok(None);
            }
            Ok(aliases(
                tx,
                Some((&alias.account, &alias.region, alias.name.as_str())),
            )?
            .pop())
        })
    }

    fn delete_alias(&self, account: &str, region: &str, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "DELETE FROM aliases WHERE account = ?1 AND region = ?2 AND name = ?3",
                    params![account, region, name],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    fn insert_all(&self, records: &Snapshot, into_empty: bool) -> Result<(), StoreError> {
        self.write(|tx| {
            if into_empty {
                let used: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM domain_keys) OR EXISTS (SELECT 1 FROM keys) \
                         OR EXISTS (SELECT 1 FROM aliases)",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                if used {
                    return Err(StoreError::Conflict("the store is not empty".into()));
                }
            }
            for d in &records.domain_keys {
                tx.execute(
                    "INSERT INTO domain_keys (id, wrapped, created) VALUES (?1, ?2, ?3)",
                    params![d.id, d.wrapped, d.created.0],
                )
                .map_err(backend)?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO keys (id, account, metadata, revision) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(backend)?;
            for k in &records.keys {
                insert
                    .execute(params![
                        k.metadata.id.to_string(),
                        k.metadata.account,
                        metadata_json(&k.metadata)?,
                        k.revision
                    ])
                    .map_err(backend)?;
                k.versions.iter().try_for_each(|v| put_version(tx, v))?;
            }
            for a in &records.aliases {
                put_alias(tx, a)?;
            }
            Ok(())
        })
    }

    /// Removes entries with `seq` at or below `cursor` and raises the horizon to it.
    fn trim_feed(&self, cursor: FeedCursor) -> Result<u64, StoreError> {
        self.write(|tx| {
            let to = cursor.as_u64().min(last_seq(tx)?);
            let to = i64::try_from(to).map_err(|_| corrupt("feed cursor", to))?;
            let n = tx
                .execute("DELETE FROM changes WHERE seq <= ?1", [to])
                .map_err(backend)?;
            tx.execute("UPDATE feed_horizon SET horizon = MAX(horizon, ?1)", [to])
                .map_err(backend)?;
            Ok(n as u64)
        })
    }
}
