//! `keyfence store migrate`: moves a single node's keys from its data
//! directory's SQLite file into a PostgreSQL database, for many nodes.
//!
//! Everything is copied verbatim — domain keys (still wrapped by the root
//! key), keys with their metadata and wrapped versions (imported material
//! included), aliases and tags — so the nodes on PostgreSQL, which must use
//! the same root key, decrypt every old ciphertext. The target must be
//! empty: a second run, or a run against a database in use, is refused.

use std::path::PathBuf;

use clap::Subcommand;
use keyfence_core::store::Snapshot;
use keyfence_core::Store;
use keyfence_store::{PostgresStore, SqliteStore};

/// `keyfence store …`.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a data directory's keys, versions, aliases, tags, imported
    /// material and domain keys into an empty PostgreSQL database.
    Migrate {
        /// The single node's data directory.
        #[arg(long)]
        from: PathBuf,
        /// PostgreSQL connection string (`postgres://user@host/db`).
        #[arg(long)]
        to: String,
    },
}

/// Runs a store command.
pub fn main(command: StoreCommand) -> Result<(), String> {
    match command {
        StoreCommand::Migrate { from, to } => {
            let copied = migrate(&from, &to)?;
            println!(
                "copied {} domain keys, {} keys ({} versions), {} aliases from {} to PostgreSQL",
                copied.domain_keys.len(),
                copied.keys.len(),
                copied.keys.iter().map(|k| k.versions.len()).sum::<usize>(),
                copied.aliases.len(),
                from.display()
            );
            println!("start every node with the same root key (copy the data directory's sealed root key file) and --store with the connection string");
            Ok(())
        }
    }
}

fn is_empty(s: &Snapshot) -> bool {
    s.domain_keys.is_empty() && s.keys.is_empty() && s.aliases.is_empty()
}

/// Copies everything; returns what was copied.
fn migrate(from: &std::path::Path, to: &str) -> Result<Snapshot, String> {
    let db = from.join("keyfence.db");
    if !db.is_file() {
        return Err(format!("{} has no keyfence.db", from.display()));
    }
    let source = SqliteStore::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    let snapshot = source
        .load()
        .map_err(|e| format!("read {}: {e}", db.display()))?;
    let target = PostgresStore::connect(to).map_err(|e| format!("PostgreSQL: {e}"))?;
    let existing = target.load().map_err(|e| format!("PostgreSQL: {e}"))?;
    if !is_empty(&existing) {
        return Err(format!(
            "the target database already holds {} domain keys, {} keys and {} aliases; refusing to mix stores (migrate into an empty database)",
            existing.domain_keys.len(),
            existing.keys.len(),
            existing.aliases.len()
        ));
    }
    let fail = |what: &str, e: keyfence_core::StoreError| {
        format!("copy {what}: {e} (the target is now partly filled: drop and recreate it before retrying)")
    };
    for d in &snapshot.domain_keys {
        target
            .insert_domain_key(d)
            .map_err(|e| fail("a domain key", e))?;
    }
    for k in &snapshot.keys {
        target
            .insert_key(&k.metadata, &k.versions)
            .map_err(|e| fail("a key", e))?;
    }
    for a in &snapshot.aliases {
        target.insert_alias(a).map_err(|e| fail("an alias", e))?;
    }
    Ok(snapshot)
}
