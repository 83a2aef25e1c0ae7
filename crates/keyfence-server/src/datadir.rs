//! The data directory: database, sealed root key, development PKI and
//! credentials. Created once; never overwritten.

use std::fs;
use std::path::{Path, PathBuf};

use keyfence_crypto::{rand, SymmetricKey};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::{parse_toml, ConfigError, CredentialsFile, DEFAULT_ACCOUNT};
use crate::root::pkcs11::{Pkcs11Error, Pkcs11Root, Pkcs11Section};
use crate::root::quorum::{QuorumError, SealedRoot, ShareText};
use crate::root::{RootConfig, RootKind};
use crate::root_key::{self, RootKeyError};
use crate::sigv4::Credential;
use crate::tls::{self, PkiPaths, TlsError};

/// Environment variable holding the root key passphrase, if the key is sealed with one.
pub const PASSPHRASE_ENV: &str = "KEYFENCE_ROOT_PASSPHRASE";

/// A data directory problem.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// `init` found the directory already there.
    #[error("data directory {0} already exists; refusing to overwrite it")]
    AlreadyExists(String),
    /// File system failure.
    #[error("data directory {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The root key could not be created or unsealed.
    #[error(transparent)]
    RootKey(#[from] RootKeyError),
    /// The development PKI could not be created.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// credentials.toml is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The random generator failed.
    #[error("random generator: {0}")]
    Crypto(#[from] keyfence_crypto::CryptoError),
    /// credentials.toml could not be rendered.
    #[error("writing credentials.toml: {0}")]
    Toml(#[from] toml::ser::Error),
    /// The HSM root could not be created or opened.
    #[error(transparent)]
    Pkcs11(#[from] Pkcs11Error),
    /// The quorum-sealed root could not be created or read.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// A quorum-sealed root opens only with shares, not at start-up.
    #[error("the root is quorum-sealed: it opens with `keyfence unseal`, not at start-up")]
    Sealed,
    /// A node whose root is not a key file found no data directory: it is
    /// made by `keyfence init`, never by a first start.
    #[error("data directory {path} does not exist; create it with `keyfence init --data-dir {path} {how}`")]
    NotInitialized {
        /// The directory.
        path: String,
        /// The init flags for this root.
        how: &'static str,
    },
    /// The data directory was made for another root of trust than the config names.
    #[error("data directory {path} has no {expected}; it was made for another root of trust (config says root = {root:?})")]
    WrongRoot {
        /// The directory.
        path: String,
        /// The file the configured root needs.
        expected: &'static str,
        /// The configured root.
        root: &'static str,
    },
}

/// How `init` makes the root of trust.
pub enum RootInit<'a> {
    /// A `root.key` file (sealed with `KEYFENCE_ROOT_PASSPHRASE` if set).
    File,
    /// A new key generated inside the PKCS#11 token.
    Pkcs11(&'a Pkcs11Section),
    /// A `root.sealed` file and `shares` Shamir shares, `threshold` of which open it.
    Shamir {
        /// Shares needed.
        threshold: u16,
        /// Shares made.
        shares: u16,
    },
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// The TLS material.
    pub pki: PkiPaths,
}

/// What `init` created that the operator must see once.
pub struct Initialized {
    /// The development credential (its secret is in credentials.toml).
    pub credential: Credential,
    /// The operators' shares of a quorum-sealed root (empty for other roots),
    /// to hand out once and never store.
    pub shares: Vec<ShareText>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl DataDir {
    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.path.join("keyfence.db")
    }

    /// The record of this directory's creation not yet in an audit log: the
    /// creation time (milliseconds since the epoch), written by `init` and
    /// removed once a node's log holds the `Init` record durably.
    fn pending_init_file(&self) -> PathBuf {
        self.path.join("init.pending")
    }

    /// When this directory was made, if no audit log has recorded it yet
    /// (`keyfence init` runs offline; the first node to start with an audit
    /// log records it). An unreadable marker is ignored.
    pub fn pending_init(&self) -> Option<keyfence_core::Timestamp> {
        let text = fs::read_to_string(self.pending_init_file()).ok()?;
        text.trim().parse().ok().map(keyfence_core::Timestamp)
    }

    /// Forgets the pending `Init` record (once an audit log holds it).
    pub fn clear_pending_init(&self) -> std::io::Result<()> {
        match fs::remove_file(self.pending_init_file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => root_key::sync_dir(&self.path),
        }
    }

    /// The sealed root key.
    pub fn root_key(&self) -> PathBuf {
        self.path.join("root.key")
    }

    /// The quorum-sealed root key.
    pub fn sealed_root(&self) -> PathBuf {
        self.path.join("root.sealed")
    }

    /// The credentials file.
    pub fn credentials(&self) -> PathBuf {
        self.path.join("credentials.toml")
    }

    fn at(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            pki: PkiPaths::in_dir(path),
        }
    }

    /// Creates a new data directory; refuses if `path` exists.
    ///
    /// Crash-safe: everything is written into a staging directory next to
    /// `path` (`.<name>.init-<pid>`), each file by temporary file, sync and
    /// rename; the staging directory is synced and then renamed to `path`, and
    /// the parent synced. A process killed at any moment leaves either no
    /// `path` or a complete one; the staging directories of killed attempts are
    /// removed by the next one.
    pub fn init(path: &Path) -> Result<(Self, Initialized), DataDirError> {
        Self::init_with(path, &RootInit::File)
    }

    /// Like [`Self::init`], with the root of trust `root`. For a PKCS#11 root
    /// the key is generated in the token first (nothing is written if that
    /// fails); a directory that then fails to be written leaves that key.
    pub fn init_with(path: &Path, root: &RootInit) -> Result<(Self, Initialized), DataDirError> {
        if path.symlink_metadata().is_ok() {
            return Err(DataDirError::AlreadyExists(path.display().to_string()));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| DataDirError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a data directory path must end in a name",
            ),
        })?;
        fs::create_dir_all(parent).map_err(io(parent))?;
        let prefix = format!(".{}.init-", name.to_string_lossy());
        remove_stale_staging(parent, &prefix);
        let staging = parent.join(format!("{prefix}{}", std::process::id()));
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&staging).map_err(io(&staging))?;
        let result = Self::populate(&staging, root).and_then(|init| {
            root_key::sync_dir(&staging).map_err(io(&staging))?;
            fs::rename(&staging, path).map_err(io(path))?;
            root_key::sync_dir(parent).map_err(io(parent))?;
            Ok(init)
        });
        match result {
            Ok(init) => Ok((Self::at(path), init)),
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    }

    /// Writes the root key, the development PKI and the credential into `dir`.
    fn populate(dir: &Path, root: &RootInit) -> Result<Initialized, DataDirError> {
        let staged = Self::at(dir);
        let mut shares = Vec::new();
        match root {
            RootInit::File => {
                let passphrase = std::env::var(PASSPHRASE_ENV).ok().map(Zeroizing::new);
                root_key::create(
                    &staged.root_key(),
                    passphrase.as_ref().map(|p| p.as_bytes()),
                )?;
            }
            RootInit::Pkcs11(section) => {
                Pkcs11Root::create(section)?;
            }
            RootInit::Shamir {
                threshold,
                shares: count,
            } => {
                let key = SymmetricKey::generate()?;
                let (bytes, made) = SealedRoot::create(&key, *threshold, *count)?;
                SealedRoot::write(&staged.sealed_root(), &bytes)?;
                shares = made;
            }
        }
        tls::ensure_dev_pki(dir)?;
        let credential = generate_credential()?;
        let text = credentials_toml(&credential)?;
        root_key::write_private(&staged.credentials(), text.as_bytes())
            .map_err(io(&staged.credentials()))?;
        let made = keyfence_core::Clock::now(&keyfence_core::SystemClock);
        fs::write(staged.pending_init_file(), made.0.to_string())
            .map_err(io(&staged.pending_init_file()))?;
        Ok(Initialized { credential, shares })
    }

    /// Opens an existing data directory, or initializes a new one.
    pub fn open_or_init(path: &Path) -> Result<(Self, Option<Initialized>), DataDirError> {
        if path.exists() {
            let dir = Self::at(path);
            tls::ensure_dev_pki(path)?;
            Ok((dir, None))
        } else {
            let (dir, init) = Self::init(path)?;
            Ok((dir, Some(init)))
        }
    }

    /// Opens an existing data directory made for `root`; a first start
    /// creates one only for a file root (an HSM or quorum root is made by
    /// `keyfence init`).
    pub fn open_or_init_for(
        path: &Path,
        root: &RootConfig,
    ) -> Result<(Self, Option<Initialized>), DataDirError> {
        let how = match &root.kind {
            RootKind::File => return Self::open_or_init(path),
            RootKind::Pkcs11(_) => "--root pkcs11 --config NODE.toml",
            RootKind::Shamir => "--shares N --threshold M",
        };
        if !path.exists() {
            return Err(DataDirError::NotInitialized {
                path: path.display().to_string(),
                how,
            });
        }
        let dir = Self::at(path);
        if root.starts_sealed() && !dir.sealed_root().exists() {
            return Err(DataDirError::WrongRoot {
                path: path.display().to_string(),
                expected: "root.sealed",
                root: root.name(),
            });
        }
        tls::ensure_dev_pki(path)?;
        Ok((dir, None))
    }

    /// Reads the quorum-sealed root (`root.sealed`).
    pub fn load_sealed_root(&self) -> Result<SealedRoot, DataDirError> {
        Ok(SealedRoot::load(&self.sealed_root())?)
    }

    /// Unseals the root key.
    pub fn load_root_key(&self) -> Result<SymmetricKey, DataDirError> {
        if !self.root_key().exists() && self.sealed_root().exists() {
            return Err(DataDirError::WrongRoot {
                path: self.path.display().to_string(),
                expected: "root.key",
                root: "file",
            });
        }
        let passphrase = std::env::var(PASSPHRASE_ENV).ok().map(Zeroizing::new);
        Ok(root_key::load(
            &self.root_key(),
            passphrase.as_ref().map(|p| p.as_bytes()),
        )?)
    }

    /// Reads the credentials stored in the directory.
    pub fn load_credentials(&self) -> Result<Vec<Credential>, DataDirError> {
        let path = self.credentials();
        let text = Zeroizing::new(fs::read_to_string(&path).map_err(io(&path))?);
        let file: CredentialsFile = parse_toml(&text, &path)?;
        Ok(file
            .credentials
            .into_iter()
            .map(|c| c.into_credential())
            .collect::<Result<_, _>>()?)
    }
}

