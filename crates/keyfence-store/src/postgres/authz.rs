//! [`AuthzStore`] on PostgreSQL: key policies and grants in their own tables
//! (schema migration 4), removed with their key; `authz_version` is one row
//! that every change increments in its transaction (the row lock orders the
//! writers, so a snapshot that sees version n sees every change up to n).
//! Every change is in the change feed too (migration 6).

use std::collections::BTreeMap;

use deadpool_postgres::Pool;
use keyfence_core::authz::{AuthzSnapshot, AuthzStore, Grant, StoredKeyPolicy};
use keyfence_core::store::KeyAuthz;
use keyfence_core::{KeyId, StoreError, Timestamp};
use tokio_postgres::{Row, Transaction};

use super::error::{db, pool as pool_err, release, suspect};
use super::PostgresStore;
use crate::authz_format::{
    decode_constraints, decode_operations, encode_constraints, encode_operations,
};

/// Migration 4: key policies and grants.
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

/// Migration 6: every change to a key's policy or grants is in the change
/// feed (entity `authz`), so a node's replica receives a key's policy and
/// grants with the key (a key created with a policy: in the same batch).
pub(crate) const V6: &str = r#"
ALTER TABLE changes DROP CONSTRAINT changes_check;
ALTER TABLE changes ADD CONSTRAINT changes_check CHECK (
    (entity = 'key' AND key_id IS NOT NULL)
    OR (entity = 'domain_key' AND domain_key_id IS NOT NULL)
    OR (entity = 'alias' AND account IS NOT NULL AND alias_name IS NOT NULL)
    OR (entity = 'authz' AND key_id IS NOT NULL)
);
CREATE FUNCTION keyfence_record_authz_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    INSERT INTO changes (entity, key_id) VALUES ('authz', r.key_id);
    PERFORM pg_notify('keyfence_changes', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER key_policies_feed AFTER INSERT OR UPDATE OR DELETE ON key_policies
    FOR EACH ROW EXECUTE FUNCTION keyfence_record_authz_change();
CREATE TRIGGER grants_feed AFTER INSERT OR UPDATE OR DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION keyfence_record_authz_change();
"#;

const GRANT_COLUMNS: &str =
    "key_id, grant_id, account, name, grantee, retiring, operations, constraints, issuer, created";

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

/// The authorization version as `tx` sees it.
pub(crate) async fn version_in(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx
        .query_one("SELECT version FROM authz_version", &[])
        .await
        .map_err(db)?
        .get(0))
}

/// The policy and grants of each existing key among `ids`, as `tx` sees
/// them, stamped `version`; keys that do not exist are absent.
pub(crate) async fn key_authz_in(
    tx: &Transaction<'_>,
    ids: &[String],
    version: i64,
) -> Result<BTreeMap<String, KeyAuthz>, StoreError> {
    let mut out = BTreeMap::new();
    for row in tx
        .query("SELECT id FROM keys WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(db)?
    {
        out.insert(
            row.get::<_, String>(0),
            KeyAuthz {
                version,
                policy: None,
                grants: Vec::new(),
            },
        );
    }
    for row in tx
        .query(
            "SELECT key_id, account, policy FROM key_policies WHERE key_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db)?
    {
        let id: String = row.get(0);
        if let Some(state) = out.get_mut(&id) {
            state.policy = Some(StoredKeyPolicy {
                key_id: key_id(&id)?,
                account: row.get(1),
                text: row.get(2),
            });
        }
    }
    for row in tx
        .query(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ANY($1) ORDER BY created, grant_id"
            ),
            &[&ids],
        )
        .await
        .map_err(db)?
    {
        let g = grant(&row)?;
        if let Some(state) = out.get_mut(&g.key_id.to_string()) {
            state.grants.push(g);
        }
    }
    Ok(out)
}

/// One key's policy and grants after a change in `tx` (the version read
/// after the change's increment, which `tx` holds until it commits).
pub(crate) async fn state_in(
    tx: &Transaction<'_>,
    id: &KeyId,
) -> Result<Option<KeyAuthz>, StoreError> {
    let version = version_in(tx).await?;
    let id = id.to_string();
    Ok(key_authz_in(tx, std::slice::from_ref(&id), version)
        .await?
        .remove(&id))
}

/// Stores a key's policy in `tx`.
pub(crate) async fn put_policy_in(
    tx: &Transaction<'_>,
    p: &StoredKeyPolicy,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO key_policies (key_id, account, policy) VALUES ($1, $2, $3) \
         ON CONFLICT (key_id) DO UPDATE SET policy = excluded.policy",
        &[&p.key_id.to_string(), &p.account, &p.text],
    )
    .await
    .map_err(db)
    .map(drop)
}

