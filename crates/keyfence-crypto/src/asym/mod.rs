//! Asymmetric, HMAC and KEM keys with the AWS KMS key specs and algorithms:
//! RSA, ECDSA/ECDH (NIST curves, secp256k1), Ed25519, HMAC, ML-DSA and ML-KEM,
//! all on aws-lc-rs; plus the import wrapping formats (RSA-OAEP, RSA + AES-KWP)
//! and the X-Wing hybrid KEM for post-quantum import wrapping.
//!
//! [`PrivateKey`] is the one handle: it is generated or loaded from the bytes
//! the core stores (see [`PrivateKey::to_bytes`] for the format per spec), and
//! offers exactly the operations of its spec's key usages. Public keys travel
//! as DER SubjectPublicKeyInfo, as AWS GetPublicKey returns them.
//!
//! What aws-lc cannot do is reported as [`CryptoError::Unsupported`], never
//! emulated: ML-DSA with a precomputed μ (`EXTERNAL_MU`) and ECDH on secp256k1.
//! Ed25519ph, which aws-lc has but aws-lc-rs does not wrap, is called through
//! aws-lc-sys (see `ed25519.rs`).

mod aes_kw;
mod ecc;
// Calls aws-lc's Ed25519ph C functions, which aws-lc-rs does not wrap; each
// unsafe block carries its SAFETY argument.
#[allow(unsafe_code)]
mod ed25519;
mod hmac;
mod mldsa;
mod mlkem;
mod rsa;
pub mod spec;
pub mod xwing;

use std::fmt;

use aws_lc_rs::digest::Digest;
use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm};

pub use aes_kw::{aes_kwp_unwrap, aes_kwp_wrap, unwrap_import, wrap_for_import};
pub use spec::{
    EncryptionAlgorithm, KeyAgreementAlgorithm, KeySpec, KeyUsage, MacAlgorithm, MessageType,
    SigningAlgorithm, WrappingAlgorithm,
};

use crate::{CryptoError, Secret};

/// The parsed form of a private key, one per family.
enum Inner {
    Rsa(rsa::RsaKey),
    Ec(ecc::EcKey),
    Ed(ed25519::EdKey),
    MlDsa(mldsa::MlDsaKey),
    MlKem(mlkem::MlKemKey),
    Hmac(Box<hmac::HmacKey>),
}

/// A private (or HMAC) key of one [`KeySpec`], parsed and ready to use.
///
/// `Debug` shows the spec only.
pub struct PrivateKey {
    spec: KeySpec,
    material: Secret,
    /// SubjectPublicKeyInfo DER; empty for HMAC.
    public_der: Vec<u8>,
    inner: Inner,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// A fresh key of `spec` from aws-lc's DRBG.
    pub fn generate(spec: KeySpec) -> Result<Self, CryptoError> {
        use KeySpec::*;
        let (inner, material) = match spec {
            Rsa2048 | Rsa3072 | Rsa4096 => {
                let (k, m) = rsa::RsaKey::generate(spec)?;
                (Inner::Rsa(k), m)
            }
            EccNistP256 | EccNistP384 | EccNistP521 | EccSecgP256k1 => {
                let (k, m) = ecc::EcKey::generate(spec)?;
                (Inner::Ec(k), m)
            }
            EccNistEdwards25519 => {
                let (k, m) = ed25519::EdKey::generate()?;
                (Inner::Ed(k), m)
            }
            MlDsa44 | MlDsa65 | MlDsa87 => {
                let (k, m) = mldsa::MlDsaKey::generate(spec)?;
                (Inner::MlDsa(k), m)
            }
            MlKem512 | MlKem768 | MlKem1024 => {
                let (k, m) = mlkem::MlKemKey::generate(spec)?;
                (Inner::MlKem(k), m)
            }
            Hmac224 | Hmac256 | Hmac384 | Hmac512 => {
                let (k, m) = hmac::HmacKey::generate(spec)?;
                (Inner::Hmac(Box::new(k)), m)
            }
        };
        Self::assemble(spec, material, inner)
    }

    /// Loads stored or imported material (the format [`Self::to_bytes`]
    /// describes), validating it by parsing it with aws-lc.
    pub fn from_bytes(spec: KeySpec, bytes: &[u8]) -> Result<Self, CryptoError> {
        use KeySpec::*;
        let inner = match spec {
            Rsa2048 | Rsa3072 | Rsa4096 => Inner::Rsa(rsa::RsaKey::from_pkcs8(spec, bytes)?),
            EccNistP256 | EccNistP384 | EccNistP521 | EccSecgP256k1 => {
                Inner::Ec(ecc::EcKey::from_pkcs8(spec, bytes)?)
            }
            EccNistEdwards25519 => Inner::Ed(ed25519::EdKey::from_pkcs8(bytes)?),
            MlDsa44 | MlDsa65 | MlDsa87 => Inner::MlDsa(mldsa::MlDsaKey::from_pkcs8(spec, bytes)?),
            MlKem512 | MlKem768 | MlKem1024 => {
                Inner::MlKem(mlkem::MlKemKey::from_raw(spec, bytes)?)
            }
            Hmac224 | Hmac256 | Hmac384 | Hmac512 => {
                Inner::Hmac(Box::new(hmac::HmacKey::from_raw(spec, bytes)?))
            }
        };
        Self::assemble(spec, Secret::new(bytes.to_vec()), inner)
    }

