//! Geo-fencing, the cryptographic heart: node identities, the authority, fence
//! records, and opening a fence's policy key. Pure and I/O-free; the node,
//! store and forwarding wire it in.
//!
//! # The scheme
//!
//! - A node makes a [`NodeIdentity`] on first start (ML-DSA-65 identity key,
//!   X-Wing KEM key) and sends a [`JoinRequest`]: its [`NodePublic`] signed
//!   with its identity key.
//! - The [`Authority`] approves it with the attributes the operator approved:
//!   a [`NodeGrant`] holding a CP-ABE attribute key per live master generation,
//!   encrypted to the node's KEM key, and an `s_policy` envelope for the node
//!   in every existing fence it satisfies ([`Approval`]).
//! - A fence ([`FenceRecord`], one per canonical policy string) has a policy
//!   key pair (X-Wing). Its public half wraps backing keys
//!   ([`wrap_backing_key`]); its private half is sealed with AES-256-GCM under
//!   `HKDF-SHA256(k_abe ‖ s_policy)` with `k_abe` CP-ABE-encrypted under the
//!   policy and `s_policy` encrypted only to the KEM keys of nodes whose
//!   approved attributes satisfy the policy. Neither part alone opens it:
//!   CP-ABE makes the policy collusion-resistant, `s_policy` keeps the fence
//!   closed against someone who copies the store today and breaks pairings
//!   later.
//! - A node's [`NodeKeyring`] opens the private half
//!   ([`NodeKeyring::open_policy_key`]) and unwraps backing keys
//!   ([`unwrap_backing_key`]).
//! - Membership changes rotate the fence ([`Authority::rotate_fence`]: new
//!   epoch, key pair and `s_policy`, backing keys re-wrapped, also afterwards
//!   and as often as needed by [`Authority::rewrapper`]); master rotation
//!   ([`Authority::rotate_master`] then [`Authority::refresh_fence`] and
//!   [`Authority::refresh_grant`]) re-encrypts `k_abe` only, generation by
//!   generation. See [`authority`] for what the authority can and cannot do.
//!
//! # Choices beyond the design document
//!
//! - Grants and fence records are signed by the authority (ML-DSA-65) and
//!   checked before use, so whoever can write to the store can neither add a
//!   member nor swap a fence's public half. A store can still replay an older
//!   signed record: callers must refuse a record whose epoch is lower than one
//!   they have seen for that fence (after a removal, the old record still
//!   names the removed node).
//! - The per-node `s_policy` envelopes live in the fence record, not in the
//!   grant: [`Authority::approve`] returns the updated records of the fences
//!   the new node satisfies. One record then holds every copy of a fence's
//!   secret, and a fence rotation replaces them all at once.
//! - A fence has an *epoch* (its policy key pair and `s_policy`, bumped by
//!   [`Authority::rotate_fence`]) apart from the master *generation* (the
//!   CP-ABE keys); a record holds one `k_abe` ciphertext and sealed private
//!   half per live generation.
//! - The fence id is derived from the canonical policy (HKDF-SHA256), so one
//!   policy is one fence wherever it is computed.
//! - The authority keeps its own copy of each fence's secrets in the record,
//!   encrypted to its X-Wing key; see [`authority`] for what that means. After
//!   a rotation that copy also holds the previous epoch's private half, so the
//!   re-wrapping of backing keys can resume from the store alone after a crash
//!   (and keys a node wrapped under the old epoch meanwhile are caught up).
//!
//! # Stored formats
//!
//! Every encoding is `"KF" ‖ type ‖ version (1)` then fields (big-endian
//! integers, u32-length byte strings, u16-length text, u16 list counts, no
//! trailing bytes). Types: `0x10` [`NodePublic`], `0x11` [`JoinRequest`],
//! `0x12` [`NodeGrant`], `0x13` [`FenceRecord`], `0x14` [`NodeIdentity`]
//! (secret), `0x15` [`Authority`] (secret), `0x16` wrapped backing key,
//! `0x17` [`AuthorityPublic`]. Grants are at version 2 (a node certificate
//! section, see [`NodeGrant::to_bytes`]; version 1 is still read). Secret
//! types' encodings are returned in
//! zeroizing buffers, to be sealed under the root of trust.

#![deny(missing_docs)]

pub mod authority;
mod codec;
mod envelope;
mod error;
mod grant;
mod identity;
mod keyring;
mod record;
mod rng;
mod sign;

#[cfg(test)]
mod tests;

pub use authority::{Approval, Authority, FenceRotation, Rewrapper, WrappedKeyRef};
pub use codec::FORMAT_VERSION;
pub use error::FenceError;
pub use grant::{AuthorityPublic, NodeGrant};
pub use identity::{validate_name, JoinRequest, NodeIdentity, NodePublic, MAX_NAME_LEN};
pub use keyring::{
    unwrap_backing_key, wrap_backing_key, wrapped_key_fence, NodeKeyring, PolicyPrivateKey,
};
pub use record::{normalize_policy, FenceId, FenceRecord, PolicyPublicKey};
