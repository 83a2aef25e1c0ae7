//! The wording of every error the API answers: those it refuses itself
//! (names it does not know, members that do not go together) and every typed
//! refusal of the core (which builds no messages): one place, so every
//! operation words the same fault the same way.

use keyfence_core::service::MultiRegionRefusal;
use keyfence_core::{
    Algorithm, AliasNameProblem, Bound, CryptoOperation, Invalid, KeySpec, KeyUsage, Limit, Member,
    Missing, SpecOperation, StateRefusal, TagProblem, Unsupported,
};
use keyfence_crypto::asym;
use keyfence_crypto::CryptoError;

use super::names::{AwsName, PQ_WRAPPING_ALGORITHM, PQ_WRAPPING_KEY_SPEC};
use super::ApiError;

/// A member out of its bounds, as AWS words it.
pub fn out_of_bounds(member: Member, bound: Bound) -> ApiError {
    let member = match member {
        Member::Limit => "limit",
        Member::NumberOfBytes => "numberOfBytes",
        Member::PendingWindowInDays => "pendingWindowInDays",
        Member::RotationPeriodInDays => "rotationPeriodInDays",
        Member::Plaintext => "plaintext",
        Member::CiphertextBlob => "ciphertextBlob",
        Member::Message => "message",
        Member::Description => "description",
    };
    let constraint = match bound {
        Bound::Value { value, min, max } => format!(
            "Value '{value}' at '{member}' failed to satisfy constraint: Member must have value between {min} and {max}"
        ),
        Bound::Length { len, min, max } => format!(
            "Value at '{member}' failed to satisfy constraint: Member must have length between {min} and {max} (got {len})"
        ),
        Bound::MaxLength { max } => format!(
            "Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        ),
    };
    ApiError::validation(format!("1 validation error detected: {constraint}"))
}

/// Longest prefix of a client-chosen string an error message repeats.
pub const ECHO_CHARS: usize = 64;

/// A short, printable prefix of client input for an error message: at most
/// [`ECHO_CHARS`] characters, control characters replaced, `...` if cut.
pub fn echo(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(ECHO_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(ECHO_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

/// A value outside a member's enum, as AWS words it.
pub fn not_in_enum(value: &str, member: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set",
        echo(value)
    ))
}

/// A value outside a member's enum, listing the values keyfence accepts.
pub fn not_in_enum_of(value: &str, member: &str, values: &[&str]) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        echo(value),
        values.join(", ")
    ))
}

/// CreateKey's KeySpec SM2.
pub fn sm2_key_spec() -> ApiError {
    ApiError::new(
        "UnsupportedOperationException",
        "KeySpec SM2 is available only in AWS China Regions and is not supported by keyfence",
    )
}

/// A KeyUsage (known or not) that the KeySpec does not allow.
pub fn usage_not_for_spec(usage: &str, spec: KeySpec) -> ApiError {
    ApiError::validation(format!(
        "KeyUsage {} is not compatible with KeySpec {}",
        echo(usage),
        spec.aws_name()
    ))
}

/// An Origin keyfence does not offer.
pub fn unsupported_origin(origin: &str) -> ApiError {
    ApiError::new(
        "UnsupportedOperationException",
        format!("Origin {} is not supported by keyfence", echo(origin)),
    )
}

/// GenerateDataKey with both KeySpec and NumberOfBytes.
pub fn data_key_size_twice() -> ApiError {
    ApiError::validation("KeySpec and NumberOfBytes are mutually exclusive; specify one")
}

/// GenerateDataKey with neither KeySpec nor NumberOfBytes.
pub fn data_key_size_missing() -> ApiError {
    ApiError::validation("Please specify either number of bytes or key spec.")
}

/// GenerateRandom without NumberOfBytes.
pub fn number_of_bytes_required() -> ApiError {
    ApiError::validation("NumberOfBytes is required")
}

/// A MacAlgorithm that is not one.
pub fn unknown_mac_algorithm(name: &str) -> ApiError {
    ApiError::validation(format!(
        "MacAlgorithm {} is not a MAC algorithm",
        echo(name)
    ))
}

/// GenerateDataKeyPair's KeyPairSpec SM2.
pub fn sm2_key_pair_spec() -> ApiError {
    ApiError::new(
        "UnsupportedOperationException",
        "KeyPairSpec SM2 is not supported by keyfence",
    )
}

