//! `keyfence domain-key rotate`: the on-demand domain-key rotation
//! (`KeyfenceAdmin.RotateDomainKey`) from the command line.
//!
//! A new domain key wraps every backing key made from now on; the node's
//! schedule re-wraps the older ones under it and destroys the old domain key
//! once nothing uses it (docs/design.md, "Domain-key rotation"). Once a quorum
//! rule guards rotate-domain-key, the node refuses this and runs the rotation
//! only from a signed proposal (`keyfence admin propose rotate-domain-key`).

use clap::Subcommand;
use keyfence_bench::connect::ConnectArgs;
use serde_json::json;

use crate::cluster_cmd::{admin_call, runtime};

/// `keyfence domain-key …`.
#[derive(Subcommand, Debug)]
pub enum DomainKeyCommand {
    /// Make a new domain key current now (the admin user of the node's
    /// account; refused where a quorum rule guards rotate-domain-key).
    Rotate {
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Runs a `keyfence domain-key` command.
pub fn main(command: DomainKeyCommand) -> Result<(), String> {
    match command {
        DomainKeyCommand::Rotate { connect } => {
            let reply = runtime()?.block_on(admin_call(&connect, "RotateDomainKey", json!({})))?;
            let id = reply["DomainKey"]
                .as_u64()
                .ok_or_else(|| format!("RotateDomainKey: unexpected reply {reply}"))?;
            println!(
                "domain key {id} is current: new key material is wrapped under it; \
                 the node re-wraps older material and destroys the old domain key once nothing uses it"
            );
            Ok(())
        }
    }
}
