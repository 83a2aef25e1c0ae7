//! keyfence node: post-quantum TLS transport, the AWS KMS JSON 1.1 API, SigV4
//! authentication, configuration, the data directory and metrics.

// Unsafe code is denied but for three FFI calls, each allowed at its site with
// its SAFETY argument: getrlimit/setrlimit in `limits::raise_open_file_limit`,
// malloc_trim in `limits::release_free_memory`, and setpriority in
// `heavy::lower_own_priority`.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod approvals;
pub mod audit;
pub mod authz;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod datadir;
pub mod domain_keys;
pub mod forward;
pub mod heavy;
pub mod http;
pub mod limits;
pub mod log_limit;
pub mod metrics;
pub mod node;
pub mod opener;
pub mod replica;
pub mod root;
pub mod root_key;
pub mod seal;
pub mod sigv4;
pub mod status;
pub mod throttle;
pub mod tls;

pub use config::{Config, ConfigFile, Overrides};
pub use node::{Node, NodeError};
