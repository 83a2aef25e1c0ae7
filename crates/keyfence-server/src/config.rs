//! Node configuration: defaults, a TOML file, then command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::limits::Limits;
use crate::sigv4::Credential;

/// Default API listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default metrics listen address (loopback only).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "keyfence-data";
/// Default region named in ARNs.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default account of the development credential.
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// Default bound on a replica's age on a shared store (seconds).
pub const DEFAULT_MAX_STALENESS_SECS: u64 = 60;
/// Default time the change feed keeps what this node has read (seconds): a
/// node of a shared store that has not synced for longer reloads its replica.
pub const DEFAULT_FEED_RETENTION_SECS: u64 = 15 * 60;

/// Where a node keeps its keys.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `sqlite` (the default): the data directory's `keyfence.db`, this node alone.
    DataDir,
    /// `sqlite:PATH`: a SQLite file shared by several nodes on one host.
    SharedSqlite(PathBuf),
    /// `postgres://…` or `postgresql://…` (or a libpq `key=value` string):
    /// a PostgreSQL database shared by many nodes.
    Postgres(String),
}

impl StoreLocation {
    /// Parses the `--store` / `store =` value.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        if s == "sqlite" {
            Ok(Self::DataDir)
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(ConfigError::Invalid("sqlite: needs a file path".into()));
            }
            Ok(Self::SharedSqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://")
            || s.starts_with("postgresql://")
            || s.contains("host=")
        {
            Ok(Self::Postgres(s.to_string()))
        } else {
            Err(ConfigError::Invalid(format!(
                "store must be sqlite, sqlite:PATH or a PostgreSQL connection string, not {:?}",
                s.split('@').next_back().unwrap_or_default()
            )))
        }
    }

    /// Whether other nodes may share it.
    pub fn is_shared(&self) -> bool {
        !matches!(self, Self::DataDir)
    }
}

impl std::fmt::Debug for StoreLocation {
    /// Never shows a connection string: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DataDir => f.write_str("sqlite"),
            Self::SharedSqlite(p) => write!(f, "sqlite:{}", p.display()),
            Self::Postgres(_) => f.write_str("postgres"),
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its position.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A credential as written in a config or credentials file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialEntry {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// 12-digit account id.
    pub account_id: String,
    /// User name (default "admin").
    #[serde(default = "default_user")]
    pub user_name: String,
    /// IAM role name: the credential acts as `arn:aws:iam::ACCOUNT:role/NAME`
    /// rather than as the user.
    #[serde(default)]
    pub role_name: Option<String>,
    /// The principal's identity policy, an IAM JSON policy document
    /// [default: every KMS action on its own account's keys].
    #[serde(default)]
    pub identity_policy: Option<String>,
}

/// Who a credential acts as, and what its identity policy allows.
#[derive(Debug, Clone)]
pub struct PrincipalConfig {
    /// The IAM user or role.
    pub principal: keyfence_core::authz::Principal,
    /// Its identity policy; `None`: the default one.
    pub identity_policy: Option<std::sync::Arc<keyfence_core::authz::Policy>>,
}

fn default_user() -> String {
    "admin".to_string()
}

impl CredentialEntry {
    /// The principal the credential acts as and its identity policy, checked.
    pub fn principal_config(&self) -> Result<PrincipalConfig, ConfigError> {
        use keyfence_core::authz::{Policy, PolicyKind, Principal};
        let arn = match &self.role_name {
            Some(role) => format!("arn:aws:iam::{}:role/{role}", self.account_id),
            None => format!("arn:aws:iam::{}:user/{}", self.account_id, self.user_name),
        };
        let principal = Principal::parse_arn(&arn)
            .map_err(|e| ConfigError::Invalid(format!("credential {}: {e}", self.access_key_id)))?;
        let identity_policy = self
            .identity_policy
            .as_deref()
            .map(|text| {
                Policy::parse(text, PolicyKind::Identity).map_err(|e| {
                    ConfigError::Invalid(format!("identity_policy of {}: {e}", self.access_key_id))
                })
            })
            .transpose()?
            .map(std::sync::Arc::new);
        Ok(PrincipalConfig {
            principal,
            identity_policy,
        })
    }

