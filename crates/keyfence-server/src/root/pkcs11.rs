//! The root of trust in an HSM, through PKCS#11 (the `cryptoki` crate).
//!
//! The root key is an AES-256 secret key generated inside the token
//! (`CKA_TOKEN`, `CKA_SENSITIVE` true, `CKA_EXTRACTABLE` false), found by its
//! label. Domain keys and sealed secrets are encrypted and decrypted by the
//! token with `CKM_AES_GCM` (a fresh 96-bit IV per call, 128-bit tag, the
//! binding as additional data): the root key never enters this process.
//!
//! Wrapped format: IV (12) ‖ ciphertext ‖ tag (16).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use keyfence_core::{KmsError, RootOfTrust};
use keyfence_crypto::{rand, Secret, SymmetricKey};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{domain_binding, seal_binding};

/// Default label of the root key object in the token.
pub const DEFAULT_KEY_LABEL: &str = "keyfence-root";
/// Default environment variable holding the user PIN.
pub const DEFAULT_PIN_ENV: &str = "KEYFENCE_PKCS11_PIN";

const IV_BYTES: usize = 12;
const TAG_BITS: u64 = 128;

/// The `[pkcs11]` table of the node config.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Section {
    /// Path of the PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// Label of the token holding the root key.
    pub token_label: String,
    /// Label of the root key object [default: `keyfence-root`].
    pub key_label: Option<String>,
    /// Environment variable holding the user PIN [default: `KEYFENCE_PKCS11_PIN`].
    pub pin_env: Option<String>,
    /// File holding the user PIN (first line); instead of `pin_env`.
    pub pin_file: Option<PathBuf>,
}

impl Pkcs11Section {
    /// The root key's label.
    pub fn key_label(&self) -> &str {
        self.key_label.as_deref().unwrap_or(DEFAULT_KEY_LABEL)
    }

    /// Reads the PIN from its source (never from the command line).
    fn pin(&self) -> Result<AuthPin, Pkcs11Error> {
        let pin = match (&self.pin_file, &self.pin_env) {
            (Some(_), Some(_)) => {
                return Err(Pkcs11Error::Config(
                    "set one of pin_file and pin_env, not both".into(),
                ))
            }
            (Some(path), None) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    Pkcs11Error::Config(format!("PIN file {}: {e}", path.display()))
                })?);
                Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
            }
            (None, env) => {
                let var = env.as_deref().unwrap_or(DEFAULT_PIN_ENV);
                Zeroizing::new(std::env::var(var).map_err(|_| {
                    Pkcs11Error::Config(format!(
                        "the token's PIN is read from ${var}, which is not set"
                    ))
                })?)
            }
        };
        if pin.is_empty() {
            return Err(Pkcs11Error::Config("the PIN is empty".into()));
        }
        Ok(AuthPin::from(pin.as_str()))
    }
}

/// The HSM root could not be opened, created or used.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// The `[pkcs11]` table or the PIN source is wrong.
    #[error("pkcs11: {0}")]
    Config(String),
    /// The module could not be loaded or initialized.
    #[error("pkcs11: cannot load module {module}: {source}")]
    Module {
        /// The module path.
        module: String,
        /// The cause.
        source: cryptoki::error::Error,
    },
    /// No token with the configured label is present.
    #[error("pkcs11: no token labelled {0:?} is present (is the HSM connected and the token initialized?)")]
    TokenMissing(String),
    /// The token holds no root key with the configured label.
    #[error("pkcs11: token {token:?} holds no root key labelled {key:?}; create it with `keyfence init --root pkcs11`")]
    KeyMissing {
        /// The token label.
        token: String,
        /// The key label.
        key: String,
    },
    /// `init` found a key with the label already.
    #[error(
        "pkcs11: token {token:?} already holds a key labelled {key:?}; refusing to create another"
    )]
    KeyExists {
        /// The token label.
        token: String,
        /// The key label.
        key: String,
    },
    /// Several keys carry the label.
    #[error("pkcs11: token {token:?} holds {count} keys labelled {key:?}; expected one")]
    Ambiguous {
        /// The token label.
        token: String,
        /// The key label.
        key: String,
        /// How many.
        count: usize,
    },
    /// A PKCS#11 call failed (login, session, key generation).
    #[error("pkcs11: {what}: {source}")]
    Call {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: cryptoki::error::Error,
    },
}

fn call(what: &'static str) -> impl FnOnce(cryptoki::error::Error) -> Pkcs11Error {
    move |source| Pkcs11Error::Call { what, source }
}

/// The attributes of the root key as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttributes {
    /// `CKA_EXTRACTABLE`.
    pub extractable: bool,
    /// `CKA_SENSITIVE`.
    pub sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: bool,
    /// `CKA_VALUE_LEN`, in bytes.
    pub value_len: u64,
}

/// The root of trust in a PKCS#11 token: a logged-in session and the root
/// key's handle.
pub struct Pkcs11Root {
    session: Mutex<Session>,
    key: ObjectHandle,
    // Kept so the library stays loaded for the session's lifetime.
    _context: Pkcs11,
}

/// The module at `path`, loaded and initialized once per process and never
/// finalized: finalizing would close every session of every other user of
/// the module in this process (two nodes in one test, an init then a start).
fn loaded(path: &Path) -> Result<Pkcs11, cryptoki::error::Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(context) = modules.get(path) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(path)?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(e),
    }
    modules.insert(path.to_path_buf(), context.clone());
    Ok(context)
}

