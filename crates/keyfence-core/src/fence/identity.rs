//! A node's own keys, its public part, and its signed request to join.

use std::fmt;

use keyfence_abe::Attributes;
use keyfence_crypto::asym::xwing::{XWingPrivateKey, PUBLIC_KEY_LEN};
use keyfence_crypto::asym::PrivateKey;
use zeroize::Zeroizing;

use super::codec::{ty, Reader, Writer};
use super::{sign, FenceError};

/// Longest node name, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// Checks a node name: 1 to 63 ASCII letters, digits, `.`, `_` or `-`.
pub fn validate_name(name: &str) -> Result<(), FenceError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(FenceError::InvalidName(name.to_owned()))
    }
}

/// What a node shows the cluster: its name, the attributes it claims, its
/// ML-DSA-65 identity public key (DER SubjectPublicKeyInfo) and its X-Wing KEM
/// public key (1216 bytes). Public; its canonical encoding is what the node signs.
#[derive(Clone, PartialEq, Eq)]
pub struct NodePublic {
    name: String,
    attributes: Attributes,
    signing_public: Vec<u8>,
    kem_public: Vec<u8>,
}

impl NodePublic {
    /// The node's name, unique in the cluster.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The attributes the node claims (the authority approves its own set).
    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }

    /// The ML-DSA-65 identity public key, DER SubjectPublicKeyInfo.
    pub fn signing_public(&self) -> &[u8] {
        &self.signing_public
    }

    /// The X-Wing public key secrets are encrypted to.
    pub fn kem_public(&self) -> &[u8] {
        &self.kem_public
    }

    /// Canonical encoding: `"KF" 0x10 0x01 ‖ name ‖ attributes (keyfence-abe
    /// native) ‖ signing public ‖ KEM public`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(ty::NODE_PUBLIC);
        w.text(&self.name);
        w.bytes(&self.attributes.to_bytes());
        w.bytes(&self.signing_public);
        w.bytes(&self.kem_public);
        w.finish()
    }

    /// Decodes [`NodePublic::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FenceError> {
        let mut r = Reader::new("node public part", ty::NODE_PUBLIC, bytes)?;
        let name = r.text()?.to_owned();
        validate_name(&name)?;
        let attributes = Attributes::from_bytes(r.bytes()?)
            .map_err(|e| FenceError::InvalidAttributes(e.to_string()))?;
        let signing_public = r.bytes()?.to_vec();
        let kem_public = r.bytes()?.to_vec();
        if kem_public.len() != PUBLIC_KEY_LEN {
            return Err(r.bad("KEM public key is not an X-Wing public key"));
        }
        r.finish()?;
        Ok(Self {
            name,
            attributes,
            signing_public,
            kem_public,
        })
    }
}

impl fmt::Debug for NodePublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodePublic({} {})", self.name, self.attributes)
    }
}

/// A node's own secrets: its ML-DSA-65 identity signing key and its X-Wing KEM
/// key, made on first start. Zeroized on drop; `Debug` shows the name only.
pub struct NodeIdentity {
    public: NodePublic,
    signing: PrivateKey,
    kem: XWingPrivateKey,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeIdentity({}, [REDACTED])", self.public.name)
    }
}

impl NodeIdentity {
    /// Makes the keys of a new node named `name` claiming `attributes`.
    pub fn generate(name: &str, attributes: Attributes) -> Result<Self, FenceError> {
        validate_name(name)?;
        let signing = sign::generate()?;
        let kem = XWingPrivateKey::generate()?;
        let public = NodePublic {
            name: name.to_owned(),
            attributes,
            signing_public: signing.public_key_der()?,
            kem_public: kem.public_key().to_vec(),
        };
        Ok(Self {
            public,
            signing,
            kem,
        })
    }

    /// The public part.
    pub fn public(&self) -> &NodePublic {
        &self.public
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.public.name
    }

    /// The join request: the public part signed with the identity key.
    pub fn join_request(&self) -> Result<JoinRequest, FenceError> {
        let body = self.public.to_bytes();
        let signature = sign::sign(&self.signing, sign::JOIN, &body)?;
        Ok(JoinRequest {
            node: self.public.clone(),
            signature,
        })
    }

    /// The KEM private key, for opening what the authority encrypted to the node.
    pub(crate) fn kem(&self) -> &XWingPrivateKey {
        &self.kem
    }

    /// Secret encoding, to seal under the node's root of trust: `"KF" 0x14 0x01 ‖
    /// name ‖ attributes ‖ ML-DSA-65 PKCS#8 ‖ X-Wing expanded private key`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(ty::NODE_IDENTITY);
        w.text(&self.public.name);
        w.bytes(&self.public.attributes.to_bytes());
        w.bytes(self.signing.to_bytes());
        w.bytes(self.kem.to_bytes());
        w.finish_secret()
    }

    /// Decodes [`NodeIdentity::to_bytes`] output, re-deriving the public keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FenceError> {
        const WHAT: &str = "node identity";
        let mut r = Reader::new(WHAT, ty::NODE_IDENTITY, bytes)?;
        let name = r.text()?.to_owned();
        validate_name(&name)?;
        let attributes = Attributes::from_bytes(r.bytes()?)
            .map_err(|e| FenceError::InvalidAttributes(e.to_string()))?;
        let signing = sign::load(r.bytes()?, WHAT)?;
        let kem = XWingPrivateKey::from_bytes(r.bytes()?).map_err(|_| FenceError::Malformed {
            what: WHAT,
            reason: "not an X-Wing private key",
        })?;
        r.finish()?;
        let public = NodePublic {
            name,
            attributes,
            signing_public: signing.public_key_der()?,
            kem_public: kem.public_key().to_vec(),
        };
        Ok(Self {
            public,
            signing,
            kem,
        })
    }
}

/// A node's request to join: its public part, signed with its identity key
/// (proof that it holds the key; the operator decides whether to trust it).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinRequest {
    node: NodePublic,
    signature: Vec<u8>,
}

impl fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinRequest({:?})", self.node)
    }
}

impl JoinRequest {
    /// The node as it claims to be, before [`JoinRequest::verify`]: for showing
    /// to an operator, not for trusting.
    pub fn claimed(&self) -> &NodePublic {
        &self.node
    }

    /// Checks the signature with the key the request itself carries.
    pub fn verify(&self) -> Result<&NodePublic, FenceError> {
        sign::verify(
            &self.node.signing_public,
            sign::JOIN,
            &self.node.to_bytes(),
            &self.signature,
            "join request",
        )?;
        Ok(&self.node)
    }

    /// Encoding: `"KF" 0x11 0x01 ‖ node public part (its full encoding) ‖ signature`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(ty::JOIN_REQUEST);
        w.bytes(&self.node.to_bytes());
        w.bytes(&self.signature);
        w.finish()
    }

    /// Decodes [`JoinRequest::to_bytes`] output (without verifying it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FenceError> {
        let mut r = Reader::new("join request", ty::JOIN_REQUEST, bytes)?;
        let node = NodePublic::from_bytes(r.bytes()?)?;
        let signature = r.bytes()?.to_vec();
        r.finish()?;
        Ok(Self { node, signature })
    }
}
