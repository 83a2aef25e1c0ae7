//! Storage adapters for keyfence's [`Store`](keyfence_core::Store) port.
//!
//! [`SqliteStore`] is the embedded default: one file, WAL journal,
//! `synchronous=FULL`, every change in one transaction, so a change is durable
//! when the call returns.

mod format;
mod sqlite;

pub use sqlite::SqliteStore;
