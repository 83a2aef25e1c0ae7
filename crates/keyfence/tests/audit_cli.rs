//! `keyfence audit` on a real log in a real SQLite file: verify, prove,
//! consistency, check and export through the binary, and tampering with the
//! file on disk (an attacker with write access to it) detected by `verify`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use keyfence_core::audit::merkle::leaf_hash;
use keyfence_core::audit::{AuditRecord, Outcome, Source};
use keyfence_core::{LocalRootKey, SystemClock, Timestamp};
use keyfence_crypto::SymmetricKey;
use keyfence_server::audit::AuditLog;
use keyfence_store::SqliteAuditStore;

const RECORDS: u64 = 40;
const HEADS_AT: [u64; 3] = [10, 20, 40];

fn record(seq: u64, operation: &str) -> AuditRecord {
    AuditRecord {
        seq,
        time: Timestamp(1_764_550_000_000 + seq as i64 * 1000),
        source: Source::Kms,
        operation: operation.into(),
        request_id: format!("00000000-0000-0000-0000-{seq:012}"),
        principal: "arn:aws:iam::111122223333:user/alice".into(),
        access_key_id: "AKIAEXAMPLE".into(),
        account: "111122223333".into(),
        source_address: "192.0.2.7:50000".into(),
        key: Some(
            "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-aaaa-bbbb-cccc-000000000001".into(),
        ),
        context_keys: vec!["tenant".into()],
        outcome: if seq % 7 == 3 {
            Outcome::Failure("NotFoundException".into())
        } else {
            Outcome::Success
        },
    }
}

/// A data directory whose keyfence.db holds log `local`: 40 records, heads at 10, 20, 40.
fn make_log(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    make_log_in(&dir.join("keyfence.db"), "local");
}

/// Log `name` in `file`: 40 records, heads at 10, 20, 40.
fn make_log_in(file: &Path, name: &str) {
    let store = Arc::new(SqliteAuditStore::open(file).unwrap());
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let log = AuditLog::open(
        store,
        name,
        Some(&root),
        Arc::new(SystemClock),
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    rt.block_on(async {
        let mut seq = 0;
        for until in HEADS_AT {
            while seq < until {
                let op = if seq % 2 == 0 { "Encrypt" } else { "Decrypt" };
                assert_eq!(log.append(record(seq, op)).await.unwrap(), seq);
                seq += 1;
            }
            assert_eq!(log.sign_now().await.unwrap().unwrap().head.size, until);
        }
    });
    log.close();
}

fn keyfence(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyfence"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify(dir: &Path) -> (bool, String, String) {
    keyfence(&["audit", "verify", "--data-dir", dir.to_str().unwrap()])
}

/// A copy of the pristine log's directory, its append-only triggers dropped
/// as an attacker with the file would.
fn tampered_copy(pristine: &Path, to: &Path, sql: &str) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    let conn = rusqlite::Connection::open(pristine.join("keyfence.db")).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    std::fs::copy(pristine.join("keyfence.db"), to.join("keyfence.db")).unwrap();
    let conn = rusqlite::Connection::open(to.join("keyfence.db")).unwrap();
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in triggers {
        conn.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
    }
    conn.execute_batch(sql).unwrap();
    to.to_path_buf()
}

/// Replaces record `seq` by `record`, with (`rehash`) or without a new leaf hash.
fn replace(conn: &rusqlite::Connection, seq: u64, record: &AuditRecord, rehash: bool) {
    let data = record.encode().unwrap();
    if rehash {
        conn.execute(
            "UPDATE audit_records SET data = ?1, leaf_hash = ?2 WHERE seq = ?3",
            rusqlite::params![data, &leaf_hash(&data)[..], seq as i64],
        )
        .unwrap();
    } else {
        conn.execute(
            "UPDATE audit_records SET data = ?1 WHERE seq = ?2",
            rusqlite::params![data, seq as i64],
        )
        .unwrap();
    }
}

