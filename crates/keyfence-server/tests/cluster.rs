//! A geo-fencing cluster of real nodes (real TLS, signed requests) sharing
//! one store (the data directory's SQLite file, or a throw-away PostgreSQL
//! named in each node's `[node] store`): enrollment through the admin API,
//! a fenced key made at the authority node, served by a satisfying node and
//! refused, with the fence named, by a node outside it.

mod support;

use keyfence_core::audit::{AuditRecord, Outcome, Source};
use std::collections::BTreeMap;
use std::path::Path;

use keyfence_server::config::NodeSection;
use keyfence_server::sigv4::Credential;
use keyfence_server::tls::ClientGroups;
use keyfence_server::{Config, Node};
use keyfence_testkit::TempPostgres;
use serde_json::{json, Value};
use support::{Client, Reply, Signer};
use zeroize::Zeroizing;

const POLICY: &str = "region: EU and not country: RU";
const REGION: &str = "eu-central-1";

/// Where the cluster's nodes live: one data directory (shared root key and
/// CA) and the store they share, the data directory's SQLite file (`None`)
/// or a PostgreSQL database named in every node's `[node] store`.
/// On SQLite the nodes take node-to-node traffic on a listener of its own
/// (`[node] peer_listen`, a node certificate required at the handshake); on
/// PostgreSQL on the API listener, so both paths are run.
struct Place {
    dir: std::path::PathBuf,
    store: Option<std::path::PathBuf>,
    peer_listen: bool,
}

impl Place {
    fn sqlite(tmp: &Path) -> Self {
        Self {
            dir: tmp.join("data"),
            store: None,
            peer_listen: true,
        }
    }

    fn postgres(tmp: &Path, pg: &TempPostgres) -> Self {
        Self {
            dir: tmp.join("data"),
            store: Some(pg.connection_string().into()),
            peer_listen: false,
        }
    }
}

async fn start(place: &Place, name: &str, attrs: &[(&str, &str)], authority: bool) -> Node {
    start_advertising(place, name, attrs, authority, None).await
}

