//! A running node: data directory, KMS, TLS listener, metrics listener and
//! the background sweeper, started together and stopped together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyfence_core::authz::AuthzStore;
use keyfence_core::cluster::ClusterStore;
use keyfence_core::quorum::QuorumStore;
use keyfence_core::{Clock, Kms, KmsError, Store, SystemClock};
use keyfence_store::{PostgresStore, SqliteStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::authz::Authz;
use crate::cluster::{Membership, POLL_INTERVAL};
use crate::config::{Config, StoreLocation};
use crate::conn::{self, AcceptErrors, ConnTracker};
use crate::datadir::{DataDir, DataDirError, Initialized};
use crate::forward::Forwarder;
use crate::http::AppState;
use crate::limits::{self, Limits, RequestBudget};
use crate::metrics::{self, Metrics};
use crate::opener::{Addresses, OpenError, Opened, Opener};
use crate::replica::{self, Follow};
use crate::sigv4::CredentialStore;
use crate::throttle::Throttle;
use crate::tls::{self, KxMode, PqAcceptor, TlsError};

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
    /// The node could not join its cluster.
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Two credentials share an access key id.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The quorum state of an earlier build could not be moved into the store.
    #[error("quorum: {0}")]
    Quorum(String),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditLogError),
    /// The heavy pool's threads could not be started.
    #[error("cannot start the threads for CPU-heavy requests: {0}")]
    HeavyPool(std::io::Error),
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
    /// Where the node-to-node listener listens (`[node] peer_listen`), if any.
    pub peer_addr: Option<SocketAddr>,
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
    /// This node's cluster membership (with a `[node]` table).
    pub cluster: Option<Arc<Membership>>,
    /// Its forwarder to satisfying peers (cluster nodes).
    pub forwarder: Option<Arc<Forwarder>>,
    /// The audit log (unless `[audit] enabled = false`).
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl From<OpenError> for NodeError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Kms(e) => Self::Kms(e),
            OpenError::Cluster(e) => Self::Cluster(e),
            OpenError::Tls(e) => Self::Tls(e),
        }
    }
}

pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })
}

