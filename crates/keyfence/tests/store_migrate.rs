//! `keyfence store migrate`: a SQLite node's keys, versions, aliases, tags
//! and imported material decrypt old ciphertexts on a node over PostgreSQL;
//! a key's policy and grants move with it (the policy still denies what it
//! denied, the grant still allows what it allowed).

use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_bench::connect::ConnectArgs;
use keyfence_core::service::CreateKeyInput;
use keyfence_core::EncryptionContext;
use keyfence_server::config::StoreLocation;
use keyfence_server::tls::ClientGroups;
use keyfence_server::{Config, Node};
use keyfence_testkit::TempPostgres;
use serde_json::{json, Value};

const A: &str = "111122223333";

async fn start(dir: &std::path::Path, store: StoreLocation) -> Node {
    Node::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum: false,
        credentials: Vec::new(),
        principals: Default::default(),
        store,
        max_staleness: Duration::from_secs(60),
        feed_retention: Duration::from_secs(900),
        audit: Default::default(),
        limits: Default::default(),
        root: Default::default(),
        node: None,
        default_fence: None,
    })
    .await
    .unwrap()
}

/// One KMS request over the wire to `node`, as the data directory's admin.
async fn call(node: &Node, data: &std::path::Path, op: &str, body: Value) -> (u16, Value) {
    let args = ConnectArgs {
        endpoint: format!("https://{}", node.api_addr),
        data_dir: Some(data.to_path_buf()),
        ca: None,
        access_key: None,
        secret_key: None,
        region: "us-east-1".into(),
    };
    let mut conn = args
        .context(ClientGroups::HybridOnly)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let reply = conn
        .json(&format!("TrentService.{op}"), &body)
        .await
        .unwrap();
    (reply.status, reply.json())
}

/// What the admin may do with `key`: Encrypt (refused by its policy),
/// GenerateDataKey (allowed only by its grant), its policy and its grants.
async fn authz_of(node: &Node, data: &std::path::Path, key: &str) -> (Value, Value, Value, Value) {
    let (_, encrypt) = call(
        node,
        data,
        "Encrypt",
        json!({"KeyId": key, "Plaintext": B64.encode(b"x")}),
    )
    .await;
    let (_, data_key) = call(
        node,
        data,
        "GenerateDataKey",
        json!({"KeyId": key, "KeySpec": "AES_256"}),
    )
    .await;
    let (_, policy) = call(node, data, "GetKeyPolicy", json!({"KeyId": key})).await;
    let (_, grants) = call(node, data, "ListGrants", json!({"KeyId": key})).await;
    (encrypt, data_key, policy, grants)
}

