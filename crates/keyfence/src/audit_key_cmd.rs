//! The receiving end of `export-audit-key`: a recipient's X-Wing key pair
//! (`keyfence audit recipient`) and the opening of what the node returned
//! (`keyfence audit open-key`). The node wraps its audit signing key to the
//! recipient's public key only when a quorum of operators approved the
//! export (`keyfence admin propose export-audit-key recipient=…`).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_core::audit::AuditSigner;
use keyfence_crypto::asym::xwing::XWingPrivateKey;
use keyfence_server::root_key::write_private;
use serde_json::Value;
use zeroize::Zeroizing;

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn pub_path(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", out.display()))
}

/// `keyfence audit recipient --out FILE`: a fresh X-Wing key pair, the
/// private key (base64) to FILE with mode 0600, the public key (base64, one
/// line) to FILE.pub: the `recipient=` of an export-audit-key proposal.
pub fn recipient(out: &Path) -> Result<(), String> {
    let key = XWingPrivateKey::generate().map_err(|e| e.to_string())?;
    let public = pub_path(out);
    if public.symlink_metadata().is_ok() {
        return Err(format!("{}: file exists", public.display()));
    }
    let private = Zeroizing::new(B64.encode(key.to_bytes()));
    write_private(out, private.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(&public, format!("{}\n", B64.encode(key.public_key())))
        .map_err(|e| format!("{}: {e}", public.display()))?;
    println!("private key: {} (keep it offline)", out.display());
    println!("public key:  {}", public.display());
    println!(
        "propose the export with: keyfence admin propose export-audit-key recipient=$(cat {})",
        public.display()
    );
    Ok(())
}

fn member<'a>(export: &'a Value, name: &str, file: &Path) -> Result<&'a str, String> {
    export[name].as_str().ok_or_else(|| {
        format!(
            "{}: no {name} (is it what `admin execute --out` wrote?)",
            file.display()
        )
    })
}

fn base64_member(export: &Value, name: &str, file: &Path) -> Result<Vec<u8>, String> {
    B64.decode(member(export, name, file)?)
        .map_err(|_| format!("{}: {name} is not base64", file.display()))
}

/// `keyfence audit open-key`: opens the wrapped key in `export` (the
/// `Result` of an executed export-audit-key proposal) with the recipient's
/// private key, checks that it is the signing key of the log's public key
/// (the one in `export`, and `pinned` if given), and writes it to `out` as
/// PKCS#8 DER with mode 0600.
pub fn open_key(
    key: &Path,
    export: &Path,
    pinned: Option<&Path>,
    out: &Path,
) -> Result<(), String> {
    let private = Zeroizing::new(
        B64.decode(read_text(key)?.trim())
            .map_err(|_| format!("{}: not a base64 X-Wing private key", key.display()))?,
    );
    let recipient =
        XWingPrivateKey::from_bytes(&private).map_err(|e| format!("{}: {e}", key.display()))?;
    let result: Value = serde_json::from_str(&read_text(export)?)
        .map_err(|e| format!("{}: {e}", export.display()))?;
    let log = member(&result, "Log", export)?;
    let claimed = base64_member(&result, "PublicKey", export)?;
    let wrapped = base64_member(&result, "WrappedKey", export)?;
    let signer = AuditSigner::open_export(&recipient, &wrapped).map_err(|_| {
        format!(
            "{}: the wrapped key does not open with {} (another recipient's export, or altered)",
            export.display(),
            key.display()
        )
    })?;
    let public = signer.public_key().map_err(|e| e.to_string())?;
    if public != claimed {
        return Err(format!(
            "{}: the key opened is not the signing key of the public key it came with",
            export.display()
        ));
    }
    if let Some(pinned) = pinned {
        let pinned_key = std::fs::read(pinned).map_err(|e| format!("{}: {e}", pinned.display()))?;
        if public != pinned_key {
            return Err(format!(
                "the key opened is not the signing key of {} (the pinned public key)",
                pinned.display()
            ));
        }
    }
    write_private(out, &signer.to_pkcs8()).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "opened the signing key of audit log {log}; it matches its public key; wrote PKCS#8 to {}",
        out.display()
    );
    Ok(())
}