/// Removes the staging directories (`<prefix><pid>`) that killed first starts
/// left in `parent`. Best effort: a directory that cannot be removed is left.
fn remove_stale_staging(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            tracing::info!(path = %entry.path().display(), "removing an unfinished data directory");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The text of credentials.toml holding `credential`, in a buffer zeroized on drop.
fn credentials_toml(credential: &Credential) -> Result<Zeroizing<String>, DataDirError> {
    /// credentials.toml: one `[[credentials]]` table.
    #[derive(Serialize)]
    struct File<'a> {
        credentials: [Entry<'a>; 1],
    }
    /// The fields `CredentialEntry` reads back.
    #[derive(Serialize)]
    struct Entry<'a> {
        access_key_id: &'a str,
        secret_access_key: &'a str,
        account_id: &'a str,
        user_name: &'a str,
    }
    const HEADER: &str = "# keyfence development credential; keep this file private.\n";
    let file = File {
        credentials: [Entry {
            access_key_id: &credential.access_key_id,
            secret_access_key: &credential.secret_access_key,
            account_id: &credential.account_id,
            user_name: &credential.user_name,
        }],
    };
    let body = Zeroizing::new(toml::to_string(&file)?);
    let mut text = Zeroizing::new(String::with_capacity(HEADER.len() + body.len()));
    text.push_str(HEADER);
    text.push_str(&body);
    Ok(text)
}

