//! A node whose root is quorum-sealed (`root = "shamir"`): it starts sealed,
//! answers every KMS request with a refusal
//! ([`crate::api::messages::node_sealed`]) and opens its root once operators
//! have given back a threshold of Shamir shares through the admin API:
//!
//! | operation | input | output |
//! |---|---|---|
//! | `KeyfenceAdmin.Unseal` | `Share` | `Sealed`, `Given`, `Threshold`, `Shares` |
//! | `KeyfenceAdmin.Seal` | `{}` | the same (sealed) |
//! | `KeyfenceAdmin.SealStatus` | `{}` | the same |
//!
//! Unsealing opens the KMS over the store (domain keys unwrapped; the KMS
//! keeps the root for domain-key rotation) and starts its background work
//! (the replica, the domain-key schedule); sealing drops the KMS (the root
//! and every key it held are zeroized as their last reference goes,
//! requests in flight finishing first), stops that work and forgets any
//! shares given. Domain keys rotate only while unsealed.
//!
//! The node keeps its audit log from its start: requests are recorded while
//! sealed too, and tree heads are signed once the root is open (the log's
//! signing key is sealed under it); sealing signs a last head and drops the
//! key. Unsealing and sealing are themselves recorded (`Unsealed`, `Sealed`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use keyfence_core::audit::Outcome;
use keyfence_core::{Kms, LocalRootKey, RootOfTrust};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{messages, ApiError};
use crate::audit::{AuditLog, AuditLogError};
use crate::cluster::Membership;
use crate::config::{Config, DEFAULT_ACCOUNT};
use crate::conn::ConnTracker;
use crate::datadir::DataDir;
use crate::forward::Forwarder;
use crate::http::AppState;
use crate::limits::{self, RequestBudget};
use crate::metrics::{self, Metrics};
use crate::node::{self, NodeError};
use crate::opener::{Addresses, OpenError, Opened, Opener};
use crate::replica::{self, Follow};
use crate::root::quorum::{Progress, QuorumError, Unsealing};
use crate::sigv4::{CredentialStore, VerifiedCaller};
use crate::tls::{self, KxMode, PqAcceptor};

/// The admin operations of this module (`KeyfenceAdmin.<name>`).
pub const OPERATIONS: &[&str] = &["Unseal", "Seal", "SealStatus"];

/// Whether admin operation `op` is one of [`OPERATIONS`].
pub fn is_seal_operation(op: &str) -> bool {
    OPERATIONS.contains(&op)
}

/// What a request is served by: fixed for a node whose root opened at
/// start, present only while unsealed for a quorum-sealed one.
pub enum KmsSlot {
    /// Opened at start; never sealed.
    Open(Opened),
    /// Present while unsealed.
    Sealable {
        /// The region (answered while sealed too).
        region: String,
        /// The cluster node's configured name (shown while sealed too).
        name: Option<String>,
        /// The KMS and its cluster parts, while unsealed.
        opened: RwLock<Option<Opened>>,
    },
}

impl KmsSlot {
    /// The region this node names in ARNs.
    pub fn region(&self) -> &str {
        match self {
            Self::Open(opened) => opened.kms.region(),
            Self::Sealable { region, .. } => region,
        }
    }

    /// The node's name: its cluster name, from its configuration while
    /// sealed; `None` outside a cluster.
    pub fn node_name(&self) -> Option<String> {
        match self {
            Self::Sealable { name: Some(n), .. } => Some(n.clone()),
            _ => self.cluster().map(|c| c.name().to_owned()),
        }
    }

    /// Whether this node serves `region` (while sealed: its default region only).
    pub fn serves(&self, region: &str) -> bool {
        match self.get() {
            Ok(kms) => kms.serves(region),
            Err(_) => region == self.region(),
        }
    }

