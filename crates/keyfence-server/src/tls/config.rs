//! rustls configurations: TLS 1.3 only, the aws-lc-rs provider, and the key-exchange
//! groups of each server mode and client kind.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::{ClientConfig, NamedGroup, ServerConfig};

use super::node_cert::PresentedCertVerifier;
use super::pem::{load_certs, load_private_key, root_store};
use super::{PkiPaths, TlsError};

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

/// Builds the server configuration: TLS 1.3 only, ALPN `h2` then `http/1.1`, the
/// aws-lc-rs provider restricted to the key-exchange groups of `mode`; a client
/// certificate is asked for but not required (a cluster node presents its node
/// certificate, see [`PresentedCertVerifier`]); session resumption with stateless
/// tickets (two after each handshake), never early data.
pub fn load_server_config(paths: &PkiPaths, mode: KxMode) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&paths.server_cert)?;
    let key = load_private_key(&paths.server_key)?;
    let provider = Arc::new(CryptoProvider {
        kx_groups: mode.kx_groups().to_vec(),
        ..aws_lc_rs::default_provider()
    });
    let verifier = Arc::new(PresentedCertVerifier::new(Arc::clone(&provider)));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    // Stateless TLS 1.3 session tickets (RFC 5077's construction, AES-256-CBC and
    // HMAC-SHA256 under keys drawn at start and rotated every 6 hours, 12-hour
    // ticket lifetime): a reconnecting client resumes with a
    // PSK instead of a certificate and signature. Resumption is always psk_dhe_ke,
    // so the resumed connection still runs a fresh key exchange in a group of
    // `mode` (the hybrid one when the client offers it). No 0-RTT data.
    config.ticketer = aws_lc_rs::Ticketer::new()?;
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

/// The names of every key-exchange group a server may negotiate (in any mode), as
/// rustls spells them (`X25519MLKEM768`, `secp256r1MLKEM768`, `X25519`, …).
pub fn server_group_names() -> impl Iterator<Item = &'static str> {
    DEFAULT_SERVER_GROUPS
        .iter()
        .filter_map(|g| g.name().as_str())
}

pub(super) fn is_hybrid(group: NamedGroup) -> bool {
    HYBRID_GROUPS.iter().any(|g| g.name() == group)
}
