//! Domain-key rotation measured in-process (run by `bench/domain_keys.sh`).
//!
//! 1. Fills a SQLite store (one file, `synchronous=FULL`) with `--keys`
//!    symmetric keys, made by the node's own code and written in batches.
//! 2. Opens the KMS over it with the root of trust `--root file` (a key in
//!    memory: what the `file` and the unsealed `shamir` roots hold) or
//!    `--root pkcs11` (an AES key in a token: `--module`, `--token`, PIN in
//!    `$KEYFENCE_PKCS11_PIN`), and times a rotation (a new domain key,
//!    wrapped by the root) and the re-wrap of every version until the old
//!    domain key is destroyed.
//! 3. Times Encrypt (in-process, `--threads` threads, `--seconds` each) with
//!    nothing else running, then with rotations and re-wraps running back to
//!    back on another thread, paced as a node's schedule paces them
//!    (`keyfence_server::domain_keys::check`), and prints the ratio.
//!
//! ```text
//! cargo run --release -p keyfence-server --example domain_key_rotation -- \
//!     --root file --keys 100000 --threads 2 --seconds 10
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyfence_core::model::Alias;
use keyfence_core::service::{CreateKeyInput, RewrapBudget};
use keyfence_core::store::{
    ChangeBatch, DomainKeyRecord, FeedCursor, Revision, Snapshot, StoredKey, VersionRecord,
};
use keyfence_core::{
    EncryptionContext, KeyId, KeyMetadata, Kms, LocalRootKey, RootOfTrust, Store, StoreError,
    SystemClock,
};
use keyfence_crypto::SymmetricKey;
use keyfence_server::domain_keys::{check, Schedule};
use keyfence_server::root::{Pkcs11Root, Pkcs11Section};
use keyfence_store::SqliteStore;

const ACCOUNT: &str = "111122223333";
/// Keys per fill transaction.
const FILL_BATCH: usize = 10_000;

