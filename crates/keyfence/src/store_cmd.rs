//! `keyfence store …`: moving a single node's keys into PostgreSQL
//! ([`StoreCommand::Migrate`]), and two hidden tools for measurements at
//! scale (`bench/stores.sh`): filling a store with many keys fast
//! ([`fill`]) and timing propagation between two nodes ([`propagation`]).

mod fill;
mod propagation;

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use keyfence_bench::connect::ConnectArgs;
use keyfence_core::authz::{AuthzSnapshot, AuthzStore};
use keyfence_core::store::Snapshot;
use keyfence_core::{Store, StoreError};
use keyfence_store::{PostgresOptions, PostgresStore, SqliteStore};

/// `keyfence store …`.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a data directory's keys, versions, aliases, tags, imported
    /// material, key policies, grants and domain keys into an empty
    /// PostgreSQL database, in one transaction: interrupted, it leaves the
    /// database empty. The node must not be running.
    Migrate {
        /// The single node's data directory.
        #[arg(long)]
        from: PathBuf,
        /// PostgreSQL connection string (`postgres://user@host/db`).
        #[arg(long)]
        to: String,
    },
    /// Measurement tool: adds COUNT symmetric keys to a node's store (its
    /// data directory's, or `--store`'s), created by the node's own code in
    /// batches of one transaction each. The node must not be running, except
    /// on a store shared by a cluster's nodes (`keyfence dev`), which pick
    /// the keys up through the change feed.
    #[command(hide = true)]
    Fill {
        /// The node's data directory (created if missing): its root key.
        #[arg(long)]
        data_dir: PathBuf,
        /// `sqlite` (the data directory's file) or a PostgreSQL connection string.
        #[arg(long, default_value = "sqlite")]
        store: String,
        /// How many keys to add.
        #[arg(long)]
        count: usize,
        /// The account that owns them.
        #[arg(long, default_value = "111122223333")]
        account: String,
        /// Fence the keys to this policy (its fence must exist), as the node
        /// `--node` makes them: with its identity in the data directory and
        /// its grant in the store.
        #[arg(long, requires = "node")]
        fence: Option<String>,
        /// The enrolled node that satisfies `--fence` (e.g. `fra` of `keyfence dev`).
        #[arg(long, requires = "fence")]
        node: Option<String>,
    },
    /// Measurement tool: creates keys at one node and times how long each
    /// takes to be visible at another (DescribeKey polled back to back).
    #[command(hide = true)]
    Propagation {
        /// The node where keys are created, and how to reach it.
        #[command(flatten)]
        connect: ConnectArgs,
        /// The node where they must appear (same CA and credential).
        #[arg(long)]
        peer: String,
        /// How many keys.
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
}

/// Runs a store command.
pub fn main(command: StoreCommand) -> Result<(), String> {
    match command {
        StoreCommand::Migrate { from, to } => {
            let (copied, authz) = migrate(&from, &to)?;
            println!(
                "copied {} domain keys, {} keys ({} versions), {} aliases, {} key policies, {} grants from {} to PostgreSQL",
                copied.domain_keys.len(),
                copied.keys.len(),
                copied.keys.iter().map(|k| k.versions.len()).sum::<usize>(),
                copied.aliases.len(),
                authz.policies.len(),
                authz.grants.len(),
                from.display()
            );
            println!("start every node with the same root key (copy the data directory's sealed root key file) and --store with the connection string");
            Ok(())
        }
        StoreCommand::Fill {
            data_dir,
            store,
            count,
            account,
            fence,
            node,
        } => {
            let fenced = fence
                .zip(node)
                .map(|(policy, node)| fill::Fenced { policy, node });
            fill::main(&data_dir, &store, count, &account, fenced)
        }
        StoreCommand::Propagation {
            connect,
            peer,
            count,
        } => propagation::main(&connect, &peer, count),
    }
}

/// Bound on the one transaction of a migration (a million keys take minutes).
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Copies everything in one transaction — key policies and grants with the
/// keys: without them a key would fall back to the default key policy and
/// lose its grants. Returns what was copied.
fn migrate(from: &std::path::Path, to: &str) -> Result<(Snapshot, AuthzSnapshot), String> {
    let db = from.join("keyfence.db");
    if !db.is_file() {
        return Err(format!("{} has no keyfence.db", from.display()));
    }
    let source = SqliteStore::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    let snapshot = source
        .load()
        .map_err(|e| format!("read {}: {e}", db.display()))?;
    let authz = source
        .load_authz()
        .map_err(|e| format!("read {}: {e}", db.display()))?;
    let options = PostgresOptions {
        operation_timeout: MIGRATE_TIMEOUT,
        ..PostgresOptions::default()
    };
    let target =
        PostgresStore::connect_with(to, options).map_err(|e| format!("PostgreSQL: {e}"))?;
    match target.insert_all_with_authz(&snapshot, &authz, true) {
        Ok(()) => Ok((snapshot, authz)),
        Err(StoreError::Conflict(_)) => {
            let held = target.load_head().map_err(|e| format!("PostgreSQL: {e}"))?;
            Err(format!(
                "the target database already holds {} domain keys and {} aliases, and keys; refusing to mix stores (migrate into an empty database)",
                held.domain_keys.len(),
                held.aliases.len(),
            ))
        }
        Err(e) => Err(format!(
            "copy into PostgreSQL: {e} (nothing was committed: the target is as it was)"
        )),
    }
}
