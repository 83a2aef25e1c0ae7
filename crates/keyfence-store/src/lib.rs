//! Storage adapters for keyfence's [`Store`](keyfence_core::Store) port.
//!
//! [`SqliteStore`] is the embedded default: one file, WAL journal,
//! `synchronous=FULL`, every change in one transaction, so a change is durable
//! when the call returns.
//!
//! [`PostgresStore`] serves many nodes over one PostgreSQL database (see [`postgres`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod authz_format;
mod format;
pub mod postgres;
mod sqlite;
mod sqlite_audit;
mod sqlite_authz;
mod sqlite_cluster;
#[cfg(test)]
mod sqlite_cost_tests;
mod sqlite_domain_keys;
mod sqlite_quorum;

pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;
pub use sqlite_audit::SqliteAuditStore;
