//! CPU-heavy requests run off the async workers: on a runtime with a single
//! worker thread, a cheap request completes while RSA-4096 work is in flight.

mod support;

use std::time::{Duration, Instant};

use keyfence_server::tls::ClientGroups;
use serde_json::json;
use support::{start_node, Client, Signer};

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
        let client = std::sync::Arc::new(Client::new(&node, ClientGroups::HybridOnly));
        let me = Signer::of(&node);
        let key = client.kms(&me, "CreateKey", json!({})).await.json()["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string();

        // Several RSA-4096 key pairs, each hundreds of milliseconds of CPU.
        let started = Instant::now();
        let slow: Vec<_> = (0..3)
            .map(|_| {
                let (client, me, key) = (client.clone(), me.clone(), key.clone());
                tokio::spawn(async move {
                    let reply = client
                        .kms(
                            &me,
                            "GenerateDataKeyPairWithoutPlaintext",
                            json!({"KeyId": key, "KeyPairSpec": "RSA_4096"}),
                        )
                        .await;
                    assert_eq!(reply.status, 200, "{:?}", reply.json());
                    started.elapsed()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let cheap = client
            .kms(&me, "GenerateRandom", json!({"NumberOfBytes": 16}))
            .await;
        assert_eq!(cheap.status, 200);
        let cheap_done = started.elapsed();
        let mut slowest = Duration::ZERO;
        for s in slow {
            slowest = slowest.max(s.await.unwrap());
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
    let client = std::sync::Arc::new(Client::new(&node, ClientGroups::HybridOnly));
    let me = Signer::of(&node);
    let key = client.kms(&me, "CreateKey", json!({})).await.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();

    let started = Instant::now();
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let (client, me, key) = (client.clone(), me.clone(), key.clone());
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
        .collect();
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
