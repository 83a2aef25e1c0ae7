//! Domain-key rotation on the SQLite file: finding the versions under an
//! older domain key, re-wrapping them conditionally, and destroying a domain
//! key nothing names any more (schema version 11).

use keyfence_core::store::{Rewrap, StoreError, VersionRecord};
use keyfence_core::{KeyId, Timestamp};
use rusqlite::{params, Transaction};

use crate::sqlite::backend;

/// Schema version 11: an index of versions by domain key (the re-wrap's
/// pages, and the check before a domain key is destroyed), and the feed
/// reports a destroyed domain key.
pub(crate) const V11: &str = "
CREATE INDEX IF NOT EXISTS key_versions_domain_key ON key_versions (domain_key_id, key_id, version);
CREATE TRIGGER IF NOT EXISTS domain_keys_delete_feed AFTER DELETE ON domain_keys
    BEGIN INSERT INTO changes (entity, domain_key_id) VALUES ('domain_key', OLD.id); END;
";

/// Up to `limit` versions under domain key `id` after `after`, in (key id, version) order.
pub(crate) fn versions_under(
    tx: &Transaction<'_>,
    id: u32,
    after: Option<(&KeyId, u32)>,
    limit: usize,
) -> Result<Vec<VersionRecord>, StoreError> {
    // "" with version -1 is below every row.
    let (after_key, after_version) =
        after.map_or((String::new(), -1), |(k, v)| (k.to_string(), i64::from(v)));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = tx
        .prepare_cached(
            "SELECT key_id, version, domain_key_id, wrapped, created FROM key_versions \
             WHERE domain_key_id = ?1 AND (key_id > ?2 OR (key_id = ?2 AND version > ?3)) \
             ORDER BY key_id, version LIMIT ?4",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![id, after_key, after_version, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(backend)?;
    rows.map(|row| {
        let (key_id, version, domain_key_id, wrapped, created) = row.map_err(backend)?;
        Ok(VersionRecord {
            key_id: key_id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("key id {key_id}")))?,
            version,
            domain_key_id,
            wrapped,
            created: Timestamp(created),
        })
    })
    .collect()
}

/// Writes each re-wrap whose version is still as read; returns how many.
pub(crate) fn rewrap(tx: &Transaction<'_>, rewraps: &[Rewrap]) -> Result<usize, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "UPDATE key_versions SET domain_key_id = ?5, wrapped = ?6 \
             WHERE key_id = ?1 AND version = ?2 AND domain_key_id = ?3 AND wrapped = ?4",
        )
        .map_err(backend)?;
    let mut written = 0;
    for r in rewraps {
        written += stmt
            .execute(params![
                r.key_id.to_string(),
                r.version,
                r.from_domain_key,
                r.from_wrapped,
                r.to_domain_key,
                r.wrapped
            ])
            .map_err(backend)?;
    }
    Ok(written)
}

/// Deletes domain key `id` unless a version names it; whether it is gone.
pub(crate) fn destroy(tx: &Transaction<'_>, id: u32) -> Result<bool, StoreError> {
    let named: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM key_versions WHERE domain_key_id = ?1)",
            [id],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if named {
        return Ok(false);
    }
    tx.execute("DELETE FROM domain_keys WHERE id = ?1", [id])
        .map_err(backend)?;
    Ok(true)
}