/// Loads the module, finds the token and logs in.
fn login(section: &Pkcs11Section) -> Result<(Pkcs11, Session), Pkcs11Error> {
    let pin = section.pin()?;
    let module = section.module.display().to_string();
    let context =
        loaded(&section.module).map_err(|source| Pkcs11Error::Module { module, source })?;
    let mut found = None;
    for slot in context.get_slots_with_token().map_err(call("list slots"))? {
        let info = context.get_token_info(slot).map_err(call("token info"))?;
        if info.label().trim_end() == section.token_label {
            found = Some(slot);
            break;
        }
    }
    let slot = found.ok_or_else(|| Pkcs11Error::TokenMissing(section.token_label.clone()))?;
    let session = context
        .open_rw_session(slot)
        .map_err(call("open session"))?;
    // Login state is per token and process: another root of this process
    // open on the same token logged in already (with the PIN, checked then).
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(source) => {
            return Err(Pkcs11Error::Call {
                what: "login",
                source,
            })
        }
    }
    Ok((context, session))
}

fn find_keys(session: &Session, label: &str) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(call("find the root key"))
}

impl Pkcs11Root {
    /// Generates the root key in the token: AES-256, persistent, sensitive,
    /// not extractable, for encrypt and decrypt only. Refuses if a key with
    /// the label exists.
    pub fn create(section: &Pkcs11Section) -> Result<Self, Pkcs11Error> {
        let (context, session) = login(section)?;
        let label = section.key_label();
        if !find_keys(&session, label)?.is_empty() {
            return Err(Pkcs11Error::KeyExists {
                token: section.token_label.clone(),
                key: label.to_owned(),
            });
        }
        let key = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Derive(false),
                    Attribute::Label(label.as_bytes().to_vec()),
                ],
            )
            .map_err(call("generate the root key"))?;
        Ok(Self {
            session: Mutex::new(session),
            key,
            _context: context,
        })
    }

    /// Opens the existing root key; a clear error if the token or the key is missing.
    pub fn open(section: &Pkcs11Section) -> Result<Self, Pkcs11Error> {
        let (context, session) = login(section)?;
        let label = section.key_label();
        let keys = find_keys(&session, label)?;
        let key = match keys.as_slice() {
            [key] => *key,
            [] => {
                return Err(Pkcs11Error::KeyMissing {
                    token: section.token_label.clone(),
                    key: label.to_owned(),
                })
            }
            more => {
                return Err(Pkcs11Error::Ambiguous {
                    token: section.token_label.clone(),
                    key: label.to_owned(),
                    count: more.len(),
                })
            }
        };
        Ok(Self {
            session: Mutex::new(session),
            key,
            _context: context,
        })
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The root key's protection attributes, as the token reports them.
    pub fn attributes(&self) -> Result<KeyAttributes, Pkcs11Error> {
        let attrs = self
            .session()
            .get_attributes(
                self.key,
                &[
                    AttributeType::Extractable,
                    AttributeType::Sensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::ValueLen,
                ],
            )
            .map_err(call("read the root key's attributes"))?;
        let mut out = KeyAttributes {
            extractable: true,
            sensitive: false,
            never_extractable: false,
            value_len: 0,
        };
        for a in attrs {
            match a {
                Attribute::Extractable(v) => out.extractable = v,
                Attribute::Sensitive(v) => out.sensitive = v,
                Attribute::NeverExtractable(v) => out.never_extractable = v,
                Attribute::ValueLen(v) => out.value_len = v.into(),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Encrypts `plaintext` in the token under the root key, bound to `aad`.
    fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let mut iv = rand::array::<IV_BYTES>()
            .map_err(KmsError::internal_crypto("random IV for the HSM"))?;
        let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())
            .map_err(|e| KmsError::Internal(format!("pkcs11: GCM parameters: {e}")))?;
        let sealed = self
            .session()
            .encrypt(&Mechanism::AesGcm(params), self.key, plaintext)
            .map_err(|e| KmsError::Internal(format!("pkcs11: encrypt under the root key: {e}")))?;
        let mut out = Vec::with_capacity(IV_BYTES + sealed.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts what [`Self::encrypt`] made with the same `aad`.
    fn decrypt(&self, aad: &[u8], wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if wrapped.len() < IV_BYTES + (TAG_BITS as usize / 8) {
            return None;
        }
        let mut iv: [u8; IV_BYTES] = wrapped[..IV_BYTES].try_into().ok()?;
        let params = GcmParams::new(&mut iv, aad, TAG_BITS.into()).ok()?;
        self.session()
            .decrypt(&Mechanism::AesGcm(params), self.key, &wrapped[IV_BYTES..])
            .ok()
            .map(Zeroizing::new)
    }
}

impl RootOfTrust for Pkcs11Root {
    fn wrap_domain_key(&self, id: u32, key: &SymmetricKey) -> Result<Vec<u8>, KmsError> {
        self.encrypt(&domain_binding(id), key.expose())
    }

    fn unwrap_domain_key(&self, id: u32, wrapped: &[u8]) -> Result<SymmetricKey, KmsError> {
        let bytes = self.decrypt(&domain_binding(id), wrapped).ok_or_else(|| {
            KmsError::Internal(format!(
                "domain key {id} does not unwrap under the HSM root key"
            ))
        })?;
        SymmetricKey::from_slice(&bytes).map_err(KmsError::internal_crypto("domain key length"))
    }

    fn seal(&self, label: &str, secret: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.encrypt(&seal_binding(label), secret)
    }

    fn unseal(&self, label: &str, sealed: &[u8]) -> Result<Secret, KmsError> {
        let bytes = self.decrypt(&seal_binding(label), sealed).ok_or_else(|| {
            KmsError::Internal(format!("{label} does not unseal under the HSM root key"))
        })?;
        Ok(Secret::new(bytes.to_vec()))
    }
}
