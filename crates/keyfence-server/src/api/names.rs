//! The AWS KMS wire names of keyfence's enums (as in the AWS KMS service
//! model), one table per enum, read both ways. The core and the crypto layer
//! know only the enums; these names exist on the wire and nowhere else.

use keyfence_core::model::{ExpirationModel, MultiRegionKeyType, RotationType};
use keyfence_core::{EncryptionAlgorithm, KeySpec, KeyState, KeyUsage, Origin};
use keyfence_crypto::asym::{
    self, KeyAgreementAlgorithm, MacAlgorithm, MessageType, SigningAlgorithm, WrappingAlgorithm,
};

/// An enum with AWS wire names: one table, read both ways.
pub trait AwsName: Copy + PartialEq + 'static {
    /// Every value with its wire name.
    const NAMES: &'static [(Self, &'static str)];

    /// The wire name.
    fn aws_name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(v, _)| *v == self)
            .map(|(_, n)| *n)
            .expect("every value has a wire name")
    }

    /// The value a wire name names; `None` for anything else.
    fn from_aws_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(v, _)| *v)
    }
}

/// The wire names of a list of values.
pub fn aws_names<T: AwsName>(values: impl IntoIterator<Item = T>) -> Vec<&'static str> {
    values.into_iter().map(AwsName::aws_name).collect()
}

impl AwsName for asym::KeySpec {
    const NAMES: &'static [(Self, &'static str)] = {
        use asym::KeySpec::*;
        &[
            (Rsa2048, "RSA_2048"),
            (Rsa3072, "RSA_3072"),
            (Rsa4096, "RSA_4096"),
            (EccNistP256, "ECC_NIST_P256"),
            (EccNistP384, "ECC_NIST_P384"),
            (EccNistP521, "ECC_NIST_P521"),
            (EccSecgP256k1, "ECC_SECG_P256K1"),
            (EccNistEdwards25519, "ECC_NIST_EDWARDS25519"),
            (Hmac224, "HMAC_224"),
            (Hmac256, "HMAC_256"),
            (Hmac384, "HMAC_384"),
            (Hmac512, "HMAC_512"),
            (MlDsa44, "ML_DSA_44"),
            (MlDsa65, "ML_DSA_65"),
            (MlDsa87, "ML_DSA_87"),
            (MlKem512, "ML_KEM_512"),
            (MlKem768, "ML_KEM_768"),
            (MlKem1024, "ML_KEM_1024"),
        ]
    };
}

/// The name of the symmetric key spec and of its encryption algorithm.
pub const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

impl AwsName for KeySpec {
    const NAMES: &'static [(Self, &'static str)] = {
        use asym::KeySpec::*;
        use KeySpec::Asymmetric as A;
        &[
            (KeySpec::SymmetricDefault, SYMMETRIC_DEFAULT),
            (A(Rsa2048), "RSA_2048"),
            (A(Rsa3072), "RSA_3072"),
            (A(Rsa4096), "RSA_4096"),
            (A(EccNistP256), "ECC_NIST_P256"),
            (A(EccNistP384), "ECC_NIST_P384"),
            (A(EccNistP521), "ECC_NIST_P521"),
            (A(EccSecgP256k1), "ECC_SECG_P256K1"),
            (A(EccNistEdwards25519), "ECC_NIST_EDWARDS25519"),
            (A(Hmac224), "HMAC_224"),
            (A(Hmac256), "HMAC_256"),
            (A(Hmac384), "HMAC_384"),
            (A(Hmac512), "HMAC_512"),
            (A(MlDsa44), "ML_DSA_44"),
            (A(MlDsa65), "ML_DSA_65"),
            (A(MlDsa87), "ML_DSA_87"),
            (A(MlKem512), "ML_KEM_512"),
            (A(MlKem768), "ML_KEM_768"),
            (A(MlKem1024), "ML_KEM_1024"),
        ]
    };
}

impl AwsName for KeyUsage {
    const NAMES: &'static [(Self, &'static str)] = &[
        (KeyUsage::SignVerify, "SIGN_VERIFY"),
        (KeyUsage::EncryptDecrypt, "ENCRYPT_DECRYPT"),
        (KeyUsage::GenerateVerifyMac, "GENERATE_VERIFY_MAC"),
        (KeyUsage::KeyAgreement, "KEY_AGREEMENT"),
        (KeyUsage::EncapsulateDecapsulate, "ENCAPSULATE_DECAPSULATE"),
    ];
}

impl AwsName for KeyState {
    const NAMES: &'static [(Self, &'static str)] = &[
        (KeyState::Enabled, "Enabled"),
        (KeyState::Disabled, "Disabled"),
        (KeyState::PendingDeletion, "PendingDeletion"),
        (KeyState::PendingImport, "PendingImport"),
    ];
}

impl AwsName for Origin {
    const NAMES: &'static [(Self, &'static str)] =
        &[(Origin::AwsKms, "AWS_KMS"), (Origin::External, "EXTERNAL")];
}

impl AwsName for ExpirationModel {
    const NAMES: &'static [(Self, &'static str)] = &[
        (ExpirationModel::Expires, "KEY_MATERIAL_EXPIRES"),
        (
            ExpirationModel::DoesNotExpire,
            "KEY_MATERIAL_DOES_NOT_EXPIRE",
        ),
    ];
}

impl AwsName for MultiRegionKeyType {
    const NAMES: &'static [(Self, &'static str)] = &[
        (MultiRegionKeyType::Primary, "PRIMARY"),
        (MultiRegionKeyType::Replica, "REPLICA"),
    ];
}

