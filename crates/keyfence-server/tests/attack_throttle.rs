//! One tenant cannot starve another: with `[throttle]` on, a burst beyond an
//! account's quota is refused with AWS's ThrottlingException while another
//! account is served, and the quota refills with time. Real node, real TLS,
//! signed requests.

mod support;

use std::time::{Duration, Instant, SystemTime};

use keyfence_server::config::{Config, StoreLocation};
use keyfence_server::limits::Limits;
use keyfence_server::sigv4::Credential;
use keyfence_server::throttle::Throttling;
use keyfence_server::tls::ClientGroups;
use keyfence_server::Node;
use serde_json::json;
use support::{scrape, Client, Signer};

const OTHER_ACCOUNT: &str = "444455556666";

async fn throttled_node(dir: &std::path::Path, throttle: Throttling) -> Node {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum: false,
        credentials: vec![Credential {
            access_key_id: "AKIAOTHERTENANT00001".into(),
            secret_access_key: zeroize::Zeroizing::new("other-tenant-secret".into()),
            account_id: OTHER_ACCOUNT.into(),
            user_name: "other".into(),
        }],
        node: None,
        root: Default::default(),
        principals: Default::default(),
        audit: Default::default(),
        default_fence: None,
        store: StoreLocation::DataDir,
        max_staleness: Duration::from_secs(60),
        feed_retention: Duration::from_secs(900),
        limits: Limits {
            throttle,
            ..Limits::default()
        },
    };
    Node::start(config).await.expect("node starts")
}

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_burst_beyond_the_quota_is_throttled_another_account_is_not_and_it_refills() {
    let dir = tempfile::tempdir().unwrap();
    let mut throttle = Throttling {
        enabled: true,
        ..Throttling::default()
    };
    // One ListKeys every 2 s (a bucket of one), and 3 symmetric operations a second.
    throttle.set_rate("ListKeys", 0.5).unwrap();
    throttle.set_rate("symmetric", 3.0).unwrap();
    let node = throttled_node(&dir.path().join("data"), throttle).await;
    let client = Client::new(&node, ClientGroups::Default);
    let tenant = Signer::of(&node);
    let other = Signer {
        access_key_id: "AKIAOTHERTENANT00001".into(),
        secret: "other-tenant-secret".into(),
        region: "us-east-1".into(),
        time: SystemTime::now(),
    };
    let before = scrape(&node).await;
    assert_eq!(
        sample(
            &before,
            r#"keyfence_throttled_requests_total{quota="ListKeys"}"#
        ),
        Some(0.0)
    );

    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let reply = client.kms(&tenant, "ListKeys", json!({})).await;
        if reply.status != 200 {
            assert_eq!(reply.status, 400);
            assert_eq!(reply.error_code().as_deref(), Some("ThrottlingException"));
            assert_eq!(
                reply.json()["message"],
                "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
            );
        }
        statuses.push(reply.status);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the burst took {:?}",
        started.elapsed()
    );
    assert_eq!(statuses, [200, 400, 400, 400, 400]);

    // Another tenant's quota is its own.
    assert_eq!(client.kms(&other, "ListKeys", json!({})).await.status, 200);
    // So is another operation's.
    let key = client.kms(&tenant, "CreateKey", json!({})).await;
    assert_eq!(key.status, 200, "{:?}", key.json());
    let key_id = key.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The shared symmetric quota: 3 at once, then refused, whichever operation.
    let encrypt = json!({"KeyId": key_id, "Plaintext": "aGVsbG8="});
    let mut symmetric = Vec::new();
    for op in [
        "Encrypt",
        "GenerateRandom",
        "Encrypt",
        "GenerateDataKey",
        "Encrypt",
    ] {
        let body = match op {
            "GenerateRandom" => json!({"NumberOfBytes": 16}),
            "GenerateDataKey" => json!({"KeyId": key_id, "KeySpec": "AES_256"}),
            _ => encrypt.clone(),
        };
        symmetric.push(client.kms(&tenant, op, body).await.status);
    }
    assert_eq!(
        symmetric.iter().filter(|s| **s == 200).count(),
        3,
        "{symmetric:?}"
    );
    assert_eq!(symmetric[..3], [200, 200, 200], "{symmetric:?}");

    // Refill: two seconds later one more ListKeys goes through.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(client.kms(&tenant, "ListKeys", json!({})).await.status, 200);
    assert_eq!(client.kms(&tenant, "Encrypt", encrypt).await.status, 200);

    let after = scrape(&node).await;
    assert_eq!(
        sample(
            &after,
            r#"keyfence_throttled_requests_total{quota="ListKeys"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &after,
            r#"keyfence_throttled_requests_total{quota="symmetric"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &after,
            r#"keyfence_throttled_requests_total{quota="CreateKey"}"#
        ),
        Some(0.0)
    );
    node.shutdown().await;
}

#[tokio::test]
async fn throttling_is_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let node = throttled_node(&dir.path().join("data"), Throttling::default()).await;
    let client = Client::new(&node, ClientGroups::Default);
    let tenant = Signer::of(&node);
    // GetParametersForImport's AWS quota is one every 4 s; off, three in a
    // row all succeed.
    let key = client
        .kms(&tenant, "CreateKey", json!({"Origin": "EXTERNAL"}))
        .await;
    let key_id = key.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    for _ in 0..3 {
        let reply = client
            .kms(
                &tenant,
                "GetParametersForImport",
                json!({"KeyId": key_id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.json());
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let metrics = scrape(&node).await;
    assert_eq!(
        sample(
            &metrics,
            r#"keyfence_throttled_requests_total{quota="GetParametersForImport"}"#
        ),
        Some(0.0)
    );
    node.shutdown().await;
}
