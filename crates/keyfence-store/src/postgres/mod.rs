//! The PostgreSQL adapter: many keyfence nodes over one database.
//!
//! - Driver: `tokio-postgres` (async; multi-host connection strings with
//!   `target_session_attrs=read-write` for failover; LISTEN/NOTIFY through the
//!   connection's message stream), pooled by `deadpool-postgres`.
//! - The port is synchronous: the store runs its own small tokio runtime and a
//!   blocking call waits for its task on a channel, which works from any thread,
//!   inside a runtime or not (a call from the store's own workers is refused
//!   rather than deadlocking).
//! - Schema: versioned migrations run at [`PostgresStore::connect`] under a
//!   transaction-scoped advisory lock, recorded in `schema_migrations`.
//! - Every write is one transaction committed with `synchronous_commit = on`.
//!   Every key carries a revision, and every change to an existing key is
//!   conditional on the revision the caller checked
//!   ([`StoreError::Stale`] otherwise); every state change appends to a
//!   change feed in the same transaction, read with
//!   [`Store::changes_since`] (see [`feed`] for why it never skips a
//!   change) and woken by [`ChangeWaker`].
//! - TLS: libpq's `sslmode` (up to `verify-full`) and `sslrootcert` in the
//!   connection string, over rustls with aws-lc-rs (see [`tls`]).
//! - Needs PostgreSQL 13 or later (`xid8`, `pg_current_xact_id`).

mod audit;
mod authz;
mod bridge;
mod cluster;
mod domain_keys;
mod error;
pub mod feed;
mod quorum;
mod rows;
mod schema;
mod tls;
mod waker;
mod writes;

use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use keyfence_core::authz::{AuthzSnapshot, StoredKeyPolicy};
use keyfence_core::model::Alias;
use keyfence_core::store::{
    DomainKeyRecord, KeyAuthz, Revision, Rewrap, Snapshot, StoredKey, VersionRecord,
};
use keyfence_core::{KeyId, KeyMetadata, Store, StoreError};

use bridge::Bridge;
pub use keyfence_core::store::{Change, ChangeBatch, ChangedEntity, FeedCursor};
pub use waker::ChangeWaker;
use writes::{Write, Written};

/// Tuning of a [`PostgresStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most connections the pool holds.
    pub pool_size: usize,
    /// Bound on one store call: getting a connection, running, committing.
    /// A write that times out may or may not have committed.
    pub operation_timeout: Duration,
    /// Bound on opening one connection (per host tried), unless the
    /// connection string sets `connect_timeout`.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            operation_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`Store`] in a PostgreSQL database, shared by any number of nodes.
pub struct PostgresStore {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: tls::Connector,
    tls_mode: tls::Mode,
    // Last: the runtime outlives everything that may still use it.
    bridge: Bridge,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: show only where it points.
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("sslmode", &self.tls_mode)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// [`Store::insert_all`] with key policies and grants (`authz`; its
    /// version is not copied, every row raises the target's) in the same
    /// one transaction: all of it or, on any failure, none
    /// (`keyfence store migrate`). A policy or grant of a key that is in
    /// neither `records` nor the store is a [`StoreError::Conflict`].
    pub fn insert_all_with_authz(
        &self,
        records: &Snapshot,
        authz: &AuthzSnapshot,
        into_empty: bool,
    ) -> Result<(), StoreError> {
        let (records, authz) = (records.clone(), authz.clone());
        self.run("insert in bulk", move |pool| {
            writes::insert_all(pool, records, authz, into_empty)
        })
    }

    /// Connects with default [`PostgresOptions`] and migrates the schema.
    /// `url` is a libpq-style connection string, either key/value
    /// (`host=db1,db2 dbname=keyfence target_session_attrs=read-write`) or a
    /// URL (`postgres://keyfence@db1,db2/keyfence?target_session_attrs=read-write`).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default())
    }

    /// Connects with `options` and migrates the schema.
    pub fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let (url, tls) = tls::split(url)?;
        let connector = tls.connector()?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Backend(format!("invalid PostgreSQL connection string: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("keyfence");
        }
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.operation_timeout))
            .create_timeout(Some(options.operation_timeout))
            .recycle_timeout(Some(options.operation_timeout))
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    // Durable commits whatever the server's default.
                    client
                        .batch_execute("SET synchronous_commit = on")
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))?;
        let store = Self {
            pool,
            config,
            tls: connector,
            tls_mode: tls.mode,
            bridge: Bridge::new(options.operation_timeout)?,
        };
        store.run("migrate", schema::migrate)?;
        Ok(store)
    }

    /// The schema version this build migrates databases to.
    pub const SCHEMA_VERSION: i32 = schema::LATEST;

    fn run<T, E, F>(&self, what: &'static str, work: impl FnOnce(Pool) -> F) -> Result<T, E>
    where
        F: std::future::Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.bridge.run(what, work(self.pool.clone()))
    }

    fn write(&self, what: &'static str, write: Write) -> Result<Written, StoreError> {
        self.run(what, |pool| writes::write(pool, write))
    }

    fn write_revision(&self, what: &'static str, write: Write) -> Result<Revision, StoreError> {
        match self.write(what, write)? {
            Written::Revision(r) => Ok(r),
            _ => Err(StoreError::Backend(format!("{what}: no revision returned"))),
        }
    }

    /// A waker for a feed reader, listening on its own connection. It runs
    /// on the store's runtime: once the store is dropped it no longer wakes,
    /// and waits only time out.
    pub fn change_waker(&self) -> ChangeWaker {
        ChangeWaker::spawn(self.bridge.handle(), self.config.clone(), self.tls.clone())
    }
}

