//! The state changes: each is one transaction on a pooled connection,
//! committed with `synchronous_commit = on` (durable, and on a synchronous
//! standby too when one is configured, before it returns). A change to an
//! existing key is conditional on the revision the caller checked.

use deadpool_postgres::{Object, Pool, Transaction};
use keyfence_core::authz::{AuthzSnapshot, StoredKeyPolicy};
use keyfence_core::model::Alias;
use keyfence_core::store::{
    DomainKeyRecord, KeyAuthz, Revision, Snapshot, StoredKey, VersionRecord,
};
use keyfence_core::{KeyId, KeyMetadata, StoreError, Timestamp};

use super::error::{corrupt, db, pool as pool_err, release, suspect};
use super::rows::{self, i32_of};

/// One state change, owning its inputs (it runs on the store's runtime).
pub(crate) enum Write {
    DomainKey(DomainKeyRecord),
    InsertKey(KeyMetadata, Vec<VersionRecord>),
    InsertKeyWithPolicy(KeyMetadata, Vec<VersionRecord>, StoredKeyPolicy),
    UpdateKey(KeyMetadata, Revision),
    AddVersion(KeyMetadata, VersionRecord, Revision),
    ReplaceVersions(KeyMetadata, Vec<VersionRecord>, Revision),
    DeleteKey(KeyId, Revision),
    InsertAlias(Alias),
    InsertAliasAt(Alias, Revision),
    UpdateAlias(Alias),
    /// Account, region, name.
    DeleteAlias(String, String, String),
}

/// What a write reports.
pub(crate) enum Written {
    /// Done.
    Done,
    /// The key's new revision.
    Revision(Revision),
    /// The alias as stored after an update (`None`: no such alias).
    Alias(Option<Alias>),
    /// Whether a deleted alias existed.
    Existed(bool),
    /// A key's policy and grants after the change.
    Authz(KeyAuthz),
}

fn metadata_json(key: &KeyMetadata) -> Result<String, StoreError> {
    crate::format::encode(key)
}

async fn put_version(tx: &Transaction<'_>, v: &VersionRecord) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO key_versions (key_id, version, domain_key_id, wrapped, created) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(db)?;
    tx.execute(
        &stmt,
        &[
            &v.key_id.to_string(),
            &i32_of("version", v.version)?,
            &i32_of("domain key id", v.domain_key_id)?,
            &v.wrapped,
            &v.created.0,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

async fn revision_in(tx: &Transaction<'_>, id: &KeyId) -> Result<Option<Revision>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT revision FROM keys WHERE id = $1",
            &[&id.to_string()],
        )
        .await
        .map_err(db)?
        .map(|r| r.get(0)))
}

/// Replaces a key's metadata at revision `expected` and increments it;
/// [`StoreError::Stale`] if the key is at another revision or gone.
async fn update_metadata(
    tx: &Transaction<'_>,
    key: &KeyMetadata,
    expected: Revision,
) -> Result<Revision, StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE keys SET metadata = $2::text::jsonb, revision = revision + 1 \
             WHERE id = $1 AND revision = $3 RETURNING revision",
        )
        .await
        .map_err(db)?;
    let row = tx
        .query_opt(
            &stmt,
            &[&key.id.to_string(), &metadata_json(key)?, &expected],
        )
        .await
        .map_err(db)?;
    match row {
        Some(r) => Ok(r.get(0)),
        None => Err(StoreError::Stale {
            key_id: key.id,
            expected,
            found: revision_in(tx, &key.id).await?,
        }),
    }
}

