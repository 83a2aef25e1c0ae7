//! AWS error shapes: `{"__type": "...", "message": "..."}` for JSON, an
//! `ErrorResponse` document for the query protocol.

use keyfence_core::fence::FenceId;
use keyfence_core::{AliasNameProblem, KmsError, TagProblem};

use super::messages;
use super::names::AwsName;
use crate::sigv4::SigV4Error;

/// Longest error message sent (characters); longer ones are cut.
pub const MAX_MESSAGE_CHARS: usize = 640;

/// An error as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The AWS error code (`__type`).
    pub code: &'static str,
    /// Human-readable message; never contains secrets.
    pub message: String,
    /// The fence whose key this node is outside of, when the request was
    /// refused as fenced elsewhere ([`KmsError::FencedElsewhere`]): the
    /// forwarder's cue, carried typed. Never sent to the client.
    pub fence: Option<FenceId>,
}

impl ApiError {
    /// A 400 error with `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code,
            message: message.into(),
            fence: None,
        }
    }

    /// A body that is not valid JSON for the operation.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    /// A parameter that fails validation.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    /// The same error as STS (the query protocol) names it.
    pub fn for_query_protocol(self) -> Self {
        let (status, code) = match self.code {
            "UnrecognizedClientException" => (403, "InvalidClientTokenId"),
            "InvalidSignatureException" => (403, "SignatureDoesNotMatch"),
            "IncompleteSignatureException" => (400, "IncompleteSignature"),
            "MissingAuthenticationTokenException" => (403, "MissingAuthenticationToken"),
            _ => return self,
        };
        Self {
            status,
            code,
            ..self
        }
    }

    /// The message as sent: at most [`MAX_MESSAGE_CHARS`] characters, so no
    /// message repeats more than a short prefix of client input.
    pub fn sent_message(&self) -> std::borrow::Cow<'_, str> {
        match self.message.char_indices().nth(MAX_MESSAGE_CHARS) {
            None => self.message.as_str().into(),
            Some((cut, _)) => format!("{}...", &self.message[..cut]).into(),
        }
    }

    /// The JSON body of this error.
    /// An error AWS sends without a message (InvalidCiphertextException,
    /// KMSInvalidSignatureException, KMSInvalidMacException) has no `message` member.
    pub fn json_body(&self) -> Vec<u8> {
        let body = if self.message.is_empty() {
            serde_json::json!({"__type": self.code})
        } else {
            serde_json::json!({"__type": self.code, "message": self.sent_message()})
        };
        serde_json::to_vec(&body).expect("json of strings")
    }

    /// The query-protocol (XML) body of this error.
    pub fn xml_body(&self, request_id: &str) -> Vec<u8> {
        let kind = if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            self.code,
            xml_escape(&self.sent_message())
        )
        .into_bytes()
    }
}

