//! Throw-away certificates for a TLS-enabled [`TempPostgres`](crate::TempPostgres):
//! a CA made for one server, and the server's certificate it issues.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::PgError;

/// PEM texts of a CA certificate and of a server certificate and key it issued.
pub(crate) struct ServerCerts {
    /// The CA's certificate (what clients trust).
    pub(crate) ca: String,
    /// The server's certificate.
    pub(crate) cert: String,
    /// The server's private key (PKCS#8).
    pub(crate) key: String,
}

fn cert_error(e: rcgen::Error) -> PgError {
    PgError::Certificate(e.to_string())
}

fn ca_params() -> Result<CertificateParams, PgError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "keyfence-testkit CA");
    Ok(params)
}

/// A fresh CA and a certificate it issued for `names` (DNS names or IP addresses).
pub(crate) fn issue(names: &[&str]) -> Result<ServerCerts, PgError> {
    let ca_key = KeyPair::generate().map_err(cert_error)?;
    let ca = ca_params()?.self_signed(&ca_key).map_err(cert_error)?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let key = KeyPair::generate().map_err(cert_error)?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())
            .map_err(cert_error)?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("server"),
    );
    let cert = params.signed_by(&key, &issuer).map_err(cert_error)?;
    Ok(ServerCerts {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The certificate (PEM) of a CA that issued nothing: trusting it, a client
/// must refuse every server.
pub fn unrelated_ca_pem() -> Result<String, PgError> {
    let key = KeyPair::generate().map_err(cert_error)?;
    Ok(ca_params()?.self_signed(&key).map_err(cert_error)?.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pem_for_the_names() {
        let c = issue(&["localhost", "127.0.0.1"]).unwrap();
        assert!(c.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(c.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(c.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(c.ca, unrelated_ca_pem().unwrap());
    }
}