#[test]
fn tampering_on_disk_is_detected_and_the_first_bad_record_named() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    make_log(&pristine);
    let (ok, out, err) = verify(&pristine);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("40 records read, 3 signed tree heads"),
        "{out}"
    );

    // (name, SQL after the triggers are dropped, edits in Rust, expected first bad record)
    type Edit = fn(&rusqlite::Connection);
    let cases: Vec<(&str, &str, Option<Edit>, &str)> = vec![
        ("edit a field", "", Some(|c| replace(c, 17, &record(17, "ScheduleKeyDeletion"), false)), "first bad record: 17"),
        ("edit a field and re-hash it", "", Some(|c| replace(c, 17, &record(17, "ScheduleKeyDeletion"), true)), "first bad record: 10"),
        ("edit the outcome, re-hashed, in the first signed range", "", Some(|c| {
            let mut r = record(4, "Encrypt");
            r.outcome = Outcome::Failure("AccessDeniedException".into());
            replace(c, 4, &r, true)
        }), "first bad record: 0"),
        ("delete a record", "DELETE FROM audit_records WHERE seq = 25", None, "first bad record: 25"),
        ("truncate the log", "DELETE FROM audit_records WHERE seq >= 30", None, "first bad record: 30"),
        ("reorder two records", "", Some(|c| {
            replace(c, 5, &record(6, "Encrypt"), true);
            replace(c, 6, &record(5, "Decrypt"), true);
        }), "first bad record: 5"),
        ("reorder by renumbering", "UPDATE audit_records SET seq = -1 WHERE seq = 12; UPDATE audit_records SET seq = 12 WHERE seq = 13; UPDATE audit_records SET seq = 13 WHERE seq = -1;", None, "first bad record: 12"),
        ("replace the tail with a re-hashed forgery", "", Some(|c| {
            for seq in 25..RECORDS {
                replace(c, seq, &record(seq, "ListKeys"), true);
            }
        }), "first bad record: 20"),
        ("replace the tail and re-root the latest head", "", Some(|c| {
            let mut leaves = Vec::new();
            for seq in 0..RECORDS {
                let r = if seq >= 25 { record(seq, "ListKeys") } else { record(seq, if seq % 2 == 0 { "Encrypt" } else { "Decrypt" }) };
                if seq >= 25 {
                    replace(c, seq, &r, true);
                }
                leaves.push(leaf_hash(&r.encode().unwrap()));
            }
            let root = keyfence_core::audit::merkle::root(&leaves);
            c.execute("UPDATE audit_heads SET root = ?1 WHERE size = 40", [&root[..]]).unwrap();
        }), "signed heads are not valid"),
    ];
    let tried = cases.len();
    let mut detected = 0;
    for (n, (name, sql, edit, expected)) in cases.into_iter().enumerate() {
        let copy = tampered_copy(&pristine, &dir.path().join(format!("case{n}")), sql);
        if let Some(edit) = edit {
            edit(&rusqlite::Connection::open(copy.join("keyfence.db")).unwrap());
        }
        let (ok, out, err) = verify(&copy);
        assert!(!ok, "{name}: not detected\n{out}");
        assert!(
            err.contains(expected),
            "{name}: expected {expected:?}\n{out}{err}"
        );
        assert!(out.contains("FAILED: "), "{name}: {out}");
        detected += 1;
        eprintln!(
            "{name}: detected — {}",
            out.lines().last().unwrap_or_default()
        );
    }
    eprintln!("tampering: {detected} of {tried} detected");
    assert_eq!((tried, detected), (9, 9));
}

#[test]
fn proofs_from_the_binary_check_offline_and_a_changed_proof_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_log(&data);
    let d = data.to_str().unwrap();
    let key = dir.path().join("audit.der");
    let (ok, _, err) = keyfence(&[
        "audit",
        "public-key",
        "--der",
        key.to_str().unwrap(),
        "--data-dir",
        d,
    ]);
    assert!(ok, "{err}");
    let k = key.to_str().unwrap();

    let (ok, proof, err) = keyfence(&["audit", "prove", "17", "--data-dir", d]);
    assert!(ok, "{err}");
    let file = dir.path().join("inclusion.json");
    std::fs::write(&file, &proof).unwrap();
    let (ok, out, err) = keyfence(&["audit", "check", file.to_str().unwrap(), "--public-key", k]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("OK: record 17 (Decrypt"), "{out}");
    let mut v: serde_json::Value = serde_json::from_str(&proof).unwrap();
    let first = v["inclusionPath"][0].as_str().unwrap().to_string();
    v["inclusionPath"][0] = format!(
        "{}{}",
        if first.starts_with('0') { "1" } else { "0" },
        &first[1..]
    )
    .into();
    std::fs::write(&file, v.to_string()).unwrap();
    let (ok, _, err) = keyfence(&["audit", "check", file.to_str().unwrap(), "--public-key", k]);
    assert!(!ok && err.contains("does NOT verify"), "{err}");

    // An auditor who kept the head at 10 checks that 40 extends it.
    let (ok, proof, err) = keyfence(&["audit", "consistency", "10", "--data-dir", d]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(
        (v["oldSize"].as_u64(), v["newSize"].as_u64()),
        (Some(10), Some(40))
    );
    assert_eq!(v["oldSignedTreeHead"]["treeSize"].as_u64(), Some(10));
    let file = dir.path().join("consistency.json");
    std::fs::write(&file, &proof).unwrap();
    let (ok, out, err) = keyfence(&["audit", "check", file.to_str().unwrap(), "--public-key", k]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("extends the log of 10 records"), "{out}");
    // A forged old root (a rewritten history) fails.
    let mut forged = v.clone();
    forged["oldSignedTreeHead"] = serde_json::Value::Null;
    forged["oldRoot"] = hex::encode([7u8; 32]).into();
    std::fs::write(&file, forged.to_string()).unwrap();
    let (ok, _, _) = keyfence(&["audit", "check", file.to_str().unwrap(), "--public-key", k]);
    assert!(!ok);
    // Another key does not verify the heads.
    std::fs::write(&key, b"not a key").unwrap();
    std::fs::write(&file, &proof).unwrap();
    let (ok, _, _) = keyfence(&["audit", "check", file.to_str().unwrap(), "--public-key", k]);
    assert!(!ok);
}

