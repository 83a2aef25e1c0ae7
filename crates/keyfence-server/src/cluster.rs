//! This node as a member of a geo-fencing cluster: its identity, its join
//! request, the authority (on the node that holds it), and the view of
//! fences it hands to the KMS.
//!
//! - First start: the node makes its [`NodeIdentity`] (ML-DSA-65 identity
//!   key, X-Wing KEM key), seals it under the root of trust in the data
//!   directory (`node-NAME.identity`), and registers its signed join request
//!   in the cluster store as pending.
//! - The node with `authority = true` makes the [`Authority`] on the
//!   cluster's first start, seals it under the root of trust and keeps it in
//!   the store; later starts unseal it. It approves joins ([`Membership::approve`])
//!   and makes fences ([`Membership::create_fence`], also on demand from a
//!   fenced CreateKey through [`FenceMaker`]).
//! - Every node polls the store ([`POLL_INTERVAL`]) for its grant and for new
//!   or rotated fence records and installs them in its KMS
//!   ([`Membership::refresh`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use keyfence_abe::Attributes;
use keyfence_core::cluster::{ClusterStore, NodeRecord, NodeState, StoredAuthority, StoredFence};
use keyfence_core::fence::{
    Authority, AuthorityPublic, FenceError, FenceId, FenceRecord, JoinRequest, NodeGrant,
    NodeIdentity, NodeKeyring, Rewrapper,
};
use keyfence_core::service::{FenceMaker, FenceView};
use keyfence_core::{Kms, KmsError, RootOfTrust, StoreError, Timestamp};
use zeroize::Zeroizing;

use crate::config::NodeSection;
use crate::tls::{issue_node_certificate, NodeCertificate};

/// How often a node looks in the store for its grant and new fence records.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The least time between two re-reads of the store for refused requests.
pub const REQUEST_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The store failed.
    #[error("cluster store: {0}")]
    Store(#[from] StoreError),
    /// A fencing object was refused or could not be made.
    #[error("fencing: {0}")]
    Fence(#[from] FenceError),
    /// The root of trust or the KMS refused.
    #[error("{0}")]
    Kms(#[from] KmsError),
    /// A node certificate could not be made.
    #[error("node certificate: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The identity file could not be read or written.
    #[error("node identity {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The `[node]` attributes are not acceptable.
    #[error("node attributes: {0}")]
    Attributes(String),
    /// The stored identity was made for other attributes than the config names.
    #[error("node {name} was enrolled with attributes {enrolled}; the config now says {configured} (changing attributes needs a new enrollment)")]
    AttributesChanged {
        /// The node.
        name: String,
        /// What its identity holds.
        enrolled: String,
        /// What the config says.
        configured: String,
    },
    /// Another node registered under this name with other keys.
    #[error("node name {0} is registered with another identity")]
    NameTaken(String),
    /// An authority operation at a node that does not hold the authority.
    #[error("this node does not hold the fencing authority")]
    NotAuthority,
    /// The cluster has no authority yet.
    #[error("the cluster has no authority yet (start the node with authority = true first)")]
    NoAuthority,
    /// No node of that name asked to join.
    #[error("no node named {0} asked to join")]
    NoSuchNode(String),
    /// The node is not waiting for approval.
    #[error("node {name} is {state:?}, not pending")]
    NotPending {
        /// The node.
        name: String,
        /// Its state.
        state: NodeState,
    },
    /// The node is not approved (removal and attribute changes need an approved node).
    #[error("node {name} is {state:?}, not approved")]
    NotApproved {
        /// The node.
        name: String,
        /// Its state.
        state: NodeState,
    },
}

/// What a membership change did: the fences it rotated and the keys re-wrapped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// The node as stored after the change.
    pub node: Option<NodeRecord>,
    /// The fences rotated (new epoch, new `s_policy`), by policy.
    pub rotated: Vec<String>,
    /// Fenced keys whose versions were re-wrapped under the new epochs.
    pub rewrapped: usize,
}

/// What a master rotation or retirement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterChange {
    /// The live generations afterwards, ascending (the last is active).
    pub generations: Vec<u32>,
    /// Fence records refreshed (policy keys re-sealed; no backing key touched).
    pub fences: usize,
    /// Node grants refreshed.
    pub nodes: usize,
}

const AUTHORITY_LABEL: &str = "fence-authority";

fn identity_label(name: &str) -> String {
    format!("node-identity/{name}")
}

