//! The data directory: database, sealed root key, development PKI and
//! credentials. Created once; never overwritten.

use std::fs;
use std::path::{Path, PathBuf};

use keyfence_crypto::{rand, SymmetricKey};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::{parse_toml, ConfigError, CredentialsFile, DEFAULT_ACCOUNT};
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

    /// The sealed root key.
    pub fn root_key(&self) -> PathBuf {
        self.path.join("root.key")
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
    pub fn init(path: &Path) -> Result<(Self, Initialized), DataDirError> {
        if path.exists() {
            return Err(DataDirError::AlreadyExists(path.display().to_string()));
        }
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(path).map_err(io(path))?;
        let dir = Self::at(path);
        let passphrase = std::env::var(PASSPHRASE_ENV).ok().map(Zeroizing::new);
        root_key::create(&dir.root_key(), passphrase.as_ref().map(|p| p.as_bytes()))?;
        tls::ensure_dev_pki(path)?;
        let credential = generate_credential()?;
        let text = credentials_toml(&credential)?;
        root_key::write_private(&dir.credentials(), text.as_bytes())
            .map_err(io(&dir.credentials()))?;
        Ok((dir, Initialized { credential }))
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

    /// Unseals the root key.
    pub fn load_root_key(&self) -> Result<SymmetricKey, DataDirError> {
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