/// GenerateDataKeyPair's ML-KEM KeyPairSpecs.
pub fn ml_kem_key_pair_spec(name: &str) -> ApiError {
    ApiError::new(
        "UnsupportedOperationException",
        format!(
            "KeyPairSpec {} is not supported by keyfence yet, because its private key \
             would have to be returned in the 64-byte seed form",
            echo(name)
        ),
    )
}

/// The post-quantum wrapping algorithm and key spec named apart.
pub fn pq_wrapping_mismatch() -> ApiError {
    ApiError::validation(format!(
        "{PQ_WRAPPING_ALGORITHM} goes with WrappingKeySpec {PQ_WRAPPING_KEY_SPEC}, and only with it"
    ))
}

/// A WrappingAlgorithm keyfence does not offer.
pub fn unsupported_wrapping_algorithm(name: &str) -> ApiError {
    ApiError::validation(format!(
        "WrappingAlgorithm {} is not supported; use RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256 or {PQ_WRAPPING_ALGORITHM}",
        echo(name)
    ))
}

/// A WrappingKeySpec keyfence does not offer.
pub fn unsupported_wrapping_key_spec(name: &str) -> ApiError {
    ApiError::validation(format!(
        "WrappingKeySpec {} is not supported; use RSA_2048, RSA_3072, RSA_4096 or {PQ_WRAPPING_KEY_SPEC}",
        echo(name)
    ))
}

/// An ExpirationModel that is not one.
pub fn unknown_expiration_model(name: &str) -> ApiError {
    ApiError::validation(format!("ExpirationModel {} is not valid", echo(name)))
}

/// A KeyMaterialId that is not 64 lowercase hexadecimal digits.
pub fn invalid_material_id(id: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{}' at 'keyMaterialId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-f0-9]+$ and have length 64",
        echo(id)
    ))
}

/// KEY_MATERIAL_EXPIRES without ValidTo.
pub fn valid_to_required() -> ApiError {
    ApiError::validation("ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES")
}