/// The file holding a node's sealed identity in the data directory.
pub fn identity_file(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(format!("node-{name}.identity"))
}

/// A node's attributes from its config table.
pub fn attributes(section: &NodeSection) -> Result<Attributes, ClusterError> {
    Attributes::from_pairs(section.attributes.iter())
        .map_err(|e| ClusterError::Attributes(e.to_string()))
}

fn stored(record: &FenceRecord) -> StoredFence {
    StoredFence {
        id: record.id(),
        policy: record.policy().to_owned(),
        epoch: record.epoch(),
        record: record.to_bytes(),
    }
}

/// The grant and fence record bytes a view was built from: what
/// [`Membership::refresh`] compares to install only what changed.
#[derive(Default, PartialEq, Eq)]
struct Installed {
    grant: Option<Vec<u8>>,
    records: Vec<Vec<u8>>,
}

/// This node's membership: identity, store, and the authority if it holds it.
pub struct Membership {
    name: String,
    store: Arc<dyn ClusterStore>,
    identity: Zeroizing<Vec<u8>>,
    authority: Option<Mutex<Authority>>,
    /// The root of trust, kept at the authority node only: it re-seals the
    /// authority after a master-key change. (That node holds every master
    /// secret in memory anyway, which is more than the root protects.)
    sealer: Option<Arc<dyn RootOfTrust>>,
    /// The grant and records installed last (to install only what changed).
    installed: Mutex<Installed>,
    /// This node's certificate for mutual TLS with its peers, once approved.
    certificate: RwLock<Option<Arc<NodeCertificate>>>,
    /// The node certificate of every approved node, from its verified grant:
    /// what a forwarded request's connection must present.
    pinned: RwLock<HashMap<String, Vec<u8>>>,
    /// When a refused request last re-read the store.
    last_request_refresh: Mutex<Option<std::time::Instant>>,
    /// Bumped whenever a refresh installs a change (for caches of the store).
    changes: std::sync::atomic::AtomicU64,
    /// When the authority's next re-wrap sweep is due.
    sweep: Mutex<SweepSchedule>,
}

/// How often the authority sweeps the store for fenced keys still wrapped
/// under an old epoch, in quiet times.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// How often it sweeps in the [`SWEEP_AFTER_ROTATION`] after a fence
/// rotation: a node that had not polled the new record yet may still wrap a
/// new key or version under the previous epoch.
pub const SWEEP_INTERVAL_AFTER_ROTATION: Duration = Duration::from_secs(10);

/// How long after a fence rotation the authority sweeps at the shorter
/// interval (nodes poll every [`POLL_INTERVAL`]; this covers many polls).
pub const SWEEP_AFTER_ROTATION: Duration = Duration::from_secs(120);

/// When the authority sweeps next: at once after start (resuming a
/// rotation's re-wrap that a crash interrupted), often right after a
/// rotation, rarely otherwise.
#[derive(Debug, Default)]
struct SweepSchedule {
    /// `None` until the first sweep (due at once).
    next: Option<std::time::Instant>,
    /// Until when the short interval applies.
    busy_until: Option<std::time::Instant>,
}

impl SweepSchedule {
    fn due(&self, now: std::time::Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    fn swept(&mut self, now: std::time::Instant) {
        let busy = self.busy_until.is_some_and(|t| now < t);
        self.next = Some(
            now + if busy {
                SWEEP_INTERVAL_AFTER_ROTATION
            } else {
                SWEEP_INTERVAL
            },
        );
    }

    fn rotated(&mut self, now: std::time::Instant) {
        self.busy_until = Some(now + SWEEP_AFTER_ROTATION);
        self.next = Some(now + SWEEP_INTERVAL_AFTER_ROTATION);
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Membership({}, authority: {})",
            self.name,
            self.authority.is_some()
        )
    }
}

