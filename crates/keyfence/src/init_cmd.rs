//! `keyfence init`: a new data directory with the root of trust chosen by
//! `--root` (a key file, a key in a PKCS#11 token) or a quorum-sealed root
//! (`--shares N --threshold M`, whose shares are handed out here once).

use std::path::{Path, PathBuf};

use clap::Args;
use keyfence_server::datadir::{DataDir, RootInit};
use keyfence_server::root::quorum::ShareText;
use keyfence_server::root::RootKind;
use keyfence_server::ConfigFile;

/// How `init` makes the root of trust.
#[derive(Args, Debug)]
pub struct RootArgs {
    /// Root of trust: `file` (root.key), `pkcs11` (a key generated in the
    /// token of the config's [pkcs11] table) or `shamir` (implied by --shares).
    #[arg(long, value_parser = ["file", "pkcs11", "shamir"])]
    root: Option<String>,
    /// Node config file; with --root pkcs11 its [pkcs11] table names the
    /// module, token and PIN source (the directory made is still --data-dir).
    #[arg(long, env = "KEYFENCE_CONFIG")]
    config: Option<PathBuf>,
    /// Quorum-sealed root: split the unsealing key into this many shares.
    #[arg(long, requires = "threshold")]
    shares: Option<u16>,
    /// Quorum-sealed root: shares needed to unseal.
    #[arg(long, requires = "shares")]
    threshold: Option<u16>,
    /// Write each share to its own file DIR/share-N.txt (mode 0600) instead of
    /// printing them.
    #[arg(long, requires = "shares")]
    share_dir: Option<PathBuf>,
}

/// Runs `keyfence init`.
pub fn init(data_dir: PathBuf, args: RootArgs) -> Result<(), String> {
    let root = match (args.root.as_deref(), args.shares, args.threshold) {
        (None | Some("shamir"), Some(shares), Some(threshold)) => {
            RootInit::Shamir { threshold, shares }
        }
        (Some("shamir"), _, _) => return Err("--root shamir needs --shares and --threshold".into()),
        (Some(_), Some(_), _) => return Err("--shares goes with --root shamir only".into()),
        (Some("pkcs11"), None, None) => {
            let path = args.config.as_ref().ok_or(
                "--root pkcs11 reads the [pkcs11] table of the node config: give --config",
            )?;
            let file = ConfigFile::read(path).map_err(|e| e.to_string())?;
            match RootKind::resolve(Some("pkcs11"), file.pkcs11).map_err(|e| e.to_string())? {
                RootKind::Pkcs11(section) => {
                    return finish(
                        &data_dir,
                        &RootInit::Pkcs11(&section),
                        None,
                        &format!(
                            "root key {:?} generated in token {:?}",
                            section.key_label(),
                            section.token_label
                        ),
                    )
                }
                _ => unreachable!("resolve(pkcs11) is pkcs11"),
            }
        }
        _ => RootInit::File,
    };
    let what = match root {
        RootInit::Shamir { threshold, shares } => {
            format!("root sealed under {shares} shares, {threshold} of which unseal it")
        }
        _ => "root key file root.key".into(),
    };
    finish(&data_dir, &root, args.share_dir.as_deref(), &what)
}

fn finish(
    data_dir: &Path,
    root: &RootInit,
    share_dir: Option<&Path>,
    what: &str,
) -> Result<(), String> {
    if let Some(dir) = share_dir {
        prepare_share_dir(dir)?;
    }
    let (dir, init) = DataDir::init_with(data_dir, root).map_err(|e| e.to_string())?;
    println!("created data directory {}", dir.path.display());
    println!("  root of trust:  {what}");
    println!("  CA certificate: {}", dir.pki.ca_cert.display());
    println!(
        "  credential:     {} (account {}), secret in {}",
        init.credential.access_key_id,
        init.credential.account_id,
        dir.credentials().display()
    );
    if !init.shares.is_empty() {
        hand_out(&init.shares, share_dir)?;
    }
    Ok(())
}

/// Makes the share directory (0700) and checks no share file is there.
fn prepare_share_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("share directory {}: {e}", dir.display()))?;
    for i in 1..=255u16 {
        let path = share_path(dir, i);
        if path.exists() {
            return Err(format!(
                "{} exists; refusing to overwrite a share",
                path.display()
            ));
        }
    }
    Ok(())
}

fn share_path(dir: &Path, index: u16) -> PathBuf {
    dir.join(format!("share-{index}.txt"))
}

/// Prints each share once, or writes each to its own file.
fn hand_out(shares: &[ShareText], dir: Option<&Path>) -> Result<(), String> {
    match dir {
        Some(dir) => {
            for (i, share) in shares.iter().enumerate() {
                let path = share_path(dir, i as u16 + 1);
                let mut line = zeroize::Zeroizing::new(share.to_string());
                line.push('\n');
                keyfence_server::root_key::write_private(&path, line.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                println!("  share {} of {}: {}", i + 1, shares.len(), path.display());
            }
            println!("Give each file to one operator; keyfence keeps no copy.");
        }
        None => {
            println!("Shares (shown once; give each to one operator, keyfence keeps no copy):");
            for (i, share) in shares.iter().enumerate() {
                println!("  share {}: {}", i + 1, share.as_str());
            }
        }
    }
    println!("The node starts sealed (root = \"shamir\"); unseal it with `keyfence unseal`.");
    Ok(())
}
