//! A running node: data directory, KMS, TLS listener, metrics listener and
//! the background sweeper, started together and stopped together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyfence_core::{Kms, KmsError, LocalRootKey, SystemClock};
use keyfence_store::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::conn::{self, AcceptErrors, ConnTracker};
use crate::datadir::{DataDir, DataDirError, Initialized};
use crate::http::AppState;
use crate::limits::{self, Limits, RequestBudget};
use crate::metrics::{self, Metrics};
use crate::sigv4::CredentialStore;
use crate::tls::{self, KxMode, PqAcceptor, TlsError};

/// How often the sweeper destroys keys past their deletion date and runs due rotations.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// File in the data directory where a started node publishes the addresses it
/// actually bound, so a caller that asked for port 0 can find it:
/// `{"api": "127.0.0.1:PORT", "metrics": "127.0.0.1:PORT", "pid": N}`.
/// Written atomically (temporary file, then rename) once both listeners are
/// serving; removed on a clean shutdown. `pid` tells a fresh file from one left
/// behind by a killed process.
pub const ADDR_FILE: &str = "node.addr.json";

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory could not be prepared.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] keyfence_core::StoreError),
    /// The KMS could not load its keys.
    #[error("kms: {0}")]
    Kms(#[from] KmsError),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Two credentials share an access key id.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The bound addresses could not be written to [`ADDR_FILE`].
    #[error("cannot write {path}: {source}")]
    PublishAddrs {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A started node. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    /// Where the KMS API listens (HTTPS).
    pub api_addr: SocketAddr,
    /// Where `/metrics` listens (plain HTTP, loopback).
    pub metrics_addr: SocketAddr,
    /// The data directory.
    pub data_dir: DataDir,
    /// Set when this start created the data directory.
    pub initialized: Option<Initialized>,
    /// The key-exchange mode.
    pub mode: KxMode,
    /// The KMS, for in-process callers (tests, benchmarks).
    pub kms: Arc<Kms>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })
}

impl Node {
    /// Prepares the data directory (creating it on first start), opens the
    /// store and the KMS, binds both listeners and starts serving.
    pub async fn start(config: Config) -> Result<Self, NodeError> {
        let (data_dir, initialized) = DataDir::open_or_init(&config.data_dir)?;
        let root = LocalRootKey::new(data_dir.load_root_key()?);
        let store = Arc::new(SqliteStore::open(&data_dir.database())?);
        let kms = Arc::new(Kms::open(
            store,
            &root,
            Arc::new(SystemClock),
            &config.region,
        )?);
        drop(root);

        let mut credentials = data_dir.load_credentials()?;
        credentials.extend(config.credentials);
        let credentials =
            CredentialStore::new(credentials).map_err(|e| NodeError::Credentials(e.to_string()))?;

        let mode = if config.post_quantum {
            KxMode::PostQuantumOnly
        } else {
            KxMode::Default
        };
        let acceptor = Arc::new(PqAcceptor::new(
            tls::load_server_config(&data_dir.pki, mode)?,
            mode,
        ));
        let metrics = Metrics::new();

        let api = bind(config.listen).await?;
        let metrics_listener = bind(config.metrics_listen).await?;
        let api_addr = api.local_addr().map_err(|source| NodeError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|source| NodeError::Bind {
                addr: config.metrics_listen,
                source,
            })?;

        let open_files = limits::raise_open_file_limit().unwrap_or(1024);
        let max_connections = config.limits.effective_max_connections(open_files);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let state = Arc::new(AppState {
            kms: Arc::clone(&kms),
            credentials,
            metrics: Arc::clone(&metrics),
            budget: RequestBudget::new(&config.limits),
            body_read_timeout: config.limits.body_read_timeout,
        });
        let tracker = ConnTracker::new(max_connections);
        tasks.spawn(accept_loop(
            api,
            acceptor,
            state,
            (tracker, config.limits),
            stopped.clone(),
        ));
        tasks.spawn(until_stopped(
            metrics::serve_metrics(metrics_listener, metrics),
            stopped.clone(),
        ));
        tasks.spawn(until_stopped(sweep(Arc::clone(&kms)), stopped));
        publish_addrs(&data_dir.path, api_addr, metrics_addr)?;
        tracing::info!(%api_addr, %metrics_addr, data_dir = %data_dir.path.display(), ?mode, open_files, max_connections, "node started");
        Ok(Self {
            api_addr,
            metrics_addr,
            data_dir,
            initialized,
            mode,
            kms,
            stop,
            tasks,
        })
    }

    /// Stops accepting connections and background work, and waits for the tasks.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Best effort: a stale file is told apart by its pid anyway.
        let _ = std::fs::remove_file(self.data_dir.path.join(ADDR_FILE));
        tracing::info!("node stopped");
    }
}

/// Writes [`ADDR_FILE`] in `dir` atomically: readers see the old file or the
/// whole new one, never a partial write.
fn publish_addrs(dir: &Path, api: SocketAddr, metrics: SocketAddr) -> Result<(), NodeError> {
    let path = dir.join(ADDR_FILE);
    let pid = std::process::id();
    let tmp = dir.join(format!("{ADDR_FILE}.{pid}.tmp"));
    let body = serde_json::json!({
        "api": api.to_string(),
        "metrics": metrics.to_string(),
        "pid": pid,
    })
    .to_string();
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            NodeError::PublishAddrs { path, source }
        })
}

async fn until_stopped(
    work: impl std::future::Future<Output = ()>,
    mut stopped: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = work => {}
        _ = stopped.changed() => {}
    }
}

async fn sweep(kms: Arc<Kms>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let kms = Arc::clone(&kms);
        match tokio::task::spawn_blocking(move || kms.run_due_tasks()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(keys = n, "sweeper destroyed or rotated keys"),
            Ok(Err(e)) => tracing::error!(error = %e, "sweeper failed"),
            Err(e) => tracing::error!(error = %e, "sweeper task panicked"),
        }
    }
}

/// How often a persisting accept failure is logged.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

async fn accept_loop(
    listener: TcpListener,
    acceptor: Arc<PqAcceptor>,
    state: Arc<AppState>,
    (tracker, limits): (Arc<ConnTracker>, Limits),
    mut stopped: watch::Receiver<bool>,
) {
    let builder = Arc::new(conn::http_builder(&limits));
    let mut errors = AcceptErrors::new(ACCEPT_ERROR_LOG_INTERVAL);
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors: an idle connection gives one back.
                    let shed = tracker.shed_one();
                    let (wait, log) = errors.failed(std::time::Instant::now());
                    if let Some(failures) = log {
                        tracing::warn!(error = %e, failures, shed, open = tracker.open(), "accept failed");
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        errors.succeeded();
        let Some(slot) = tracker.admit() else {
            tracing::debug!(%peer, "connection refused: every connection is busy");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        connections.spawn(conn::serve(
            tcp,
            peer,
            slot,
            Arc::clone(&acceptor),
            Arc::clone(&state),
            Arc::clone(&builder),
            limits.idle_timeout,
        ));
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}
