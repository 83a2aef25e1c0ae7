//! [`AuthzStore`] on PostgreSQL: key policies and grants in their own tables
//! (schema migration 4), removed with their key; `authz_version` is one row
//! that every change increments in its transaction (the row lock orders the
//! writers), so nodes notice a change with one read.

use keyfence_core::authz::{AuthzSnapshot, AuthzStore, Grant, StoredKeyPolicy};
use keyfence_core::{KeyId, StoreError, Timestamp};
use tokio_postgres::Row;

use super::error::{db, pool as pool_err};
use super::PostgresStore;
use crate::authz_format::{
    decode_constraints, decode_operations, encode_constraints, encode_operations,
};

/// Migration 3: key policies and grants.
pub(crate) const V4: &str = r#"
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
    created BIGINT NOT NULL,
    PRIMARY KEY (key_id, grant_id)
);
CREATE TABLE authz_version (one INTEGER PRIMARY KEY CHECK (one = 1), version BIGINT NOT NULL);
INSERT INTO authz_version (one, version) VALUES (1, 0);
CREATE FUNCTION keyfence_authz_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE authz_version SET version = version + 1 WHERE one = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER key_policies_version AFTER INSERT OR UPDATE OR DELETE ON key_policies
    FOR EACH ROW EXECUTE FUNCTION keyfence_authz_version();
CREATE TRIGGER grants_version AFTER INSERT OR UPDATE OR DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION keyfence_authz_version();
"#;

const GRANT_COLUMNS: &str =
    "key_id, grant_id, account, name, grantee, retiring, operations, constraints, issuer, created";

type Args = Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>;

fn key_id(s: &str) -> Result<KeyId, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("key id {s:?}")))
}

fn grant(row: &Row) -> Result<Grant, StoreError> {
    Ok(Grant {
        key_id: key_id(row.get(0))?,
        id: row.get(1),
        key_account: row.get(2),
        name: row.get(3),
        grantee: row.get(4),
        retiring: row.get(5),
        operations: decode_operations(row.get(6))?,
        constraints: decode_constraints(row.get::<_, Option<&str>>(7))?,
        issuer: row.get(8),
        created: Timestamp(row.get(9)),
    })
}

impl PostgresStore {
    fn authz_query(
        &self,
        what: &'static str,
        sql: &str,
        args: Args,
    ) -> Result<Vec<Row>, StoreError> {
        let sql = sql.to_owned();
        self.run(what, move |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                args.iter().map(|a| a.as_ref() as _).collect();
            client.query(&sql, &refs).await.map_err(db)
        })
    }
}

impl AuthzStore for PostgresStore {
    fn authz_version(&self) -> Result<i64, StoreError> {
        let rows = self.authz_query(
            "read the authorization version",
            "SELECT version FROM authz_version",
            Vec::new(),
        )?;
        rows.first()
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Corrupt("authz_version has no row".into()))
    }

    fn load_authz(&self) -> Result<AuthzSnapshot, StoreError> {
        let grants_sql = format!("SELECT {GRANT_COLUMNS} FROM grants ORDER BY created, grant_id");
        let (version, policies, grants) =
            self.run("load policies and grants", move |pool| async move {
                let mut client = pool.get().await.map_err(pool_err)?;
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await
                    .map_err(db)?;
                let version: i64 = tx
                    .query_one("SELECT version FROM authz_version", &[])
                    .await
                    .map_err(db)?
                    .get(0);
                let policies = tx
                    .query("SELECT key_id, account, policy FROM key_policies", &[])
                    .await
                    .map_err(db)?;
                let grants = tx.query(&grants_sql, &[]).await.map_err(db)?;
                tx.commit().await.map_err(db)?;
                Ok::<_, StoreError>((version, policies, grants))
            })?;
        Ok(AuthzSnapshot {
            version,
            policies: policies
                .iter()
                .map(|r| {
                    Ok(StoredKeyPolicy {
                        key_id: key_id(r.get(0))?,
                        account: r.get(1),
                        text: r.get(2),
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            grants: grants.iter().map(grant).collect::<Result<_, _>>()?,
        })
    }

    fn put_key_policy(&self, p: &StoredKeyPolicy) -> Result<(), StoreError> {
        self.authz_query(
            "store a key policy",
            "INSERT INTO key_policies (key_id, account, policy) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id) DO UPDATE SET policy = excluded.policy",
            vec![
                Box::new(p.key_id.to_string()),
                Box::new(p.account.clone()),
                Box::new(p.text.clone()),
            ],
        )
        .map(drop)
    }

    fn insert_grant(&self, g: &Grant) -> Result<(), StoreError> {
        self.authz_query(
            "store a grant",
            &format!(
                "INSERT INTO grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            vec![
                Box::new(g.key_id.to_string()),
                Box::new(g.id.clone()),
                Box::new(g.key_account.clone()),
                Box::new(g.name.clone()),
                Box::new(g.grantee.clone()),
                Box::new(g.retiring.clone()),
                Box::new(encode_operations(&g.operations)),
                Box::new(encode_constraints(&g.constraints)),
                Box::new(g.issuer.clone()),
                Box::new(g.created.0),
            ],
        )
        .map(drop)
    }

    fn delete_grant(&self, key_id: &KeyId, grant_id: &str) -> Result<bool, StoreError> {
        self.authz_query(
            "delete a grant",
            "DELETE FROM grants WHERE key_id = $1 AND grant_id = $2 RETURNING grant_id",
            vec![Box::new(key_id.to_string()), Box::new(grant_id.to_owned())],
        )
        .map(|rows| !rows.is_empty())
    }
}
