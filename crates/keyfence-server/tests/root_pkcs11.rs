//! The root of trust in a real SoftHSM2 token (Debian's `softhsm2`, installed
//! by scripts/setup-softhsm.sh): the key's protection attributes as the token
//! reports them, a node serving Encrypt and Decrypt with it over real TLS,
//! a restart, a domain-key rotation with the token wrapping the new domain
//! key, and the clear errors when the token or the key is missing.
//!
//! Every run makes its own token directory (SOFTHSM2_CONF in a temporary
//! directory) and each test its own token.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_core::RootOfTrust;
use keyfence_crypto::SymmetricKey;
use keyfence_server::config::{Config, StoreLocation};
use keyfence_server::datadir::{DataDir, DataDirError, RootInit};
use keyfence_server::domain_keys::{check, Schedule};
use keyfence_server::root::{Pkcs11Error, Pkcs11Root, Pkcs11Section, RootKind};
use keyfence_server::tls::ClientGroups;
use keyfence_server::{Node, NodeError};
use serde_json::json;
use support::{Client, Signer};

const PIN: &str = "4711-user";

/// The SoftHSM2 module, and SOFTHSM2_CONF pointing at a token directory of
/// this run (kept for the life of the test process), holding one fresh token
/// per label of [`TOKENS`]: SoftHSM2 reads its tokens when the module is
/// initialized, so every token is made before the first test loads it.
fn softhsm() -> &'static (PathBuf, tempfile::TempDir) {
    static SETUP: OnceLock<(PathBuf, tempfile::TempDir)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-softhsm.sh");
        let out = Command::new("bash").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "setup-softhsm.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let module = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        // Set before the module is first loaded (it reads it at C_Initialize).
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var("KEYFENCE_TEST_PKCS11_PIN", PIN);
        for label in TOKENS {
            let out = Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", "so-secret-1"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "softhsm2-util: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (module, dir)
    })
}

/// The tokens of this run, one per test (and one left without a key).
const TOKENS: [&str; 7] = [
    "kf-attrs",
    "kf-rotate",
    "kf-pin",
    "kf-node",
    "kf-missing",
    "kf-empty",
    "kf-wrong-pin",
];

/// The `[pkcs11]` table for this run's token `label`.
fn token(label: &str) -> Pkcs11Section {
    assert!(TOKENS.contains(&label), "{label} is not made by softhsm()");
    let (module, _) = softhsm();
    section(module, label)
}

fn section(module: &Path, label: &str) -> Pkcs11Section {
    Pkcs11Section {
        module: module.to_path_buf(),
        token_label: label.into(),
        key_label: None,
        pin_env: Some("KEYFENCE_TEST_PKCS11_PIN".into()),
        pin_file: None,
    }
}

fn config(data_dir: &Path, root: RootKind) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum: false,
        credentials: Vec::new(),
        node: None,
        principals: Default::default(),
        audit: Default::default(),
        default_fence: None,
        store: StoreLocation::DataDir,
        max_staleness: std::time::Duration::from_secs(60),
        feed_retention: std::time::Duration::from_secs(900),
        limits: Default::default(),
        root: root.into(),
    }
}

#[test]
fn the_root_key_is_generated_in_the_token_sensitive_and_never_extractable() {
    let section = token("kf-attrs");
    let created = Pkcs11Root::create(&section).unwrap();
    let attrs = created.attributes().unwrap();
    assert!(!attrs.extractable, "CKA_EXTRACTABLE must be false");
    assert!(attrs.sensitive, "CKA_SENSITIVE must be true");
    assert!(attrs.never_extractable, "CKA_NEVER_EXTRACTABLE");
    assert_eq!(attrs.value_len, 32, "AES-256");
    assert!(matches!(
        Pkcs11Root::create(&section),
        Err(Pkcs11Error::KeyExists { .. })
    ));

    // Reopened from the token, it unwraps what it wrapped, bound to the id.
    let root = Pkcs11Root::open(&section).unwrap();
    assert_eq!(root.attributes().unwrap(), attrs);
    let domain = SymmetricKey::generate().unwrap();
    let wrapped = created.wrap_domain_key(7, &domain).unwrap();
    assert_eq!(wrapped.len(), 12 + 32 + 16);
    assert_eq!(root.unwrap_domain_key(7, &wrapped).unwrap(), domain);
    assert!(
        root.unwrap_domain_key(8, &wrapped).is_err(),
        "bound to its id"
    );
    let mut flipped = wrapped.clone();
    flipped[20] ^= 1;
    assert!(
        root.unwrap_domain_key(7, &flipped).is_err(),
        "authenticated"
    );
    let sealed = root.seal("identity", b"secret bytes").unwrap();
    assert_eq!(
        root.unseal("identity", &sealed).unwrap().expose(),
        b"secret bytes"
    );
    assert!(
        root.unseal("authority", &sealed).is_err(),
        "bound to its label"
    );

    // A wrong PIN is refused by the token (one no other test logs in to:
    // PKCS#11 login state is per token and process).
    std::env::set_var("KEYFENCE_TEST_WRONG_PIN", "not-the-pin");
    let wrong = Pkcs11Section {
        pin_env: Some("KEYFENCE_TEST_WRONG_PIN".into()),
        ..token("kf-wrong-pin")
    };
    assert!(matches!(
        Pkcs11Root::open(&wrong),
        Err(Pkcs11Error::Call { what: "login", .. })
    ));
}

