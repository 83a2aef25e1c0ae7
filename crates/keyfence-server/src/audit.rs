//! The node's audit log writer: every request (KMS API, admin API, requests
//! forwarded by other nodes) and every action taken on the node itself is
//! appended as one record, a request's before its reply is sent, by group
//! commit; the log's tree head is signed at a fixed interval.
//!
//! # Durability and cost
//!
//! A request's handler builds and encodes its record once the answer is
//! known, queues it and waits for the batch it joined: the reply leaves only
//! after the batch is committed (SQLite `synchronous=FULL`, PostgreSQL
//! `synchronous_commit=on`). One writer thread takes every record queued, in
//! order, places them, hashes them into the tree, appends them with the tree's
//! new edge in one transaction and then wakes every handler of the batch at
//! once. While one batch is on disk the next gathers, so a commit (and its
//! `fsync`) is shared by every request in flight; the writer is woken only
//! when it is idle, and never lingers over an awaited record. A batch that
//! cannot be committed turns each of its replies into a
//! `KMSInternalException`: no answer leaves unrecorded. A record queued
//! without waiting ([`AuditLog::enqueue`]) is durable once any record queued
//! after it has been acknowledged, and at most [`LINGER`] after it was
//! queued: a queue of such records alone (a forwarding node's records of hops
//! that the executing node recorded durably) waits that long, or until
//! [`LINGER_RECORDS`] are queued, so that one commit carries many of them
//! instead of one `fsync` each.
//!
//! # Signed tree heads
//!
//! Every `head_interval` (and when the node stops or is sealed) the writer
//! signs the current size and root with the log's ML-DSA-65 key, if the log
//! grew. The key is generated on the first start, sealed under the root of
//! trust and stored with the log; only its public half leaves the node. A
//! quorum-sealed node records from its start and signs heads once unsealed
//! ([`AuditLog::unseal`]), until sealed again ([`AuditLog::seal`]).
//!
//! # Start-up
//!
//! The writer restarts from the tree edge stored with the last batch (O(log n)
//! reads); a missing edge (a log written before schema version 7) or one that
//! does not fit the records or the latest signed head is rebuilt by reading
//! every leaf hash once.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use keyfence_core::audit::{
    merkle, record, AuditRecord, AuditSigner, AuditStore, Frontier, LogKey, Outcome,
    SignedTreeHead, Source, StoredEntry, TreeHead,
};
use keyfence_core::{Clock, RootOfTrust, StoreError};
use tokio::sync::{oneshot, Notify};

use crate::sigv4::VerifiedCaller;

/// Default interval between signed tree heads.
pub const DEFAULT_HEAD_INTERVAL: Duration = Duration::from_secs(60);

/// Longest a record queued without waiting stays uncommitted when no
/// awaited record follows it.
pub const LINGER: Duration = Duration::from_millis(50);

/// Records queued without waiting that are committed at once, lingering or not.
pub const LINGER_RECORDS: usize = 1024;

/// Records read per query when the writer rebuilds its tree at start.
const READ_PAGE: usize = 10_000;

/// The file, in its data directory, where a node on PostgreSQL keeps its log.
pub const OWN_FILE: &str = "audit.db";

/// The log name of a node outside a cluster.
pub const LOCAL_LOG: &str = "local";

/// The `[audit]` table of the configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// Whether requests are recorded (default true; off only to measure its cost).
    pub enabled: Option<bool>,
    /// Seconds between signed tree heads (default 60).
    pub head_interval_secs: Option<u64>,
}

impl AuditFile {
    /// The settings this table gives, checked.
    pub fn resolve(self) -> Result<AuditSettings, crate::config::ConfigError> {
        let d = AuditSettings::default();
        let head_interval = self
            .head_interval_secs
            .map_or(d.head_interval, Duration::from_secs);
        if head_interval.is_zero() {
            return Err(crate::config::ConfigError::Invalid(
                "[audit] head_interval_secs must be at least 1".into(),
            ));
        }
        Ok(AuditSettings {
            enabled: self.enabled.unwrap_or(d.enabled),
            head_interval,
        })
    }
}

/// How the node keeps its audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSettings {
    /// Whether requests are recorded.
    pub enabled: bool,
    /// Interval between signed tree heads.
    pub head_interval: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            head_interval: DEFAULT_HEAD_INTERVAL,
        }
    }
}

