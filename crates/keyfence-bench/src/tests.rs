//! Tiny benchmarks against a real node started in-process.

use std::path::Path;
use std::time::SystemTime;

use clap::Parser;
use keyfence_server::{Config, Node};
use serde_json::Value;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

async fn start_node(dir: &Path, post_quantum: bool) -> Node {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum,
        credentials: Vec::new(),
        principals: Default::default(),
        node: None,
        default_fence: None,
        store: keyfence_server::config::StoreLocation::DataDir,
        max_staleness: std::time::Duration::from_secs(60),
        feed_retention: std::time::Duration::from_secs(900),
        audit: Default::default(),
        limits: Default::default(),
        root: Default::default(),
    };
    Node::start(config).await.expect("node starts")
}

/// `keyfence bench` arguments for `node`, plus `extra`.
fn args(node: &Node, extra: &[&str]) -> BenchArgs {
    let endpoint = format!("https://127.0.0.1:{}", node.api_addr.port());
    let metrics = format!("http://{}", node.metrics_addr);
    let data_dir = node.data_dir.path.display().to_string();
    let mut argv = vec![
        "bench",
        "--endpoint",
        &endpoint,
        "--data-dir",
        &data_dir,
        "--metrics",
        &metrics,
    ];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).expect("arguments parse").bench
}

