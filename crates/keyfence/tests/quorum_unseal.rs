//! A quorum-sealed root through the real CLI and a real node process:
//! `keyfence init --shares 5 --threshold 3 --share-dir`, `keyfence server`
//! starting sealed (every KMS request refused), `keyfence unseal` one share
//! at a time (wrong, forged, repeated and malformed shares refused, progress
//! shown), KMS service once unsealed, `keyfence seal`, unseal again with
//! other shares, and a restart that starts sealed. A cluster of two
//! quorum-sealed nodes: each joins, opens its fences and forwards only once
//! unsealed, and a sealed satisfying node is forwarded around.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_bench::connect::ConnectArgs;
use keyfence_server::tls::ClientGroups;
use serde_json::{json, Value};

fn keyfence() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyfence"))
}

/// Runs the CLI; (success, stdout + stderr).
fn run(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = keyfence()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A `keyfence server` process, killed on drop.
struct Server {
    child: Child,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(config: &Path, data: &Path) -> Server {
    start_at(config, data, "node.addr.json")
}

/// Starts a node that publishes its address in `data/addr_file`.
fn start_at(config: &Path, data: &Path, addr_file: &str) -> Server {
    let addr_file = data.join(addr_file);
    let _ = std::fs::remove_file(&addr_file);
    let mut server = Server {
        child: keyfence()
            .args(["server", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        endpoint: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["pid"].as_u64() == Some(u64::from(server.child.id())) {
                server.endpoint = format!("https://{}", v["api"].as_str().unwrap());
                return server;
            }
        }
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn connect_args(server: &Server, data: &Path) -> ConnectArgs {
    ConnectArgs {
        endpoint: server.endpoint.clone(),
        data_dir: Some(data.to_path_buf()),
        ca: None,
        access_key: None,
        secret_key: None,
        region: "us-east-1".into(),
    }
}

fn kms(server: &Server, data: &Path, op: &str, body: Value) -> (u16, Value) {
    call(server, data, &format!("TrentService.{op}"), body)
}

/// One request with `X-Amz-Target: target` (KMS or admin API).
fn call(server: &Server, data: &Path, target: &str, body: Value) -> (u16, Value) {
    let args = connect_args(server, data);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = args
                .context(ClientGroups::HybridOnly)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let reply = conn.json(target, &body).await.unwrap();
            (reply.status, reply.json())
        })
}

fn admin(
    cmd: &str,
    server: &Server,
    data: &Path,
    extra: &[&str],
    stdin: Option<&str>,
) -> (bool, String) {
    let data = data.to_str().unwrap();
    let mut args = vec![cmd, "--endpoint", &server.endpoint, "--data-dir", data];
    args.extend_from_slice(extra);
    run(&args, stdin)
}

/// `keyfence init` of a quorum-sealed data directory, each share written to
/// its own file in `shares`; the command's output.
fn init_shamir(data: &Path, shares: &Path, count: u8, threshold: u8) -> String {
    let (count, threshold) = (count.to_string(), threshold.to_string());
    let (ok, out) = run(
        &[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--shares",
            &count,
            "--threshold",
            &threshold,
            "--share-dir",
            shares.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");
    out
}

fn share_file(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("share-{i}.txt"))
}

fn assert_sealed(server: &Server, data: &Path) {
    let (status, body) = kms(server, data, "ListKeys", json!({}));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["__type"], "DependencyTimeoutException", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("keyfence node is sealed: "),
        "{body}"
    );
}

#[test]
fn a_quorum_of_shares_unseals_the_node_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let shares = tmp.path().join("shares");
    let out = init_shamir(&data, &shares, 5, 3);
    assert!(out.contains("5 shares, 3 of which unseal it"), "{out}");
    assert!(
        !out.contains("kfshare1-"),
        "shares written to files are not printed: {out}"
    );
    assert!(!data.join("root.key").exists() && data.join("root.sealed").exists());
    let texts: Vec<String> = (1..=5)
        .map(|i| std::fs::read_to_string(share_file(&shares, i)).unwrap())
        .collect();
    for (i, t) in texts.iter().enumerate() {
        assert!(t.starts_with(&format!("kfshare1-0{}", i + 1)), "{t}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(share_file(&shares, i as u32 + 1))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
    // Another root's shares, for the wrong-share case.
    let other = tmp.path().join("other");
    let (ok, printed) = run(
        &[
            "init",
            "--data-dir",
            other.to_str().unwrap(),
            "--shares",
            "3",
            "--threshold",
            "2",
        ],
        None,
    );
    assert!(ok, "{printed}");
    let foreign = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("share 2: "))
        .expect("printed shares")
        .to_string();

    // `init` ran offline: its record waits in the data directory for the
    // first node with an audit log.
    let made: i64 = std::fs::read_to_string(data.join("init.pending"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let config = tmp.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nroot = \"shamir\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let server = start(&config, &data);
    assert_sealed(&server, &data);
    let (ok, out) = admin("seal-status", &server, &data, &[], None);
    assert!(
        ok && out.contains("sealed: 0 of 3 shares given (5 shares exist)"),
        "{out}"
    );

    let file = |i| share_file(&shares, i).to_str().unwrap().to_string();
    let (ok, out) = admin("unseal", &server, &data, &["--share-file", &file(1)], None);
    assert!(ok && out.contains("sealed: 1 of 3"), "{out}");
    // The same share again, another root's share, a forged one, junk.
    let (ok, out) = admin("unseal", &server, &data, &["--share-file", &file(1)], None);
    assert!(!ok && out.contains("share 1 was given already"), "{out}");
    let (ok, out) = admin("unseal", &server, &data, &[], Some(&foreign));
    assert!(
        !ok && out.contains("share 2 is not a valid share of this node's sealed root"),
        "{out}"
    );
    let mut forged = texts[2].trim().to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let (ok, out) = admin("unseal", &server, &data, &[], Some(&forged));
    assert!(!ok && out.contains("share 3 is not a valid share"), "{out}");
    let (ok, out) = admin("unseal", &server, &data, &[], Some("kfshare1-nothex\n"));
    assert!(!ok && out.contains("ValidationException"), "{out}");
    // The share from standard input.
    let (ok, out) = admin("unseal", &server, &data, &[], Some(&texts[3]));
    assert!(ok && out.contains("sealed: 2 of 3"), "{out}");
    assert_sealed(&server, &data);
    let (ok, out) = admin("unseal", &server, &data, &["--share-file", &file(5)], None);
    assert!(ok && out.contains("unsealed"), "{out}");
    let (ok, out) = admin("unseal", &server, &data, &["--share-file", &file(2)], None);
    assert!(!ok && out.contains("not sealed"), "{out}");

    let (status, created) = kms(&server, &data, "CreateKey", json!({}));
    assert_eq!(status, 200, "{created}");
    let key = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, enc) = kms(
        &server,
        &data,
        "Encrypt",
        json!({"KeyId": key, "Plaintext": B64.encode(b"quorum")}),
    );
    assert_eq!(status, 200, "{enc}");
    let blob = enc["CiphertextBlob"].clone();

    // Sealed again: every key forgotten until a quorum returns.
    let (ok, out) = admin("seal", &server, &data, &[], None);
    assert!(ok && out.contains("sealed: 0 of 3"), "{out}");
    assert_sealed(&server, &data);
    let (status, _) = kms(&server, &data, "Decrypt", json!({"CiphertextBlob": blob}));
    assert_eq!(status, 503);
    for i in [2, 3, 5] {
        let (ok, out) = admin("unseal", &server, &data, &["--share-file", &file(i)], None);
        assert!(ok, "{out}");
    }
    // The key's last use outlives the seal: saved when sealing, loaded again.
    let (status, usage) = kms(&server, &data, "GetKeyLastUsage", json!({"KeyId": key}));
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["KeyLastUsage"]["Operation"], "Encrypt", "{usage}");
    let (status, dec) = kms(&server, &data, "Decrypt", json!({"CiphertextBlob": blob}));
    assert_eq!(
        (status, dec["Plaintext"].clone()),
        (200, json!(B64.encode(b"quorum")))
    );

    // A restart starts sealed; another quorum opens the same keys.
    drop(server);
    let server = start(&config, &data);
    assert_sealed(&server, &data);
    for i in [4, 1, 3] {
        let (ok, out) = admin("unseal", &server, &data, &["--share-file", &file(i)], None);
        assert!(ok, "{out}");
    }
    let (status, dec) = kms(&server, &data, "Decrypt", json!({"CiphertextBlob": blob}));
    assert_eq!(
        (status, dec["Plaintext"].clone()),
        (200, json!(B64.encode(b"quorum")))
    );

    // The offline init is the log's first record, stamped when it ran, once
    // across the restart; its marker is gone.
    assert!(!data.join("init.pending").exists());
    let (ok, events) = run(
        &["audit", "export", "--data-dir", data.to_str().unwrap()],
        None,
    );
    assert!(ok, "{events}");
    let events: Vec<Value> = events
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The log ran while the node was sealed: every unseal attempt, refused
    // ones with their error, and every KMS request refused while sealed.
    let count = |name: &str, error: Value| {
        events
            .iter()
            .filter(|e| e["eventName"] == name && e["errorCode"] == error)
            .count()
    };
    assert_eq!(count("Unseal", Value::Null), 9, "{events:?}");
    assert_eq!(count("Unseal", json!("IncorrectKeyException")), 2);
    assert_eq!(count("Unseal", json!("KMSInvalidStateException")), 2);
    assert_eq!(count("Unseal", json!("ValidationException")), 1);
    assert_eq!(count("ListKeys", json!("DependencyTimeoutException")), 4);
    assert_eq!(count("Decrypt", json!("DependencyTimeoutException")), 1);
    assert_eq!(count("Unsealed", Value::Null), 3);
    let inits: Vec<&Value> = events.iter().filter(|e| e["eventName"] == "Init").collect();
    assert_eq!(inits.len(), 1, "{events:?}");
    assert_eq!(events[0]["eventName"], "Init", "{:?}", events[0]);
    let stamped = time::OffsetDateTime::parse(
        events[0]["eventTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        stamped.unix_timestamp_nanos() / 1_000_000,
        i128::from(made),
        "{:?}",
        events[0]
    );
}

#[test]
fn init_refuses_bad_splits_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (shares, threshold) in [("3", "4"), ("3", "1"), ("300", "2")] {
        let (ok, out) = run(
            &[
                "init",
                "--data-dir",
                data.to_str().unwrap(),
                "--shares",
                shares,
                "--threshold",
                threshold,
            ],
            None,
        );
        assert!(!ok, "{shares}/{threshold}: {out}");
        assert!(!data.exists(), "nothing written for a refused split");
    }
    let (ok, out) = run(
        &[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--threshold",
            "2",
        ],
        None,
    );
    assert!(!ok, "{out}");
}

/// Polls `f` (a request) until it answers 200, for at most 30 s; the last answer.
fn until_ok(mut f: impl FnMut() -> (u16, Value)) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = f();
        if answer.0 == 200 || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_quorum_sealed_cluster_joins_and_serves_fenced_keys_only_once_unsealed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let shares = tmp.path().join("shares");
    init_shamir(&data, &shares, 3, 2);
    let file = |i| share_file(&shares, i).to_str().unwrap().to_string();
    // Two cluster nodes over the one data directory and its store (as in
    // `keyfence dev`): a, the authority, with no attributes; b, in DE.
    let node = |name: &str, extra: &str| {
        let config = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\
                 root = \"shamir\"\n[node]\nname = \"{name}\"\n{extra}",
                data.to_str().unwrap()
            ),
        )
        .unwrap();
        start_at(&config, &data, &format!("node-{name}.addr.json"))
    };
    let a = node("a", "authority = true\n");
    let b = node("b", "attributes = { country = \"DE\" }\n");
    for n in [&a, &b] {
        assert_sealed(n, &data);
        // The cluster's admin API waits for the root as well.
        let (status, body) = call(n, &data, "KeyfenceAdmin.ListNodes", json!({}));
        assert_eq!(status, 503, "{body}");
    }
    let unseal = |n: &Server, i: u32| {
        let (ok, out) = admin("unseal", n, &data, &["--share-file", &file(i)], None);
        assert!(ok, "{out}");
        out
    };
    unseal(&a, 1);
    assert!(unseal(&a, 2).contains("unsealed"));
    // a made the authority on unsealing; b, still sealed, has not joined:
    // its identity is sealed under the root it does not hold yet.
    let names = |n: &Server| {
        let (status, body) = call(n, &data, "KeyfenceAdmin.ListNodes", json!({}));
        assert_eq!(status, 200, "{body}");
        let mut names: Vec<String> = body["Nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                format!(
                    "{} {}",
                    n["Name"].as_str().unwrap(),
                    n["State"].as_str().unwrap()
                )
            })
            .collect();
        names.sort();
        names
    };
    let approve = |name: &str| {
        let (ok, out) = run(
            &[
                "node",
                "approve",
                name,
                "--endpoint",
                &a.endpoint,
                "--data-dir",
                data.to_str().unwrap(),
            ],
            None,
        );
        assert!(ok && out.contains(&format!("approved {name}")), "{out}");
    };
    assert_eq!(names(&a), ["a PENDING"]);
    approve("a");
    assert_eq!(names(&a), ["a APPROVED"]);
    unseal(&b, 3);
    assert!(unseal(&b, 1).contains("unsealed"));
    assert_eq!(names(&a), ["a APPROVED", "b PENDING"]);
    approve("b");

    // A key fenced to DE: made at b (a forwards its CreateKey, the material
    // never exists at a), used from a through b.
    let tags = json!([{"TagKey": "keyfence:fence", "TagValue": "country: DE"}]);
    let (status, created) = until_ok(|| kms(&a, &data, "CreateKey", json!({"Tags": tags})));
    assert_eq!(status, 200, "{created}");
    let key = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let encrypt = |n: &Server| {
        kms(
            n,
            &data,
            "Encrypt",
            json!({"KeyId": key, "Plaintext": B64.encode(b"fenced")}),
        )
    };
    let (status, enc) = until_ok(|| encrypt(&a));
    assert_eq!(status, 200, "{enc}");
    let (status, dec) = kms(
        &b,
        &data,
        "Decrypt",
        json!({"CiphertextBlob": enc["CiphertextBlob"]}),
    );
    assert_eq!(
        (status, dec["Plaintext"].clone()),
        (200, json!(B64.encode(b"fenced")))
    );

    // b sealed: it answers forwarded requests that it is sealed, and a, with
    // no other satisfying node, says the key is out of reach (naming the
    // fence) rather than passing on b's seal.
    let (ok, out) = admin("seal", &b, &data, &[], None);
    assert!(ok, "{out}");
    let (status, refused) = encrypt(&a);
    assert_eq!(
        (status, refused["__type"].as_str()),
        (400, Some("KeyUnavailableException")),
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("fenced to 'country: DE'"),
        "{refused}"
    );
    // Unsealed again (other shares), b serves the key for a once more.
    unseal(&b, 2);
    unseal(&b, 3);
    let (status, enc) = until_ok(|| encrypt(&a));
    assert_eq!(status, 200, "{enc}");
}