async fn apply(tx: &Transaction<'_>, write: &Write) -> Result<Written, StoreError> {
    Ok(match write {
        Write::DomainKey(key) => {
            tx.execute(
                "INSERT INTO domain_keys (id, wrapped, created) VALUES ($1, $2, $3)",
                &[
                    &i32_of("domain key id", key.id)?,
                    &key.wrapped,
                    &key.created.0,
                ],
            )
            .await
            .map_err(db)?;
            Written::Done
        }
        Write::InsertKeyWithPolicy(key, versions, policy) => {
            Box::pin(apply(tx, &Write::InsertKey(key.clone(), versions.clone()))).await?;
            super::authz::put_policy_in(tx, policy).await?;
            let state = super::authz::state_in(tx, &key.id)
                .await?
                .ok_or_else(|| corrupt("key", format!("{} gone in its own transaction", key.id)))?;
            Written::Authz(state)
        }
        Write::InsertKey(key, versions) => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO keys (id, account, metadata) VALUES ($1, $2, $3::text::jsonb)",
                )
                .await
                .map_err(db)?;
            tx.execute(
                &stmt,
                &[&key.id.to_string(), &key.account, &metadata_json(key)?],
            )
            .await
            .map_err(db)?;
            for v in versions {
                put_version(tx, v).await?;
            }
            Written::Done
        }
        Write::UpdateKey(key, expected) => {
            Written::Revision(update_metadata(tx, key, *expected).await?)
        }
        Write::AddVersion(key, version, expected) => {
            let revision = update_metadata(tx, key, *expected).await?;
            put_version(tx, version).await?;
            Written::Revision(revision)
        }
        Write::ReplaceVersions(key, versions, expected) => {
            let revision = update_metadata(tx, key, *expected).await?;
            tx.execute(
                "DELETE FROM key_versions WHERE key_id = $1",
                &[&key.id.to_string()],
            )
            .await
            .map_err(db)?;
            for v in versions {
                put_version(tx, v).await?;
            }
            Written::Revision(revision)
        }
        Write::DeleteKey(id, expected) => {
            // Versions and aliases go with it (ON DELETE CASCADE), each
            // recorded in the change feed by its table's trigger.
            let n = tx
                .execute(
                    "DELETE FROM keys WHERE id = $1 AND revision = $2",
                    &[&id.to_string(), expected],
                )
                .await
                .map_err(db)?;
            if n != 1 {
                return Err(StoreError::Stale {
                    key_id: *id,
                    expected: *expected,
                    found: revision_in(tx, id).await?,
                });
            }
            Written::Done
        }
        Write::InsertAliasAt(alias, expected) => {
            // A share lock on the target's row: a change to the key (its
            // deletion scheduled, or the key destroyed) waits for this
            // transaction, or, committed first, is seen here (READ COMMITTED
            // re-reads a row locked by a transaction that then committed).
            let found: Option<Revision> = tx
                .query_opt(
                    "SELECT revision FROM keys WHERE id = $1 FOR SHARE",
                    &[&alias.target.to_string()],
                )
                .await
                .map_err(db)?
                .map(|r| r.get(0));
            if found != Some(*expected) {
                return Err(StoreError::Stale {
                    key_id: alias.target,
                    expected: *expected,
                    found,
                });
            }
            Box::pin(apply(tx, &Write::InsertAlias(alias.clone()))).await?
        }
        Write::InsertAlias(alias) => {
            tx.execute(
                "INSERT INTO aliases (account, region, name, target, created, updated) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &alias.account,
                    &alias.region,
                    &alias.name.as_str(),
                    &alias.target.to_string(),
                    &alias.created.0,
                    &alias.updated.0,
                ],
            )
            .await
            .map_err(db)?;
            Written::Done
        }
        Write::UpdateAlias(alias) => {
            let row = tx
                .query_opt(
                    "UPDATE aliases SET target = $4, updated = $5 \
                     WHERE account = $1 AND region = $2 AND name = $3 RETURNING created",
                    &[
                        &alias.account,
                        &alias.region,
                        &alias.name.as_str(),
                        &alias.target.to_string(),
                        &alias.updated.0,
                    ],
                )
                .await
                .map_err(db)?;
            Written::Alias(row.map(|r| Alias {
                created: Timestamp(r.get(0)),
                ..alias.clone()
            }))
        }
        Write::DeleteAlias(account, region, name) => {
            let n = tx
                .execute(
                    "DELETE FROM aliases WHERE account = $1 AND region = $2 AND name = $3",
                    &[account, region, name],
                )
                .await
                .map_err(db)?;
            Written::Existed(n > 0)
        }
    })
}

/// Runs one state change in its own transaction and commits it.
pub(crate) async fn write(pool: Pool, write: Write) -> Result<Written, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = write_in(&mut client, &write).await;
    release(client, suspect(&result));
    result
}

async fn write_in(client: &mut Object, write: &Write) -> Result<Written, StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    let written = apply(&tx, write).await?;
    tx.commit().await.map_err(db)?;
    Ok(written)
}

/// Rows per statement of a bulk insert.
const BULK_ROWS: usize = 5_000;