/// KEY_MATERIAL_DOES_NOT_EXPIRE with ValidTo.
pub fn valid_to_forbidden() -> ApiError {
    ApiError::validation(
        "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
}

/// The message of a key used for what its usage does not allow.
pub fn wrong_key_usage(key: &str, usage: KeyUsage, needed: KeyUsage) -> String {
    format!(
        "{key} has KeyUsage {}; this operation needs {}",
        usage.aws_name(),
        needed.aws_name()
    )
}

/// The message of an algorithm the key's spec does not offer.
pub fn incompatible_algorithm(key: &str, spec: KeySpec, algorithm: Algorithm) -> String {
    let (kind, name) = match algorithm {
        Algorithm::Encryption(a) => ("encryption", a.aws_name()),
        Algorithm::Signing(a) => ("signing", a.aws_name()),
        Algorithm::Mac(a) => ("MAC", a.aws_name()),
    };
    format!(
        "The {kind} algorithm {name} is not compatible with {key} ({})",
        spec.aws_name()
    )
}

/// The message of an operation the key's spec rules out.
pub fn spec_cannot(key: &str, spec: KeySpec, operation: SpecOperation) -> String {
    let why = match operation {
        SpecOperation::GetPublicKey => "it has no public key",
        SpecOperation::Rotate => "only symmetric encryption keys can be rotated",
    };
    format!("{key} is a {} key; {why}", spec.aws_name())
}

/// The message of a plaintext too long for RSAES-OAEP under the key, as AWS
/// words it: the limit is the modulus length less twice the hash length less 2.
pub fn plaintext_too_long(algorithm: asym::EncryptionAlgorithm, spec: KeySpec) -> String {
    let modulus_bytes = match spec.asymmetric() {
        Some(asym::KeySpec::Rsa2048) => 256,
        Some(asym::KeySpec::Rsa3072) => 384,
        Some(asym::KeySpec::Rsa4096) => 512,
        _ => 0,
    };
    let hash_bytes = match algorithm {
        asym::EncryptionAlgorithm::RsaesOaepSha1 => 20,
        asym::EncryptionAlgorithm::RsaesOaepSha256 => 32,
    };
    let max = (modulus_bytes as usize).saturating_sub(2 * hash_bytes + 2);
    format!(
        "Algorithm {} and key spec {} cannot encrypt data larger than {max} bytes.",
        keyfence_core::EncryptionAlgorithm::Rsa(algorithm).aws_name(),
        spec.aws_name()
    )
}

/// The message of imported material that is not a key of the key's spec.
pub fn material_not_of_spec(spec: KeySpec, detail: &CryptoError) -> String {
    format!(
        "The imported material is not a valid {} key: {detail}",
        spec.aws_name()
    )
}

/// A fenced key (or fenced CreateKey) at a node outside the fence, when no
/// satisfying node served it: `KeyUnavailableException`, a 400 so that SDKs
/// answer at once instead of retrying what no retry here can serve.
pub fn fenced_elsewhere(key: &str, fence: &str, policy: &str) -> ApiError {
    ApiError::new(
        "KeyUnavailableException",
        format!(
            "{key} is fenced to '{policy}' ({fence}); this node does not satisfy the fence and no node that does served the request"
        ),
    )
}

/// A CreateKey fenced to a policy for which the authority has made no fence yet.
pub fn unknown_fence(fence: &str, policy: &str) -> ApiError {
    ApiError::validation(format!(
        "No fence exists for policy '{policy}' ({fence}); create the key at the authority node, which makes the fence"
    ))
}

/// A request body over the size limit (413).
pub fn body_too_large(limit: usize) -> ApiError {
    ApiError {
        status: 413,
        code: "ValidationException",
        message: format!("Request body is larger than {limit} bytes"),
        fence: None,
    }
}

/// A request body whose framing is broken (a bad Content-Length, malformed
/// chunked encoding, a connection that failed mid-body).
pub fn body_unreadable() -> ApiError {
    ApiError::serialization("Request body could not be read: malformed framing")
}

/// A request body that did not arrive within the body read timeout.
pub fn body_read_timeout() -> ApiError {
    ApiError {
        status: 408,
        code: "RequestTimeoutException",
        message: "Request body was not received in time".into(),
        fence: None,
    }
}

/// The node holds as many request bytes as it may; the client should retry.
pub fn request_budget_exhausted() -> ApiError {
    ApiError {
        status: 503,
        code: "ThrottlingException",
        message: "Rate exceeded: the node is busy, retry the request".into(),
        fence: None,
    }
}

/// A request over its account's request-rate quota: AWS's
/// `ThrottlingException` (HTTP 400), which the AWS SDKs retry with backoff.
pub fn rate_exceeded() -> ApiError {
    ApiError::new(
        "ThrottlingException",
        "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
    )
}

/// A CPU-heavy request the heavy pool did not run: `ThrottlingException`
/// (HTTP 400, retried by the AWS SDKs) when it is busy, an internal error when
/// the work failed.
pub fn heavy_refused(refusal: crate::heavy::HeavyRefusal) -> ApiError {
    use crate::heavy::HeavyRefusal;
    match refusal {
        HeavyRefusal::QueueFull | HeavyRefusal::WaitedTooLong => ApiError::new(
            "ThrottlingException",
            format!("Rate exceeded: {refusal}; retry the request"),
        ),
        HeavyRefusal::Failed => {
            ApiError::from(keyfence_core::KmsError::Internal(refusal.to_string()))
        }
    }
}

/// A string member outside its length constraint (`min..=max` characters).
pub fn length_constraint(member: &str, len: usize, min: usize, max: usize) -> ApiError {
    let bound = if len < min {
        format!("greater than or equal to {min}")
    } else {
        format!("less than or equal to {max}")
    };
    ApiError::validation(format!(
        "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length {bound}"
    ))
}

/// A region name member (ReplicaRegion, PrimaryRegion) checked against AWS's
/// constraints before anything else: length 1 to 32, then the pattern
/// `^([a-z]+-){2,3}\d+$`. The value is not echoed.
pub fn check_region_name(member: &str, region: &str) -> Result<(), ApiError> {
    let len = region.chars().count();
    if !(1..=32).contains(&len) {
        return Err(length_constraint(member, len, 1, 32));
    }
    let parts: Vec<&str> = region.split('-').collect();
    let (number, words) = parts.split_last().unwrap_or((&"", &[]));
    let valid = (2..=3).contains(&words.len())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit());
    if valid {
        return Ok(());
    }
    Err(ApiError::validation(format!(
        "1 validation error detected: Value at '{member}' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: ^([a-z]+-){{2,3}}\\d+$"
    )))
}