struct Args {
    root: String,
    keys: usize,
    threads: usize,
    seconds: u64,
    module: Option<PathBuf>,
    token: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        root: "file".into(),
        keys: 100_000,
        threads: 2,
        seconds: 10,
        module: None,
        token: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse().map_err(|_| format!("{flag}: not a number"));
        match flag.as_str() {
            "--root" => a.root = value,
            "--keys" => a.keys = number(&value)?,
            "--threads" => a.threads = number(&value)?,
            "--seconds" => a.seconds = number(&value)? as u64,
            "--module" => a.module = Some(value.into()),
            "--token" => a.token = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn root(a: &Args) -> Result<Arc<dyn RootOfTrust>, String> {
    match a.root.as_str() {
        "file" => Ok(Arc::new(LocalRootKey::new(
            SymmetricKey::generate().map_err(|e| e.to_string())?,
        ))),
        "pkcs11" => {
            let section = Pkcs11Section {
                module: a.module.clone().ok_or("--root pkcs11 needs --module")?,
                token_label: a.token.clone().ok_or("--root pkcs11 needs --token")?,
                key_label: None,
                pin_env: None,
                pin_file: None,
            };
            let root = Pkcs11Root::create(&section).or_else(|_| Pkcs11Root::open(&section));
            Ok(Arc::new(root.map_err(|e| e.to_string())?))
        }
        other => Err(format!("--root {other}: file or pkcs11")),
    }
}

/// A store that holds new keys back until [`Filling::flush`] writes them in
/// one transaction; everything else goes straight through.
struct Filling {
    inner: Arc<dyn Store>,
    pending: Mutex<Vec<StoredKey>>,
}

impl Filling {
    fn flush(&self) -> Result<(), StoreError> {
        let keys = std::mem::take(&mut *self.pending.lock().unwrap());
        self.inner.insert_all(
            &Snapshot {
                keys,
                ..Snapshot::default()
            },
            false,
        )
    }
}

impl Store for Filling {
    fn is_shared(&self) -> bool {
        false
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
    fn load_alias(&self, a: &str, r: &str, n: &str) -> Result<Option<Alias>, StoreError> {
        self.inner.load_alias(a, r, n)
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
        self.pending.lock().unwrap().push(StoredKey {
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
    fn delete_alias(&self, a: &str, r: &str, n: &str) -> Result<bool, StoreError> {
        self.inner.delete_alias(a, r, n)
    }
}

/// Rotates, then re-wraps in one unpaced pass until the old domain key is
/// destroyed; returns the time of the rotation and of the re-wrap.
fn rotate_and_rewrap(kms: &Kms) -> Result<(Duration, Duration), String> {
    let started = Instant::now();
    kms.rotate_domain_key().map_err(|e| e.to_string())?;
    let rotated = started.elapsed();
    let outcome = kms
        .rewrap_domain_keys(RewrapBudget::UNLIMITED, Duration::ZERO)
        .map_err(|e| e.to_string())?;
    if !outcome.remaining.is_empty() {
        return Err(format!("domain keys left after a full pass: {outcome:?}"));
    }
    Ok((rotated, started.elapsed() - rotated))
}

/// Rotates, then re-wraps as a node's schedule does (paced passes); returns
/// the wall time of the re-wrap.
fn rotate_and_rewrap_paced(kms: &Kms, schedule: &Schedule) -> Result<Duration, String> {
    kms.rotate_domain_key().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let outcome = check(kms, schedule, None).map_err(|e| e.to_string())?;
    match outcome {
        Some(o) if o.remaining.is_empty() => Ok(started.elapsed()),
        other => Err(format!("domain keys left after the schedule: {other:?}")),
    }
}

/// Encrypts on `threads` threads for `seconds`; returns operations per second.
fn encrypt_rate(kms: &Arc<Kms>, arns: &Arc<Vec<String>>, threads: usize, seconds: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (kms, arns, done) = (Arc::clone(kms), Arc::clone(arns), Arc::clone(&done));
            std::thread::spawn(move || {
                let ctx = EncryptionContext::new(BTreeMap::from([("b".into(), "x".into())]))
                    .expect("context");
                let mut i = t;
                while Instant::now() < deadline {
                    kms.encrypt(ACCOUNT, &arns[i % arns.len()], &[7u8; 32], &ctx, None)
                        .expect("encrypt");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += threads;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}

fn main() -> Result<(), String> {
    let a = args()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("keyfence.db")).map_err(|e| e.to_string())?);
    let root = root(&a)?;

    let filling = Arc::new(Filling {
        inner: Arc::clone(&store),
        pending: Mutex::new(Vec::new()),
    });
    let filler = Kms::open(
        filling.clone(),
        root.as_ref(),
        Arc::new(SystemClock),
        "us-east-1",
    )
    .map_err(|e| e.to_string())?;
    let mut arns = Vec::with_capacity(a.keys);
    for i in 0..a.keys {
        let key = filler
            .create_key(ACCOUNT, CreateKeyInput::default())
            .map_err(|e| e.to_string())?;
        arns.push(key.arn());
        if (i + 1) % FILL_BATCH == 0 {
            filling.flush().map_err(|e| e.to_string())?;
        }
    }
    filling.flush().map_err(|e| e.to_string())?;
    drop(filler);

    let kms = Arc::new(
        Kms::open(store, root.as_ref(), Arc::new(SystemClock), "us-east-1")
            .map_err(|e| e.to_string())?
            .with_root_of_trust(Arc::clone(&root)),
    );
    let (rotated, rewrapped) = rotate_and_rewrap(&kms)?;
    println!(
        "root {}: {} keys: rotation {:.2} ms, re-wrap {:.2} s ({:.0} versions/s)",
        a.root,
        a.keys,
        rotated.as_secs_f64() * 1e3,
        rewrapped.as_secs_f64(),
        a.keys as f64 / rewrapped.as_secs_f64()
    );

    let arns = Arc::new(arns);
    let quiet = encrypt_rate(&kms, &arns, a.threads, a.seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let rewrapper = {
        let (kms, stop) = (Arc::clone(&kms), Arc::clone(&stop));
        // The node's schedule (not due: only the re-wrap after each rotation).
        let schedule = Schedule::new(Duration::from_secs(24 * 3600), None);
        std::thread::spawn(move || {
            let mut walls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                walls.push(rotate_and_rewrap_paced(&kms, &schedule).expect("re-wrap"));
            }
            walls
        })
    };
    let busy = encrypt_rate(&kms, &arns, a.threads, a.seconds);
    stop.store(true, Ordering::Relaxed);
    let walls = rewrapper.join().map_err(|_| "re-wrap thread panicked")?;
    let wall = walls.iter().sum::<Duration>().as_secs_f64() / walls.len().max(1) as f64;
    println!(
        "root {}: Encrypt in-process, {} threads: {quiet:.0}/s quiet, {busy:.0}/s during \
         paced re-wraps ({} rotations, {wall:.2} s each): ratio {:.3}",
        a.root,
        a.threads,
        walls.len(),
        busy / quiet
    );
    Ok(())
}
