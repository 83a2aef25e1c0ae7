//! keyfence node: post-quantum TLS transport, the AWS KMS JSON 1.1 API, SigV4
//! authentication, configuration, the data directory and metrics.

pub mod api;
pub mod config;
pub mod conn;
pub mod datadir;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod root_key;
pub mod sigv4;
pub mod tls;

pub use config::{Config, ConfigFile, Overrides};
pub use node::{Node, NodeError};
