//! GetKeyLastUsage, the recording of each successful cryptographic request,
//! and the file (`key-last-usage.json` in the data directory) that carries
//! the record across restarts.
//!
//! Precision: a use is recorded in memory when its request succeeds (no store
//! write on the request path); the file is rewritten at most every
//! [`SAVE_INTERVAL`] when something changed and when the node stops, so a
//! node that crashes loses at most that interval of uses. Each node keeps its
//! own record: in a cluster, GetKeyLastUsage reports the uses the answering
//! node served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyfence_core::service::{LastUse, TrackedOperation, UsageSnapshot};
use keyfence_core::{KeyId, Kms, Timestamp};
use serde_json::{json, Value};

use super::{KeyIdInput, Ops};
use crate::api::wire::date;
use crate::api::ApiError;

/// How often the record is saved when it changed.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(30);

/// Where a node keeps its keys' last uses: `key-last-usage.json` in its data
/// directory, or for cluster node NAME `key-last-usage-NAME.json` (the nodes
/// of `keyfence dev` share one data directory, and each keeps the uses it
/// served).
#[derive(Debug, Clone)]
pub struct UsageFile {
    path: PathBuf,
    /// The data directory's unnamed file, which a cluster node of an earlier
    /// build wrote: read once, while the node has no file of its own.
    legacy: Option<PathBuf>,
}

impl UsageFile {
    /// The file of node `node` (a cluster node's name) in `data_dir`.
    pub fn of(data_dir: &Path, node: Option<&str>) -> Self {
        let unnamed = data_dir.join("key-last-usage.json");
        match node {
            Some(name) => Self {
                path: data_dir.join(format!("key-last-usage-{name}.json")),
                legacy: Some(unnamed),
            },
            None => Self {
                path: unnamed,
                legacy: None,
            },
        }
    }

    /// Where it is saved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads what was saved into `kms` (see [`load`]).
    pub fn load_into(&self, kms: &Kms) {
        load(kms, self.source());
    }

    /// The file to load: its own, or while it has none the legacy one.
    fn source(&self) -> &Path {
        match &self.legacy {
            Some(legacy) if !self.path.exists() => legacy,
            _ => &self.path,
        }
    }
}

/// Every tracked operation with its AWS name.
const OPERATIONS: &[(TrackedOperation, &str)] = {
    use TrackedOperation::*;
    &[
        (Decrypt, "Decrypt"),
        (DeriveSharedSecret, "DeriveSharedSecret"),
        (Encrypt, "Encrypt"),
        (GenerateDataKey, "GenerateDataKey"),
        (GenerateDataKeyPair, "GenerateDataKeyPair"),
        (
            GenerateDataKeyPairWithoutPlaintext,
            "GenerateDataKeyPairWithoutPlaintext",
        ),
        (
            GenerateDataKeyWithoutPlaintext,
            "GenerateDataKeyWithoutPlaintext",
        ),
        (GenerateMac, "GenerateMac"),
        (ReEncrypt, "ReEncrypt"),
        (Sign, "Sign"),
        (Verify, "Verify"),
        (VerifyMac, "VerifyMac"),
    ]
};

fn tracked(name: &str) -> Option<TrackedOperation> {
    OPERATIONS.iter().find(|(_, n)| *n == name).map(|(o, _)| *o)
}

fn name_of(op: TrackedOperation) -> &'static str {
    OPERATIONS
        .iter()
        .find(|(o, _)| *o == op)
        .map(|(_, n)| *n)
        .expect("every tracked operation has a name")
}

/// The key id at the end of a key ARN.
fn key_of(arn: Option<&Value>) -> Option<KeyId> {
    arn?.as_str()?.rsplit_once("key/")?.1.parse().ok()
}

/// Records the use of the keys a successful `operation` answered with.
pub(super) fn record(kms: &Kms, operation: &str, reply: &Value) {
    let Some(op) = tracked(operation) else {
        return;
    };
    for member in ["KeyId", "SourceKeyId"] {
        if let Some(key) = key_of(reply.get(member)) {
            kms.record_use(&key, op);
        }
    }
}