    /// Checks the fields and converts to a SigV4 credential.
    pub fn into_credential(self) -> Result<Credential, ConfigError> {
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ConfigError::Invalid(format!(
                "account_id of {} must be 12 digits",
                self.access_key_id
            )));
        }
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(ConfigError::Invalid(
                "credentials need an access key id and a secret".into(),
            ));
        }
        Ok(Credential {
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key,
            account_id: self.account_id,
            user_name: self.user_name,
        })
    }
}

/// A TOML file of `[[credentials]]` tables (the data directory's credentials.toml).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFile {
    /// The credentials.
    #[serde(default)]
    pub credentials: Vec<CredentialEntry>,
}

/// The `[node]` table: this node as a member of a geo-fencing cluster.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The node's name (1 to 63 ASCII letters, digits, '.', '_' or '-').
    pub name: String,
    /// Its claimed attributes, e.g. `{ country = "DE", region = "EU" }`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Whether this node holds the fencing authority (one node of a cluster).
    #[serde(default)]
    pub authority: bool,
    /// The store the cluster's nodes share: a SQLite file (nodes on one
    /// host) or a PostgreSQL connection string (`postgres://…`)
    /// [default: the data directory's keyfence.db].
    pub store: Option<PathBuf>,
    /// The `host:port` other nodes reach this node at, when it is not the
    /// address it listens on (a wildcard listen address, NAT, a proxy)
    /// [default: the bound listen address].
    #[serde(default)]
    pub advertise: Option<String>,
    /// A second listener for node-to-node traffic only (forwards, round-trip
    /// measurements), whose TLS handshake requires the node certificate of
    /// an approved node; when set, it is the address advertised to peers
    /// (unless `advertise` says otherwise) [default: none, peers use the API
    /// listener].
    #[serde(default)]
    pub peer_listen: Option<SocketAddr>,
}

/// The config file's schema; every field optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// API listen address.
    pub listen: Option<SocketAddr>,
    /// Metrics listen address.
    pub metrics_listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// The default region: where keys made before multi-region serving
    /// live, and what a request outside any region scope uses.
    pub region: Option<String>,
    /// Further regions this node serves besides `region`; a request is
    /// served in the region of its SigV4 credential scope. (`[regions]`'
    /// default fence applies to keys created in `region`.)
    #[serde(default)]
    pub serve_regions: Vec<String>,
    /// Refuse classical-only TLS clients.
    pub post_quantum: Option<bool>,
    /// Where keys are kept: `sqlite` (default), `sqlite:PATH`, `postgres://…`.
    pub store: Option<String>,
    /// Bound on the replica's age on a shared store, in seconds (default 60).
    pub max_staleness_seconds: Option<u64>,
    /// How long the change feed keeps what this node has read before it trims
    /// it, in seconds (default 900); a node behind by more reloads its replica.
    pub feed_retention_seconds: Option<u64>,
    /// Credentials beyond the data directory's.
    #[serde(default)]
    pub credentials: Vec<CredentialEntry>,
    /// This node in a geo-fencing cluster.
    pub node: Option<NodeSection>,
    /// Default fence policy of keys created in a region, by region name.
    #[serde(default)]
    pub regions: BTreeMap<String, String>,
    /// Limits on the API port (the `[limits]` table).
    #[serde(default)]
    pub limits: LimitsFile,
    /// The root of trust: `file` (default), `pkcs11` or `shamir`.
    pub root: Option<String>,
    /// The HSM holding the root key, with `root = "pkcs11"`.
    pub pkcs11: Option<crate::root::Pkcs11Section>,
    /// How often the domain key rotates, in hours (default 24).
    pub domain_key_rotation_hours: Option<u64>,
    /// Request-rate quotas per account (the `[throttle]` table).
    #[serde(default)]
    pub throttle: crate::throttle::ThrottleFile,
    /// The audit log (the `[audit]` table).
    #[serde(default)]
    pub audit: crate::audit::AuditFile,
}

