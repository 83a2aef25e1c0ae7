//! [`AuthzStore`] on the SQLite file: key policies and grants in their own
//! tables (schema version 4), removed with their key, and in the change feed
//! (schema version 6).

use keyfence_core::authz::{AuthzSnapshot, AuthzStore, Grant, StoredKeyPolicy};
use keyfence_core::store::KeyAuthz;
use keyfence_core::{KeyId, StoreError, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::authz_format::{
    decode_constraints, decode_operations, encode_constraints, encode_operations,
};
use crate::sqlite::{backend, SqliteStore};

/// Schema version 4: key policies, grants, and the version every change to
/// them increments (by triggers, in the changing transaction).
pub(crate) const V4: &str = "
CREATE TABLE key_policies (
    key_id TEXT PRIMARY KEY REFERENCES keys(id) ON DELETE CASCADE,
    account TEXT NOT NULL,
    policy TEXT NOT NULL
);
CREATE TABLE grants (
    key_id TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    grant_id TEXT NOT NULL,
    account TEXT NOT NULL,
    name TEXT,
    grantee TEXT NOT NULL,
    retiring TEXT,
    operations TEXT NOT NULL,
    constraints TEXT,
    issuer TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (key_id, grant_id)
);
CREATE TABLE authz_version (one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL);
INSERT INTO authz_version (one, version) VALUES (1, 0);
CREATE TRIGGER key_policies_insert_version AFTER INSERT ON key_policies
    BEGIN UPDATE authz_version SET version = version + 1; END;
CREATE TRIGGER key_policies_update_version AFTER UPDATE ON key_policies
    BEGIN UPDATE authz_version SET version = version + 1; END;
CREATE TRIGGER key_policies_delete_version AFTER DELETE ON key_policies
    BEGIN UPDATE authz_version SET version = version + 1; END;
CREATE TRIGGER grants_insert_version AFTER INSERT ON grants
    BEGIN UPDATE authz_version SET version = version + 1; END;
CREATE TRIGGER grants_delete_version AFTER DELETE ON grants
    BEGIN UPDATE authz_version SET version = version + 1; END;
";

/// Schema version 6: every change to a key's policy or grants is in the
/// change feed (entity `authz`, by triggers in the changing transaction),
/// so a node's replica receives a key's policy and grants with the key.
pub(crate) const V6: &str = "
CREATE TRIGGER key_policies_insert_feed AFTER INSERT ON key_policies
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('authz', NEW.key_id); END;
CREATE TRIGGER key_policies_update_feed AFTER UPDATE ON key_policies
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('authz', NEW.key_id); END;
CREATE TRIGGER key_policies_delete_feed AFTER DELETE ON key_policies
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('authz', OLD.key_id); END;
CREATE TRIGGER grants_insert_feed AFTER INSERT ON grants
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('authz', NEW.key_id); END;
CREATE TRIGGER grants_delete_feed AFTER DELETE ON grants
    BEGIN INSERT INTO changes (entity, key_id) VALUES ('authz', OLD.key_id); END;
";

const GRANT_COLUMNS: &str =
    "key_id, grant_id, account, name, grantee, retiring, operations, constraints, issuer, created";

fn key_id(s: &str) -> Result<KeyId, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("key id {s:?}")))
}

fn grant(row: &Row<'_>) -> Result<Grant, StoreError> {
    let get = |i| row.get::<_, String>(i).map_err(backend);
    let opt = |i| row.get::<_, Option<String>>(i).map_err(backend);
    Ok(Grant {
        key_id: key_id(&get(0)?)?,
        id: get(1)?,
        key_account: get(2)?,
        name: opt(3)?,
        grantee: get(4)?,
        retiring: opt(5)?,
        operations: decode_operations(&get(6)?)?,
        constraints: decode_constraints(opt(7)?.as_deref())?,
        issuer: get(8)?,
        created: Timestamp(row.get(9).map_err(backend)?),
    })
}

fn version_in(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT version FROM authz_version", [], |r| r.get(0))
        .map_err(backend)
}

/// One key's policy and grants as `conn` sees them now; `None` if the key
/// does not exist.
pub(crate) fn key_authz_in(
    conn: &Connection,
    id: &KeyId,
    version: i64,
) -> Result<Option<KeyAuthz>, StoreError> {
    let id_text = id.to_string();
    let exists: Option<i64> = conn
        .query_row("SELECT 1 FROM keys WHERE id = ?1", [&id_text], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    if exists.is_none() {
        return Ok(None);
    }
    let policy = conn
        .query_row(
            "SELECT account, policy FROM key_policies WHERE key_id = ?1",
            [&id_text],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()
        .map_err(backend)?
        .map(|(account, text)| StoredKeyPolicy {
            key_id: *id,
            account,
            text,
        });
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ?1 ORDER BY created, grant_id"
        ))
        .map_err(backend)?;
    let mut rows = stmt.query([&id_text]).map_err(backend)?;
    let mut grants = Vec::new();
    while let Some(r) = rows.next().map_err(backend)? {
        grants.push(grant(r)?);
    }
    Ok(Some(KeyAuthz {
        version,
        policy,
        grants,
    }))
}

