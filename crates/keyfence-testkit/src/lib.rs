//! Test harness for keyfence, used only as a dev-dependency.
//!
//! [`TempPostgres`] is a real PostgreSQL server started for one test: `initdb`
//! on a temporary directory, `pg_ctl` on a free loopback port, `fsync` on,
//! stopped and removed when dropped. It can be killed with SIGKILL, stopped and
//! started again on the same data directory, and given a streaming standby
//! (optionally synchronous) that can be promoted. [`TempPostgres::new_tls`]
//! starts one that accepts only TLS connections, with a certificate issued
//! by a throw-away CA.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as in CI),
//! every server program is started as the `postgres` OS user through
//! `runuser -u postgres --`, and the temporary directory (under `/tmp`, which
//! that user can reach) is handed to it with `chown`; as any other user the
//! programs run as that user, under `$TMPDIR`.
//!
//! The server programs are found in `$KEYFENCE_PG_BIN`, else in the newest
//! Debian `/usr/lib/postgresql/<major>/bin`, else on `PATH`. If they are
//! missing, starting a server fails (it does not skip) with an error naming
//! `scripts/setup-postgres.sh`, which installs them.
//!
//! [`KeyfenceNode`] is a real `keyfence server` process on a data directory
//! and a store, on ephemeral loopback ports, that a test can SIGKILL and
//! start again.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bin;
mod certs;
mod error;
mod node;
mod process;
mod server;

pub use certs::unrelated_ca_pem;
pub use error::PgError;
pub use node::{KeyfenceNode, NodeSpec};
pub use server::TempPostgres;
