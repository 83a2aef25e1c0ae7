//! A geo-fencing cluster of real nodes (real TLS, signed requests) sharing
//! one SQLite store in one data directory: enrollment through the admin API,
//! a fenced key made at the authority node, served by a satisfying node and
//! refused, with the fence named, by a node outside it.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use keyfence_server::config::NodeSection;
use keyfence_server::sigv4::Credential;
use keyfence_server::tls::ClientGroups;
use keyfence_server::{Config, Node};
use serde_json::{json, Value};
use support::{Client, Reply, Signer};
use zeroize::Zeroizing;

const POLICY: &str = "region: EU and not country: RU";
const REGION: &str = "eu-central-1";

async fn start(dir: &Path, name: &str, attrs: &[(&str, &str)], authority: bool) -> Node {
    Node::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: REGION.into(),
        post_quantum: true,
        credentials: vec![Credential {
            access_key_id: "AKIAOTHERACCOUNT".into(),
            secret_access_key: Zeroizing::new("other-secret".into()),
            account_id: "444455556666".into(),
            user_name: "admin".into(),
        }],
        node: Some(NodeSection {
            name: name.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            authority,
            store: None,
        }),
        default_fence: None,
        store: keyfence_server::config::StoreLocation::DataDir,
        max_staleness: std::time::Duration::from_secs(60),
        audit: Default::default(),
        limits: Default::default(),
    })
    .await
    .expect("node starts")
}

fn signer(node: &Node) -> Signer {
    Signer {
        region: REGION.into(),
        ..Signer::of(node)
    }
}