/// A list member with more items than allowed.
pub fn too_many_items(member: &str, max: usize) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
    ))
}

/// A required member given as `null`.
pub fn null_member(line: usize, column: usize) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: a required member is null (line {line} column {column}): Member must not be null"
    ))
}

/// An X-Amz-Target naming no operation keyfence serves.
pub fn unknown_operation(name: &str) -> ApiError {
    ApiError::new(
        "UnknownOperationException",
        format!("Operation {} is not supported by keyfence", echo(name)),
    )
}

/// A `Recipient` (Nitro Enclaves attestation) member: refused until attestation
/// is supported, rather than ignored (which would return the plaintext).
pub fn no_recipient(recipient: Option<&serde_json::Value>) -> Result<(), ApiError> {
    match recipient {
        None => Ok(()),
        Some(_) => Err(ApiError::new(
            "UnsupportedOperationException",
            "Recipient (Nitro Enclaves attestation) is not supported by keyfence",
        )),
    }
}

/// The message of a NotFoundException.
pub fn missing(missing: &Missing) -> String {
    match missing {
        Missing::InvalidKeyId { given } => format!("Invalid keyId '{given}'"),
        Missing::AliasNotAllowed { given } => format!(
            "Invalid keyId '{given}': this operation takes a key ID or key ARN, not an alias"
        ),
        Missing::Key { arn } => format!("Key '{arn}' does not exist"),
        Missing::Alias { arn } => format!("Alias {arn} is not found."),
        Missing::KeyMaterial { arn, given } => format!(
            "Key material {} is not associated with key '{arn}'",
            echo(given)
        ),
    }
}

/// The message of a DisabledException.
pub fn disabled(key: &str) -> String {
    format!("{key} is disabled.")
}

/// The message of a KMSInvalidStateException.
pub fn invalid_state(key: &str, refusal: StateRefusal) -> String {
    match refusal {
        StateRefusal::PendingDeletion => format!("{key} is pending deletion."),
        StateRefusal::PendingImport => format!("{key} is pending import."),
        StateRefusal::NotPendingDeletion => format!("{key} is not pending deletion."),
        StateRefusal::HasKeyMaterial => format!("{key} already has key material"),
        StateRefusal::NoPendingRotation => format!(
            "{key} has imported key material and none in PENDING_ROTATION state; import new key material (ImportType NEW_KEY_MATERIAL) first"
        ),
    }
}

/// A ValidationException for an alias name without the `alias/` prefix, as AWS words it.
pub const ALIAS_PREFIX: &str = "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html";

/// DryRunOperationException's message (HTTP 400, as AWS answers it).
pub const DRY_RUN: &str = "The request would have succeeded, but the DryRun option is set.";

/// The message of an IncorrectKeyException.
pub const INCORRECT_KEY: &str =
    "The key ID in the request does not identify a KMS key that can perform this operation.";

/// The message of a core ValidationException.
pub fn invalid(invalid: Invalid) -> String {
    match invalid {
        Invalid::ContextTooLarge { size, max } => {
            format!("encryption context is {size} bytes; the limit is {max}")
        }
        Invalid::SignatureLength { max, .. } => {
            format!("Signature must be between 1 and {max} bytes")
        }
        Invalid::NotDataKeyPairSpec(spec) => {
            format!("{} is not a data key pair spec", spec.aws_name())
        }
        Invalid::NotWrappingKeySpec(spec) => {
            format!("{} is not an import wrapping key spec", spec.aws_name())
        }
        Invalid::AliasTargetKind => "the new target key must have the same key type (symmetric, \
             asymmetric or HMAC) and key usage as the alias's current key"
            .into(),
        Invalid::ValidTo { max_days } => {
            format!("ValidTo must be in the future and at most {max_days} days away")
        }
        Invalid::MaterialIdWithNewImport => {
            "KeyMaterialId cannot be specified with ImportType NEW_KEY_MATERIAL".into()
        }
    }
}

/// The message of a data key asked of a key that is not symmetric.
pub fn data_key_needs_symmetric(key: &str) -> String {
    format!("{key} is an asymmetric key; data keys are encrypted under symmetric encryption keys")
}

/// The message of an AlreadyExistsException (an alias).
pub fn alias_exists(alias: &str) -> String {
    format!("An alias with the name {alias} already exists")
}