impl AwsName for RotationType {
    const NAMES: &'static [(Self, &'static str)] = &[
        (RotationType::Automatic, "AUTOMATIC"),
        (RotationType::OnDemand, "ON_DEMAND"),
    ];
}

impl AwsName for SigningAlgorithm {
    const NAMES: &'static [(Self, &'static str)] = {
        use SigningAlgorithm::*;
        &[
            (RsassaPssSha256, "RSASSA_PSS_SHA_256"),
            (RsassaPssSha384, "RSASSA_PSS_SHA_384"),
            (RsassaPssSha512, "RSASSA_PSS_SHA_512"),
            (RsassaPkcs1V15Sha256, "RSASSA_PKCS1_V1_5_SHA_256"),
            (RsassaPkcs1V15Sha384, "RSASSA_PKCS1_V1_5_SHA_384"),
            (RsassaPkcs1V15Sha512, "RSASSA_PKCS1_V1_5_SHA_512"),
            (EcdsaSha256, "ECDSA_SHA_256"),
            (EcdsaSha384, "ECDSA_SHA_384"),
            (EcdsaSha512, "ECDSA_SHA_512"),
            (Ed25519Sha512, "ED25519_SHA_512"),
            (Ed25519PhSha512, "ED25519_PH_SHA_512"),
            (MlDsaShake256, "ML_DSA_SHAKE_256"),
        ]
    };
}

impl AwsName for MessageType {
    const NAMES: &'static [(Self, &'static str)] = &[
        (MessageType::Raw, "RAW"),
        (MessageType::Digest, "DIGEST"),
        (MessageType::ExternalMu, "EXTERNAL_MU"),
    ];
}

impl AwsName for EncryptionAlgorithm {
    const NAMES: &'static [(Self, &'static str)] = &[
        (EncryptionAlgorithm::SymmetricDefault, SYMMETRIC_DEFAULT),
        (
            EncryptionAlgorithm::Rsa(asym::EncryptionAlgorithm::RsaesOaepSha1),
            "RSAES_OAEP_SHA_1",
        ),
        (
            EncryptionAlgorithm::Rsa(asym::EncryptionAlgorithm::RsaesOaepSha256),
            "RSAES_OAEP_SHA_256",
        ),
    ];
}

impl AwsName for MacAlgorithm {
    const NAMES: &'static [(Self, &'static str)] = &[
        (MacAlgorithm::HmacSha224, "HMAC_SHA_224"),
        (MacAlgorithm::HmacSha256, "HMAC_SHA_256"),
        (MacAlgorithm::HmacSha384, "HMAC_SHA_384"),
        (MacAlgorithm::HmacSha512, "HMAC_SHA_512"),
    ];
}

impl AwsName for KeyAgreementAlgorithm {
    const NAMES: &'static [(Self, &'static str)] = &[(KeyAgreementAlgorithm::Ecdh, "ECDH")];
}

/// The one encapsulation algorithm (AWS `KeyEncapsulationAlgorithmSpec`).
pub const ML_KEM: &str = "ML_KEM";

impl AwsName for WrappingAlgorithm {
    const NAMES: &'static [(Self, &'static str)] = &[
        (WrappingAlgorithm::RsaesOaepSha1, "RSAES_OAEP_SHA_1"),
        (WrappingAlgorithm::RsaesOaepSha256, "RSAES_OAEP_SHA_256"),
        (
            WrappingAlgorithm::RsaAesKeyWrapSha1,
            "RSA_AES_KEY_WRAP_SHA_1",
        ),
        (
            WrappingAlgorithm::RsaAesKeyWrapSha256,
            "RSA_AES_KEY_WRAP_SHA_256",
        ),
    ];
}

/// keyfence's post-quantum wrapping key spec (not in AWS's enum): an X-Wing key.
pub const PQ_WRAPPING_KEY_SPEC: &str = "X25519_ML_KEM_768";
/// keyfence's post-quantum wrapping algorithm (not in AWS's enum): X-Wing
/// encapsulation, then AES-256-KWP of the material under the shared secret.
pub const PQ_WRAPPING_ALGORITHM: &str = "XWING_AES_KEY_WRAP";

#[cfg(test)]
mod tests {
    use super::*;

    fn one_name_each<T: AwsName + std::fmt::Debug>(all: impl IntoIterator<Item = T>) {
        let all: Vec<T> = all.into_iter().collect();
        let mut names = aws_names(all.iter().copied());
        for v in &all {
            assert_eq!(T::from_aws_name(v.aws_name()), Some(*v), "{v:?}");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len(), "names are distinct");
        assert_eq!(T::NAMES.len(), all.len(), "no extra rows");
    }

    #[test]
    fn every_value_has_one_name() {
        one_name_each(asym::KeySpec::ALL.iter().copied());
        one_name_each(KeySpec::all());
        one_name_each(KeyUsage::ALL.iter().copied());
        one_name_each(SigningAlgorithm::ALL.iter().copied());
        one_name_each(MessageType::ALL.iter().copied());
        one_name_each(EncryptionAlgorithm::all());
        one_name_each(MacAlgorithm::ALL.iter().copied());
        one_name_each(KeyAgreementAlgorithm::ALL.iter().copied());
        one_name_each(WrappingAlgorithm::ALL.iter().copied());
        assert_eq!(KeySpec::from_aws_name("SM2"), None);
        assert_eq!(KeySpec::from_aws_name("rsa_2048"), None);
        assert_eq!(
            asym::KeySpec::EccSecgP256k1.aws_name(),
            KeySpec::Asymmetric(asym::KeySpec::EccSecgP256k1).aws_name()
        );
    }
}
