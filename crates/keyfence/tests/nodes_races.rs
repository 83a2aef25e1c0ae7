//! Concurrent state changes sent at the same moment to different real nodes
//! over one store (PostgreSQL, and a shared SQLite file): each race ends in a
//! state that one of the serial orders of the two requests gives, with the
//! replies that order gives, and every node converges to it.
//!
//! Also the real-time order: a change acknowledged at one node is never
//! contradicted by a request sent afterwards to another node whose replica
//! has not caught up yet (an alias is never created or moved onto a key whose
//! deletion was already acknowledged, as AWS refuses it with
//! KMSInvalidStateException).

mod nodes;

use std::time::Duration;

use keyfence_bench::client::Reply;
use nodes::{call, context, Nodes, Store};
use serde_json::{json, Value};

/// Rounds of each race (fresh keys each time): `KEYFENCE_RACE_ROUNDS`, 6 by default.
fn rounds() -> usize {
    std::env::var("KEYFENCE_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}
const CONVERGE: Duration = Duration::from_secs(5);

/// Sends `a` and `b` at once on connections opened beforehand.
fn race(n: &Nodes, a: (usize, &str, Value), b: (usize, &str, Value)) -> (Reply, Reply) {
    let (ca, cb) = (context(&n.nodes[a.0]), context(&n.nodes[b.0]));
    n.rt.block_on(async move {
        let (mut x, mut y) = (ca.connect().await.unwrap(), cb.connect().await.unwrap());
        let (ra, rb) = tokio::join!(x.kms(a.1, &a.2), y.kms(b.1, &b.2));
        (ra.unwrap(), rb.unwrap())
    })
}

fn outcome(r: &Reply) -> String {
    r.error_type().unwrap_or_else(|| "ok".into())
}

/// Waits until every node answers `state` for `key`.
fn converge_state(n: &Nodes, key: &str, state: &str) {
    n.until_all(&[0, 1, 2], CONVERGE, state, |n, i| {
        n.key_state(i, key).as_deref() == Some(state)
    });
}

fn converge_alias(n: &Nodes, name: &str, target: Option<&str>) {
    n.until_all(&[0, 1, 2], CONVERGE, "alias", |n, i| {
        n.alias_target(i, name).as_deref() == target
    });
}

fn schedule(key: &str) -> Value {
    json!({ "KeyId": key, "PendingWindowInDays": 7 })
}

fn races(n: &Nodes) {
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..rounds() {
        // Schedule (node 0) vs Cancel (node 1) on an enabled key.
        // S;C → both ok, Disabled.  C;S → Cancel refused, PendingDeletion.
        let key = n.create_key(2);
        n.until_all(&[0, 1], CONVERGE, "key", |n, i| {
            n.key_state(i, &key).is_some()
        });
        let (s, c) = race(
            n,
            (0, "ScheduleKeyDeletion", schedule(&key)),
            (1, "CancelKeyDeletion", json!({ "KeyId": key })),
        );
        let end = match (outcome(&s).as_str(), outcome(&c).as_str()) {
            ("ok", "ok") => "Disabled",
            ("ok", "KMSInvalidStateException") => "PendingDeletion",
            other => panic!("schedule vs cancel on Enabled: {other:?} fits no serial order"),
        };
        seen.insert(format!("S|C from Enabled → {end}"));
        converge_state(n, &key, end);

        // Cancel (node 0) vs Schedule (node 1) on a key pending deletion.
        // C;S → both ok, PendingDeletion.  S;C → Schedule refused, Disabled.
        let key = n.create_key(2);
        n.ok(2, "ScheduleKeyDeletion", schedule(&key));
        converge_state(n, &key, "PendingDeletion");
        let (c, s) = race(
            n,
            (0, "CancelKeyDeletion", json!({ "KeyId": key })),
            (1, "ScheduleKeyDeletion", schedule(&key)),
        );
        let end = match (outcome(&c).as_str(), outcome(&s).as_str()) {
            ("ok", "ok") => "PendingDeletion",
            ("ok", "KMSInvalidStateException") => "Disabled",
            other => {
                panic!("cancel vs schedule on PendingDeletion: {other:?} fits no serial order")
            }
        };
        seen.insert(format!("C|S from PendingDeletion → {end}"));
        converge_state(n, &key, end);

        // RotateKeyOnDemand at all three nodes at once: every one succeeds
        // (one after the other), three rotations everywhere.
        let key = n.create_key(round % 3);
        n.until_all(&[0, 1, 2], CONVERGE, "key", |n, i| {
            n.key_state(i, &key).is_some()
        });
        let ctxs: Vec<_> = (0..3).map(|i| n.ctx(i)).collect();
        let replies: Vec<Reply> = n.rt.block_on(async {
            let mut conns = Vec::new();
            for c in &ctxs {
                conns.push(c.connect().await.unwrap());
            }
            let body = json!({ "KeyId": key });
            let mut it = conns.iter_mut();
            let (a, b, c) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let (x, y, z) = tokio::join!(
                a.kms("RotateKeyOnDemand", &body),
                b.kms("RotateKeyOnDemand", &body),
                c.kms("RotateKeyOnDemand", &body)
            );
            vec![x.unwrap(), y.unwrap(), z.unwrap()]
        });
        for r in &replies {
            assert_eq!(outcome(r), "ok", "{}", String::from_utf8_lossy(&r.body));
        }
        n.until_all(&[0, 1, 2], CONVERGE, "rotations", |n, i| {
            n.rotations(i, &key) == Some(3)
        });
        // A ciphertext made at any node decrypts at every node (all versions everywhere).
        for i in 0..3 {
            let blob = n.ok(i, "Encrypt", json!({ "KeyId": key, "Plaintext": "eA==" }))
                ["CiphertextBlob"]
                .clone();
            for j in 0..3 {
                n.ok(j, "Decrypt", json!({ "CiphertextBlob": blob }));
            }
        }

        // CreateAlias onto a key (node 0) vs ScheduleKeyDeletion of it (node 1).
        // A;S → both ok, alias on the pending key.  S;A → CreateAlias refused, no alias.
        let key = n.create_key(2);
        n.until_all(&[0, 1], CONVERGE, "key", |n, i| {
            n.key_state(i, &key).is_some()
        });
        let name = format!("alias/race-create-{round}");
        let (a, s) = race(
            n,
            (
                0,
                "CreateAlias",
                json!({ "AliasName": name, "TargetKeyId": key }),
            ),
            (1, "ScheduleKeyDeletion", schedule(&key)),
        );
        let end = match (outcome(&a).as_str(), outcome(&s).as_str()) {
            ("ok", "ok") => Some(key.as_str()),
            ("KMSInvalidStateException", "ok") => None,
            other => panic!("create alias vs schedule: {other:?} fits no serial order"),
        };
        seen.insert(format!("CreateAlias|S → alias {}", end.is_some()));
        converge_state(n, &key, "PendingDeletion");
        converge_alias(n, &name, end);

        // UpdateAlias from k1 to k2 (node 0) vs ScheduleKeyDeletion of k2 (node 1).
        // U;S → both ok, alias on k2.  S;U → UpdateAlias refused, alias stays on k1.
        let (k1, k2) = (n.create_key(2), n.create_key(2));
        let name = format!("alias/race-update-{round}");
        n.ok(
            2,
            "CreateAlias",
            json!({ "AliasName": name, "TargetKeyId": k1 }),
        );
        n.until_all(&[0, 1], CONVERGE, "keys", |n, i| {
            n.key_state(i, &k2).is_some() && n.alias_target(i, &name).is_some()
        });
        let (u, s) = race(
            n,
            (
                0,
                "UpdateAlias",
                json!({ "AliasName": name, "TargetKeyId": k2 }),
            ),
            (1, "ScheduleKeyDeletion", schedule(&k2)),
        );
        let end = match (outcome(&u).as_str(), outcome(&s).as_str()) {
            ("ok", "ok") => k2.as_str(),
            ("KMSInvalidStateException", "ok") => k1.as_str(),
            other => panic!("update alias vs schedule: {other:?} fits no serial order"),
        };
        seen.insert(format!("UpdateAlias|S → on k2 {}", end == k2));
        converge_state(n, &k2, "PendingDeletion");
        converge_alias(n, &name, Some(end));
    }
    eprintln!("{}: outcomes seen: {seen:?}", n.store.name());
}

/// A deletion acknowledged at node 0 is final for a request sent afterwards
/// to node 1, even before node 1's replica has heard of it.
fn acknowledged_deletion_binds_other_nodes(n: &Nodes) {
    for round in 0..rounds() {
        let (k1, k2) = (n.create_key(0), n.create_key(0));
        let name = format!("alias/after-{round}");
        n.ok(
            0,
            "CreateAlias",
            json!({ "AliasName": name, "TargetKeyId": k1 }),
        );
        n.until_all(&[1], CONVERGE, "keys", |n, i| {
            n.key_state(i, &k2).is_some() && n.alias_target(i, &name).is_some()
        });
        n.ok(0, "ScheduleKeyDeletion", schedule(&k2));
        let ctx = n.ctx(1);
        let (create, update) = n.rt.block_on(async {
            let create = call(
                ctx.clone(),
                "CreateAlias",
                json!({ "AliasName": format!("{name}-new"), "TargetKeyId": k2 }),
            );
            let update = call(
                ctx,
                "UpdateAlias",
                json!({ "AliasName": name, "TargetKeyId": k2 }),
            );
            let (c, u) = tokio::join!(create, update);
            (c.unwrap(), u.unwrap())
        });
        assert_eq!(
            outcome(&create),
            "KMSInvalidStateException",
            "round {round}"
        );
        assert_eq!(
            outcome(&update),
            "KMSInvalidStateException",
            "round {round}"
        );
        converge_alias(n, &format!("{name}-new"), None);
        converge_alias(n, &name, Some(&k1));
    }
}

#[test]
fn racing_changes_at_three_postgres_nodes_end_as_if_serial() {
    let n = Nodes::start(3, Some(Store::postgres()), None);
    races(&n);
    acknowledged_deletion_binds_other_nodes(&n);
    n.stop();
}

#[test]
fn racing_changes_at_three_shared_sqlite_nodes_end_as_if_serial() {
    let n = Nodes::start(3, None, None);
    races(&n);
    acknowledged_deletion_binds_other_nodes(&n);
    n.stop();
}