async fn start_advertising(
    place: &Place,
    name: &str,
    attrs: &[(&str, &str)],
    authority: bool,
    advertise: Option<String>,
) -> Node {
    let (dir, store, peer_listen) = (&place.dir, place.store.clone(), place.peer_listen);
    Node::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: REGION.into(),
        also_serves: Vec::new(),
        post_quantum: true,
        credentials: vec![Credential {
            access_key_id: "AKIAOTHERACCOUNT".into(),
            secret_access_key: Zeroizing::new("other-secret".into()),
            account_id: "444455556666".into(),
            user_name: "admin".into(),
        }],
        principals: Default::default(),
        node: Some(NodeSection {
            name: name.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            authority,
            store,
            advertise,
            peer_listen: peer_listen.then(|| "127.0.0.1:0".parse().unwrap()),
        }),
        default_fence: None,
        store: keyfence_server::config::StoreLocation::DataDir,
        max_staleness: std::time::Duration::from_secs(60),
        feed_retention: std::time::Duration::from_secs(900),
        audit: Default::default(),
        limits: Default::default(),
        root: Default::default(),
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

async fn cluster(dir: &Place) -> Vec<Node> {
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
    enrollment_and_a_fenced_key(Place::sqlite(tmp.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_and_a_fenced_key_across_three_nodes_on_postgres() {
    let pg = TempPostgres::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    enrollment_and_a_fenced_key(Place::postgres(tmp.path(), &pg)).await;
}

async fn enrollment_and_a_fenced_key(dir: Place) {
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
    // Peers reach fra at its node-to-node listener when it has one.
    let fra_reached_at = fra.peer_addr.unwrap_or(fra.api_addr).to_string();
    assert_eq!(v["Nodes"][0]["Address"], fra_reached_at.as_str());
    assert_eq!(fra.peer_addr.is_some(), dir.peer_listen);

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
    // Nodes pick up grants and records by polling (every 2 s); do it now
    // rather than wait. A poll may have come first (a slow approval on a
    // loaded machine), so what is checked is what each node holds, not
    // whether this refresh found it new.
    for node in &nodes {
        let cluster = node.cluster.as_ref().unwrap();
        cluster.refresh(&node.kms).unwrap();
        assert!(
            cluster.certificate().is_some(),
            "{} has no node certificate",
            cluster.name()
        );
        let fences = node.kms.fences();
        assert_eq!(fences.len(), 1, "{}", cluster.name());
        assert_eq!(fences[0].0.policy(), POLICY);
        assert_eq!(
            fences[0].1,
            cluster.name() != "iad",
            "{} opens the fence",
            cluster.name()
        );
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

    // Node-to-node requests need a node certificate: a client that is not a
    // node (no certificate) is refused before anything else, naming why.
    let body = serde_json::to_vec(&json!({"KeyId": arn, "Plaintext": "Z2Vv"})).unwrap();
    let marked = Client::new(&iad, ClientGroups::HybridOnly)
        .send(
            &[
                ("x-amz-target", "TrentService.Encrypt"),
                ("content-type", "application/x-amz-json-1.1"),
                ("x-keyfence-forwarded-by", "par"),
            ],
            body.clone(),
            Some((&s, "kms")),
        )
        .await
        .unwrap();
    assert_eq!(
        marked.error_code().as_deref(),
        Some("AccessDeniedException")
    );
    assert!(
        marked.json()["message"]
            .as_str()
            .unwrap()
            .contains("no node certificate"),
        "{:?}",
        marked.json()
    );
    // One hop at most: par's own forward (with its node certificate) to iad,
    // which cannot serve the key, is not forwarded again.
    let parts = signed_parts(&iad, &s, &body);
    let relayed = par
        .forwarder
        .as_ref()
        .unwrap()
        .relay(&iad.api_addr.to_string(), &parts, &body.clone().into())
        .await
        .unwrap();
    let (head, relayed) = relayed.into_parts();
    let relayed: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(relayed)
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(head.status, 400);
    assert!(
        relayed["message"].as_str().unwrap().contains("one hop"),
        "{relayed:?}"
    );

    // A forwarder that alters the signed request gets it refused by the satisfying node.
    let forwarder = iad.forwarder.as_ref().unwrap();
    let to_par = par.api_addr.to_string();
    let honest = forwarder
        .relay(&to_par, &parts, &body.clone().into())
        .await
        .unwrap();
    assert_eq!(honest.status(), 200, "the unaltered forward is served");
    // An HTTP/1.1 client's connection-specific headers (unsigned) have no
    // place in HTTP/2: the relay leaves them out instead of failing.
    let mut http1 = parts.clone();
    for (name, value) in [
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
    ] {
        http1.headers.insert(name, value.parse().unwrap());
    }
    let relayed = forwarder
        .relay(&to_par, &http1, &body.clone().into())
        .await
        .unwrap();
    assert_eq!(relayed.status(), 200, "connection headers are not relayed");
    let altered = serde_json::to_vec(&json!({"KeyId": arn, "Plaintext": "ZXZpbA=="})).unwrap();
    let (head, refused) = forwarder
        .relay(&to_par, &parts, &altered.into())
        .await
        .unwrap()
        .into_parts();
    let refused: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(refused)
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(head.status, 400);
    assert_eq!(
        refused["__type"], "InvalidSignatureException",
        "{refused:?}"
    );

    // A node that is not enrolled (it asked to join, nobody approved it) has
    // no node certificate: its forwarded request is refused, with the reason.
    let ber = start(&dir, "ber", &[("country", "DE"), ("region", "EU")], false).await;
    let (head, refused) = ber
        .forwarder
        .as_ref()
        .unwrap()
        .relay(&to_par, &parts, &body.clone().into())
        .await
        .unwrap()
        .into_parts();
    let refused: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(refused)
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(head.status, 400);
    assert_eq!(refused["__type"], "AccessDeniedException", "{refused:?}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("no node certificate"),
        "{refused:?}"
    );
    if let Some(par_peer) = par.peer_addr {
        // At the node-to-node listener it does not get that far: the
        // handshake itself requires an approved node's certificate.
        let refused = ber
            .forwarder
            .as_ref()
            .unwrap()
            .relay(&par_peer.to_string(), &parts, &body.clone().into())
            .await;
        assert!(
            refused.is_err(),
            "a pending node got a response at the node-to-node listener"
        );
        // So is a client with no certificate at all…
        let raw = tokio::net::TcpStream::connect(par_peer).await.unwrap();
        let tls = keyfence_server::tls::client_config(
            &iad.data_dir.pki.ca_cert,
            ClientGroups::HybridOnly,
        )
        .unwrap();
        let handshake = tokio_rustls::TlsConnector::from(tls)
            .connect("localhost".try_into().unwrap(), raw)
            .await;
        let refused_before_http = match handshake {
            Err(_) => true,
            // TLS 1.3: the client may finish before the server's alert arrives;
            // the first read then fails.
            Ok(mut stream) => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
                let mut buf = [0u8; 64];
                !matches!(stream.read(&mut buf).await, Ok(n) if n > 0)
            }
        };
        assert!(
            refused_before_http,
            "a client without a certificate got through"
        );
        // …while the enrolled nodes' forwards to it are served.
        let served = iad
            .forwarder
            .as_ref()
            .unwrap()
            .relay(&par_peer.to_string(), &parts, &body.clone().into())
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
    }
    ber.shutdown().await;

    // Kill the satisfying nodes one by one: with fra gone every request moves
    // to par, none fails (fra, if ranked first, is skipped as unreachable, or
    // it was already measured down); with par gone too, iad answers at once
    // with the fence's error.
    for node in nodes {
        node.shutdown().await;
    }
    let before = forwarded_to(&support::scrape(&iad).await, "par");
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
    assert_eq!(forwarded_to(&metrics, "par"), before + 5, "{metrics}");
    iad.forwarder.as_ref().unwrap().measure_once().await;
    assert!(
        iad.forwarder.as_ref().unwrap().round_trip("fra").is_none(),
        "fra is known to be down"
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

/// A request signed by the caller `s` for `node`, as a forwarder receives it.
fn signed_parts(node: &Node, s: &Signer, body: &[u8]) -> hyper::http::request::Parts {
    let mut parts = hyper::Request::post(format!("https://localhost:{}/", node.api_addr.port()))
        .header("x-amz-target", "TrentService.Encrypt")
        .header("content-type", "application/x-amz-json-1.1")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    keyfence_server::sigv4::sign(
        &mut parts,
        body,
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
}

fn arn_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    reply.json()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn fenced_key(node: &Node, s: &Signer, extra: Value) -> String {
    let mut body = json!({"Tags": [{"TagKey": "keyfence:fence", "TagValue": POLICY}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    arn_of(&kms(node, s, "CreateKey", body).await)
}

async fn encrypt_ok(node: &Node, s: &Signer, arn: &str, what: &str) -> Value {
    let r = kms(
        node,
        s,
        "Encrypt",
        json!({"KeyId": arn, "Plaintext": "Z2Vv"}),
    )
    .await;
    assert_eq!(r.status, 200, "{what}: {:?}", r.json());
    r.json()["CiphertextBlob"].clone()
}

fn fenced_elsewhere(node: &Node, arn: &str) -> bool {
    matches!(
        node.kms.encrypt(
            "111122223333",
            arn,
            b"x",
            &keyfence_core::EncryptionContext::default(),
            None,
        ),
        Err(keyfence_core::KmsError::FencedElsewhere { .. })
    )
}

/// The cluster's store opened directly (as another node would).
fn raw_store(place: &Place) -> Box<dyn keyfence_core::Store> {
    match &place.store {
        None => Box::new(
            keyfence_store::SqliteStore::open_shared(&place.dir.join("keyfence.db")).unwrap(),
        ),
        Some(url) => {
            Box::new(keyfence_store::PostgresStore::connect(url.to_str().unwrap()).unwrap())
        }
    }
}

/// The fence epochs the versions are wrapped under, distinct, ascending.
fn epochs(versions: &[keyfence_core::store::VersionRecord]) -> Vec<u32> {
    let mut e: Vec<u32> = versions
        .iter()
        .map(|v| {
            keyfence_core::fence::wrapped_key_fence(&v.wrapped)
                .unwrap()
                .1
        })
        .collect();
    e.sort_unstable();
    e.dedup();
    e
}

fn refresh_all(nodes: &[&Node]) {
    for node in nodes {
        node.kms.sync().unwrap();
        node.cluster.as_ref().unwrap().refresh(&node.kms).unwrap();
        node.kms.sync().unwrap();
    }
}

fn forwarded_to(metrics: &str, peer: &str) -> u64 {
    let prefix = format!("keyfence_forwarded_requests_total{{peer=\"{peer}\",outcome=\"ok\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.parse().unwrap())
}

/// Node removal, attribute changes and master rotation through the admin API,
/// with a fenced symmetric key and a fenced signing key in use throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_rotate_fences_and_keys_stay_usable() {
    let tmp = tempfile::tempdir().unwrap();
    membership_changes(Place::sqlite(tmp.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_rotate_fences_and_keys_stay_usable_on_postgres() {
    let pg = TempPostgres::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    membership_changes(Place::postgres(tmp.path(), &pg)).await;
}

async fn membership_changes(dir: Place) {
    let on_postgres = dir.store.is_some();
    let nodes = cluster(&dir).await;
    let (fra, par, iad) = (&nodes[0], &nodes[1], &nodes[2]);
    let s = signer(fra);
    for name in ["fra", "par", "iad"] {
        let r = admin(fra, &s, "ApproveNode", json!({"Name": name})).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
    let r = admin(fra, &s, "CreateFence", json!({"Policy": POLICY})).await;
    assert_eq!(r.json()["Fence"]["Nodes"], json!(["fra", "par"]));
    refresh_all(&[fra, par, iad]);

    // A fenced symmetric key and a fenced signing key, both made at fra.
    let key = fenced_key(fra, &s, json!({})).await;
    let signing = fenced_key(
        fra,
        &s,
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
    )
    .await;
    let blob = encrypt_ok(fra, &s, &key, "fra before").await;
    refresh_all(&[fra, par, iad]);
    assert_eq!(
        kms(par, &s, "Decrypt", json!({"CiphertextBlob": blob}))
            .await
            .status,
        200
    );
    // Fenced Sign at every node: iad forwards; the signature verifies at par.
    let message = "c2lnbiBtZQ==";
    for node in [fra, par, iad] {
        let signed = kms(
            node,
            &s,
            "Sign",
            json!({"KeyId": signing, "Message": message, "SigningAlgorithm": "ECDSA_SHA_256"}),
        )
        .await;
        assert_eq!(signed.status, 200, "{:?}", signed.json());
        let verified = kms(
            par,
            &s,
            "Verify",
            json!({"KeyId": signing, "Message": message, "SigningAlgorithm": "ECDSA_SHA_256",
                   "Signature": signed.json()["Signature"]}),
        )
        .await;
        assert_eq!(verified.json()["SignatureValid"], true);
    }
    assert!(fenced_elsewhere(iad, &key));
    // Remove par, which satisfies the fence: the fence is rotated without
    // it and both keys are re-wrapped under the new epoch.
    let store = raw_store(&dir);
    let key_id: keyfence_core::KeyId = key.rsplit('/').next().unwrap().parse().unwrap();
    let under_epoch_1 = store.load_key(&key_id).unwrap().unwrap().versions;
    assert_eq!(epochs(&under_epoch_1), [1]);
    let removed = admin(fra, &s, "RemoveNode", json!({"Name": "par"})).await;
    assert_eq!(removed.status, 200, "{:?}", removed.json());
    let v = removed.json();
    assert_eq!(v["Node"]["State"], "REMOVED");
    assert_eq!(v["RotatedFences"], json!([POLICY]));
    assert_eq!(v["RewrappedKeys"], 2);
    // A version wrapped under the old epoch after the rotation (a node that
    // had not polled the new record yet, or a crash during the re-wrap):
    // the authority's periodic sweep finds it in the store and re-wraps it.
    let stored = store.load_key(&key_id).unwrap().unwrap();
    assert_eq!(epochs(&stored.versions), [2]);
    store
        .replace_versions(&stored.metadata, &under_epoch_1, stored.revision)
        .unwrap();
    let deadline = std::time::Instant::now()
        + keyfence_server::cluster::SWEEP_INTERVAL_AFTER_ROTATION
        + std::time::Duration::from_secs(20);
    loop {
        let now = store.load_key(&key_id).unwrap().unwrap().versions;
        if epochs(&now) == [2] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not re-wrap the old-epoch version"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let again = fra.cluster.as_ref().unwrap().sweep(&fra.kms).unwrap();
    assert_eq!(
        (again.rewrapped, again.failed.len()),
        (0, 0),
        "nothing left"
    );
    assert!(again.keys_read >= 2);
    // fra keeps working before it even installs the new record, and after.
    encrypt_ok(fra, &s, &key, "fra right after the removal").await;
    refresh_all(&[fra, par, iad]);
    assert_eq!(
        kms(fra, &s, "Decrypt", json!({"CiphertextBlob": blob}))
            .await
            .json()["Plaintext"],
        "Z2Vv"
    );
    let fences = admin(fra, &s, "ListFences", json!({})).await.json();
    assert_eq!(fences["Fences"][0]["Epoch"], 2);
    assert_eq!(fences["Fences"][0]["Nodes"], json!(["fra"]));
    // A key made after the removal: par, with its whole store and its old
    // keys, cannot open it; iad's forward now goes to fra only.
    let after = fenced_key(fra, &s, json!({})).await;
    refresh_all(&[par, iad]);
    assert!(
        fenced_elsewhere(par, &after),
        "a removed node opens nothing new"
    );
    // Nor can it make node-to-node requests: its certificate is no longer pinned.
    let body = serde_json::to_vec(&json!({"KeyId": after, "Plaintext": "Z2Vv"})).unwrap();
    let relayed = par
        .forwarder
        .as_ref()
        .unwrap()
        .relay(
            &fra.api_addr.to_string(),
            &signed_parts(fra, &s, &body),
            &body.clone().into(),
        )
        .await
        .unwrap();
    assert_eq!(relayed.status(), 400, "a removed node's forward is refused");
    if let Some(fra_peer) = fra.peer_addr {
        let refused = par
            .forwarder
            .as_ref()
            .unwrap()
            .relay(
                &fra_peer.to_string(),
                &signed_parts(fra, &s, &body),
                &body.clone().into(),
            )
            .await;
        assert!(
            refused.is_err(),
            "a removed node's handshake at the node-to-node listener is refused"
        );
    }
    let before = forwarded_to(&support::scrape(iad).await, "fra");
    encrypt_ok(iad, &s, &after, "forwarded after the removal").await;
    assert_eq!(forwarded_to(&support::scrape(iad).await, "fra"), before + 1);
    assert_eq!(
        admin(fra, &s, "RemoveNode", json!({"Name": "par"}))
            .await
            .error_code()
            .as_deref(),
        Some("KMSInvalidStateException")
    );

    // Master rotation: a second generation, policy keys only; old and new
    // both open until the old one is retired.
    let rotated = admin(fra, &s, "RotateMaster", json!({})).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.json());
    assert_eq!(rotated.json()["Generations"], json!([1, 2]));
    assert_eq!(rotated.json()["Fences"], 1);
    assert_eq!(rotated.json()["Nodes"], 2, "fra and iad; par is removed");
    encrypt_ok(fra, &s, &after, "fra during the master rotation").await;
    refresh_all(&[fra, iad]);
    let opened = fra.kms.fences();
    assert_eq!(opened[0].0.generations(), [1, 2]);
    assert!(opened[0].1, "fra opens the fence with generation 2");
    assert_eq!(
        admin(fra, &s, "RetireGeneration", json!({"Generation": 2}))
            .await
            .error_code()
            .as_deref(),
        Some("KMSInvalidStateException"),
        "the active generation cannot be retired"
    );
    let retired = admin(fra, &s, "RetireGeneration", json!({"Generation": 1})).await;
    assert_eq!(
        retired.json()["Generations"],
        json!([2]),
        "{:?}",
        retired.json()
    );
    refresh_all(&[fra, iad]);
    let opened = fra.kms.fences();
    assert_eq!(opened[0].0.generations(), [2]);
    assert!(opened[0].1);
    for arn in [&key, &after] {
        encrypt_ok(fra, &s, arn, "fra after retirement").await;
        encrypt_ok(iad, &s, arn, "iad (forwarded) after retirement").await;
    }

    // Attribute changes: iad moves into the EU (now satisfies: taken in, no
    // rotation), then back out (rotated without it).
    let moved = admin(
        fra,
        &s,
        "SetNodeAttributes",
        json!({"Name": "iad", "Attributes": {"country": "DE", "region": "EU"}}),
    )
    .await;
    assert_eq!(moved.status, 200, "{:?}", moved.json());
    assert_eq!(moved.json()["RotatedFences"], json!([]));
    assert_eq!(moved.json()["Node"]["ApprovedAttributes"]["region"], "EU");
    refresh_all(&[fra, iad]);
    assert!(!fenced_elsewhere(iad, &after), "iad opens the fence now");
    let back = admin(
        fra,
        &s,
        "SetNodeAttributes",
        json!({"Name": "iad", "Attributes": {"country": "US", "region": "NA"}}),
    )
    .await;
    assert_eq!(
        back.json()["RotatedFences"],
        json!([POLICY]),
        "{:?}",
        back.json()
    );
    assert_eq!(back.json()["RewrappedKeys"], 3);
    refresh_all(&[fra, iad]);
    let fences = admin(fra, &s, "ListFences", json!({})).await.json();
    assert_eq!(fences["Fences"][0]["Epoch"], 3);
    assert_eq!(fences["Fences"][0]["Nodes"], json!(["fra"]));
    let last = fenced_key(fra, &s, json!({})).await;
    iad.kms.sync().unwrap();
    assert!(fenced_elsewhere(iad, &last));
    encrypt_ok(iad, &s, &last, "forwarded to fra").await;
    // Where heavy requests run: inside the fence on the heavy pool; at iad,
    // which can only refuse and forward them, on the worker (a forwarded RSA
    // request takes no slot of iad's heavy pool).
    let rsa = fenced_key(
        fra,
        &s,
        json!({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}),
    )
    .await;
    refresh_all(&[fra, iad]);
    let place_at = |node: &Node, op: &str, body: Value| {
        keyfence_server::api::kms::place(
            &node.kms,
            "111122223333",
            keyfence_server::api::kms::operation(op).unwrap(),
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    let (heavy, worker) = (
        keyfence_server::api::kms::Place::HeavyPool,
        keyfence_server::api::kms::Place::Worker,
    );
    let sign = json!({"KeyId": rsa, "Message": message, "SigningAlgorithm": "RSASSA_PSS_SHA_256"});
    let pair = json!({"KeyId": last, "KeyPairSpec": "RSA_2048"});
    assert_eq!(place_at(fra, "Sign", sign.clone()), heavy);
    assert_eq!(place_at(iad, "Sign", sign.clone()), worker);
    assert_eq!(place_at(fra, "GenerateDataKeyPair", pair.clone()), heavy);
    assert_eq!(place_at(iad, "GenerateDataKeyPair", pair.clone()), worker);
    for (op, body) in [("Sign", sign), ("GenerateDataKeyPair", pair)] {
        let reply = kms(iad, &s, op, body).await;
        assert_eq!(reply.status, 200, "{op} at iad: {:?}", reply.json());
    }
    assert_eq!(
        kms(fra, &s, "Decrypt", json!({"CiphertextBlob": blob}))
            .await
            .json()["Plaintext"],
        "Z2Vv",
        "a ciphertext from before every change still decrypts"
    );
    if on_postgres {
        assert!(
            !dir.dir.join("keyfence.db").exists(),
            "the nodes kept everything in PostgreSQL"
        );
    }
    for node in nodes {
        node.shutdown().await;
    }
}

/// A TCP relay that holds every chunk for `delay` in each direction: a far
/// away link on loopback. Relays to the address set in `target` once it is.
async fn slow_link(
    delay: std::time::Duration,
    target: std::sync::Arc<std::sync::OnceLock<std::net::SocketAddr>>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay: std::time::Duration,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tokio::time::sleep(delay).await;
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Some(target) = target.get().copied() else {
                continue;
            };
            let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, delay));
            tokio::spawn(pump(sr, cw, delay));
        }
    });
    addr
}

/// Forwards go to the satisfying node with the lowest measured round trip,
/// not to the one heard from last: fra sits behind a slow link, so iad
/// forwards to par.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_go_to_the_nearest_satisfying_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Place::sqlite(tmp.path());
    // Far enough that a busy machine's own delays (debug build, shared
    // cores) do not blur the difference.
    let delay = std::time::Duration::from_millis(100);
    let fra_target = std::sync::Arc::new(std::sync::OnceLock::new());
    let fra_link = slow_link(delay, fra_target.clone()).await;
    let fra = start_advertising(
        &dir,
        "fra",
        &[("country", "DE"), ("region", "EU"), ("security", "high")],
        true,
        Some(fra_link.to_string()),
    )
    .await;
    fra_target.set(fra.api_addr).unwrap();
    let par = start(&dir, "par", &[("country", "FR"), ("region", "EU")], false).await;
    let iad = start(&dir, "iad", &[("country", "US"), ("region", "NA")], false).await;
    let s = signer(&fra);
    for name in ["fra", "par", "iad"] {
        assert_eq!(
            admin(&fra, &s, "ApproveNode", json!({"Name": name}))
                .await
                .status,
            200
        );
    }
    refresh_all(&[&fra, &par, &iad]);
    let key = fenced_key(&fra, &s, json!({})).await;
    refresh_all(&[&fra, &par, &iad]);
    let forwarder = iad.forwarder.as_ref().unwrap();
    forwarder.measure_once().await;
    let (to_fra, to_par) = (
        forwarder.round_trip("fra").expect("fra measured"),
        forwarder.round_trip("par").expect("par measured"),
    );
    assert!(
        to_fra >= 2 * delay && to_par < to_fra / 2,
        "fra {to_fra:?}, par {to_par:?}"
    );
    let fence = keyfence_core::fence::FenceId::of_policy(POLICY).unwrap();
    let ranked: Vec<String> = forwarder
        .peers(fence)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(ranked, ["par", "fra"]);
    for _ in 0..4 {
        encrypt_ok(&iad, &s, &key, "forwarded").await;
    }
    let metrics = support::scrape(&iad).await;
    assert_eq!(forwarded_to(&metrics, "par"), 4, "{metrics}");
    assert_eq!(forwarded_to(&metrics, "fra"), 0, "{metrics}");
    // A cryptographic operation on a key sealed here is forwarded without
    // being authorized here: the node that holds the key decides. A policy
    // that denies Encrypt to everyone, known at iad (its GetKeyPolicy answers
    // it) and at par: iad's Encrypt is refused by par, not by iad, and a
    // metadata operation is still answered at iad.
    let deny_encrypt = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*"}]})
    .to_string();
    let put = kms(
        &par,
        &s,
        "PutKeyPolicy",
        json!({"KeyId": key, "PolicyName": "default", "Policy": deny_encrypt}),
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.json());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let at_iad = kms(&iad, &s, "GetKeyPolicy", json!({"KeyId": key})).await;
        let at_par = kms(
            &par,
            &s,
            "Encrypt",
            json!({"KeyId": key, "Plaintext": "Z2Vv"}),
        )
        .await;
        if at_iad.json()["Policy"] == deny_encrypt
            && at_par.error_code().as_deref() == Some("AccessDeniedException")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the policy never reached iad and par"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let denied = kms(
        &iad,
        &s,
        "Encrypt",
        json!({"KeyId": key, "Plaintext": "Z2Vv"}),
    )
    .await;
    assert_eq!(
        denied.error_code().as_deref(),
        Some("AccessDeniedException")
    );
    assert_eq!(
        forwarded_to(&support::scrape(&iad).await, "par"),
        5,
        "refused at par"
    );
    assert_eq!(
        kms(&iad, &s, "DescribeKey", json!({"KeyId": key}))
            .await
            .status,
        200
    );
    assert_eq!(
        forwarded_to(&support::scrape(&iad).await, "par"),
        5,
        "described at iad"
    );
    // Each node's status page names it.
    for node in [&fra, &par, &iad] {
        let name = node.cluster.as_ref().unwrap().name().to_owned();
        let (_, _, page) = support::get_root(&Client::new(node, ClientGroups::Default)).await;
        assert!(page.contains(&format!("<h1>{name}</h1>")), "{page}");
    }
    for node in [fra, par, iad] {
        node.shutdown().await;
    }
    // Each request is in both logs (each node has its own file in the shared
    // data directory): at par, executed, from a node; at iad, the hop
    // (queued without waiting, durable at close).
    let encrypts = |name: &str, source: Source| {
        use keyfence_core::audit::AuditStore;
        let file = dir.dir.join(keyfence_server::audit::named_file(name));
        let store = keyfence_store::SqliteAuditStore::open_existing(&file).unwrap();
        store
            .read(name, 0, 10_000)
            .unwrap()
            .iter()
            .map(|e| AuditRecord::decode(&e.data).unwrap())
            .filter(|r| r.operation == "Encrypt" && r.source == source)
            .map(|r| r.outcome)
            .collect::<Vec<_>>()
    };
    let then = |last: &str| {
        let mut outcomes = vec![Outcome::Success; 4];
        outcomes.push(Outcome::Failure(last.into()));
        outcomes
    };
    assert_eq!(encrypts("par", Source::Node), then("AccessDeniedException"));
    assert_eq!(encrypts("iad", Source::Kms), then("Forwarded400"));
    assert!(encrypts("fra", Source::Node).is_empty());
}
