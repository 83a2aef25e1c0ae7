//! Versioned schema migrations, run at start by every node.
//!
//! All pending migrations run in one transaction that first takes a
//! transaction-scoped advisory lock, so nodes starting together apply each
//! migration exactly once: the second waits for the first to commit, then
//! finds nothing left to do. `schema_migrations` records what was applied; a
//! database migrated by a newer build is refused rather than misread.

use deadpool_postgres::Pool;
use keyfence_core::StoreError;

use super::error::db;

/// Advisory lock key serializing migrations ("keyfence" in ASCII).
const MIGRATION_LOCK: i64 = 0x6b65_7966_656e_6365;

/// `(version, name, SQL)`, in order. Never edit an applied migration: add one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "keys, versions, aliases, change feed", V1),
    (2, "cluster: nodes, fences, authority", super::cluster::V2),
    (3, "change feed horizon", V3),
    (4, "key policies and grants", super::authz::V4),
    (
        5,
        "audit log: records, signed heads, signing keys",
        super::audit::V5,
    ),
    (
        6,
        "key policies and grants in the change feed",
        super::authz::V6,
    ),
    (7, "audit log: tree edges", super::audit::V7),
    (8, "multi-Region key rows", crate::format::V8_MULTI_REGION),
    (
        9,
        "quorum: operators, rules, executed proposals",
        super::quorum::V9,
    ),
    (10, "aliases per account and region", V10),
    (
        11,
        "versions by domain key; re-wraps outside the feed",
        super::domain_keys::V11,
    ),
];

/// The newest schema version this build knows.
pub(crate) const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The notification channel the change feed's trigger notifies on commit.
pub(crate) const CHANNEL: &str = "keyfence_changes";