/// The message of an InvalidAliasNameException.
pub fn invalid_alias_name(name: &str, problem: AliasNameProblem) -> String {
    let why = match problem {
        AliasNameProblem::Prefix => "it must begin with \"alias/\"".to_string(),
        AliasNameProblem::TooLong { max } => format!("it is longer than {max} characters"),
        AliasNameProblem::Empty => "the name after \"alias/\" is empty".into(),
        AliasNameProblem::Characters => {
            "it may contain only a-z, A-Z, 0-9, ':', '/', '_' and '-'".into()
        }
        AliasNameProblem::Reserved => {
            "the alias/aws/ prefix is reserved for AWS managed keys".into()
        }
    };
    format!("Alias name {name:?} is invalid: {why}")
}

/// The message of an InvalidMarkerException.
pub const INVALID_MARKER: &str = "The request was rejected because the marker is not valid";

/// The message of a LimitExceededException.
pub fn limit_exceeded(limit: &Limit) -> String {
    match limit {
        Limit::OnDemandRotations { key, max } => {
            format!("{key} has reached the limit of {max} on-demand rotations")
        }
        Limit::GrantsPerKey { key, max } => {
            format!("{key} has reached the limit of {max} grants")
        }
        Limit::GrantsPerGrantee { key, grantee, max } => format!(
            "{key} has reached the limit of {max} grants for the grantee principal {}",
            echo(grantee)
        ),
    }
}

/// The message of a refused tag (TagException, or ValidationException for a length).
pub fn invalid_tag(problem: &TagProblem) -> String {
    match problem {
        TagProblem::KeyLength { max, .. } => format!(
            "1 validation error detected: Value at 'tags.member.tagKey' failed to satisfy constraint: Member must have length between 1 and {max}"
        ),
        TagProblem::ValueLength { max, .. } => format!(
            "1 validation error detected: Value at 'tags.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to {max}"
        ),
        TagProblem::ReservedPrefix { key } => {
            format!("Tag key {key:?} uses the reserved prefix aws:")
        }
        TagProblem::Duplicate { key } => {
            format!("Duplicate tag key {:?} in one request", echo(key))
        }
        TagProblem::TooMany { max } => format!("A key may have at most {max} tags"),
    }
}

/// The message of an operation keyfence does not offer for a key.
pub fn unsupported(unsupported: &Unsupported) -> String {
    match unsupported {
        Unsupported::NotExternal { key } => format!(
            "{key} was not created with Origin EXTERNAL; its key material cannot be imported or deleted"
        ),
        Unsupported::ImportedRotation { key } => format!(
            "{key} has imported key material; rotate it by importing new material into a new key"
        ),
    }
}

/// The caller's input the crypto layer refused in `operation`:
/// UnsupportedOperationException for what keyfence cannot do, otherwise a
/// ValidationException; `None` for a failure that is not the caller's.
pub fn refused(operation: CryptoOperation, detail: &CryptoError) -> Option<ApiError> {
    let op = match operation {
        CryptoOperation::Sign => "Sign",
        CryptoOperation::Verify => "Verify",
        CryptoOperation::GetPublicKey => "GetPublicKey",
        CryptoOperation::GenerateMac => "GenerateMac",
        CryptoOperation::VerifyMac => "VerifyMac",
        CryptoOperation::Encapsulate => "Encapsulate",
        CryptoOperation::DeriveSharedSecret => "DeriveSharedSecret",
        CryptoOperation::GenerateDataKeyPair => "GenerateDataKeyPair",
    };
    Some(match detail {
        CryptoError::Unsupported(m) => ApiError::new(
            "UnsupportedOperationException",
            format!("{op}: {m} is not supported by keyfence"),
        ),
        CryptoError::Incompatible(m) => ApiError::validation(format!("{op}: {m}")),
        CryptoError::InvalidLength {
            what,
            expected,
            got,
        } => ApiError::validation(format!("{op}: {what} must be {expected} bytes, got {got}")),
        CryptoError::Malformed { what, reason } => {
            ApiError::validation(format!("{op}: malformed {what}: {reason}"))
        }
        _ => return None,
    })
}

/// The message of an InvalidImportTokenException.
pub const INVALID_IMPORT_TOKEN: &str = "The import token is not valid for this key";

