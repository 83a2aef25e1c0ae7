//! The enums of asymmetric, HMAC and KEM keys (those of the AWS KMS service
//! model) and the rules that tie them together.

/// Declares a fieldless enum with the list of its variants. The enums carry
/// no names: the wire names are the API's (keyfence-server `api::names`), the
/// stored names the store's (keyfence-store).
macro_rules! algorithm_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
        }

        /// The variant's Rust name (for diagnostics; not a wire or stored name).
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self, f)
            }
        }
    };
}

algorithm_enum! {
    /// The type of an asymmetric, HMAC or KEM key (AWS `KeySpec`, without
    /// `SYMMETRIC_DEFAULT` and `SM2`).
    pub enum KeySpec {
        /// RSA with a 2048-bit modulus.
        Rsa2048,
        /// RSA with a 3072-bit modulus.
        Rsa3072,
        /// RSA with a 4096-bit modulus.
        Rsa4096,
        /// NIST P-256 (secp256r1).
        EccNistP256,
        /// NIST P-384 (secp384r1).
        EccNistP384,
        /// NIST P-521 (secp521r1).
        EccNistP521,
        /// SEC secp256k1.
        EccSecgP256k1,
        /// Ed25519 (RFC 8032).
        EccNistEdwards25519,
        /// HMAC with SHA-224.
        Hmac224,
        /// HMAC with SHA-256.
        Hmac256,
        /// HMAC with SHA-384.
        Hmac384,
        /// HMAC with SHA-512.
        Hmac512,
        /// ML-DSA-44 (FIPS 204).
        MlDsa44,
        /// ML-DSA-65 (FIPS 204).
        MlDsa65,
        /// ML-DSA-87 (FIPS 204).
        MlDsa87,
        /// ML-KEM-512 (FIPS 203).
        MlKem512,
        /// ML-KEM-768 (FIPS 203).
        MlKem768,
        /// ML-KEM-1024 (FIPS 203).
        MlKem1024,
    }
}

algorithm_enum! {
    /// What a key may be used for (AWS `KeyUsageType`, plus the KEM usage).
    pub enum KeyUsage {
        /// Sign and Verify.
        SignVerify,
        /// Encrypt and Decrypt.
        EncryptDecrypt,
        /// GenerateMac and VerifyMac.
        GenerateVerifyMac,
        /// DeriveSharedSecret.
        KeyAgreement,
        /// Encapsulate and Decapsulate.
        EncapsulateDecapsulate,
    }
}

algorithm_enum! {
    /// A signature algorithm (AWS `SigningAlgorithmSpec`, without `SM2DSA`).
    pub enum SigningAlgorithm {
        /// RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt.
        RsassaPssSha256,
        /// RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt.
        RsassaPssSha384,
        /// RSASSA-PSS, SHA-512, MGF1-SHA-512, 64-byte salt.
        RsassaPssSha512,
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        RsassaPkcs1V15Sha256,
        /// RSASSA-PKCS1-v1_5 with SHA-384.
        RsassaPkcs1V15Sha384,
        /// RSASSA-PKCS1-v1_5 with SHA-512.
        RsassaPkcs1V15Sha512,
        /// ECDSA with SHA-256, DER-encoded signature.
        EcdsaSha256,
        /// ECDSA with SHA-384, DER-encoded signature.
        EcdsaSha384,
        /// ECDSA with SHA-512, DER-encoded signature.
        EcdsaSha512,
        /// Pure Ed25519 (RFC 8032).
        Ed25519Sha512,
        /// Ed25519ph (RFC 8032), MessageType DIGEST only: AWS still applies the
        /// SHA-512 prehash to the 64-byte digest it is given.
        Ed25519PhSha512,
        /// ML-DSA (FIPS 204), empty context.
        MlDsaShake256,
    }
}

algorithm_enum! {
    /// How the `Message` of Sign and Verify is to be read (AWS `MessageType`).
    pub enum MessageType {
        /// The message itself; the algorithm hashes it.
        Raw,
        /// A digest made with the algorithm's hash; its length must match.
        Digest,
        /// The 64-byte ML-DSA message representative μ (FIPS 204, section 6.2).
        ExternalMu,
    }
}

algorithm_enum! {
    /// An asymmetric encryption algorithm (AWS `EncryptionAlgorithmSpec`,
    /// RSA only).
    pub enum EncryptionAlgorithm {
        /// RSAES-OAEP with SHA-1 and MGF1-SHA-1.
        RsaesOaepSha1,
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
        RsaesOaepSha256,
    }
}

algorithm_enum! {
    /// A MAC algorithm (AWS `MacAlgorithmSpec`).
    pub enum MacAlgorithm {
        /// HMAC-SHA-224.
        HmacSha224,
        /// HMAC-SHA-256.
        HmacSha256,
        /// HMAC-SHA-384.
        HmacSha384,
        /// HMAC-SHA-512.
        HmacSha512,
    }
}

