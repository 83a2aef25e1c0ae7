//! The audit tables in both stores: appending in order, reading back,
//! signed heads, signing keys, and refusals (a gap, a position taken twice,
//! a second key, UPDATE and DELETE through the database's own rules).

use keyfence_core::audit::merkle::leaf_hash;
use keyfence_core::audit::{AuditStore, Frontier, LogKey, SignedTreeHead, StoredEntry, TreeHead};
use keyfence_core::store::StoreError;
use keyfence_core::Timestamp;
use keyfence_store::{PostgresStore, SqliteAuditStore};
use keyfence_testkit::TempPostgres;

fn entries(from: u64, n: u64) -> Vec<StoredEntry> {
    (from..from + n)
        .map(|seq| {
            let data = format!("record {seq}").into_bytes();
            StoredEntry {
                seq,
                leaf_hash: leaf_hash(&data),
                data,
            }
        })
        .collect()
}

/// The tree of the first `n` entries.
fn edge(n: u64) -> Frontier {
    let mut f = Frontier::new();
    entries(0, n).iter().for_each(|e| f.push(e.leaf_hash));
    f
}

fn exercise(store: &dyn AuditStore) {
    assert!(store.read("a", 0, 10).unwrap().is_empty());
    assert_eq!(store.frontier("a").unwrap(), (None, 0));
    store.append("a", &entries(0, 3), &edge(3)).unwrap();
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(3)), 3));
    store.append("a", &entries(3, 2), &edge(5)).unwrap();
    store.append("b", &entries(0, 1), &edge(1)).unwrap();
    // The edge stored with the last append, beside the count of records.
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(5)), 5));
    assert_eq!(store.frontier("b").unwrap(), (Some(edge(1)), 1));
    assert_eq!(store.read("a", 0, 100).unwrap(), entries(0, 5));
    assert_eq!(store.read("a", 2, 2).unwrap(), entries(2, 2));
    assert_eq!(store.read("b", 0, 100).unwrap(), entries(0, 1));
    // A gap and a position taken twice are refused, and nothing of them is kept.
    assert!(matches!(
        store.append("a", &entries(6, 1), &edge(7)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.append("a", &entries(4, 2), &edge(6)),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.read("a", 0, 100).unwrap().len(), 5);
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(5)), 5));
    // The refused appends left no transaction open: the next one continues.
    store.append("a", &entries(5, 1), &edge(6)).unwrap();
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(6)), 6));

    let head = |size| SignedTreeHead {
        head: TreeHead {
            size,
            root: [size as u8; 32],
            time: Timestamp(size as i64 * 10),
        },
        signature: vec![1, 2, 3],
    };
    store.add_head("a", &head(5)).unwrap();
    store.add_head("a", &head(3)).unwrap();
    assert_eq!(store.heads("a").unwrap(), vec![head(3), head(5)]);
    assert!(store.heads("b").unwrap().is_empty());

    let key = LogKey {
        public_key: vec![9; 10],
        sealed: vec![8; 20],
    };
    assert_eq!(store.signing_key("a").unwrap(), None);
    store.put_signing_key("a", &key).unwrap();
    assert!(matches!(
        store.put_signing_key("a", &key),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.signing_key("a").unwrap(), Some(key));
    assert_eq!(store.logs().unwrap(), vec!["a".to_string()]);
}

#[test]
fn sqlite_audit_tables_append_read_and_refuse_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyfence.db");
    let store = SqliteAuditStore::open(&path).unwrap();
    exercise(&store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE audit_records SET data = x'00' WHERE seq = 1",
        "DELETE FROM audit_records WHERE seq = 4",
        "DELETE FROM audit_heads",
        "UPDATE audit_keys SET sealed = x'00'",
    ] {
        let err = conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.read("a", 0, 100).unwrap(), entries(0, 6));
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 11);
}

#[test]
fn sqlite_audit_store_does_not_create_a_missing_file_for_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    assert!(SqliteAuditStore::open_existing(&path).is_err());
    assert!(!path.exists());
}

#[test]
fn postgres_audit_tables_append_read_and_refuse_changes() {
    let pg = TempPostgres::new().unwrap();
    let store = PostgresStore::connect(&pg.connection_string()).unwrap();
    exercise(&store);
    for sql in [
        "UPDATE audit_records SET data = '\\x00' WHERE seq = 1",
        "DELETE FROM audit_records WHERE seq = 4",
        "TRUNCATE audit_records",
        "DELETE FROM audit_heads",
        "UPDATE audit_keys SET sealed = '\\x00'",
    ] {
        let err = pg.psql(sql).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.read("a", 0, 100).unwrap(), entries(0, 6));
}
