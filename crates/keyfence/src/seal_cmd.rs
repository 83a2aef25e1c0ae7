//! `keyfence unseal`, `keyfence seal`, `keyfence seal-status`: a
//! quorum-sealed node's admin operations (`KeyfenceAdmin.Unseal`, `.Seal`,
//! `.SealStatus`), and `keyfence server` for a node that starts sealed.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::Args;
use keyfence_bench::connect::ConnectArgs;
use keyfence_server::seal::SealedNode;
use keyfence_server::Config;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// `keyfence unseal`: one operator's share, read from a file or standard
/// input (never from the command line, where other users could see it).
#[derive(Args, Debug)]
pub struct UnsealArgs {
    /// File holding the share (`kfshare1-…`); without it, read from standard input.
    #[arg(long)]
    share_file: Option<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// `keyfence seal` and `keyfence seal-status`.
#[derive(Args, Debug)]
pub struct SealArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

fn describe(v: &Value) -> String {
    if v["Sealed"].as_bool() == Some(false) {
        "unsealed".into()
    } else {
        format!(
            "sealed: {} of {} shares given ({} shares exist)",
            v["Given"], v["Threshold"], v["Shares"]
        )
    }
}

fn read_share(file: Option<&PathBuf>) -> Result<Zeroizing<String>, String> {
    let mut text = Zeroizing::new(String::new());
    match file {
        Some(path) => {
            text = Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
            );
        }
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("paste your share and press Enter:");
            }
            std::io::stdin()
                .lock()
                .read_line(&mut text)
                .map_err(|e| format!("reading the share: {e}"))?;
        }
    }
    let share = Zeroizing::new(text.trim().to_owned());
    if share.is_empty() {
        return Err("no share given".into());
    }
    Ok(share)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Runs `keyfence unseal`.
pub fn unseal(args: UnsealArgs) -> Result<(), String> {
    let share = read_share(args.share_file.as_ref())?;
    let v = runtime()?.block_on(crate::cluster_cmd::admin_call(
        &args.connect,
        "Unseal",
        json!({"Share": share.as_str()}),
    ))?;
    println!("{}", describe(&v));
    Ok(())
}

/// Runs `keyfence seal`.
pub fn seal(args: SealArgs) -> Result<(), String> {
    let v = runtime()?.block_on(crate::cluster_cmd::admin_call(
        &args.connect,
        "Seal",
        json!({}),
    ))?;
    println!("{}", describe(&v));
    Ok(())
}

/// Runs `keyfence seal-status`.
pub fn status(args: SealArgs) -> Result<(), String> {
    let v = runtime()?.block_on(crate::cluster_cmd::admin_call(
        &args.connect,
        "SealStatus",
        json!({}),
    ))?;
    println!("{}", describe(&v));
    Ok(())
}

/// `keyfence server` for a node whose root is quorum-sealed: serves sealed
/// until unsealed, until Ctrl-C or SIGTERM.
pub async fn serve_sealed(config: Config) -> Result<(), String> {
    let node = SealedNode::start(config).await.map_err(|e| e.to_string())?;
    let status = node.gate.status();
    println!("keyfence listening on https://{}", node.api_addr);
    println!("  data directory: {}", node.data_dir.path.display());
    println!("  metrics:        http://{}/metrics", node.metrics_addr);
    println!(
        "  SEALED: every KMS request is refused until {} of {} operators run `keyfence unseal --endpoint https://{}`",
        status.threshold, status.shares, node.api_addr
    );
    crate::shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}