    /// The KMS, or the sealed refusal.
    pub fn get(&self) -> Result<Arc<Kms>, ApiError> {
        match self {
            Self::Open(opened) => Ok(Arc::clone(&opened.kms)),
            Self::Sealable { opened, .. } => opened
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|o| Arc::clone(&o.kms))
                .ok_or_else(messages::node_sealed),
        }
    }

    /// This node's cluster membership (none outside a cluster, or while sealed).
    pub fn cluster(&self) -> Option<Arc<Membership>> {
        self.part(|o| o.cluster.clone())
    }

    /// This node's forwarder (none outside a cluster, or while sealed).
    pub fn forwarder(&self) -> Option<Arc<Forwarder>> {
        self.part(|o| o.forwarder.clone())
    }

    fn part<T>(&self, f: impl FnOnce(&Opened) -> Option<T>) -> Option<T> {
        match self {
            Self::Open(opened) => f(opened),
            Self::Sealable { opened, .. } => opened
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(f),
        }
    }

    fn set(&self, value: Option<Opened>) -> Option<Opened> {
        match self {
            Self::Open(_) => None,
            Self::Sealable { opened, .. } => std::mem::replace(
                &mut *opened.write().unwrap_or_else(|p| p.into_inner()),
                value,
            ),
        }
    }
}

/// The seal state of a quorum-sealed node: shares given so far, the KMS slot
/// and the background work of the unsealed KMS.
pub struct SealGate {
    slot: Arc<KmsSlot>,
    unsealing: Mutex<Unsealing>,
    opener: Opener,
    /// When the unsealed KMS rotates its domain key.
    schedule: crate::domain_keys::Schedule,
    /// How the first unsealed KMS follows the store; later ones (after a
    /// seal) poll a shared store.
    follow: Mutex<Option<Follow>>,
    shared: bool,
    /// Stops the unsealed KMS's background work.
    background: Mutex<Option<watch::Sender<bool>>>,
    runtime: tokio::runtime::Handle,
    /// Where the keys' last uses are kept (`GetKeyLastUsage`): loaded into
    /// each unsealed KMS, saved while it runs and when it is sealed.
    usage_file: crate::api::kms::last_usage::UsageFile,
    /// The node's audit log (unless `[audit] enabled = false`).
    audit: Option<Arc<AuditLog>>,
}

/// Where a node's seal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealStatus {
    /// Whether the root is sealed.
    pub sealed: bool,
    /// Shares given towards unsealing.
    pub given: u8,
    /// Shares needed.
    pub threshold: u8,
    /// Shares the root was split into.
    pub shares: u8,
}

impl SealStatus {
    fn json(&self) -> Value {
        json!({
            "Sealed": self.sealed,
            "Given": self.given,
            "Threshold": self.threshold,
            "Shares": self.shares,
        })
    }
}

impl SealGate {
    /// Whether the node is sealed.
    pub fn is_sealed(&self) -> bool {
        self.slot.get().is_err()
    }

    /// Where the seal stands.
    pub fn status(&self) -> SealStatus {
        let unsealing = self.unsealing.lock().unwrap_or_else(|p| p.into_inner());
        SealStatus {
            sealed: self.is_sealed(),
            given: unsealing.given(),
            threshold: unsealing.root().threshold(),
            shares: unsealing.root().share_count(),
        }
    }

    /// Takes one share; opens the root and the KMS once the threshold is in.
    pub fn unseal(&self, share: &str) -> Result<SealStatus, UnsealError> {
        let mut unsealing = self.unsealing.lock().unwrap_or_else(|p| p.into_inner());
        if !self.is_sealed() {
            return Err(UnsealError::NotSealed);
        }
        match unsealing.add(share)? {
            Progress::Partial { .. } => {}
            Progress::Opened(root) => {
                let root: Arc<dyn RootOfTrust> = Arc::new(LocalRootKey::new(root));
                let opened = self.opener.open(&root)?;
                if let Some(audit) = &self.audit {
                    audit.unseal(root.as_ref())?;
                }
                drop(root);
                self.usage_file.load_into(&opened.kms);
                let stop = self.start_background(&opened);
                *self.background.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
                self.slot.set(Some(opened));
                self.note("Unsealed");
                tracing::info!("node unsealed");
            }
        }
        drop(unsealing);
        Ok(self.status())
    }

