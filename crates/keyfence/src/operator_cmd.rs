//! `keyfence operator …`, `keyfence quorum …` and `keyfence admin …`: M-of-N
//! approvals.
//!
//! The quorum state — operators (public keys only), a rule M per kind of
//! command and the ids of executed proposals — is in the node's store,
//! reached through its admin API (`KeyfenceAdmin.AddOperator`,
//! `.SetQuorumRule`, `.ListQuorum`, `.Execute`). Operators keep their
//! private keys in their own files and sign offline (`admin propose` and
//! `admin sign` need no node). Until a rule exists for `add-operator`
//! (`change-quorum`), operators (rules) are set directly, which is how a
//! quorum is first set up; afterwards only an executed proposal changes
//! them. The node checks every proposal: the command line only carries it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Subcommand;
use keyfence_bench::connect::ConnectArgs;
use keyfence_core::quorum::{Command, CommandKind, OperatorSigner, Proposal, Scheme};
use keyfence_core::{Clock, SystemClock, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `keyfence operator …`.
#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Make an operator's key pair: the private key to --out (mode 0600), the
    /// public key to --out with `.pub` appended.
    Keygen {
        /// The operator's name.
        #[arg(long)]
        name: String,
        /// Private key file to write.
        #[arg(long)]
        out: PathBuf,
        /// ML-DSA-65 (default) or Ed25519.
        #[arg(long, default_value = "ML-DSA-65")]
        scheme: String,
    },
    /// Register an operator (its `.pub` file); once a rule for add-operator
    /// exists, only `admin execute` of an add-operator proposal can.
    Add {
        /// The operator's public key file.
        public: PathBuf,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List the operators and rules.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// `keyfence quorum …`.
#[derive(Subcommand)]
pub enum QuorumCommand {
    /// Set M for a kind of command; once a rule for change-quorum exists,
    /// only `admin execute` of a change-quorum proposal can.
    Set {
        /// The kind, e.g. approve-node.
        kind: String,
        /// How many operators must approve.
        threshold: usize,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// `keyfence admin …`.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Print a proposal: the canonical command, a fresh nonce and an expiry.
    Propose {
        /// The kind, e.g. approve-node.
        kind: String,
        /// Arguments, `name=value`.
        args: Vec<String>,
        /// Seconds until the proposal expires.
        #[arg(long, default_value_t = 86_400)]
        expires_in: u64,
    },
    /// Sign a proposal offline with an operator's private key; prints the approval.
    Sign {
        /// The proposal file.
        proposal: PathBuf,
        /// The operator's private key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Send a proposal with its approvals to the node, which carries it out
    /// once M distinct operators' valid approvals are in.
    Execute {
        /// The proposal file.
        proposal: PathBuf,
        /// Approval files (one line each, as `admin sign` prints).
        approvals: Vec<PathBuf>,
        /// Also write the operation's result (JSON) to this new file, mode
        /// 0600 (e.g. an exported audit key, for `audit open-key`).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// An operator's public key file (`.pub`).
#[derive(Serialize, Deserialize)]
struct PublicFile {
    name: String,
    scheme: String,
    public_key: String,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    name: String,
    scheme: String,
    pkcs8: String,
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn scheme(name: &str) -> Result<Scheme, String> {
    Scheme::from_name(name).ok_or_else(|| format!("scheme {name:?}: ML-DSA-65 or Ed25519"))
}

fn kind(name: &str) -> Result<CommandKind, String> {
    CommandKind::from_name(name).ok_or_else(|| {
        let all: Vec<_> = CommandKind::ALL.iter().map(|k| k.name()).collect();
        format!("kind {name:?} is not one of {}", all.join(", "))
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn call(connect: &ConnectArgs, operation: &str, body: Value) -> Result<Value, String> {
    runtime()?.block_on(crate::cluster_cmd::admin_call(connect, operation, body))
}

fn print_quorum(v: &Value) {
    for o in v["Operators"].as_array().into_iter().flatten() {
        println!(
            "operator {} ({})",
            o["Name"].as_str().unwrap_or_default(),
            o["Scheme"].as_str().unwrap_or_default()
        );
    }
    for r in v["Rules"].as_array().into_iter().flatten() {
        println!(
            "rule {}: {} of {}",
            r["Kind"].as_str().unwrap_or_default(),
            r["Threshold"],
            r["Of"]
        );
    }
}

/// Runs an operator command.
pub fn operator_main(command: OperatorCommand) -> Result<(), String> {
    match command {
        OperatorCommand::Keygen {
            name,
            out,
            scheme: s,
        } => {
            let s = scheme(&s)?;
            let (signer, pkcs8) = OperatorSigner::generate(s).map_err(|e| e.to_string())?;
            let key = KeyFile {
                name: name.clone(),
                scheme: s.name().into(),
                pkcs8: B64.encode(pkcs8.expose()),
            };
            write_private(&out, &serde_json::to_string(&key).expect("JSON"))?;
            let public = PublicFile {
                name,
                scheme: s.name().into(),
                public_key: B64.encode(signer.public().map_err(|e| e.to_string())?.public_key),
            };
            let pub_path = PathBuf::from(format!("{}.pub", out.display()));
            std::fs::write(
                &pub_path,
                serde_json::to_string_pretty(&public).expect("JSON"),
            )
            .map_err(|e| format!("{}: {e}", pub_path.display()))?;
            println!("private key: {} (keep it offline)", out.display());
            println!("public key:  {}", pub_path.display());
            Ok(())
        }
        OperatorCommand::Add { public, connect } => {
            let op: PublicFile = serde_json::from_str(&read_text(&public)?)
                .map_err(|e| format!("{}: {e}", public.display()))?;
            let v = call(
                &connect,
                "AddOperator",
                json!({"Name": op.name, "Scheme": op.scheme, "PublicKey": op.public_key}),
            )
            .map_err(|e| proposal_hint(e, "add-operator"))?;
            println!(
                "operator {} added ({} operators)",
                op.name,
                v["Operators"].as_array().map_or(0, Vec::len)
            );
            Ok(())
        }
        OperatorCommand::List { connect } => {
            print_quorum(&call(&connect, "ListQuorum", json!({}))?);
            Ok(())
        }
    }
}

/// A refusal because a rule guards `kind`, with how to propose it instead.
fn proposal_hint(e: String, kind: &str) -> String {
    if e.contains("a quorum rule guards") {
        format!("{e}; propose it: keyfence admin propose {kind} …")
    } else {
        e
    }
}

/// Runs a quorum command.
pub fn quorum_main(command: QuorumCommand) -> Result<(), String> {
    match command {
        QuorumCommand::Set {
            kind: k,
            threshold,
            connect,
        } => {
            kind(&k)?;
            let v = call(
                &connect,
                "SetQuorumRule",
                json!({"Kind": k, "Threshold": threshold}),
            )
            .map_err(|e| proposal_hint(e, "change-quorum"))?;
            println!(
                "rule {k}: {threshold} of {}",
                v["Operators"].as_array().map_or(0, Vec::len)
            );
            Ok(())
        }
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs an admin command.
pub fn admin_main(command: AdminCommand) -> Result<(), String> {
    match command {
        AdminCommand::Propose {
            kind: k,
            args,
            expires_in,
        } => {
            let mut map = BTreeMap::new();
            for a in &args {
                let (n, v) = a
                    .split_once('=')
                    .ok_or_else(|| format!("argument {a:?} is not name=value"))?;
                if map.insert(n.to_owned(), v.to_owned()).is_some() {
                    return Err(format!("argument {n} given twice"));
                }
            }
            let command = Command::new(kind(&k)?, map).map_err(|e| e.to_string())?;
            let now = SystemClock.now();
            let nonce = keyfence_crypto::rand::array().map_err(|e| e.to_string())?;
            let expires_ms = i64::try_from(expires_in.saturating_mul(1000)).unwrap_or(i64::MAX);
            let proposal = Proposal {
                command,
                nonce,
                created: now,
                expires: Timestamp(now.0.saturating_add(expires_ms)),
            };
            print!("{}", proposal.text());
            Ok(())
        }
        AdminCommand::Sign { proposal, key } => {
            let proposal = Proposal::parse(&read_text(&proposal)?).map_err(|e| e.to_string())?;
            let key: KeyFile = serde_json::from_str(&read_text(&key)?)
                .map_err(|e| format!("{}: {e}", key.display()))?;
            let pkcs8 = zeroize::Zeroizing::new(
                B64.decode(&key.pkcs8)
                    .map_err(|_| "private key is not base64")?,
            );
            let signer = OperatorSigner::from_pkcs8(scheme(&key.scheme)?, &pkcs8)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "signing, as {}:\n{}",
                key.name,
                proposal.command.canonical()
            );
            let sig = signer
                .sign(&proposal.signed_bytes())
                .map_err(|e| e.to_string())?;
            println!("keyfence-approval v1 {} {}", key.name, B64.encode(sig));
            Ok(())
        }
        AdminCommand::Execute {
            proposal,
            approvals,
            out,
            connect,
        } => {
            let text = read_text(&proposal)?;
            Proposal::parse(&text).map_err(|e| format!("{}: {e}", proposal.display()))?;
            let lines = approvals
                .iter()
                .map(|p| read_text(p).map(|t| t.trim().to_owned()))
                .collect::<Result<Vec<_>, String>>()?;
            let v = call(
                &connect,
                "Execute",
                json!({"Proposal": text, "Approvals": lines}),
            )?;
            let approvers: Vec<&str> = v["Approvers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            println!(
                "executed {} (proposal {}), approved by {}",
                v["Executed"].as_str().unwrap_or_default(),
                v["ProposalId"].as_str().unwrap_or_default(),
                approvers.join(", ")
            );
            let result = serde_json::to_string_pretty(&v["Result"]).unwrap_or_default();
            println!("{result}");
            if let Some(out) = out {
                keyfence_server::root_key::write_private(&out, result.as_bytes())
                    .map_err(|e| format!("{}: {e}", out.display()))?;
                println!("wrote the result to {}", out.display());
            }
            Ok(())
        }
    }
}
