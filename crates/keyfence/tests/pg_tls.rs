//! A real node over a PostgreSQL that accepts only TLS: with
//! `sslmode=verify-full` and the right CA it serves; trusting another CA it
//! does not start, and says why.

mod nodes;

use keyfence_testkit::{KeyfenceNode, NodeSpec, TempPostgres};
use nodes::{Nodes, Store};
use serde_json::json;

#[test]
fn a_node_reaches_postgres_over_verified_tls_and_refuses_an_untrusted_server() {
    let pg = TempPostgres::new_tls(&["localhost"]).unwrap();
    let url = |ca: &std::path::Path| {
        format!(
            "postgres://postgres@localhost:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
            pg.port(),
            ca.display().to_string().replace('/', "%2F")
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong, keyfence_testkit::unrelated_ca_pem().unwrap()).unwrap();
    let refused = KeyfenceNode::start(NodeSpec {
        bin: nodes::BIN.into(),
        data_dir: dir.path().join("refused"),
        store: url(&wrong),
        max_staleness_seconds: None,
    })
    .expect_err("a node trusting another CA started")
    .to_string();
    assert!(
        refused.contains("certificate") || refused.contains("issuer"),
        "{refused}"
    );

    let good = url(pg.ca_cert().unwrap());
    let n = Nodes::start_on(2, Store::Postgres(pg), &good, None);
    let key = n.create_key(0);
    n.until_all(&[1], std::time::Duration::from_secs(5), "key", |n, i| {
        n.key_state(i, &key).is_some()
    });
    let blob =
        n.ok(1, "Encrypt", json!({ "KeyId": key, "Plaintext": "eA==" }))["CiphertextBlob"].clone();
    n.ok(0, "Decrypt", json!({ "CiphertextBlob": blob }));
    let mut n = n;
    let plain = n
        .store
        .pg()
        .psql(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'keyfence' AND NOT ssl",
        )
        .unwrap();
    assert_eq!(plain.trim(), "0");
    n.stop();
}