/// Escapes text for an XML element.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        let (code, message) = match e {
            KmsError::NotFound(missing) => ("NotFoundException", messages::missing(&missing)),
            KmsError::Disabled { key } => ("DisabledException", messages::disabled(&key)),
            KmsError::InvalidState { key, refusal } => (
                "KMSInvalidStateException",
                messages::invalid_state(&key, refusal),
            ),
            // AWS sends these three with no message, so as not to help an attacker.
            KmsError::InvalidCiphertext(_) => ("InvalidCiphertextException", String::new()),
            KmsError::IncorrectKey => ("IncorrectKeyException", messages::INCORRECT_KEY.into()),
            KmsError::Validation(invalid) => ("ValidationException", messages::invalid(invalid)),
            KmsError::DataKeyNeedsSymmetric { key } => (
                "InvalidKeyUsageException",
                messages::data_key_needs_symmetric(&key),
            ),
            KmsError::AlreadyExists { alias } => {
                ("AlreadyExistsException", messages::alias_exists(&alias))
            }
            // A name without the `alias/` prefix fails validation, as AWS answers it.
            KmsError::InvalidAliasName {
                problem: AliasNameProblem::Prefix,
                ..
            } => ("ValidationException", messages::ALIAS_PREFIX.into()),
            KmsError::InvalidAliasName { name, problem } => (
                "InvalidAliasNameException",
                messages::invalid_alias_name(&name, problem),
            ),
            KmsError::InvalidMarker => ("InvalidMarkerException", messages::INVALID_MARKER.into()),
            KmsError::LimitExceeded(limit) => {
                ("LimitExceededException", messages::limit_exceeded(&limit))
            }
            // A tag key or value of the wrong length fails the member's
            // constraint (ValidationException); the other tag faults are TagException.
            KmsError::InvalidTag(
                problem @ (TagProblem::KeyLength { .. } | TagProblem::ValueLength { .. }),
            ) => ("ValidationException", messages::invalid_tag(&problem)),
            KmsError::InvalidTag(problem) => ("TagException", messages::invalid_tag(&problem)),
            KmsError::Tag(message) => ("TagException", message),
            KmsError::UnsupportedOperation(unsupported) => (
                "UnsupportedOperationException",
                messages::unsupported(&unsupported),
            ),
            KmsError::RegionNotServed { region } => (
                "UnsupportedOperationException",
                messages::region_not_served(&region),
            ),
            KmsError::MultiRegion(refusal) => messages::multi_region(&refusal),
            KmsError::Refused { operation, detail } => {
                return messages::refused(operation, &detail)
                    .unwrap_or_else(|| internal(&format!("{operation:?} refused: {detail}")));
            }
            KmsError::InvalidSignature => ("KMSInvalidSignatureException", String::new()),
            KmsError::InvalidMac => ("KMSInvalidMacException", String::new()),
            KmsError::InvalidImportToken => (
                "InvalidImportTokenException",
                messages::INVALID_IMPORT_TOKEN.into(),
            ),
            KmsError::ExpiredImportToken => (
                "ExpiredImportTokenException",
                messages::EXPIRED_IMPORT_TOKEN.into(),
            ),
            KmsError::IncorrectKeyMaterial => (
                "IncorrectKeyMaterialException",
                messages::INCORRECT_KEY_MATERIAL.into(),
            ),
            KmsError::OutOfBounds { member, bound } => {
                return messages::out_of_bounds(member, bound);
            }
            KmsError::WrongKeyUsage { key, usage, needed } => (
                "InvalidKeyUsageException",
                messages::wrong_key_usage(&key, usage, needed),
            ),
            KmsError::IncompatibleAlgorithm {
                key,
                spec,
                algorithm,
            } => (
                "InvalidKeyUsageException",
                messages::incompatible_algorithm(&key, spec, algorithm),
            ),
            KmsError::UsageNotForSpec { usage, spec } => {
                return messages::usage_not_for_spec(usage.aws_name(), spec);
            }
            KmsError::SpecCannot {
                key,
                spec,
                operation,
            } => (
                "UnsupportedOperationException",
                messages::spec_cannot(&key, spec, operation),
            ),
            KmsError::PlaintextTooLong {
                algorithm, spec, ..
            } => (
                "ValidationException",
                messages::plaintext_too_long(algorithm, spec),
            ),
            KmsError::MaterialNotOfSpec { spec, detail } => (
                "IncorrectKeyMaterialException",
                messages::material_not_of_spec(spec, &detail),
            ),
            KmsError::FencedElsewhere { key, fence, policy } => {
                return Self {
                    fence: Some(fence),
                    ..messages::fenced_elsewhere(&key, &fence.to_string(), &policy)
                };
            }
            KmsError::UnknownFence { fence, policy } => {
                return messages::unknown_fence(&fence.to_string(), &policy);
            }
            KmsError::StoreUnavailable { detail } => {
                return dependency_timeout(&detail);
            }
            KmsError::Contended { key, attempts } => {
                return dependency_timeout(&messages::contended(&key, attempts));
            }
            KmsError::DependencyTimeout(detail) => return dependency_timeout(&detail),
            KmsError::Internal(detail) => return internal(&detail),
        };
        Self::new(code, message)
    }
}

/// A DependencyTimeoutException: AWS answers it with 500, and clients retry it.
/// The detail (which server, which error) goes to the node's log only.
fn dependency_timeout(detail: &str) -> ApiError {
    tracing::warn!(detail = %detail, "key store unavailable");
    ApiError {
        status: 500,
        code: "DependencyTimeoutException",
        message: messages::DEPENDENCY_TIMEOUT.into(),
        fence: None,
    }
}

/// A KMSInternalException: the detail is logged, not returned.
fn internal(detail: &str) -> ApiError {
    tracing::error!(detail = %detail, "internal error");
    ApiError {
        status: 500,
        code: "KMSInternalException",
        message: "An internal error occurred.".into(),
        fence: None,
    }
}