/// The `[limits]` table: each field overrides one of [`Limits::default`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// [`Limits::max_connections`].
    pub max_connections: Option<usize>,
    /// [`Limits::header_read_timeout`], in seconds.
    pub header_read_timeout_secs: Option<u64>,
    /// [`Limits::body_read_timeout`], in seconds.
    pub body_read_timeout_secs: Option<u64>,
    /// [`Limits::idle_timeout`], in seconds.
    pub idle_timeout_secs: Option<u64>,
    /// [`Limits::request_bytes_budget`].
    pub request_bytes_budget: Option<usize>,
    /// [`Limits::budget_wait`], in milliseconds.
    pub budget_wait_ms: Option<u64>,
    /// [`Limits::http2_max_concurrent_streams`].
    pub http2_max_concurrent_streams: Option<u32>,
    /// [`Limits::memory_trim_interval`], in seconds.
    pub memory_trim_interval_secs: Option<u64>,
    /// [`HeavyLimits::threads`](crate::heavy::HeavyLimits::threads).
    pub heavy_threads: Option<usize>,
    /// [`HeavyLimits::queue`](crate::heavy::HeavyLimits::queue).
    pub heavy_queue: Option<usize>,
    /// [`HeavyLimits::max_wait`](crate::heavy::HeavyLimits::max_wait), in milliseconds.
    pub heavy_max_wait_ms: Option<u64>,
}

impl LimitsFile {
    /// The defaults with this table's values applied, checked.
    pub fn resolve(self) -> Result<Limits, ConfigError> {
        use std::time::Duration;
        let d = Limits::default();
        let limits = Limits {
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            header_read_timeout: self
                .header_read_timeout_secs
                .map_or(d.header_read_timeout, Duration::from_secs),
            body_read_timeout: self
                .body_read_timeout_secs
                .map_or(d.body_read_timeout, Duration::from_secs),
            idle_timeout: self
                .idle_timeout_secs
                .map_or(d.idle_timeout, Duration::from_secs),
            request_bytes_budget: self.request_bytes_budget.unwrap_or(d.request_bytes_budget),
            budget_wait: self
                .budget_wait_ms
                .map_or(d.budget_wait, Duration::from_millis),
            http2_max_concurrent_streams: self
                .http2_max_concurrent_streams
                .unwrap_or(d.http2_max_concurrent_streams),
            memory_trim_interval: self
                .memory_trim_interval_secs
                .map_or(d.memory_trim_interval, Duration::from_secs),
            throttle: d.throttle,
            heavy: crate::heavy::HeavyLimits {
                threads: self.heavy_threads.unwrap_or(d.heavy.threads),
                queue: self.heavy_queue.unwrap_or(d.heavy.queue),
                max_wait: self
                    .heavy_max_wait_ms
                    .map_or(d.heavy.max_wait, Duration::from_millis),
            },
        };
        limits.validate().map_err(ConfigError::Invalid)?;
        Ok(limits)
    }
}

/// Parses TOML text into `T`, naming `path` in errors.
pub fn parse_toml<T: for<'de> Deserialize<'de>>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.message().to_string()
            + &e.span()
                .map(|s| format!(" (at byte {})", s.start))
                .unwrap_or_default(),
    })
}

impl ConfigFile {
    /// Reads a config file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        parse_toml(&text, path)
    }
}

/// Values given on the command line; each overrides the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--post-quantum`.
    pub post_quantum: bool,
    /// `--store`.
    pub store: Option<String>,
}

