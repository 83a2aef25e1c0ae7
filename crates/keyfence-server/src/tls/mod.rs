//! Post-quantum TLS 1.3 transport.
//!
//! Every keyfence listener speaks TLS 1.3 only, through the aws-lc-rs provider, and
//! prefers the hybrid `X25519MLKEM768` key exchange. Two server modes exist:
//!
//! * [`KxMode::Default`] offers the hybrid ML-KEM groups first and still accepts
//!   classical ECDHE groups (X25519, P-256, P-384) for clients that have no PQ support.
//! * [`KxMode::PostQuantumOnly`] accepts only hybrid ML-KEM groups. [`PqAcceptor`]
//!   reads the ClientHello first and refuses (with TLS's `insufficient_security` alert,
//!   a warning log line at most once per client address per minute, and
//!   [`TlsError::ClassicalOnlyClient`]) any client that offers no hybrid group.
//!
//! [`ensure_dev_pki`] creates a development CA and a localhost server certificate so a
//! single node can start with one command; [`client_config`] builds matching clients
//! for tests and for `keyfence bench`.

mod acceptor;
mod config;
mod dev_pki;
mod node_cert;
mod peer_listener;
mod pem;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use acceptor::{PqAcceptor, DEFAULT_HANDSHAKE_TIMEOUT};
pub use config::{client_config, load_server_config, server_group_names, ClientGroups, KxMode};
pub use dev_pki::{ensure_dev_pki, PkiPaths, DEV_CA_COMMON_NAME};
pub use node_cert::{issue_node_certificate, NodeCertificate, PeerTls, PresentedCertVerifier};
pub use peer_listener::{peer_server_config, IsNodeCertificate, PinnedNodeVerifier};

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
    /// Every value [`TlsError::metric_reason`] can return.
    pub const METRIC_REASONS: [&'static str; 3] = ["classical_only", "timeout", "tls_error"];

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
