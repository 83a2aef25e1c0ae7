//! `keyfence`: the node and its command-line tools.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod audit_cmd;
mod audit_key_cmd;
mod cluster_cmd;
mod dev;
mod domain_key_cmd;
mod init_cmd;
mod key;
mod operator_cmd;
mod seal_cmd;
mod store_cmd;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use keyfence_server::datadir::DataDir;
use keyfence_server::tls::{KxMode, PkiPaths};
use keyfence_server::{Config, ConfigFile, Node, Overrides};

/// A key management service that speaks the AWS KMS API over post-quantum TLS.
#[derive(Parser)]
#[command(name = "keyfence", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (creates the data directory on first start).
    Server(ServerArgs),
    /// Create a data directory: root of trust, development CA, credential. Refuses to overwrite.
    Init {
        /// Data directory to create.
        #[arg(long, default_value = keyfence_server::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        #[command(flatten)]
        root: init_cmd::RootArgs,
    },
    /// Give one operator's share to a quorum-sealed node (read from --share-file or stdin).
    Unseal(seal_cmd::UnsealArgs),
    /// Seal a running quorum-sealed node: it forgets its root and every key.
    Seal(seal_cmd::SealArgs),
    /// Show whether a quorum-sealed node is sealed and how many shares it has.
    SealStatus(seal_cmd::SealArgs),
    /// Load-test a running node (or a peer speaking the AWS KMS JSON API): throughput,
    /// latency percentiles, errors, memory; or TLS handshakes, classical vs hybrid.
    Bench(Box<keyfence_bench::BenchArgs>),
    /// Key commands beyond the AWS API (post-quantum import of key material).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// A local geo-fencing cluster in one process: fra, par, iad sharing one SQLite
    /// store, fra the authority, all approved; prints endpoints, CA and credential.
    Dev(dev::DevArgs),
    /// Cluster nodes: list, approve a pending one, remove one, change attributes (admin API of a node).
    #[command(subcommand)]
    Node(cluster_cmd::NodeCommand),
    /// Geo-fences: list them, make one (admin API of a node).
    #[command(subcommand)]
    Fence(cluster_cmd::FenceCommand),
    /// The fencing authority: master-key rotation and retirement.
    #[command(subcommand)]
    Authority(cluster_cmd::AuthorityCommand),
    /// Domain keys: rotate now (the node also rotates them on its schedule).
    #[command(subcommand)]
    DomainKey(domain_key_cmd::DomainKeyCommand),
    /// Store commands: move a single node's keys into PostgreSQL.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// The audit log: verify it, prove a record or the log's consistency, export it.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Operators of M-of-N approvals: make a key pair, register, list.
    #[command(subcommand)]
    Operator(operator_cmd::OperatorCommand),
    /// Quorum rules: M approvals per kind of command.
    #[command(subcommand)]
    Quorum(operator_cmd::QuorumCommand),
    /// Quorum-approved commands: propose, sign offline, execute.
    #[command(subcommand)]
    Admin(operator_cmd::AdminCommand),
    /// Show the data directory's first credential; with --export, as shell `export`
    /// lines: eval "$(keyfence credentials --export)".
    Credentials {
        /// Data directory of the node.
        #[arg(long, default_value = keyfence_server::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Region for AWS_DEFAULT_REGION.
        #[arg(long, default_value = keyfence_server::config::DEFAULT_REGION)]
        region: String,
        /// Print `export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… …` (with the secret).
        #[arg(long)]
        export: bool,
    },
}

