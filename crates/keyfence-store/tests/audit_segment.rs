//! Audit records in segment files: restarts find the log's end and tree, a
//! torn last write is cut off, damage is refused and reported, a log with
//! records in the database continues in its segment, the index marks, and
//! one writer per segment.

use std::io::Write;
use std::path::Path;

use keyfence_core::audit::merkle::leaf_hash;
use keyfence_core::audit::{AuditStore, Frontier, StoredEntry};
use keyfence_core::store::StoreError;
use keyfence_store::audit_segment;
use keyfence_store::SqliteAuditStore;

fn entries(from: u64, n: u64) -> Vec<StoredEntry> {
    (from..from + n)
        .map(|seq| {
            let data = format!("record {seq} {}", "x".repeat((seq % 50) as usize)).into_bytes();
            StoredEntry {
                seq,
                leaf_hash: leaf_hash(&data),
                data,
            }
        })
        .collect()
}

fn edge(n: u64) -> Frontier {
    let mut f = Frontier::new();
    entries(0, n).iter().for_each(|e| f.push(e.leaf_hash));
    f
}

/// A log `a` of `n` records appended in batches of `batch`.
fn write_log(path: &Path, n: u64, batch: u64) -> SqliteAuditStore {
    let store = SqliteAuditStore::open(path).unwrap();
    let mut at = 0;
    while at < n {
        let count = batch.min(n - at);
        store
            .append("a", &entries(at, count), &edge(at + count))
            .unwrap();
        at += count;
    }
    store
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn a_restart_finds_the_end_and_tree_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    drop(write_log(&db, 10, 3));
    let store = SqliteAuditStore::open(&db).unwrap();
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(10)), 10));
    store.append("a", &entries(10, 2), &edge(12)).unwrap();
    assert_eq!(store.read("a", 0, 100).unwrap(), entries(0, 12));
    // An auditor's read-only store sees the same, and cannot write.
    let reader = SqliteAuditStore::open_existing(&db).unwrap();
    assert_eq!(reader.frontier("a").unwrap(), (Some(edge(12)), 12));
    assert!(reader.append("a", &entries(12, 1), &edge(13)).is_err());
    // Readable by the node's user only (in a data directory that is too).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(store.segment_path("a"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_torn_last_write_is_ignored_by_readers_and_cut_off_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    drop(write_log(&db, 7, 2));
    let segment = SqliteAuditStore::open_existing(&db)
        .unwrap()
        .segment_path("a");
    let whole = std::fs::metadata(&segment).unwrap().len();
    // A batch that was never acknowledged: cut in its payload, then one cut
    // in its header, then one whole but with a wrong checksum.
    let mut batch = Vec::new();
    audit_segment::encode(&entries(7, 3), &mut batch).unwrap();
    let mut corrupted = batch.clone();
    corrupted[30] ^= 1;
    for torn in [&batch[..batch.len() - 10], &batch[..7], &corrupted[..]] {
        append_bytes(&segment, torn);
        let reader = SqliteAuditStore::open_existing(&db).unwrap();
        assert_eq!(reader.read("a", 0, 100).unwrap(), entries(0, 7));
        assert_eq!(reader.frontier("a").unwrap(), (Some(edge(7)), 7));
        let store = SqliteAuditStore::open(&db).unwrap();
        assert_eq!(store.frontier("a").unwrap(), (Some(edge(7)), 7));
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole);
    }
    let store = SqliteAuditStore::open(&db).unwrap();
    store.append("a", &entries(7, 3), &edge(10)).unwrap();
    assert_eq!(store.read("a", 0, 100).unwrap(), entries(0, 10));
}

/// The length of the frame that `entries` make.
fn frame_len(entries: &[StoredEntry]) -> usize {
    let mut out = Vec::new();
    audit_segment::encode(entries, &mut out).unwrap();
    out.len()
}

