//! The node's root of trust, as its config chooses it (`root = …`):
//!
//! | `root` | where the root key is | data directory file |
//! |---|---|---|
//! | `"file"` (default) | `root.key`, guarded by its permissions or a passphrase | `root.key` ([`crate::root_key`]) |
//! | `"pkcs11"` | an AES-256 key inside an HSM token, never leaving it ([`pkcs11`]) | none |
//! | `"shamir"` | `root.sealed`, opened by a quorum of operators' shares ([`quorum`]); the node starts sealed ([`crate::seal`]) | `root.sealed` |

pub mod pkcs11;
pub mod quorum;

use std::time::Duration;

use keyfence_core::{LocalRootKey, RootOfTrust};

pub use pkcs11::{Pkcs11Error, Pkcs11Root, Pkcs11Section};
pub use quorum::{QuorumError, SealedRoot};

use crate::config::ConfigError;
use crate::datadir::{DataDir, DataDirError};

pub(crate) use keyfence_core::root::{
    domain_key_binding as domain_binding, sealed_binding as seal_binding,
};

/// How often the domain key rotates by default (as AWS KMS rotates its
/// domain keys: daily).
pub const DEFAULT_DOMAIN_KEY_ROTATION: Duration = Duration::from_secs(24 * 3600);

/// The node's root of trust and the domain keys under it: where the root key
/// is (`root = …`, `[pkcs11]`) and how often the domain key rotates
/// (`domain_key_rotation_hours`).
#[derive(Debug, Clone)]
pub struct RootConfig {
    /// Where the root key is.
    pub kind: RootKind,
    /// How often this node rotates the domain key (the newest domain key's
    /// age that makes a rotation due; any node of a cluster may make it).
    pub domain_key_rotation: Duration,
}

impl Default for RootConfig {
    fn default() -> Self {
        RootKind::default().into()
    }
}

impl From<RootKind> for RootConfig {
    /// `kind`, with the default rotation schedule.
    fn from(kind: RootKind) -> Self {
        Self {
            kind,
            domain_key_rotation: DEFAULT_DOMAIN_KEY_ROTATION,
        }
    }
}

impl RootConfig {
    /// Resolves the config file's `root`, `[pkcs11]` and
    /// `domain_key_rotation_hours` values.
    pub fn resolve(
        root: Option<&str>,
        pkcs11: Option<Pkcs11Section>,
        rotation_hours: Option<u64>,
    ) -> Result<Self, ConfigError> {
        let domain_key_rotation = match rotation_hours {
            None => DEFAULT_DOMAIN_KEY_ROTATION,
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "domain_key_rotation_hours must be at least 1".into(),
                ))
            }
            Some(h) => Duration::from_secs(h.saturating_mul(3600)),
        };
        Ok(Self {
            kind: RootKind::resolve(root, pkcs11)?,
            domain_key_rotation,
        })
    }

    /// The word in the config file.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Whether the node starts sealed, waiting for shares.
    pub fn starts_sealed(&self) -> bool {
        self.kind.starts_sealed()
    }
}

/// Which root of trust a node uses.
#[derive(Debug, Clone, Default)]
pub enum RootKind {
    /// The data directory's `root.key` file.
    #[default]
    File,
    /// A key in a PKCS#11 token.
    Pkcs11(Pkcs11Section),
    /// The data directory's `root.sealed`, opened by a quorum of shares.
    Shamir,
}

impl RootKind {
    /// Resolves the config file's `root` and `[pkcs11]` values.
    pub fn resolve(root: Option<&str>, pkcs11: Option<Pkcs11Section>) -> Result<Self, ConfigError> {
        match (root.unwrap_or("file"), pkcs11) {
            ("file", None) => Ok(Self::File),
            ("shamir", None) => Ok(Self::Shamir),
            ("pkcs11", Some(section)) => {
                if section.token_label.is_empty() {
                    return Err(ConfigError::Invalid(
                        "[pkcs11] token_label must not be empty".into(),
                    ));
                }
                Ok(Self::Pkcs11(section))
            }
            ("pkcs11", None) => Err(ConfigError::Invalid(
                "root = \"pkcs11\" needs a [pkcs11] table (module, token_label, pin_env or pin_file)"
                    .into(),
            )),
            ("file" | "shamir", Some(_)) => Err(ConfigError::Invalid(
                "a [pkcs11] table is only read with root = \"pkcs11\"".into(),
            )),
            (other, _) => Err(ConfigError::Invalid(format!(
                "root {other:?} is not one of \"file\", \"pkcs11\", \"shamir\""
            ))),
        }
    }

    /// The word in the config file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Pkcs11(_) => "pkcs11",
            Self::Shamir => "shamir",
        }
    }

    /// Whether the node starts sealed, waiting for shares.
    pub fn starts_sealed(&self) -> bool {
        matches!(self, Self::Shamir)
    }
}

/// Opens the root of trust of an unsealed start (`file` or `pkcs11`).
pub fn open(config: &RootConfig, dir: &DataDir) -> Result<Box<dyn RootOfTrust>, DataDirError> {
    match &config.kind {
        RootKind::File => Ok(Box::new(LocalRootKey::new(dir.load_root_key()?))),
        RootKind::Pkcs11(section) => Ok(Box::new(Pkcs11Root::open(section)?)),
        RootKind::Shamir => Err(DataDirError::Sealed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_key_schedule_defaults_to_a_day_and_is_at_least_an_hour() {
        let default = RootConfig::resolve(None, None, None).unwrap();
        assert!(matches!(default.kind, RootKind::File));
        assert_eq!(default.domain_key_rotation, Duration::from_secs(86_400));
        assert_eq!(
            RootConfig::default().domain_key_rotation,
            DEFAULT_DOMAIN_KEY_ROTATION
        );
        let hourly = RootConfig::resolve(Some("shamir"), None, Some(1)).unwrap();
        assert!(hourly.starts_sealed());
        assert_eq!(hourly.domain_key_rotation, Duration::from_secs(3_600));
        assert!(matches!(
            RootConfig::resolve(None, None, Some(0)),
            Err(ConfigError::Invalid(m)) if m.contains("domain_key_rotation_hours")
        ));
    }
}
