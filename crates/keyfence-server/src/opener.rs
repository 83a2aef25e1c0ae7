//! What a node opens with its root of trust: the KMS over its store and, on a
//! cluster node (`[node]`), its membership (identity, grant, fences; joining
//! on the first opening) and its forwarder to satisfying peers. A node whose
//! root opens at start opens once ([`crate::node::Node::start`]); a
//! quorum-sealed node at each unseal ([`crate::seal`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keyfence_core::cluster::ClusterStore;
use keyfence_core::service::{FenceMaker, FenceView};
use keyfence_core::{Clock, Kms, KmsError, RootOfTrust, Store, SystemClock};

use crate::cluster::{ClusterError, Membership};
use crate::config::{Config, NodeSection, StoreLocation};
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::tls::{PeerTls, TlsError};

/// What an opened node serves with: its KMS and, on a cluster node, its
/// membership and its forwarder to satisfying peers.
#[derive(Clone)]
pub struct Opened {
    /// The KMS.
    pub kms: Arc<Kms>,
    /// This node's cluster membership, if it is in one.
    pub cluster: Option<Arc<Membership>>,
    /// Forwards requests for keys fenced away from this node (cluster nodes).
    pub forwarder: Option<Arc<Forwarder>>,
}

/// Why a node's root opened but the node did not.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The KMS could not load its keys (store unreachable, domain keys not
    /// under this root, a bad region or default fence).
    #[error("kms: {0}")]
    Kms(#[from] KmsError),
    /// The cluster membership did not open (identity, authority, fences).
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    /// The node-to-node TLS client could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Opens a node's KMS (and cluster parts) with its root; made once at start.
pub(crate) struct Opener {
    store: Arc<dyn Store>,
    /// The node's key policies and grants, kept in step with the opened KMS.
    authz: Arc<crate::authz::Authz>,
    region: String,
    also_serves: Vec<String>,
    default_fence: Option<String>,
    /// The replica's bound on a shared store.
    max_staleness: Option<Duration>,
    feed_retention: Duration,
    cluster: Option<ClusterOpener>,
}

/// What a cluster node opens besides its KMS.
struct ClusterOpener {
    section: NodeSection,
    data_dir: PathBuf,
    store: Arc<dyn ClusterStore>,
    /// The address peers reach this node at.
    advertised: String,
    peer_tls: PeerTls,
    metrics: Arc<Metrics>,
}

/// Where a node listens, for the address it gives its peers.
pub(crate) struct Addresses {
    /// The KMS API's bound address.
    pub api: SocketAddr,
    /// The node-to-node listener's, if it has one.
    pub peer: Option<SocketAddr>,
}

impl Opener {
    /// An opener for `config`'s node over its store at `location`.
    pub(crate) fn new(
        config: &Config,
        location: &StoreLocation,
        (store, cluster_store): (Arc<dyn Store>, Arc<dyn ClusterStore>),
        authz: Arc<crate::authz::Authz>,
        (data_dir, addresses): (&crate::datadir::DataDir, Addresses),
        metrics: &Arc<Metrics>,
    ) -> Result<Self, TlsError> {
        let cluster = match &config.node {
            Some(section) => Some(ClusterOpener {
                section: section.clone(),
                data_dir: data_dir.path.clone(),
                store: cluster_store,
                advertised: section
                    .advertise
                    .clone()
                    .unwrap_or_else(|| addresses.peer.unwrap_or(addresses.api).to_string()),
                peer_tls: PeerTls::new(&data_dir.pki.ca_cert)?,
                metrics: Arc::clone(metrics),
            }),
            None => None,
        };
        Ok(Self {
            store,
            authz,
            region: config.region.clone(),
            also_serves: config.also_serves.clone(),
            default_fence: config.default_fence.clone(),
            max_staleness: location.is_shared().then_some(config.max_staleness),
            feed_retention: config.feed_retention,
            cluster,
        })
    }

    /// The address peers reach this node at (cluster nodes).
    pub(crate) fn advertised(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.advertised.as_str())
    }

    /// Opens the KMS, which keeps `root` (for domain-key rotation; dropped
    /// with the KMS), and on a cluster node its membership, which joins the
    /// cluster on the first opening, and its forwarder.
    pub(crate) fn open(&self, root: &Arc<dyn RootOfTrust>) -> Result<Opened, OpenError> {
        let cluster = match &self.cluster {
            Some(c) => Some(Arc::new(Membership::join(
                &c.section,
                &c.data_dir,
                Arc::clone(&c.store),
                Arc::clone(root),
                &c.advertised,
                SystemClock.now(),
            )?)),
            None => None,
        };
        let view = match &cluster {
            Some(c) => c.view()?,
            None => FenceView::default(),
        };
        let kms = Kms::open_fenced(
            Arc::clone(&self.store),
            root.as_ref(),
            Arc::new(SystemClock),
            &self.region,
            view,
        )?
        .with_regions(&self.also_serves)?
        .with_default_fence(self.default_fence.as_deref())?
        .with_root_of_trust(Arc::clone(root))
        .with_feed_retention(self.feed_retention);
        let kms = Arc::new(match self.max_staleness {
            Some(bound) => kms.with_max_staleness(Some(bound)),
            None => kms,
        });
        // Key policies and grants follow the replica (the change feed).
        kms.follow_authz(Arc::clone(&self.authz) as Arc<dyn keyfence_core::store::AuthzFollower>)?;
        if let Some(c) = cluster.as_ref().filter(|c| c.is_authority()) {
            kms.set_fence_maker(Arc::clone(c) as Arc<dyn FenceMaker>);
        }
        let forwarder = match (&cluster, &self.cluster) {
            (Some(c), Some(opener)) => Some(Arc::new(Forwarder::new(
                Arc::clone(c),
                opener.peer_tls.clone(),
                Arc::clone(&opener.metrics),
            )?)),
            _ => None,
        };
        Ok(Opened {
            kms,
            cluster,
            forwarder,
        })
    }
}