impl Membership {
    /// Loads or makes this node's identity and (with `authority = true`) the
    /// authority, and registers the node's join request if the store does not
    /// hold it yet.
    pub fn join(
        section: &NodeSection,
        data_dir: &Path,
        store: Arc<dyn ClusterStore>,
        root: Arc<dyn RootOfTrust>,
        address: &str,
        now: Timestamp,
    ) -> Result<Self, ClusterError> {
        let attrs = attributes(section)?;
        let identity = load_or_make_identity(data_dir, &section.name, attrs, root.as_ref())?;
        let request = identity.join_request()?;
        match store.node(&section.name)? {
            None => store.insert_node(&NodeRecord {
                name: section.name.clone(),
                address: address.to_owned(),
                join_request: request.to_bytes(),
                state: NodeState::Pending,
                grant: None,
                last_contact: now,
            })?,
            Some(known) => {
                let theirs = JoinRequest::from_bytes(&known.join_request)?;
                if theirs.claimed() != identity.public() {
                    return Err(ClusterError::NameTaken(section.name.clone()));
                }
                store.touch_node(&section.name, address, now)?;
            }
        }
        let authority = if section.authority {
            Some(Mutex::new(load_or_make_authority(
                store.as_ref(),
                root.as_ref(),
            )?))
        } else {
            None
        };
        Ok(Self {
            name: section.name.clone(),
            store,
            identity: Zeroizing::new(identity.to_bytes().to_vec()),
            sealer: section.authority.then_some(root),
            authority,
            installed: Mutex::new(Installed::default()),
            certificate: RwLock::new(None),
            pinned: RwLock::new(HashMap::new()),
            last_request_refresh: Mutex::new(None),
            changes: std::sync::atomic::AtomicU64::new(0),
            sweep: Mutex::new(SweepSchedule::default()),
        })
    }

    /// This node's certificate for mutual TLS with its peers (from its grant).
    pub fn certificate(&self) -> Option<Arc<NodeCertificate>> {
        self.certificate
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `certificate` (DER) is the node certificate in the current
    /// grant of the approved node `name`. A miss re-reads the store once
    /// (a node approved or re-issued since the last poll).
    pub fn is_node_certificate(&self, name: &str, certificate: &[u8]) -> bool {
        let pinned = |m: &HashMap<String, Vec<u8>>| m.get(name).is_some_and(|c| c == certificate);
        if pinned(&self.pinned.read().unwrap_or_else(|p| p.into_inner())) {
            return true;
        }
        match self.read_pinned() {
            Ok(fresh) => {
                let ok = pinned(&fresh);
                *self.pinned.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                ok
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading node certificates");
                false
            }
        }
    }

    /// Whether `certificate` (DER) is the node certificate of any approved
    /// node, as this node last read the grants (its poll re-reads them every
    /// [`POLL_INTERVAL`]): the node-to-node listener's handshake check. It
    /// reads memory only, so a flood of handshakes costs the store nothing.
    pub fn is_enrolled_certificate(&self, certificate: &[u8]) -> bool {
        self.pinned
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|c| c == certificate)
    }

    /// Re-reads the pinned node certificates now (after this node removed a
    /// node or re-issued its grant: its old certificate stops passing here at
    /// once; the other nodes drop it at their next poll).
    fn repin(&self) {
        match self.read_pinned() {
            Ok(fresh) => *self.pinned.write().unwrap_or_else(|p| p.into_inner()) = fresh,
            Err(e) => tracing::warn!(error = %e, "reading node certificates"),
        }
    }

    /// The node certificates of the approved nodes whose grants verify.
    fn read_pinned(&self) -> Result<HashMap<String, Vec<u8>>, ClusterError> {
        let Some(authority) = self.authority_public()? else {
            return Ok(HashMap::new());
        };
        let mut out = HashMap::new();
        for node in self.store.nodes()? {
            let Some(bytes) = node.grant.filter(|_| node.state == NodeState::Approved) else {
                continue;
            };
            let grant = NodeGrant::from_bytes(&bytes)?;
            if grant.name() != node.name || grant.verify(&authority).is_err() {
                tracing::warn!(node = %node.name, "a stored grant does not verify; its certificate is not trusted");
                continue;
            }
            if let Some(cert) = grant.tls_certificate() {
                out.insert(node.name, cert.to_vec());
            }
        }
        Ok(out)
    }

