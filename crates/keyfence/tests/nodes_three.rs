//! Three real `keyfence server` processes over one store, PostgreSQL or a
//! shared SQLite file, with requests spread over them: a change made at one
//! node is seen at the others (converges), and is seen at once at the node
//! that made it (reads its writes). Convergence times are printed
//! (`--nocapture`) for docs/design.md.

mod nodes;

use std::time::Duration;

use base64::Engine;
use nodes::{percentiles, Nodes, Store};
use serde_json::json;

/// Far above what the feed needs (PostgreSQL: a notification, ~ms; shared
/// SQLite: 100 ms polling); only a feed that does not follow fails it.
const CONVERGE: Duration = Duration::from_secs(5);

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The scenario, run on either store.
fn spread_over_three(n: &Nodes) {
    let others = |i: usize| -> Vec<usize> { (0..3).filter(|&j| j != i).collect() };
    let mut create = Vec::new();
    let mut keys = Vec::new();
    // CreateKey at each node in turn; DescribeKey at the maker at once, at
    // the others once they converge.
    for round in 0..9 {
        let at = round % 3;
        let key = n.create_key(at);
        assert_eq!(n.key_state(at, &key).as_deref(), Some("Enabled"));
        create.push(n.until_all(&others(at), CONVERGE, "CreateKey", |n, i| {
            n.key_state(i, &key).is_some()
        }));
        keys.push(key);
    }

    // Encrypt at one node, decrypt at the two others.
    let blob = n.ok(
        1,
        "Encrypt",
        json!({ "KeyId": keys[0], "Plaintext": b64(b"spread") }),
    )["CiphertextBlob"]
        .clone();
    for i in [0, 2] {
        let r = n.ok(i, "Decrypt", json!({ "CiphertextBlob": blob }));
        assert_eq!(r["Plaintext"], b64(b"spread"));
    }

    // CreateAlias at node 2, used at node 0.
    n.ok(
        2,
        "CreateAlias",
        json!({ "AliasName": "alias/spread", "TargetKeyId": keys[0] }),
    );
    let alias = n.until_all(&[0, 1], CONVERGE, "CreateAlias", |n, i| {
        n.alias_target(i, "alias/spread").as_deref() == Some(keys[0].as_str())
    });
    let r = n.ok(
        0,
        "Encrypt",
        json!({ "KeyId": "alias/spread", "Plaintext": b64(b"a") }),
    );
    assert!(r["KeyId"].as_str().unwrap().ends_with(&keys[0]));

    // UpdateAlias at node 0 to another key: node 1 encrypts under the new one.
    n.ok(
        0,
        "UpdateAlias",
        json!({ "AliasName": "alias/spread", "TargetKeyId": keys[1] }),
    );
    let update = n.until_all(&[1, 2], CONVERGE, "UpdateAlias", |n, i| {
        n.alias_target(i, "alias/spread").as_deref() == Some(keys[1].as_str())
    });
    let r = n.ok(
        1,
        "Encrypt",
        json!({ "KeyId": "alias/spread", "Plaintext": b64(b"b") }),
    );
    assert!(r["KeyId"].as_str().unwrap().ends_with(&keys[1]));

    // RotateKeyOnDemand at node 1: the others list the rotation, and a
    // ciphertext under the new version made at node 1 decrypts at node 2.
    n.ok(1, "RotateKeyOnDemand", json!({ "KeyId": keys[2] }));
    let rotate = n.until_all(&[0, 2], CONVERGE, "RotateKeyOnDemand", |n, i| {
        n.rotations(i, &keys[2]) == Some(1)
    });
    let blob = n.ok(
        1,
        "Encrypt",
        json!({ "KeyId": keys[2], "Plaintext": b64(b"v2") }),
    )["CiphertextBlob"]
        .clone();
    n.ok(2, "Decrypt", json!({ "CiphertextBlob": blob }));

    // DisableKey at node 2: Encrypt stops at the others; EnableKey at node 0 restores it.
    n.ok(2, "DisableKey", json!({ "KeyId": keys[3] }));
    let encrypt = |n: &Nodes, i: usize| {
        n.call(
            i,
            "Encrypt",
            json!({ "KeyId": keys[3], "Plaintext": b64(b"x") }),
        )
        .unwrap()
    };
    assert_eq!(
        encrypt(n, 2).error_type().as_deref(),
        Some("DisabledException")
    );
    let disable = n.until_all(&[0, 1], CONVERGE, "DisableKey", |n, i| {
        encrypt(n, i).error_type().as_deref() == Some("DisabledException")
    });
    n.ok(0, "EnableKey", json!({ "KeyId": keys[3] }));
    let enable = n.until_all(&[1, 2], CONVERGE, "EnableKey", |n, i| {
        encrypt(n, i).status == 200
    });

    // ScheduleKeyDeletion at node 0, CancelKeyDeletion at node 1 once it sees it.
    n.ok(
        0,
        "ScheduleKeyDeletion",
        json!({ "KeyId": keys[4], "PendingWindowInDays": 7 }),
    );
    let schedule = n.until_all(&[1, 2], CONVERGE, "ScheduleKeyDeletion", |n, i| {
        n.key_state(i, &keys[4]).as_deref() == Some("PendingDeletion")
    });
    n.ok(1, "CancelKeyDeletion", json!({ "KeyId": keys[4] }));
    let cancel = n.until_all(&[0, 2], CONVERGE, "CancelKeyDeletion", |n, i| {
        n.key_state(i, &keys[4]).as_deref() == Some("Disabled")
    });

    // TagResource at node 2, listed at the others.
    n.ok(
        2,
        "TagResource",
        json!({ "KeyId": keys[5], "Tags": [{ "TagKey": "team", "TagValue": "blue" }] }),
    );
    let tag = n.until_all(&[0, 1], CONVERGE, "TagResource", |n, i| {
        n.ok(i, "ListResourceTags", json!({ "KeyId": keys[5] }))["Tags"]
            .as_array()
            .is_some_and(|t| t.len() == 1 && t[0]["TagValue"] == "blue")
    });

    // Every node lists the same keys.
    for i in 0..3 {
        assert_eq!(n.key_count(i), keys.len(), "ListKeys at node {i}");
    }

    let (p50, p99, max) = percentiles(&mut create);
    eprintln!(
        "{}: CreateKey visible at both other nodes: p50 {p50:?}, p99 {p99:?}, max {max:?} \
         over {} keys; CreateAlias {alias:?}, UpdateAlias {update:?}, Rotate {rotate:?}, \
         Disable {disable:?}, Enable {enable:?}, Schedule {schedule:?}, Cancel {cancel:?}, \
         Tag {tag:?} (each: until both other nodes answer it, over HTTPS)",
        n.store.name(),
        create.len()
    );
}

#[test]
fn three_nodes_on_postgres_serve_each_others_changes() {
    let n = Nodes::start(3, Some(Store::postgres()), None);
    spread_over_three(&n);
    n.stop();
}

#[test]
fn three_nodes_on_a_shared_sqlite_file_serve_each_others_changes() {
    let n = Nodes::start(3, None, None);
    spread_over_three(&n);
    n.stop();
}
