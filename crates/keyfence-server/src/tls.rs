//! Post-quantum TLS 1.3 transport.
//!
//! Every keyfence listener speaks TLS 1.3 only, through the aws-lc-rs provider, and
//! prefers the hybrid `X25519MLKEM768` key exchange. Two server modes exist:
//!
//! * [`KxMode::Default`] offers the hybrid ML-KEM groups first and still accepts
//!   classical ECDHE groups (X25519, P-256, P-384) for clients that have no PQ support.
//! * [`KxMode::PostQuantumOnly`] accepts only hybrid ML-KEM groups. [`PqAcceptor`]
//!   reads the ClientHello first and refuses (with a TLS alert, one warning log line and
//!   [`TlsError::ClassicalOnlyClient`]) any client that offers no hybrid group.
//!
//! [`ensure_dev_pki`] creates a development CA and a localhost server certificate so a
//! single node can start with one command; [`client_config`] builds matching clients
//! for tests and for `keyfence bench`.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::Acceptor;
use rustls::{ClientConfig, NamedGroup, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use zeroize::Zeroizing;

/// Hybrid (classical + ML-KEM) key-exchange groups, in server preference order.
const HYBRID_GROUPS: &[&dyn SupportedKxGroup] = &[
    aws_lc_rs::kx_group::X25519MLKEM768,
    aws_lc_rs::kx_group::SECP256R1MLKEM768,
];

/// Every group the server accepts in [`KxMode::Default`], in preference order.
const DEFAULT_SERVER_GROUPS: &[&dyn SupportedKxGroup] = &[
    aws_lc_rs::kx_group::X25519MLKEM768,
    aws_lc_rs::kx_group::SECP256R1MLKEM768,
    aws_lc_rs::kx_group::X25519,
    aws_lc_rs::kx_group::SECP256R1,
    aws_lc_rs::kx_group::SECP384R1,
];

/// Classical ECDHE groups only (what a client without PQ support offers).
const CLASSICAL_GROUPS: &[&dyn SupportedKxGroup] = &[
    aws_lc_rs::kx_group::X25519,
    aws_lc_rs::kx_group::SECP256R1,
    aws_lc_rs::kx_group::SECP384R1,
];

/// ALPN protocols the server offers, in preference order.
const ALPN_PROTOCOLS: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Common name of the development CA created by [`ensure_dev_pki`].
pub const DEV_CA_COMMON_NAME: &str = "keyfence development CA";

/// Subject alternative names of the development server certificate.
const DEV_SERVER_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Validity of the development CA and server certificate.
const DEV_VALIDITY: time::Duration = time::Duration::days(3650);

/// Default upper bound for one TLS handshake in [`PqAcceptor::accept`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors from TLS configuration, the development PKI and handshakes.
///
/// No variant ever carries private key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a PKI file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A PEM file did not contain what was expected.
    #[error("{path}: {reason}")]
    Pem {
        /// The file involved.
        path: PathBuf,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// Only one file of a certificate/key pair exists, so the pair can be neither reused
    /// nor regenerated without destroying something.
    #[error("{present} exists but {missing} does not; remove it or supply both")]
    IncompletePki {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// The server certificate does not chain to the CA (or has expired).
    #[error("server certificate {server_cert} is not valid under CA {ca_cert}: {source}")]
    PkiMismatch {
        /// The CA certificate file.
        ca_cert: PathBuf,
        /// The server certificate file.
        server_cert: PathBuf,
        /// Why verification failed.
        #[source]
        source: rustls::Error,
    },
    /// Generating a key or certificate failed.
    #[error("certificate generation failed: {0}")]
    CertGen(#[from] rcgen::Error),
    /// rustls rejected the configuration (for example, a key that does not match the
    /// certificate).
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
    /// The TLS handshake failed (I/O error, TLS alert, protocol error).
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] io::Error),
    /// The TLS handshake did not complete in time.
    #[error("TLS handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// Post-quantum-only mode: the client offered no hybrid ML-KEM group.
    #[error("client offered only classical key exchange groups ({offered}); post-quantum key exchange is required")]
    ClassicalOnlyClient {
        /// The groups the client offered, comma separated (e.g. `X25519, secp256r1`).
        offered: String,
    },
}

impl TlsError {
    /// The `reason` label for `keyfence_tls_handshake_failures_total`:
    /// `classical_only`, `timeout` or `tls_error`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            TlsError::ClassicalOnlyClient { .. } => "classical_only",
            TlsError::HandshakeTimeout(_) => "timeout",
            _ => "tls_error",
        }
    }
}