impl From<SigV4Error> for ApiError {
    fn from(e: SigV4Error) -> Self {
        Self::new(e.aws_code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use keyfence_core::service::MultiRegionRefusal;
    use keyfence_core::{
        AliasNameProblem, CiphertextProblem, CryptoOperation, Invalid, Limit, Missing,
        StateRefusal, TagProblem, Unsupported,
    };
    use keyfence_crypto::asym;
    use keyfence_crypto::CryptoError;

    use super::*;

    #[test]
    fn internal_errors_hide_detail() {
        let e = ApiError::from(KmsError::DependencyTimeout("store gone".into()));
        assert_eq!(
            (e.status, e.code, e.message.as_str()),
            (
                500,
                "DependencyTimeoutException",
                messages::DEPENDENCY_TIMEOUT
            )
        );
        let e = ApiError::from(KmsError::from(keyfence_core::StoreError::Unavailable(
            "PostgreSQL connection: error connecting to server 127.0.0.1:5432".into(),
        )));
        assert_eq!(e.code, "DependencyTimeoutException");
        assert!(!e.message.contains("PostgreSQL") && !e.message.contains("127.0.0.1"));
        let e = ApiError::from(KmsError::Internal("domain key 3 missing".into()));
        assert_eq!((e.status, e.code), (500, "KMSInternalException"));
        assert!(!e.message.contains("domain key"));
    }

    /// The fence of a request refused as fenced elsewhere is carried typed
    /// (the forwarder reads it there, not from the wording); no other refusal has one.
    #[test]
    fn fenced_elsewhere_carries_its_fence_typed() {
        let fence = FenceId::of_policy("region: EU").unwrap();
        let e = ApiError::from(KmsError::FencedElsewhere {
            key: "arn:k".into(),
            fence,
            policy: "region: EU".into(),
        });
        assert_eq!((e.code, e.fence), ("KeyUnavailableException", Some(fence)));
        assert!(e.message.contains(&fence.to_string()));
        let e = ApiError::from(KmsError::UnknownFence {
            fence,
            policy: "region: EU".into(),
        });
        assert_eq!(e.fence, None);
        // The same words without the typed fence are not a cue to forward.
        assert_eq!(
            ApiError::new("KeyUnavailableException", e.message).fence,
            None
        );
    }

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const ALIAS: &str = "arn:aws:kms:us-east-1:111122223333:alias/app";

    #[test]
    fn shapes() {
        let e = ApiError::from(KmsError::NotFound(Missing::Key { arn: KEY.into() }));
        let v: serde_json::Value = serde_json::from_slice(&e.json_body()).unwrap();
        assert_eq!(v["__type"], "NotFoundException");
        assert_eq!(v["message"], format!("Key '{KEY}' does not exist"));
        let xml = String::from_utf8(ApiError::validation("a<b").xml_body("rid")).unwrap();
        assert!(xml.contains("<Code>ValidationException</Code><Message>a&lt;b</Message>"));
        // The three errors AWS sends bare have no message member at all.
        for e in [
            KmsError::InvalidCiphertext(CiphertextProblem::NotForContext),
            KmsError::InvalidSignature,
            KmsError::InvalidMac,
        ] {
            let body: serde_json::Value =
                serde_json::from_slice(&ApiError::from(e).json_body()).unwrap();
            assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        }
    }

    /// Every typed refusal the core words nowhere reaches the client in its
    /// AWS shape, worded as the core worded it before (and a missing key
    /// named by its full ARN, as AWS names it).
    #[test]
    fn typed_refusals_map_to_their_aws_shape_and_message() {
        let key = || KEY.to_string();
        let cases: Vec<(KmsError, &str, String)> = vec![
            (
                KmsError::NotFound(Missing::InvalidKeyId { given: "nope".into() }),
                "NotFoundException",
                "Invalid keyId 'nope'".into(),
            ),
            (
                KmsError::NotFound(Missing::AliasNotAllowed { given: "alias/app".into() }),
                "NotFoundException",
                "Invalid keyId 'alias/app': this operation takes a key ID or key ARN, not an alias"
                    .into(),
            ),
            (
                KmsError::NotFound(Missing::Key { arn: key() }),
                "NotFoundException",
                format!("Key '{KEY}' does not exist"),
            ),
            (
                KmsError::NotFound(Missing::Alias { arn: ALIAS.into() }),
                "NotFoundException",
                format!("Alias {ALIAS} is not found."),
            ),
            (
                KmsError::Disabled { key: key() },
                "DisabledException",
                format!("{KEY} is disabled."),
            ),
            (
                KmsError::InvalidState { key: key(), refusal: StateRefusal::PendingDeletion },
                "KMSInvalidStateException",
                format!("{KEY} is pending deletion."),
            ),
            (
                KmsError::InvalidState { key: key(), refusal: StateRefusal::PendingImport },
                "KMSInvalidStateException",
                format!("{KEY} is pending import."),
            ),
            (
                KmsError::InvalidState { key: key(), refusal: StateRefusal::NotPendingDeletion },
                "KMSInvalidStateException",
                format!("{KEY} is not pending deletion."),
            ),
            (
                KmsError::InvalidState { key: key(), refusal: StateRefusal::HasKeyMaterial },
                "KMSInvalidStateException",
                format!("{KEY} already has key material"),
            ),
            (
                KmsError::InvalidCiphertext(CiphertextProblem::NotForContext),
                "InvalidCiphertextException",
                String::new(),
            ),
            (
                KmsError::InvalidCiphertext(CiphertextProblem::NotMlKem),
                "InvalidCiphertextException",
                String::new(),
            ),
            (
                KmsError::InvalidCiphertext(CiphertextProblem::ImportUnwrap),
                "InvalidCiphertextException",
                String::new(),
            ),
            (
                KmsError::IncorrectKey,
                "IncorrectKeyException",
                "The key ID in the request does not identify a KMS key that can perform this operation."
                    .into(),
            ),
            (
                KmsError::Validation(Invalid::ContextTooLarge { size: 9000, max: 8192 }),
                "ValidationException",
                "encryption context is 9000 bytes; the limit is 8192".into(),
            ),
            (
                KmsError::Validation(Invalid::SignatureLength { len: 0, max: 6144 }),
                "ValidationException",
                "Signature must be between 1 and 6144 bytes".into(),
            ),
            (
                KmsError::Validation(Invalid::NotDataKeyPairSpec(asym::KeySpec::Hmac256)),
                "ValidationException",
                "HMAC_256 is not a data key pair spec".into(),
            ),
            (
                KmsError::Validation(Invalid::NotWrappingKeySpec(asym::KeySpec::EccNistP256)),
                "ValidationException",
                "ECC_NIST_P256 is not an import wrapping key spec".into(),
            ),
            (
                KmsError::Validation(Invalid::AliasTargetKind),
                "ValidationException",
                "the new target key must have the same key type (symmetric, asymmetric or HMAC) \
                 and key usage as the alias's current key"
                    .into(),
            ),
            (
                KmsError::Validation(Invalid::ValidTo { max_days: 365 }),
                "ValidationException",
                "ValidTo must be in the future and at most 365 days away".into(),
            ),
            (
                KmsError::DataKeyNeedsSymmetric { key: key() },
                "InvalidKeyUsageException",
                format!("{KEY} is an asymmetric key; data keys are encrypted under symmetric encryption keys"),
            ),
            (
                KmsError::AlreadyExists { alias: ALIAS.into() },
                "AlreadyExistsException",
                format!("An alias with the name {ALIAS} already exists"),
            ),
            (
                KmsError::InvalidAliasName { name: "app".into(), problem: AliasNameProblem::Prefix },
                "ValidationException",
                r#"Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"#.into(),
            ),
            (
                KmsError::InvalidAliasName {
                    name: "alias/x".into(),
                    problem: AliasNameProblem::TooLong { max: 256 },
                },
                "InvalidAliasNameException",
                r#"Alias name "alias/x" is invalid: it is longer than 256 characters"#.into(),
            ),
            (
                KmsError::InvalidAliasName { name: "alias/".into(), problem: AliasNameProblem::Empty },
                "InvalidAliasNameException",
                r#"Alias name "alias/" is invalid: the name after "alias/" is empty"#.into(),
            ),
            (
                KmsError::InvalidAliasName {
                    name: "alias/a b".into(),
                    problem: AliasNameProblem::Characters,
                },
                "InvalidAliasNameException",
                r#"Alias name "alias/a b" is invalid: it may contain only a-z, A-Z, 0-9, ':', '/', '_' and '-'"#.into(),
            ),
            (
                KmsError::InvalidAliasName {
                    name: "alias/aws/x".into(),
                    problem: AliasNameProblem::Reserved,
                },
                "InvalidAliasNameException",
                r#"Alias name "alias/aws/x" is invalid: the alias/aws/ prefix is reserved for AWS managed keys"#.into(),
            ),
            (
                KmsError::InvalidMarker,
                "InvalidMarkerException",
                "The request was rejected because the marker is not valid".into(),
            ),
            (
                KmsError::InvalidTag(TagProblem::TooMany { max: 50 }),
                "TagException",
                "A key may have at most 50 tags".into(),
            ),
            (
                KmsError::InvalidTag(TagProblem::Duplicate { key: "k".into() }),
                "TagException",
                r#"Duplicate tag key "k" in one request"#.into(),
            ),
            (
                KmsError::LimitExceeded(Limit::OnDemandRotations { key: key(), max: 25 }),
                "LimitExceededException",
                format!("{KEY} has reached the limit of 25 on-demand rotations"),
            ),
            (
                KmsError::LimitExceeded(Limit::GrantsPerKey { key: key(), max: 50_000 }),
                "LimitExceededException",
                format!("{KEY} has reached the limit of 50000 grants"),
            ),
            (
                KmsError::LimitExceeded(Limit::GrantsPerGrantee {
                    key: key(),
                    grantee: "arn:aws:iam::111122223333:user/bob".into(),
                    max: 500,
                }),
                "LimitExceededException",
                format!("{KEY} has reached the limit of 500 grants for the grantee principal arn:aws:iam::111122223333:user/bob"),
            ),
            (
                KmsError::InvalidState { key: key(), refusal: StateRefusal::NoPendingRotation },
                "KMSInvalidStateException",
                format!("{KEY} has imported key material and none in PENDING_ROTATION state; import new key material (ImportType NEW_KEY_MATERIAL) first"),
            ),
            (
                KmsError::NotFound(Missing::KeyMaterial { arn: key(), given: "ab".into() }),
                "NotFoundException",
                format!("Key material ab is not associated with key '{KEY}'"),
            ),
            (
                KmsError::Validation(Invalid::MaterialIdWithNewImport),
                "ValidationException",
                "KeyMaterialId cannot be specified with ImportType NEW_KEY_MATERIAL".into(),
            ),
            (
                KmsError::InvalidTag(TagProblem::KeyLength { key: String::new(), max: 128 }),
                "ValidationException",
                "1 validation error detected: Value at 'tags.member.tagKey' failed to satisfy constraint: Member must have length between 1 and 128".into(),
            ),
            (
                KmsError::InvalidTag(TagProblem::ValueLength { key: "k".into(), max: 256 }),
                "ValidationException",
                "1 validation error detected: Value at 'tags.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256".into(),
            ),
            (
                KmsError::InvalidTag(TagProblem::ReservedPrefix { key: "aws:x".into() }),
                "TagException",
                r#"Tag key "aws:x" uses the reserved prefix aws:"#.into(),
            ),
            (
                KmsError::UnsupportedOperation(Unsupported::NotExternal { key: key() }),
                "UnsupportedOperationException",
                format!("{KEY} was not created with Origin EXTERNAL; its key material cannot be imported or deleted"),
            ),
            (
                KmsError::RegionNotServed { region: "ap-east-9".into() },
                "UnsupportedOperationException",
                "Region ap-east-9 is not served by this keyfence node".into(),
            ),
            (
                KmsError::MultiRegion(MultiRegionRefusal::NotMultiRegion { key: key() }),
                "UnsupportedOperationException",
                format!("{KEY} is not a multi-Region primary key"),
            ),
            (
                KmsError::MultiRegion(MultiRegionRefusal::Replica { key: key() }),
                "UnsupportedOperationException",
                format!("{KEY} is a multi-Region replica key; this operation is supported only on its primary key"),
            ),
            (
                KmsError::MultiRegion(MultiRegionRefusal::SameRegion { region: "us-east-1".into() }),
                "ValidationException",
                "ReplicaRegion us-east-1 is the Region of the primary key".into(),
            ),
            (
                KmsError::MultiRegion(MultiRegionRefusal::RegionNotServed { region: "ap-east-9".into() }),
                "UnsupportedOperationException",
                "Region ap-east-9 is not served by this keyfence node".into(),
            ),
            (
                KmsError::MultiRegion(MultiRegionRefusal::ReplicaExists { key: key() }),
                "AlreadyExistsException",
                format!("{KEY} already exists"),
            ),
            (
                KmsError::MultiRegion(MultiRegionRefusal::NoReplica { key: key() }),
                "NotFoundException",
                format!("Key '{KEY}' does not exist"),
            ),
            (
                KmsError::UnsupportedOperation(Unsupported::ImportedRotation { key: key() }),
                "UnsupportedOperationException",
                format!("{KEY} has imported key material; rotate it by importing new material into a new key"),
            ),
            (
                KmsError::Refused {
                    operation: CryptoOperation::Sign,
                    detail: CryptoError::Unsupported("EXTERNAL_MU"),
                },
                "UnsupportedOperationException",
                "Sign: EXTERNAL_MU is not supported by keyfence".into(),
            ),
            (
                KmsError::Refused {
                    operation: CryptoOperation::Verify,
                    detail: CryptoError::Incompatible("digest length"),
                },
                "ValidationException",
                "Verify: digest length".into(),
            ),
            (
                KmsError::Refused {
                    operation: CryptoOperation::Sign,
                    detail: CryptoError::InvalidLength { what: "digest", expected: 32, got: 5 },
                },
                "ValidationException",
                "Sign: digest must be 32 bytes, got 5".into(),
            ),
            (
                KmsError::Refused {
                    operation: CryptoOperation::DeriveSharedSecret,
                    detail: CryptoError::Malformed { what: "public key", reason: "not DER" },
                },
                "ValidationException",
                "DeriveSharedSecret: malformed public key: not DER".into(),
            ),
            (
                KmsError::InvalidSignature,
                "KMSInvalidSignatureException",
                String::new(),
            ),
            (
                KmsError::InvalidMac,
                "KMSInvalidMacException",
                String::new(),
            ),
            (
                KmsError::PlaintextTooLong {
                    len: 300,
                    algorithm: asym::EncryptionAlgorithm::RsaesOaepSha256,
                    spec: keyfence_core::KeySpec::Asymmetric(asym::KeySpec::Rsa2048),
                    detail: CryptoError::Incompatible("too long"),
                },
                "ValidationException",
                "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes.".into(),
            ),
            (
                KmsError::PlaintextTooLong {
                    len: 500,
                    algorithm: asym::EncryptionAlgorithm::RsaesOaepSha1,
                    spec: keyfence_core::KeySpec::Asymmetric(asym::KeySpec::Rsa4096),
                    detail: CryptoError::Incompatible("too long"),
                },
                "ValidationException",
                "Algorithm RSAES_OAEP_SHA_1 and key spec RSA_4096 cannot encrypt data larger than 470 bytes.".into(),
            ),
            (
                KmsError::InvalidImportToken,
                "InvalidImportTokenException",
                "The import token is not valid for this key".into(),
            ),
            (
                KmsError::ExpiredImportToken,
                "ExpiredImportTokenException",
                "The import token has expired; call GetParametersForImport again".into(),
            ),
            (
                KmsError::IncorrectKeyMaterial,
                "IncorrectKeyMaterialException",
                "The key material differs from the material previously imported into this key"
                    .into(),
            ),
        ];
        for (error, code, message) in cases {
            let described = format!("{error:?}");
            let e = ApiError::from(error);
            assert_eq!(
                (e.status, e.code, e.message),
                (400, code, message),
                "{described}"
            );
        }
        let dependency = [
            (
                KmsError::StoreUnavailable {
                    detail: "connection refused".into(),
                },
                messages::DEPENDENCY_TIMEOUT.to_string(),
            ),
            (
                KmsError::Contended {
                    key: key(),
                    attempts: 16,
                },
                messages::DEPENDENCY_TIMEOUT.to_string(),
            ),
        ];
        for (error, message) in dependency {
            let e = ApiError::from(error);
            assert_eq!(
                (e.status, e.code, e.message),
                (500, "DependencyTimeoutException", message)
            );
        }
        // A crypto failure that is not the caller's is internal, detail hidden.
        let e = ApiError::from(KmsError::Refused {
            operation: CryptoOperation::Sign,
            detail: CryptoError::Rng,
        });
        assert_eq!((e.status, e.code), (500, "KMSInternalException"));
        assert!(!e.message.contains("random"), "{}", e.message);
    }
}