    fn assemble(spec: KeySpec, material: Secret, inner: Inner) -> Result<Self, CryptoError> {
        let public_der = match &inner {
            Inner::Rsa(k) => k.public_key_der()?,
            Inner::Ec(k) => k.public_key_der()?,
            Inner::Ed(k) => k.public_key_der()?,
            Inner::MlDsa(k) => k.public_key_der()?,
            Inner::MlKem(k) => k.public_key_der()?,
            Inner::Hmac(_) => Vec::new(),
        };
        Ok(Self {
            spec,
            material,
            public_der,
            inner,
        })
    }

    /// The key spec.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The private material to wrap and store; [`Self::from_bytes`] reloads it.
    ///
    /// - RSA, ECC (incl. secp256k1), Ed25519: PKCS#8 v1 `PrivateKeyInfo` DER, as
    ///   GenerateDataKeyPair returns it.
    /// - ML-DSA: PKCS#8 v1 DER holding the 32-byte seed.
    /// - ML-KEM: the FIPS 203 expanded decapsulation key (1632/2400/3168 bytes).
    /// - HMAC: the raw key.
    pub fn to_bytes(&self) -> &[u8] {
        self.material.expose()
    }

    /// The public key as DER SubjectPublicKeyInfo (AWS GetPublicKey), or
    /// `Incompatible` for HMAC keys, which have none.
    pub fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        if matches!(self.inner, Inner::Hmac(_)) {
            return Err(CryptoError::Incompatible("HMAC keys have no public key"));
        }
        Ok(self.public_der.clone())
    }

    /// Signs `message` (or the digest or μ it is, per `message_type`).
    /// Signatures are as AWS returns them: ECDSA DER-encoded, RSA the size of
    /// the modulus, Ed25519 64 bytes, ML-DSA per FIPS 204.
    ///
    /// The algorithm must be one of the spec's, the message type one the
    /// algorithm allows (`Incompatible` otherwise), and a digest exactly as long
    /// as the algorithm's hash (`InvalidLength`). Message size limits are the
    /// caller's.
    pub fn sign(
        &self,
        alg: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        alg.check(self.spec, message_type, message)?;
        match &self.inner {
            Inner::Rsa(k) => k.sign(alg, message_type, message),
            Inner::Ec(k) => k.sign(alg, message_type, message),
            Inner::Ed(k) => k.sign(alg, message),
            Inner::MlDsa(k) => k.sign(message_type, message),
            Inner::MlKem(_) | Inner::Hmac(_) => {
                Err(CryptoError::Incompatible("key spec cannot sign"))
            }
        }
    }

    /// Verifies a signature made by this key: `Ok(false)` for a signature that
    /// does not verify, `Err` for a request that is malformed in itself.
    pub fn verify(
        &self,
        alg: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError> {
        verify_with_public_key(
            self.spec,
            &self.public_der,
            alg,
            message_type,
            message,
            signature,
        )
    }

    /// RSAES-OAEP encryption with the public half.
    pub fn encrypt(
        &self,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        encrypt_with_public_key(self.spec, &self.public_der, alg, plaintext)
    }

    /// RSAES-OAEP decryption. A ciphertext for another key, another algorithm
    /// or tampered is `AuthenticationFailed`.
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Secret, CryptoError> {
        if !self.spec.encryption_algorithms().contains(&alg) {
            return Err(CryptoError::Incompatible(
                "encryption algorithm not valid for this key spec",
            ));
        }
        rsa::decrypt(self.material.expose(), alg, ciphertext)
    }

    /// The HMAC tag of `message`.
    pub fn mac(&self, alg: MacAlgorithm, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::Hmac(k) => k.mac(alg, message),
            _ => Err(CryptoError::Incompatible("not an HMAC key")),
        }
    }

    /// Whether `tag` is the HMAC of `message`, compared in constant time.
    pub fn verify_mac(
        &self,
        alg: MacAlgorithm,
        message: &[u8],
        tag: &[u8],
    ) -> Result<bool, CryptoError> {
        match &self.inner {
            Inner::Hmac(k) => k.verify(alg, message, tag),
            _ => Err(CryptoError::Incompatible("not an HMAC key")),
        }
    }

    /// ML-KEM encapsulation to this key's public half: (ciphertext, shared secret).
    pub fn encapsulate(&self) -> Result<(Vec<u8>, Secret), CryptoError> {
        match &self.inner {
            Inner::MlKem(k) => k.encapsulate(),
            _ => Err(CryptoError::Incompatible("not an ML-KEM key")),
        }
    }

    /// ML-KEM decapsulation. A tampered ciphertext of the right length gives
    /// an unrelated secret (implicit rejection); a wrong length is an error.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Secret, CryptoError> {
        match &self.inner {
            Inner::MlKem(k) => k.decapsulate(ciphertext),
            _ => Err(CryptoError::Incompatible("not an ML-KEM key")),
        }
    }

    /// ECDH with a peer's DER SubjectPublicKeyInfo on the same curve; the raw
    /// shared secret, as AWS DeriveSharedSecret returns it.
    pub fn derive_shared_secret(&self, peer_spki_der: &[u8]) -> Result<Secret, CryptoError> {
        match &self.inner {
            Inner::Ec(_) => {
                ecc::derive_shared_secret(self.spec, self.material.expose(), peer_spki_der)
            }
            _ => Err(CryptoError::Incompatible("key agreement needs an ECC key")),
        }
    }
}

