//! The sealed root key file in the data directory.
//!
//! Format (version 1): magic `KFROOT` ‖ version 0x01 ‖ mode ‖ body.
//! - mode 0, body = the 32-byte key: protected by the file's 0600 permissions.
//! - mode 1, body = salt (16) ‖ iterations (u32 BE) ‖ wrapped key (60):
//!   the key wrapped under PBKDF2-HMAC-SHA256(passphrase).

use std::fs;
use std::io::Write;
use std::path::Path;

use keyfence_crypto::{passphrase, rand, wrap, SymmetricKey};

const MAGIC: &[u8; 6] = b"KFROOT";
const VERSION: u8 = 1;
const BINDING: &[u8] = b"keyfence/v1/root-key";

/// Fewest PBKDF2 iterations a sealed file may name: below this the seal is
/// too weak to be one keyfence wrote (it writes
/// [`passphrase::DEFAULT_ITERATIONS`], 600,000).
pub const MIN_ITERATIONS: u32 = 100_000;
/// Most PBKDF2 iterations a sealed file may name: ten times what keyfence
/// writes, a few seconds of one core. The count is read from the file, and
/// any u32 (up to 4.3 billion, hours of CPU) would otherwise hold the start.
pub const MAX_ITERATIONS: u32 = 10 * passphrase::DEFAULT_ITERATIONS;

/// A root key file could not be read, written or unsealed.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    /// File system failure.
    #[error("root key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a root key file this build reads.
    #[error("root key file is malformed: {0}")]
    Malformed(&'static str),
    /// The file names a PBKDF2 iteration count outside
    /// [`MIN_ITERATIONS`]`..=`[`MAX_ITERATIONS`].
    #[error("root key file names {found} PBKDF2 iterations; keyfence accepts {MIN_ITERATIONS} to {MAX_ITERATIONS}")]
    Iterations {
        /// The count in the file.
        found: u32,
    },
    /// The file is sealed with a passphrase and none was given.
    #[error("root key is sealed with a passphrase: set KEYFENCE_ROOT_PASSPHRASE")]
    PassphraseRequired,
    /// The passphrase does not unseal the key.
    #[error("the passphrase does not unseal the root key")]
    WrongPassphrase,
    /// The random generator or KDF failed.
    #[error("root key crypto: {0}")]
    Crypto(#[from] keyfence_crypto::CryptoError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RootKeyError + '_ {
    move |source| RootKeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a new random root key to `path` (which must not exist), sealed with
/// `passphrase` if one is given, with mode 0600. Returns the key.
pub fn create(path: &Path, passphrase: Option<&[u8]>) -> Result<SymmetricKey, RootKeyError> {
    let key = SymmetricKey::generate()?;
    let mut bytes = MAGIC.to_vec();
    bytes.push(VERSION);
    match passphrase {
        None => {
            bytes.push(0);
            bytes.extend_from_slice(key.expose());
        }
        Some(p) => {
            let salt = rand::array::<16>()?;
            let kek = passphrase::derive_key(p, &salt, passphrase::DEFAULT_ITERATIONS)?;
            bytes.push(1);
            bytes.extend_from_slice(&salt);
            bytes.extend_from_slice(&passphrase::DEFAULT_ITERATIONS.to_be_bytes());
            bytes.extend_from_slice(&wrap::wrap(&kek, BINDING, &key)?);
        }
    }
    let bytes = zeroize::Zeroizing::new(bytes);
    write_private(path, &bytes).map_err(io(path))?;
    Ok(key)
}

/// Writes a new file at `path` (which must not exist) with mode 0600, so
/// that a crash leaves either no file or the whole file: the bytes go to a
/// temporary file that is synced, then renamed into place, then the directory
/// is synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.symlink_metadata().is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "file exists",
        ));
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Syncs a directory, making the names created or renamed in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs::File::open(dir)?.sync_all()
}