fn random_string(alphabet: &[u8], len: usize) -> Result<String, DataDirError> {
    // Rejection sampling keeps every character uniform.
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in rand::bytes(len)? {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

/// A fresh credential for the default account: an `AKIA…` id and a 40-character secret.
pub fn generate_credential() -> Result<Credential, DataDirError> {
    const ID: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Ok(Credential {
        access_key_id: format!("AKIA{}", random_string(ID, 16)?),
        secret_access_key: Zeroizing::new(random_string(SECRET, 40)?),
        account_id: DEFAULT_ACCOUNT.to_string(),
        user_name: "admin".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_toml_round_trips_any_secret() {
        let credential = Credential {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: Zeroizing::new("a\"b\\c'd\n=e#f+/".into()),
            account_id: DEFAULT_ACCOUNT.into(),
            user_name: "ad\"min".into(),
        };
        let text = credentials_toml(&credential).unwrap();
        assert!(
            text.starts_with("# keyfence development credential"),
            "{}",
            *text
        );
        assert!(text.contains("[[credentials]]"), "{}", *text);
        let file: CredentialsFile = parse_toml(&text, Path::new("credentials.toml")).unwrap();
        let [entry] = <[_; 1]>::try_from(file.credentials).ok().unwrap();
        let back = entry.into_credential().unwrap();
        assert_eq!(back.access_key_id, credential.access_key_id);
        assert_eq!(back.secret_access_key, credential.secret_access_key);
        assert_eq!(back.account_id, credential.account_id);
        assert_eq!(back.user_name, credential.user_name);
    }

    #[test]
    fn init_creates_everything_and_refuses_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("data");
        let (dir, init) = DataDir::init(&path).unwrap();
        assert!(init.credential.access_key_id.starts_with("AKIA"));
        assert_eq!(init.credential.secret_access_key.len(), 40);
        for f in [
            dir.root_key(),
            dir.credentials(),
            dir.pki.ca_cert.clone(),
            dir.pki.server_key.clone(),
        ] {
            assert!(f.exists(), "{}", f.display());
        }
        let creds = dir.load_credentials().unwrap();
        assert_eq!(creds[0].access_key_id, init.credential.access_key_id);
        assert_eq!(
            creds[0].secret_access_key,
            init.credential.secret_access_key
        );
        let key = dir.load_root_key().unwrap();
        assert!(matches!(
            DataDir::init(&path),
            Err(DataDirError::AlreadyExists(_))
        ));
        let (again, fresh) = DataDir::open_or_init(&path).unwrap();
        assert!(fresh.is_none());
        assert_eq!(again.load_root_key().unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o700
            );
            assert_eq!(
                fs::metadata(dir.credentials())
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o600
            );
        }
    }
}