fn assert_ordered(latency: &Value) {
    let get = |k: &str| {
        latency[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {latency}"))
    };
    let seq = [
        get("min"),
        get("p50"),
        get("p90"),
        get("p99"),
        get("p99_9"),
        get("max"),
    ];
    assert!(seq.windows(2).all(|w| w[0] <= w[1]), "{latency}");
    assert!(seq[0] >= 1, "{latency}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_closed_loop_against_a_real_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("d"), false).await;
    let a = args(
        &node,
        &[
            "--workload",
            "encrypt",
            "--connections",
            "4",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--payload-size",
            "100",
        ],
    );
    let report = run(a, "keyfence bench (test)".into(), false).await.unwrap();
    let v = report.to_json();
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["ok"].as_u64().unwrap() > 20, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["errors_by_type"], serde_json::json!({}), "{v}");
    assert_ordered(&v["latency_us"]);
    let ops = v["ops_per_s"].as_f64().unwrap();
    let ok = v["ok"].as_f64().unwrap();
    let elapsed = v["elapsed_s"].as_f64().unwrap();
    assert!((1.0..3.0).contains(&elapsed), "{v}");
    assert!((ops - ok / elapsed).abs() < 1.0, "{v}");
    assert_eq!(v["mode"], "closed");
    assert_eq!(v["payload_size"], 100);
    assert_eq!(v["key_spec"], "SYMMETRIC_DEFAULT");
    assert_eq!(v["connections"], 4);
    assert_eq!(v["command"], "keyfence bench (test)");
    assert!(
        v["key_id"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:kms:us-east-1:"),
        "{v}"
    );
    let mem = &v["node_resident_memory_bytes"];
    assert!(mem["before"].as_u64().unwrap() > 1 << 20, "{v}");
    assert!(mem["after"].as_u64().unwrap() > 1 << 20, "{v}");
    let text = report.to_text();
    assert!(text.contains("throughput"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
    // The benchmark key was scheduled for deletion afterwards.
    let key = v["key_id"].as_str().unwrap();
    let pending = node
        .kms
        .describe_key("111122223333", key)
        .map(|m| format!("{m:?}"))
        .unwrap_or_default();
    assert!(pending.contains("PendingDeletion"), "{pending}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_open_loop_over_http2_keeps_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("d"), false).await;
    let a = args(
        &node,
        &[
            "--workload",
            "mixed",
            "--http2",
            "--connections",
            "2",
            "--streams",
            "3",
            "--rate",
            "200",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--post-quantum",
        ],
    );
    let report = run(a, "test".into(), false).await.unwrap();
    let v = report.to_json();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["mode"], "open");
    assert_eq!(v["scheduled"], 200, "{v}");
    assert_eq!(v["missed"], 0, "{v}");
    assert_eq!(v["ok"], 200, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["http"], "HTTP/2");
    assert_eq!(v["streams_per_connection"], 3);
    assert_ordered(&v["latency_us"]);
    // Open loop: the run lasts the schedule, not less.
    assert!(v["elapsed_s"].as_f64().unwrap() >= 0.99, "{v}");
    let ops: Vec<(String, u64)> = v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["operation"].as_str().unwrap().to_string(),
                o["ok"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("Encrypt".to_string(), 80),
            ("Decrypt".to_string(), 80),
            ("GenerateDataKey".to_string(), 40)
        ]
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_compare_classical_and_hybrid() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("d"), false).await;
    let a = args(
        &node,
        &[
            "--workload",
            "handshakes",
            "--connections",
            "2",
            "--duration",
            "500ms",
        ],
    );
    let report = run(a, "test".into(), false).await.unwrap();
    let v = report.to_json();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups[0]["group"], "X25519", "{v}");
    assert_eq!(groups[1]["group"], "X25519MLKEM768", "{v}");
    for g in groups {
        assert!(g["handshakes"].as_u64().unwrap() > 3, "{v}");
        assert_eq!(g["errors_by_type"], serde_json::json!({}), "{v}");
        assert_ordered(&g["latency_us"]);
    }
    let (c, h) = (&groups[0], &groups[1]);
    // An ML-KEM-768 encapsulation key is 1184 bytes, an X25519 share 32.
    let (ch, hh) = (
        c["client_hello_bytes"].as_u64().unwrap(),
        h["client_hello_bytes"].as_u64().unwrap(),
    );
    assert!(ch > 100 && ch < 600, "{v}");
    assert!(hh > ch + 1150, "{v}");
    // The node answers with a 1088-byte ML-KEM ciphertext.
    assert!(
        h["handshake_bytes_received"].as_u64().unwrap()
            > c["handshake_bytes_received"].as_u64().unwrap() + 1000,
        "{v}"
    );
    assert!(
        v["client_hello_bytes_default_client"].as_u64().unwrap() > hh,
        "{v}"
    );
    assert!(
        v["hybrid_over_classical"]["rate"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    // The node counted both groups.
    let scrape = client::resident_memory(&format!("http://{}", node.metrics_addr)).await;
    assert!(scrape.is_ok());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_node_refuses_classical_handshakes_and_they_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("d"), true).await;
    let mut a = args(
        &node,
        &[
            "--workload",
            "handshakes",
            "--connections",
            "1",
            "--duration",
            "200ms",
        ],
    );
    a.metrics = Some("none".into());
    let report = run(a, "test".into(), false).await.unwrap();
    let v = report.to_json();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups[0]["handshakes"], 0, "{v}");
    let refused: u64 = groups[0]["errors_by_type"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(refused > 0, "{v}");
    assert!(groups[1]["handshakes"].as_u64().unwrap() > 0, "{v}");
    assert!(v.get("node_resident_memory_bytes").is_none());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_is_measured_or_reported_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("d"), false).await;
    let a = args(
        &node,
        &[
            "--workload",
            "sign",
            "--connections",
            "1",
            "--duration",
            "200ms",
            "--warmup",
            "0s",
        ],
    );
    let report = run(a, "test".into(), false).await.unwrap();
    let v = report.to_json();
    match v["status"].as_str().unwrap() {
        "unsupported" => {
            let code = v["unsupported"]["error_type"].as_str().unwrap();
            assert!(
                ["UnsupportedOperationException", "ValidationException"].contains(&code),
                "{v}"
            );
            assert!(report.to_text().contains("UNSUPPORTED"));
        }
        "ok" => {
            assert!(v["ok"].as_u64().unwrap() > 0, "{v}");
            assert_eq!(v["errors"], 0, "{v}");
            assert_eq!(v["key_spec"], "ECC_NIST_P256");
            assert_eq!(v["signing_algorithm"], "ECDSA_SHA_256");
        }
        s => panic!("status {s}: {v}"),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_aws_type() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("d"), false).await;
    // A real key, then a run whose requests name a key that does not exist.
    let a = args(
        &node,
        &[
            "--workload",
            "generate-data-key",
            "--connections",
            "2",
            "--duration",
            "200ms",
            "--warmup",
            "0s",
            "--key-id",
            "alias/does-not-exist",
        ],
    );
    match run(a, "test".into(), false).await {
        Err(e) => assert!(e.contains("NotFoundException"), "{e}"),
        Ok(r) => panic!("{}", r.to_json()),
    }
    // A wrong secret is refused with the AWS error type.
    let mut a = args(&node, &["--duration", "200ms", "--warmup", "0s"]);
    a.connect.access_key = Some("AKIAEXAMPLEEXAMPLE00".into());
    a.connect.secret_key = Some("wrong".into());
    match run(a, "test".into(), false).await {
        Err(e) => assert!(e.contains("UnrecognizedClientException"), "{e}"),
        Ok(r) => panic!("{}", r.to_json()),
    }
    node.shutdown().await;
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
    assert!(parse_duration("10h").is_err());
    assert!(parse_duration("-1s").is_err());
    assert!(parse_duration("x").is_err());
}

/// A stand-in for a plain-HTTP peer such as moto: it checks every SigV4 signature,
/// answers Encrypt with the plaintext as "ciphertext" (and Decrypt the reverse),
/// and closes the connection after each response, as werkzeug's server does.
async fn fake_peer(
    credential: keyfence_server::sigv4::Credential,
) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{Request, Response};
    use keyfence_server::sigv4::CredentialStore;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Arc::new(CredentialStore::new([credential]).unwrap());
    let bad = Arc::new(AtomicU64::new(0));
    let bad2 = Arc::clone(&bad);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (store, bad) = (Arc::clone(&store), Arc::clone(&bad2));
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (store, bad) = (Arc::clone(&store), Arc::clone(&bad));
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await?.to_bytes();
                    if keyfence_server::sigv4::verify(&parts, &body, &store, SystemTime::now())
                        .is_err()
                    {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    let target = parts.headers["x-amz-target"].to_str().unwrap_or("");
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let out = match target {
                        "TrentService.CreateKey" => {
                            serde_json::json!({"KeyMetadata": {"Arn": "arn:aws:kms:us-east-1:000000000000:key/fake", "KeyId": "fake"}})
                        }
                        "TrentService.Encrypt" => {
                            serde_json::json!({"CiphertextBlob": v["Plaintext"]})
                        }
                        "TrentService.Decrypt" => {
                            serde_json::json!({"Plaintext": v["CiphertextBlob"]})
                        }
                        _ => serde_json::json!({}),
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(out.to_string())));
                    resp.headers_mut()
                        .insert("connection", "close".parse().unwrap());
                    Ok::<_, hyper::Error>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
            );
        }
    });
    (addr, bad)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_peer_that_closes_connections() {
    let credential = keyfence_server::datadir::generate_credential().unwrap();
    let (id, secret) = (
        credential.access_key_id.clone(),
        credential.secret_access_key.to_string(),
    );
    let (addr, bad_signatures) = fake_peer(credential).await;
    let endpoint = format!("http://{addr}");
    let argv = [
        "bench",
        "--endpoint",
        &endpoint,
        "--access-key",
        &id,
        "--secret-key",
        &secret,
        "--metrics",
        "none",
        "--connections",
        "3",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
    ];
    let a = Cli::try_parse_from(argv).unwrap().bench;
    let report = run(a, "test".into(), false).await.unwrap();
    let v = report.to_json();
    assert_eq!(v["transport"], "plain HTTP", "{v}");
    assert!(v["ok"].as_u64().unwrap() > 10, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    // Every request after a connection's first needed a new connection.
    let reconnects = v["reconnects"].as_u64().unwrap();
    assert!(reconnects + 3 >= v["ok"].as_u64().unwrap(), "{v}");
    assert_eq!(bad_signatures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_against_nothing_fails_fast_with_connection_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    keyfence_server::datadir::DataDir::init(&data).unwrap();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("https://127.0.0.1:{port}");
    for workload in ["encrypt", "handshakes"] {
        let a = Cli::try_parse_from([
            "bench",
            "--endpoint",
            &endpoint,
            "--data-dir",
            data.to_str().unwrap(),
            "--workload",
            workload,
            "--duration",
            "20s",
        ])
        .unwrap()
        .bench;
        let started = std::time::Instant::now();
        let err = match run(a, "test".into(), false).await {
            Ok(report) => panic!("{workload} must fail: {}", report.to_text()),
            Err(e) => e,
        };
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{workload} took {:?}",
            started.elapsed()
        );
        assert_eq!(
            err,
            format!("connection refused at {endpoint}: is the node running there?")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_default_to_the_address_the_node_published() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("d"), false).await;
    let endpoint = format!("https://127.0.0.1:{}", node.api_addr.port());
    let data_dir = node.data_dir.path.display().to_string();
    let a = Cli::try_parse_from([
        "bench",
        "--endpoint",
        &endpoint,
        "--data-dir",
        &data_dir,
        "--connections",
        "1",
        "--duration",
        "200ms",
        "--warmup",
        "0s",
    ])
    .unwrap()
    .bench;
    assert_eq!(a.metrics, None);
    let report = run(a, "test".into(), false).await.unwrap();
    let memory = report.memory.as_ref().expect("memory read");
    assert!(
        memory
            .source
            .ends_with(&format!("http://{}", node.metrics_addr)),
        "{}",
        memory.source
    );
    assert!(memory.before.is_ok() && memory.after.is_ok(), "{memory:?}");
    node.shutdown().await;
}

#[test]
fn metrics_url_falls_back_to_none_without_a_published_address() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(metrics_url(None, Some(dir.path())), "none");
    assert_eq!(metrics_url(None, None), "none");
    assert_eq!(
        metrics_url(Some("http://10.0.0.1:9464"), Some(dir.path())),
        "http://10.0.0.1:9464"
    );
    std::fs::write(
        dir.path().join(keyfence_server::node::ADDR_FILE),
        r#"{"api":"127.0.0.1:1","metrics":"127.0.0.1:2","pid":1}"#,
    )
    .unwrap();
    assert_eq!(metrics_url(None, Some(dir.path())), "http://127.0.0.1:2");
}

#[test]
fn an_unreachable_metrics_endpoint_is_one_short_note() {
    let mut report = Report {
        setup: Setup::default(),
        outcome: Outcome::Unsupported {
            operation: "Sign".into(),
            code: "UnsupportedOperationException".into(),
            message: "test".into(),
        },
        memory: Some(Memory {
            source: "process_resident_memory_bytes from http://127.0.0.1:9".into(),
            before: Err("http://127.0.0.1:9: Connection refused (os error 111)".into()),
            after: Err("http://127.0.0.1:9: Connection refused (os error 111)".into()),
        }),
        cpu: None,
        reconnects: 0,
    };
    let text = report.to_text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("node memory")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(!lines[0].contains("os error"), "{text}");
    report.memory = None;
    assert!(!report.to_text().contains("node memory"));
}