impl Ops<'_> {
    pub(super) fn get_key_last_usage(&self, i: KeyIdInput) -> Result<Value, ApiError> {
        let u = self.kms.get_key_last_usage(self.account, &i.key_id)?;
        let mut v = json!({
            "KeyId": u.metadata.arn(),
            "TrackingStartDate": date(u.tracking_start),
            "KeyCreationDate": date(u.metadata.created),
        });
        if let Some(last) = u.last {
            v["KeyLastUsage"] =
                json!({"Operation": name_of(last.operation), "Timestamp": date(last.at)});
        }
        Ok(v)
    }
}

/// Saves the record if it changed since the last save (atomically: a
/// temporary file renamed over the old one).
pub fn save(kms: &Kms, path: &Path) -> std::io::Result<()> {
    let Some(snapshot) = kms.usage_snapshot() else {
        return Ok(());
    };
    let keys: serde_json::Map<String, Value> = snapshot
        .keys
        .iter()
        .map(|(k, u)| (k.to_string(), json!([name_of(u.operation), u.at.0])))
        .collect();
    let doc = json!({"tracking_start": snapshot.tracking_start.0, "keys": keys});
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&doc).expect("json of values"))?;
    std::fs::rename(&tmp, path)
}

/// Loads a saved record into `kms` (nothing if there is none; an unreadable
/// file is logged and ignored: the record is advisory).
fn load(kms: &Kms, path: &Path) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    match parse(&bytes) {
        Some(saved) => kms.restore_usage(saved),
        None => tracing::warn!(path = %path.display(), "key last-usage record unreadable; ignored"),
    }
}

fn parse(bytes: &[u8]) -> Option<UsageSnapshot> {
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    let tracking_start = Timestamp(doc.get("tracking_start")?.as_i64()?);
    let keys = doc
        .get("keys")?
        .as_object()?
        .iter()
        .filter_map(|(k, v)| {
            let operation = tracked(v.get(0)?.as_str()?)?;
            let at = Timestamp(v.get(1)?.as_i64()?);
            Some((k.parse().ok()?, LastUse { operation, at }))
        })
        .collect();
    Some(UsageSnapshot {
        tracking_start,
        keys,
    })
}

/// Saves the record every [`SAVE_INTERVAL`] (run until the node stops).
pub async fn save_periodically(kms: Arc<Kms>, path: PathBuf) {
    let mut tick = tokio::time::interval(SAVE_INTERVAL);
    loop {
        tick.tick().await;
        let (kms, path) = (Arc::clone(&kms), path.clone());
        let saved = tokio::task::spawn_blocking(move || save(&kms, &path)).await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(error = %e, "key last-usage record not saved");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cluster_node_keeps_its_own_file_and_reads_the_shared_one_until_it_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let lone = UsageFile::of(dir.path(), None);
        assert_eq!(lone.path(), dir.path().join("key-last-usage.json"));
        assert_eq!(lone.source(), lone.path());
        let fra = UsageFile::of(dir.path(), Some("fra"));
        let par = UsageFile::of(dir.path(), Some("par"));
        assert_eq!(fra.path(), dir.path().join("key-last-usage-fra.json"));
        assert_ne!(fra.path(), par.path());
        // No file of its own yet: the data directory's (an earlier build's).
        assert_eq!(fra.source(), lone.path());
        std::fs::write(fra.path(), b"{}").unwrap();
        assert_eq!(fra.source(), fra.path());
        assert_eq!(par.source(), lone.path());
    }

    #[test]
    fn every_operation_round_trips_and_a_saved_record_parses() {
        for (op, name) in OPERATIONS {
            assert_eq!(tracked(name), Some(*op));
            assert_eq!(name_of(*op), *name);
        }
        assert_eq!(tracked("DescribeKey"), None);
        let id: KeyId = "1234abcd-12ab-34cd-56ef-1234567890ab".parse().unwrap();
        let arn = json!(format!("arn:aws:kms:us-east-1:111122223333:key/{id}"));
        assert_eq!(key_of(Some(&arn)), Some(id));
        assert_eq!(key_of(Some(&json!("alias/x"))), None);
        let doc = format!(
            r#"{{"tracking_start": 5, "keys": {{"{id}": ["Sign", 9], "bad": ["Sign", 1]}}}}"#
        );
        let saved = parse(doc.as_bytes()).unwrap();
        assert_eq!(saved.tracking_start, Timestamp(5));
        assert_eq!(
            saved.keys,
            vec![(
                id,
                LastUse {
                    operation: TrackedOperation::Sign,
                    at: Timestamp(9)
                }
            )]
        );
        assert!(parse(b"not json").is_none());
    }
}