#[test]
fn the_pin_comes_from_a_file_or_the_environment_never_empty() {
    let mut section = token("kf-pin");
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    section.pin_env = None;
    section.pin_file = Some(pin_file);
    Pkcs11Root::create(&section).unwrap();
    section.pin_env = Some("KEYFENCE_TEST_UNSET_PIN_VARIABLE".into());
    let both = Pkcs11Root::open(&section).err().unwrap().to_string();
    assert!(both.contains("not both"), "{both}");
    section.pin_file = None;
    let unset = Pkcs11Root::open(&section).err().unwrap().to_string();
    assert!(
        unset.contains("$KEYFENCE_TEST_UNSET_PIN_VARIABLE") && !unset.contains(PIN),
        "{unset}"
    );
}

async fn roundtrip(node: &Node, blob: Option<String>) -> String {
    let client = Client::new(node, ClientGroups::HybridOnly);
    let me = Signer::of(node);
    if let Some(blob) = blob {
        let dec = client
            .kms(&me, "Decrypt", json!({"CiphertextBlob": blob}))
            .await;
        assert_eq!(dec.status, 200, "{:?}", dec.json());
        assert_eq!(dec.json()["Plaintext"], B64.encode(b"under the HSM"));
    }
    let created = client.kms(&me, "CreateKey", json!({})).await;
    assert_eq!(created.status, 200, "{:?}", created.json());
    let key = created.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let enc = client
        .kms(
            &me,
            "Encrypt",
            json!({"KeyId": key, "Plaintext": B64.encode(b"under the HSM")}),
        )
        .await;
    assert_eq!(enc.status, 200, "{:?}", enc.json());
    let blob = enc.json()["CiphertextBlob"].as_str().unwrap().to_string();
    let dec = client
        .kms(&me, "Decrypt", json!({"CiphertextBlob": blob.clone()}))
        .await;
    assert_eq!(dec.json()["Plaintext"], B64.encode(b"under the HSM"));
    blob
}

#[tokio::test]
async fn a_node_serves_with_the_hsm_root_and_restarts() {
    let section = token("kf-node");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let root = RootKind::Pkcs11(section.clone());
    // No data directory yet: an HSM node does not make one at start.
    let err = Node::start(config(&data, root.clone()))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, NodeError::DataDir(DataDirError::NotInitialized { .. })),
        "{err}"
    );
    let (dir, _) = DataDir::init_with(&data, &RootInit::Pkcs11(&section)).unwrap();
    assert!(
        !dir.root_key().exists(),
        "no root key file: the key is in the token"
    );

    let node = Node::start(config(&data, root.clone())).await.unwrap();
    let blob = roundtrip(&node, None).await;
    node.shutdown().await;

    // Restart: the domain key unwraps under the same token key.
    let node = Node::start(config(&data, root.clone())).await.unwrap();
    roundtrip(&node, Some(blob)).await;
    node.shutdown().await;

    // The stored domain key is not under a file root: a file-root start fails.
    let err = Node::start(config(&data, RootKind::File)).await.err();
    assert!(
        err.is_some(),
        "a file root must not open an HSM node's data"
    );
}

/// The domain key rotates with the root in the token: the new domain key is
/// wrapped by the token, the schedule re-wraps what the old one wrapped and
/// destroys it, and after a restart what was encrypted under either decrypts.
#[tokio::test]
async fn the_domain_key_rotates_under_the_hsm_root() {
    let section = token("kf-rotate");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    DataDir::init_with(&data, &RootInit::Pkcs11(&section)).unwrap();
    let root = RootKind::Pkcs11(section);
    let node = Node::start(config(&data, root.clone())).await.unwrap();
    let before = roundtrip(&node, None).await;
    let kms = std::sync::Arc::clone(&node.kms);
    let held = tokio::task::spawn_blocking(move || {
        assert_eq!(kms.rotate_domain_key().unwrap(), 2);
        let schedule = Schedule::new(std::time::Duration::from_secs(24 * 3600), None);
        // (The node's own schedule may have made this pass first.)
        check(&kms, &schedule, None).unwrap();
        kms.held_domain_keys()
    })
    .await
    .unwrap();
    assert_eq!(held, [2]);
    let after = roundtrip(&node, Some(before.clone())).await;
    node.shutdown().await;

    let node = Node::start(config(&data, root)).await.unwrap();
    assert_eq!(node.kms.held_domain_keys(), [2]);
    roundtrip(&node, Some(before)).await;
    roundtrip(&node, Some(after)).await;
    node.shutdown().await;
}

#[tokio::test]
async fn start_up_fails_clearly_when_the_token_or_the_key_is_missing() {
    let (module, _) = softhsm();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let made = token("kf-missing");
    DataDir::init_with(&data, &RootInit::Pkcs11(&made)).unwrap();

    let no_token = section(module, "kf-no-such-token");
    let err = Node::start(config(&data, RootKind::Pkcs11(no_token)))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no token labelled \"kf-no-such-token\""),
        "{err}"
    );

    let empty = token("kf-empty");
    let err = Node::start(config(&data, RootKind::Pkcs11(empty)))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("holds no root key labelled \"keyfence-root\"")
            && err.contains("keyfence init --root pkcs11"),
        "{err}"
    );
    assert!(!err.contains(PIN), "the PIN is never in an error");

    let bad_module = Pkcs11Section {
        module: tmp.path().join("no-such-module.so"),
        ..made
    };
    let err = Node::start(config(&data, RootKind::Pkcs11(bad_module)))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot load module"), "{err}");
}
