//! Reading certificates and private keys from PEM files.

use std::fs;
use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use zeroize::Zeroizing;

use super::TlsError;

/// A file's bytes, in a buffer zeroized on drop.
pub(super) fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Every certificate in a PEM file (other sections skipped), at least one.
pub(super) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    certs_from_pem(&pem).map_err(|reason| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    })
}

fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, &'static str> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "malformed PEM certificate")?;
    if certs.is_empty() {
        return Err("no certificate found");
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub(super) fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_secret(path)?;
    key_from_pem(&pem).map_err(|reason| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    })
}

/// The error is a fixed reason: a PEM parse error may quote the file's text.
fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, &'static str> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => "no private key found",
        _ => "malformed PEM private key",
    })
}

/// A root store of the certificates in a CA PEM file.
pub(super) fn root_store(ca_pem: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_pem)? {
        roots.add(cert).map_err(|_| TlsError::Pem {
            path: ca_pem.to_path_buf(),
            reason: "not a valid CA certificate",
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn pair() -> (String, Zeroizing<String>) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), Zeroizing::new(key.serialize_pem()))
    }

    #[test]
    fn certificates_and_keys_are_read_from_mixed_pem() {
        let (cert, key) = pair();
        let (cert2, _) = pair();
        // A chain file with a key and a comment between the certificates.
        let bundle = format!("{cert}\nsome comment\n{}{cert2}", key.as_str());
        let certs = certs_from_pem(bundle.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_ne!(certs[0], certs[1]);
        let parsed = key_from_pem(bundle.as_bytes()).unwrap();
        assert!(matches!(parsed, PrivateKeyDer::Pkcs8(_)));
        assert_eq!(
            key_from_pem(key.as_bytes()).unwrap().secret_der(),
            parsed.secret_der()
        );
    }

    #[test]
    fn missing_and_malformed_items_have_their_own_reason() {
        let (cert, key) = pair();
        assert_eq!(certs_from_pem(b"not pem"), Err("no certificate found"));
        assert_eq!(certs_from_pem(key.as_bytes()), Err("no certificate found"));
        let truncated = &cert[..cert.len() - 30];
        assert_eq!(
            certs_from_pem(truncated.as_bytes()),
            Err("malformed PEM certificate")
        );
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert_eq!(
            certs_from_pem(bad_base64.as_bytes()),
            Err("malformed PEM certificate")
        );
        assert_eq!(
            key_from_pem(cert.as_bytes()).err(),
            Some("no private key found")
        );
        let truncated = &key[..key.len() - 30];
        assert_eq!(
            key_from_pem(truncated.as_bytes()).err(),
            Some("malformed PEM private key")
        );
    }
}