/// Inserts every policy and grant of `authz` in `tx` (a bulk load: the
/// keys are already in), `chunk` rows per statement.
pub(crate) async fn insert_all_in(
    tx: &Transaction<'_>,
    authz: &AuthzSnapshot,
    chunk: usize,
) -> Result<(), StoreError> {
    for ps in authz.policies.chunks(chunk) {
        let ids: Vec<String> = ps.iter().map(|p| p.key_id.to_string()).collect();
        let accounts: Vec<&str> = ps.iter().map(|p| p.account.as_str()).collect();
        let texts: Vec<&str> = ps.iter().map(|p| p.text.as_str()).collect();
        tx.execute(
            "INSERT INTO key_policies (key_id, account, policy) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
            &[&ids, &accounts, &texts],
        )
        .await
        .map_err(db)?;
    }
    for gs in authz.grants.chunks(chunk) {
        let ids: Vec<String> = gs.iter().map(|g| g.key_id.to_string()).collect();
        let grant_ids: Vec<&str> = gs.iter().map(|g| g.id.as_str()).collect();
        let accounts: Vec<&str> = gs.iter().map(|g| g.key_account.as_str()).collect();
        let names: Vec<Option<&str>> = gs.iter().map(|g| g.name.as_deref()).collect();
        let grantees: Vec<&str> = gs.iter().map(|g| g.grantee.as_str()).collect();
        let retiring: Vec<Option<&str>> = gs.iter().map(|g| g.retiring.as_deref()).collect();
        let operations: Vec<String> = gs
            .iter()
            .map(|g| encode_operations(&g.operations))
            .collect();
        let constraints: Vec<Option<String>> = gs
            .iter()
            .map(|g| encode_constraints(&g.constraints))
            .collect();
        let issuers: Vec<&str> = gs.iter().map(|g| g.issuer.as_str()).collect();
        let created: Vec<i64> = gs.iter().map(|g| g.created.0).collect();
        tx.execute(
            &format!(
                "INSERT INTO grants ({GRANT_COLUMNS}) SELECT * FROM unnest($1::text[], \
                 $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[], $10::bigint[])"
            ),
            &[
                &ids,
                &grant_ids,
                &accounts,
                &names,
                &grantees,
                &retiring,
                &operations,
                &constraints,
                &issuers,
                &created,
            ],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// One authorization change on `pool`, in its own transaction.
enum Change {
    Policy(StoredKeyPolicy),
    Grant(Box<Grant>),
    Revoke(KeyId, String),
}

async fn change(pool: Pool, change: Change) -> Result<(bool, Option<KeyAuthz>), StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let tx = client.transaction().await.map_err(db)?;
        let (existed, id) = match &change {
            Change::Policy(p) => {
                put_policy_in(&tx, p).await?;
                (true, p.key_id)
            }
            Change::Grant(g) => {
                tx.execute(
                    &format!(
                        "INSERT INTO grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    ),
                    &[
                        &g.key_id.to_string(),
                        &g.id,
                        &g.key_account,
                        &g.name,
                        &g.grantee,
                        &g.retiring,
                        &encode_operations(&g.operations),
                        &encode_constraints(&g.constraints),
                        &g.issuer,
                        &g.created.0,
                    ],
                )
                .await
                .map_err(db)?;
                (true, g.key_id)
            }
            Change::Revoke(id, grant_id) => {
                let n = tx
                    .execute(
                        "DELETE FROM grants WHERE key_id = $1 AND grant_id = $2",
                        &[&id.to_string(), grant_id],
                    )
                    .await
                    .map_err(db)?;
                (n > 0, *id)
            }
        };
        let state = state_in(&tx, &id).await?;
        tx.commit().await.map_err(db)?;
        Ok((existed, state))
    }
    .await;
    release(client, suspect(&result));
    result
}

fn existing(state: Option<KeyAuthz>, id: &KeyId) -> Result<KeyAuthz, StoreError> {
    state.ok_or_else(|| StoreError::Conflict(format!("key {id} does not exist")))
}

impl AuthzStore for PostgresStore {
    fn authz_version(&self) -> Result<i64, StoreError> {
        self.run("read the authorization version", |pool| async move {
            let client = pool.get().await.map_err(pool_err)?;
            let result = client
                .query_one("SELECT version FROM authz_version", &[])
                .await
                .map_err(db)
                .map(|r| r.get(0));
            release(client, suspect(&result));
            result
        })
    }

    fn load_authz(&self) -> Result<AuthzSnapshot, StoreError> {
        let grants_sql = format!("SELECT {GRANT_COLUMNS} FROM grants ORDER BY created, grant_id");
        let (version, policies, grants) =
            self.run("load policies and grants", move |pool| async move {
                let mut client = pool.get().await.map_err(pool_err)?;
                let result = async {
                    let tx = client
                        .build_transaction()
                        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start()
                        .await
                        .map_err(db)?;
                    let version = version_in(&tx).await?;
                    let policies = tx
                        .query("SELECT key_id, account, policy FROM key_policies", &[])
                        .await
                        .map_err(db)?;
                    let grants = tx.query(&grants_sql, &[]).await.map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok::<_, StoreError>((version, policies, grants))
                }
                .await;
                release(client, suspect(&result));
                result
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

    fn key_authz(&self, id: &KeyId) -> Result<Option<KeyAuthz>, StoreError> {
        let id = *id;
        self.run("read a key's policy and grants", move |pool| async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            let result = async {
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await
                    .map_err(db)?;
                let state = state_in(&tx, &id).await?;
                tx.commit().await.map_err(db)?;
                Ok(state)
            }
            .await;
            release(client, suspect(&result));
            result
        })
    }

    fn put_key_policy(&self, p: &StoredKeyPolicy) -> Result<KeyAuthz, StoreError> {
        let (id, change_) = (p.key_id, Change::Policy(p.clone()));
        let (_, state) = self.run("store a key policy", move |pool| change(pool, change_))?;
        existing(state, &id)
    }

    fn insert_grant(&self, g: &Grant) -> Result<KeyAuthz, StoreError> {
        let (id, change_) = (g.key_id, Change::Grant(Box::new(g.clone())));
        let (_, state) = self.run("store a grant", move |pool| change(pool, change_))?;
        existing(state, &id)
    }

    fn delete_grant(
        &self,
        key_id: &KeyId,
        grant_id: &str,
    ) -> Result<(bool, Option<KeyAuthz>), StoreError> {
        let change_ = Change::Revoke(*key_id, grant_id.to_owned());
        self.run("delete a grant", move |pool| change(pool, change_))
    }
}
