//! `keyfence key`: key commands that the AWS CLI has no words for. Today:
//! importing key material wrapped with the post-quantum X-Wing KEM.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use keyfence_crypto::asym::{self, xwing, WrappingAlgorithm};
use keyfence_server::tls::ClientGroups;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use keyfence_bench::client::Connection;
use keyfence_bench::connect::ConnectArgs;

/// `keyfence key …`.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Import key material into a key created with Origin EXTERNAL (or create one).
    Import(ImportArgs),
}

/// How the material is wrapped on its way to the node.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// X-Wing (X25519 + ML-KEM-768) then AES-256-KWP: safe against a future quantum
    /// attacker who recorded the import (WrappingAlgorithm XWING_AES_KEY_WRAP).
    PqHybrid,
    /// AWS's RSA_AES_KEY_WRAP_SHA_256 with an RSA-4096 wrapping key (classical).
    RsaAesKw,
}

/// Arguments of `keyfence key import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Key to import into (id or ARN). Without it, a new EXTERNAL key of --key-spec is created.
    #[arg(long)]
    key_id: Option<String>,
    /// KeySpec of the key to create when --key-id is absent.
    #[arg(long, default_value = "SYMMETRIC_DEFAULT")]
    key_spec: String,
    /// KeyUsage of the key to create when --key-id is absent.
    #[arg(long, default_value = "ENCRYPT_DECRYPT")]
    key_usage: String,
    /// File with the key material: 32 raw bytes for SYMMETRIC_DEFAULT, the raw key for
    /// HMAC, PKCS#8 DER for asymmetric keys.
    #[arg(long)]
    material: PathBuf,
    /// Wrapping of the material in transit.
    #[arg(long, value_enum, default_value = "pq-hybrid")]
    wrap: Wrap,
    /// Days until the material expires (KEY_MATERIAL_EXPIRES); without it, it never expires.
    #[arg(long)]
    valid_days: Option<u32>,
    /// Accept only a hybrid post-quantum TLS handshake with the node.
    #[arg(long)]
    post_quantum: bool,
}

async fn call(conn: &mut Connection, operation: &str, body: Value) -> Result<Value, String> {
    let reply = conn
        .kms(operation, &body)
        .await
        .map_err(|e| format!("{operation}: {e}"))?;
    if reply.status != 200 {
        let v = reply.json();
        return Err(format!(
            "{operation}: {} ({})",
            v["message"].as_str().unwrap_or("no message"),
            reply
                .error_type()
                .unwrap_or_else(|| format!("HTTP {}", reply.status))
        ));
    }
    Ok(reply.json())
}

fn blob(v: &Value, member: &str) -> Result<Vec<u8>, String> {
    let s = v[member]
        .as_str()
        .ok_or_else(|| format!("response has no {member}"))?;
    B64.decode(s).map_err(|e| format!("{member}: {e}"))
}

/// Wraps `material` for the parameters the node returned.
fn wrap(kind: Wrap, public_key: &[u8], material: &[u8]) -> Result<Vec<u8>, String> {
    match kind {
        Wrap::PqHybrid => xwing::wrap_key_material(public_key, material),
        Wrap::RsaAesKw => asym::wrap_for_import(
            asym::KeySpec::Rsa4096,
            public_key,
            WrappingAlgorithm::RsaAesKeyWrapSha256,
            material,
        ),
    }
    .map_err(|e| format!("wrapping the material: {e}"))
}

async fn import(args: ImportArgs) -> Result<(), String> {
    let material = Zeroizing::new(
        std::fs::read(&args.material).map_err(|e| format!("{}: {e}", args.material.display()))?,
    );
    let groups = if args.post_quantum {
        ClientGroups::HybridOnly
    } else {
        ClientGroups::Default
    };
    let mut conn = args
        .connect
        .context(groups)?
        .connect()
        .await
        .map_err(|e| format!("connecting to {}: {e}", args.connect.endpoint))?;
    let key_id = match args.key_id {
        Some(id) => id,
        None => {
            let created = call(
                &mut conn,
                "CreateKey",
                json!({"KeySpec": args.key_spec, "KeyUsage": args.key_usage, "Origin": "EXTERNAL"}),
            )
            .await?;
            let arn = created["KeyMetadata"]["Arn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            eprintln!("created {arn}");
            arn
        }
    };
    let (spec, algorithm) = match args.wrap {
        Wrap::PqHybrid => ("X25519_ML_KEM_768", "XWING_AES_KEY_WRAP"),
        Wrap::RsaAesKw => ("RSA_4096", "RSA_AES_KEY_WRAP_SHA_256"),
    };
    let params = call(
        &mut conn,
        "GetParametersForImport",
        json!({"KeyId": key_id, "WrappingAlgorithm": algorithm, "WrappingKeySpec": spec}),
    )
    .await?;
    let wrapped = wrap(args.wrap, &blob(&params, "PublicKey")?, &material)?;
    let mut request = json!({
        "KeyId": key_id,
        "ImportToken": params["ImportToken"],
        "EncryptedKeyMaterial": B64.encode(&wrapped),
        "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
    });
    if let Some(days) = args.valid_days {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        request["ExpirationModel"] = json!("KEY_MATERIAL_EXPIRES");
        request["ValidTo"] = json!(now.as_secs() + u64::from(days) * 86_400);
    }
    let imported = call(&mut conn, "ImportKeyMaterial", request).await?;
    println!(
        "{}",
        json!({"KeyId": imported["KeyId"], "WrappingAlgorithm": algorithm, "WrappingKeySpec": spec})
    );
    Ok(())
}

/// Runs a `keyfence key` command.
pub fn main(command: KeyCommand) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match command {
        KeyCommand::Import(args) => rt.block_on(import(args)),
    }
}