    /// Opens this node's certificate from its grant and re-reads its peers'.
    fn install_certificates(&self, grant: Option<&[u8]>) -> Result<(), ClusterError> {
        let opened = match grant {
            Some(bytes) => NodeGrant::from_bytes(bytes)?
                .open_tls(&NodeIdentity::from_bytes(&self.identity)?)?
                .map(|(certificate, key)| {
                    Arc::new(NodeCertificate {
                        certificate,
                        private_key: Zeroizing::new(key.expose().to_vec()),
                    })
                }),
            None => None,
        };
        {
            let mut held = self.certificate.write().unwrap_or_else(|p| p.into_inner());
            let same = match (held.as_deref(), opened.as_deref()) {
                (Some(a), Some(b)) => a.certificate == b.certificate,
                (None, None) => true,
                _ => false,
            };
            if !same {
                *held = opened;
            }
        }
        let pinned = self.read_pinned()?;
        *self.pinned.write().unwrap_or_else(|p| p.into_inner()) = pinned;
        Ok(())
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this node holds the authority.
    pub fn is_authority(&self) -> bool {
        self.authority.is_some()
    }

    /// The cluster store.
    pub fn store(&self) -> &Arc<dyn ClusterStore> {
        &self.store
    }

    fn lock_authority(&self) -> Result<MutexGuard<'_, Authority>, ClusterError> {
        let authority = self.authority.as_ref().ok_or(ClusterError::NotAuthority)?;
        Ok(authority.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn authority_public(&self) -> Result<Option<AuthorityPublic>, ClusterError> {
        authority_public_in(self.store.as_ref())
    }

    /// What this node knows of the fences now, read from the store; with the
    /// grant and record bytes it was built from.
    fn read_view(&self) -> Result<(FenceView, Installed), ClusterError> {
        view_in(
            self.store.as_ref(),
            &self.name,
            NodeIdentity::from_bytes(&self.identity)?,
        )
    }

    /// Installs `stored` in `kms` if it differs from what is installed,
    /// opening only what changed: nothing is decoded when the bytes are the
    /// same (the common case of a poll or a refused request's re-read), and
    /// the keyring (the grant's decryption, the attribute key's subgroup
    /// checks) only when the grant changed.
    fn install_changes(&self, kms: &Kms, stored: Stored) -> Result<bool, ClusterError> {
        let grant_changed = {
            let installed = self.installed.lock().unwrap_or_else(|p| p.into_inner());
            if *installed == stored.installed {
                return Ok(false);
            }
            installed.grant != stored.installed.grant
        };
        let identity = grant_changed
            .then(|| NodeIdentity::from_bytes(&self.identity))
            .transpose()?;
        let view = open_view(&stored, identity)?;
        self.install_view(kms, view, stored.installed)
    }

    /// The view to open the KMS with.
    pub fn view(&self) -> Result<FenceView, ClusterError> {
        let (view, seen) = self.read_view()?;
        self.install_certificates(seen.grant.as_deref())?;
        *self.installed.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        Ok(view)
    }

    /// Installs in `kms` what changed in the store since the last time (a
    /// grant, new or rotated fences) and re-reads the node certificates of
    /// this node and its peers. Returns whether the fences changed.
    pub fn refresh(&self, kms: &Kms) -> Result<bool, ClusterError> {
        let stored = stored_in(self.store.as_ref(), &self.name)?;
        self.install_certificates(stored.installed.grant.as_deref())?;
        self.install_changes(kms, stored)
    }

    /// The re-read of a request refused for a fenced key: like
    /// [`Self::refresh`] for the fences only, and at most once per
    /// [`REQUEST_REFRESH_INTERVAL`] (under load, one re-read serves the
    /// requests refused meanwhile; the others go straight to forwarding).
    pub fn refresh_for_request(&self, kms: &Kms) -> Result<bool, ClusterError> {
        {
            let mut last = self
                .last_request_refresh
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < REQUEST_REFRESH_INTERVAL) {
                return Ok(false);
            }
            *last = Some(std::time::Instant::now());
        }
        let stored = stored_in(self.store.as_ref(), &self.name)?;
        self.install_changes(kms, stored)
    }

    /// Whether [`Self::refresh_for_request`] would read the store now (its
    /// last re-read is at least [`REQUEST_REFRESH_INTERVAL`] old): a refused
    /// request checks this on its worker and goes straight to forwarding
    /// when not, without a hop to the blocking pool.
    pub fn request_refresh_due(&self) -> bool {
        self.last_request_refresh
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|t| t.elapsed() >= REQUEST_REFRESH_INTERVAL)
    }

