//! `keyfence audit …`: what an auditor runs against a node's audit log
//! (the store read directly, no running node and no root key needed).
//!
//! - `verify`: the whole log against its signed heads; names the first bad record.
//! - `prove N`: an inclusion proof of record N in the latest signed head.
//! - `consistency OLD NEW`: a consistency proof between two tree sizes.
//! - `check FILE`: verifies a proof printed by `prove` or `consistency`
//!   offline, with only the log's public key.
//! - `export`: the records as JSON Lines, with CloudTrail's field names.
//! - `public-key`: the log's public key, to pin.
//! - `recipient`, `open-key`: receiving the log's signing key when a quorum
//!   exports it (see `audit_key_cmd`).

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::{Args, Subcommand};
use keyfence_core::audit::{
    merkle, AuditRecord, AuditStore, Hash, LogVerifier, Outcome, Problem, SignedTreeHead, TreeHead,
};
use keyfence_core::Timestamp;
use keyfence_server::config::StoreLocation;
use keyfence_server::datadir::DataDir;
use keyfence_server::tls::PkiPaths;
use keyfence_store::{PostgresStore, SqliteAuditStore};
use serde_json::{json, Value};

/// Records read per query.
const PAGE: usize = 10_000;

/// Where the log is.
#[derive(Args)]
pub struct LogArgs {
    /// Data directory of the node (its own audit file, or its keyfence.db, holds the log).
    #[arg(long, default_value = keyfence_server::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The store, if not the data directory's file: `sqlite:PATH` or a
    /// PostgreSQL connection string.
    #[arg(long, env = "KEYFENCE_STORE")]
    store: Option<String>,
    /// The log: a cluster node's name, or `local` [default: the only log in the store].
    #[arg(long)]
    log: Option<String>,
    /// The log's public key (DER, as `public-key --der` writes it) to check
    /// heads against, instead of the one stored with the log.
    #[arg(long)]
    public_key: Option<PathBuf>,
}