/// Inserts everything in `records` in one transaction (see
/// [`Store::insert_all`](keyfence_core::Store::insert_all)): rows go in
/// batches of [`BULK_ROWS`] per statement (`unnest` of arrays), so a million
/// keys take a few hundred statements rather than millions of round trips.
/// Key policies and grants (`authz`) go in the same transaction, after the
/// keys they belong to.
pub(crate) async fn insert_all(
    pool: Pool,
    records: Snapshot,
    authz: AuthzSnapshot,
    into_empty: bool,
) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = insert_all_in(&mut client, &records, &authz, into_empty).await;
    release(client, suspect(&result));
    result
}

async fn insert_all_in(
    client: &mut Object,
    records: &Snapshot,
    authz: &AuthzSnapshot,
    into_empty: bool,
) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    if into_empty {
        // Writers wait (readers do not) until this transaction ends, so two
        // bulk loads into one empty database cannot both find it empty.
        tx.batch_execute("LOCK TABLE domain_keys, keys, aliases IN EXCLUSIVE MODE")
            .await
            .map_err(db)?;
        let used: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM domain_keys) OR EXISTS (SELECT 1 FROM keys) \
                 OR EXISTS (SELECT 1 FROM aliases)",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        if used {
            return Err(StoreError::Conflict("the store is not empty".into()));
        }
    }
    for d in &records.domain_keys {
        apply(&tx, &Write::DomainKey(d.clone())).await?;
    }
    for chunk in records.keys.chunks(BULK_ROWS) {
        let mut ids = Vec::with_capacity(chunk.len());
        let mut accounts = Vec::with_capacity(chunk.len());
        let mut metadata = Vec::with_capacity(chunk.len());
        let mut revisions = Vec::with_capacity(chunk.len());
        let (mut v_ids, mut v_versions, mut v_domain) = (Vec::new(), Vec::new(), Vec::new());
        let (mut v_wrapped, mut v_created) = (Vec::new(), Vec::new());
        for k in chunk {
            ids.push(k.metadata.id.to_string());
            accounts.push(k.metadata.account.clone());
            metadata.push(metadata_json(&k.metadata)?);
            revisions.push(k.revision);
            for v in &k.versions {
                v_ids.push(v.key_id.to_string());
                v_versions.push(i32_of("version", v.version)?);
                v_domain.push(i32_of("domain key id", v.domain_key_id)?);
                v_wrapped.push(v.wrapped.as_slice());
                v_created.push(v.created.0);
            }
        }
        tx.execute(
            "INSERT INTO keys (id, account, metadata, revision) \
             SELECT id, account, metadata::jsonb, revision \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) \
             AS t (id, account, metadata, revision)",
            &[&ids, &accounts, &metadata, &revisions],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "INSERT INTO key_versions (key_id, version, domain_key_id, wrapped, created) \
             SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::bytea[], $5::bigint[])",
            &[&v_ids, &v_versions, &v_domain, &v_wrapped, &v_created],
        )
        .await
        .map_err(db)?;
    }
    for a in &records.aliases {
        apply(&tx, &Write::InsertAlias(a.clone())).await?;
    }
    super::authz::insert_all_in(&tx, authz, BULK_ROWS).await?;
    tx.commit().await.map_err(db)
}

/// The stored revision of a key, `None` if it does not exist.
pub(crate) async fn key_revision(pool: Pool, id: KeyId) -> Result<Option<Revision>, StoreError> {
    let client = pool.get().await.map_err(pool_err)?;
    let result = client
        .query_opt(
            "SELECT revision FROM keys WHERE id = $1",
            &[&id.to_string()],
        )
        .await
        .map_err(db)
        .map(|row| row.map(|r| r.get(0)));
    release(client, suspect(&result));
    result
}

/// One key with its versions and revision, in one snapshot.
pub(crate) async fn load_key(pool: Pool, id: KeyId) -> Result<Option<StoredKey>, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        let mut keys = rows::keys(&tx, Some(&[id.to_string()])).await?;
        tx.commit().await.map_err(db)?;
        if keys.len() > 1 {
            return Err(corrupt("key", format!("{id} stored {} times", keys.len())));
        }
        Ok(keys.pop())
    }
    .await;
    release(client, suspect(&result));
    result
}

/// One alias, `None` if it does not exist.
pub(crate) async fn load_alias(
    pool: Pool,
    account: String,
    region: String,
    name: String,
) -> Result<Option<Alias>, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let tx = client.transaction().await.map_err(db)?;
        let mut found = rows::aliases(
            &tx,
            Some((
                std::slice::from_ref(&account),
                std::slice::from_ref(&region),
                std::slice::from_ref(&name),
            )),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(found.pop())
    }
    .await;
    release(client, suspect(&result));
    result
}
