//! KMS grants: a principal allowed some operations on one key, optionally
//! only with an encryption context that equals, or contains, a given one.

use std::collections::BTreeMap;

use super::Request;
use crate::{KeyId, KmsError, Limit, Timestamp};

/// Most grants one key may have (AWS: 50,000).
pub const MAX_GRANTS_PER_KEY: usize = 50_000;
/// Most grants one key may have for one grantee principal (AWS: 500).
pub const MAX_GRANTS_PER_GRANTEE: usize = 500;

/// Refuses a new grant for `grantee` on the key `key_arn`, whose grants are
/// `existing`, past AWS's quotas (LimitExceededException).
pub fn check_grant_quota(existing: &[Grant], key_arn: &str, grantee: &str) -> Result<(), KmsError> {
    if existing.len() >= MAX_GRANTS_PER_KEY {
        return Err(KmsError::LimitExceeded(Limit::GrantsPerKey {
            key: key_arn.to_string(),
            max: MAX_GRANTS_PER_KEY,
        }));
    }
    if existing.iter().filter(|g| g.grantee == grantee).count() >= MAX_GRANTS_PER_GRANTEE {
        return Err(KmsError::LimitExceeded(Limit::GrantsPerGrantee {
            key: key_arn.to_string(),
            grantee: grantee.to_string(),
            max: MAX_GRANTS_PER_GRANTEE,
        }));
    }
    Ok(())
}

/// An operation a grant can allow (AWS `GrantOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantOperation {
    /// Decrypt.
    Decrypt,
    /// Encrypt.
    Encrypt,
    /// GenerateDataKey.
    GenerateDataKey,
    /// GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyWithoutPlaintext,
    /// ReEncrypt with the key as the source.
    ReEncryptFrom,
    /// ReEncrypt with the key as the destination.
    ReEncryptTo,
    /// Sign.
    Sign,
    /// Verify.
    Verify,
    /// GetPublicKey.
    GetPublicKey,
    /// CreateGrant (a grant no wider than this one).
    CreateGrant,
    /// RetireGrant.
    RetireGrant,
    /// DescribeKey.
    DescribeKey,
    /// GenerateDataKeyPair.
    GenerateDataKeyPair,
    /// GenerateDataKeyPairWithoutPlaintext.
    GenerateDataKeyPairWithoutPlaintext,
    /// GenerateMac.
    GenerateMac,
    /// VerifyMac.
    VerifyMac,
    /// DeriveSharedSecret.
    DeriveSharedSecret,
}

impl GrantOperation {
    /// Every grant operation.
    pub const ALL: [GrantOperation; 17] = [
        Self::Decrypt,
        Self::Encrypt,
        Self::GenerateDataKey,
        Self::GenerateDataKeyWithoutPlaintext,
        Self::ReEncryptFrom,
        Self::ReEncryptTo,
        Self::Sign,
        Self::Verify,
        Self::GetPublicKey,
        Self::CreateGrant,
        Self::RetireGrant,
        Self::DescribeKey,
        Self::GenerateDataKeyPair,
        Self::GenerateDataKeyPairWithoutPlaintext,
        Self::GenerateMac,
        Self::VerifyMac,
        Self::DeriveSharedSecret,
    ];

    /// The operation's name, as in policies' kms:GrantOperations.
    pub fn name(self) -> &'static str {
        &self.action()["kms:".len()..]
    }

    /// The operation named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// The IAM action the operation allows.
    pub fn action(self) -> &'static str {
        match self {
            Self::Decrypt => "kms:Decrypt",
            Self::Encrypt => "kms:Encrypt",
            Self::GenerateDataKey => "kms:GenerateDataKey",
            Self::GenerateDataKeyWithoutPlaintext => "kms:GenerateDataKeyWithoutPlaintext",
            Self::ReEncryptFrom => "kms:ReEncryptFrom",
            Self::ReEncryptTo => "kms:ReEncryptTo",
            Self::Sign => "kms:Sign",
            Self::Verify => "kms:Verify",
            Self::GetPublicKey => "kms:GetPublicKey",
            Self::CreateGrant => "kms:CreateGrant",
            Self::RetireGrant => "kms:RetireGrant",
            Self::DescribeKey => "kms:DescribeKey",
            Self::GenerateDataKeyPair => "kms:GenerateDataKeyPair",
            Self::GenerateDataKeyPairWithoutPlaintext => "kms:GenerateDataKeyPairWithoutPlaintext",
            Self::GenerateMac => "kms:GenerateMac",
            Self::VerifyMac => "kms:VerifyMac",
            Self::DeriveSharedSecret => "kms:DeriveSharedSecret",
        }
    }

    /// Whether the operation takes an encryption context (only these may be
    /// in a grant with constraints).
    pub fn takes_encryption_context(self) -> bool {
        matches!(
            self,
            Self::Decrypt
                | Self::Encrypt
                | Self::GenerateDataKey
                | Self::GenerateDataKeyWithoutPlaintext
                | Self::ReEncryptFrom
                | Self::ReEncryptTo
                | Self::GenerateDataKeyPair
                | Self::GenerateDataKeyPairWithoutPlaintext
                | Self::CreateGrant
                | Self::RetireGrant
        )
    }
}

/// A grant's encryption-context constraints (AWS `GrantConstraints`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantConstraints {
    /// The request's encryption context must equal this one.
    pub equals: Option<BTreeMap<String, String>>,
    /// The request's encryption context must contain every pair of this one.
    pub subset: Option<BTreeMap<String, String>>,
}

impl GrantConstraints {
    /// Whether there is any constraint.
    pub fn is_empty(&self) -> bool {
        self.equals.is_none() && self.subset.is_none()
    }

    /// Whether a request with encryption context `context` satisfies them.
    pub fn allow(&self, context: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let context = context.unwrap_or(&empty);
        self.equals.as_ref().is_none_or(|e| e == context)
            && self
                .subset
                .as_ref()
                .is_none_or(|s| s.iter().all(|(k, v)| context.get(k) == Some(v)))
    }

    /// Whether every request these allow is also allowed by `wider`.
    pub fn within(&self, wider: &GrantConstraints) -> bool {
        if let Some(e) = &wider.equals {
            if self.equals.as_ref() != Some(e) {
                return false;
            }
        }
        match &wider.subset {
            None => true,
            Some(s) => {
                let covers =
                    |m: &BTreeMap<String, String>| s.iter().all(|(k, v)| m.get(k) == Some(v));
                self.equals.as_ref().is_some_and(covers) || self.subset.as_ref().is_some_and(covers)
            }
        }
    }
}

/// One grant on a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant id (64 hexadecimal characters).
    pub id: String,
    /// The key.
    pub key_id: KeyId,
    /// The key's account.
    pub key_account: String,
    /// Its name, if given (CreateGrant's idempotency).
    pub name: Option<String>,
    /// The principal it allows (an IAM ARN).
    pub grantee: String,
    /// The principal that may retire it.
    pub retiring: Option<String>,
    /// What it allows.
    pub operations: Vec<GrantOperation>,
    /// Its encryption-context constraints.
    pub constraints: GrantConstraints,
    /// The principal that created it.
    pub issuer: String,
    /// When it was created.
    pub created: Timestamp,
}

impl Grant {
    /// Whether the grant allows the request.
    pub fn permits(&self, req: &Request<'_>) -> bool {
        self.grantee == req.principal.arn()
            && self
                .operations
                .iter()
                .any(|o| o.action().eq_ignore_ascii_case(req.action))
            && self
                .constraints
                .allow(req.context.keys().encryption_context())
    }
}