#[derive(Args)]
struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, env = "KEYFENCE_CONFIG")]
    config: Option<PathBuf>,
    /// API listen address (HTTPS) [default: 127.0.0.1:8443].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus metrics listen address (plain HTTP; keep it on loopback) [default: 127.0.0.1:9464].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Data directory [default: ./keyfence-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Accept only hybrid post-quantum key exchange; refuse classical-only clients.
    #[arg(long)]
    post_quantum: bool,
    /// Where keys are kept: `sqlite` (the data directory's file, one node),
    /// `sqlite:PATH` (a file shared by nodes on one host) or a PostgreSQL
    /// connection string such as
    /// `postgres://keyfence@db1,db2/keyfence?target_session_attrs=read-write` [default: sqlite].
    #[arg(long, env = "KEYFENCE_STORE")]
    store: Option<String>,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a log file or pipe.
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn server(args: ServerArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(path) => ConfigFile::read(path).map_err(|e| e.to_string())?,
        None => ConfigFile::default(),
    };
    let config = Config::resolve(
        file,
        Overrides {
            listen: args.listen,
            metrics_listen: args.metrics_listen,
            data_dir: args.data_dir,
            post_quantum: args.post_quantum,
            store: args.store,
        },
    )
    .map_err(|e| e.to_string())?;
    if config.root.starts_sealed() {
        return seal_cmd::serve_sealed(config).await;
    }
    let node = Node::start(config).await.map_err(|e| e.to_string())?;
    let mode = match node.mode {
        KxMode::Default => "X25519MLKEM768 preferred, classical X25519 accepted",
        KxMode::PostQuantumOnly => "post-quantum only (X25519MLKEM768, SECP256R1MLKEM768)",
    };
    let data_dir = absolute(&node.data_dir.path);
    let ca = absolute(&node.data_dir.pki.ca_cert);
    let region = node.kms.region().to_owned();
    println!("keyfence listening on https://{}", node.api_addr);
    println!("  data directory: {}", data_dir.display());
    println!("  key exchange:   {mode}");
    println!("  metrics:        http://{}/metrics", node.metrics_addr);
    println!("To use it from a shell (AWS CLI, SDKs):");
    println!(
        "  export AWS_ENDPOINT_URL=https://{} AWS_CA_BUNDLE={}",
        node.api_addr,
        sh_quote(&ca.display().to_string())
    );
    match &node.initialized {
        // The secret goes to a person at a terminal, never into a log file.
        Some(init) if std::io::stdout().is_terminal() => println!(
            "  {}",
            export_line(
                &init.credential.access_key_id,
                init.credential.secret_access_key.as_str(),
                &region
            )
        ),
        _ => println!(
            "  eval \"$(keyfence credentials --export --data-dir {} --region {})\"",
            sh_quote(&data_dir.display().to_string()),
            sh_quote(&region)
        ),
    }
    if let Some(init) = &node.initialized {
        println!(
            "  (new development credential {} for account {}, kept in {})",
            init.credential.access_key_id,
            init.credential.account_id,
            absolute(&node.data_dir.credentials()).display()
        );
    }
    shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}

/// `path` made absolute (so a printed line works from any directory).
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `text` as one shell word: unchanged when safe, else single-quoted.
fn sh_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// One pasteable line exporting a credential and region for the AWS CLI and SDKs.
fn export_line(access_key_id: &str, secret_access_key: &str, region: &str) -> String {
    format!(
        "export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION={}",
        sh_quote(access_key_id),
        sh_quote(secret_access_key),
        sh_quote(region)
    )
}

/// `keyfence credentials`: the data directory's first credential.
fn credentials(data_dir: &Path, region: &str, export: bool) -> Result<(), String> {
    let dir = DataDir {
        path: data_dir.to_path_buf(),
        pki: PkiPaths::in_dir(data_dir),
    };
    let credential = dir
        .load_credentials()
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no credential", dir.credentials().display()))?;
    if export {
        println!(
            "{}",
            export_line(
                &credential.access_key_id,
                credential.secret_access_key.as_str(),
                region
            )
        );
    } else {
        println!(
            "{} (account {}), secret in {}",
            credential.access_key_id,
            credential.account_id,
            absolute(&dir.credentials()).display()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let result = match cli.command {
        Command::Init { data_dir, root } => init_cmd::init(data_dir, root),
        Command::Unseal(args) => seal_cmd::unseal(args),
        Command::Seal(args) => seal_cmd::seal(args),
        Command::SealStatus(args) => seal_cmd::status(args),
        Command::Server(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(server(args))),
        Command::Bench(args) => keyfence_bench::main(*args),
        Command::Key(command) => key::main(command),
        Command::Dev(args) => dev::main(args),
        Command::Node(command) => cluster_cmd::node_main(command),
        Command::Fence(command) => cluster_cmd::fence_main(command),
        Command::Authority(command) => cluster_cmd::authority_main(command),
        Command::DomainKey(command) => domain_key_cmd::main(command),
        Command::Store(command) => store_cmd::main(command),
        Command::Audit(command) => audit_cmd::main(command),
        Command::Operator(command) => operator_cmd::operator_main(command),
        Command::Quorum(command) => operator_cmd::quorum_main(command),
        Command::Admin(command) => operator_cmd::admin_main(command),
        Command::Credentials {
            data_dir,
            region,
            export,
        } => credentials(&data_dir, &region, export),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyfence: {e}");
            ExitCode::FAILURE
        }
    }
}