algorithm_enum! {
    /// A key agreement algorithm (AWS `KeyAgreementAlgorithmSpec`).
    pub enum KeyAgreementAlgorithm {
        /// Cofactor ECDH; the raw shared secret (the x-coordinate) is returned.
        Ecdh,
    }
}

algorithm_enum! {
    /// How imported key material is wrapped (AWS `AlgorithmSpec` of
    /// GetParametersForImport, without `RSAES_PKCS1_V1_5` and `SM2PKE`).
    pub enum WrappingAlgorithm {
        /// RSA-OAEP (SHA-1, MGF1-SHA-1) of the material itself.
        RsaesOaepSha1,
        /// RSA-OAEP (SHA-256, MGF1-SHA-256) of the material itself.
        RsaesOaepSha256,
        /// RSA-OAEP (SHA-1) of a fresh AES-256 key, then AES-KWP (RFC 5649) of the material.
        RsaAesKeyWrapSha1,
        /// RSA-OAEP (SHA-256) of a fresh AES-256 key, then AES-KWP (RFC 5649) of the material.
        RsaAesKeyWrapSha256,
    }
}

/// The hash a signing algorithm applies, as far as MessageType DIGEST cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub(crate) fn algorithm(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            Hash::Sha256 => &aws_lc_rs::digest::SHA256,
            Hash::Sha384 => &aws_lc_rs::digest::SHA384,
            Hash::Sha512 => &aws_lc_rs::digest::SHA512,
        }
    }
}

impl KeySpec {
    /// The key usages AWS KMS allows for this spec.
    pub fn key_usages(&self) -> &'static [KeyUsage] {
        use KeySpec::*;
        match self {
            Rsa2048 | Rsa3072 | Rsa4096 => &[KeyUsage::SignVerify, KeyUsage::EncryptDecrypt],
            EccNistP256 | EccNistP384 | EccNistP521 => {
                &[KeyUsage::SignVerify, KeyUsage::KeyAgreement]
            }
            EccSecgP256k1 | EccNistEdwards25519 | MlDsa44 | MlDsa65 | MlDsa87 => {
                &[KeyUsage::SignVerify]
            }
            Hmac224 | Hmac256 | Hmac384 | Hmac512 => &[KeyUsage::GenerateVerifyMac],
            MlKem512 | MlKem768 | MlKem1024 => &[KeyUsage::EncapsulateDecapsulate],
        }
    }

    /// The signing algorithms AWS KMS lists for this spec (empty if it cannot sign).
    pub fn signing_algorithms(&self) -> &'static [SigningAlgorithm] {
        use KeySpec::*;
        use SigningAlgorithm as S;
        match self {
            Rsa2048 | Rsa3072 | Rsa4096 => &[
                S::RsassaPssSha256,
                S::RsassaPssSha384,
                S::RsassaPssSha512,
                S::RsassaPkcs1V15Sha256,
                S::RsassaPkcs1V15Sha384,
                S::RsassaPkcs1V15Sha512,
            ],
            EccNistP256 | EccSecgP256k1 => &[S::EcdsaSha256],
            EccNistP384 => &[S::EcdsaSha384],
            EccNistP521 => &[S::EcdsaSha512],
            EccNistEdwards25519 => &[S::Ed25519Sha512, S::Ed25519PhSha512],
            MlDsa44 | MlDsa65 | MlDsa87 => &[S::MlDsaShake256],
            _ => &[],
        }
    }

    /// The encryption algorithms AWS KMS lists for this spec (RSA only).
    pub fn encryption_algorithms(&self) -> &'static [EncryptionAlgorithm] {
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[
                EncryptionAlgorithm::RsaesOaepSha1,
                EncryptionAlgorithm::RsaesOaepSha256,
            ],
            _ => &[],
        }
    }

    /// The MAC algorithm of an HMAC spec (one each).
    pub fn mac_algorithms(&self) -> &'static [MacAlgorithm] {
        match self {
            KeySpec::Hmac224 => &[MacAlgorithm::HmacSha224],
            KeySpec::Hmac256 => &[MacAlgorithm::HmacSha256],
            KeySpec::Hmac384 => &[MacAlgorithm::HmacSha384],
            KeySpec::Hmac512 => &[MacAlgorithm::HmacSha512],
            _ => &[],
        }
    }

    /// The key agreement algorithms AWS KMS lists for this spec (NIST curves only).
    pub fn key_agreement_algorithms(&self) -> &'static [KeyAgreementAlgorithm] {
        match self {
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
                &[KeyAgreementAlgorithm::Ecdh]
            }
            _ => &[],
        }
    }

    /// True for the specs GenerateDataKeyPair accepts (AWS `DataKeyPairSpec`
    /// without `SM2`).
    pub fn is_data_key_pair_spec(&self) -> bool {
        use KeySpec::*;
        matches!(
            self,
            Rsa2048
                | Rsa3072
                | Rsa4096
                | EccNistP256
                | EccNistP384
                | EccNistP521
                | EccSecgP256k1
                | EccNistEdwards25519
        )
    }

    /// True for the specs AWS accepts as an import wrapping key (`WrappingKeySpec`).
    pub fn is_wrapping_key_spec(&self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }
}