impl Store for PostgresStore {
    fn is_shared(&self) -> bool {
        true
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        self.run("load", feed::seed)
    }

    fn load_head(&self) -> Result<Snapshot, StoreError> {
        self.run("load", feed::head)
    }

    fn load_keys(&self, after: Option<&KeyId>, limit: usize) -> Result<Vec<StoredKey>, StoreError> {
        let after = after.map(ToString::to_string);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("load keys", move |pool| feed::keys_page(pool, after, limit))
    }

    fn load_key(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        let id = *id;
        self.run("load a key", move |pool| writes::load_key(pool, id))
    }

    fn load_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        let (account, region, name) = (account.to_string(), region.to_string(), name.to_string());
        self.run("load an alias", move |pool| {
            writes::load_alias(pool, account, region, name)
        })
    }

    fn key_revision(&self, id: &KeyId) -> Result<Option<Revision>, StoreError> {
        let id = *id;
        self.run("read a revision", move |pool| {
            writes::key_revision(pool, id)
        })
    }

    /// Never skips a change, whatever order the writing transactions
    /// committed in (see [`feed`]).
    fn changes_since(&self, cursor: FeedCursor) -> Result<ChangeBatch, StoreError> {
        self.run("read the change feed", move |pool| {
            feed::changes_since(pool, cursor)
        })
    }

    fn insert_domain_key(&self, key: &DomainKeyRecord) -> Result<(), StoreError> {
        self.write("insert domain key", Write::DomainKey(key.clone()))
            .map(drop)
    }

    fn domain_keys(&self) -> Result<Vec<DomainKeyRecord>, StoreError> {
        self.run("read domain keys", domain_keys::all)
    }

    fn versions_under(
        &self,
        domain_key_id: u32,
        after: Option<(&KeyId, u32)>,
        limit: usize,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        let after = after.map(|(k, v)| (*k, v));
        self.run("read versions under a domain key", move |pool| {
            domain_keys::versions_under(pool, domain_key_id, after, limit)
        })
    }

    fn rewrap_versions(&self, rewraps: &[Rewrap]) -> Result<usize, StoreError> {
        let rewraps = rewraps.to_vec();
        self.run("re-wrap versions", move |pool| {
            domain_keys::rewrap(pool, rewraps)
        })
    }

    fn destroy_domain_key(&self, id: u32) -> Result<bool, StoreError> {
        self.run("destroy a domain key", move |pool| {
            domain_keys::destroy(pool, id)
        })
    }

    fn insert_key(&self, key: &KeyMetadata, versions: &[VersionRecord]) -> Result<(), StoreError> {
        self.write(
            "insert key",
            Write::InsertKey(key.clone(), versions.to_vec()),
        )
        .map(drop)
    }

    fn insert_key_with_policy(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
        policy: &StoredKeyPolicy,
    ) -> Result<KeyAuthz, StoreError> {
        match self.write(
            "insert key",
            Write::InsertKeyWithPolicy(key.clone(), versions.to_vec(), policy.clone()),
        )? {
            Written::Authz(state) => Ok(state),
            _ => Err(StoreError::Backend(
                "insert key: no policy state returned".into(),
            )),
        }
    }

    fn update_key(&self, key: &KeyMetadata, expected: Revision) -> Result<Revision, StoreError> {
        self.write_revision("update key", Write::UpdateKey(key.clone(), expected))
    }

    fn add_version(
        &self,
        key: &KeyMetadata,
        version: &VersionRecord,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.write_revision(
            "add version",
            Write::AddVersion(key.clone(), version.clone(), expected),
        )
    }

    fn replace_versions(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.write_revision(
            "replace versions",
            Write::ReplaceVersions(key.clone(), versions.to_vec(), expected),
        )
    }

    fn delete_key(&self, id: &KeyId, expected: Revision) -> Result<(), StoreError> {
        self.write("delete key", Write::DeleteKey(*id, expected))
            .map(drop)
    }

    fn insert_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        self.write("insert alias", Write::InsertAlias(alias.clone()))
            .map(drop)
    }

    fn insert_alias_at(&self, alias: &Alias, target_revision: Revision) -> Result<(), StoreError> {
        self.write(
            "insert alias",
            Write::InsertAliasAt(alias.clone(), target_revision),
        )
        .map(drop)
    }

    fn update_alias(&self, alias: &Alias) -> Result<Option<Alias>, StoreError> {
        match self.write("update alias", Write::UpdateAlias(alias.clone()))? {
            Written::Alias(a) => Ok(a),
            _ => Err(StoreError::Backend(
                "update alias: no alias returned".into(),
            )),
        }
    }

    fn delete_alias(&self, account: &str, region: &str, name: &str) -> Result<bool, StoreError> {
        match self.write(
            "delete alias",
            Write::DeleteAlias(account.to_string(), region.to_string(), name.to_string()),
        )? {
            Written::Existed(e) => Ok(e),
            _ => Err(StoreError::Backend("delete alias: no answer".into())),
        }
    }

    fn insert_all(&self, records: &Snapshot, into_empty: bool) -> Result<(), StoreError> {
        self.insert_all_with_authz(records, &AuthzSnapshot::default(), into_empty)
    }

    fn trim_feed(&self, cursor: FeedCursor) -> Result<u64, StoreError> {
        self.run("trim the change feed", move |pool| feed::trim(pool, cursor))
    }
}
