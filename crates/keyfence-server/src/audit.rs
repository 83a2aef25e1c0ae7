//! The node's audit log writer: every request (KMS API, admin API, requests
//! forwarded by other nodes) is appended as one record before its reply is
//! sent, by group commit, and the log's tree head is signed at a fixed interval.
//!
//! # Durability
//!
//! A request's handler builds its record once the answer is known and waits
//! for [`AuditLog::append`]; the reply leaves only after the record is
//! committed (SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`).
//! One writer thread takes every record waiting in its queue, appends them in
//! one transaction and then wakes their handlers: while one commit is on
//! disk, the next batch gathers, so the commit cost is shared by every
//! request in flight. A record that cannot be committed turns its reply into
//! a `KMSInternalException`: no answer leaves unrecorded.
//!
//! # Signed tree heads
//!
//! Every `head_interval` (and when the node stops) the writer signs the
//! current size and root with the log's ML-DSA-65 key, if the log grew. The
//! key is generated on the first start, sealed under the root of trust and
//! stored with the log; only its public half leaves the node.

use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use keyfence_core::audit::{
    merkle, AuditRecord, AuditSigner, AuditStore, Frontier, LogKey, Outcome, SignedTreeHead,
    Source, StoredEntry, TreeHead,
};
use keyfence_core::{Clock, RootOfTrust, StoreError};
use tokio::sync::oneshot;

use crate::sigv4::VerifiedCaller;

/// Default interval between signed tree heads.
pub const DEFAULT_HEAD_INTERVAL: Duration = Duration::from_secs(60);

/// Most records committed in one transaction.
const MAX_BATCH: usize = 4096;

/// How long the writer waits after a batch's first record for more.
const LINGER: Duration = Duration::from_millis(1);

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
}

/// Where the writer reports a record's position once it is durable.
type Ack = oneshot::Sender<Result<u64, AuditLogError>>;

enum Msg {
    Append(Box<AuditRecord>, Ack),
    Sign(oneshot::Sender<Result<Option<SignedTreeHead>, AuditLogError>>),
}

