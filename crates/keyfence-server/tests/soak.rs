//! Soak: a legitimate client keeps working while, for the whole run, attackers
//! without credentials hold silent connections, dribble slow headers, flood
//! HTTP/2 streams with bodies they never finish, and send wrongly signed
//! requests. Every sample interval it records the legitimate client's p99
//! latency, its errors, and the node's resident memory and open descriptors.
//!
//! In CI (`cargo test`) it runs 30 s against a node in this process (so the
//! memory and descriptors counted include the attackers' side). The long run
//! is `scripts/soak.sh`, which starts the release node as its own process and
//! points this test at it: `KEYFENCE_SOAK_DATA_DIR` (the node's data
//! directory; its `node.addr.json` gives the addresses and the pid) and
//! `KEYFENCE_SOAK_SECS` (the duration).

mod support;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyfence_server::datadir::DataDir;
use keyfence_server::limits::Limits;
use keyfence_server::sigv4::{self, SigningParams};
use keyfence_server::tls::{self, ClientGroups};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use support::{Client, Signer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Legitimate closed-loop workers, each on its own keep-alive connection.
const WORKERS: usize = 2;
/// Silent TCP connections held open at all times.
const SILENT: usize = 200;
/// Slow-loris connections (one header byte every 500 ms).
const LORIS: usize = 20;
/// HTTP/2 flood connections, each with 64 stalled streams.
const FLOODS: usize = 4;
/// Clients sending wrongly signed requests, closed loop.
const BAD_SIGNERS: usize = 2;

/// The node under test.
struct Target {
    client: Client,
    signer: Signer,
    pid: u32,
    _node: Option<keyfence_server::Node>,
    _dir: Option<tempfile::TempDir>,
}

async fn target() -> Target {
    if let Ok(dir) = std::env::var("KEYFENCE_SOAK_DATA_DIR") {
        let (data_dir, _) = DataDir::open_or_init(std::path::Path::new(&dir)).unwrap();
        let addrs: Value = serde_json::from_slice(
            &std::fs::read(data_dir.path.join(keyfence_server::node::ADDR_FILE)).unwrap(),
        )
        .unwrap();
        let c = data_dir.load_credentials().unwrap().remove(0);
        return Target {
            client: Client {
                addr: addrs["api"].as_str().unwrap().parse().unwrap(),
                config: tls::client_config(&data_dir.pki.ca_cert, ClientGroups::Default).unwrap(),
            },
            signer: Signer {
                access_key_id: c.access_key_id.clone(),
                secret: c.secret_access_key.to_string(),
                region: "us-east-1".into(),
                time: SystemTime::now(),
            },
            pid: addrs["pid"].as_u64().unwrap() as u32,
            _node: None,
            _dir: None,
        };
    }
    let dir = tempfile::tempdir().unwrap();
    let node = support::start_node_with(
        &dir.path().join("data"),
        false,
        Limits {
            header_read_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(3),
            request_bytes_budget: 8 * 1024 * 1024,
            budget_wait: Duration::from_millis(500),
            memory_trim_interval: Duration::from_secs(1),
            ..Limits::default()
        },
    )
    .await;
    Target {
        client: Client::new(&node, ClientGroups::Default),
        signer: Signer::of(&node),
        pid: std::process::id(),
        _node: Some(node),
        _dir: Some(dir),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// A keep-alive HTTP/1.1 connection to the node.
async fn keep_alive(client: &Client) -> Result<SendRequest<Full<Bytes>>, String> {
    let tls = client.connect().await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one signed KMS request on `sender`: the status and the JSON reply.
async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    signer: &Signer,
    operation: &str,
    body: &Value,
) -> Result<(u16, Value), String> {
    let body = serde_json::to_vec(body).unwrap();
    let (mut parts, ()) = Request::post("https://localhost/")
        .header("x-amz-target", format!("TrentService.{operation}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(())
        .unwrap()
        .into_parts();
    sigv4::sign(
        &mut parts,
        &body,
        &SigningParams {
            access_key_id: &signer.access_key_id,
            secret_access_key: &signer.secret,
            region: &signer.region,
            service: "kms",
            time: SystemTime::now(),
        },
    )
    .unwrap();
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(Request::from_parts(parts, Full::new(Bytes::from(body))))
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// What the legitimate client saw.
#[derive(Default)]
struct Seen {
    latencies: Mutex<Vec<Duration>>,
    requests: AtomicU64,
    errors: Mutex<Vec<String>>,
}

async fn legitimate(client: Arc<Client>, signer: Signer, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let mut sender = keep_alive(&client).await.unwrap();
    let (status, key) = call(&mut sender, &signer, "CreateKey", &json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{key}");
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let encrypt = json!({"KeyId": key_id, "Plaintext": "c29hayB0ZXN0IHBheWxvYWQ=",
                         "EncryptionContext": {"purpose": "soak"}});
    let (_, blob) = call(&mut sender, &signer, "Encrypt", &encrypt)
        .await
        .unwrap();
    let decrypt = json!({"CiphertextBlob": blob["CiphertextBlob"],
                         "EncryptionContext": {"purpose": "soak"}});
    let data_key = json!({"KeyId": key_id, "KeySpec": "AES_256"});
    let describe = json!({"KeyId": key_id});
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (op, body) = match i % 4 {
            0 => ("Encrypt", &encrypt),
            1 => ("Decrypt", &decrypt),
            2 => ("GenerateDataKey", &data_key),
            _ => ("DescribeKey", &describe),
        };
        i += 1;
        let started = Instant::now();
        let outcome = call(&mut sender, &signer, op, body).await;
        let took = started.elapsed();
        seen.requests.fetch_add(1, Ordering::Relaxed);
        seen.latencies.lock().unwrap().push(took);
        match outcome {
            Ok((200, _)) => {}
            Ok((status, reply)) => seen
                .errors
                .lock()
                .unwrap()
                .push(format!("{op}: {status} {reply}")),
            Err(e) => {
                seen.errors.lock().unwrap().push(format!("{op}: {e}"));
                sender = keep_alive(&client).await.unwrap();
            }
        }
    }
}

/// Holds a TCP connection that says nothing; when the node closes it, opens another.
async fn silent(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, closed: Arc<AtomicU64>) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tcp) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            tokio::select! {
                r = tcp.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break },
                () = tokio::time::sleep(Duration::from_millis(250)) => {
                    if stop.load(Ordering::Relaxed) { return; }
                }
            }
        }
        closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends a header one byte every 500 ms; when the node gives up, starts over.
async fn slow_loris(client: Arc<Client>, stop: Arc<AtomicBool>, closed: Arc<AtomicU64>) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tls) = client.connect().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if tls
            .write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .is_err()
        {
            continue;
        }
        loop {
            tokio::select! {
                r = tls.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break },
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    if stop.load(Ordering::Relaxed) { return; }
                    if tls.write_all(b"x").await.is_err() { break; }
                    let _ = tls.flush().await;
                }
            }
        }
        closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A body that sends one chunk and then never finishes.
