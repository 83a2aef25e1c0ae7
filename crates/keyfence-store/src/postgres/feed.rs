//! Reading the change feed: which entities changed since a cursor, with
//! their state as of one snapshot.
//!
//! # Why the cursor is a transaction id, not a sequence number
//!
//! Feed rows get their `seq` when they are written, before their transaction
//! commits, so a row with a lower `seq` can become visible after one with a
//! higher `seq`; a reader that remembered "the highest `seq` seen" would skip
//! it forever. Each row therefore also records its transaction's id (`xid8`,
//! which never wraps). A reader opens a REPEATABLE READ snapshot and takes
//! that snapshot's `xmin`: every transaction with a smaller id has finished,
//! and those that committed are visible in the snapshot. So the rows with
//! `cursor <= xid < xmin` are complete and final; the reader returns them and
//! `xmin` becomes the next cursor. A transaction still running holds `xmin`
//! at or below its own id, so its rows, and those of every transaction with a
//! larger id, wait for the next read: nothing is skipped, whatever order
//! commits happen in. Writers are not serialized, so commits still group.
//!
//! The feed names entities, not their new values: a reader takes each named
//! entity's state (or its absence) from the same snapshot, so applying a
//! batch is idempotent and a batch is consistent in itself.
//!
//! Trimming ([`trim`]) removes the rows of transactions below a cursor some
//! reader had long ago and raises `feed_horizon` to it; a reader whose cursor
//! is below the horizon is told to reload (`rewound`).
//!
//! Caveat: any transaction holding an id (keyfence's own writes are short,
//! but also an idle-in-transaction session of another program on the same
//! database) holds the feed back until it ends; the wake-up on its commit,
//! or the polling fallback, then delivers everything.

use std::collections::BTreeMap;

use deadpool_postgres::{Object, Pool, Transaction};
use keyfence_core::model::Alias;
use keyfence_core::store::{
    Change, ChangeBatch, ChangedEntity, DomainKeyRecord, FeedCursor, Snapshot, StoredKey,
};
use keyfence_core::{AliasName, StoreError};
use tokio_postgres::IsolationLevel;

use super::error::{corrupt, db, pool as pool_err, release, suspect};
use super::rows;

/// Which entity a feed row names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum EntityRef {
    DomainKey(i32),
    Key(String),
    /// Account, region, name.
    Alias(String, String, String),
    KeyAuthz(String),
}

/// Opens a read-only REPEATABLE READ transaction and returns it with its snapshot's `xmin`.
async fn snapshot(client: &mut Object) -> Result<(Transaction<'_>, u64), StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db)?;
    // The first statement fixes the transaction's snapshot; this reads its xmin.
    let xmin: String = tx
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await
        .map_err(db)?
        .get(0);
    let xmin = xmin.parse().map_err(|e| corrupt("snapshot xmin", e))?;
    Ok((tx, xmin))
}

/// Reads everything in one snapshot.
pub(crate) async fn seed(pool: Pool) -> Result<Snapshot, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = seed_in(&mut client).await;
    release(client, suspect(&result));
    result
}

/// Reads the domain keys, the aliases and the cursor in one snapshot, without the keys.
pub(crate) async fn head(pool: Pool) -> Result<Snapshot, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let (tx, xmin) = snapshot(&mut client).await?;
        let head = Snapshot {
            domain_keys: rows::domain_keys(&tx, None).await?,
            keys: Vec::new(),
            aliases: rows::aliases(&tx, None).await?,
            cursor: FeedCursor::from_u64(xmin),
        };
        tx.commit().await.map_err(db)?;
        Ok(head)
    }
    .await;
    release(client, suspect(&result));
    result
}

/// Up to `limit` keys after `after`, in one snapshot.
pub(crate) async fn keys_page(
    pool: Pool,
    after: Option<String>,
    limit: i64,
) -> Result<Vec<StoredKey>, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let (tx, _) = snapshot(&mut client).await?;
        let keys = rows::keys_page(&tx, after, limit).await?;
        tx.commit().await.map_err(db)?;
        Ok(keys)
    }
    .await;
    release(client, suspect(&result));
    result
}

