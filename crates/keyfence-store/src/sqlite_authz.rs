//! [`AuthzStore`] on the SQLite file: key policies and grants in their own
//! tables (schema version 4), removed with their key.

use keyfence_core::authz::{AuthzSnapshot, AuthzStore, Grant, StoredKeyPolicy};
use keyfence_core::{KeyId, StoreError, Timestamp};
use rusqlite::{params, Row};

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

    fn put_key_policy(&self, p: &StoredKeyPolicy) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "INSERT INTO key_policies (key_id, account, policy) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key_id) DO UPDATE SET policy = excluded.policy",
                params![p.key_id.to_string(), p.account, p.text],
            )
            .map_err(backend)
            .map(drop)
    }

    fn insert_grant(&self, g: &Grant) -> Result<(), StoreError> {
        self.connection()
            .execute(
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
            .map_err(backend)
            .map(drop)
    }

    fn delete_grant(&self, key_id: &KeyId, grant_id: &str) -> Result<bool, StoreError> {
        self.connection()
            .execute(
                "DELETE FROM grants WHERE key_id = ?1 AND grant_id = ?2",
                params![key_id.to_string(), grant_id],
            )
            .map_err(backend)
            .map(|n| n > 0)
    }
}
