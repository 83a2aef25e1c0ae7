//! CPU-heavy requests run off the async workers: on a runtime with a single
//! worker thread, a cheap request completes while RSA-4096 work is in flight.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyfence_server::tls::ClientGroups;
use serde_json::json;
use support::{start_node, Client, Signer};

/// A symmetric key of `me`'s, for the data key pairs.
async fn symmetric_key(client: &Client, me: &Signer) -> String {
    client.kms(me, "CreateKey", json!({})).await.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Starts `count` RSA-4096 data key pair requests at once; each task yields
/// the reply's status, its error code and when it came (from `started`).
fn rsa_4096_pairs(
    client: &Arc<Client>,
    me: &Signer,
    key: &str,
    started: Instant,
    count: usize,
) -> Vec<tokio::task::JoinHandle<(u16, Option<String>, Duration)>> {
    (0..count)
        .map(|_| {
            let (client, me, key) = (Arc::clone(client), me.clone(), key.to_string());
            tokio::spawn(async move {
                let reply = client
                    .kms(
                        &me,
                        "GenerateDataKeyPairWithoutPlaintext",
                        json!({"KeyId": key, "KeyPairSpec": "RSA_4096"}),
                    )
                    .await;
                (reply.status, reply.error_code(), started.elapsed())
            })
        })
        .collect()
}

#[test]
fn cheap_requests_are_not_stalled_by_rsa_4096_work() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let node = start_node(&dir.path().join("data"), false).await;
        let client = Arc::new(Client::new(&node, ClientGroups::HybridOnly));
        let me = Signer::of(&node);
        let key = symmetric_key(&client, &me).await;

        // Several RSA-4096 key pairs, each hundreds of milliseconds of CPU.
        let started = Instant::now();
        let slow = rsa_4096_pairs(&client, &me, &key, started, 3);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let cheap = client
            .kms(&me, "GenerateRandom", json!({"NumberOfBytes": 16}))
            .await;
        assert_eq!(cheap.status, 200);
        let cheap_done = started.elapsed();
        let mut slowest = Duration::ZERO;
        for s in slow {
            let (status, code, took) = s.await.unwrap();
            assert_eq!(status, 200, "{code:?}");
            slowest = slowest.max(took);
        }
        assert!(
            cheap_done < slowest,
            "the cheap request ({cheap_done:?}) waited for the RSA work ({slowest:?})"
        );
        node.shutdown().await;
    });
}

/// A flood of RSA-4096 key pairs at a node whose heavy pool has one thread and
/// room for one more in its queue: what does not fit is refused at once with
/// `ThrottlingException` (and counted), what fits succeeds, and a cheap request
/// sent in the middle of it is answered before the heavy work is done.
#[tokio::test]
async fn heavy_requests_beyond_the_pool_are_throttled_and_cheap_ones_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = keyfence_server::limits::Limits::default();
    limits.heavy.threads = 1;
    limits.heavy.queue = 1;
    let node = support::start_node_with(&dir.path().join("data"), false, limits).await;
    let client = Arc::new(Client::new(&node, ClientGroups::HybridOnly));
    let me = Signer::of(&node);
    let key = symmetric_key(&client, &me).await;

    let started = Instant::now();
    let flood = rsa_4096_pairs(&client, &me, &key, started, 6);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let cheap = client
        .kms(&me, "Encrypt", json!({"KeyId": key, "Plaintext": "AAAA"}))
        .await;
    assert_eq!(cheap.status, 200);
    let cheap_done = started.elapsed();

    let (mut ok, mut throttled, mut slowest) = (0, 0, Duration::ZERO);
    for f in flood {
        let (status, code, took) = f.await.unwrap();
        match (status, code.as_deref()) {
            (200, _) => {
                ok += 1;
                slowest = slowest.max(took);
            }
            (400, Some("ThrottlingException")) => throttled += 1,
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert!(ok >= 1, "the pool ran what fitted");
    assert!(
        throttled >= 1,
        "six RSA-4096 pairs do not fit in a thread and a queue of one"
    );
    assert!(
        cheap_done < slowest,
        "Encrypt ({cheap_done:?}) waited for the RSA work ({slowest:?})"
    );
    let metrics = support::scrape(&node).await;
    let counted: f64 = ["queue_full", "waited_too_long"]
        .iter()
        .filter_map(|reason| {
            let series = format!("keyfence_heavy_requests_refused_total{{reason=\"{reason}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
        })
        .map(|v| v.trim().parse::<f64>().unwrap())
        .sum();
    assert_eq!(counted, throttled as f64);
    node.shutdown().await;
}