/// The audit log of one node: a queue into the writer thread.
pub struct AuditLog {
    queue: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    public_key: Vec<u8>,
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

/// The tree of the stored log, from its stored leaf hashes.
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

struct Writer {
    store: Arc<dyn AuditStore>,
    log: String,
    signer: AuditSigner,
    clock: Arc<dyn Clock>,
    frontier: Frontier,
    signed: u64,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Msg>, interval: Duration) {
        let mut due = Instant::now() + interval;
        loop {
            match queue.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(Msg::Append(record, ack)) => {
                    let mut batch = vec![(record, ack)];
                    let mut signs = Vec::new();
                    // Linger: sleep briefly after a batch's first record (not
                    // blocked in recv, so senders do not wake this thread), then
                    // take everything queued: one commit and one wake-up serve
                    // many requests.
                    std::thread::sleep(LINGER);
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(Msg::Append(r, a)) => batch.push((r, a)),
                            Ok(Msg::Sign(a)) => signs.push(a),
                            Err(_) => break,
                        }
                    }
                    self.commit(batch);
                    for ack in signs {
                        let _ = ack.send(self.sign());
                    }
                }
                Ok(Msg::Sign(ack)) => {
                    let _ = ack.send(self.sign());
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.sign() {
                        tracing::error!(error = %e, "signing the audit tree head failed");
                    }
                    due = Instant::now() + interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if let Err(e) = self.sign() {
                        tracing::error!(error = %e, "signing the final audit tree head failed");
                    }
                    return;
                }
            }
        }
    }

    fn commit(&mut self, batch: Vec<(Box<AuditRecord>, Ack)>) {
        let mut entries = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        for (mut record, ack) in batch {
            record.seq = self.frontier.size() + entries.len() as u64;
            match record.encode() {
                Ok(data) => {
                    entries.push(StoredEntry {
                        seq: record.seq,
                        leaf_hash: merkle::leaf_hash(&data),
                        data,
                    });
                    acks.push(ack);
                }
                Err(e) => {
                    let _ = ack.send(Err(keyfence_core::audit::AuditError::from(e).into()));
                }
            }
        }
        match self.store.append(&self.log, &entries) {
            Ok(()) => {
                for (e, ack) in entries.iter().zip(acks) {
                    self.frontier.push(e.leaf_hash);
                    let _ = ack.send(Ok(e.seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = entries.len(), "appending to the audit log failed");
                for ack in acks {
                    let _ = ack.send(Err(AuditLogError::Commit(e.to_string())));
                }
                // A failed commit may still have landed (a lost connection):
                // continue from what the store holds.
                match rebuild(self.store.as_ref(), &self.log) {
                    Ok(f) => self.frontier = f,
                    Err(e) => tracing::error!(error = %e, "rereading the audit log failed"),
                }
            }
        }
    }

    /// Signs and stores a head if the log grew since the last one.
    fn sign(&mut self) -> Result<Option<SignedTreeHead>, AuditLogError> {
        if self.frontier.size() == self.signed {
            return Ok(None);
        }
        let head = self.signer.sign(TreeHead {
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
    pub fn open(
        store: Arc<dyn AuditStore>,
        log: &str,
        root: &dyn RootOfTrust,
        clock: Arc<dyn Clock>,
        head_interval: Duration,
    ) -> Result<Self, AuditLogError> {
        let signer = signer(store.as_ref(), log, root)?;
        let public_key = signer.public_key()?;
        let frontier = rebuild(store.as_ref(), log)?;
        let signed = store.heads(log)?.last().map_or(0, |h| h.head.size);
        let writer = Writer {
            store,
            log: log.to_owned(),
            signer,
            clock: Arc::clone(&clock),
            frontier,
            signed,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("keyfence-audit".into())
            .spawn(move || writer.run(rx, head_interval))
            .map_err(|e| StoreError::Backend(format!("audit writer thread: {e}")))?;
        Ok(Self {
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            public_key,
            clock,
        })
    }

    /// The log's public key (DER SubjectPublicKeyInfo, ML-DSA-65).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn send(&self, msg: Msg) -> Result<(), AuditLogError> {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue
            .as_ref()
            .ok_or(AuditLogError::Stopped)?
            .send(msg)
            .map_err(|_| AuditLogError::Stopped)
    }

    /// Appends `record` (its `seq` is assigned here); returns its position
    /// once it is durable.
    pub async fn append(&self, record: AuditRecord) -> Result<u64, AuditLogError> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Append(Box::new(record), ack))?;
        done.await.map_err(|_| AuditLogError::Stopped)?
    }

    /// Signs a head now (if the log grew since the last one).
    pub async fn sign_now(&self) -> Result<Option<SignedTreeHead>, AuditLogError> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Sign(ack))?;
        done.await.map_err(|_| AuditLogError::Stopped)?
    }

    /// Stops the writer after it has committed what it was given and signed
    /// a final head. Later appends fail with [`AuditLogError::Stopped`].
    pub fn close(&self) {
        drop(self.queue.lock().unwrap_or_else(|p| p.into_inner()).take());
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

/// Opens the node's audit log, named `log`, unless the settings turn it off.
/// A node on its data directory's file (`database`), or on a SQLite file
/// shared on one host, keeps the log in that file. A node on PostgreSQL keeps
/// it in [`OWN_FILE`] beside `database`, not in the shared database: a record
/// must be durable before its reply, and a node keeps answering cryptographic
/// requests from its replica while PostgreSQL is away (up to the staleness
/// bound), which a log in that database would stop. Auditors verify each
/// node's log against its signed heads (`keyfence audit verify`).
pub fn start(
    settings: &AuditSettings,
    location: &crate::config::StoreLocation,
    database: &std::path::Path,
    log: &str,
    root: &dyn RootOfTrust,
) -> Result<Option<Arc<AuditLog>>, AuditLogError> {
    use crate::config::StoreLocation;
    use keyfence_store::SqliteAuditStore;
    if !settings.enabled {
        return Ok(None);
    }
    let store: Arc<dyn AuditStore> = match location {
        StoreLocation::DataDir => Arc::new(SqliteAuditStore::open(database)?),
        StoreLocation::Postgres(_) => {
            Arc::new(SqliteAuditStore::open(&database.with_file_name(OWN_FILE))?)
        }
        StoreLocation::SharedSqlite(path) => Arc::new(SqliteAuditStore::open(path)?),
    };
    let clock = Arc::new(keyfence_core::SystemClock);
    AuditLog::open(store, log, root, clock, settings.head_interval).map(|l| Some(Arc::new(l)))
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
    let record = record(
        source,
        operation,
        request_id,
        peer,
        facts,
        answer,
        log.now(),
    );
    match log.append(record).await {
        Ok(_) => Ok(()),
        Err(e) => Err(crate::api::ApiError::from(
            keyfence_core::KmsError::Internal(format!("audit log: {e}")),
        )),
    }
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
