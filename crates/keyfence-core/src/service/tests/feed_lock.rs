//! A sync reads the change feed without holding the replica lock: this
//! node's writes publish their results while the store's feed read hangs,
//! and a sync that may hold an older state than one of them reads again.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use super::*;

/// Runs `write` while a sync of `f` waits inside the store's feed read;
/// returns what it made (it must finish before the read is released) and
/// how many feed reads the sync made.
fn while_a_sync_waits<T: Send>(f: &Fixture, write: impl FnOnce(&Kms) -> T + Send) -> (T, usize) {
    let kms = &f.kms;
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    *f.store.1 .0.lock().unwrap() = Some((entered_tx, release_rx));
    let before = f.store.1 .1.load(Ordering::SeqCst);
    std::thread::scope(|s| {
        let syncing = s.spawn(|| kms.sync());
        entered.recv().unwrap();
        let (done_tx, done) = mpsc::channel();
        s.spawn(move || done_tx.send(write(kms)).unwrap());
        let made = done.recv_timeout(Duration::from_secs(20));
        release.send(()).unwrap();
        let made = made.expect("the write waited for the sync's feed read");
        let synced = syncing.join().unwrap().unwrap();
        assert!(!synced.reloaded);
        (made, f.store.1 .1.load(Ordering::SeqCst) - before)
    })
}

#[test]
fn a_write_is_answered_while_a_sync_waits_on_the_store() {
    let f = Fixture::new();
    let (made, reads) = while_a_sync_waits(&f, |kms| kms.create_key(A, CreateKeyInput::default()));
    let key = made.unwrap();
    // A key's new revision cannot be undone by an older batch: one read.
    assert_eq!(reads, 1);
    let described = f.kms.describe_key(A, &key.id.to_string()).unwrap();
    assert_eq!(described.id, key.id);
}

#[test]
fn a_sync_that_read_before_an_alias_changed_reads_again() {
    let f = Fixture::new();
    let key = f.key();
    let id = key.id.to_string();
    let (made, reads) = while_a_sync_waits(&f, |kms| kms.create_alias(A, "alias/app", &id));
    made.unwrap();
    // Aliases have no revision: the batch read before may hold an older
    // state, so the sync read the feed again under the lock.
    assert_eq!(reads, 2);
    assert_eq!(f.kms.describe_key(A, "alias/app").unwrap().id, key.id);
}