#[test]
fn damage_before_the_end_is_refused_by_the_writer_and_reported_to_readers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    drop(write_log(&db, 9, 3));
    let segment = SqliteAuditStore::open_existing(&db)
        .unwrap()
        .segment_path("a");
    let pristine = std::fs::read(&segment).unwrap();
    let first = frame_len(&entries(0, 3));
    let second = first + frame_len(&entries(3, 3));

    // A byte of record 2 changed: its frame no longer matches its checksum
    // and whole frames follow it, so it is no torn write.
    let mut edited = pristine.clone();
    edited[first - 40] ^= 0x20;
    std::fs::write(&segment, &edited).unwrap();
    let reader = SqliteAuditStore::open_existing(&db).unwrap();
    let read = reader.read("a", 0, 100).unwrap();
    assert_eq!(
        read.len(),
        9,
        "the reader hands the records to the verifier"
    );
    assert_eq!(read[..2], entries(0, 2));
    assert_ne!(read[2], entries(2, 1)[0]);
    let err = SqliteAuditStore::open(&db)
        .unwrap()
        .frontier("a")
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains("damaged at byte 0 (record 0)")),
        "{err}"
    );

    // The second frame's header overwritten: a whole frame follows it.
    let mut edited = pristine.clone();
    edited[first..first + 4].copy_from_slice(b"XXXX");
    std::fs::write(&segment, &edited).unwrap();
    let reader = SqliteAuditStore::open_existing(&db).unwrap();
    let err = reader.read("a", 0, 100).unwrap_err();
    let expected = format!("damaged at byte {first} (record 3)");
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains(&expected)),
        "{err}"
    );
    let err = SqliteAuditStore::open(&db)
        .unwrap()
        .frontier("a")
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");

    // The last frame cut off at a frame boundary (above every mark): the
    // log is shorter, which only the signed heads can tell.
    std::fs::write(&segment, &pristine[..second]).unwrap();
    let store = SqliteAuditStore::open(&db).unwrap();
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(6)), 6));
}

#[test]
fn index_marks_bound_restarts_and_reads_and_a_lost_tail_below_a_mark_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let n = 2 * keyfence_store::audit_segment::MARK_EVERY + 100;
    drop(write_log(&db, n, 61));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let marks: Vec<(i64, i64)> = conn
        .prepare("SELECT size, offset FROM audit_marks WHERE log = 'a' ORDER BY size")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(marks.len(), 3, "{marks:?}");
    assert_eq!(marks[0], (0, 0));
    let store = SqliteAuditStore::open(&db).unwrap();
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(n)), n));
    let from = marks[1].0 as u64 + 5;
    assert_eq!(store.read("a", from, 10).unwrap(), entries(from, 10));
    assert_eq!(store.read("a", 100, 3).unwrap(), entries(100, 3));
    drop(store);
    // The file cut below the last mark: records the index saw are gone.
    let segment = SqliteAuditStore::open_existing(&db)
        .unwrap()
        .segment_path("a");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    f.set_len(marks[2].1 as u64 - 1).unwrap();
    let err = SqliteAuditStore::open(&db)
        .unwrap()
        .frontier("a")
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains("records were removed")),
        "{err}"
    );
}

#[test]
fn a_log_with_records_in_the_database_continues_in_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    drop(SqliteAuditStore::open(&db).unwrap());
    // Five records and their edge as a build before segments wrote them.
    let conn = rusqlite::Connection::open(&db).unwrap();
    for e in entries(0, 5) {
        conn.execute(
            "INSERT INTO audit_records (log, seq, data, leaf_hash) VALUES ('a', ?1, ?2, ?3)",
            rusqlite::params![e.seq as i64, e.data, &e.leaf_hash[..]],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO audit_frontiers (log, edge) VALUES ('a', ?1)",
        [edge(5).to_bytes()],
    )
    .unwrap();
    let store = SqliteAuditStore::open(&db).unwrap();
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(5)), 5));
    assert!(matches!(
        store.append("a", &entries(4, 2), &edge(6)),
        Err(StoreError::Conflict(_))
    ));
    store.append("a", &entries(5, 3), &edge(8)).unwrap();
    assert_eq!(store.read("a", 0, 100).unwrap(), entries(0, 8));
    assert_eq!(store.read("a", 3, 4).unwrap(), entries(3, 4));
    drop(store);
    let store = SqliteAuditStore::open(&db).unwrap();
    assert_eq!(store.frontier("a").unwrap(), (Some(edge(8)), 8));
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM audit_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 5, "new records go to the segment only");
}

#[test]
fn a_segment_has_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let first = write_log(&db, 3, 3);
    let second = SqliteAuditStore::open(&db).unwrap();
    let err = second.append("a", &entries(3, 1), &edge(4)).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("another process")),
        "{err}"
    );
    first.append("a", &entries(3, 1), &edge(4)).unwrap();
    drop(first);
    second.append("a", &entries(4, 1), &edge(5)).unwrap();
    assert_eq!(second.read("a", 0, 10).unwrap(), entries(0, 5));
}