/// The message of an ExpiredImportTokenException.
pub const EXPIRED_IMPORT_TOKEN: &str =
    "The import token has expired; call GetParametersForImport again";

/// The message of an IncorrectKeyMaterialException for material that differs.
pub const INCORRECT_KEY_MATERIAL: &str =
    "The key material differs from the material previously imported into this key";

/// The logged detail of a DependencyTimeoutException: a key changed under every attempt to write it.
pub fn contended(key: &str, attempts: usize) -> String {
    format!("{key} changed {attempts} times while this change was checked; retry")
}

/// DependencyTimeoutException's message (AWS's wording for the shape): the
/// node cannot reach its key store, or its replica is past the staleness
/// bound. The detail (which server, which error) goes to the node's log only.
pub const DEPENDENCY_TIMEOUT: &str =
    "The system timed out while trying to fulfill the request. You can retry the request.";

/// Every KMS request to a node whose quorum-sealed root is not open yet: a
/// 503 `DependencyTimeoutException`, which AWS clients treat as retryable
/// and then report with this message.
pub fn node_sealed() -> ApiError {
    ApiError {
        status: 503,
        code: "DependencyTimeoutException",
        message: "keyfence node is sealed: its root key opens when a quorum of operators has run `keyfence unseal`".into(),
        fence: None,
    }
}

/// A caller other than the default account's admin user on the admin API.
pub fn admin_denied(caller_arn: &str) -> ApiError {
    ApiError::new(
        "AccessDeniedException",
        format!("{caller_arn} is not allowed to call the keyfence admin API"),
    )
}

/// Seal or unseal asked of a node whose root is not quorum-sealed.
pub fn not_quorum_sealed() -> ApiError {
    ApiError::new(
        "UnsupportedOperationException",
        "this node's root is not quorum-sealed (root = \"shamir\"): it has nothing to seal or unseal",
    )
}

/// A share refused by `KeyfenceAdmin.Unseal`.
pub fn unseal_refused(e: &crate::seal::UnsealError) -> ApiError {
    use crate::root::quorum::QuorumError;
    use crate::seal::UnsealError;
    match e {
        UnsealError::NotSealed => {
            ApiError::new("KMSInvalidStateException", "keyfence node is not sealed")
        }
        UnsealError::Share(QuorumError::Repeated(i)) => ApiError::new(
            "KMSInvalidStateException",
            format!("share {i} was given already in this unseal round"),
        ),
        UnsealError::Share(QuorumError::WrongShare(i)) => ApiError::new(
            "IncorrectKeyException",
            format!("share {i} is not a valid share of this node's sealed root"),
        ),
        UnsealError::Share(QuorumError::DoesNotOpen) => ApiError::new(
            "IncorrectKeyException",
            "the shares given do not open this node's sealed root; the unseal round was reset",
        ),
        UnsealError::Share(e @ (QuorumError::NotAShare | QuorumError::UnknownIndex { .. })) => {
            ApiError::validation(e.to_string())
        }
        other => {
            tracing::error!(error = %other, "unseal failed");
            ApiError {
                status: 500,
                code: "KMSInternalException",
                message: "An internal error occurred.".into(),
                fence: None,
            }
        }
    }
}

// Key policies and grants.

/// AccessDeniedException as AWS words it: the caller's ARN, the action, the
/// resource (a key ARN, or `*` for an action on no key) and why.
pub fn access_denied(
    caller_arn: &str,
    action: &str,
    resource: &str,
    explicit_deny: bool,
    on_key: bool,
) -> ApiError {
    let why = match (explicit_deny, on_key) {
        (true, _) => "with an explicit deny".to_string(),
        (false, true) => format!("because no resource-based policy allows the {action} action"),
        (false, false) => format!("because no identity-based policy allows the {action} action"),
    };
    ApiError::new(
        "AccessDeniedException",
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} {why}"
        ),
    )
}

/// A key policy that does not parse or breaks a rule of the policy language.
pub fn malformed_policy(problem: &keyfence_core::authz::PolicyError) -> ApiError {
    ApiError::new(
        "MalformedPolicyDocumentException",
        format!("The key policy is malformed: {problem}"),
    )
}

/// A key policy under which the caller could not put a policy again.
pub fn policy_lockout() -> ApiError {
    ApiError::new(
        "MalformedPolicyDocumentException",
        "The new key policy will not allow you to update the key policy in the future.",
    )
}

