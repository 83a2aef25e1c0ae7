//! Reading certificates and private keys from PEM files.

use std::fs;
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use zeroize::Zeroizing;

use super::TlsError;

pub(super) fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsError::Io {
            path: path.to_path_buf(),
            source,
        })
}

pub(super) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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

pub(super) fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
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