async fn admin(node: &Node, signer: &Signer, op: &str, body: Value) -> Reply {
    let target = format!("KeyfenceAdmin.{op}");
    Client::new(node, ClientGroups::HybridOnly)
        .send(
            &[
                ("x-amz-target", &target),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            serde_json::to_vec(&body).unwrap(),
            Some((signer, "kms")),
        )
        .await
        .unwrap()
}

async fn kms(node: &Node, signer: &Signer, op: &str, body: Value) -> Reply {
    Client::new(node, ClientGroups::HybridOnly)
        .kms(signer, op, body)
        .await
}

async fn cluster(dir: &Path) -> Vec<Node> {
    vec![
        start(
            dir,
            "fra",
            &[("country", "DE"), ("region", "EU"), ("security", "high")],
            true,
        )
        .await,
        start(dir, "par", &[("country", "FR"), ("region", "EU")], false).await,
        start(dir, "iad", &[("country", "US"), ("region", "NA")], false).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_and_a_fenced_key_across_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let nodes = cluster(&dir).await;
    let (fra, par) = (&nodes[0], &nodes[1]);
    let s = signer(fra);

    let listed = admin(fra, &s, "ListNodes", json!({})).await;
    assert_eq!(listed.status, 200, "{:?}", listed.json());
    let v = listed.json();
    let names: Vec<&str> = v["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fra", "iad", "par"]);
    assert!(v["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["State"] == "PENDING"));
    assert_eq!(v["Nodes"][0]["Attributes"]["security"], "high");

    // Only the default account's admin may call it; only the authority approves.
    let other = Signer {
        access_key_id: "AKIAOTHERACCOUNT".into(),
        secret: "other-secret".into(),
        ..s.clone()
    };
    assert_eq!(
        admin(fra, &other, "ListNodes", json!({}))
            .await
            .error_code()
            .as_deref(),
        Some("AccessDeniedException")
    );
    assert_eq!(
        admin(par, &s, "ApproveNode", json!({"Name": "par"}))
            .await
            .error_code()
            .as_deref(),
        Some("UnsupportedOperationException")
    );
    assert_eq!(
        admin(fra, &s, "ApproveNode", json!({"Name": "ber"}))
            .await
            .error_code()
            .as_deref(),
        Some("NotFoundException")
    );
    // A fenced CreateKey before any approval: fra makes the fence but cannot open it.
    let early = kms(
        fra,
        &s,
        "CreateKey",
        json!({"Tags": [{"TagKey": "keyfence:fence", "TagValue": POLICY}]}),
    )
    .await;
    assert_eq!(
        early.error_code().as_deref(),
        Some("KeyUnavailableException"),
        "{:?}",
        early.json()
    );
    for name in ["fra", "par", "iad"] {
        let r = admin(fra, &s, "ApproveNode", json!({"Name": name})).await;
        assert_eq!(r.status, 200, "{name}: {:?}", r.json());
        assert_eq!(r.json()["Node"]["State"], "APPROVED");
    }
    assert_eq!(
        admin(fra, &s, "ApproveNode", json!({"Name": "par"}))
            .await
            .error_code()
            .as_deref(),
        Some("KMSInvalidStateException")
    );
    let fences = admin(fra, &s, "ListFences", json!({})).await.json();
    assert_eq!(fences["Fences"][0]["Policy"], POLICY);
    assert_eq!(fences["Fences"][0]["Nodes"], json!(["fra", "par"]));
    // Nodes pick up grants and records by polling; do it now rather than wait.
    for node in &nodes {
        assert!(node.cluster.as_ref().unwrap().refresh(&node.kms).unwrap());
    }

    let created = kms(fra, &s, "CreateKey", json!({"Tags": [{"TagKey": "keyfence:fence", "TagValue": "(region: EU) and not (country: RU)"}]})).await;
    assert_eq!(created.status, 200, "{:?}", created.json());
    let arn = created.json()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let tags = kms(fra, &s, "ListResourceTags", json!({"KeyId": arn}))
        .await
        .json();
    assert_eq!(
        tags["Tags"],
        json!([{"TagKey": "keyfence:fence", "TagValue": POLICY}])
    );
    let refused = kms(
        fra,
        &s,
        "TagResource",
        json!({"KeyId": arn, "Tags": [{"TagKey": "keyfence:fence", "TagValue": "region: NA"}]}),
    )
    .await;
    assert_eq!(refused.error_code().as_deref(), Some("TagException"));
    let enc = kms(
        fra,
        &s,
        "Encrypt",
        json!({"KeyId": arn, "Plaintext": "Z2Vv"}),
    )
    .await;
    assert_eq!(enc.status, 200, "{:?}", enc.json());
    let blob = enc.json()["CiphertextBlob"].clone();

    // Keys made at one node reach the others through the store's change
    // feed (each node's replica task follows it); sync now rather than wait.
    let mut nodes = nodes;
    let iad = nodes.pop().unwrap();
    let par = nodes.pop().unwrap();
    par.kms.sync().unwrap();
    iad.kms.sync().unwrap();
    let described = kms(&iad, &s, "DescribeKey", json!({"KeyId": arn})).await;
    assert_eq!(described.status, 200, "{:?}", described.json());

    let dec = kms(&par, &s, "Decrypt", json!({"CiphertextBlob": blob})).await;
    assert_eq!(dec.status, 200, "{:?}", dec.json());
    assert_eq!(dec.json()["Plaintext"], "Z2Vv");
    // iad holds the whole store and its own keys: metadata, but no material;
    // its own KMS refuses, naming the fence.
    let described = kms(&iad, &s, "DescribeKey", json!({"KeyId": arn})).await;
    assert_eq!(described.status, 200);
    let fence = &described.json()["KeyMetadata"]["KeyfenceFence"];
    assert_eq!(fence["Policy"], POLICY);
    assert!(fence["FenceId"].as_str().unwrap().starts_with("fence-"));
    match iad.kms.encrypt(
        "111122223333",
        &arn,
        b"x",
        &keyfence_core::EncryptionContext::default(),
        None,
    ) {
        Err(keyfence_core::KmsError::FencedElsewhere { policy, .. }) => assert_eq!(policy, POLICY),
        other => panic!("{other:?}"),
    }
    // Through the API, iad forwards the caller's signed request to fra or par.
    let dec = kms(&iad, &s, "Decrypt", json!({"CiphertextBlob": blob})).await;
    assert_eq!(dec.status, 200, "{:?}", dec.json());
    assert_eq!(dec.json()["Plaintext"], "Z2Vv");
    let enc = kms(
        &iad,
        &s,
        "Encrypt",
        json!({"KeyId": arn, "Plaintext": "aWFk"}),
    )
    .await;
    assert_eq!(enc.status, 200, "{:?}", enc.json());
    let dec = kms(
        &par,
        &s,
        "Decrypt",
        json!({"CiphertextBlob": enc.json()["CiphertextBlob"]}),
    )
    .await;
    assert_eq!(dec.json()["Plaintext"], "aWFk");
    let gdk = kms(
        &iad,
        &s,
        "GenerateDataKey",
        json!({"KeyId": arn, "KeySpec": "AES_256"}),
    )
    .await;
    assert_eq!(gdk.status, 200, "{:?}", gdk.json());
    // A fenced CreateKey at iad is forwarded too: the key is made inside the fence.
    let made = kms(
        &iad,
        &s,
        "CreateKey",
        json!({"Tags": [{"TagKey": "keyfence:fence", "TagValue": POLICY}]}),
    )
    .await;
    assert_eq!(made.status, 200, "{:?}", made.json());
    // Made at fra or par, not at iad: iad learns of it from the store.
    iad.kms.sync().unwrap();
    let metrics = support::scrape(&iad).await;
    let forwarded: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("keyfence_forwarded_requests_total{") && l.contains("outcome=\"ok\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    // Decrypt, Encrypt, GenerateDataKey and CreateKey at iad.
    assert_eq!(forwarded, 4, "{metrics}");

    // One hop at most: a request marked as forwarded is not forwarded again.
    let marked = Client::new(&iad, ClientGroups::HybridOnly)
        .send(
            &[
                ("x-amz-target", "TrentService.Encrypt"),
                ("content-type", "application/x-amz-json-1.1"),
                ("x-keyfence-forwarded-by", "par"),
            ],
            serde_json::to_vec(&json!({"KeyId": arn, "Plaintext": "Z2Vv"})).unwrap(),
            Some((&s, "kms")),
        )
        .await
        .unwrap();
    assert_eq!(
        marked.error_code().as_deref(),
        Some("KeyUnavailableException")
    );
    assert!(
        marked.json()["message"]
            .as_str()
            .unwrap()
            .contains("one hop"),
        "{:?}",
        marked.json()
    );

    // A forwarder that alters the signed request gets it refused by the satisfying node.
    let body = serde_json::to_vec(&json!({"KeyId": arn, "Plaintext": "Z2Vv"})).unwrap();
    let mut parts = hyper::Request::post(format!("https://localhost:{}/", iad.api_addr.port()))
        .header("x-amz-target", "TrentService.Encrypt")
        .header("content-type", "application/x-amz-json-1.1")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    keyfence_server::sigv4::sign(
        &mut parts,
        &body,
        &keyfence_server::sigv4::SigningParams {
            access_key_id: &s.access_key_id,
            secret_access_key: &s.secret,
            region: &s.region,
            service: "kms",
            time: s.time,
        },
    )
    .unwrap();
    parts
        .headers
        .insert("x-keyfence-forwarded-by", "iad".parse().unwrap());
    let honest = Client::new(&par, ClientGroups::HybridOnly)
        .send_signed(parts.clone(), body.clone())
        .await
        .unwrap();
    assert_eq!(
        honest.status,
        200,
        "the unaltered forward is served: {:?}",
        honest.json()
    );
    let altered = serde_json::to_vec(&json!({"KeyId": arn, "Plaintext": "ZXZpbA=="})).unwrap();
    let refused = Client::new(&par, ClientGroups::HybridOnly)
        .send_signed(parts, altered)
        .await
        .unwrap();
    assert_eq!(
        refused.error_code().as_deref(),
        Some("InvalidSignatureException")
    );

    // Kill the satisfying nodes one by one: with fra gone every request moves
    // to par, none fails; with par gone too, iad answers at once with the fence's error.
    // fra heard from most recently, so iad tries it first.
    let fra_addr = nodes[0].api_addr.to_string();
    let later =
        keyfence_core::Timestamp(keyfence_core::Clock::now(&keyfence_core::SystemClock).0 + 60_000);
    iad.cluster
        .as_ref()
        .unwrap()
        .store()
        .touch_node("fra", &fra_addr, later)
        .unwrap();
    for node in nodes {
        node.shutdown().await;
    }
    for i in 0..5 {
        let r = kms(
            &iad,
            &s,
            "Encrypt",
            json!({"KeyId": arn, "Plaintext": "Z2Vv"}),
        )
        .await;
        assert_eq!(r.status, 200, "request {i} with fra down: {:?}", r.json());
    }
    let metrics = support::scrape(&iad).await;
    assert!(
        metrics.contains("keyfence_forwarded_requests_total{peer=\"par\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyfence_forwarded_requests_total{peer=\"fra\",outcome=\"unreachable\"}"),
        "fra was tried first and found down: {metrics}"
    );
    par.shutdown().await;
    let started = std::time::Instant::now();
    let r = kms(
        &iad,
        &s,
        "Encrypt",
        json!({"KeyId": arn, "Plaintext": "Z2Vv"}),
    )
    .await;
    assert_eq!(r.error_code().as_deref(), Some("KeyUnavailableException"));
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(POLICY) && message.contains("tried: 2"),
        "{message}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    iad.shutdown().await;
}
