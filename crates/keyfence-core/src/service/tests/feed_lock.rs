//! A sync reads the change feed without holding the replica lock: this
//! node's writes publish their results while the store's feed read hangs.

use std::sync::mpsc;
use std::time::Duration;

use super::*;

#[test]
fn a_write_is_answered_while_a_sync_waits_on_the_store() {
    let f = Fixture::new();
    let kms = &f.kms;
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    *f.store.1 .0.lock().unwrap() = Some((entered_tx, release_rx));
    std::thread::scope(|s| {
        let syncing = s.spawn(|| kms.sync());
        entered.recv().unwrap();
        // The sync is inside the store's feed read, which hangs.
        let (done_tx, done) = mpsc::channel();
        s.spawn(move || {
            let made = kms.create_key(A, CreateKeyInput::default());
            done_tx.send(made).unwrap();
        });
        let made = done.recv_timeout(Duration::from_secs(20));
        release.send(()).unwrap();
        let key = made
            .expect("the write waited for the sync's feed read")
            .unwrap();
        let synced = syncing.join().unwrap().unwrap();
        assert!(!synced.reloaded);
        // The sync saw the write published meanwhile, read the feed again,
        // and left the key in the replica.
        let described = kms.describe_key(A, &key.id.to_string()).unwrap();
        assert_eq!(described.id, key.id);
    });
}
