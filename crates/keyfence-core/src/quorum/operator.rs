//! Operators and their signing keys: ML-DSA-65 by default, Ed25519 accepted.
//! Private keys stay with the operator (signing is offline); the node holds
//! only public keys.

use keyfence_crypto::asym::{self, KeySpec, MessageType, PrivateKey, SigningAlgorithm};
use keyfence_crypto::Secret;

use super::QuorumError;

/// An operator's signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// ML-DSA-65 (FIPS 204), the default.
    MlDsa65,
    /// Ed25519 (RFC 8032).
    Ed25519,
}

impl Scheme {
    fn spec(self) -> KeySpec {
        match self {
            Scheme::MlDsa65 => KeySpec::MlDsa65,
            Scheme::Ed25519 => KeySpec::EccNistEdwards25519,
        }
    }

    fn algorithm(self) -> SigningAlgorithm {
        match self {
            Scheme::MlDsa65 => SigningAlgorithm::MlDsaShake256,
            Scheme::Ed25519 => SigningAlgorithm::Ed25519Sha512,
        }
    }

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::MlDsa65 => "ML-DSA-65",
            Scheme::Ed25519 => "Ed25519",
        }
    }

    /// The scheme named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Scheme::MlDsa65, Scheme::Ed25519]
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// An operator's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorKey {
    /// Its scheme.
    pub scheme: Scheme,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
}

impl OperatorKey {
    /// Whether `signature` is this key's over `message`; a malformed key or
    /// signature is simply not a valid signature.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        asym::verify_with_public_key(
            self.scheme.spec(),
            &self.public_key,
            self.scheme.algorithm(),
            MessageType::Raw,
            message,
            signature,
        )
        .unwrap_or(false)
    }
}

/// A registered operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// A unique name.
    pub name: String,
    /// Its public key.
    pub key: OperatorKey,
}

/// An operator's private key, held by the operator (offline signing).
pub struct OperatorSigner {
    scheme: Scheme,
    key: PrivateKey,
}

impl std::fmt::Debug for OperatorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorSigner({})", self.scheme.name())
    }
}

impl OperatorSigner {
    /// A fresh key and its PKCS#8 encoding (for the operator's file).
    pub fn generate(scheme: Scheme) -> Result<(Self, Secret), QuorumError> {
        let key =
            PrivateKey::generate(scheme.spec()).map_err(|_| QuorumError::Crypto("generate"))?;
        let pkcs8 = Secret::new(key.to_bytes().to_vec());
        Ok((Self { scheme, key }, pkcs8))
    }

    /// The key in `pkcs8`.
    pub fn from_pkcs8(scheme: Scheme, pkcs8: &[u8]) -> Result<Self, QuorumError> {
        let key =
            PrivateKey::from_bytes(scheme.spec(), pkcs8).map_err(|_| QuorumError::Malformed {
                what: "operator key",
                reason: "not a PKCS#8 key of this scheme",
            })?;
        Ok(Self { scheme, key })
    }

    /// The public half.
    pub fn public(&self) -> Result<OperatorKey, QuorumError> {
        Ok(OperatorKey {
            scheme: self.scheme,
            public_key: self
                .key
                .public_key_der()
                .map_err(|_| QuorumError::Crypto("public key"))?,
        })
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, QuorumError> {
        self.key
            .sign(self.scheme.algorithm(), MessageType::Raw, message)
            .map_err(|_| QuorumError::Crypto("sign"))
    }
}
