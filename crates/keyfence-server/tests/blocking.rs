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
