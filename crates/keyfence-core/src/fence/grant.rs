//! What the authority issues: its public key, and a node's grant (approved
//! attributes plus CP-ABE attribute keys encrypted to the node).

use std::fmt;

use keyfence_abe::Attributes;

use super::codec::{ty, Reader, Writer};
use super::identity::NodePublic;
use super::{sign, FenceError};

/// Envelope purpose of an attribute key encrypted to a node.
pub(crate) const ATTRIBUTE_KEY_PURPOSE: &[u8] = b"keyfence/v1/attribute-key";

/// The AAD of a node's attribute-key envelope: its name and the master generation.
pub(crate) fn attribute_key_aad(node: &str, generation: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(6 + node.len());
    aad.extend_from_slice(&(node.len() as u16).to_be_bytes());
    aad.extend_from_slice(node.as_bytes());
    aad.extend_from_slice(&generation.to_be_bytes());
    aad
}

/// The authority's public key (ML-DSA-65, DER SubjectPublicKeyInfo): every node
/// checks grants and fence records against it before trusting them.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorityPublic {
    signing_public: Vec<u8>,
}

impl AuthorityPublic {
    pub(crate) fn new(signing_public: Vec<u8>) -> Self {
        Self { signing_public }
    }

    /// The ML-DSA-65 public key, DER SubjectPublicKeyInfo.
    pub fn signing_public(&self) -> &[u8] {
        &self.signing_public
    }

    /// Encoding: `"KF" 0x17 0x01 ‖ signing public key`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(ty::AUTHORITY_PUBLIC);
        w.bytes(&self.signing_public);
        w.finish()
    }

    /// Decodes [`AuthorityPublic::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FenceError> {
        let mut r = Reader::new("authority public key", ty::AUTHORITY_PUBLIC, bytes)?;
        let signing_public = r.bytes()?.to_vec();
        r.finish()?;
        Ok(Self { signing_public })
    }

    pub(crate) fn verify(
        &self,
        label: &[u8],
        body: &[u8],
        signature: &[u8],
        what: &'static str,
    ) -> Result<(), FenceError> {
        sign::verify(&self.signing_public, label, body, signature, what)
    }
}

impl fmt::Debug for AuthorityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthorityPublic(ML-DSA-65)")
    }
}

/// One CP-ABE attribute key of a grant, encrypted to the node's KEM key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct GrantedKey {
    pub(crate) generation: u32,
    pub(crate) envelope: Vec<u8>,
}

/// The authority's answer to a join: the node as it asked to join, the
/// attributes the authority approved, and one CP-ABE attribute key for those
/// attributes per live master generation, each encrypted to the node's KEM key
/// (X-Wing + AES-256-GCM, AAD = node name ‖ generation). Signed by the
/// authority; nothing in it is secret in clear.
///
/// The per-policy secrets of the fences the node satisfies are not in the
/// grant but in each fence's record (one envelope per node), so that rotating
/// a fence replaces every copy of its secret in one record.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeGrant {
    pub(crate) node: NodePublic,
    pub(crate) approved: Attributes,
    pub(crate) keys: Vec<GrantedKey>,
    pub(crate) signature: Vec<u8>,
}

impl fmt::Debug for NodeGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let generations: Vec<u32> = self.keys.iter().map(|k| k.generation).collect();
        write!(
            f,
            "NodeGrant({} approved {} generations {generations:?})",
            self.node.name(),
            self.approved
        )
    }
}

impl NodeGrant {
    /// The node as it asked to join (its keys and claimed attributes).
    pub fn node(&self) -> &NodePublic {
        &self.node
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.node.name()
    }

    /// The attributes the authority approved: what fences are decided on.
    pub fn approved(&self) -> &Attributes {
        &self.approved
    }

    /// The master generations the grant holds an attribute key for, ascending.
    pub fn generations(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.generation).collect()
    }

    /// Checks the authority's signature.
    pub fn verify(&self, authority: &AuthorityPublic) -> Result<(), FenceError> {
        authority.verify(sign::GRANT, &self.body(), &self.signature, "node grant")
    }

    /// The signed part: the encoding without the signature.
    pub(crate) fn body(&self) -> Vec<u8> {
        self.writer().finish()
    }

    fn writer(&self) -> Writer {
        let mut w = Writer::new(ty::NODE_GRANT);
        w.bytes(&self.node.to_bytes());
        w.bytes(&self.approved.to_bytes());
        w.count(self.keys.len());
        for k in &self.keys {
            w.u32(k.generation);
            w.bytes(&k.envelope);
        }
        w
    }

    /// Encoding: `"KF" 0x12 0x01 ‖ node public part ‖ approved attributes ‖
    /// count ‖ (generation ‖ envelope)* ‖ signature`; generations strictly increase.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = self.writer();
        w.bytes(&self.signature);
        w.finish()
    }

    /// Decodes [`NodeGrant::to_bytes`] output (without verifying the signature).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FenceError> {
        let mut r = Reader::new("node grant", ty::NODE_GRANT, bytes)?;
        let node = NodePublic::from_bytes(r.bytes()?)?;
        let approved = Attributes::from_bytes(r.bytes()?)
            .map_err(|e| FenceError::InvalidAttributes(e.to_string()))?;
        let n = r.count()?;
        let mut keys: Vec<GrantedKey> = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let generation = r.u32()?;
            if keys.last().is_some_and(|k| k.generation >= generation) {
                return Err(r.bad("generations not strictly increasing"));
            }
            let envelope = r.bytes()?.to_vec();
            keys.push(GrantedKey {
                generation,
                envelope,
            });
        }
        let signature = r.bytes()?.to_vec();
        r.finish()?;
        Ok(Self {
            node,
            approved,
            keys,
            signature,
        })
    }
}
