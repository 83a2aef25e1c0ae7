//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` in the connection
//! string, over rustls (aws-lc-rs) through `tokio-postgres-rustls`.
//!
//! tokio-postgres itself understands only `sslmode=disable|prefer|require`
//! and no `sslrootcert`, so [`split`] takes both out of the string, hands
//! tokio-postgres the mode it knows, and keeps the verification for the
//! rustls configuration:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | if the server offers it | not checked (as libpq) |
//! | `require` | always | not checked; chain checked against `sslrootcert` if given (as libpq) |
//! | `verify-ca` | always | chain checked against `sslrootcert` |
//! | `verify-full` | always | chain and host name (or IP address) checked |
//!
//! `sslrootcert` is a PEM file of CA certificates; for `verify-ca` and
//! `verify-full` it defaults to `~/.postgresql/root.crt`, as in libpq.
//! `sslrootcert=system` (the platform's store) is refused with a clear error:
//! keyfence does not read the platform's store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyfence_core::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls::{Error as TlsError, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector every PostgreSQL connection of a store is made with.
pub type Connector = MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `disable`.
    Disable,
    /// `allow` or `prefer` (the default).
    Prefer,
    /// `require`.
    Require,
    /// `verify-ca`.
    VerifyCa,
    /// `verify-full`.
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Self, StoreError> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(invalid(format!(
                    "sslmode={other:?} (disable, allow, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }

    /// The mode tokio-postgres is given.
    fn driver_mode(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require | Self::VerifyCa | Self::VerifyFull => "require",
        }
    }
}

/// The TLS settings taken out of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `sslmode`.
    pub(crate) mode: Mode,
    /// `sslrootcert`.
    pub(crate) root_cert: Option<PathBuf>,
}

fn invalid(what: String) -> StoreError {
    StoreError::Backend(format!("invalid PostgreSQL connection string: {what}"))
}

/// Takes `sslmode` and `sslrootcert` out of `url` (key/value or URL form):
/// returns the string for tokio-postgres, with the `sslmode` it knows, and
/// the settings.
pub(crate) fn split(url: &str) -> Result<(String, Settings), StoreError> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (form, mut pairs) = if is_url {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        (Form::Url(base), pairs)
    } else {
        (Form::KeyValue, key_values(url)?)
    };
    let mut mode = Mode::Prefer;
    let mut root_cert = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "sslmode" => mode = Mode::parse(v)?,
            "sslrootcert" if v == "system" => {
                return Err(invalid(
                    "sslrootcert=system: keyfence does not read the platform's certificate \
                     store; give the CA certificate file"
                        .into(),
                ))
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    pairs.retain(|(k, _)| k != "sslmode" && k != "sslrootcert");
    pairs.push(("sslmode".into(), mode.driver_mode().into()));
    if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) && root_cert.is_none() {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        root_cert = Some(home.join(".postgresql/root.crt"));
    }
    Ok((form.render(&pairs), Settings { mode, root_cert }))
}

/// Which of libpq's two forms a connection string is written in.
enum Form<'a> {
    /// `postgres://…?k=v&…`, with everything before the `?`.
    Url(&'a str),
    /// `k=v k='v w' …`.
    KeyValue,
}

