//! What the authority issues: its public key, and a node's grant (approved
//! attributes plus CP-ABE attribute keys encrypted to the node).

use std::fmt;

use keyfence_abe::Attributes;

use keyfence_crypto::Secret;

use super::codec::{ty, Reader, Writer};
use super::identity::{NodeIdentity, NodePublic};
use super::{envelope, sign, FenceError};

/// Envelope purpose of an attribute key encrypted to a node.
pub(crate) const ATTRIBUTE_KEY_PURPOSE: &[u8] = b"keyfence/v1/attribute-key";

/// Envelope purpose of a node's TLS private key encrypted to it.
const NODE_TLS_PURPOSE: &[u8] = b"keyfence/v1/node-tls-key";

/// Grant encoding version with a node certificate section.
const GRANT_VERSION: u8 = 2;

/// The AAD of a node's TLS key envelope: its name and its certificate.
fn node_tls_aad(node: &str, certificate: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(2 + node.len() + certificate.len());
    aad.extend_from_slice(&(node.len() as u16).to_be_bytes());
    aad.extend_from_slice(node.as_bytes());
    aad.extend_from_slice(certificate);
    aad
}

/// A node's certificate for mutual TLS between nodes and its private key,
/// encrypted to the node's KEM key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NodeTlsGrant {
    pub(crate) certificate: Vec<u8>,
    pub(crate) key_envelope: Vec<u8>,
}

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
    pub(crate) tls: Option<NodeTlsGrant>,
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

    /// The node certificate (DER) the authority issued with the grant, if
    /// any: what the node presents to its peers in mutual TLS, and what they
    /// pin it to. Check the grant's signature before trusting it.
    pub fn tls_certificate(&self) -> Option<&[u8]> {
        self.tls.as_ref().map(|t| &t.certificate[..])
    }

    /// The node certificate and its private key (PKCS#8 DER), opened with
    /// the node's identity; `None` if the grant carries none. Checks the
    /// grant is this node's (not its signature: see [`Self::verify`]).
    pub fn open_tls(
        &self,
        identity: &NodeIdentity,
    ) -> Result<Option<(Vec<u8>, Secret)>, FenceError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        if self.node != *identity.public() {
            return Err(FenceError::WrongNode {
                grant: self.name().to_owned(),
                node: identity.name().to_owned(),
            });
        }
        let key = envelope::open(
            identity.kem(),
            NODE_TLS_PURPOSE,
            &node_tls_aad(self.name(), &tls.certificate),
            &tls.key_envelope,
            "node TLS key envelope",
        )?;
        Ok(Some((tls.certificate.clone(), key)))
    }

    /// The grant with `certificate` and its `private_key` encrypted to the
    /// node's KEM key (unsigned: the authority signs it).
    pub(crate) fn with_tls(
        &self,
        certificate: &[u8],
        private_key: &[u8],
    ) -> Result<Self, FenceError> {
        let key_envelope = envelope::seal(
            self.node.kem_public(),
            NODE_TLS_PURPOSE,
            &node_tls_aad(self.name(), certificate),
            private_key,
        )?;
        Ok(Self {
            tls: Some(NodeTlsGrant {
                certificate: certificate.to_vec(),
                key_envelope,
            }),
            signature: Vec::new(),
            ..self.clone()
        })
    }

    /// The signed part: the encoding without the signature.
    pub(crate) fn body(&self) -> Vec<u8> {
        self.writer().finish()
    }

    fn writer(&self) -> Writer {
        let mut w = Writer::with_version(ty::NODE_GRANT, GRANT_VERSION);
        w.bytes(&self.node.to_bytes());
        w.bytes(&self.approved.to_bytes());
        w.count(self.keys.len());
        for k in &self.keys {
            w.u32(k.generation);
            w.bytes(&k.envelope);
        }
        w.count(usize::from(self.tls.is_some()));
        if let Some(tls) = &self.tls {
            w.bytes(&tls.certificate);
            w.bytes(&tls.key_envelope);
        }
        w
    }

    /// Encoding: `"KF" 0x12 0x02 ‖ node public part ‖ approved attributes ‖
    /// count ‖ (generation ‖ envelope)* ‖ count (0 or 1) ‖ (node certificate
    /// DER ‖ its private key's envelope)? ‖ signature`; generations strictly
    /// increase. Version 1 (no certificate section) is still read.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = self.writer();
        w.bytes(&self.signature);
        w.finish()
    }

    /// Decodes [`NodeGrant::to_bytes`] output (without verifying the signature).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FenceError> {
        let (mut r, version) =
            Reader::versioned("node grant", ty::NODE_GRANT, GRANT_VERSION, bytes)?;
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
        let tls = match (version, if version >= 2 { r.count()? } else { 0 }) {
            (_, 0) => None,
            (_, 1) => Some(NodeTlsGrant {
                certificate: r.bytes()?.to_vec(),
                key_envelope: r.bytes()?.to_vec(),
            }),
            _ => return Err(r.bad("more than one node certificate")),
        };
        let signature = r.bytes()?.to_vec();
        r.finish()?;
        Ok(Self {
            node,
            approved,
            keys,
            tls,
            signature,
        })
    }
}
