//! The root of trust: what wraps domain keys.

use keyfence_crypto::{wrap, Secret, SymmetricKey};

use crate::KmsError;

/// Wraps and unwraps domain keys. Implementations: a root key held in memory
/// after unsealing ([`LocalRootKey`]: a key file, a passphrase or a quorum of
/// Shamir shares opened it), or an AES key inside an HSM that does the
/// wrapping itself (the server's PKCS#11 root). Both bind what they wrap to
/// [`domain_key_binding`] or [`sealed_binding`].
pub trait RootOfTrust: Send + Sync {
    /// Wraps domain key number `id`.
    fn wrap_domain_key(&self, id: u32, key: &SymmetricKey) -> Result<Vec<u8>, KmsError>;
    /// Unwraps domain key number `id`.
    fn unwrap_domain_key(&self, id: u32, wrapped: &[u8]) -> Result<SymmetricKey, KmsError>;
    /// Seals a secret that is not a domain key (a node identity, the fencing
    /// authority); `label` names what it is, so one kind never unseals as another.
    fn seal(&self, label: &str, secret: &[u8]) -> Result<Vec<u8>, KmsError>;
    /// Unseals what [`Self::seal`] sealed with the same `label`.
    fn unseal(&self, label: &str, sealed: &[u8]) -> Result<Secret, KmsError>;
}

/// A 256-bit root key held in memory (unsealed by the node at start-up).
pub struct LocalRootKey(SymmetricKey);

impl LocalRootKey {
    /// Wraps an unsealed root key.
    pub fn new(key: SymmetricKey) -> Self {
        Self(key)
    }

    fn binding(id: u32) -> Vec<u8> {
        domain_key_binding(id)
    }

    fn seal_binding(label: &str) -> Vec<u8> {
        sealed_binding(label)
    }
}

/// The additional data domain key number `id` is wrapped with, so one
/// domain key never unwraps as another.
pub fn domain_key_binding(id: u32) -> Vec<u8> {
    let mut b = b"keyfence/v1/domain-key/".to_vec();
    b.extend_from_slice(&id.to_be_bytes());
    b
}

/// The additional data a secret labelled `label` is sealed with.
pub fn sealed_binding(label: &str) -> Vec<u8> {
    let mut b = b"keyfence/v1/sealed/".to_vec();
    b.extend_from_slice(label.as_bytes());
    b
}

impl RootOfTrust for LocalRootKey {
    fn wrap_domain_key(&self, id: u32, key: &SymmetricKey) -> Result<Vec<u8>, KmsError> {
        wrap::wrap(&self.0, &Self::binding(id), key)
            .map_err(KmsError::internal_crypto("wrap domain key"))
    }

    fn unwrap_domain_key(&self, id: u32, wrapped: &[u8]) -> Result<SymmetricKey, KmsError> {
        wrap::unwrap(&self.0, &Self::binding(id), wrapped).map_err(|_| {
            KmsError::Internal(format!(
                "domain key {id} does not unwrap under this root key"
            ))
        })
    }

    fn seal(&self, label: &str, secret: &[u8]) -> Result<Vec<u8>, KmsError> {
        wrap::wrap_bytes(&self.0, &Self::seal_binding(label), secret)
            .map_err(KmsError::internal_crypto("seal under the root key"))
    }

    fn unseal(&self, label: &str, sealed: &[u8]) -> Result<Secret, KmsError> {
        wrap::unwrap_bytes(&self.0, &Self::seal_binding(label), sealed)
            .map_err(|_| KmsError::Internal(format!("{label} does not unseal under this root key")))
    }
}