    /// Seals the node: drops the KMS (and with it the domain keys and every
    /// unwrapped key), stops its background work, forgets shares given.
    pub fn seal(&self) -> SealStatus {
        let mut unsealing = self.unsealing.lock().unwrap_or_else(|p| p.into_inner());
        unsealing.reset();
        if let Some(stop) = self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = stop.send(true);
        }
        if let Some(opened) = self.slot.set(None) {
            if let Err(e) = crate::api::kms::last_usage::save(&opened.kms, self.usage_file.path()) {
                tracing::warn!(error = %e, "key last-usage record not saved");
            }
            drop(opened);
            self.note("Sealed");
            if let Some(audit) = &self.audit {
                audit.seal();
            }
            tracing::info!("node sealed");
        }
        drop(unsealing);
        self.status()
    }
}

impl SealGate {
    /// Starts the background work of a just-opened node (last-use saving,
    /// domain-key schedule, replica, and in a cluster the poll and the peer
    /// measurements); sending `true` on the returned sender stops it all.
    fn start_background(&self, opened: &Opened) -> watch::Sender<bool> {
        let (stop, stopped) = watch::channel(false);
        let kms = &opened.kms;
        self.runtime.spawn(node::until_stopped(
            crate::api::kms::last_usage::save_periodically(
                Arc::clone(kms),
                self.usage_file.path().to_path_buf(),
            ),
            stopped.clone(),
        ));
        self.runtime.spawn(node::until_stopped(
            crate::domain_keys::run(Arc::clone(kms), self.schedule.clone(), self.audit.clone()),
            stopped.clone(),
        ));
        if let (Some(c), Some(advertised)) = (&opened.cluster, self.opener.advertised()) {
            self.runtime.spawn(node::until_stopped(
                node::poll_cluster(Arc::clone(c), Arc::clone(kms), advertised.to_owned()),
                stopped.clone(),
            ));
        }
        if let Some(f) = &opened.forwarder {
            self.runtime.spawn(node::until_stopped(
                Arc::clone(f).measure_peers(),
                stopped.clone(),
            ));
        }
        // The first unsealed KMS follows the store as the node was set up
        // to; later ones (after a seal) poll a shared store.
        let follow = self
            .follow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(if self.shared {
                Follow::Poll(replica::SQLITE_POLL)
            } else {
                Follow::Nothing
            });
        self.runtime.spawn(node::until_stopped(
            replica::run(Arc::clone(kms), follow),
            stopped,
        ));
        stop
    }

    /// Queues the record of a seal change; it is durable before the reply to
    /// the request that made it (that request's own record follows it).
    fn note(&self, operation: &str) {
        if let Some(audit) = &self.audit {
            if let Err(e) = audit.enqueue(audit.local(operation, "", None, Outcome::Success)) {
                tracing::error!(error = %e, operation, "recording a seal change failed");
            }
        }
    }
}

/// An unseal request refused.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    /// The node is unsealed already.
    #[error("the node is not sealed")]
    NotSealed,
    /// The share was refused.
    #[error(transparent)]
    Share(#[from] QuorumError),
    /// The root opened but the node did not (its KMS: store unreachable,
    /// domain keys not under this root; its cluster membership).
    #[error("opening the node: {0}")]
    Open(#[from] OpenError),
    /// The root opened but the audit log's signing key did not.
    #[error("opening the audit signing key: {0}")]
    Audit(#[from] AuditLogError),
}

/// Runs seal admin operation `op` for `caller` with JSON `body`.
pub fn handle(
    gate: Option<&SealGate>,
    caller: &VerifiedCaller,
    op: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    if caller.account_id != DEFAULT_ACCOUNT || caller.user_name != crate::admin::ADMIN_USER {
        return Err(messages::admin_denied(&caller.arn()));
    }
    let gate = gate.ok_or_else(messages::not_quorum_sealed)?;
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::serialization(e.to_string()))?
    };
    let status = match op {
        "SealStatus" => gate.status(),
        "Seal" => gate.seal(),
        "Unseal" => {
            let share = input["Share"]
                .as_str()
                .ok_or_else(|| ApiError::validation("Share is required"))?;
            gate.unseal(share)
                .map_err(|e| messages::unseal_refused(&e))?
        }
        other => {
            return Err(ApiError::new(
                "UnknownOperationException",
                format!("Unknown admin operation {}", messages::echo(other)),
            ))
        }
    };
    Ok(status.json())
}