impl Form<'_> {
    /// The string in this form with `pairs` as its parameters.
    fn render(&self, pairs: &[(String, String)]) -> String {
        match self {
            Self::Url(base) => {
                let query: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect();
                format!("{base}?{}", query.join("&"))
            }
            Self::KeyValue => pairs
                .iter()
                .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// The `key=value` pairs of a libpq key/value string (values bare, or in
/// single quotes with `\'` and `\\` escapes; spaces around `=` allowed).
fn key_values(s: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(invalid(format!("expected `=` after {key:?}")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(invalid(format!("unterminated quoted value of {key:?}"))),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

impl Settings {
    /// The connector for these settings (used only when the mode asks for TLS).
    pub(crate) fn connector(&self) -> Result<Connector, StoreError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL TLS: {e}")))?
            .dangerous();
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, &self.root_cert) {
            (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => {
                Arc::new(Unverified(provider))
            }
            (Mode::Require | Mode::VerifyCa, Some(roots)) => {
                Arc::new(ChainOnly(webpki(roots, provider)?))
            }
            (Mode::VerifyFull, Some(roots)) => webpki(roots, provider)?,
            (Mode::VerifyCa | Mode::VerifyFull, None) => {
                unreachable!("split gives verify modes a root certificate file")
            }
        };
        let mut config = builder
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // PostgreSQL 17 checks the protocol when the client names one.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect::new(config))
    }
}

/// A verifier of chain and name against the CA certificates in `path`.
fn webpki(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StoreError> {
    let fail = |e: String| {
        StoreError::Backend(format!(
            "PostgreSQL TLS: sslrootcert {}: {e}",
            path.display()
        ))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
        roots
            .add(cert.map_err(|e| fail(e.to_string()))?)
            .map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| fail(e.to_string()))
}

/// `prefer` and `require` without a root certificate, as libpq: the session
/// is encrypted, the server's certificate is not checked (its handshake
/// signature still is).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        // webpki checks the chain first and the name last: a name error
        // means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_form_keeps_other_parameters_and_maps_the_mode() {
        let (url, s) = split(
            "postgres://kf:p%40ss@db1:5432,db2/keyfence?target_session_attrs=read-write\
             &sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20dir%2Froot.pem",
        )
        .unwrap();
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/etc/ca dir/root.pem")));
        assert_eq!(
            url,
            "postgres://kf:p%40ss@db1:5432,db2/keyfence?target_session_attrs=read-write&sslmode=require"
        );
        let config: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert_eq!(config.get_password(), Some(&b"p@ss"[..]));
    }

    #[test]
    fn key_value_form_with_quotes_and_escapes() {
        let (s, settings) = split(
            "host=db1,db2 password='it\\'s a secret' sslmode = verify-ca  sslrootcert='/a b/ca.pem'",
        )
        .unwrap();
        assert_eq!(settings.mode, Mode::VerifyCa);
        assert_eq!(settings.root_cert, Some(PathBuf::from("/a b/ca.pem")));
        let config: tokio_postgres::Config = s.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"it's a secret"[..]));
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(config.get_hosts().len(), 2);
    }

    #[test]
    fn defaults_and_refusals() {
        let (_, s) = split("host=db").unwrap();
        assert_eq!((s.mode, s.root_cert), (Mode::Prefer, None));
        let (_, s) = split("postgres://db/x?sslmode=require").unwrap();
        assert_eq!((s.mode, s.root_cert), (Mode::Require, None));
        let (_, s) = split("postgres://db/x?sslmode=verify-full").unwrap();
        assert!(s.root_cert.unwrap().ends_with(".postgresql/root.crt"));
        let (_, s) = split("postgres://db/x?sslmode=disable").unwrap();
        assert_eq!(s.mode, Mode::Disable);
        assert!(split("postgres://db/x?sslmode=verify").is_err());
        assert!(split("host=db sslrootcert=system sslmode=verify-full").is_err());
        assert!(split("host=db password='open").is_err());
        assert!(split("host").is_err());
    }

    #[test]
    fn a_missing_or_empty_root_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Settings {
            mode: Mode::VerifyFull,
            root_cert: Some(dir.path().join("none.pem")),
        };
        let e = missing.connector().err().unwrap().to_string();
        assert!(e.contains("sslrootcert") && e.contains("none.pem"), "{e}");
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        let empty = Settings {
            mode: Mode::VerifyCa,
            root_cert: Some(dir.path().join("empty.pem")),
        };
        let e = empty.connector().err().unwrap().to_string();
        assert!(e.contains("no certificate"), "{e}");
    }
}
