//! `keyfence key import` against a real node: the binary wraps material with
//! X-Wing (or RSA + AES-KWP), and the node then decrypts a ciphertext made
//! independently from the same material — so the material arrived intact.

use std::process::Command;

use keyfence_core::{EncryptionContext, KeyId};
use keyfence_crypto::{blob, SymmetricKey};
use keyfence_server::{Config, Node};

const ACCOUNT: &str = "111122223333";

async fn node(dir: &std::path::Path) -> Node {
    Node::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum: true,
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
    })
    .await
    .unwrap()
}

async fn run(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_keyfence"))
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_material_over_pq_tls_with_either_wrapping() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = node(&data).await;
    let material = [0x5au8; 32];
    let material_file = tmp.path().join("material.bin");
    std::fs::write(&material_file, material).unwrap();

    for wrap in ["pq-hybrid", "rsa-aes-kw"] {
        let (ok, stdout, stderr) = run(vec![
            "key".into(),
            "import".into(),
            "--endpoint".into(),
            format!("https://127.0.0.1:{}", node.api_addr.port()),
            "--data-dir".into(),
            data.display().to_string(),
            "--material".into(),
            material_file.display().to_string(),
            "--wrap".into(),
            wrap.into(),
            "--post-quantum".into(),
        ])
        .await;
        assert!(ok, "{wrap}: {stderr}");
        let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let arn = out["KeyId"].as_str().unwrap();
        let id: KeyId = arn.rsplit('/').next().unwrap().parse().unwrap();

        let context = EncryptionContext::default();
        let made_elsewhere = blob::seal(
            &SymmetricKey::from(material),
            *id.as_bytes(),
            1,
            &context.canonical_bytes(),
            b"made with the same material",
        )
        .unwrap()
        .to_bytes();
        let plain = node
            .kms
            .decrypt(ACCOUNT, &made_elsewhere, &context, None, None)
            .unwrap();
        assert_eq!(
            plain.plaintext.expose(),
            b"made with the same material",
            "{wrap}"
        );
    }

    let short = tmp.path().join("short.bin");
    std::fs::write(&short, [1u8; 31]).unwrap();
    let (ok, _, stderr) = run(vec![
        "key".into(),
        "import".into(),
        "--endpoint".into(),
        format!("https://127.0.0.1:{}", node.api_addr.port()),
        "--data-dir".into(),
        data.display().to_string(),
        "--material".into(),
        short.display().to_string(),
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("IncorrectKeyMaterialException"), "{stderr}");
    node.shutdown().await;
}
