//! The wording of the errors the API answers for requests it refuses itself
//! (names it does not know, members that do not go together) and of the core
//! errors that name algorithms, specs or usages: one place, so every
//! operation words the same fault the same way.

use keyfence_core::{Algorithm, Bound, KeySpec, KeyUsage, Member, SpecOperation};
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

/// The message of a plaintext too long for RSAES-OAEP under the key.
pub fn plaintext_too_long(
    len: usize,
    algorithm: asym::EncryptionAlgorithm,
    spec: KeySpec,
    detail: &CryptoError,
) -> String {
    format!(
        "Plaintext of {len} bytes cannot be encrypted with {} under {}: {detail}",
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

/// The fence named by an error from [`fenced_elsewhere`] (`fence-` and 32
/// hex digits in parentheses), so the node can forward the request to a node
/// that satisfies it.
pub fn fenced_elsewhere_fence(e: &ApiError) -> Option<[u8; 16]> {
    if e.code != "KeyUnavailableException" {
        return None;
    }
    let start = e.message.find("(fence-")? + "(fence-".len();
    let hex_id = e.message.get(start..start + 32)?;
    hex::decode(hex_id).ok()?.try_into().ok()
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
    }
}

/// The node holds as many request bytes as it may; the client should retry.
pub fn request_budget_exhausted() -> ApiError {
    ApiError {
        status: 503,
        code: "ThrottlingException",
        message: "Rate exceeded: the node is busy, retry the request".into(),
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

/// DependencyTimeoutException's message (AWS's wording for the shape): the
/// node cannot reach its key store, or its replica is past the staleness
/// bound. The detail (which server, which error) goes to the node's log only.
pub const DEPENDENCY_TIMEOUT: &str =
    "The system timed out while trying to fulfill the request. You can retry the request.";