/// Which key-exchange groups a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KxMode {
    /// Prefer hybrid `X25519MLKEM768` (then `SECP256R1MLKEM768`), but also accept the
    /// classical groups X25519, secp256r1 and secp384r1.
    #[default]
    Default,
    /// Accept only hybrid ML-KEM groups (`X25519MLKEM768`, `SECP256R1MLKEM768`);
    /// classical-only clients are refused.
    PostQuantumOnly,
}

impl KxMode {
    fn kx_groups(self) -> &'static [&'static dyn SupportedKxGroup] {
        match self {
            KxMode::Default => DEFAULT_SERVER_GROUPS,
            KxMode::PostQuantumOnly => HYBRID_GROUPS,
        }
    }
}

/// Which key-exchange groups a client built by [`client_config`] offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientGroups {
    /// The aws-lc-rs provider default: `X25519MLKEM768` first, then X25519, secp256r1
    /// and secp384r1.
    #[default]
    Default,
    /// Only `X25519MLKEM768`.
    HybridOnly,
    /// Only classical groups: X25519, secp256r1, secp384r1 (a client without PQ support).
    ClassicalOnly,
}

impl ClientGroups {
    fn kx_groups(self) -> Vec<&'static dyn SupportedKxGroup> {
        match self {
            ClientGroups::Default => aws_lc_rs::default_provider().kx_groups,
            ClientGroups::HybridOnly => vec![aws_lc_rs::kx_group::X25519MLKEM768],
            ClientGroups::ClassicalOnly => CLASSICAL_GROUPS.to_vec(),
        }
    }
}

/// Locations of the CA and server certificate/key PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// CA certificate (PEM). Clients trust this.
    pub ca_cert: PathBuf,
    /// CA private key (PKCS#8 PEM, mode 0600).
    pub ca_key: PathBuf,
    /// Server certificate chain (PEM), leaf first.
    pub server_cert: PathBuf,
    /// Server private key (PEM, mode 0600).
    pub server_key: PathBuf,
}