impl SigningAlgorithm {
    /// The message types AWS KMS accepts with this algorithm.
    pub fn message_types(&self) -> &'static [MessageType] {
        match self {
            SigningAlgorithm::Ed25519Sha512 => &[MessageType::Raw],
            SigningAlgorithm::Ed25519PhSha512 => &[MessageType::Digest],
            SigningAlgorithm::MlDsaShake256 => &[MessageType::Raw, MessageType::ExternalMu],
            _ => &[MessageType::Raw, MessageType::Digest],
        }
    }

    /// The exact length a `Message` of type `message_type` must have, or
    /// `None` when any length goes (RAW).
    pub fn message_len(&self, message_type: MessageType) -> Option<usize> {
        match message_type {
            MessageType::Raw => None,
            MessageType::Digest => Some(self.hash().map_or(64, |h| h.algorithm().output_len)),
            MessageType::ExternalMu => Some(64),
        }
    }

    /// The hash of an RSA or ECDSA algorithm.
    pub(crate) fn hash(&self) -> Option<Hash> {
        use SigningAlgorithm::*;
        match self {
            RsassaPssSha256 | RsassaPkcs1V15Sha256 | EcdsaSha256 => Some(Hash::Sha256),
            RsassaPssSha384 | RsassaPkcs1V15Sha384 | EcdsaSha384 => Some(Hash::Sha384),
            RsassaPssSha512 | RsassaPkcs1V15Sha512 | EcdsaSha512 => Some(Hash::Sha512),
            Ed25519Sha512 | Ed25519PhSha512 | MlDsaShake256 => None,
        }
    }

    /// Checks that `self` is allowed for `spec`, `message_type` for `self`, and
    /// that a DIGEST or EXTERNAL_MU message has the required length.
    pub fn check(
        &self,
        spec: KeySpec,
        message_type: MessageType,
        message: &[u8],
    ) -> Result<(), crate::CryptoError> {
        if !spec.signing_algorithms().contains(self) {
            return Err(crate::CryptoError::Incompatible(
                "signing algorithm not valid for this key spec",
            ));
        }
        if !self.message_types().contains(&message_type) {
            return Err(crate::CryptoError::Incompatible(
                "message type not valid for this signing algorithm",
            ));
        }
        match self.message_len(message_type) {
            Some(expected) if expected != message.len() => Err(crate::CryptoError::InvalidLength {
                what: "message digest",
                expected,
                got: message.len(),
            }),
            _ => Ok(()),
        }
    }
}

impl MacAlgorithm {
    /// The tag length in bytes.
    pub fn tag_len(&self) -> usize {
        self.algorithm().digest_algorithm().output_len
    }

    pub(crate) fn algorithm(&self) -> aws_lc_rs::hmac::Algorithm {
        match self {
            MacAlgorithm::HmacSha224 => aws_lc_rs::hmac::HMAC_SHA224,
            MacAlgorithm::HmacSha256 => aws_lc_rs::hmac::HMAC_SHA256,
            MacAlgorithm::HmacSha384 => aws_lc_rs::hmac::HMAC_SHA384,
            MacAlgorithm::HmacSha512 => aws_lc_rs::hmac::HMAC_SHA512,
        }
    }
}

impl EncryptionAlgorithm {
    pub(crate) fn oaep(&self) -> &'static aws_lc_rs::rsa::OaepAlgorithm {
        match self {
            EncryptionAlgorithm::RsaesOaepSha1 => &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
            EncryptionAlgorithm::RsaesOaepSha256 => &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_has_a_usage_and_algorithms_for_it() {
        for s in KeySpec::ALL {
            assert!(!s.key_usages().is_empty());
            for u in s.key_usages() {
                let has = match u {
                    KeyUsage::SignVerify => !s.signing_algorithms().is_empty(),
                    KeyUsage::EncryptDecrypt => !s.encryption_algorithms().is_empty(),
                    KeyUsage::GenerateVerifyMac => !s.mac_algorithms().is_empty(),
                    KeyUsage::KeyAgreement => !s.key_agreement_algorithms().is_empty(),
                    KeyUsage::EncapsulateDecapsulate => true,
                };
                assert!(has, "{s:?} {u:?}");
            }
        }
    }

    #[test]
    fn digest_lengths() {
        assert_eq!(
            SigningAlgorithm::EcdsaSha384.message_len(MessageType::Digest),
            Some(48)
        );
        assert_eq!(
            SigningAlgorithm::Ed25519PhSha512.message_len(MessageType::Digest),
            Some(64)
        );
        assert_eq!(
            SigningAlgorithm::MlDsaShake256.message_len(MessageType::ExternalMu),
            Some(64)
        );
        assert_eq!(
            SigningAlgorithm::RsassaPssSha256.message_len(MessageType::Raw),
            None
        );
        assert_eq!(MacAlgorithm::HmacSha224.tag_len(), 28);
    }
}
