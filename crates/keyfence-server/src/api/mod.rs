//! The wire protocols: AWS KMS JSON 1.1 (`X-Amz-Target: TrentService.*`) and
//! the one STS query action clients use to check their credentials.

pub mod error;
pub mod kms;
pub mod messages;
pub mod names;
pub mod sts;
mod wire;

pub use error::ApiError;

/// Which protocol a request speaks, decided before authentication so errors
/// come back in the shape the client parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.1 with the KMS operation name.
    Kms(String),
    /// keyfence's cluster admin API (`X-Amz-Target: KeyfenceAdmin.*`).
    Admin(String),
    /// AWS query protocol (form-encoded), as STS uses.
    Query,
    /// Neither.
    Unknown,
}

/// Classifies a request by its `X-Amz-Target` and `Content-Type` headers.
pub fn classify(target: Option<&str>, content_type: Option<&str>) -> Protocol {
    if let Some(t) = target {
        if let Some(op) = t.strip_prefix(crate::admin::TARGET_PREFIX) {
            return Protocol::Admin(op.to_string());
        }
        return match t.strip_prefix("TrentService.") {
            Some(op) => Protocol::Kms(op.to_string()),
            None => Protocol::Unknown,
        };
    }
    match content_type {
        Some(ct) if ct.starts_with("application/x-www-form-urlencoded") => Protocol::Query,
        _ => Protocol::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(
            classify(Some("TrentService.Encrypt"), None),
            Protocol::Kms("Encrypt".into())
        );
        assert_eq!(classify(Some("Other.Encrypt"), None), Protocol::Unknown);
        assert_eq!(
            classify(Some("KeyfenceAdmin.ApproveNode"), None),
            Protocol::Admin("ApproveNode".into())
        );
        assert_eq!(
            classify(
                None,
                Some("application/x-www-form-urlencoded; charset=utf-8")
            ),
            Protocol::Query
        );
        assert_eq!(classify(None, Some("application/json")), Protocol::Unknown);
    }
}