/// Removes the feed rows of transactions with ids below `cursor` (a past
/// snapshot's `xmin`, so every such transaction has ended and no row below
/// it can still appear) and raises the horizon to it; returns the rows removed.
pub(crate) async fn trim(pool: Pool, cursor: FeedCursor) -> Result<u64, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = async {
        let tx = client.transaction().await.map_err(db)?;
        // Never beyond what has ended: a cursor from a store that went back
        // in time (failover) is clamped to this snapshot's xmin.
        let to: String = tx
            .query_one(
                "SELECT LEAST($1::text::xid8, pg_snapshot_xmin(pg_current_snapshot()))::text",
                &[&cursor.as_u64().to_string()],
            )
            .await
            .map_err(db)?
            .get(0);
        let removed = tx
            .execute("DELETE FROM changes WHERE xid < $1::text::xid8", &[&to])
            .await
            .map_err(db)?;
        tx.execute(
            "UPDATE feed_horizon SET horizon = GREATEST(horizon, $1::text::xid8)",
            &[&to],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(removed)
    }
    .await;
    release(client, suspect(&result));
    result
}

async fn seed_in(client: &mut Object) -> Result<Snapshot, StoreError> {
    let (tx, xmin) = snapshot(client).await?;
    let seed = Snapshot {
        domain_keys: rows::domain_keys(&tx, None).await?,
        keys: rows::keys(&tx, None).await?,
        aliases: rows::aliases(&tx, None).await?,
        cursor: FeedCursor::from_u64(xmin),
    };
    tx.commit().await.map_err(db)?;
    Ok(seed)
}

/// Reads the changes of transactions with ids in `[cursor, xmin)` and the
/// changed entities' state, in one snapshot (see the module documentation).
pub(crate) async fn changes_since(
    pool: Pool,
    cursor: FeedCursor,
) -> Result<ChangeBatch, StoreError> {
    let mut client = pool.get().await.map_err(pool_err)?;
    let result = changes_in(&mut client, cursor).await;
    release(client, suspect(&result));
    result
}

async fn changes_in(client: &mut Object, cursor: FeedCursor) -> Result<ChangeBatch, StoreError> {
    let (tx, xmin) = snapshot(client).await?;
    let horizon: String = tx
        .query_one("SELECT horizon::text FROM feed_horizon", &[])
        .await
        .map_err(db)?
        .get(0);
    let horizon: u64 = horizon.parse().map_err(|e| corrupt("feed horizon", e))?;
    // Behind the store (failover) or behind what was trimmed: reload.
    let rewound = xmin < cursor.as_u64() || cursor.as_u64() < horizon;
    let latest = window(&tx, cursor.as_u64().min(xmin), xmin).await?;
    let changes = resolve(&tx, latest).await?;
    tx.commit().await.map_err(db)?;
    Ok(ChangeBatch {
        changes,
        cursor: FeedCursor::from_u64(xmin),
        rewound,
    })
}

/// The entities named by feed rows of transactions with ids in `[from, to)`,
/// each with the `seq` of its latest row.
async fn window(
    tx: &Transaction<'_>,
    from: u64,
    to: u64,
) -> Result<BTreeMap<EntityRef, i64>, StoreError> {
    let rows = tx
        .query(
            "SELECT seq, entity, key_id, domain_key_id, account, alias_name, alias_region \
             FROM changes \
             WHERE xid >= $1::text::xid8 AND xid < $2::text::xid8 ORDER BY seq",
            &[&from.to_string(), &to.to_string()],
        )
        .await
        .map_err(db)?;
    let mut latest = BTreeMap::new();
    for row in &rows {
        let seq: i64 = row.get(0);
        let entity: &str = row.get(1);
        let named = match entity {
            "key" => row.get::<_, Option<String>>(2).map(EntityRef::Key),
            "domain_key" => row.get::<_, Option<i32>>(3).map(EntityRef::DomainKey),
            "alias" => row
                .get::<_, Option<String>>(4)
                .zip(row.get::<_, Option<String>>(6))
                .zip(row.get::<_, Option<String>>(5))
                .map(|((a, r), n)| EntityRef::Alias(a, r, n)),
            "authz" => row.get::<_, Option<String>>(2).map(EntityRef::KeyAuthz),
            _ => None,
        }
        .ok_or_else(|| corrupt("change feed row", format!("seq {seq}: {entity}")))?;
        latest.insert(named, seq);
    }
    Ok(latest)
}