/// The key's state after a change in the same transaction (the key exists:
/// the change's foreign key made sure).
pub(crate) fn state_after(conn: &Connection, id: &KeyId) -> Result<KeyAuthz, StoreError> {
    let version = version_in(conn)?;
    key_authz_in(conn, id, version)?
        .ok_or_else(|| StoreError::Conflict(format!("key {id} does not exist")))
}

/// The batch's authorization version (read once per feed batch).
pub(crate) fn authz_version_in(conn: &Connection) -> Result<i64, StoreError> {
    version_in(conn)
}

/// Stores a key's policy in the caller's transaction.
pub(crate) fn put_policy_in(conn: &Connection, p: &StoredKeyPolicy) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO key_policies (key_id, account, policy) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key_id) DO UPDATE SET policy = excluded.policy",
        params![p.key_id.to_string(), p.account, p.text],
    )
    .map_err(backend)
    .map(drop)
}

impl AuthzStore for SqliteStore {
    fn authz_version(&self) -> Result<i64, StoreError> {
        self.connection()
            .query_row("SELECT version FROM authz_version", [], |r| r.get(0))
            .map_err(backend)
    }

    fn load_authz(&self) -> Result<AuthzSnapshot, StoreError> {
        let mut conn = self.connection();
        let tx = conn.transaction().map_err(backend)?;
        let version = tx
            .query_row("SELECT version FROM authz_version", [], |r| r.get(0))
            .map_err(backend)?;
        let mut policies = Vec::new();
        {
            let mut stmt = tx
                .prepare("SELECT key_id, account, policy FROM key_policies")
                .map_err(backend)?;
            let mut rows = stmt.query([]).map_err(backend)?;
            while let Some(r) = rows.next().map_err(backend)? {
                policies.push(StoredKeyPolicy {
                    key_id: key_id(&r.get::<_, String>(0).map_err(backend)?)?,
                    account: r.get(1).map_err(backend)?,
                    text: r.get(2).map_err(backend)?,
                });
            }
        }
        let mut grants = Vec::new();
        {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {GRANT_COLUMNS} FROM grants ORDER BY created, grant_id"
                ))
                .map_err(backend)?;
            let mut rows = stmt.query([]).map_err(backend)?;
            while let Some(r) = rows.next().map_err(backend)? {
                grants.push(grant(r)?);
            }
        }
        tx.commit().map_err(backend)?;
        Ok(AuthzSnapshot {
            version,
            policies,
            grants,
        })
    }

    fn key_authz(&self, key_id: &KeyId) -> Result<Option<KeyAuthz>, StoreError> {
        self.read_tx(|tx| key_authz_in(tx, key_id, version_in(tx)?))
    }

    fn put_key_policy(&self, p: &StoredKeyPolicy) -> Result<KeyAuthz, StoreError> {
        self.write_tx(|tx| {
            put_policy_in(tx, p)?;
            state_after(tx, &p.key_id)
        })
    }

    fn insert_grant(&self, g: &Grant) -> Result<KeyAuthz, StoreError> {
        self.write_tx(|tx| {
            tx.execute(
                &format!("INSERT INTO grants ({GRANT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    g.key_id.to_string(),
                    g.id,
                    g.key_account,
                    g.name,
                    g.grantee,
                    g.retiring,
                    encode_operations(&g.operations),
                    encode_constraints(&g.constraints),
                    g.issuer,
                    g.created.0
                ],
            )
            .map_err(backend)?;
            state_after(tx, &g.key_id)
        })
    }

    fn delete_grant(
        &self,
        key_id: &KeyId,
        grant_id: &str,
    ) -> Result<(bool, Option<KeyAuthz>), StoreError> {
        self.write_tx(|tx| {
            let n = tx
                .execute(
                    "DELETE FROM grants WHERE key_id = ?1 AND grant_id = ?2",
                    params![key_id.to_string(), grant_id],
                )
                .map_err(backend)?;
            Ok((n > 0, key_authz_in(tx, key_id, version_in(tx)?)?))
        })
    }
}
