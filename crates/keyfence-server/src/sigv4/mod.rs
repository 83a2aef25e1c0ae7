//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`, Authorization header form).
//!
//! [`verify`] authenticates an incoming request the way AWS KMS does and reports
//! failures with the same exception names and messages, so AWS SDKs and the AWS CLI
//! show their usual errors. [`sign()`] produces the same signatures for keyfence's own
//! clients (`keyfence bench`, tests).
//!
//! The canonical request follows the AWS documentation for non-S3 services: the path
//! is normalized (dot segments removed, empty segments collapsed) and URI-encoded
//! once more as a whole, the query is decoded, re-encoded and sorted, headers are
//! lowercased with values trimmed, inner runs of spaces collapsed and repeated values
//! joined with `,`. The payload hash is always the SHA-256 of the body that arrived:
//! `UNSIGNED-PAYLOAD` is not accepted, and an `x-amz-content-sha256` header that does
//! not match the body is refused.
//!
//! Presigned (query-string) authentication is not supported.

mod canonical;
mod parse;
mod sign;
mod verify;

pub use sign::{payload_hash, sign, Signer, SigningParams};
pub use verify::{
    verify, Credential, CredentialStore, DuplicateAccessKeyId, VerifiedCaller, DEFAULT_SERVICES,
};

/// The only signing algorithm supported.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Scope terminator.
const TERMINATOR: &str = "aws4_request";

const X_AMZ_DATE: &str = "x-amz-date";

/// Why a request failed SigV4 authentication. Messages mirror AWS and never contain
/// secrets or signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header or the date headers are malformed or incomplete.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is unknown.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// The signature does not match the request.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    InvalidSignature,
    /// The credential scope (date, service, terminator) does not fit the request.
    #[error("{0}")]
    InvalidScope(String),
    /// `x-amz-content-sha256` does not match the body.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    PayloadHashMismatch,
    /// The request time is more than 15 minutes before the server time.
    #[error(
        "Signature expired: {request_time} is now earlier than {limit} ({server_time} - 15 min.)"
    )]
    SignatureExpired {
        /// Request time, ISO-8601 basic format.
        request_time: String,
        /// Server time minus 15 minutes.
        limit: String,
        /// Server time.
        server_time: String,
    },
    /// The request time is more than 15 minutes after the server time.
    #[error("Signature not yet current: {request_time} is still later than {limit} ({server_time} + 15 min.)")]
    SignatureNotYetCurrent {
        /// Request time, ISO-8601 basic format.
        request_time: String,
        /// Server time plus 15 minutes.
        limit: String,
        /// Server time.
        server_time: String,
    },
}

impl SigV4Error {
    /// The AWS error code (`__type`) AWS KMS returns for this failure. AWS JSON-protocol
    /// services answer every one of them with HTTP 400.
    pub fn aws_code(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            SigV4Error::IncompleteSignature(_) => "IncompleteSignatureException",
            SigV4Error::UnrecognizedClient => "UnrecognizedClientException",
            SigV4Error::InvalidSignature
            | SigV4Error::InvalidScope(_)
            | SigV4Error::PayloadHashMismatch
            | SigV4Error::SignatureExpired { .. }
            | SigV4Error::SignatureNotYetCurrent { .. } => "InvalidSignatureException",
        }
    }
}

pub(super) fn incomplete(msg: &str) -> SigV4Error {
    SigV4Error::IncompleteSignature(msg.to_owned())
}

/// A short, printable rendition of client input for error messages.
pub(super) fn echo(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}