/// Why the audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// The store failed.
    #[error("audit store: {0}")]
    Store(#[from] StoreError),
    /// The signing key could not be made, sealed or unsealed.
    #[error("audit: {0}")]
    Audit(#[from] keyfence_core::audit::AuditError),
    /// A batch could not be committed (the store's error, as text: every
    /// request of the batch gets it).
    #[error("audit commit: {0}")]
    Commit(String),
    /// The writer has stopped.
    #[error("audit writer stopped")]
    Stopped,
    /// The log's signing key is not in memory (a sealed node's).
    #[error("the audit signing key is sealed on this node")]
    Sealed,
}

/// One group commit: the records queued while the previous one was on disk.
struct Batch {
    /// Set once: the position of the batch's first record, or why the batch
    /// was not committed.
    outcome: OnceLock<Result<u64, String>>,
    done: Notify,
}

impl Batch {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            outcome: OnceLock::new(),
            done: Notify::new(),
        })
    }

    /// Settles the batch (once) and wakes every handler waiting on it.
    fn finish(&self, outcome: Result<u64, String>) {
        let _ = self.outcome.set(outcome);
        self.done.notify_waiters();
    }

    /// Waits until the batch is settled; the position of its first record.
    async fn wait(&self) -> Result<u64, AuditLogError> {
        let notified = self.done.notified();
        tokio::pin!(notified);
        // Registered before looking, so a `finish` in between is not missed.
        notified.as_mut().enable();
        if self.outcome.get().is_none() {
            notified.await;
        }
        match self.outcome.get() {
            Some(Ok(first)) => Ok(*first),
            Some(Err(e)) => Err(AuditLogError::Commit(e.clone())),
            None => Err(AuditLogError::Stopped),
        }
    }
}

/// A batch the writer has taken: settled as failed if the writer never gets
/// to settle it (it panicked).
struct Taken(Arc<Batch>);

impl Drop for Taken {
    fn drop(&mut self) {
        self.0.finish(Err("audit writer stopped".into()));
    }
}

/// Something other than a record for the writer.
enum Control {
    Sign(oneshot::Sender<Result<Option<SignedTreeHead>, AuditLogError>>),
    Unseal(Box<AuditSigner>),
    /// Sign a last head, forget the key, then say so (records queued after
    /// the sender saw that answer are never covered by a head of this key).
    Seal(std::sync::mpsc::Sender<()>),
    /// Wrap the signing key to an X-Wing public key (a quorum's export).
    Export(
        Vec<u8>,
        std::sync::mpsc::Sender<Result<Vec<u8>, AuditLogError>>,
    ),
}