/// A started node with a quorum-sealed root (see the module documentation).
pub struct SealedNode {
    /// Where the KMS API listens (HTTPS).
    pub api_addr: SocketAddr,
    /// Where `/metrics` listens.
    pub metrics_addr: SocketAddr,
    /// The data directory.
    pub data_dir: DataDir,
    /// The key-exchange mode.
    pub mode: KxMode,
    /// The seal state.
    pub gate: Arc<SealGate>,
    /// The node's audit log (unless `[audit] enabled = false`).
    pub audit: Option<Arc<AuditLog>>,
    /// Where the node publishes its addresses (`node-NAME.addr.json` for a
    /// cluster node), removed on shutdown.
    addr_file: String,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl SealedNode {
    /// Binds its listeners, reads the sealed root, opens the store and serves
    /// sealed. A cluster node (`[node]`) joins its cluster, opens its fences
    /// and forwards only once unsealed: until then its peers see it silent
    /// and forward elsewhere, and its node-to-node listener refuses every
    /// handshake (it knows no node certificate).
    pub async fn start(mut config: Config) -> Result<Self, NodeError> {
        let api = node::bind(config.listen).await?;
        let api_addr = api.local_addr().map_err(|source| NodeError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_listener = node::bind(config.metrics_listen).await?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|source| NodeError::Bind {
                addr: config.metrics_listen,
                source,
            })?;
        let (peer_listener, peer_addr) = node::bind_peer_listener(&config).await?;
        let (data_dir, _) = DataDir::open_or_init_for(&config.data_dir, &config.root)?;
        let sealed_root = data_dir.load_sealed_root()?;
        let location = node::store_location(&config, &data_dir);
        let node_name = config.node.as_ref().map(|n| n.name.as_str());
        let log = crate::audit::log_name(node_name, &location, &data_dir.path);
        // No root yet: records are kept from now, heads signed once unsealed.
        let audit = crate::audit::start(
            &config.audit,
            &crate::audit::file_for(&location, &data_dir.database(), node_name),
            &log,
            None,
        )?;
        crate::audit::record_init(audit.as_deref(), &data_dir).await?;
        let (store, cluster_store, authz_store, follow, quorum_store) =
            node::open_store(&location, &data_dir)?;
        let approvals = crate::approvals::open(quorum_store, &data_dir.path)?;
        let shared = location.is_shared();
        let metrics = Metrics::new();
        let authz = Arc::new(crate::authz::Authz::open(
            authz_store,
            std::mem::take(&mut config.principals),
        )?);
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
        let slot = Arc::new(KmsSlot::Sealable {
            region: config.region.clone(),
            name: node_name.map(str::to_owned),
            opened: RwLock::new(None),
        });
        let gate = Arc::new(SealGate {
            slot: Arc::clone(&slot),
            unsealing: Mutex::new(Unsealing::new(sealed_root)),
            opener: Opener::new(
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
            )?,
            schedule: crate::domain_keys::Schedule::new(
                config.root.domain_key_rotation,
                shared.then_some(config.max_staleness),
            ),
            follow: Mutex::new(Some(follow)),
            shared,
            background: Mutex::new(None),
            runtime: tokio::runtime::Handle::current(),
            usage_file: crate::api::kms::last_usage::UsageFile::of(&data_dir.path, node_name),
            audit: audit.clone(),
        });
        let open_files = limits::raise_open_file_limit().unwrap_or(1024);
        let max_connections = config.limits.effective_max_connections(open_files);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let state = Arc::new(AppState {
            kms: slot,
            credentials,
            metrics: Arc::clone(&metrics),
            budget: RequestBudget::new(&config.limits, Arc::clone(&metrics)),
            body_read_timeout: config.limits.body_read_timeout,
            seal: Some(Arc::clone(&gate)),
            authz: Arc::clone(&authz),
            audit: audit.clone(),
            approvals: Some(approvals),
            heavy: crate::heavy::HeavyPool::start(config.limits.heavy, Arc::clone(&metrics))
                .map_err(NodeError::HeavyPool)?,
            throttle: crate::throttle::Throttle::new(
                &config.limits.throttle,
                accounts.iter().map(String::as_str),
                Arc::clone(&metrics),
            ),
        });
        let tracker = ConnTracker::new(max_connections, Arc::clone(&metrics));
        if let Some(listener) = peer_listener {
            // Node certificates are pinned from the grants, which only an
            // unsealed node reads: while sealed every peer is refused.
            let slot = Arc::clone(&state.kms);
            let peer_tls = tls::peer_server_config(
                &data_dir.pki,
                Arc::new(move |cert: &[u8]| {
                    slot.cluster()
                        .is_some_and(|c| c.is_enrolled_certificate(cert))
                }),
            )?;
            tasks.spawn(node::accept_loop(
                listener,
                Arc::new(PqAcceptor::new(peer_tls, KxMode::PostQuantumOnly)),
                Arc::clone(&state),
                (Arc::clone(&tracker), config.limits.clone()),
                stopped.clone(),
            ));
        }
        tasks.spawn(node::accept_loop(
            api,
            acceptor,
            state,
            (tracker, config.limits),
            stopped.clone(),
        ));
        tasks.spawn(node::until_stopped(
            metrics::serve_metrics(metrics_listener, metrics),
            stopped,
        ));
        let addr_file = node::addr_file(node_name);
        node::publish_addrs(&data_dir.path.join(&addr_file), api_addr, metrics_addr)?;
        tracing::info!(%api_addr, %metrics_addr, data_dir = %data_dir.path.display(), ?mode, node = node_name, "node started sealed");
        Ok(Self {
            api_addr,
            metrics_addr,
            data_dir,
            mode,
            gate,
            audit,
            addr_file,
            stop,
            tasks,
        })
    }

    /// Seals, stops accepting connections and waits for the tasks.
    pub async fn shutdown(mut self) {
        self.gate.seal();
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Some(audit) = self.audit.take() {
            // Commits what is queued (a head was signed on sealing).
            let _ = tokio::task::spawn_blocking(move || audit.close()).await;
        }
        let _ = std::fs::remove_file(self.data_dir.path.join(&self.addr_file));
        tracing::info!("node stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(account: &str, user: &str) -> VerifiedCaller {
        VerifiedCaller {
            access_key_id: "AKIATEST".into(),
            account_id: account.into(),
            user_name: user.into(),
            region: "us-east-1".into(),
            service: "kms".into(),
        }
    }

    #[test]
    fn a_sealed_slot_refuses_with_the_sealed_error_and_keeps_its_region() {
        let slot = KmsSlot::Sealable {
            region: "eu-west-1".into(),
            name: Some("fra".into()),
            opened: RwLock::new(None),
        };
        assert_eq!(slot.region(), "eu-west-1");
        assert_eq!(slot.node_name().as_deref(), Some("fra"));
        let e = slot.get().err().unwrap();
        assert_eq!((e.status, e.code), (503, "DependencyTimeoutException"));
        assert!(
            e.message.starts_with("keyfence node is sealed: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn only_the_admin_user_may_seal_and_only_a_sealed_root_has_a_seal() {
        for (account, user) in [(DEFAULT_ACCOUNT, "bob"), ("444455556666", "admin")] {
            let e = handle(None, &caller(account, user), "Seal", b"{}")
                .err()
                .unwrap();
            assert_eq!(e.code, "AccessDeniedException", "{account} {user}");
        }
        let e = handle(None, &caller(DEFAULT_ACCOUNT, "admin"), "SealStatus", b"")
            .err()
            .unwrap();
        assert_eq!(e.code, "UnsupportedOperationException");
        assert!(OPERATIONS.iter().all(|op| is_seal_operation(op)));
        assert!(!is_seal_operation("ListNodes"));
    }
}