/// Reads and unseals the root key at `path`.
pub fn load(path: &Path, passphrase: Option<&[u8]>) -> Result<SymmetricKey, RootKeyError> {
    let bytes = zeroize::Zeroizing::new(fs::read(path).map_err(io(path))?);
    parse(&bytes, passphrase)
}

/// Unseals the root key from the bytes of a root key file (see the module
/// documentation for the format).
pub fn parse(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<SymmetricKey, RootKeyError> {
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err(RootKeyError::Malformed("not a keyfence root key file"));
    }
    if bytes[6] != VERSION {
        return Err(RootKeyError::Malformed("unsupported version"));
    }
    let body = &bytes[8..];
    match bytes[7] {
        0 if body.len() == 32 => Ok(SymmetricKey::from_slice(body)?),
        1 if body.len() == 16 + 4 + wrap::WRAPPED_KEY_BYTES => {
            let iterations = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes"));
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                return Err(RootKeyError::Iterations { found: iterations });
            }
            let p = passphrase.ok_or(RootKeyError::PassphraseRequired)?;
            let kek = passphrase::derive_key(p, &body[..16], iterations)?;
            wrap::unwrap(&kek, BINDING, &body[20..]).map_err(|_| RootKeyError::WrongPassphrase)
        }
        0 | 1 => Err(RootKeyError::Malformed("wrong length")),
        _ => Err(RootKeyError::Malformed("unknown sealing mode")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_sealed_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let key = create(&plain, None).unwrap();
        assert_eq!(load(&plain, None).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&plain).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(
            create(&plain, None).is_err(),
            "an existing root key is never overwritten"
        );

        let sealed = dir.path().join("sealed");
        let key = create(&sealed, Some(b"correct horse")).unwrap();
        assert_eq!(load(&sealed, Some(b"correct horse")).unwrap(), key);
        assert!(matches!(
            load(&sealed, Some(b"wrong")),
            Err(RootKeyError::WrongPassphrase)
        ));
        assert!(matches!(
            load(&sealed, None),
            Err(RootKeyError::PassphraseRequired)
        ));
    }

    #[test]
    fn iteration_counts_outside_the_bounds_are_refused_before_deriving() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealed");
        let key = create(&path, Some(b"pw")).unwrap();
        let good = fs::read(&path).unwrap();
        let with = |n: u32| {
            let mut b = good.clone();
            b[8 + 16..8 + 20].copy_from_slice(&n.to_be_bytes());
            b
        };
        for n in [0, 1, MIN_ITERATIONS - 1, MAX_ITERATIONS + 1, u32::MAX] {
            let started = std::time::Instant::now();
            let err = parse(&with(n), Some(b"pw")).unwrap_err();
            assert!(
                matches!(err, RootKeyError::Iterations { found } if found == n),
                "{n}: {err}"
            );
            assert!(started.elapsed() < std::time::Duration::from_millis(100));
            assert!(matches!(
                parse(&with(n), None),
                Err(RootKeyError::Iterations { .. })
            ));
        }
        assert!(err_text(&with(u32::MAX)).contains("4294967295"));
        // The bounds themselves are accepted (and the count is part of the
        // derivation, so another count does not unseal).
        assert_eq!(parse(&good, Some(b"pw")).unwrap(), key);
        assert!(matches!(
            parse(&with(MIN_ITERATIONS), Some(b"pw")),
            Err(RootKeyError::WrongPassphrase)
        ));
    }

    fn err_text(bytes: &[u8]) -> String {
        parse(bytes, Some(b"pw")).unwrap_err().to_string()
    }

    #[test]
    fn malformed_files_are_rejected() {
        for bad in [
            &b""[..],
            b"KFROOT",
            b"KFROOT\x02\x00",
            b"KFROOT\x01\x00short",
            b"KFROOT\x01\x07",
            b"XXROOT\x01\x00",
        ] {
            assert!(
                matches!(parse(bad, None), Err(RootKeyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