impl Node {
    /// Binds both listeners, then prepares the data directory (creating it on
    /// first start), opens the store and the KMS and starts serving.
    pub async fn start(mut config: Config) -> Result<Self, NodeError> {
        // Bind first: a taken port must fail before a first start writes anything.
        let api = bind(config.listen).await?;
        // The address peers reach this node at (port 0 resolved), registered
        // at join so forwarding works before the first heartbeat.
        let api_addr = api.local_addr().map_err(|source| NodeError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_listener = bind(config.metrics_listen).await?;
        // The node-to-node listener (`[node] peer_listen`), if any.
        let (peer_listener, peer_addr) = bind_peer_listener(&config).await?;
        let (data_dir, initialized) = DataDir::open_or_init_for(&config.data_dir, &config.root)?;
        let root: Arc<dyn keyfence_core::RootOfTrust> =
            Arc::from(crate::root::open(&config.root, &data_dir)?);
        let location = store_location(&config, &data_dir);
        let (store, cluster_store, authz_store, follow, quorum_store) =
            open_store(&location, &data_dir)?;
        let approvals = crate::approvals::open(quorum_store, &data_dir.path)?;
        let authz = Arc::new(Authz::open(
            authz_store,
            std::mem::take(&mut config.principals),
        )?);
        let metrics = Metrics::new();
        let opener = Opener::new(
            &config,
            &location,
            (store, cluster_store),
            Arc::clone(&authz),
            (
                &data_dir,
                Addresses {
                    api: api_addr,
                    peer: peer_addr,
                },
            ),
            &metrics,
        )?;
        let Opened {
            kms,
            cluster,
            forwarder,
        } = opener.open(&root)?;
        let advertised = opener.advertised().map(str::to_owned);
        let usage_file = crate::api::kms::last_usage::UsageFile::of(
            &data_dir.path,
            cluster.as_deref().map(Membership::name),
        );
        usage_file.load_into(&kms);
        let node_name = config.node.as_ref().map(|n| n.name.as_str());
        let log = crate::audit::log_name(node_name, &location, &data_dir.path);
        let audit = crate::audit::start(
            &config.audit,
            &crate::audit::file_for(&location, &data_dir.database(), node_name),
            &log,
            Some(root.as_ref()),
        )?;
        crate::audit::record_init(audit.as_deref(), &data_dir).await?;
        drop(root);

        let mut credentials = data_dir.load_credentials()?;
        credentials.extend(std::mem::take(&mut config.credentials));
        let accounts: Vec<String> = credentials.iter().map(|c| c.account_id.clone()).collect();
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
            kms: Arc::new(crate::seal::KmsSlot::Open(Opened {
                kms: Arc::clone(&kms),
                cluster: cluster.clone(),
                forwarder: forwarder.clone(),
            })),
            credentials,
            metrics: Arc::clone(&metrics),
            authz: Arc::clone(&authz),
            budget: RequestBudget::new(&config.limits, Arc::clone(&metrics)),
            audit: audit.clone(),
            approvals: Some(approvals),
            heavy: crate::heavy::HeavyPool::start(config.limits.heavy, Arc::clone(&metrics))
                .map_err(NodeError::HeavyPool)?,
            body_read_timeout: config.limits.body_read_timeout,
            seal: None,
            throttle: Throttle::new(
                &config.limits.throttle,
                accounts.iter().map(String::as_str),
                Arc::clone(&metrics),
            ),
        });
        if let (Some(c), Some(advertised)) = (&cluster, &advertised) {
            tasks.spawn(until_stopped(
                poll_cluster(Arc::clone(c), Arc::clone(&kms), advertised.clone()),
                stopped.clone(),
            ));
        }
        if let Some(f) = &forwarder {
            tasks.spawn(until_stopped(
                Arc::clone(f).measure_peers(),
                stopped.clone(),
            ));
        }
        let tracker = ConnTracker::new(max_connections, Arc::clone(&metrics));
        let (budget, ends) = (state.budget.clone(), Arc::clone(&tracker));
        tasks.spawn(until_stopped(
            limits::trim_after_load(config.limits.memory_trim_interval, move || {
                budget.released_count() + ends.closed_count()
            }),
            stopped.clone(),
        ));
        if let (Some(listener), Some(c)) = (peer_listener, &cluster) {
            let members = Arc::clone(c);
            let peer_tls = tls::peer_server_config(
                &data_dir.pki,
                Arc::new(move |cert: &[u8]| members.is_enrolled_certificate(cert)),
            )?;
            tasks.spawn(accept_loop(
                listener,
                Arc::new(PqAcceptor::new(peer_tls, KxMode::PostQuantumOnly)),
                Arc::clone(&state),
                (Arc::clone(&tracker), config.limits.clone()),
                stopped.clone(),
            ));
        }
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
        tasks.spawn(until_stopped(
            crate::api::kms::last_usage::save_periodically(
                Arc::clone(&kms),
                usage_file.path().to_path_buf(),
            ),
            stopped.clone(),
        ));
        tasks.spawn(until_stopped(
            crate::domain_keys::run(
                Arc::clone(&kms),
                crate::domain_keys::Schedule::new(
                    config.root.domain_key_rotation,
                    location.is_shared().then_some(config.max_staleness),
                ),
                audit.clone(),
            ),
            stopped.clone(),
        ));
        tasks.spawn(until_stopped(
            replica::run(Arc::clone(&kms), follow),
            stopped,
        ));
        let addr_file = addr_file(cluster.as_deref().map(Membership::name));
        publish_addrs(&data_dir.path.join(&addr_file), api_addr, metrics_addr)?;
        tracing::info!(%api_addr, %metrics_addr, data_dir = %data_dir.path.display(), store = ?location, ?mode, open_files, max_connections, "node started");
        Ok(Self {
            api_addr,
            peer_addr,
            metrics_addr,
            data_dir,
            initialized,
            mode,
            kms,
            cluster,
            forwarder,
            audit,
            stop,
            tasks,
        })
    }

    /// Stops accepting connections and background work, and waits for the tasks.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let usage_file = crate::api::kms::last_usage::UsageFile::of(
            &self.data_dir.path,
            self.cluster.as_deref().map(Membership::name),
        );
        if let Err(e) = crate::api::kms::last_usage::save(&self.kms, usage_file.path()) {
            tracing::warn!(error = %e, "key last-usage record not saved");
        }
        if let Some(audit) = self.audit.take() {
            // Commits what is queued and signs a final head.
            let _ = tokio::task::spawn_blocking(move || audit.close()).await;
        }
        // Best effort: a stale file is told apart by its pid anyway.
        let name = self.cluster.as_deref().map(Membership::name);
        let _ = std::fs::remove_file(self.data_dir.path.join(addr_file(name)));
        tracing::info!("node stopped");
    }
}

/// The file a node publishes its addresses in: [`ADDR_FILE`], or
/// `node-NAME.addr.json` for a cluster node (several may share a data directory).
pub fn addr_file(node: Option<&str>) -> String {
    match node {
        Some(name) => format!("node-{name}.addr.json"),
        None => ADDR_FILE.to_owned(),
    }
}