/// The resolved configuration of a node.
pub struct Config {
    /// API listen address.
    pub listen: SocketAddr,
    /// Metrics listen address.
    pub metrics_listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// The default region (keys made before multi-region serving live here).
    pub region: String,
    /// The other regions served (`serve_regions`), sorted, without `region`.
    pub also_serves: Vec<String>,
    /// Refuse classical-only TLS clients.
    pub post_quantum: bool,
    /// Credentials from the config file.
    pub credentials: Vec<Credential>,
    /// Who the config file's credentials act as, by access key id.
    pub principals: BTreeMap<String, PrincipalConfig>,
    /// This node in a geo-fencing cluster.
    pub node: Option<NodeSection>,
    /// The fence of keys created without a `keyfence:fence` tag (`[regions]` of this region).
    pub default_fence: Option<String>,
    /// Where keys are kept.
    pub store: StoreLocation,
    /// Bound on the replica's age on a shared store.
    pub max_staleness: std::time::Duration,
    /// How long the change feed keeps what this node has read.
    pub feed_retention: std::time::Duration,
    /// Limits on the API port.
    pub limits: Limits,
    /// The root of trust.
    pub root: crate::root::RootConfig,
    /// The audit log.
    pub audit: crate::audit::AuditSettings,
}

impl Config {
    /// Defaults, then `file`, then `overrides`.
    pub fn resolve(file: ConfigFile, overrides: Overrides) -> Result<Self, ConfigError> {
        let region = file.region.unwrap_or_else(|| DEFAULT_REGION.to_string());
        let mut also_serves: Vec<String> = file
            .serve_regions
            .iter()
            .filter(|r| **r != region)
            .cloned()
            .collect();
        also_serves.sort();
        also_serves.dedup();
        for name in std::iter::once(&region).chain(&also_serves) {
            if keyfence_core::Region::new(name).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "region {name:?} is not a region name"
                )));
            }
        }
        // A default fence is applied in the default region only; serving
        // another region that has one would create its keys unfenced.
        if let Some(fenced) = also_serves.iter().find(|r| file.regions.contains_key(*r)) {
            return Err(ConfigError::Invalid(format!(
                "[regions] gives {fenced:?} a default fence, which applies only to the default \
                 region ({region:?}); serve {fenced:?} from a node whose region it is"
            )));
        }
        let store = match overrides.store.or(file.store) {
            Some(s) => StoreLocation::parse(&s)?,
            None => StoreLocation::DataDir,
        };
        let staleness = file
            .max_staleness_seconds
            .unwrap_or(DEFAULT_MAX_STALENESS_SECS);
        if staleness == 0 {
            return Err(ConfigError::Invalid(
                "max_staleness_seconds must be at least 1".into(),
            ));
        }
        let retention = file
            .feed_retention_seconds
            .unwrap_or(DEFAULT_FEED_RETENTION_SECS);
        if retention == 0 {
            return Err(ConfigError::Invalid(
                "feed_retention_seconds must be at least 1".into(),
            ));
        }
        Ok(Self {
            store,
            max_staleness: std::time::Duration::from_secs(staleness),
            feed_retention: std::time::Duration::from_secs(retention),
            listen: overrides
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            metrics_listen: overrides
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.parse().expect("valid default")),
            data_dir: overrides
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            post_quantum: overrides.post_quantum || file.post_quantum.unwrap_or(false),
            principals: file
                .credentials
                .iter()
                .map(|c| Ok((c.access_key_id.clone(), c.principal_config()?)))
                .collect::<Result<_, ConfigError>>()?,
            credentials: file
                .credentials
                .into_iter()
                .map(CredentialEntry::into_credential)
                .collect::<Result<_, _>>()?,
            default_fence: file.regions.get(&region).cloned(),
            node: file.node,
            region,
            also_serves,
            limits: Limits {
                throttle: file.throttle.resolve().map_err(ConfigError::Invalid)?,
                ..file.limits.resolve()?
            },
            root: crate::root::RootConfig::resolve(
                file.root.as_deref(),
                file.pkcs11,
                file.domain_key_rotation_hours,
            )?,
            audit: file.audit.resolve()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let file: ConfigFile = parse_toml(
            "listen = \"127.0.0.1:9000\"\npost_quantum = true\nregion = \"eu-west-1\"\n[[credentials]]\naccess_key_id = \"AKIAB\"\nsecret_access_key = \"s\"\naccount_id = \"444455556666\"\nuser_name = \"bob\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let config = Config::resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:9001".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.metrics_listen.port(), 9464);
        assert!(config.post_quantum);
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.credentials[0].account_id, "444455556666");
        assert!(config.node.is_none());
        assert_eq!(config.default_fence, None);
    }

    #[test]
    fn node_section_and_region_default_fences() {
        let file: ConfigFile = parse_toml(
            "region = \"eu-central-1\"\n[node]\nname = \"fra\"\nattributes = { country = \"DE\", region = \"EU\" }\nauthority = true\n[regions]\neu-central-1 = \"region: EU\"\nus-east-1 = \"region: NA\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let config = Config::resolve(file, Overrides::default()).unwrap();
        let node = config.node.unwrap();
        assert_eq!(node.name, "fra");
        assert!(node.authority);
        assert_eq!(node.attributes["country"], "DE");
        assert_eq!(config.default_fence.as_deref(), Some("region: EU"));
        assert!(parse_toml::<ConfigFile>(
            "[node]\nname = \"a\"\nweight = 3\n",
            Path::new("c.toml")
        )
        .is_err());
    }

    #[test]
    fn served_regions() {
        let resolve = |text: &str| {
            Config::resolve(
                parse_toml(text, Path::new("r.toml")).unwrap(),
                Overrides::default(),
            )
        };
        // An old config: one region, the default.
        let config = resolve("").unwrap();
        assert_eq!(config.region, DEFAULT_REGION);
        assert!(config.also_serves.is_empty());
        let config = resolve(
            "region = \"us-east-1\"\nserve_regions = [\"eu-west-1\", \"us-east-1\", \"ap-southeast-2\", \"eu-west-1\"]\n",
        )
        .unwrap();
        assert_eq!(config.also_serves, ["ap-southeast-2", "eu-west-1"]);
        assert!(resolve("serve_regions = [\"EU\"]\n").is_err());
        // A served region with a default fence it would not get.
        let refused = resolve(
            "region = \"us-east-1\"\nserve_regions = [\"eu-central-1\"]\n[regions]\neu-central-1 = \"region: EU\"\n",
        );
        assert!(matches!(refused, Err(ConfigError::Invalid(m)) if m.contains("eu-central-1")));
    }

    #[test]
    fn store_locations_parse_and_never_show_a_password() {
        let file: ConfigFile = parse_toml(
            "store = \"postgres://kf:secret@db1,db2/keyfence?target_session_attrs=read-write\"\nmax_staleness_seconds = 5\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let config = Config::resolve(file, Overrides::default()).unwrap();
        assert!(matches!(&config.store, StoreLocation::Postgres(u) if u.contains("db2")));
        assert_eq!(format!("{:?}", config.store), "postgres");
        assert_eq!(config.max_staleness, std::time::Duration::from_secs(5));
        let config = Config::resolve(
            ConfigFile::default(),
            Overrides {
                store: Some("sqlite:/tmp/shared.db".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            config.store,
            StoreLocation::SharedSqlite("/tmp/shared.db".into())
        );
        assert!(config.store.is_shared());
        let config = Config::resolve(ConfigFile::default(), Overrides::default()).unwrap();
        assert_eq!(config.store, StoreLocation::DataDir);
        assert!(!config.store.is_shared());
        assert_eq!(config.max_staleness, std::time::Duration::from_secs(60));
        assert_eq!(config.feed_retention, std::time::Duration::from_secs(900));
        let file: ConfigFile =
            parse_toml("feed_retention_seconds = 120\n", Path::new("t.toml")).unwrap();
        let retention = Config::resolve(file, Overrides::default())
            .unwrap()
            .feed_retention;
        assert_eq!(retention, std::time::Duration::from_secs(120));
        let file: ConfigFile =
            parse_toml("feed_retention_seconds = 0\n", Path::new("t.toml")).unwrap();
        let err = Config::resolve(file, Overrides::default()).err().unwrap();
        assert!(err.to_string().contains("feed_retention_seconds"), "{err}");
        let err = StoreLocation::parse("mysql://u:pw@h/db").err().unwrap();
        assert!(!err.to_string().contains("pw"), "{err}");
        assert_eq!(config.limits, Limits::default());
        let file: ConfigFile = parse_toml(
            "[limits]\nmax_connections = 7\nidle_timeout_secs = 3\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let limits = Config::resolve(file, Overrides::default()).unwrap().limits;
        assert_eq!(limits.max_connections, 7);
        assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(3));
        let file: ConfigFile =
            parse_toml("[limits]\nmax_connections = 0\n", Path::new("t.toml")).unwrap();
        assert!(matches!(
            Config::resolve(file, Overrides::default()),
            Err(ConfigError::Invalid(_))
        ));
        let file: ConfigFile = parse_toml(
            "[limits]\nheavy_threads = 2\nheavy_queue = 16\nheavy_max_wait_ms = 5000\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let heavy = Config::resolve(file, Overrides::default())
            .unwrap()
            .limits
            .heavy;
        assert_eq!((heavy.threads, heavy.queue), (2, 16));
        assert_eq!(heavy.max_wait, std::time::Duration::from_secs(5));
        for zero in [
            "heavy_threads = 0",
            "heavy_queue = 0",
            "heavy_max_wait_ms = 0",
        ] {
            let file: ConfigFile =
                parse_toml(&format!("[limits]\n{zero}\n"), Path::new("t.toml")).unwrap();
            assert!(
                matches!(
                    Config::resolve(file, Overrides::default()),
                    Err(ConfigError::Invalid(_))
                ),
                "{zero}"
            );
        }
    }

    #[test]
    fn credentials_name_their_principal_and_identity_policy() {
        let file: ConfigFile = parse_toml(
            "[[credentials]]\naccess_key_id = \"AKIAR\"\nsecret_access_key = \"s\"\naccount_id = \"444455556666\"\nrole_name = \"ops/Deployer\"\nidentity_policy = '{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}}'\n[[credentials]]\naccess_key_id = \"AKIAU\"\nsecret_access_key = \"s\"\naccount_id = \"444455556666\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let config = Config::resolve(file, Overrides::default()).unwrap();
        let role = &config.principals["AKIAR"];
        assert_eq!(
            role.principal.arn(),
            "arn:aws:iam::444455556666:role/ops/Deployer"
        );
        assert!(role.identity_policy.is_some());
        let user = &config.principals["AKIAU"];
        assert_eq!(user.principal.arn(), "arn:aws:iam::444455556666:user/admin");
        assert!(user.identity_policy.is_none());
        let bad: ConfigFile = parse_toml(
            "[[credentials]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\naccount_id = \"444455556666\"\nidentity_policy = '{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Resource\":\"*\"}}'\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let err = Config::resolve(bad, Overrides::default()).err().unwrap();
        assert!(err.to_string().contains("identity_policy of A"), "{err}");
    }

    #[test]
    fn bad_files_are_rejected_with_position() {
        let err = parse_toml::<ConfigFile>("listen = 3\n", Path::new("c.toml"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("c.toml"), "{err}");
        assert!(parse_toml::<ConfigFile>("nonsense = true\n", Path::new("c.toml")).is_err());
        let file: ConfigFile = parse_toml(
            "[[credentials]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\naccount_id = \"12\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert!(matches!(
            Config::resolve(file, Overrides::default()),
            Err(ConfigError::Invalid(_))
        ));
    }
}
