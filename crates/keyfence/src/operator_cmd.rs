//! `keyfence operator …`, `keyfence quorum …` and `keyfence admin …`: M-of-N
//! approvals on a node's data directory.
//!
//! The quorum state — operators (public keys only), a rule M per kind of
//! command and the ids of executed proposals — is `quorum.json` in the data
//! directory, written atomically. Operators keep their private keys in their
//! own files and sign offline. Until a rule exists for `add-operator`
//! (`change-quorum`), operators (rules) are set directly, which is how a
//! quorum is first set up; afterwards only an executed proposal changes them.
//! Executable here: `add-operator`, `remove-operator`, `change-quorum`; the
//! other kinds are authorized but not yet carried out (their commands live
//! in the admin API).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Subcommand;
use keyfence_core::quorum::{
    authorize, Approval, Command, CommandKind, Operator, OperatorKey, OperatorSigner, Proposal,
    Quorum, Scheme,
};
use keyfence_core::{Clock, SystemClock, Timestamp};
use serde::{Deserialize, Serialize};

/// The quorum state file in a data directory.
const STATE_FILE: &str = "quorum.json";

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
        /// Data directory of the node.
        #[arg(long, default_value = keyfence_server::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// List the operators and rules.
    List {
        /// Data directory of the node.
        #[arg(long, default_value = keyfence_server::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
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
        /// Data directory of the node.
        #[arg(long, default_value = keyfence_server::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
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
    /// Execute a proposal once M distinct operators' approvals are in.
    Execute {
        /// The proposal file.
        proposal: PathBuf,
        /// Approval files (one line each, as `admin sign` prints).
        approvals: Vec<PathBuf>,
        /// Data directory of the node.
        #[arg(long, default_value = keyfence_server::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

#[derive(Serialize, Deserialize, Default)]
struct StoredOperator {
    name: String,
    scheme: String,
    public_key: String,
}

#[derive(Serialize, Deserialize, Default)]
struct State {
    operators: Vec<StoredOperator>,
    rules: BTreeMap<String, usize>,
    executed: Vec<String>,
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

impl State {
    fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join(STATE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.is_dir() {
                    Ok(Self::default())
                } else {
                    Err(format!("{} is not a data directory", dir.display()))
                }
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn save(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(self).expect("JSON");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn quorum(&self) -> Result<Quorum, String> {
        let operators = self
            .operators
            .iter()
            .map(|o| {
                Ok(Operator {
                    name: o.name.clone(),
                    key: OperatorKey {
                        scheme: scheme(&o.scheme)?,
                        public_key: B64
                            .decode(&o.public_key)
                            .map_err(|_| format!("operator {}: public key not base64", o.name))?,
                    },
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let rules = self
            .rules
            .iter()
            .map(|(k, m)| Ok((kind(k)?, *m)))
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        Quorum::new(operators, rules).map_err(|e| e.to_string())
    }

    fn guarded(&self, by: CommandKind) -> bool {
        self.rules.contains_key(by.name())
    }

    fn add_operator(&mut self, op: StoredOperator) -> Result<(), String> {
        if self.operators.iter().any(|o| o.name == op.name) {
            return Err(format!("operator {} exists", op.name));
        }
        scheme(&op.scheme)?;
        self.operators.push(op);
        self.quorum().map(drop)
    }

    fn set_rule(&mut self, k: CommandKind, m: usize) -> Result<(), String> {
        self.rules.insert(k.name().to_owned(), m);
        self.quorum().map(drop)
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
            let public = StoredOperator {
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
        OperatorCommand::Add { public, data_dir } => {
            let mut state = State::load(&data_dir)?;
            if state.guarded(CommandKind::AddOperator) {
                return Err("a quorum rule guards add-operator: propose it (keyfence admin propose add-operator …)".into());
            }
            let op: StoredOperator = serde_json::from_str(&read_text(&public)?)
                .map_err(|e| format!("{}: {e}", public.display()))?;
            let name = op.name.clone();
            state.add_operator(op)?;
            state.save(&data_dir)?;
            println!(
                "operator {name} added ({} operators)",
                state.operators.len()
            );
            Ok(())
        }
        OperatorCommand::List { data_dir } => {
            let state = State::load(&data_dir)?;
            for o in &state.operators {
                println!("operator {} ({})", o.name, o.scheme);
            }
            for (k, m) in &state.rules {
                println!("rule {k}: {m} of {}", state.operators.len());
            }
            Ok(())
        }
    }
}

/// Runs a quorum command.
pub fn quorum_main(command: QuorumCommand) -> Result<(), String> {
    match command {
        QuorumCommand::Set {
            kind: k,
            threshold,
            data_dir,
        } => {
            let mut state = State::load(&data_dir)?;
            if state.guarded(CommandKind::ChangeQuorum) {
                return Err("a quorum rule guards change-quorum: propose it (keyfence admin propose change-quorum kind=… threshold=…)".into());
            }
            state.set_rule(kind(&k)?, threshold)?;
            state.save(&data_dir)?;
            println!("rule {k}: {threshold} of {}", state.operators.len());
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

/// One approval line: `keyfence-approval v1 NAME BASE64-SIGNATURE`.
fn parse_approval(text: &str) -> Result<Approval, String> {
    let mut parts = text.split_whitespace();
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("keyfence-approval"), Some("v1"), Some(name), Some(sig), None) => Ok(Approval {
            operator: name.to_owned(),
            signature: B64
                .decode(sig)
                .map_err(|_| "approval signature is not base64")?,
        }),
        _ => Err("not a keyfence-approval v1 line".into()),
    }
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
            data_dir,
        } => {
            let proposal = Proposal::parse(&read_text(&proposal)?).map_err(|e| e.to_string())?;
            let approvals = approvals
                .iter()
                .map(|p| {
                    parse_approval(&read_text(p)?).map_err(|e| format!("{}: {e}", p.display()))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let mut state = State::load(&data_dir)?;
            let quorum = state.quorum()?;
            let executed = state.executed.clone();
            let done = authorize(&quorum, &proposal, &approvals, SystemClock.now(), |id| {
                executed.contains(&id.to_string())
            })
            .map_err(|e| format!("refused: {e}"))?;
            let args = &done.command.args;
            let arg = |n: &str| {
                args.get(n)
                    .cloned()
                    .ok_or_else(|| format!("{} needs {n}=…", done.command.kind.name()))
            };
            match done.command.kind {
                CommandKind::AddOperator => state.add_operator(StoredOperator {
                    name: arg("name")?,
                    scheme: arg("scheme")?,
                    public_key: arg("public-key")?,
                })?,
                CommandKind::RemoveOperator => {
                    let name = arg("name")?;
                    let before = state.operators.len();
                    state.operators.retain(|o| o.name != name);
                    if state.operators.len() == before {
                        return Err(format!("no operator {name}"));
                    }
                    state.quorum()?;
                }
                CommandKind::ChangeQuorum => {
                    let m = arg("threshold")?
                        .parse()
                        .map_err(|_| "threshold is not a number")?;
                    state.set_rule(kind(&arg("kind")?)?, m)?;
                }
                other => {
                    return Err(format!(
                        "{} is approved by {} but not executable from the command line yet",
                        other.name(),
                        done.approvers.join(", ")
                    ))
                }
            }
            state.executed.push(done.id.to_string());
            state.save(&data_dir)?;
            println!(
                "executed {} (proposal {}), approved by {}",
                done.command.kind.name(),
                done.id,
                done.approvers.join(", ")
            );
            Ok(())
        }
    }
}