#[test]
fn export_writes_one_cloudtrail_like_event_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_log(&data);
    let (ok, out, err) = keyfence(&["audit", "export", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), RECORDS as usize);
    let e = &events[3];
    assert_eq!(e["eventName"], "Decrypt");
    assert_eq!(e["eventSource"], "kms.amazonaws.com");
    assert_eq!(e["errorCode"], "NotFoundException");
    assert_eq!(e["sourceIPAddress"], "192.0.2.7");
    assert_eq!(
        e["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/alice"
    );
    assert_eq!(e["userIdentity"]["accessKeyId"], "AKIAEXAMPLE");
    assert_eq!(e["requestParameters"]["encryptionContextKeys"][0], "tenant");
    assert_eq!(e["resources"][0]["type"], "AWS::KMS::Key");
    assert_eq!(e["requestID"], "00000000-0000-0000-0000-000000000003");
    assert_eq!(e["eventTime"], "2025-12-01T00:46:43Z");
    assert_eq!(e["keyfence"]["seq"], 3);
    assert!(events[0].get("errorCode").is_none());
}

#[test]
fn a_log_in_postgresql_verifies_and_an_edit_in_the_database_is_detected() {
    let pg = keyfence_testkit::TempPostgres::new().unwrap();
    let url = pg.connection_string();
    let store = Arc::new(keyfence_store::PostgresStore::connect(&url).unwrap());
    let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
    let log = AuditLog::open(
        store,
        "fra",
        Some(&root),
        Arc::new(SystemClock),
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for seq in 0..12 {
            log.append(record(seq, "Encrypt")).await.unwrap();
        }
        log.sign_now().await.unwrap().unwrap();
    });
    log.close();
    let verify = || keyfence(&["audit", "verify", "--store", &url, "--log", "fra"]);
    let (ok, out, err) = verify();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("12 records read, 1 signed tree heads"),
        "{out}"
    );
    // Someone with the database's owner role disables the triggers and edits a record.
    pg.psql("ALTER TABLE audit_records DISABLE TRIGGER ALL; \
             UPDATE audit_records SET data = overlay(data placing '\\x58'::bytea from 40 for 1) WHERE seq = 8")
        .unwrap();
    let (ok, out, err) = verify();
    assert!(!ok, "{out}");
    assert!(err.contains("first bad record: 8"), "{out}{err}");
}

#[test]
fn nodes_sharing_a_data_directory_keep_their_logs_in_files_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // A dev cluster: fra and par share the data directory (and its store).
    for name in ["fra", "par"] {
        make_log_in(
            &dir.path().join(keyfence_server::audit::named_file(name)),
            name,
        );
    }
    let (ok, out, err) = verify(dir.path());
    assert!(!ok, "{out}");
    assert!(
        err.contains("several audit logs") && err.contains("fra in ") && err.contains("par in "),
        "{err}"
    );
    for name in ["fra", "par"] {
        let (ok, out, err) = keyfence(&["audit", "verify", "--data-dir", d, "--log", name]);
        assert!(ok, "{name}: {out}{err}");
        assert!(
            out.contains("40 records read, 3 signed tree heads"),
            "{name}: {out}"
        );
    }
    let (ok, _, err) = keyfence(&["audit", "verify", "--data-dir", d, "--log", "iad"]);
    assert!(!ok);
    assert!(err.contains("no audit log named iad"), "{err}");
}
