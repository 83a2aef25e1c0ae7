//! How a client command reaches a node: endpoint, trusted CA and credential,
//! from flags or from the node's data directory.

use std::path::PathBuf;

use clap::Args;
use keyfence_server::datadir::DataDir;
use keyfence_server::tls::{ClientGroups, PkiPaths};

use zeroize::Zeroizing;

use crate::client::{ClientContext, Credential, Endpoint, HttpVersion};

/// Connection flags shared by client commands.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The node: https://host:port (TLS), or http://host:port for a plain-HTTP peer such as moto.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    pub endpoint: String,
    /// Data directory of the node, for its CA (ca.pem) and first credential
    /// (credentials.toml) [default: ./keyfence-data if it exists].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// CA certificate to trust (PEM) instead of DATA_DIR/ca.pem.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Access key id to sign with instead of the data directory's credential.
    #[arg(long, requires = "secret_key")]
    pub access_key: Option<String>,
    /// Secret access key to sign with.
    #[arg(long, requires = "access_key")]
    pub secret_key: Option<String>,
    /// Region of the SigV4 credential scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

/// Where the node is, which CA to trust and what to sign with.
pub struct Resolved {
    /// The node.
    pub endpoint: Endpoint,
    /// CA certificate (required for https).
    pub ca: Option<PathBuf>,
    /// Signing credential.
    pub credential: Credential,
    /// The node's data directory, if one was given or the default exists.
    pub data_dir: Option<PathBuf>,
}

impl ConnectArgs {
    /// Resolves the flags (and the data directory's files) into endpoint, CA and credential.
    pub fn resolve(&self) -> Result<Resolved, String> {
        let endpoint = Endpoint::parse(&self.endpoint)?;
        let data_dir = self.data_dir.clone().or_else(|| {
            let d = PathBuf::from(keyfence_server::config::DEFAULT_DATA_DIR);
            d.is_dir().then_some(d)
        });
        let ca = self
            .ca
            .clone()
            .or_else(|| data_dir.as_ref().map(|d| PkiPaths::in_dir(d).ca_cert));
        if endpoint.tls && ca.is_none() {
            return Err(
                "an https endpoint needs the node's CA: --ca FILE or --data-dir DIR".into(),
            );
        }
        let credential = match (&self.access_key, &self.secret_key, &data_dir) {
            (Some(id), Some(secret), _) => Credential {
                access_key_id: id.clone(),
                secret_access_key: Zeroizing::new(secret.clone()),
                region: self.region.clone(),
            },
            (_, _, Some(d)) => {
                let dir = DataDir {
                    path: d.clone(),
                    pki: PkiPaths::in_dir(d),
                };
                let c = dir
                    .load_credentials()
                    .map_err(|e| format!("credentials in {}: {e}", d.display()))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| format!("{}: no credential", dir.credentials().display()))?;
                Credential {
                    access_key_id: c.access_key_id.clone(),
                    secret_access_key: c.secret_access_key.clone(),
                    region: self.region.clone(),
                }
            }
            _ => return Err(
                "no credential: --data-dir DIR (its credentials.toml) or --access-key/--secret-key"
                    .into(),
            ),
        };
        Ok(Resolved {
            endpoint,
            ca,
            credential,
            data_dir,
        })
    }

    /// A client context for these flags; `groups` picks the TLS key exchange.
    pub fn context(&self, groups: ClientGroups) -> Result<ClientContext, String> {
        let r = self.resolve()?;
        ClientContext::new(
            r.endpoint,
            r.ca.as_deref(),
            groups,
            r.credential,
            HttpVersion::Http1,
        )
    }
}
