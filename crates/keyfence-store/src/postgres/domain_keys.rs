//! Domain-key rotation on PostgreSQL: finding the versions under an older
//! domain key, re-wrapping them conditionally (one statement per batch), and
//! destroying a domain key nothing names any more (schema version 11).

use deadpool_postgres::Pool;
use keyfence_core::store::{DomainKeyRecord, Rewrap, VersionRecord};
use keyfence_core::{KeyId, StoreError, Timestamp};

use super::error::{corrupt, db, pool as pool_err, release, suspect};
use super::rows::{self, i32_of};

/// Version 11: an index of versions by domain key (the re-wrap's pages, and
/// the check before a domain key is destroyed); a re-wrap (an update of a
/// version row) no longer enters the change feed, as in SQLite: the
/// material is unchanged, so no node has anything to apply (a destroyed
/// domain key does: its delete already enters the feed).
pub(super) const V11: &str = r#"
CREATE INDEX IF NOT EXISTS key_versions_domain_key ON key_versions (domain_key_id, key_id, version);
DROP TRIGGER IF EXISTS key_versions_feed ON key_versions;
CREATE TRIGGER key_versions_feed AFTER INSERT OR DELETE ON key_versions
    FOR EACH ROW EXECUTE FUNCTION keyfence_record_change();
"#;

/// Every domain key, oldest first.
pub(crate) async fn all(pool: Pool) -> Result<Vec<DomainKeyRecord>, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let tx = client.transaction().await.map_err(db)?;
        let keys = rows::domain_keys(&tx, None).await?;
        tx.commit().await.map_err(db)?;
        Ok(keys)
    }
    .await;
    release(client, suspect(&result));
    result
}

/// Up to `limit` versions under domain key `id` after `after`, in (key id, version) order.
pub(crate) async fn versions_under(
    pool: Pool,
    id: u32,
    after: Option<(KeyId, u32)>,
    limit: usize,
) -> Result<Vec<VersionRecord>, StoreError> {
    let id = i32_of("domain key id", id)?;
    // "" with version -1 is below every row.
    let (after_key, after_version) = match after {
        Some((k, v)) => (k.to_string(), i32_of("version", v)?),
        None => (String::new(), -1),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let found = client
            .query(
                "SELECT key_id, version, domain_key_id, wrapped, created FROM key_versions \
                 WHERE domain_key_id = $1 AND (key_id, version) > ($2, $3) \
                 ORDER BY key_id, version LIMIT $4",
                &[&id, &after_key, &after_version, &limit],
            )
            .await
            .map_err(db)?;
        found
            .iter()
            .map(|row| {
                let key_id: String = row.get(0);
                let number = |what: &str, v: i32| u32::try_from(v).map_err(|_| corrupt(what, v));
                Ok(VersionRecord {
                    key_id: key_id.parse().map_err(|_| corrupt("key id", &key_id))?,
                    version: number("version", row.get(1))?,
                    domain_key_id: number("domain key id", row.get(2))?,
                    wrapped: row.get(3),
                    created: Timestamp(row.get(4)),
                })
            })
            .collect()
    }
    .await;
    release(client, suspect(&result));
    result
}

/// Writes each re-wrap whose version is still as read, in one statement;
/// returns how many.
pub(crate) async fn rewrap(pool: Pool, rewraps: Vec<Rewrap>) -> Result<usize, StoreError> {
    let mut columns = (
        Vec::with_capacity(rewraps.len()),
        Vec::with_capacity(rewraps.len()),
        Vec::with_capacity(rewraps.len()),
        Vec::with_capacity(rewraps.len()),
        Vec::with_capacity(rewraps.len()),
        Vec::with_capacity(rewraps.len()),
    );
    for r in rewraps {
        columns.0.push(r.key_id.to_string());
        columns.1.push(i32_of("version", r.version)?);
        columns.2.push(i32_of("domain key id", r.from_domain_key)?);
        columns.3.push(r.from_wrapped);
        columns.4.push(i32_of("domain key id", r.to_domain_key)?);
        columns.5.push(r.wrapped);
    }
    let client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let written = client
            .execute(
                "UPDATE key_versions v SET domain_key_id = r.to_dk, wrapped = r.wrapped \
                 FROM unnest($1::text[], $2::int[], $3::int[], $4::bytea[], $5::int[], $6::bytea[]) \
                     AS r(key_id, version, from_dk, from_wrapped, to_dk, wrapped) \
                 WHERE v.key_id = r.key_id AND v.version = r.version \
                     AND v.domain_key_id = r.from_dk AND v.wrapped = r.from_wrapped",
                &[
                    &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5,
                ],
            )
            .await
            .map_err(db)?;
        Ok(usize::try_from(written).unwrap_or(usize::MAX))
    }
    .await;
    release(client, suspect(&result));
    result
}

/// Deletes domain key `id` unless a version names it; whether it is gone.
/// A version inserted under it meanwhile makes the delete fail its foreign
/// key: it is then kept.
pub(crate) async fn destroy(pool: Pool, id: u32) -> Result<bool, StoreError> {
    let id = i32_of("domain key id", id)?;
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let tx = client.transaction().await.map_err(db)?;
        let named: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM key_versions WHERE domain_key_id = $1)",
                &[&id],
            )
            .await
            .map_err(db)?
            .get(0);
        if named {
            return Ok(false);
        }
        match tx
            .execute("DELETE FROM domain_keys WHERE id = $1", &[&id])
            .await
        {
            Ok(_) => {}
            Err(e) => {
                return match db(e) {
                    StoreError::Conflict(_) => Ok(false),
                    other => Err(other),
                }
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }
    .await;
    release(client, suspect(&result));
    result
}