/// Where a node's store is. A cluster node's `[node] store` names a SQLite
/// file its peers share or a PostgreSQL database; without one, a cluster node
/// shares its data directory's database (`keyfence dev`) and follows it like
/// any shared store.
pub(crate) fn store_location(config: &Config, data_dir: &DataDir) -> StoreLocation {
    let node_store = config.node.as_ref().and_then(|n| n.store.clone());
    match (node_store, &config.store) {
        (Some(path), _) => match path.to_str().map(StoreLocation::parse) {
            Some(Ok(StoreLocation::Postgres(url))) => StoreLocation::Postgres(url),
            _ => StoreLocation::SharedSqlite(path),
        },
        (None, StoreLocation::DataDir) if config.node.is_some() => {
            StoreLocation::SharedSqlite(data_dir.database())
        }
        (None, other) => other.clone(),
    }
}

/// Binds `[node] peer_listen`, the node-to-node listener, if the config has one.
pub(crate) async fn bind_peer_listener(
    config: &Config,
) -> Result<(Option<TcpListener>, Option<SocketAddr>), NodeError> {
    match config.node.as_ref().and_then(|n| n.peer_listen) {
        Some(addr) => {
            let listener = bind(addr).await?;
            let bound = listener
                .local_addr()
                .map_err(|source| NodeError::Bind { addr, source })?;
            Ok((Some(listener), Some(bound)))
        }
        None => Ok((None, None)),
    }
}

/// Writes the addresses to `path` atomically: readers see the old file or the
/// whole new one, never a partial write.
pub(crate) fn publish_addrs(
    path: &Path,
    api: SocketAddr,
    metrics: SocketAddr,
) -> Result<(), NodeError> {
    let path = path.to_path_buf();
    let pid = std::process::id();
    let tmp = path.with_extension(format!("{pid}.tmp"));
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

pub(crate) async fn until_stopped(
    work: impl std::future::Future<Output = ()>,
    mut stopped: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = work => {}
        _ = stopped.changed() => {}
    }
}

/// Heartbeat, and pick up this node's grant and the fence records (keys
/// themselves arrive through the store's change feed, see `replica`).
pub(crate) async fn poll_cluster(cluster: Arc<Membership>, kms: Arc<Kms>, address: String) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    loop {
        tick.tick().await;
        let (cluster, kms, address) = (Arc::clone(&cluster), Arc::clone(&kms), address.clone());
        let polled = tokio::task::spawn_blocking(move || {
            cluster.heartbeat(&address, SystemClock.now())?;
            cluster.refresh(&kms)?;
            cluster.sweep_if_due(&kms)
        })
        .await;
        match polled {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cluster poll failed"),
            Err(e) => tracing::error!(error = %e, "cluster poll task panicked"),
        }
    }
}

/// An opened store: its key port, its cluster port (the same database), and
/// how to follow its changes.
type OpenedStore = (
    Arc<dyn Store>,
    Arc<dyn ClusterStore>,
    Arc<dyn AuthzStore>,
    Follow,
    Arc<dyn QuorumStore>,
);

/// Opens the store `location` names (with its cluster tables).
pub(crate) fn open_store(
    location: &StoreLocation,
    data_dir: &DataDir,
) -> Result<OpenedStore, NodeError> {
    Ok(match location {
        StoreLocation::DataDir => {
            let store = Arc::new(SqliteStore::open(&data_dir.database())?);
            (
                store.clone(),
                store.clone(),
                store.clone(),
                Follow::Nothing,
                store,
            )
        }
        StoreLocation::SharedSqlite(path) => {
            let store = Arc::new(SqliteStore::open_shared(path)?);
            (
                store.clone(),
                store.clone(),
                store.clone(),
                Follow::Poll(replica::SQLITE_POLL),
                store,
            )
        }
        StoreLocation::Postgres(url) => {
            let store = Arc::new(PostgresStore::connect(url)?);
            let waker = store.change_waker();
            (
                store.clone(),
                store.clone(),
                store.clone(),
                Follow::Notify(waker),
                store,
            )
        }
    })
}

/// How often a persisting accept failure is logged.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: Arc<PqAcceptor>,
    state: Arc<AppState>,
    (tracker, limits): (Arc<ConnTracker>, Limits),
    mut stopped: watch::Receiver<bool>,
) {
    let builders = Arc::new(conn::http_builders(&limits));
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
        let fut = conn::serve(
            tcp,
            peer,
            slot,
            Arc::clone(&acceptor),
            Arc::clone(&state),
            Arc::clone(&builders),
            limits.idle_timeout,
        );
        connections.spawn(fut);
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}