impl PkiPaths {
    /// The standard file names (`ca.pem`, `ca.key`, `server.pem`, `server.key`) in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        PkiPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// Creates, if missing, a development CA (ECDSA P-256, CN "keyfence development CA")
/// and a server certificate signed by it with SANs `localhost`, `127.0.0.1` and `::1`,
/// as `ca.pem`, `ca.key`, `server.pem` and `server.key` in `data_dir` (created if
/// needed). Private keys are written with mode 0600.
///
/// Existing files are reused; the function then checks that the server certificate
/// chains to the CA and is currently valid for `localhost`. If only one file of a
/// pair exists, it fails with [`TlsError::IncompletePki`] rather than overwrite.
pub fn ensure_dev_pki(data_dir: &Path) -> Result<PkiPaths, TlsError> {
    fs::create_dir_all(data_dir).map_err(|source| TlsError::Io {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let paths = PkiPaths::in_dir(data_dir);
    let have_ca = pair_exists(&paths.ca_cert, &paths.ca_key)?;
    let have_server = pair_exists(&paths.server_cert, &paths.server_key)?;

    if !have_server {
        let ca_key = if have_ca {
            warn_if_readable_by_others(&paths.ca_key);
            let pem = read_secret(&paths.ca_key)?;
            let pem = std::str::from_utf8(&pem).map_err(|_| TlsError::Pem {
                path: paths.ca_key.clone(),
                reason: "CA key is not UTF-8 PEM",
            })?;
            KeyPair::from_pem(pem)?
        } else {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let cert = dev_ca_params().self_signed(&key)?;
            write_file(
                &paths.ca_key,
                Zeroizing::new(key.serialize_pem()).as_bytes(),
                true,
            )?;
            write_file(&paths.ca_cert, cert.pem().as_bytes(), false)?;
            tracing::info!(path = %paths.ca_cert.display(), "created development CA");
            key
        };
        // An existing CA is reconstructed from the same parameters it was created
        // with; the chain check below catches a CA file that was not.
        let issuer = Issuer::new(dev_ca_params(), ca_key);
        let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let server_cert = dev_server_params()?.signed_by(&server_key, &issuer)?;
        write_file(
            &paths.server_key,
            Zeroizing::new(server_key.serialize_pem()).as_bytes(),
            true,
        )?;
        write_file(&paths.server_cert, server_cert.pem().as_bytes(), false)?;
        tracing::info!(path = %paths.server_cert.display(), "created development server certificate");
    } else if !have_ca {
        return Err(TlsError::IncompletePki {
            present: paths.server_cert.clone(),
            missing: paths.ca_cert.clone(),
        });
    } else {
        warn_if_readable_by_others(&paths.ca_key);
        warn_if_readable_by_others(&paths.server_key);
    }

    verify_chain(&paths)?;
    Ok(paths)
}

/// Builds the server configuration: TLS 1.3 only, ALPN `h2` then `http/1.1`, the
/// aws-lc-rs provider restricted to the key-exchange groups of `mode`, no client
/// authentication.
pub fn load_server_config(paths: &PkiPaths, mode: KxMode) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&paths.server_cert)?;
    let key = load_private_key(&paths.server_key)?;
    let provider = Arc::new(CryptoProvider {
        kx_groups: mode.kx_groups().to_vec(),
        ..aws_lc_rs::default_provider()
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Builds a TLS 1.3 client configuration that trusts the CA certificate(s) in `ca_pem`
/// and offers the key-exchange groups selected by `groups`.
///
/// No ALPN protocol is set; an HTTP client that wants `h2` clones the configuration
/// and sets `alpn_protocols`.
pub fn client_config(ca_pem: &Path, groups: ClientGroups) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = root_store(ca_pem)?;
    let provider = Arc::new(CryptoProvider {
        kx_groups: groups.kx_groups(),
        ..aws_lc_rs::default_provider()
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts TLS connections, enforcing [`KxMode::PostQuantumOnly`] on the ClientHello.
#[derive(Clone)]
pub struct PqAcceptor {
    config: Arc<ServerConfig>,
    mode: KxMode,
    handshake_timeout: Duration,
}

impl fmt::Debug for PqAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PqAcceptor")
            .field("mode", &self.mode)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl PqAcceptor {
    /// An acceptor completing handshakes with `config` (normally from
    /// [`load_server_config`] with the same `mode`) and a handshake timeout of
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn new(config: Arc<ServerConfig>, mode: KxMode) -> Self {
        PqAcceptor {
            config,
            mode,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Replaces the handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The key-exchange mode this acceptor enforces.
    pub fn mode(&self) -> KxMode {
        self.mode
    }

    /// Performs the TLS handshake on `tcp`.
    ///
    /// The ClientHello is read first. In [`KxMode::PostQuantumOnly`], a client that
    /// offers no hybrid ML-KEM group is logged once at `warn` with the groups it offered,
    /// answered with a TLS `handshake_failure` alert, and refused with
    /// [`TlsError::ClassicalOnlyClient`]. On success, returns the stream and the name of
    /// the negotiated group (e.g. `"X25519MLKEM768"`).
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, &'static str), TlsError> {
        let peer = tcp
            .peer_addr()
            .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
        match tokio::time::timeout(self.handshake_timeout, self.handshake(tcp, peer)).await {
            Ok(result) => result,
            Err(_) => Err(TlsError::HandshakeTimeout(self.handshake_timeout)),
        }
    }

    fn config_is_strict(&self) -> bool {
        self.config
            .crypto_provider()
            .kx_groups
            .iter()
            .all(|g| is_hybrid(g.name()))
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        peer: String,
    ) -> Result<(TlsStream<TcpStream>, &'static str), TlsError> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
            .await
            .map_err(TlsError::Handshake)?;

        if self.mode == KxMode::PostQuantumOnly {
            let hello = start.client_hello();
            let offered = hello.named_groups().unwrap_or(&[]);
            if !offered.iter().copied().any(is_hybrid) {
                let offered = describe_groups(offered);
                tracing::warn!(
                    peer = %peer,
                    offered = %offered,
                    "refusing TLS client without post-quantum key exchange"
                );
                // With a hybrid-only configuration, completing the handshake makes
                // rustls send a handshake_failure alert (the outcome is known to be an
                // error). A configuration that also allows classical groups must not
                // complete, so the connection is simply dropped.
                if self.config_is_strict() {
                    let _ = start.into_stream(Arc::clone(&self.config)).await;
                }
                return Err(TlsError::ClassicalOnlyClient { offered });
            }
        }

        let stream = start
            .into_stream(Arc::clone(&self.config))
            .await
            .map_err(TlsError::Handshake)?;
        let group = stream
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name());
        match group {
            Some(group) if self.mode == KxMode::PostQuantumOnly && !is_hybrid(group) => {
                // Only reachable if the acceptor was given a configuration that allows
                // classical groups; strict mode still holds.
                let offered = group_name(group);
                tracing::warn!(peer = %peer, negotiated = %offered, "refusing classical key exchange in post-quantum-only mode");
                Err(TlsError::ClassicalOnlyClient { offered })
            }
            Some(group) => Ok((stream, group.as_str().unwrap_or("unknown"))),
            None => Ok((stream, "unknown")),
        }
    }
}

fn is_hybrid(group: NamedGroup) -> bool {
    HYBRID_GROUPS.iter().any(|g| g.name() == group)
}

fn group_name(group: NamedGroup) -> String {
    match group.as_str() {
        Some(name) => name.to_owned(),
        None => format!("0x{:04x}", u16::from(group)),
    }
}

fn describe_groups(groups: &[NamedGroup]) -> String {
    if groups.is_empty() {
        return "none".to_owned();
    }
    groups
        .iter()
        .map(|g| group_name(*g))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dev_ca_params() -> CertificateParams {
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, DEV_CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, "keyfence");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + DEV_VALIDITY;
    params
}

fn dev_server_params() -> Result<CertificateParams, TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let sans: Vec<String> = DEV_SERVER_SANS.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "keyfence server (development)");
    dn.push(DnType::OrganizationName, "keyfence");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + DEV_VALIDITY;
    Ok(params)
}

/// Whether both files of a certificate/key pair exist; an error if only one does.
fn pair_exists(cert: &Path, key: &Path) -> Result<bool, TlsError> {
    match (exists(cert)?, exists(key)?) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) => Err(TlsError::IncompletePki {
            present: cert.to_path_buf(),
            missing: key.to_path_buf(),
        }),
        (false, true) => Err(TlsError::IncompletePki {
            present: key.to_path_buf(),
            missing: cert.to_path_buf(),
        }),
    }
}

fn exists(path: &Path) -> Result<bool, TlsError> {
    path.try_exists().map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `contents` to `path` atomically (temporary file + rename). With `private`,
/// the file is created with mode 0600 before any byte is written.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    let io_err = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    if let Err(e) = result.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    Ok(())
}

/// Logs a warning if a private key file is readable by group or others.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format_args!("{mode:o}"), "private key file is accessible by group or others; expected 0600");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem {
            path: path.to_path_buf(),
            reason: "malformed PEM certificate",
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            reason: "no certificate found",
        });
    }
    Ok(certs)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_secret(path)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(TlsError::Pem {
            path: path.to_path_buf(),
            reason: "no private key found",
        }),
        Err(_) => Err(TlsError::Pem {
            path: path.to_path_buf(),
            reason: "malformed PEM private key",
        }),
    }
}

