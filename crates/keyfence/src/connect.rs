//! How a client command reaches a node: endpoint, trusted CA and credential,
//! from flags or from the node's data directory.

use std::path::PathBuf;

use clap::Args;
use keyfence_server::datadir::DataDir;
use keyfence_server::tls::{ClientGroups, PkiPaths};

use crate::bench::client::{ClientContext, Credential, Endpoint, HttpVersion};

/// Connection flags shared by client commands.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The node: https://host:port.
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
    #[arg(long, requires = "secret_key", env = "AWS_ACCESS_KEY_ID")]
    pub access_key: Option<String>,
    /// Secret access key to sign with.
    #[arg(
        long,
        requires = "access_key",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// Region of the SigV4 credential scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

impl ConnectArgs {
    /// A client context for these flags; `groups` picks the TLS key exchange.
    pub fn context(&self, groups: ClientGroups) -> Result<ClientContext, String> {
        let endpoint = Endpoint::parse(&self.endpoint)?;
        let data_dir = self.data_dir.clone().or_else(|| {
            let d = PathBuf::from(keyfence_server::config::DEFAULT_DATA_DIR);
            d.is_dir().then_some(d)
        });
        let ca = self
            .ca
            .clone()
            .or_else(|| data_dir.as_ref().map(|d| PkiPaths::in_dir(d).ca_cert));
        let credential = match (&self.access_key, &self.secret_key, &data_dir) {
            (Some(id), Some(secret), _) => Credential {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
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
                    secret_access_key: c.secret_access_key.to_string(),
                    region: self.region.clone(),
                }
            }
            _ => return Err(
                "no credential: --data-dir DIR (its credentials.toml) or --access-key/--secret-key"
                    .into(),
            ),
        };
        ClientContext::new(
            endpoint,
            ca.as_deref(),
            groups,
            credential,
            HttpVersion::Http1,
        )
    }
}