struct Stalled(Option<Bytes>);

impl Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}

/// Opens an HTTP/2 connection with 64 streams promising 128 KiB bodies and
/// sending 64 KiB; when every stream is answered, starts over.
async fn h2_flood(client: Arc<Client>, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    let mut config = (*client.config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    while !stop.load(Ordering::Relaxed) {
        let Ok(tcp) = TcpStream::connect(client.addr).await else {
            continue;
        };
        let Ok(tls) = TlsConnector::from(Arc::clone(&config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        else {
            continue;
        };
        let Ok((sender, conn)) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await
        else {
            continue;
        };
        let conn = tokio::spawn(conn);
        let mut streams = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let mut sender = sender.clone();
            let chunk = chunk.clone();
            streams.spawn(async move {
                let req = Request::post("https://localhost/")
                    .header("x-amz-target", "TrentService.Encrypt")
                    .header("content-type", "application/x-amz-json-1.1")
                    .header("content-length", "131072")
                    .body(Stalled(Some(chunk)))
                    .unwrap();
                let _ = sender.send_request(req).await;
            });
        }
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_secs(30), streams.join_next()).await
        {
            answered.fetch_add(1, Ordering::Relaxed);
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        streams.abort_all();
        conn.abort();
    }
}

/// Sends ListKeys signed with a wrong secret, closed loop, on keep-alive connections.
async fn bad_signer(
    client: Arc<Client>,
    mut signer: Signer,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
) {
    signer.secret = "not-the-secret-not-the-secret-not-the-sec".into();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut sender) = keep_alive(&client).await else {
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            match call(&mut sender, &signer, "ListKeys", &json!({})).await {
                Ok((400, reply)) => {
                    assert_eq!(reply["__type"], "InvalidSignatureException", "{reply}");
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                // Refused before its signature was read: the budget was full.
                Ok((503, reply)) => assert_eq!(reply["__type"], "ThrottlingException"),
                Ok((status, reply)) => panic!("a wrong signature got {status} {reply}"),
                Err(_) => break,
            }
        }
    }
}

fn p99(latencies: &mut [Duration]) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

/// One row of the record.
struct Sample {
    at: Duration,
    requests: usize,
    p99: Duration,
    errors: usize,
    rss_kib: u64,
    fds: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legitimate_client_is_served_through_mixed_attacks() {
    let secs: u64 = std::env::var("KEYFENCE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let interval = Duration::from_secs((secs / 60).max(1));
    let target = target().await;
    let client = Arc::new(Client {
        addr: target.client.addr,
        config: Arc::clone(&target.client.config),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let counters: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let rss_start = rss_kib(target.pid);
    let fds_start = open_fds(target.pid);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        tasks.spawn(legitimate(
            Arc::clone(&client),
            target.signer.clone(),
            Arc::clone(&seen),
            Arc::clone(&stop),
        ));
    }
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..SILENT {
        attackers.spawn(silent(
            client.addr,
            Arc::clone(&stop),
            Arc::clone(&counters[0]),
        ));
    }
    for _ in 0..LORIS {
        attackers.spawn(slow_loris(
            Arc::clone(&client),
            Arc::clone(&stop),
            Arc::clone(&counters[1]),
        ));
    }
    for _ in 0..FLOODS {
        attackers.spawn(h2_flood(
            Arc::clone(&client),
            Arc::clone(&stop),
            Arc::clone(&counters[2]),
        ));
    }
    for _ in 0..BAD_SIGNERS {
        attackers.spawn(bad_signer(
            Arc::clone(&client),
            target.signer.clone(),
            Arc::clone(&stop),
            Arc::clone(&counters[3]),
        ));
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut errors_seen = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(interval).await;
        let mut window = std::mem::take(&mut *seen.latencies.lock().unwrap());
        let errors = seen.errors.lock().unwrap().len();
        samples.push(Sample {
            at: started.elapsed(),
            requests: window.len(),
            p99: p99(&mut window),
            errors: errors - errors_seen,
            rss_kib: rss_kib(target.pid),
            fds: open_fds(target.pid),
        });
        errors_seen = errors;
    }
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while attackers.join_next().await.is_some() {}
    })
    .await;
    attackers.abort_all();

    eprintln!(
        "| t (s) | legit requests | legit p99 (ms) | legit errors | node RSS (MiB) | open fds |"
    );
    eprintln!("|---:|---:|---:|---:|---:|---:|");
    for s in &samples {
        eprintln!(
            "| {} | {} | {:.1} | {} | {:.1} | {} |",
            s.at.as_secs(),
            s.requests,
            s.p99.as_secs_f64() * 1e3,
            s.errors,
            s.rss_kib as f64 / 1024.0,
            s.fds
        );
    }
    let total = seen.requests.load(Ordering::Relaxed);
    let mut all: Vec<Duration> = samples.iter().map(|s| s.p99).collect();
    let worst_p99 = *all.iter().max().unwrap();
    let half = samples.len() / 2;
    let rss_mid = samples[half.max(1) - 1].rss_kib;
    let rss_end = samples.last().unwrap().rss_kib;
    let fds_max = samples.iter().map(|s| s.fds).max().unwrap();
    eprintln!(
        "soak {secs} s: legit {total} requests ({:.0}/s), errors {}, worst window p99 {:.1} ms, median window p99 {:.1} ms; \
         RSS start {rss_start} KiB, mid {rss_mid} KiB, end {rss_end} KiB; fds start {fds_start}, max {fds_max}; \
         attackers: {} silent connections closed by the node, {} slow-loris closed, {} flood streams answered, {} bad signatures refused",
        total as f64 / secs as f64,
        seen.errors.lock().unwrap().len(),
        worst_p99.as_secs_f64() * 1e3,
        p99_median(&mut all).as_secs_f64() * 1e3,
        counters[0].load(Ordering::Relaxed),
        counters[1].load(Ordering::Relaxed),
        counters[2].load(Ordering::Relaxed),
        counters[3].load(Ordering::Relaxed),
    );

    let errors = seen.errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "the legitimate client saw errors: {errors:?}"
    );
    assert!(
        samples.iter().all(|s| s.requests > 0),
        "the legitimate client was served in every interval"
    );
    assert!(worst_p99 < Duration::from_secs(2), "p99 {worst_p99:?}");
    // Memory does not creep: the second half ends within 10 % (or 16 MiB) of its start.
    assert!(
        rss_end <= rss_mid + (rss_mid / 10).max(16 * 1024),
        "RSS {rss_mid} KiB at half time, {rss_end} KiB at the end"
    );
    // Descriptors stay bounded by what the attackers hold (both ends when in process).
    let held = WORKERS + SILENT + LORIS + FLOODS + BAD_SIGNERS;
    assert!(
        fds_max <= fds_start + 2 * held + 64,
        "{fds_max} open descriptors"
    );
    for (name, c) in [
        "silent closed",
        "loris closed",
        "flood streams answered",
        "bad signatures refused",
    ]
    .iter()
    .zip(&counters)
    {
        assert!(
            c.load(Ordering::Relaxed) > 0,
            "no attack of kind {name} happened"
        );
    }
}

fn p99_median(p99s: &mut [Duration]) -> Duration {
    p99s.sort();
    p99s[p99s.len() / 2]
}