fn root_store(ca_pem: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_pem)? {
        roots.add(cert).map_err(|_| TlsError::Pem {
            path: ca_pem.to_path_buf(),
            reason: "not a valid CA certificate",
        })?;
    }
    Ok(roots)
}

/// Checks that the server certificate chains to the CA and is valid for `localhost` now.
fn verify_chain(paths: &PkiPaths) -> Result<(), TlsError> {
    let mismatch = |source| TlsError::PkiMismatch {
        ca_cert: paths.ca_cert.clone(),
        server_cert: paths.server_cert.clone(),
        source,
    };
    let roots = Arc::new(root_store(&paths.ca_cert)?);
    let verifier =
        WebPkiServerVerifier::builder_with_provider(roots, Arc::new(aws_lc_rs::default_provider()))
            .build()
            .map_err(|e| mismatch(rustls::Error::General(e.to_string())))?;
    let chain = load_certs(&paths.server_cert)?;
    let (leaf, intermediates) = chain.split_first().ok_or_else(|| TlsError::Pem {
        path: paths.server_cert.clone(),
        reason: "no certificate found",
    })?;
    let localhost = ServerName::try_from("localhost")
        .map_err(|e| mismatch(rustls::Error::General(e.to_string())))?;
    verifier
        .verify_server_cert(leaf, intermediates, &localhost, &[], UnixTime::now())
        .map_err(mismatch)?;
    Ok(())
}