/// Version 1.
///
/// - Every `keys` row has a `revision`, 1 at insertion and incremented by
///   every change to the key (metadata or versions), for conditional writes.
/// - `changes` is the append-only change feed. A trigger on each state table
///   appends one row per changed row, in the same transaction as the change,
///   with the writing transaction's id (`xid`); the feed records only *which*
///   entity changed: a reader takes the entity's state from its own snapshot.
///   The trigger also notifies `keyfence_changes`, delivered on commit.
const V1: &str = r#"
CREATE TABLE domain_keys (
    id INTEGER PRIMARY KEY,
    wrapped BYTEA NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    metadata JSONB NOT NULL,
    revision BIGINT NOT NULL DEFAULT 1 CHECK (revision > 0)
);
CREATE INDEX keys_account ON keys (account);
CREATE TABLE key_versions (
    key_id TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    domain_key_id INTEGER NOT NULL REFERENCES domain_keys(id),
    wrapped BYTEA NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE aliases (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE INDEX aliases_target ON aliases (target);

CREATE TABLE changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    entity TEXT NOT NULL,
    key_id TEXT,
    domain_key_id INTEGER,
    account TEXT,
    alias_name TEXT,
    CHECK (
        (entity = 'key' AND key_id IS NOT NULL)
        OR (entity = 'domain_key' AND domain_key_id IS NOT NULL)
        OR (entity = 'alias' AND account IS NOT NULL AND alias_name IS NOT NULL)
    )
);
CREATE INDEX changes_xid ON changes (xid);

CREATE FUNCTION keyfence_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'keys' THEN
        INSERT INTO changes (entity, key_id) VALUES ('key', r.id);
    ELSIF TG_TABLE_NAME = 'key_versions' THEN
        INSERT INTO changes (entity, key_id) VALUES ('key', r.key_id);
    ELSIF TG_TABLE_NAME = 'aliases' THEN
        INSERT INTO changes (entity, account, alias_name) VALUES ('alias', r.account, r.name);
        IF TG_OP = 'UPDATE' AND (OLD.account, OLD.name) IS DISTINCT FROM (NEW.account, NEW.name) THEN
            INSERT INTO changes (entity, account, alias_name) VALUES ('alias', OLD.account, OLD.name);
        END IF;
    ELSIF TG_TABLE_NAME = 'domain_keys' THEN
        INSERT INTO changes (entity, domain_key_id) VALUES ('domain_key', r.id);
    END IF;
    PERFORM pg_notify('keyfence_changes', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER keys_feed AFTER INSERT OR UPDATE OR DELETE ON keys
    FOR EACH ROW EXECUTE FUNCTION keyfence_record_change();
CREATE TRIGGER key_versions_feed AFTER INSERT OR UPDATE OR DELETE ON key_versions
    FOR EACH ROW EXECUTE FUNCTION keyfence_record_change();
CREATE TRIGGER aliases_feed AFTER INSERT OR UPDATE OR DELETE ON aliases
    FOR EACH ROW EXECUTE FUNCTION keyfence_record_change();
CREATE TRIGGER domain_keys_feed AFTER INSERT OR UPDATE OR DELETE ON domain_keys
    FOR EACH ROW EXECUTE FUNCTION keyfence_record_change();
"#;

/// Version 3: the feed's horizon. Feed rows of transactions with ids below
/// it may have been trimmed (`feed::trim`); a reader whose cursor is below it
/// must reload everything.
const V3: &str = r#"
CREATE TABLE feed_horizon (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    horizon xid8 NOT NULL
);
INSERT INTO feed_horizon (one, horizon) VALUES (1, '0'::xid8);
"#;

/// Applies every pending migration (see the module documentation).
pub(crate) async fn migrate(pool: Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(super::error::pool)?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(db)?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    if applied > LATEST {
        return Err(StoreError::Corrupt(format!(
            "database schema version {applied} is newer than this build's {LATEST}"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        tx.batch_execute(sql).await.map_err(db)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

/// Version 10: aliases are named per (account, region), the region of their
/// target key, as AWS has them; existing aliases move to their target key's
/// region. The feed's alias rows carry the region (`alias_region`); older
/// alias rows (without one) are dropped and the horizon raised past them, so
/// a reader whose cursor is older reloads.
const V10: &str = r#"
ALTER TABLE changes ADD COLUMN alias_region TEXT;
CREATE OR REPLACE FUNCTION keyfence_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'keys' THEN
        INSERT INTO changes (entity, key_id) VALUES ('key', r.id);
    ELSIF TG_TABLE_NAME = 'key_versions' THEN
        INSERT INTO changes (entity, key_id) VALUES ('key', r.key_id);
    ELSIF TG_TABLE_NAME = 'aliases' THEN
        INSERT INTO changes (entity, account, alias_region, alias_name)
            VALUES ('alias', r.account, r.region, r.name);
        IF TG_OP = 'UPDATE' AND (OLD.account, OLD.region, OLD.name)
                IS DISTINCT FROM (NEW.account, NEW.region, NEW.name) THEN
            INSERT INTO changes (entity, account, alias_region, alias_name)
                VALUES ('alias', OLD.account, OLD.region, OLD.name);
        END IF;
    ELSIF TG_TABLE_NAME = 'domain_keys' THEN
        INSERT INTO changes (entity, domain_key_id) VALUES ('domain_key', r.id);
    END IF;
    PERFORM pg_notify('keyfence_changes', '');
    RETURN NULL;
END
$$;
ALTER TABLE aliases ADD COLUMN region TEXT;
UPDATE aliases a SET region = k.metadata->>'region' FROM keys k WHERE k.id = a.target;
ALTER TABLE aliases ALTER COLUMN region SET NOT NULL;
ALTER TABLE aliases DROP CONSTRAINT aliases_pkey;
ALTER TABLE aliases ADD PRIMARY KEY (account, region, name);
DELETE FROM changes WHERE entity = 'alias' AND alias_region IS NULL;
UPDATE feed_horizon SET horizon = GREATEST(horizon, pg_current_xact_id());
ALTER TABLE changes DROP CONSTRAINT changes_check;
ALTER TABLE changes ADD CONSTRAINT changes_check CHECK (
    (entity = 'key' AND key_id IS NOT NULL)
    OR (entity = 'domain_key' AND domain_key_id IS NOT NULL)
    OR (entity = 'alias' AND account IS NOT NULL AND alias_region IS NOT NULL
        AND alias_name IS NOT NULL)
    OR (entity = 'authz' AND key_id IS NOT NULL)
);
"#;
