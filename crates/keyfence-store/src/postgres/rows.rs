//! Reading state rows (all of them, or the ones the change feed names) inside
//! a caller's transaction, and decoding them into the core's records.

use std::collections::BTreeMap;

use keyfence_core::model::Alias;
use keyfence_core::store::{DomainKeyRecord, StoredKey, VersionRecord};
use keyfence_core::{AliasName, KeyId, KeyMetadata, StoreError, Timestamp};
use tokio_postgres::{Row, Transaction};

use super::error::{corrupt, db};

fn parse_key_id(s: &str) -> Result<KeyId, StoreError> {
    s.parse().map_err(|_| corrupt("key id", s))
}

fn u32_of(what: &str, v: i32) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(what, v))
}

pub(crate) fn i32_of(what: &str, v: u32) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Backend(format!("{what} {v} out of range")))
}

fn domain_key(row: &Row) -> Result<DomainKeyRecord, StoreError> {
    Ok(DomainKeyRecord {
        id: u32_of("domain key id", row.get(0))?,
        wrapped: row.get(1),
        created: Timestamp(row.get(2)),
    })
}

/// Domain keys: all of them, or those in `ids`.
pub(crate) async fn domain_keys(
    tx: &Transaction<'_>,
    ids: Option<&[i32]>,
) -> Result<Vec<DomainKeyRecord>, StoreError> {
    let rows = match ids {
        None => {
            tx.query(
                "SELECT id, wrapped, created FROM domain_keys ORDER BY id",
                &[],
            )
            .await
        }
        Some(ids) => {
            tx.query(
                "SELECT id, wrapped, created FROM domain_keys WHERE id = ANY($1) ORDER BY id",
                &[&ids],
            )
            .await
        }
    }
    .map_err(db)?;
    rows.iter().map(domain_key).collect()
}

/// Keys with their versions and revisions: all of them, or those in `ids`.
pub(crate) async fn keys(
    tx: &Transaction<'_>,
    ids: Option<&[String]>,
) -> Result<Vec<StoredKey>, StoreError> {
    const KEYS: &str = "SELECT id, metadata::text, revision FROM keys";
    const VERSIONS: &str =
        "SELECT key_id, version, domain_key_id, wrapped, created FROM key_versions";
    let (key_rows, version_rows) = match ids {
        None => (
            tx.query(&format!("{KEYS} ORDER BY id"), &[]).await,
            tx.query(&format!("{VERSIONS} ORDER BY key_id, version"), &[])
                .await,
        ),
        Some(ids) => (
            tx.query(&format!("{KEYS} WHERE id = ANY($1) ORDER BY id"), &[&ids])
                .await,
            tx.query(
                &format!("{VERSIONS} WHERE key_id = ANY($1) ORDER BY key_id, version"),
                &[&ids],
            )
            .await,
        ),
    };
    let mut by_id = BTreeMap::new();
    for row in key_rows.map_err(db)? {
        let id: String = row.get(0);
        let json: String = row.get(1);
        let metadata: KeyMetadata =
            crate::format::decode(&json).map_err(|e| corrupt(&format!("metadata of {id}"), e))?;
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
                revision: row.get(2),
            },
        );
    }
    for row in version_rows.map_err(db)? {
        let key_id: String = row.get(0);
        let record = VersionRecord {
            key_id: parse_key_id(&key_id)?,
            version: u32_of("version", row.get(1))?,
            domain_key_id: u32_of("domain key id", row.get(2))?,
            wrapped: row.get(3),
            created: Timestamp(row.get(4)),
        };
        by_id
            .get_mut(&key_id)
            .ok_or_else(|| corrupt("key version", format!("orphan version of {key_id}")))?
            .versions
            .push(record);
    }
    Ok(by_id.into_values().collect())
}

/// Up to `limit` keys with ids after `after` (text order), with their
/// versions and revisions, in id order.
pub(crate) async fn keys_page(
    tx: &Transaction<'_>,
    after: Option<String>,
    limit: i64,
) -> Result<Vec<StoredKey>, StoreError> {
    let after = after.unwrap_or_default();
    let ids: Vec<String> = tx
        .query(
            "SELECT id FROM keys WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &limit],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    keys(tx, Some(&ids)).await
}

/// Aliases: all of them, or those named by
/// `(accounts[i], regions[i], names[i])`.
pub(crate) async fn aliases(
    tx: &Transaction<'_>,
    names: Option<(&[String], &[String], &[String])>,
) -> Result<Vec<Alias>, StoreError> {
    const ALIASES: &str = "SELECT account, region, name, target, created, updated FROM aliases";
    let rows = match names {
        None => {
            tx.query(&format!("{ALIASES} ORDER BY account, region, name"), &[])
                .await
        }
        Some((accounts, regions, names)) => {
            tx.query(
                &format!(
                    "{ALIASES} WHERE (account, region, name) IN \
                     (SELECT * FROM unnest($1::text[], $2::text[], $3::text[])) \
                     ORDER BY account, region, name"
                ),
                &[&accounts, &regions, &names],
            )
            .await
        }
    }
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let name: String = row.get(2);
            let target: String = row.get(3);
            Ok(Alias {
                account: row.get(0),
                region: row.get(1),
                name: AliasName::parse(&name).map_err(|e| corrupt("alias", e))?,
                target: parse_key_id(&target)?,
                created: Timestamp(row.get(4)),
                updated: Timestamp(row.get(5)),
            })
        })
        .collect()
}