fn migrate(dir: &std::path::Path, url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyfence"))
        .args(["store", "migrate", "--from"])
        .arg(dir)
        .args(["--to", url])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_nodes_ciphertexts_decrypt_on_postgres_after_the_move() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ctx = EncryptionContext::default();
    let node = start(data.as_path(), StoreLocation::DataDir).await;
    let kms = node.kms.clone();
    let key = kms
        .create_key(
            A,
            CreateKeyInput {
                tags: vec![("team".into(), "a".into())],
                ..Default::default()
            },
        )
        .unwrap();
    kms.create_alias(A, "alias/app", &key.arn()).unwrap();
    let v1 = kms.encrypt(A, "alias/app", b"one", &ctx, None).unwrap();
    kms.rotate_key_on_demand(A, &key.arn()).unwrap();
    let v2 = kms.encrypt(A, "alias/app", b"two", &ctx, None).unwrap();
    // A restrictive policy (no Encrypt, Decrypt or GenerateDataKey for
    // anyone) and a grant giving the admin GenerateDataKey back.
    let key_id = key.id.to_string();
    let policy = json!({"Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "NotAction": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]})
    .to_string();
    let (status, body) = call(
        &node,
        &data,
        "PutKeyPolicy",
        json!({"KeyId": key_id, "Policy": policy}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, grant) = call(
        &node,
        &data,
        "CreateGrant",
        json!({"KeyId": key_id, "GranteePrincipal": "arn:aws:iam::111122223333:user/admin",
            "Operations": ["GenerateDataKey"], "Name": "migrated"}),
    )
    .await;
    assert_eq!(status, 200, "{grant}");
    let before = authz_of(&node, &data, &key_id).await;
    assert_eq!(before.0["__type"], "AccessDeniedException", "{}", before.0);
    assert!(before.1["CiphertextBlob"].is_string(), "{}", before.1);
    assert_eq!(before.2["Policy"], policy.as_str());
    assert_eq!(
        before.3["Grants"][0]["GrantId"], grant["GrantId"],
        "{}",
        before.3
    );
    drop(kms);
    node.shutdown().await;

    let pg = TempPostgres::new().unwrap();
    let url = pg.connection_string();
    let (ok, out) = tokio::task::spawn_blocking({
        let (d, u) = (data.as_path().to_path_buf(), url.clone());
        move || migrate(&d, &u)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("1 keys (2 versions), 1 aliases, 1 key policies, 1 grants"),
        "{out}"
    );
    let (ok, out) = tokio::task::spawn_blocking({
        let (d, u) = (data.as_path().to_path_buf(), url.clone());
        move || migrate(&d, &u)
    })
    .await
    .unwrap();
    assert!(!ok && out.contains("already holds"), "{out}");

    let node = start(data.as_path(), StoreLocation::Postgres(url)).await;
    let kms = node.kms.clone();
    for (blob, plain) in [(&v1, &b"one"[..]), (&v2, &b"two"[..])] {
        let out = kms.decrypt(A, &blob.ciphertext, &ctx, None, None).unwrap();
        assert_eq!(out.plaintext.expose(), plain);
    }
    let meta = kms.describe_key(A, "alias/app").unwrap();
    assert_eq!(meta.id, key.id);
    assert_eq!(meta.current_version, 2);
    assert_eq!(meta.tags.get("team").map(String::as_str), Some("a"));
    // The policy still denies Encrypt, the grant still allows GenerateDataKey.
    let after = authz_of(&node, &data, &key_id).await;
    assert_eq!(after.0["__type"], "AccessDeniedException", "{}", after.0);
    assert!(after.1["CiphertextBlob"].is_string(), "{}", after.1);
    assert_eq!(after.2, before.2);
    assert_eq!(after.3, before.3);
    drop(kms);
    node.shutdown().await;
}

/// `keyfence store migrate` copies in one transaction: killed (SIGKILL)
/// while its transaction is writing, it leaves the target empty, and a
/// second run copies everything.
#[test]
fn a_killed_migrate_leaves_the_target_empty_and_a_rerun_completes() {
    const KEYS: usize = 30_000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_keyfence"))
        .args(["store", "fill", "--data-dir"])
        .arg(&data)
        .args(["--count", &KEYS.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let pg = TempPostgres::new().unwrap();
    pg.create_database("target").unwrap();
    let url = pg.url_for("target");
    let count = |sql: &str| pg.psql_on("target", sql).unwrap().trim().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyfence"))
        .args(["store", "migrate", "--from"])
        .arg(&data)
        .args(["--to", &url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Its transaction has begun once it holds the lock on `keys`.
    let started = std::time::Instant::now();
    while count(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE c.relname = 'keys' AND l.mode = 'ExclusiveLock' AND l.granted",
    ) != "1"
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "migrate ended before it could be killed"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server ends the transaction of the vanished client.
    while count("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keyfence'") != "0"
    {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        count(
            "SELECT (SELECT count(*) FROM domain_keys) + (SELECT count(*) FROM keys) \
             + (SELECT count(*) FROM key_versions) + (SELECT count(*) FROM aliases)"
        ),
        "0"
    );

    let (ok, out) = migrate(&data, &url);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{KEYS} keys ({KEYS} versions)")),
        "{out}"
    );
    assert_eq!(count("SELECT count(*) FROM keys"), KEYS.to_string());
}