/// `keyfence audit …`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the whole log against its signed tree heads; report the first bad record.
    Verify(LogArgs),
    /// Print an inclusion proof (JSON) of record N in the latest signed tree head.
    Prove {
        /// The record's position (from 0).
        n: u64,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Print a consistency proof (JSON) between the trees of OLD and NEW records.
    Consistency {
        /// The older tree size (an auditor's signed head).
        old: u64,
        /// The newer tree size [default: the latest signed head].
        new: Option<u64>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Verify a proof printed by `prove` or `consistency`, offline.
    Check {
        /// The proof (JSON).
        proof: PathBuf,
        /// The log's public key (DER); without it, the key in the proof is
        /// used and only the proof's internal consistency is shown.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Print the records as JSON Lines, one a line, with CloudTrail's field names.
    Export {
        /// First record to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Print the log's public key (base64 DER; --der writes raw DER to a file).
    PublicKey {
        /// Write the DER to this file instead.
        #[arg(long)]
        der: Option<PathBuf>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Make an X-Wing key pair to receive the audit signing key by a quorum's
    /// export-audit-key: the private key to --out (mode 0600), the public key
    /// (base64) to --out with `.pub` appended.
    Recipient {
        /// Private key file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Open an exported audit signing key (the file `admin execute --out`
    /// wrote) with the recipient's private key; checks it against the log's
    /// public key and writes it as PKCS#8 DER (mode 0600).
    OpenKey {
        /// The recipient's private key file (`audit recipient --out`).
        #[arg(long)]
        key: PathBuf,
        /// The executed export's result (JSON).
        #[arg(long)]
        export: PathBuf,
        /// The log's public key (DER, as `public-key --der` writes it) the
        /// key must match, besides the one the export came with.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs an audit command.
pub fn main(command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Prove { n, log } => prove(n, &log),
        AuditCommand::Consistency { old, new, log } => consistency(old, new, &log),
        AuditCommand::Check { proof, public_key } => check(&proof, public_key.as_deref()),
        AuditCommand::Export { from, log } => export(from, &log),
        AuditCommand::PublicKey { der, log } => public_key(der.as_deref(), &log),
        AuditCommand::Recipient { out } => crate::audit_key_cmd::recipient(&out),
        AuditCommand::OpenKey {
            key,
            export,
            public_key,
            out,
        } => crate::audit_key_cmd::open_key(&key, &export, public_key.as_deref(), &out),
    }
}

/// An opened log.
struct Opened {
    store: Box<dyn AuditStore>,
    log: String,
}

fn open(args: &LogArgs) -> Result<Opened, String> {
    let location = match &args.store {
        Some(s) => StoreLocation::parse(s).map_err(|e| e.to_string())?,
        None => StoreLocation::DataDir,
    };
    let mut stores: Vec<(String, Box<dyn AuditStore>)> = Vec::new();
    for file in own_files(&args.data_dir)? {
        let store = SqliteAuditStore::open_existing(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        stores.push((file.display().to_string(), Box::new(store)));
    }
    match location {
        StoreLocation::DataDir => {
            let dir = DataDir {
                path: args.data_dir.clone(),
                pki: PkiPaths::in_dir(&args.data_dir),
            };
            let db = dir.database();
            if db.is_file() || stores.is_empty() {
                let store = SqliteAuditStore::open_existing(&db)
                    .map_err(|e| format!("{}: {e}", db.display()))?;
                stores.push((db.display().to_string(), Box::new(store)));
            }
        }
        StoreLocation::SharedSqlite(path) => {
            let store = SqliteAuditStore::open_existing(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            stores.push((path.display().to_string(), Box::new(store)));
        }
        StoreLocation::Postgres(url) => {
            let store = PostgresStore::connect(&url).map_err(|e| format!("PostgreSQL: {e}"))?;
            stores.push(("PostgreSQL".into(), Box::new(store)));
        }
    }
    // Every log found, as (log, index of its store), the first place wins.
    let mut found: Vec<(String, usize)> = Vec::new();
    for (index, (place, store)) in stores.iter().enumerate() {
        for log in store.logs().map_err(|e| format!("{place}: {e}"))? {
            if !found.iter().any(|(l, _)| *l == log) {
                found.push((log, index));
            }
        }
    }
    let chosen = match (&args.log, found.as_slice()) {
        (Some(wanted), _) => found
            .iter()
            .find(|(log, _)| log == wanted)
            .cloned()
            .ok_or_else(|| format!("no audit log named {wanted} here"))?,
        (None, []) => return Err("the store holds no audit log".into()),
        (None, [one]) => one.clone(),
        (None, many) => {
            return Err(format!(
                "there are several audit logs ({}): choose one with --log",
                many.iter()
                    .map(|(log, index)| format!("{log} in {}", stores[*index].0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    };
    let (log, index) = chosen;
    Ok(Opened {
        store: stores.swap_remove(index).1,
        log,
    })
}

/// The files in a data directory where nodes keep their own logs (see
/// `keyfence_server::audit::file_for`), in name order.
fn own_files(dir: &std::path::Path) -> Result<Vec<PathBuf>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let own = name == keyfence_server::audit::OWN_FILE
            || (name.starts_with("audit-") && name.ends_with(".db"));
        if own && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl Opened {
    /// The public key: pinned by the auditor, or the one stored with the log.
    fn public_key(&self, pinned: Option<&std::path::Path>) -> Result<(Vec<u8>, bool), String> {
        if let Some(path) = pinned {
            let der = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok((der, true));
        }
        let key = self
            .store
            .signing_key(&self.log)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("audit log {} has no signing key", self.log))?;
        Ok((key.public_key, false))
    }

    fn heads(&self) -> Result<Vec<SignedTreeHead>, String> {
        self.store.heads(&self.log).map_err(|e| e.to_string())
    }

    /// Every record from `from`, page by page.
    fn each(
        &self,
        from: u64,
        mut f: impl FnMut(&keyfence_core::audit::StoredEntry) -> bool,
    ) -> Result<(), String> {
        let mut next = from;
        loop {
            let page = self
                .store
                .read(&self.log, next, PAGE)
                .map_err(|e| e.to_string())?;
            for e in &page {
                if !f(e) {
                    return Ok(());
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => next = last.seq + 1,
                _ => return Ok(()),
            }
        }
    }

    /// The leaf hashes of the first `size` records, recomputed from their bytes.
    fn leaves(&self, size: u64) -> Result<Vec<Hash>, String> {
        let mut leaves = Vec::with_capacity(size as usize);
        self.each(0, |e| {
            if leaves.len() as u64 >= size {
                return false;
            }
            leaves.push(merkle::leaf_hash(&e.data));
            true
        })?;
        if (leaves.len() as u64) < size {
            return Err(format!(
                "the log has {} records, fewer than {size}",
                leaves.len()
            ));
        }
        Ok(leaves)
    }

    fn latest_head(&self) -> Result<SignedTreeHead, String> {
        self.heads()?
            .pop()
            .ok_or_else(|| format!("audit log {} has no signed tree head yet", self.log))
    }
}

fn hex32(h: &Hash) -> String {
    hex::encode(h)
}

fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.0) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.0.to_string())
}

fn describe(p: &Problem) -> String {
    match p {
        Problem::BadHeadSignature { head_size } => {
            format!("the signed tree head at size {head_size} does not verify under the log's key (forged or altered head)")
        }
        Problem::HeadsOutOfOrder { head_size } => {
            format!("the signed tree heads are out of order at size {head_size}")
        }
        Problem::Malformed { position, error } => {
            format!("record {position} does not decode ({error})")
        }
        Problem::OutOfSequence { position, found } => format!(
            "record {position} is out of sequence: it is record {found} (records deleted, inserted or moved)"
        ),
        Problem::LeafHashMismatch { position } => {
            format!("record {position} was altered: its bytes do not hash to its stored leaf hash")
        }
        Problem::RootMismatch {
            head_size,
            first_unproven,
        } => format!(
            "records {first_unproven}..{} do not have the root signed at size {head_size}: one of them was altered and re-hashed",
            head_size - 1
        ),
        Problem::Truncated { records, head_size } => format!(
            "the log ends after {records} records but a signed head covers {head_size} (truncated)"
        ),
    }
}

fn head_json(h: &SignedTreeHead) -> Value {
    json!({
        "treeSize": h.head.size,
        "rootHash": hex32(&h.head.root),
        "timestamp": h.head.time.0,
        "time": rfc3339(h.head.time),
        "signature": B64.encode(&h.signature),
    })
}

fn verify(args: &LogArgs) -> Result<(), String> {
    let opened = open(args)?;
    let (key, pinned) = opened.public_key(args.public_key.as_deref())?;
    let mut verifier = LogVerifier::new(&key, opened.heads()?);
    opened.each(0, |e| {
        verifier.push(e);
        !verifier.failed()
    })?;
    let report = verifier.finish();
    println!(
        "audit log {}: {} records read, {} signed tree heads",
        opened.log, report.records, report.heads
    );
    if !pinned {
        println!("  public key: the one stored with the log (pin yours with --public-key)");
    }
    if let Some(h) = &report.latest {
        println!(
            "  latest signed head: {} records at {}, root {}",
            h.size,
            rfc3339(h.time),
            hex32(&h.root)
        );
    }
    match &report.problem {
        None => {
            if report.unsigned_tail > 0 {
                println!(
                    "  {} records after the latest head are not signed yet (checked for sequence and hash only)",
                    report.unsigned_tail
                );
            }
            println!("OK");
            Ok(())
        }
        Some(p) => {
            println!("FAILED: {}", describe(p));
            match p.first_bad_record() {
                Some(n) => Err(format!("audit log {}: first bad record: {n}", opened.log)),
                None => Err(format!(
                    "audit log {}: its signed heads are not valid",
                    opened.log
                )),
            }
        }
    }
}

fn prove(n: u64, args: &LogArgs) -> Result<(), String> {
    let opened = open(args)?;
    let (key, _) = opened.public_key(args.public_key.as_deref())?;
    let head = opened.latest_head()?;
    head.verify(&key).map_err(|e| e.to_string())?;
    let size = head.head.size;
    if n >= size {
        return Err(format!(
            "record {n} is not covered by the latest signed head ({size} records)"
        ));
    }
    let leaves = opened.leaves(size)?;
    let path = merkle::inclusion_proof(n, &leaves).map_err(|e| e.to_string())?;
    merkle::verify_inclusion(n, size, &leaves[n as usize], &path, &head.head.root).map_err(
        |_| {
            "the stored log does not match its latest signed head: run `keyfence audit verify`"
                .to_string()
        },
    )?;
    let mut record = None;
    opened.each(n, |e| {
        record = Some(e.data.clone());
        false
    })?;
    let record = record.ok_or_else(|| format!("no record {n}"))?;
    let proof = json!({
        "kind": "inclusion",
        "log": opened.log,
        "leafIndex": n,
        "record": B64.encode(&record),
        "leafHash": hex32(&leaves[n as usize]),
        "inclusionPath": path.iter().map(hex32).collect::<Vec<_>>(),
        "signedTreeHead": head_json(&head),
        "publicKey": B64.encode(&key),
    });
    println!("{}", serde_json::to_string_pretty(&proof).expect("JSON"));
    Ok(())
}

fn consistency(old: u64, new: Option<u64>, args: &LogArgs) -> Result<(), String> {
    let opened = open(args)?;
    let (key, _) = opened.public_key(args.public_key.as_deref())?;
    let heads = opened.heads()?;
    let latest = heads
        .last()
        .ok_or_else(|| format!("audit log {} has no signed tree head yet", opened.log))?;
    let new = new.unwrap_or(latest.head.size);
    if old > new {
        return Err(format!("OLD ({old}) must not be larger than NEW ({new})"));
    }
    let leaves = opened.leaves(new)?;
    let path = merkle::consistency_proof(old, &leaves).map_err(|e| e.to_string())?;
    let (old_root, new_root) = (merkle::root(&leaves[..old as usize]), merkle::root(&leaves));
    let signed = |size: u64| -> Result<Value, String> {
        match heads.iter().find(|h| h.head.size == size) {
            Some(h) => {
                h.verify(&key).map_err(|e| e.to_string())?;
                if h.head.root != merkle::root(&leaves[..size as usize]) {
                    return Err(format!(
                        "the stored log does not match its signed head at {size}: run `keyfence audit verify`"
                    ));
                }
                Ok(head_json(h))
            }
            None => Ok(Value::Null),
        }
    };
    let proof = json!({
        "kind": "consistency",
        "log": opened.log,
        "oldSize": old,
        "newSize": new,
        "oldRoot": hex32(&old_root),
        "newRoot": hex32(&new_root),
        "consistencyPath": path.iter().map(hex32).collect::<Vec<_>>(),
        "oldSignedTreeHead": signed(old)?,
        "newSignedTreeHead": signed(new)?,
        "publicKey": B64.encode(&key),
    });
    println!("{}", serde_json::to_string_pretty(&proof).expect("JSON"));
    Ok(())
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    v.get(name)
        .ok_or_else(|| format!("the proof has no {name:?}"))
}

fn hash_of(v: &Value, name: &str) -> Result<Hash, String> {
    let s = field(v, name)?
        .as_str()
        .ok_or_else(|| format!("{name} is not a string"))?;
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{name} is not a 32-byte hex hash"))
}

fn u64_of(v: &Value, name: &str) -> Result<u64, String> {
    field(v, name)?
        .as_u64()
        .ok_or_else(|| format!("{name} is not a number"))
}

fn path_of(v: &Value, name: &str) -> Result<Vec<Hash>, String> {
    let items = field(v, name)?
        .as_array()
        .ok_or_else(|| format!("{name} is not a list"))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .and_then(|s| hex::decode(s).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("{name} holds something not a 32-byte hex hash"))
        })
        .collect()
}

fn signed_head_of(v: &Value) -> Result<SignedTreeHead, String> {
    Ok(SignedTreeHead {
        head: TreeHead {
            size: u64_of(v, "treeSize")?,
            root: hash_of(v, "rootHash")?,
            time: Timestamp(
                field(v, "timestamp")?
                    .as_i64()
                    .ok_or("timestamp is not a number")?,
            ),
        },
        signature: B64
            .decode(field(v, "signature")?.as_str().unwrap_or_default())
            .map_err(|_| "signature is not base64")?,
    })
}

/// Verifies a head found in a proof, under the pinned key (or the proof's own).
fn check_head(v: &Value, key: &[u8]) -> Result<Option<SignedTreeHead>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let head = signed_head_of(v)?;
    head.verify(key).map_err(|e| e.to_string())?;
    Ok(Some(head))
}

fn check(path: &std::path::Path, pinned: Option<&std::path::Path>) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let proof: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let key = match pinned {
        Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => B64
            .decode(field(&proof, "publicKey")?.as_str().unwrap_or_default())
            .map_err(|_| "publicKey is not base64")?,
    };
    let bad = |what: &str| format!("proof does NOT verify: {what}");
    match field(&proof, "kind")?.as_str() {
        Some("inclusion") => {
            let head = check_head(field(&proof, "signedTreeHead")?, &key)?
                .ok_or("the proof has no signed tree head")?;
            let index = u64_of(&proof, "leafIndex")?;
            let record = B64
                .decode(field(&proof, "record")?.as_str().unwrap_or_default())
                .map_err(|_| "record is not base64")?;
            let leaf = merkle::leaf_hash(&record);
            if leaf != hash_of(&proof, "leafHash")? {
                return Err(bad("the record does not hash to leafHash"));
            }
            let decoded = AuditRecord::decode(&record).map_err(|e| bad(&e.to_string()))?;
            if decoded.seq != index {
                return Err(bad("the record is not the one at leafIndex"));
            }
            merkle::verify_inclusion(
                index,
                head.head.size,
                &leaf,
                &path_of(&proof, "inclusionPath")?,
                &head.head.root,
            )
            .map_err(|e| bad(&e.to_string()))?;
            println!(
                "OK: record {index} ({} {}) is in the log of {} records signed at {}",
                decoded.operation,
                decoded.request_id,
                head.head.size,
                rfc3339(head.head.time)
            );
        }
        Some("consistency") => {
            let (old, new) = (u64_of(&proof, "oldSize")?, u64_of(&proof, "newSize")?);
            let (old_root, new_root) = (hash_of(&proof, "oldRoot")?, hash_of(&proof, "newRoot")?);
            for (name, size, root) in [
                ("oldSignedTreeHead", old, old_root),
                ("newSignedTreeHead", new, new_root),
            ] {
                if let Some(h) = check_head(field(&proof, name)?, &key)? {
                    if h.head.size != size || h.head.root != root {
                        return Err(bad(&format!("{name} is not the tree the proof names")));
                    }
                }
            }
            merkle::verify_consistency(
                old,
                new,
                &old_root,
                &new_root,
                &path_of(&proof, "consistencyPath")?,
            )
            .map_err(|e| bad(&e.to_string()))?;
            println!(
                "OK: the log of {new} records (root {}) extends the log of {old} records (root {})",
                hex32(&new_root),
                hex32(&old_root)
            );
        }
        _ => return Err("kind must be inclusion or consistency".into()),
    }
    if pinned.is_none() {
        println!("  (checked with the key inside the proof; pin the log's key with --public-key)");
    }
    Ok(())
}

/// One record as a CloudTrail-like event.
fn event(e: &keyfence_core::audit::StoredEntry) -> Value {
    let r = match AuditRecord::decode(&e.data) {
        Ok(r) => r,
        Err(err) => {
            return json!({"keyfence": {"seq": e.seq, "error": err.to_string()}});
        }
    };
    let (ip, port) = match r.source_address.rsplit_once(':') {
        Some((ip, port)) => (ip.trim_matches(['[', ']']).to_owned(), port.to_owned()),
        None => (r.source_address.clone(), String::new()),
    };
    let mut v = json!({
        "eventVersion": "1.08",
        "eventTime": rfc3339(r.time),
        "eventSource": r.source.name(),
        "eventName": r.operation,
        "eventType": "AwsApiCall",
        "sourceIPAddress": ip,
        "requestID": r.request_id,
        "eventID": r.request_id,
        "readOnly": Value::Null,
        "userIdentity": if r.principal.is_empty() {
            json!({"type": "Unknown"})
        } else {
            json!({
                "type": "IAMUser",
                "arn": r.principal,
                "accountId": r.account,
                "accessKeyId": r.access_key_id,
                "userName": r.principal.rsplit('/').next().unwrap_or_default(),
            })
        },
        "recipientAccountId": r.account,
        "requestParameters": {
            "encryptionContextKeys": r.context_keys,
        },
        "keyfence": {
            "seq": r.seq,
            "sourcePort": port,
            "leafHash": hex32(&merkle::leaf_hash(&e.data)),
        },
    });
    if let Some(key) = &r.key {
        v["resources"] = json!([{"ARN": key, "accountId": r.account, "type": "AWS::KMS::Key"}]);
        v["requestParameters"]["keyId"] = json!(key);
    }
    if let Outcome::Failure(code) = &r.outcome {
        v["errorCode"] = json!(code);
    }
    if let Some(obj) = v.as_object_mut() {
        obj.remove("readOnly");
    }
    v
}

fn export(from: u64, args: &LogArgs) -> Result<(), String> {
    use std::io::Write;
    let opened = open(args)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = None;
    opened.each(from, |e| match writeln!(out, "{}", event(e)) {
        Ok(()) => true,
        Err(err) => {
            failed = Some(err.to_string());
            false
        }
    })?;
    out.flush().map_err(|e| e.to_string())?;
    failed.map_or(Ok(()), Err)
}

fn public_key(der: Option<&std::path::Path>, args: &LogArgs) -> Result<(), String> {
    let opened = open(args)?;
    let (key, _) = opened.public_key(None)?;
    match der {
        Some(path) => {
            std::fs::write(path, &key).map_err(|e| format!("{}: {e}", path.display()))?;
            println!(
                "wrote the public key of audit log {} to {}",
                opened.log,
                path.display()
            );
        }
        None => println!("{}", B64.encode(&key)),
    }
    Ok(())
}
