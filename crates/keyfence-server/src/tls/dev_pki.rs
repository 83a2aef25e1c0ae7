//! The development PKI: a CA and a localhost server certificate made with rcgen, so
//! a single node starts with one command.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{ServerName, UnixTime};
use zeroize::Zeroizing;

use super::pem::{load_certs, read_secret, root_store};
use super::TlsError;

/// Common name of the development CA created by [`ensure_dev_pki`].
pub const DEV_CA_COMMON_NAME: &str = "keyfence development CA";

/// Subject alternative names of the development server certificate.
const DEV_SERVER_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Validity of the development CA and server certificate.
const DEV_VALIDITY: time::Duration = time::Duration::days(3650);

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
