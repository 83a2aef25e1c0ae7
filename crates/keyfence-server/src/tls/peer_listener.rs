//! The node-to-node listener's TLS: a client certificate is required, and
//! only a certificate pinned in the current grant of an approved node
//! passes, so a node that is not enrolled (or was removed) is refused during
//! the handshake, before it can send a byte of HTTP.
//!
//! The API listener cannot require a client certificate (AWS clients have
//! none); a node with `[node] peer_listen` takes its node-to-node traffic
//! (forwards, round-trip measurements) on this second listener instead, and
//! advertises that address to its peers. Requests on it are still checked
//! as on the API listener (SigV4 by the serving node, the forwarded-by
//! header against the connection's certificate).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};

use super::pem::{load_certs, load_private_key};
use super::{PkiPaths, TlsError};

/// Whether a certificate (DER) is the pinned node certificate of an approved node.
pub type IsNodeCertificate = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// Requires a client certificate and accepts only one that `is_node` pins,
/// once the client has proved it holds its key (the handshake signature).
pub struct PinnedNodeVerifier {
    provider: Arc<CryptoProvider>,
    is_node: IsNodeCertificate,
}

impl std::fmt::Debug for PinnedNodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedNodeVerifier")
    }
}

impl PinnedNodeVerifier {
    /// Checking handshake signatures with `provider`'s algorithms and
    /// certificates with `is_node`.
    pub fn new(provider: Arc<CryptoProvider>, is_node: IsNodeCertificate) -> Self {
        Self { provider, is_node }
    }
}

impl ClientCertVerifier for PinnedNodeVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if (self.is_node)(end_entity.as_ref()) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The node-to-node listener's server configuration: TLS 1.3,
/// `X25519MLKEM768` only, ALPN `h2`, the node's server certificate from
/// `paths`, and a client certificate required and checked by `is_node`.
pub fn peer_server_config(
    paths: &PkiPaths,
    is_node: IsNodeCertificate,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&paths.server_cert)?;
    let key = load_private_key(&paths.server_key)?;
    let provider = Arc::new(CryptoProvider {
        kx_groups: vec![aws_lc_rs::kx_group::X25519MLKEM768],
        ..aws_lc_rs::default_provider()
    });
    let verifier = Arc::new(PinnedNodeVerifier::new(Arc::clone(&provider), is_node));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