/// What the handlers hand the writer.
struct Queue {
    /// Encoded records, their position not yet placed.
    records: Vec<Vec<u8>>,
    /// The batch the queued records will be committed in.
    batch: Arc<Batch>,
    /// Some handler waits for the queued records: commit them now.
    awaited: bool,
    /// When the oldest queued record was queued.
    oldest: Option<Instant>,
    controls: Vec<Control>,
    open: bool,
    /// The writer is waiting for work (only then is it woken).
    idle: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Queue {
    /// Whether the writer should take what is queued now rather than wait.
    fn due(&self, now: Instant) -> bool {
        !self.controls.is_empty()
            || !self.open
            || self.awaited
            || self.records.len() >= LINGER_RECORDS
            || self.oldest.is_some_and(|t| now >= t + LINGER)
    }

    /// Queues one encoded record; `awaited` when its handler waits for it.
    fn push_record(&mut self, data: Vec<u8>, awaited: bool) -> (Arc<Batch>, u64) {
        if self.records.is_empty() {
            self.oldest = Some(Instant::now());
        }
        self.awaited |= awaited;
        self.records.push(data);
        (Arc::clone(&self.batch), self.records.len() as u64 - 1)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues under the lock; wakes the writer if it is idle and has
    /// something to do now, or a first lingering record to time.
    fn push<T>(&self, f: impl FnOnce(&mut Queue) -> T) -> Result<T, AuditLogError> {
        let mut q = self.lock();
        if !q.open {
            return Err(AuditLogError::Stopped);
        }
        let out = f(&mut q);
        if q.idle && (q.records.len() == 1 || q.due(Instant::now())) {
            q.idle = false;
            self.wake.notify_one();
        }
        Ok(out)
    }
}

/// Closes the queue when the writer ends, however it ends: later appends
/// fail, and records already queued are refused rather than left waiting.
struct Exit(Arc<Shared>);

impl Drop for Exit {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.open = false;
        q.records.clear();
        q.batch.finish(Err("audit writer stopped".into()));
    }
}

/// The audit log of one node: a queue into the writer thread.
pub struct AuditLog {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    store: Arc<dyn AuditStore>,
    log: String,
    public_key: Mutex<Option<Vec<u8>>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

/// The log's signer: unsealed from the store, or made and stored on first use.
fn signer(
    store: &dyn AuditStore,
    log: &str,
    root: &dyn RootOfTrust,
) -> Result<AuditSigner, AuditLogError> {
    if let Some(key) = store.signing_key(log)? {
        return Ok(AuditSigner::unseal(root, &key.sealed)?);
    }
    let (signer, sealed) = AuditSigner::generate(root)?;
    let key = LogKey {
        public_key: signer.public_key()?,
        sealed,
    };
    match store.put_signing_key(log, &key) {
        Ok(()) => Ok(signer),
        // Another process of the same node name stored one first: use it.
        Err(StoreError::Conflict(_)) => {
            let key = store
                .signing_key(log)?
                .ok_or_else(|| StoreError::Corrupt("audit key vanished".into()))?;
            Ok(AuditSigner::unseal(root, &key.sealed)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The tree of the stored log, from its stored leaf hashes (O(n)).
fn rebuild(store: &dyn AuditStore, log: &str) -> Result<Frontier, StoreError> {
    let mut frontier = Frontier::new();
    loop {
        let page = store.read(log, frontier.size(), READ_PAGE)?;
        for e in &page {
            if e.seq != frontier.size() {
                return Err(StoreError::Corrupt(format!(
                    "audit log {log}: record {} at position {}",
                    e.seq,
                    frontier.size()
                )));
            }
            frontier.push(e.leaf_hash);
        }
        if page.len() < READ_PAGE {
            return Ok(frontier);
        }
    }
}

/// The tree of the stored log: the stored edge if it covers every record
/// and, at the latest signed head's size, has its root; else rebuilt.
fn restore(
    store: &dyn AuditStore,
    log: &str,
    latest: Option<&TreeHead>,
) -> Result<Frontier, StoreError> {
    let (edge, size) = store.frontier(log)?;
    let fits = |f: &Frontier| {
        f.size() == size && latest.is_none_or(|h| h.size != size || h.root == f.root())
    };
    match edge {
        Some(f) if fits(&f) => Ok(f),
        _ => {
            tracing::info!(
                log,
                records = size,
                "rebuilding the audit tree from its records"
            );
            rebuild(store, log)
        }
    }
}

struct Writer {
    store: Arc<dyn AuditStore>,
    log: String,
    signer: Option<AuditSigner>,
    clock: Arc<dyn Clock>,
    frontier: Frontier,
    signed: u64,
}

impl Writer {
    fn run(mut self, shared: Arc<Shared>, interval: Duration) {
        let _exit = Exit(Arc::clone(&shared));
        let mut due = Instant::now() + interval;
        loop {
            let (records, batch, controls, open) = {
                let mut q = shared.lock();
                loop {
                    let now = Instant::now();
                    if now >= due || q.due(now) {
                        break;
                    }
                    let until = q.oldest.map_or(due, |t| due.min(t + LINGER));
                    q.idle = true;
                    q = shared
                        .wake
                        .wait_timeout(q, until.saturating_duration_since(now))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    q.idle = false;
                }
                q.awaited = false;
                q.oldest = None;
                let records = std::mem::take(&mut q.records);
                let batch = (!records.is_empty())
                    .then(|| Taken(std::mem::replace(&mut q.batch, Batch::new())));
                (records, batch, std::mem::take(&mut q.controls), q.open)
            };
            if let Some(batch) = batch {
                self.commit(records, &batch.0);
            }
            for control in controls {
                match control {
                    Control::Sign(ack) => {
                        let _ = ack.send(self.sign());
                    }
                    Control::Unseal(signer) => self.signer = Some(*signer),
                    Control::Seal(done) => {
                        self.sign_or_log("on sealing");
                        self.signer = None;
                        let _ = done.send(());
                    }
                    Control::Export(recipient, ack) => {
                        let wrapped = match &self.signer {
                            Some(signer) => signer.export_to(&recipient).map_err(Into::into),
                            None => Err(AuditLogError::Sealed),
                        };
                        let _ = ack.send(wrapped);
                    }
                }
            }
            if !open {
                self.sign_or_log("final");
                return;
            }
            if Instant::now() >= due {
                self.sign_or_log("periodic");
                due = Instant::now() + interval;
            }
        }
    }

    fn commit(&mut self, records: Vec<Vec<u8>>, batch: &Batch) {
        let first = self.frontier.size();
        let mut frontier = self.frontier.clone();
        let mut entries = Vec::with_capacity(records.len());
        for mut data in records {
            let seq = frontier.size();
            if let Err(e) = record::place(&mut data, seq) {
                batch.finish(Err(e.to_string()));
                return;
            }
            let leaf_hash = merkle::leaf_hash(&data);
            frontier.push(leaf_hash);
            entries.push(StoredEntry {
                seq,
                data,
                leaf_hash,
            });
        }
        match self.store.append(&self.log, &entries, &frontier) {
            Ok(()) => {
                self.frontier = frontier;
                batch.finish(Ok(first));
            }
            Err(e) => {
                tracing::error!(error = %e, records = entries.len(), "appending to the audit log failed");
                batch.finish(Err(e.to_string()));
                // A failed commit may still have landed (a lost connection):
                // continue from what the store holds.
                match restore(self.store.as_ref(), &self.log, None) {
                    Ok(f) => self.frontier = f,
                    Err(e) => tracing::error!(error = %e, "rereading the audit log failed"),
                }
            }
        }
    }

    fn sign_or_log(&mut self, which: &str) {
        if let Err(e) = self.sign() {
            tracing::error!(error = %e, which, "signing the audit tree head failed");
        }
    }

    /// Signs and stores a head if the log grew since the last one and the
    /// writer holds the signing key.
    fn sign(&mut self) -> Result<Option<SignedTreeHead>, AuditLogError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        if self.frontier.size() == self.signed {
            return Ok(None);
        }
        let head = signer.sign(TreeHead {
            size: self.frontier.size(),
            root: self.frontier.root(),
            time: self.clock.now(),
        })?;
        self.store.add_head(&self.log, &head)?;
        self.signed = head.head.size;
        Ok(Some(head))
    }
}

impl AuditLog {
    /// Opens log `log` in `store`: its signing key (made and sealed under
    /// `root` on first use) and its tree, then starts the writer thread.
    /// Without `root` (a sealed node) records are appended but no head is
    /// signed until [`Self::unseal`].
    pub fn open(
        store: Arc<dyn AuditStore>,
        log: &str,
        root: Option<&dyn RootOfTrust>,
        clock: Arc<dyn Clock>,
        head_interval: Duration,
    ) -> Result<Self, AuditLogError> {
        let signer = root
            .map(|root| signer(store.as_ref(), log, root))
            .transpose()?;
        let public_key = signer.as_ref().map(AuditSigner::public_key).transpose()?;
        let latest = store.heads(log)?.pop().map(|h| h.head);
        let frontier = restore(store.as_ref(), log, latest.as_ref())?;
        let writer = Writer {
            store: Arc::clone(&store),
            log: log.to_owned(),
            signer,
            clock: Arc::clone(&clock),
            frontier,
            signed: latest.map_or(0, |h| h.size),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                records: Vec::new(),
                batch: Batch::new(),
                awaited: false,
                oldest: None,
                controls: Vec::new(),
                open: true,
                idle: false,
            }),
            wake: Condvar::new(),
        });
        let writer_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("keyfence-audit".into())
            .spawn(move || writer.run(writer_shared, head_interval))
            .map_err(|e| StoreError::Backend(format!("audit writer thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
            store,
            log: log.to_owned(),
            public_key: Mutex::new(public_key),
            clock,
        })
    }

    /// The log's public key (DER SubjectPublicKeyInfo, ML-DSA-65), once the
    /// log has its signing key (a sealed node's log has it once unsealed).
    pub fn public_key(&self) -> Option<Vec<u8>> {
        self.public_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Gives the writer the log's signing key, unsealed (or made) under
    /// `root`: heads are signed from now on.
    pub fn unseal(&self, root: &dyn RootOfTrust) -> Result<(), AuditLogError> {
        let signer = signer(self.store.as_ref(), &self.log, root)?;
        let public_key = signer.public_key()?;
        self.shared
            .push(|q| q.controls.push(Control::Unseal(Box::new(signer))))?;
        *self.public_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(public_key);
        Ok(())
    }

    /// Has the writer sign a last head and forget the signing key.
    /// Waits (at most 5 s) until the writer has done so, so a record queued
    /// after this returns is never covered by a head of the forgotten key.
    pub fn seal(&self) {
        let (done, sealed) = std::sync::mpsc::channel();
        if self
            .shared
            .push(|q| q.controls.push(Control::Seal(done)))
            .is_ok()
        {
            let _ = sealed.recv_timeout(Duration::from_secs(5));
        }
    }

    /// The log's name.
    pub fn name(&self) -> &str {
        &self.log
    }

    /// The log's signing key wrapped to the holder of the X-Wing public key
    /// `recipient` (see `AuditSigner::export_to`), by the writer, which alone
    /// holds the key: [`AuditLogError::Sealed`] on a sealed node. Only an
    /// executed export-audit-key proposal calls this.
    pub fn export_key(&self, recipient: &[u8]) -> Result<Vec<u8>, AuditLogError> {
        let (ack, wrapped) = std::sync::mpsc::channel();
        self.shared
            .push(|q| q.controls.push(Control::Export(recipient.to_vec(), ack)))?;
        wrapped
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| AuditLogError::Stopped)?
    }

    /// Queues the encoded `record` (its position placed by the writer);
    /// `awaited` when the caller waits for it to be durable.
    fn queue(
        &self,
        record: &AuditRecord,
        awaited: bool,
    ) -> Result<(Arc<Batch>, u64), AuditLogError> {
        let data = record
            .encode()
            .map_err(keyfence_core::audit::AuditError::from)?;
        self.shared.push(|q| q.push_record(data, awaited))
    }

    /// Appends `record` (its `seq` is assigned by the writer); returns its
    /// position once it is durable.
    pub async fn append(&self, record: AuditRecord) -> Result<u64, AuditLogError> {
        let (batch, index) = self.queue(&record, true)?;
        Ok(batch.wait().await? + index)
    }

    /// Queues `record` without waiting for it: it is durable once any record
    /// queued after it has been acknowledged (batches commit in order), once
    /// the log is closed, and at most [`LINGER`] after this call.
    pub fn enqueue(&self, record: AuditRecord) -> Result<(), AuditLogError> {
        self.queue(&record, false).map(drop)
    }

    /// The record of an action taken on the node itself (start-up, seal,
    /// unseal, an executed quorum proposal) by `principal` (an operator, or
    /// empty), about `key` if any, stamped now.
    pub fn local(
        &self,
        operation: &str,
        principal: &str,
        key: Option<&str>,
        outcome: Outcome,
    ) -> AuditRecord {
        AuditRecord {
            seq: 0,
            time: self.clock.now(),
            source: Source::Local,
            operation: bounded(operation),
            request_id: String::new(),
            principal: bounded(principal),
            access_key_id: String::new(),
            account: String::new(),
            source_address: String::new(),
            key: key.map(bounded),
            context_keys: Vec::new(),
            outcome,
        }
    }

    /// Signs a head now (if the log grew since the last one and the log
    /// holds its signing key).
    pub async fn sign_now(&self) -> Result<Option<SignedTreeHead>, AuditLogError> {
        let (ack, done) = oneshot::channel();
        self.shared.push(|q| q.controls.push(Control::Sign(ack)))?;
        done.await.map_err(|_| AuditLogError::Stopped)?
    }

    /// Stops the writer after it has committed what it was given and signed
    /// a final head. Later appends fail with [`AuditLogError::Stopped`].
    pub fn close(&self) {
        {
            let mut q = self.shared.lock();
            q.open = false;
            self.shared.wake.notify_one();
        }
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Now, by the log's clock.
    pub fn now(&self) -> keyfence_core::Timestamp {
        self.clock.now()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// What the request path learns about a request while serving it.
#[derive(Debug, Default)]
pub struct Facts {
    /// The verified caller, once the signature checked out.
    pub caller: Option<VerifiedCaller>,
    /// The request body, once read.
    pub body: Bytes,
    /// Whether another node forwarded the request.
    pub forwarded: bool,
}

/// The fields of a KMS request or response the record keeps.
#[derive(serde::Deserialize, Default)]
struct KeyFields {
    #[serde(rename = "KeyId")]
    key_id: Option<String>,
    #[serde(rename = "KeyMetadata")]
    metadata: Option<Arn>,
    #[serde(rename = "EncryptionContext")]
    context: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
}

#[derive(serde::Deserialize)]
struct Arn {
    #[serde(rename = "Arn")]
    arn: Option<String>,
}

/// Longest string a record keeps of a client-chosen value.
const FIELD_LIMIT: usize = 2048;

fn bounded(s: &str) -> String {
    let mut end = s.len().min(FIELD_LIMIT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// How a request was answered, as the record keeps it.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// Answered here with this JSON (KMS, admin) or other body.
    Local(&'a [u8]),
    /// Relayed from another node, with its HTTP status.
    Forwarded(u16),
    /// Refused with this AWS error code.
    Refused(&'static str),
}

/// The record of one request: who (from `facts`), from where (`peer`), what
/// (`source`, `operation`, the key and context keys read from the request
/// and, for the ARN, the response) and how it ended (`answer`).
pub fn record(
    source: Source,
    operation: &str,
    request_id: &str,
    peer: SocketAddr,
    facts: &Facts,
    answer: Answer<'_>,
    time: keyfence_core::Timestamp,
) -> AuditRecord {
    let source = if facts.forwarded {
        Source::Node
    } else {
        source
    };
    let request: KeyFields = if source == Source::Kms || source == Source::Node {
        serde_json::from_slice(&facts.body).unwrap_or_default()
    } else {
        KeyFields::default()
    };
    let response: KeyFields = match answer {
        Answer::Local(body) if request.key_id.is_some() || body.starts_with(b"{\"KeyMetadata") => {
            serde_json::from_slice(body).unwrap_or_default()
        }
        _ => KeyFields::default(),
    };
    let key = response
        .metadata
        .and_then(|m| m.arn)
        .or(response.key_id)
        .or(request.key_id)
        .map(|k| bounded(&k));
    let outcome = match answer {
        Answer::Local(_) => Outcome::Success,
        Answer::Forwarded(status) if (200..300).contains(&status) => Outcome::Success,
        Answer::Forwarded(status) => Outcome::Failure(format!("Forwarded{status}")),
        Answer::Refused(code) => Outcome::Failure(code.to_owned()),
    };
    let caller = facts.caller.as_ref();
    AuditRecord {
        seq: 0,
        time,
        source,
        operation: bounded(operation),
        request_id: request_id.to_owned(),
        principal: caller.map(VerifiedCaller::arn).unwrap_or_default(),
        access_key_id: caller.map(|c| c.access_key_id.clone()).unwrap_or_default(),
        account: caller.map(|c| c.account_id.clone()).unwrap_or_default(),
        source_address: peer.to_string(),
        key,
        context_keys: request
            .context
            .map(|c| c.into_keys().take(64).map(|k| bounded(&k)).collect())
            .unwrap_or_default(),
        outcome,
    }
}

/// The name of the node's log: a cluster node's is its name; nodes sharing
/// one SQLite file outside a cluster are told apart by their data directory.
pub fn log_name(
    node: Option<&str>,
    location: &crate::config::StoreLocation,
    data_dir: &std::path::Path,
) -> String {
    match (node, location) {
        (Some(name), _) => name.to_owned(),
        (None, crate::config::StoreLocation::SharedSqlite(_)) => format!(
            "{LOCAL_LOG}:{}",
            std::fs::canonicalize(data_dir)
                .unwrap_or_else(|_| data_dir.to_path_buf())
                .display()
        ),
        (None, _) => LOCAL_LOG.to_owned(),
    }
}

/// The file where a node keeps its audit log, given its store `location`, its
/// data directory's `database` and its cluster name: a file of its own beside
/// `database`, [`OWN_FILE`], or `audit-NAME.db` for a named node, since the
/// nodes of a dev cluster share one data directory. A record must be durable
/// before its reply, and SQLite has one writer per file: a log in the key
/// store's file would take turns with every key change at that lock (measured:
/// CreateKey on a lone node ran 45 % faster once its log left `keyfence.db`),
/// and nodes sharing one file for their logs would queue behind one another's
/// commits; a node on PostgreSQL keeps answering cryptographic requests from
/// its replica while PostgreSQL is away (up to the staleness bound), which a
/// log in that database would stop. Logs written where earlier versions put
/// them stay there: a lone node whose `database` already holds its log, and a
/// named node on PostgreSQL whose log predates per-name files ([`OWN_FILE`]).
pub fn file_for(
    location: &crate::config::StoreLocation,
    database: &std::path::Path,
    node: Option<&str>,
) -> std::path::PathBuf {
    use crate::config::StoreLocation;
    let own = database.with_file_name(OWN_FILE);
    match (location, node) {
        (StoreLocation::DataDir, None) => {
            if !own.exists() && holds_a_log(database) {
                database.to_path_buf()
            } else {
                own
            }
        }
        (_, None) => own,
        (location, Some(name)) => {
            let named = database.with_file_name(named_file(name));
            let legacy =
                matches!(location, StoreLocation::Postgres(_)) && !named.exists() && own.exists();
            if legacy {
                own
            } else {
                named
            }
        }
    }
}

/// Whether the SQLite file `database` holds an audit log (as a lone node's
/// `keyfence.db` did before its log had a file of its own).
fn holds_a_log(database: &std::path::Path) -> bool {
    database.is_file()
        && keyfence_store::SqliteAuditStore::open_existing(database)
            .and_then(|store| store.logs())
            .is_ok_and(|logs| !logs.is_empty())
}

/// The file name of a named node's own log.
pub fn named_file(node: &str) -> String {
    format!("audit-{node}.db")
}

/// Opens the node's audit log, named `log`, in `file` (see [`file_for`]),
/// unless the settings turn it off. Auditors verify each node's log
/// against its signed heads (`keyfence audit verify`). Without `root` (a
/// quorum-sealed node) heads are signed once [`AuditLog::unseal`]ed.
pub fn start(
    settings: &AuditSettings,
    file: &std::path::Path,
    log: &str,
    root: Option<&dyn RootOfTrust>,
) -> Result<Option<Arc<AuditLog>>, AuditLogError> {
    use keyfence_store::SqliteAuditStore;
    if !settings.enabled {
        return Ok(None);
    }
    let store: Arc<dyn AuditStore> = Arc::new(SqliteAuditStore::open(file)?);
    let clock = Arc::new(keyfence_core::SystemClock);
    let audit = AuditLog::open(store, log, root, clock, settings.head_interval)?;
    Ok(Some(Arc::new(audit)))
}

/// Records the data directory's creation (`Init`, stamped when it was made,
/// by `keyfence init` offline or by this start) if no log holds it yet:
/// durably, then the directory's marker is removed. Two nodes of one data
/// directory starting at the same moment may both record it.
pub async fn record_init(
    log: Option<&AuditLog>,
    data_dir: &crate::datadir::DataDir,
) -> Result<(), AuditLogError> {
    let (Some(log), Some(made)) = (log, data_dir.pending_init()) else {
        return Ok(());
    };
    let mut record = log.local("Init", "", None, Outcome::Success);
    record.time = made;
    log.append(record).await?;
    if let Err(e) = data_dir.clear_pending_init() {
        tracing::warn!(error = %e, "the data directory's Init record is in the audit log, but its marker stays");
    }
    Ok(())
}

/// The record's source and operation name for a request of `protocol`.
fn source_of(protocol: &crate::api::Protocol) -> (Source, &str) {
    use crate::api::Protocol;
    match protocol {
        Protocol::Kms(op) => (Source::Kms, op),
        Protocol::Admin(op) => (Source::Admin, op),
        Protocol::Query => (Source::Kms, "sts"),
        Protocol::Unknown => (Source::Kms, "unknown"),
    }
}

/// Records a request in `log` (if the node keeps one) and waits until the
/// record is durable. An error here must replace the reply: the node sends
/// no answer it has not recorded.
///
/// One exception: a request forwarded to another node and answered there
/// below 500 was recorded durably by that node (source `Node`, with this
/// node's address) before it answered, so this node's own record of the
/// hop is queued without waiting (durable with the next acknowledged
/// record, at close, or after [`LINGER`]): the forwarded reply does not wait
/// for a second `fsync` in series, and a node that only forwards commits its
/// records of hops many at a time. A forward that failed, or that the other node
/// answered with a 5xx (it may not have recorded it), is awaited as usual.
pub async fn write_ahead(
    log: Option<&AuditLog>,
    protocol: &crate::api::Protocol,
    request_id: &str,
    peer: SocketAddr,
    facts: &Facts,
    answer: Answer<'_>,
) -> Result<(), crate::api::ApiError> {
    let Some(log) = log else {
        return Ok(());
    };
    let (source, operation) = source_of(protocol);
    let recorded_there = matches!(answer, Answer::Forwarded(status) if status < 500);
    let record = record(
        source,
        operation,
        request_id,
        peer,
        facts,
        answer,
        log.now(),
    );
    let written = if recorded_there {
        log.enqueue(record)
    } else {
        log.append(record).await.map(drop)
    };
    written.map_err(|e| {
        crate::api::ApiError::from(keyfence_core::KmsError::Internal(format!("audit log: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(body: &str) -> Facts {
        Facts {
            caller: Some(VerifiedCaller {
                access_key_id: "AKIA1".into(),
                account_id: "111122223333".into(),
                user_name: "alice".into(),
                region: "us-east-1".into(),
                service: "kms".into(),
            }),
            body: Bytes::from(body.to_owned()),
            forwarded: false,
        }
    }

    #[test]
    fn a_record_keeps_context_keys_and_the_key_arn_but_no_values_or_plaintext() {
        let f = facts(
            r#"{"KeyId":"alias/app","Plaintext":"c2VjcmV0IHBsYWludGV4dA==","EncryptionContext":{"tenant":"acme-secret-value","purpose":"x"}}"#,
        );
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234";
        let response = format!(r#"{{"CiphertextBlob":"AAAA","KeyId":"{arn}"}}"#);
        let peer: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let r = record(
            Source::Kms,
            "Encrypt",
            "rid",
            peer,
            &f,
            Answer::Local(response.as_bytes()),
            keyfence_core::Timestamp(1),
        );
        assert_eq!(r.key.as_deref(), Some(arn));
        assert_eq!(r.context_keys, vec!["purpose", "tenant"]);
        assert_eq!(r.principal, "arn:aws:iam::111122223333:user/alice");
        assert_eq!(r.source_address, "10.0.0.1:4000");
        assert_eq!(r.outcome, Outcome::Success);
        let bytes = r.encode().unwrap();
        for secret in [
            &b"acme-secret-value"[..],
            b"c2VjcmV0",
            b"secret plaintext",
            b"AAAA",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "record holds {:?}",
                String::from_utf8_lossy(secret)
            );
        }
        let refused = record(
            Source::Kms,
            "Decrypt",
            "rid",
            peer,
            &facts(r#"{"KeyId":"k"}"#),
            Answer::Refused("NotFoundException"),
            keyfence_core::Timestamp(1),
        );
        assert_eq!(refused.key.as_deref(), Some("k"));
        assert_eq!(
            refused.outcome,
            Outcome::Failure("NotFoundException".into())
        );
    }

    #[test]
    fn every_node_keeps_its_log_out_of_the_key_store_file_unless_it_is_already_there() {
        use crate::config::StoreLocation;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("keyfence.db");
        let shared = StoreLocation::SharedSqlite(dir.path().join("shared.db"));
        let pg = StoreLocation::Postgres("postgres://h/db".into());
        let fra = dir.path().join("audit-fra.db");
        let own = dir.path().join(OWN_FILE);
        // A lone node: its own file, also when keyfence.db exists without a log.
        assert_eq!(file_for(&StoreLocation::DataDir, &db, None), own);
        drop(keyfence_store::SqliteStore::open(&db).unwrap());
        assert_eq!(file_for(&StoreLocation::DataDir, &db, None), own);
        // Dev-cluster nodes share the data directory: one file each.
        assert_eq!(file_for(&StoreLocation::DataDir, &db, Some("fra")), fra);
        assert_eq!(file_for(&shared, &db, None), own);
        assert_eq!(file_for(&shared, &db, Some("fra")), fra);
        assert_eq!(file_for(&pg, &db, None), own);
        assert_eq!(file_for(&pg, &db, Some("fra")), fra);
        // A node on PostgreSQL that kept its log in `audit.db` goes on there.
        std::fs::write(&own, b"").unwrap();
        assert_eq!(file_for(&pg, &db, Some("fra")), own);
        std::fs::write(&fra, b"").unwrap();
        assert_eq!(file_for(&pg, &db, Some("fra")), fra);
        // A lone node whose keyfence.db holds its log (an earlier version's
        // data directory, no audit.db) goes on there.
        std::fs::remove_file(&own).unwrap();
        let store = keyfence_store::SqliteAuditStore::open(&db).unwrap();
        let key = keyfence_core::audit::LogKey {
            public_key: vec![1],
            sealed: vec![2],
        };
        store.put_signing_key(LOCAL_LOG, &key).unwrap();
        assert_eq!(file_for(&StoreLocation::DataDir, &db, None), db);
    }

    #[test]
    fn client_chosen_strings_are_bounded() {
        let long = "x".repeat(100_000);
        let peer: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let r = record(
            Source::Kms,
            &long,
            "rid",
            peer,
            &facts(&format!(r#"{{"KeyId":"{long}"}}"#)),
            Answer::Refused("NotFoundException"),
            keyfence_core::Timestamp(1),
        );
        assert_eq!(r.operation.len(), FIELD_LIMIT);
        assert!(r.encode().is_ok());
    }
}
