//! The cluster port: what nodes share about each other through the store —
//! enrolled nodes, fence records and the authority — apart from the key
//! [`Store`](crate::Store), so a backend can hold both in one database while
//! the core keeps the two concerns apart.
//!
//! Everything here is either public (join requests, signed grants and fence
//! records, the authority's public half) or sealed under the root of trust
//! before it is handed over ([`RootOfTrust::seal`](crate::RootOfTrust::seal)).
//! The store is not trusted with integrity either: grants and fence records
//! are signed by the authority and checked by every node before use.

use crate::clock::Timestamp;
use crate::fence::FenceId;
use crate::store::StoreError;

/// Where a node is in its enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Asked to join; not approved yet.
    Pending,
    /// Approved: its grant is in the store.
    Approved,
    /// Removed by an operator; it opens no fence created or rotated since.
    Removed,
}

/// One node as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node's name (unique in the cluster).
    pub name: String,
    /// Where other nodes reach it (`host:port`).
    pub address: String,
    /// Its signed join request ([`JoinRequest`](crate::fence::JoinRequest) bytes).
    pub join_request: Vec<u8>,
    /// Enrollment state.
    pub state: NodeState,
    /// Its grant ([`NodeGrant`](crate::fence::NodeGrant) bytes) once approved.
    pub grant: Option<Vec<u8>>,
    /// When the node last wrote to the store (start-up or heartbeat).
    pub last_contact: Timestamp,
}

/// A fence record as stored: the signed [`FenceRecord`](crate::fence::FenceRecord)
/// bytes with the fields a reader filters on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFence {
    /// The fence id.
    pub id: FenceId,
    /// Its canonical policy.
    pub policy: String,
    /// The record's epoch.
    pub epoch: u32,
    /// The record's encoding.
    pub record: Vec<u8>,
}

/// The authority as stored: its public half for every node, its secret sealed
/// under the root of trust for the node that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuthority {
    /// [`AuthorityPublic`](crate::fence::AuthorityPublic) bytes.
    pub public: Vec<u8>,
    /// The [`Authority`](crate::fence::Authority) encoding sealed under the root.
    pub sealed: Vec<u8>,
}

/// Durable shared state of a cluster. Every method returns after its change is durable.
pub trait ClusterStore: Send + Sync {
    /// Every node, by name.
    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    /// One node.
    fn node(&self, name: &str) -> Result<Option<NodeRecord>, StoreError>;
    /// Adds a node that asks to join; [`StoreError::Conflict`] if the name is taken.
    fn insert_node(&self, node: &NodeRecord) -> Result<(), StoreError>;
    /// Replaces a node's state and grant (approval, removal).
    fn update_node(&self, node: &NodeRecord) -> Result<(), StoreError>;
    /// Records that a node is alive at `address` at `at`.
    fn touch_node(&self, name: &str, address: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Every fence record.
    fn fences(&self) -> Result<Vec<StoredFence>, StoreError>;
    /// Adds or replaces a fence record. A record whose epoch is lower than
    /// the stored one is refused ([`StoreError::Conflict`]): an old record
    /// may name a node that has since been removed.
    fn put_fence(&self, fence: &StoredFence) -> Result<(), StoreError>;
    /// The authority, if one was made.
    fn authority(&self) -> Result<Option<StoredAuthority>, StoreError>;
    /// Stores the authority; [`StoreError::Conflict`] if a different one exists.
    fn insert_authority(&self, authority: &StoredAuthority) -> Result<(), StoreError>;
    /// Replaces the authority's sealed secret (after a master rotation); its
    /// public half must not change.
    fn update_authority(&self, authority: &StoredAuthority) -> Result<(), StoreError>;
}
