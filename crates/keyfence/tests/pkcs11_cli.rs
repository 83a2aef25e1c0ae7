//! The HSM root through the real CLI and a real node process: a fresh
//! SoftHSM2 token, `keyfence init --root pkcs11 --config`, `keyfence server`
//! serving Encrypt and Decrypt, and `keyfence server` refusing to start, with
//! a clear message, when the key is not in the token.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_bench::connect::ConnectArgs;
use keyfence_server::tls::ClientGroups;
use serde_json::{json, Value};

const PIN: &str = "9911-cli";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keyfence(softhsm_conf: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyfence"));
    c.env("SOFTHSM2_CONF", softhsm_conf)
        .env("KEYFENCE_PKCS11_PIN", PIN);
    c
}

#[test]
fn init_makes_the_key_in_the_token_and_the_node_serves_with_it() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-softhsm.sh");
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let module = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("tokens")).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tmp.path().join("tokens").display()
        ),
    )
    .unwrap();
    for label in ["kf-cli", "kf-cli-empty"] {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                "so-1",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let data = tmp.path().join("data");
    let node_toml = |token: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nroot = \"pkcs11\"\n[pkcs11]\nmodule = {module:?}\ntoken_label = \"{token}\"\n",
            data.to_str().unwrap()
        )
    };
    let config = tmp.path().join("node.toml");
    std::fs::write(&config, node_toml("kf-cli")).unwrap();

    let out = keyfence(&conf)
        .args(["init", "--root", "pkcs11", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("root key \"keyfence-root\" generated in token \"kf-cli\""),
        "{text}"
    );
    assert!(!text.contains(PIN));
    assert!(!data.join("root.key").exists());
    // A second init of the same token refuses to make another key.
    let again = keyfence(&conf)
        .args(["init", "--root", "pkcs11", "--data-dir"])
        .arg(tmp.path().join("data2"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a key labelled"));

    let server = Server(
        keyfence(&conf)
            .args(["server", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let endpoint = loop {
        if let Ok(text) = std::fs::read_to_string(data.join("node.addr.json")) {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["pid"].as_u64() == Some(u64::from(server.0.id())) {
                break format!("https://{}", v["api"].as_str().unwrap());
            }
        }
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let args = ConnectArgs {
        endpoint,
        data_dir: Some(data.clone()),
        ca: None,
        access_key: None,
        secret_key: None,
        region: "us-east-1".into(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = args
            .context(ClientGroups::HybridOnly)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let created = conn.kms("CreateKey", &json!({})).await.unwrap().json();
        let key = created["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string();
        let enc = conn
            .kms(
                "Encrypt",
                &json!({"KeyId": key, "Plaintext": B64.encode(b"hsm")}),
            )
            .await
            .unwrap();
        assert_eq!(enc.status, 200, "{:?}", enc.json());
        let dec = conn
            .kms(
                "Decrypt",
                &json!({"CiphertextBlob": enc.json()["CiphertextBlob"]}),
            )
            .await
            .unwrap();
        assert_eq!(dec.json()["Plaintext"], B64.encode(b"hsm"));
    });
    drop(server);

    // The same data directory against a token without the key: a clear refusal.
    std::fs::write(&config, node_toml("kf-cli-empty")).unwrap();
    let out = keyfence(&conf)
        .args(["server", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("token \"kf-cli-empty\" holds no root key labelled \"keyfence-root\""),
        "{err}"
    );
    assert!(!err.contains(PIN));
}