/// A PolicyName other than `default`.
pub fn no_such_policy(name: &str) -> ApiError {
    ApiError::new(
        "NotFoundException",
        format!("No such policy exists: {}", echo(name)),
    )
}

/// A grantee or retiring principal that is not an IAM user, role or root ARN.
pub fn invalid_principal(principal: &str) -> ApiError {
    ApiError::validation(format!("Invalid principal: {}", echo(principal)))
}

/// CreateGrant with no operation.
pub fn no_grant_operations() -> ApiError {
    ApiError::validation(
        "1 validation error detected: Value '[]' at 'operations' failed to satisfy constraint: Member must have length greater than or equal to 1",
    )
}

/// Grant constraints with operations that take no encryption context.
pub fn constraints_not_supported(operations: &[&str]) -> ApiError {
    ApiError::validation(format!(
        "Grant constraints are not supported for the operations {}",
        operations.join(", ")
    ))
}

/// A grant Name outside AWS's pattern or length.
pub fn invalid_grant_name(name: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        echo(name)
    ))
}

/// No grant with this id on the key.
pub fn grant_not_found(grant_id: &str) -> ApiError {
    ApiError::new(
        "NotFoundException",
        format!("Grant ID {} not found", echo(grant_id)),
    )
}

/// A grant token keyfence did not issue.
pub fn invalid_grant_token() -> ApiError {
    ApiError::new("InvalidGrantTokenException", "Invalid grant token")
}

/// A grant id that is not 64 hexadecimal characters.
pub fn invalid_grant_id(grant_id: &str) -> ApiError {
    ApiError::new(
        "InvalidGrantIdException",
        format!("Invalid grant ID {}", echo(grant_id)),
    )
}

/// RetireGrant naming no grant.
pub fn retire_grant_needs_a_grant() -> ApiError {
    ApiError::validation("Either GrantToken, or both KeyId and GrantId, must be specified")
}

/// Any custom key store operation.
pub fn custom_key_stores_unsupported() -> ApiError {
    ApiError::new(
        "UnsupportedOperationException",
        "Custom key stores (AWS CloudHSM and external key stores) are not supported by keyfence, which is its own key store",
    )
}

/// A region (a request's credential scope, ReplicaRegion, PrimaryRegion) this node does not serve.
pub fn region_not_served(region: &str) -> String {
    format!(
        "Region {} is not served by this keyfence node",
        echo(region)
    )
}

/// The code and message of a refused multi-Region key operation.
pub fn multi_region(refusal: &MultiRegionRefusal) -> (&'static str, String) {
    match refusal {
        MultiRegionRefusal::NotMultiRegion { key } => (
            "UnsupportedOperationException",
            format!("{key} is not a multi-Region primary key"),
        ),
        MultiRegionRefusal::Replica { key } => (
            "UnsupportedOperationException",
            format!("{key} is a multi-Region replica key; this operation is supported only on its primary key"),
        ),
        MultiRegionRefusal::SameRegion { region } => (
            "ValidationException",
            format!("ReplicaRegion {} is the Region of the primary key", echo(region)),
        ),
        MultiRegionRefusal::RegionNotServed { region } => (
            "UnsupportedOperationException",
            region_not_served(region),
        ),
        MultiRegionRefusal::ReplicaExists { key } => {
            ("AlreadyExistsException", format!("{key} already exists"))
        }
        MultiRegionRefusal::NoReplica { key } => (
            "NotFoundException",
            missing(&Missing::Key { arn: key.clone() }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::check_region_name;

    #[test]
    fn region_names_follow_aws_pattern() {
        for ok in [
            "us-east-1",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-12",
        ] {
            assert!(check_region_name("replicaRegion", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Not A Region",
            "eu-1",
            "us-east-",
            "US-EAST-1",
            "a-b-c-d-1",
            "us-east-1a",
            &format!("eu-{}-1", "a".repeat(40)),
        ] {
            let e = check_region_name("replicaRegion", bad).unwrap_err();
            assert_eq!(e.code, "ValidationException", "{bad}");
            assert!(
                e.message.contains("'replicaRegion'"),
                "{bad}: {}",
                e.message
            );
            assert!(bad.is_empty() || !e.message.contains(bad), "echoed {bad}");
        }
    }
}