    /// A number that changes whenever a refresh installed something new:
    /// whoever caches what the store says re-reads it when this moves.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    fn install_view(
        &self,
        kms: &Kms,
        mut view: FenceView,
        seen: Installed,
    ) -> Result<bool, ClusterError> {
        let mut installed = self.installed.lock().unwrap_or_else(|p| p.into_inner());
        if *installed == seen {
            return Ok(false);
        }
        if installed.grant == seen.grant {
            view.keyring = None; // unchanged: keep the opened policy keys
        }
        let opened = kms.install_fences(view)?;
        tracing::info!(node = %self.name, keys_opened = opened, "installed fence updates");
        *installed = seen;
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(true)
    }

    /// Records that this node is alive.
    pub fn heartbeat(&self, address: &str, now: Timestamp) -> Result<(), ClusterError> {
        Ok(self.store.touch_node(&self.name, address, now)?)
    }

    /// Approves a pending node with the attributes it claimed: issues its
    /// grant and adds it to every fence it satisfies. Authority only.
    pub fn approve(&self, name: &str) -> Result<NodeRecord, ClusterError> {
        let authority = self.lock_authority()?;
        let mut node = self
            .store
            .node(name)?
            .ok_or_else(|| ClusterError::NoSuchNode(name.to_owned()))?;
        if node.state != NodeState::Pending {
            return Err(ClusterError::NotPending {
                name: name.to_owned(),
                state: node.state,
            });
        }
        let request = JoinRequest::from_bytes(&node.join_request)?;
        let claimed = request.verify()?.attributes().clone();
        let fences = self
            .store
            .fences()?
            .iter()
            .map(|f| FenceRecord::from_bytes(&f.record))
            .collect::<Result<Vec<_>, _>>()?;
        let approval = authority.approve(&request, claimed, &fences)?;
        let certificate = issue_node_certificate(name)?;
        let grant = authority.issue_tls(
            &approval.grant,
            &certificate.certificate,
            &certificate.private_key,
        )?;
        node.state = NodeState::Approved;
        node.grant = Some(grant.to_bytes());
        self.store.update_node(&node)?;
        self.repin();
        for record in &approval.fences {
            self.store.put_fence(&stored(record))?;
        }
        tracing::info!(node = %name, fences = approval.fences.len(), "node approved");
        Ok(node)
    }

    fn approved_grants(&self) -> Result<Vec<NodeGrant>, ClusterError> {
        Ok(self
            .store
            .nodes()?
            .into_iter()
            .filter(|n| n.state == NodeState::Approved)
            .filter_map(|n| n.grant)
            .map(|g| NodeGrant::from_bytes(&g))
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn records(&self) -> Result<Vec<FenceRecord>, ClusterError> {
        Ok(self
            .store
            .fences()?
            .iter()
            .map(|f| FenceRecord::from_bytes(&f.record))
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn approved_node(&self, name: &str) -> Result<NodeRecord, ClusterError> {
        let node = self
            .store
            .node(name)?
            .ok_or_else(|| ClusterError::NoSuchNode(name.to_owned()))?;
        if node.state != NodeState::Approved || node.grant.is_none() {
            return Err(ClusterError::NotApproved {
                name: name.to_owned(),
                state: node.state,
            });
        }
        Ok(node)
    }

    /// Rotates `record` for `members` (new epoch, key pair and `s_policy`),
    /// stores it, then re-wraps the fence's keys in `kms` under it.
    fn rotate_one(
        &self,
        authority: &Authority,
        kms: &Kms,
        record: &FenceRecord,
        members: &[NodeGrant],
        change: &mut MembershipChange,
    ) -> Result<(), ClusterError> {
        let rotation = authority.rotate_fence(record, members, &[])?;
        self.store.put_fence(&stored(&rotation.record))?;
        change.rewrapped += kms.rewrap_fenced_keys(&authority.rewrapper(&rotation.record)?)?;
        change.rotated.push(record.policy().to_owned());
        self.sweep
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rotated(std::time::Instant::now());
        tracing::info!(fence = %record.id(), epoch = rotation.record.epoch(), nodes = ?rotation.record.nodes(), "fence rotated");
        Ok(())
    }

    /// The re-wrap sweep (authority only): one pass over the store that
    /// re-wraps every fenced key still wrapped under an older epoch than its
    /// fence's current record, with the authority's copy of the previous
    /// epoch's key (see [`Kms::sweep_fenced_keys`]). It catches keys a node
    /// wrapped under the old epoch between a rotation and its next poll, and
    /// resumes a rotation's re-wrap that a crash interrupted (the fence
    /// records hold what it needs).
    pub fn sweep(&self, kms: &Kms) -> Result<keyfence_core::service::SweepOutcome, ClusterError> {
        let records: HashMap<FenceId, FenceRecord> =
            self.records()?.into_iter().map(|r| (r.id(), r)).collect();
        let current = records.iter().map(|(id, r)| (*id, r.epoch())).collect();
        let authority = self.lock_authority()?;
        let mut rewrappers: HashMap<FenceId, Option<Arc<Rewrapper>>> = HashMap::new();
        let mut rewrapper = |fence: FenceId| -> Result<Option<Arc<Rewrapper>>, KmsError> {
            if let Some(known) = rewrappers.get(&fence) {
                return Ok(known.clone());
            }
            let made = match records.get(&fence).map(|r| authority.rewrapper(r)) {
                Some(Ok(r)) => Some(Arc::new(r)),
                Some(Err(e)) => {
                    tracing::warn!(%fence, error = %e, "cannot re-wrap keys of this fence");
                    None
                }
                None => None,
            };
            rewrappers.insert(fence, made.clone());
            Ok(made)
        };
        let outcome = kms.sweep_fenced_keys(&current, &mut rewrapper)?;
        for (key, why) in &outcome.failed {
            tracing::warn!(%key, reason = %why, "fenced key left under an old epoch");
        }
        if outcome.rewrapped > 0 {
            tracing::info!(
                keys = outcome.rewrapped,
                "re-wrap sweep re-wrapped keys under their fences' current epochs"
            );
        }
        Ok(outcome)
    }

    /// Runs [`Self::sweep`] if this node holds the authority and a sweep is
    /// due ([`SWEEP_INTERVAL`], or [`SWEEP_INTERVAL_AFTER_ROTATION`] for
    /// [`SWEEP_AFTER_ROTATION`] after a fence rotation; the first at once).
    /// Called by the node's cluster poll.
    pub fn sweep_if_due(&self, kms: &Kms) -> Result<(), ClusterError> {
        if self.authority.is_none() {
            return Ok(());
        }
        let now = std::time::Instant::now();
        if !self
            .sweep
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .due(now)
        {
            return Ok(());
        }
        let swept = self.sweep(kms);
        self.sweep
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .swept(std::time::Instant::now());
        swept.map(drop)
    }

    /// Removes an approved node: marks it removed, then rotates every fence
    /// it holds the secret of (so it opens nothing created or re-wrapped
    /// since) and re-wraps those fences' keys in `kms`. Authority only.
    pub fn remove(&self, name: &str, kms: &Kms) -> Result<MembershipChange, ClusterError> {
        let authority = self.lock_authority()?;
        let mut node = self.approved_node(name)?;
        node.state = NodeState::Removed;
        self.store.update_node(&node)?;
        self.repin();
        let members = self.approved_grants()?;
        let mut change = MembershipChange::default();
        for record in self.records()? {
            if record.nodes().contains(&name) {
                self.rotate_one(&authority, kms, &record, &members, &mut change)?;
            }
        }
        tracing::info!(node = %name, fences = change.rotated.len(), keys = change.rewrapped, "node removed");
        change.node = Some(node);
        Ok(change)
    }

    /// Changes an approved node's attributes: rotates every fence it holds
    /// the secret of that the new attributes do not satisfy (re-wrapping
    /// their keys in `kms`), then re-issues its grant for the new attributes
    /// and adds it to every fence they satisfy. Authority only.
    pub fn set_attributes(
        &self,
        name: &str,
        approved: Attributes,
        kms: &Kms,
    ) -> Result<MembershipChange, ClusterError> {
        let authority = self.lock_authority()?;
        let mut node = self.approved_node(name)?;
        let request = JoinRequest::from_bytes(&node.join_request)?;
        let others: Vec<NodeGrant> = self
            .approved_grants()?
            .into_iter()
            .filter(|g| g.name() != name)
            .collect();
        let mut change = MembershipChange::default();
        for record in self.records()? {
            let (policy, _) = keyfence_core::fence::normalize_policy(record.policy())?;
            if record.nodes().contains(&name) && !policy.satisfied_by(&approved) {
                self.rotate_one(&authority, kms, &record, &others, &mut change)?;
            }
        }
        let approval = authority.approve(&request, approved, &self.records()?)?;
        let certificate = issue_node_certificate(name)?;
        let grant = authority.issue_tls(
            &approval.grant,
            &certificate.certificate,
            &certificate.private_key,
        )?;
        node.grant = Some(grant.to_bytes());
        self.store.update_node(&node)?;
        self.repin();
        for record in &approval.fences {
            self.store.put_fence(&stored(record))?;
        }
        tracing::info!(node = %name, attributes = %approval.grant.approved(), fences = change.rotated.len(), "node attributes changed");
        change.node = Some(node);
        Ok(change)
    }

    /// Stores the authority's secret state after a master-key change and
    /// re-issues every fence record and grant for the live generations.
    fn refresh_all(&self, authority: &Authority) -> Result<MasterChange, ClusterError> {
        let public = self.store.authority()?.ok_or(ClusterError::NoAuthority)?;
        self.store.update_authority(&StoredAuthority {
            public: public.public,
            sealed: self
                .sealer
                .as_ref()
                .ok_or(ClusterError::NotAuthority)?
                .seal(AUTHORITY_LABEL, &authority.to_bytes())?,
        })?;
        let mut fences = 0;
        for record in self.records()? {
            self.store
                .put_fence(&stored(&authority.refresh_fence(&record)?))?;
            fences += 1;
        }
        let mut nodes = 0;
        for mut node in self.store.nodes()? {
            let Some(grant) = node
                .grant
                .as_ref()
                .filter(|_| node.state == NodeState::Approved)
            else {
                continue;
            };
            let refreshed = authority.refresh_grant(&NodeGrant::from_bytes(grant)?)?;
            node.grant = Some(refreshed.to_bytes());
            self.store.update_node(&node)?;
            nodes += 1;
        }
        Ok(MasterChange {
            generations: authority.generations(),
            fences,
            nodes,
        })
    }

    /// Starts a new CP-ABE master generation (new ciphertexts use it, older
    /// ones keep decrypting until retired), re-encrypts every fence's `k_abe`
    /// under it and gives every approved node an attribute key for it:
    /// policy keys only, never a backing key. Authority only.
    pub fn rotate_master(&self) -> Result<MasterChange, ClusterError> {
        let mut authority = self.lock_authority()?;
        let generation = authority.rotate_master()?;
        let change = self.refresh_all(&authority)?;
        tracing::info!(
            generation,
            fences = change.fences,
            nodes = change.nodes,
            "master key rotated"
        );
        Ok(change)
    }

    /// Destroys master generation `generation` (not the active one) and
    /// drops its ciphertexts and attribute keys from every record and grant.
    /// Authority only.
    pub fn retire_generation(&self, generation: u32) -> Result<MasterChange, ClusterError> {
        let mut authority = self.lock_authority()?;
        authority.retire_generation(generation)?;
        let change = self.refresh_all(&authority)?;
        tracing::info!(generation, "master generation retired");
        Ok(change)
    }

    /// Makes the fence of `policy` for the approved nodes (or returns the
    /// stored one if it exists). Authority only.
    pub fn create_fence(&self, policy: &str) -> Result<FenceRecord, ClusterError> {
        let authority = self.lock_authority()?;
        let (_, canonical) = keyfence_core::fence::normalize_policy(policy)?;
        if let Some(existing) = self
            .store
            .fences()?
            .into_iter()
            .find(|f| f.policy == canonical)
        {
            return Ok(FenceRecord::from_bytes(&existing.record)?);
        }
        let grants = self
            .store
            .nodes()?
            .into_iter()
            .filter(|n| n.state == NodeState::Approved)
            .filter_map(|n| n.grant)
            .map(|g| NodeGrant::from_bytes(&g))
            .collect::<Result<Vec<_>, _>>()?;
        let record = authority.create_fence(&canonical, &grants)?;
        self.store.put_fence(&stored(&record))?;
        tracing::info!(fence = %record.id(), policy = %record.policy(), nodes = ?record.nodes(), "fence created");
        Ok(record)
    }
}

/// The authority node makes fences on demand for fenced CreateKeys.
impl FenceMaker for Membership {
    fn make_fence(&self, policy: &str) -> Result<FenceRecord, KmsError> {
        self.create_fence(policy).map_err(|e| match e {
            ClusterError::Kms(k) => k,
            other => KmsError::Internal(format!("making fence for {policy}: {other}")),
        })
    }
}

/// The cluster's authority public key, if it has one.
fn authority_public_in(store: &dyn ClusterStore) -> Result<Option<AuthorityPublic>, ClusterError> {
    Ok(match store.authority()? {
        Some(a) => Some(AuthorityPublic::from_bytes(&a.public)?),
        None => None,
    })
}

/// What the store holds of one node's view of the fences, as bytes, not
/// yet decoded or verified.
#[derive(Default)]
struct Stored {
    /// The authority's public key, once the cluster has an authority.
    authority: Option<Vec<u8>>,
    /// The node's grant (if approved) and every fence record.
    installed: Installed,
}

/// What `store` holds of node `name`'s view of the fences (nothing before
/// the cluster has an authority).
fn stored_in(store: &dyn ClusterStore, name: &str) -> Result<Stored, ClusterError> {
    let Some(authority) = store.authority()? else {
        return Ok(Stored::default());
    };
    let grant = store
        .node(name)?
        .filter(|n| n.state == NodeState::Approved)
        .and_then(|n| n.grant);
    let records = store.fences()?.into_iter().map(|f| f.record).collect();
    Ok(Stored {
        authority: Some(authority.public),
        installed: Installed { grant, records },
    })
}

/// The view `stored` gives: records decoded, and the node's keyring opened
/// with `identity` if given and the node has a grant.
fn open_view(stored: &Stored, identity: Option<NodeIdentity>) -> Result<FenceView, ClusterError> {
    let Some(authority) = &stored.authority else {
        return Ok(FenceView::default());
    };
    let authority = AuthorityPublic::from_bytes(authority)?;
    let keyring = match (&stored.installed.grant, identity) {
        (Some(bytes), Some(identity)) => Some(NodeKeyring::open(
            identity,
            &NodeGrant::from_bytes(bytes)?,
            &authority,
        )?),
        _ => None,
    };
    let records = stored
        .installed
        .records
        .iter()
        .map(|r| FenceRecord::from_bytes(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FenceView {
        authority: Some(authority),
        keyring,
        records,
    })
}

/// What node `name` (with `identity`) knows of the fences, read from
/// `store`; with the grant and record bytes it was built from.
fn view_in(
    store: &dyn ClusterStore,
    name: &str,
    identity: NodeIdentity,
) -> Result<(FenceView, Installed), ClusterError> {
    let stored = stored_in(store, name)?;
    let view = open_view(&stored, Some(identity))?;
    Ok((view, stored.installed))
}

/// The fence view node `name` would open its KMS with, for a tool that acts
/// as that node without running it (`keyfence store fill --fence`): its
/// identity from `data_dir` (sealed under `root`), its grant and the fence
/// records from `store`. Reads only: a node that never started (no identity
/// file) is refused, and nothing is registered.
pub fn offline_view(
    data_dir: &Path,
    name: &str,
    store: &dyn ClusterStore,
    root: &dyn RootOfTrust,
) -> Result<FenceView, ClusterError> {
    let path = identity_file(data_dir, name);
    let sealed = std::fs::read(&path).map_err(|source| ClusterError::Io { path, source })?;
    let bytes = root.unseal(&identity_label(name), &sealed)?;
    let identity = NodeIdentity::from_bytes(bytes.expose())?;
    Ok(view_in(store, name, identity)?.0)
}

fn load_or_make_identity(
    data_dir: &Path,
    name: &str,
    attrs: Attributes,
    root: &dyn RootOfTrust,
) -> Result<NodeIdentity, ClusterError> {
    let path = identity_file(data_dir, name);
    let io = |source| ClusterError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(sealed) => {
            let bytes = root.unseal(&identity_label(name), &sealed)?;
            let identity = NodeIdentity::from_bytes(bytes.expose())?;
            if identity.public().attributes() != &attrs {
                return Err(ClusterError::AttributesChanged {
                    name: name.to_owned(),
                    enrolled: identity.public().attributes().to_string(),
                    configured: attrs.to_string(),
                });
            }
            Ok(identity)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = NodeIdentity::generate(name, attrs)?;
            let sealed = root.seal(&identity_label(name), &identity.to_bytes())?;
            crate::root_key::write_private(&path, &sealed).map_err(io)?;
            Ok(identity)
        }
        Err(e) => Err(io(e)),
    }
}

fn load_or_make_authority(
    store: &dyn ClusterStore,
    root: &dyn RootOfTrust,
) -> Result<Authority, ClusterError> {
    if let Some(stored) = store.authority()? {
        let bytes = root.unseal(AUTHORITY_LABEL, &stored.sealed)?;
        return Ok(Authority::from_bytes(bytes.expose())?);
    }
    let authority = Authority::new()?;
    store.insert_authority(&StoredAuthority {
        public: authority.public().to_bytes(),
        sealed: root.seal(AUTHORITY_LABEL, &authority.to_bytes())?,
    })?;
    tracing::info!("fencing authority created");
    Ok(authority)
}
