//! `keyfence`: the node and its command-line tools.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod key;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use keyfence_server::datadir::DataDir;
use keyfence_server::tls::KxMode;
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
    /// Create a data directory: root key, development CA, credential. Refuses to overwrite.
    Init {
        /// Data directory to create.
        #[arg(long, default_value = keyfence_server::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Load-test a running node (or a peer speaking the AWS KMS JSON API): throughput,
    /// latency percentiles, errors, memory; or TLS handshakes, classical vs hybrid.
    Bench(Box<keyfence_bench::BenchArgs>),
    /// Key commands beyond the AWS API (post-quantum import of key material).
    #[command(subcommand)]
    Key(key::KeyCommand),
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

async fn shutdown_signal() {
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
        },
    )
    .map_err(|e| e.to_string())?;
    let node = Node::start(config).await.map_err(|e| e.to_string())?;
    let mode = match node.mode {
        KxMode::Default => "X25519MLKEM768 preferred, classical X25519 accepted",
        KxMode::PostQuantumOnly => "post-quantum only (X25519MLKEM768, SECP256R1MLKEM768)",
    };
    println!("keyfence listening on https://{}", node.api_addr);
    println!("  data directory: {}", node.data_dir.path.display());
    println!("  key exchange:   {mode}");
    println!(
        "  CA certificate: {}  (aws --ca-bundle / AWS_CA_BUNDLE)",
        node.data_dir.pki.ca_cert.display()
    );
    println!("  metrics:        http://{}/metrics", node.metrics_addr);
    if let Some(init) = &node.initialized {
        println!(
            "  new development credential (also in {}):",
            node.data_dir.credentials().display()
        );
        println!("    AWS_ACCESS_KEY_ID={}", init.credential.access_key_id);
        println!(
            "    AWS_SECRET_ACCESS_KEY={}",
            init.credential.secret_access_key.as_str()
        );
        println!("    account {}", init.credential.account_id);
    } else {
        println!(
            "  credentials:    {}",
            node.data_dir.credentials().display()
        );
    }
    shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}

fn init(data_dir: PathBuf) -> Result<(), String> {
    let (dir, init) = DataDir::init(&data_dir).map_err(|e| e.to_string())?;
    println!("created data directory {}", dir.path.display());
    println!("  CA certificate: {}", dir.pki.ca_cert.display());
    println!(
        "  credential:     {} (account {}), secret in {}",
        init.credential.access_key_id,
        init.credential.account_id,
        dir.credentials().display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let result = match cli.command {
        Command::Init { data_dir } => init(data_dir),
        Command::Server(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(server(args))),
        Command::Bench(args) => keyfence_bench::main(*args),
        Command::Key(command) => key::main(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyfence: {e}");
            ExitCode::FAILURE
        }
    }
}
