//! Node certificates for mutual TLS between cluster nodes.
//!
//! The authority makes a node's certificate and key when it approves the
//! node ([`issue_node_certificate`]) and puts both in the node's signed grant,
//! the key encrypted to the node's KEM key. A forwarding node presents its
//! certificate ([`node_client_config`]); every listener asks for a client
//! certificate without requiring one (AWS clients have none) and checks only
//! that the client holds the key of the certificate it presents
//! ([`PresentedCertVerifier`]). Whether that certificate is a node's is
//! decided above TLS, by pinning: a request marked as forwarded is served
//! only if the connection's certificate is exactly the one in the current
//! grant of the approved node it names (see the server's `forward` module).
//! Pinning to the grant rather than chaining to a CA means removing a node
//! or re-issuing its grant revokes its old certificate at once.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use zeroize::Zeroizing;

use super::TlsError;

/// How long a node certificate is valid; revocation is by grant, not by expiry.
const NODE_CERT_VALIDITY_DAYS: i64 = 3650;

/// A node's certificate (DER) and its private key (PKCS#8 DER, zeroized on drop).
pub struct NodeCertificate {
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// Its private key, PKCS#8 DER.
    pub private_key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for NodeCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCertificate([REDACTED])")
    }
}

/// Makes a node certificate for `name`: a fresh ECDSA P-256 key, the common
/// name `keyfence node NAME`, client and server use, self-signed (peers pin
/// it through the node's grant, they do not chain it to a CA).
pub fn issue_node_certificate(name: &str) -> Result<NodeCertificate, TlsError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("keyfence node {name}"));
    dn.push(DnType::OrganizationName, "keyfence");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(NODE_CERT_VALIDITY_DAYS);
    let cert = params.self_signed(&key)?;
    Ok(NodeCertificate {
        certificate: cert.der().to_vec(),
        private_key: Zeroizing::new(key.serialize_der()),
    })
}

/// Client configurations for node-to-node connections: TLS 1.3,
/// `X25519MLKEM768` only, trusting the cluster's CA for the peer's server
/// certificate, and presenting this node's certificate once it has one.
#[derive(Clone)]
pub struct PeerTls {
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls(X25519MLKEM768)")
    }
}

impl PeerTls {
    /// Trusting the CA certificate(s) in `ca_pem`.
    pub fn new(ca_pem: &std::path::Path) -> Result<Self, TlsError> {
        Ok(Self {
            roots: Arc::new(super::pem::root_store(ca_pem)?),
            provider: Arc::new(CryptoProvider {
                kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768],
                ..rustls::crypto::aws_lc_rs::default_provider()
            }),
        })
    }

    fn builder(
        &self,
    ) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, TlsError>
    {
        Ok(
            ClientConfig::builder_with_provider(Arc::clone(&self.provider))
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_root_certificates(Arc::clone(&self.roots)),
        )
    }

    /// Without a client certificate (a node not approved yet): peers refuse
    /// its forwarded requests.
    pub fn anonymous(&self) -> Result<Arc<ClientConfig>, TlsError> {
        Ok(Arc::new(self.builder()?.with_no_client_auth()))
    }

    /// Presenting `node`'s certificate.
    pub fn presenting(&self, node: &NodeCertificate) -> Result<Arc<ClientConfig>, TlsError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(node.private_key.to_vec()));
        Ok(Arc::new(self.builder()?.with_client_auth_cert(
            vec![CertificateDer::from(node.certificate.clone())],
            key,
        )?))
    }
}

/// Asks every client for a certificate, requires none, and accepts any it
/// presents once the client has proved it holds the certificate's key (the
/// handshake signature). What the certificate is good for is decided by
/// pinning above TLS.
#[derive(Debug)]
pub struct PresentedCertVerifier {
    provider: Arc<CryptoProvider>,
}

impl PresentedCertVerifier {
    /// Checking handshake signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self { provider }
    }
}

impl ClientCertVerifier for PresentedCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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
