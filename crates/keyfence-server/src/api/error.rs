//! AWS error shapes: `{"__type": "...", "message": "..."}` for JSON, an
//! `ErrorResponse` document for the query protocol.

use keyfence_core::KmsError;

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
}

impl ApiError {
    /// A 400 error with `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code,
            message: message.into(),
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

    /// A request over its account's request-rate quota: AWS's
    /// `ThrottlingException` (HTTP 400), which the AWS SDKs retry with backoff.
    pub fn throttled() -> Self {
        Self::new(
            "ThrottlingException",
            "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
        )
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
    pub fn json_body(&self) -> Vec<u8> {
        serde_json::to_vec(
            &serde_json::json!({"__type": self.code, "message": self.sent_message()}),
        )
        .expect("json of strings")
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
        let code = match &e {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
            KmsError::InvalidMarker(_) => "InvalidMarkerException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::Tag(_) => "TagException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::InvalidSignature(_) => "KMSInvalidSignatureException",
            KmsError::InvalidMac(_) => "KMSInvalidMacException",
            KmsError::InvalidImportToken(_) => "InvalidImportTokenException",
            KmsError::ExpiredImportToken(_) => "ExpiredImportTokenException",
            KmsError::IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
            KmsError::OutOfBounds { member, bound } => {
                return messages::out_of_bounds(*member, *bound);
            }
            KmsError::WrongKeyUsage { key, usage, needed } => {
                let message = messages::wrong_key_usage(key, *usage, *needed);
                return Self::new("InvalidKeyUsageException", message);
            }
            KmsError::IncompatibleAlgorithm {
                key,
                spec,
                algorithm,
            } => {
                let message = messages::incompatible_algorithm(key, *spec, *algorithm);
                return Self::new("InvalidKeyUsageException", message);
            }
            KmsError::UsageNotForSpec { usage, spec } => {
                return messages::usage_not_for_spec(usage.aws_name(), *spec);
            }
            KmsError::SpecCannot {
                key,
                spec,
                operation,
            } => {
                let message = messages::spec_cannot(key, *spec, *operation);
                return Self::new("UnsupportedOperationException", message);
            }
            KmsError::PlaintextTooLong {
                len,
                algorithm,
                spec,
                detail,
            } => {
                return Self::validation(messages::plaintext_too_long(
                    *len, *algorithm, *spec, detail,
                ));
            }
            KmsError::MaterialNotOfSpec { spec, detail } => {
                let message = messages::material_not_of_spec(*spec, detail);
                return Self::new("IncorrectKeyMaterialException", message);
            }
            KmsError::FencedElsewhere { key, fence, policy } => {
                return messages::fenced_elsewhere(key, &fence.to_string(), policy);
            }
            KmsError::UnknownFence { fence, policy } => {
                return messages::unknown_fence(&fence.to_string(), policy);
            }
            KmsError::DependencyTimeout(detail) => {
                tracing::warn!(detail = %detail, "key store unavailable");
                // AWS answers DependencyTimeoutException with 500; clients retry it.
                return Self {
                    status: 500,
                    code: "DependencyTimeoutException",
                    message: e.to_string(),
                };
            }
            KmsError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                return Self {
                    status: 500,
                    code: "KMSInternalException",
                    message: "An internal error occurred.".into(),
                };
            }
        };
        Self::new(code, e.to_string())
    }
}

impl From<SigV4Error> for ApiError {
    fn from(e: SigV4Error) -> Self {
        Self::new(e.aws_code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_detail() {
        let e = ApiError::from(KmsError::DependencyTimeout("store gone".into()));
        assert_eq!(
            (e.status, e.code, e.message.as_str()),
            (500, "DependencyTimeoutException", "store gone")
        );
        let e = ApiError::from(KmsError::Internal("domain key 3 missing".into()));
        assert_eq!((e.status, e.code), (500, "KMSInternalException"));
        assert!(!e.message.contains("domain key"));
    }

    #[test]
    fn shapes() {
        let e = ApiError::from(KmsError::NotFound("Key 'x' does not exist".into()));
        let v: serde_json::Value = serde_json::from_slice(&e.json_body()).unwrap();
        assert_eq!(v["__type"], "NotFoundException");
        assert_eq!(v["message"], "Key 'x' does not exist");
        let xml = String::from_utf8(ApiError::validation("a<b").xml_body("rid")).unwrap();
        assert!(xml.contains("<Code>ValidationException</Code><Message>a&lt;b</Message>"));
    }
}