/// Verifies a signature with only a public key (DER SubjectPublicKeyInfo),
/// which must be of `spec`. `Ok(false)` for a signature that does not verify;
/// `Err` for a malformed public key, an algorithm or message type the spec
/// does not allow, a digest of the wrong length, or an unsupported mode.
pub fn verify_with_public_key(
    spec: KeySpec,
    spki_der: &[u8],
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, CryptoError> {
    alg.check(spec, message_type, message)?;
    use KeySpec::*;
    match spec {
        Rsa2048 | Rsa3072 | Rsa4096 => {
            rsa::verify(spec, spki_der, alg, message_type, message, signature)
        }
        EccNistP256 | EccNistP384 | EccNistP521 | EccSecgP256k1 => {
            ecc::verify(spec, spki_der, alg, message_type, message, signature)
        }
        EccNistEdwards25519 => ed25519::verify(spki_der, alg, message_type, message, signature),
        MlDsa44 | MlDsa65 | MlDsa87 => {
            mldsa::verify(spec, spki_der, message_type, message, signature)
        }
        _ => Err(CryptoError::Incompatible("key spec cannot sign")),
    }
}

/// RSAES-OAEP encryption with an RSA public key (DER SubjectPublicKeyInfo) of `spec`.
pub fn encrypt_with_public_key(
    spec: KeySpec,
    spki_der: &[u8],
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if !spec.encryption_algorithms().contains(&alg) {
        return Err(CryptoError::Incompatible(
            "encryption algorithm not valid for this key spec",
        ));
    }
    rsa::check_public_key(spec, spki_der)?;
    rsa::encrypt(spki_der, alg, plaintext)
}

/// ML-KEM encapsulation with only a public key (DER SubjectPublicKeyInfo) of
/// `spec`: (ciphertext, shared secret).
pub fn encapsulate_with_public_key(
    spec: KeySpec,
    spki_der: &[u8],
) -> Result<(Vec<u8>, Secret), CryptoError> {
    mlkem::encapsulate_with_public_key(spec, spki_der)
}

/// A key pair for GenerateDataKeyPair: (PKCS#8 v1 private key DER,
/// SubjectPublicKeyInfo DER). Only the AWS `DataKeyPairSpec` specs.
pub fn generate_data_key_pair(spec: KeySpec) -> Result<(Secret, Vec<u8>), CryptoError> {
    if !spec.is_data_key_pair_spec() {
        return Err(CryptoError::Incompatible("not a data key pair spec"));
    }
    let key = PrivateKey::generate(spec)?;
    Ok((key.material, key.public_der))
}

/// The message as the signer consumes it.
enum SigningInput<'a> {
    Raw(&'a [u8]),
    Digest(Digest),
}

/// Turns a checked RSA/ECDSA message into raw bytes or an imported digest.
fn signing_input<'a>(
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &'a [u8],
) -> Result<SigningInput<'a>, CryptoError> {
    match (message_type, alg.hash()) {
        (MessageType::Raw, _) => Ok(SigningInput::Raw(message)),
        (MessageType::Digest, Some(hash)) => Digest::import_less_safe(message, hash.algorithm())
            .map(SigningInput::Digest)
            .map_err(|_| CryptoError::InvalidLength {
                what: "message digest",
                expected: hash.algorithm().output_len,
                got: message.len(),
            }),
        _ => Err(CryptoError::Incompatible(
            "message type not valid for this signing algorithm",
        )),
    }
}

/// Parses the public key (malformed → `Err`) and verifies (bad signature → `false`).
fn parsed_verify(
    verification: &'static dyn VerificationAlgorithm,
    spki: &[u8],
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, CryptoError> {
    let key = UnparsedPublicKey::new(verification, spki)
        .parse()
        .map_err(|_| CryptoError::Malformed {
            what: "public key",
            reason: "not a valid SubjectPublicKeyInfo for this key spec",
        })?;
    Ok(match signing_input(alg, message_type, message)? {
        SigningInput::Raw(m) => key.verify_sig(m, signature).is_ok(),
        SigningInput::Digest(d) => key.verify_digest_sig(&d, signature).is_ok(),
    })
}
