//! `keyfence store fill`: many keys in a store, fast, for measurements at
//! scale. Keys are made by the node's own code ([`Kms::create_key`]: real
//! material, wrapped under the store's domain key, or with `--fence` under
//! the fence's policy key as an enrolled node of a cluster makes them) over
//! a store that collects them and writes each batch in one transaction
//! ([`Store::insert_all`]), instead of one durable transaction per key.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use keyfence_core::cluster::ClusterStore;
use keyfence_core::model::Alias;
use keyfence_core::root::LocalRootKey;
use keyfence_core::service::{CreateKeyInput, FenceView, FENCE_TAG};
use keyfence_core::store::{
    ChangeBatch, DomainKeyRecord, FeedCursor, Revision, Snapshot, StoredKey, VersionRecord,
};
use keyfence_core::{KeyId, KeyMetadata, Kms, Store, StoreError, SystemClock};
use keyfence_server::config::StoreLocation;
use keyfence_server::datadir::DataDir;
use keyfence_store::{PostgresOptions, PostgresStore, SqliteStore};

/// Keys per transaction.
const BATCH: usize = 10_000;

/// A store that holds new keys back until [`Batching::flush`]; everything
/// else goes straight through.
struct Batching {
    inner: Arc<dyn Store>,
    pending: Mutex<Vec<StoredKey>>,
}

impl Batching {
    /// Writes the held keys in one transaction; returns how many.
    fn flush(&self) -> Result<usize, StoreError> {
        let keys = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let n = keys.len();
        if n > 0 {
            let records = Snapshot {
                keys,
                ..Snapshot::default()
            };
            self.inner.insert_all(&records, false)?;
        }
        Ok(n)
    }
}

impl Store for Batching {
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }
    fn load_head(&self) -> Result<Snapshot, StoreError> {
        self.inner.load_head()
    }
    fn load_keys(&self, after: Option<&KeyId>, limit: usize) -> Result<Vec<StoredKey>, StoreError> {
        self.inner.load_keys(after, limit)
    }
    fn load_key(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        self.inner.load_key(id)
    }
    fn load_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError> {
        self.inner.load_alias(account, region, name)
    }
    fn key_revision(&self, id: &KeyId) -> Result<Option<Revision>, StoreError> {
        self.inner.key_revision(id)
    }
    fn changes_since(&self, cursor: FeedCursor) -> Result<ChangeBatch, StoreError> {
        self.inner.changes_since(cursor)
    }
    fn insert_domain_key(&self, key: &DomainKeyRecord) -> Result<(), StoreError> {
        self.inner.insert_domain_key(key)
    }
    fn insert_key(&self, key: &KeyMetadata, versions: &[VersionRecord]) -> Result<(), StoreError> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(StoredKey {
                metadata: key.clone(),
                versions: versions.to_vec(),
                revision: 1,
            });
        Ok(())
    }
    fn update_key(&self, key: &KeyMetadata, expected: Revision) -> Result<Revision, StoreError> {
        self.inner.update_key(key, expected)
    }
    fn add_version(
        &self,
        key: &KeyMetadata,
        version: &VersionRecord,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.inner.add_version(key, version, expected)
    }
    fn replace_versions(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.inner.replace_versions(key, versions, expected)
    }
    fn delete_key(&self, id: &KeyId, expected: Revision) -> Result<(), StoreError> {
        self.inner.delete_key(id, expected)
    }
    fn insert_alias(&self, alias: &Alias) -> Result<(), StoreError> {
        self.inner.insert_alias(alias)
    }
    fn update_alias(&self, alias: &Alias) -> Result<Option<Alias>, StoreError> {
        self.inner.update_alias(alias)
    }
    fn delete_alias(&self, account: &str, region: &str, name: &str) -> Result<bool, StoreError> {
        self.inner.delete_alias(account, region, name)
    }
}

/// Fenced keys to make: the policy, and the enrolled node (one that
/// satisfies it) whose identity and grant wrap them.
pub struct Fenced {
    /// The policy; its fence must exist.
    pub policy: String,
    /// The node, by name.
    pub node: String,
}

/// A store as keys and as cluster state (the same database).
type Opened = (Arc<dyn Store>, Arc<dyn ClusterStore>);

/// Opens the store `store` names, as keys and as cluster state.
fn open_store(dir: &DataDir, store: &str) -> Result<Opened, String> {
    Ok(
        match StoreLocation::parse(store).map_err(|e| e.to_string())? {
            StoreLocation::DataDir => {
                let s = Arc::new(SqliteStore::open(&dir.database()).map_err(|e| e.to_string())?);
                (s.clone(), s)
            }
            StoreLocation::SharedSqlite(path) => {
                let s = Arc::new(SqliteStore::open_shared(&path).map_err(|e| e.to_string())?);
                (s.clone(), s)
            }
            StoreLocation::Postgres(url) => {
                let options = PostgresOptions {
                    operation_timeout: std::time::Duration::from_secs(600),
                    ..PostgresOptions::default()
                };
                let s = Arc::new(
                    PostgresStore::connect_with(&url, options).map_err(|e| e.to_string())?,
                );
                (s.clone(), s)
            }
        },
    )
}

/// Adds `count` symmetric keys of `account` to the store `store` names,
/// fenced if `fenced` says so.
pub fn main(
    data_dir: &Path,
    store: &str,
    count: usize,
    account: &str,
    fenced: Option<Fenced>,
) -> Result<(), String> {
    let (dir, _) = DataDir::open_or_init(data_dir).map_err(|e| e.to_string())?;
    let root = LocalRootKey::new(dir.load_root_key().map_err(|e| e.to_string())?);
    let (inner, cluster) = open_store(&dir, store)?;
    let view = match &fenced {
        Some(f) => {
            keyfence_server::cluster::offline_view(data_dir, &f.node, cluster.as_ref(), &root)
                .map_err(|e| format!("node {}: {e}", f.node))?
        }
        None => FenceView::default(),
    };
    let batching = Arc::new(Batching {
        inner,
        pending: Mutex::new(Vec::new()),
    });
    let kms = Kms::open_fenced(
        batching.clone(),
        &root,
        Arc::new(SystemClock),
        "us-east-1",
        view,
    )
    .map_err(|e| e.to_string())?;
    let tags: Vec<(String, String)> = fenced
        .iter()
        .map(|f| (FENCE_TAG.to_owned(), f.policy.clone()))
        .collect();
    let started = Instant::now();
    let mut written = 0;
    for i in 0..count {
        let input = CreateKeyInput {
            description: Some(format!("fill {i}")),
            tags: tags.clone(),
            ..CreateKeyInput::default()
        };
        kms.create_key(account, input).map_err(|e| e.to_string())?;
        if (i + 1) % BATCH == 0 {
            written += batching.flush().map_err(|e| e.to_string())?;
            eprintln!("{written} keys ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
    written += batching.flush().map_err(|e| e.to_string())?;
    println!(
        "added {written} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