/// Reads the current state of each entity in `latest` and returns the
/// changes in increasing `seq`.
async fn resolve(
    tx: &Transaction<'_>,
    latest: BTreeMap<EntityRef, i64>,
) -> Result<Vec<Change>, StoreError> {
    let mut key_ids = Vec::new();
    let mut authz_ids = Vec::new();
    let mut domain_ids = Vec::new();
    let (mut accounts, mut regions, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for entity in latest.keys() {
        match entity {
            EntityRef::Key(id) => key_ids.push(id.clone()),
            EntityRef::KeyAuthz(id) => authz_ids.push(id.clone()),
            EntityRef::DomainKey(id) => domain_ids.push(*id),
            EntityRef::Alias(a, r, n) => {
                accounts.push(a.clone());
                regions.push(r.clone());
                names.push(n.clone());
            }
        }
    }
    let mut keys: BTreeMap<String, StoredKey> = BTreeMap::new();
    if !key_ids.is_empty() {
        for k in rows::keys(tx, Some(&key_ids)).await? {
            keys.insert(k.metadata.id.to_string(), k);
        }
    }
    let mut authz = BTreeMap::new();
    if !authz_ids.is_empty() {
        let version = super::authz::version_in(tx).await?;
        authz = super::authz::key_authz_in(tx, &authz_ids, version).await?;
    }
    let mut domain_keys: BTreeMap<i32, DomainKeyRecord> = BTreeMap::new();
    if !domain_ids.is_empty() {
        for d in rows::domain_keys(tx, Some(&domain_ids)).await? {
            domain_keys.insert(rows::i32_of("domain key id", d.id)?, d);
        }
    }
    let mut aliases: BTreeMap<(String, String, String), Alias> = BTreeMap::new();
    if !accounts.is_empty() {
        for a in rows::aliases(tx, Some((&accounts, &regions, &names))).await? {
            let named = (
                a.account.clone(),
                a.region.clone(),
                a.name.as_str().to_string(),
            );
            aliases.insert(named, a);
        }
    }

    let mut changes = latest
        .into_iter()
        .map(|(entity, seq)| {
            let entity = match entity {
                EntityRef::Key(id) => ChangedEntity::Key {
                    current: keys.remove(&id).map(Box::new),
                    id: id.parse().map_err(|_| corrupt("change feed key id", &id))?,
                },
                EntityRef::KeyAuthz(id) => ChangedEntity::KeyAuthz {
                    current: authz.remove(&id),
                    id: id.parse().map_err(|_| corrupt("change feed key id", &id))?,
                },
                EntityRef::DomainKey(id) => ChangedEntity::DomainKey {
                    current: domain_keys.remove(&id),
                    id: u32::try_from(id).map_err(|_| corrupt("change feed domain key", id))?,
                },
                EntityRef::Alias(account, region, name) => ChangedEntity::Alias {
                    current: aliases.remove(&(account.clone(), region.clone(), name.clone())),
                    name: AliasName::parse(&name).map_err(|e| corrupt("change feed alias", e))?,
                    account,
                    region,
                },
            };
            Ok(Change { seq, entity })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    changes.sort_by_key(|c| c.seq);
    Ok(changes)
}
