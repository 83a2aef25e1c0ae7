//! The state changes: each is one transaction on a pooled connection,
//! committed with `synchronous_commit = on` (durable, and on a synchronous
//! standby too when one is configured, before it returns).

use deadpool_postgres::{Object, Pool, Transaction};
use keyfence_core::model::Alias;
use keyfence_core::store::{DomainKeyRecord, VersionRecord};
use keyfence_core::{KeyId, KeyMetadata, StoreError};

use super::error::{db, pool as pool_err, release, ConditionalWriteError};
use super::rows::i32_of;

/// One state change, owning its inputs (it runs on the store's runtime).
pub(crate) enum Write {
    DomainKey(DomainKeyRecord),
    InsertKey(KeyMetadata, Vec<VersionRecord>),
    UpdateKey(KeyMetadata),
    AddVersion(KeyMetadata, VersionRecord),
    ReplaceVersions(KeyMetadata, Vec<VersionRecord>),
    DeleteKey(KeyId),
    InsertAlias(Alias),
    UpdateAlias(Alias),
    DeleteAlias(String, String),
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

/// Replaces a key's metadata and increments its revision; with `expected`,
/// only if the stored revision is that one. Returns the new revision, or
/// `None` when the key is missing or (with `expected`) at another revision.
async fn update_metadata(
    tx: &Transaction<'_>,
    key: &KeyMetadata,
    expected: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE keys SET metadata = $2::text::jsonb, revision = revision + 1 \
             WHERE id = $1 AND ($3::bigint IS NULL OR revision = $3) RETURNING revision",
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
    Ok(row.map(|r| r.get(0)))
}

async fn update_existing(tx: &Transaction<'_>, key: &KeyMetadata) -> Result<(), StoreError> {
    match update_metadata(tx, key, None).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::Backend(format!("key {} is not stored", key.id))),
    }
}

async fn apply(tx: &Transaction<'_>, write: &Write) -> Result<(), StoreError> {
    match write {
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
        }
        Write::UpdateKey(key) => update_existing(tx, key).await?,
        Write::AddVersion(key, version) => {
            update_existing(tx, key).await?;
            put_version(tx, version).await?;
        }
        Write::ReplaceVersions(key, versions) => {
            update_existing(tx, key).await?;
            tx.execute(
                "DELETE FROM key_versions WHERE key_id = $1",
                &[&key.id.to_string()],
            )
            .await
            .map_err(db)?;
            for v in versions {
                put_version(tx, v).await?;
            }
        }
        Write::DeleteKey(id) => {
            // Versions and aliases go with it (ON DELETE CASCADE), each
            // recorded in the change feed by its table's trigger.
            tx.execute("DELETE FROM keys WHERE id = $1", &[&id.to_string()])
                .await
                .map_err(db)?;
        }
        Write::InsertAlias(alias) => {
            tx.execute(
                "INSERT INTO aliases (account, name, target, created, updated) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &alias.account,
                    &alias.name.as_str(),
                    &alias.target.to_string(),
                    &alias.created.0,
                    &alias.updated.0,
                ],
            )
            .await
            .map_err(db)?;
        }
        Write::UpdateAlias(alias) => {
            let n = tx
                .execute(
                    "UPDATE aliases SET target = $3, updated = $4 WHERE account = $1 AND name = $2",
                    &[
                        &alias.account,
                        &alias.name.as_str(),
                        &alias.target.to_string(),
                        &alias.updated.0,
                    ],
                )
                .await
                .map_err(db)?;
            if n != 1 {
                return Err(StoreError::Backend(format!(
                    "alias {} is not stored",
                    alias.name.as_str()
                )));
            }
        }
        Write::DeleteAlias(account, name) => {
            tx.execute(
                "DELETE FROM aliases WHERE account = $1 AND name = $2",
                &[account, name],
            )
            .await
            .map_err(db)?;
        }
    }
    Ok(())
}

/// Runs one state change in its own transaction and commits it.
pub(crate) async fn write(pool: Pool, write: Write) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = write_in(&mut client, &write).await;
    release(client, matches!(result, Err(StoreError::Backend(_))));
    result
}

async fn write_in(client: &mut Object, write: &Write) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    apply(&tx, write).await?;
    tx.commit().await.map_err(db)
}

/// Replaces a key's metadata if its stored revision is `expected`; returns the new revision.
pub(crate) async fn update_key_if_revision(
    pool: Pool,
    key: KeyMetadata,
    expected: i64,
) -> Result<i64, ConditionalWriteError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = update_if_revision_in(&mut client, key, expected).await;
    let backend_failed = matches!(
        result,
        Err(ConditionalWriteError::Store(StoreError::Backend(_)))
    );
    release(client, backend_failed);
    result
}

async fn update_if_revision_in(
    client: &mut Object,
    key: KeyMetadata,
    expected: i64,
) -> Result<i64, ConditionalWriteError> {
    let tx = client.transaction().await.map_err(db)?;
    match update_metadata(&tx, &key, Some(expected)).await? {
        Some(revision) => {
            tx.commit().await.map_err(db)?;
            Ok(revision)
        }
        None => {
            let found = tx
                .query_opt(
                    "SELECT revision FROM keys WHERE id = $1",
                    &[&key.id.to_string()],
                )
                .await
                .map_err(db)?
                .map(|r| r.get(0));
            Err(ConditionalWriteError::Stale {
                key_id: key.id,
                expected,
                found,
            })
        }
    }
}

/// The stored revision of a key, `None` if it does not exist.
pub(crate) async fn key_revision(pool: Pool, id: KeyId) -> Result<Option<i64>, StoreError> {
    let client = pool.get().await.map_err(pool_err)?;
    let result = client
        .query_opt(
            "SELECT revision FROM keys WHERE id = $1",
            &[&id.to_string()],
        )
        .await
        .map_err(db)
        .map(|row| row.map(|r| r.get(0)));
    release(client, result.is_err());
    result
}
