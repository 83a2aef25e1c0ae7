//! STS GetCallerIdentity over the query protocol, so `aws sts
//! get-caller-identity` works against a node.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::error::xml_escape;
use super::ApiError;
use crate::sigv4::VerifiedCaller;

/// Why a query-protocol form body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The body, or a decoded name or value, is not UTF-8.
    #[error("form body is not UTF-8")]
    NotUtf8,
    /// A `%` is not followed by two hex digits.
    #[error("malformed percent-encoding in form body")]
    MalformedEscape,
}

impl From<FormError> for ApiError {
    fn from(e: FormError) -> Self {
        ApiError::validation(e.to_string())
    }
}

/// Decodes an `application/x-www-form-urlencoded` body into pairs.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let text = std::str::from_utf8(body).map_err(|_| FormError::NotUtf8)?;
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// One name or value: `+` is a space and `%XX` a byte; the bytes must be UTF-8.
///
/// `percent-encoding` keeps a malformed escape as literal text; AWS SDKs never send
/// one, so it is refused here rather than guessed at.
fn decode(s: &str) -> Result<String, FormError> {
    let bytes = s.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || matches!(bytes.get(i + 1..i + 3), Some([hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit())
    });
    if !well_formed {
        return Err(FormError::MalformedEscape);
    }
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| FormError::NotUtf8)
}

/// Answers a query-protocol request; only `GetCallerIdentity` exists.
pub fn handle(
    caller: &VerifiedCaller,
    form: &[(String, String)],
    request_id: &str,
) -> Result<Vec<u8>, ApiError> {
    let action = form
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str());
    match action {
        Some("GetCallerIdentity") => Ok(format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
            xml_escape(&caller.arn()),
            xml_escape(&caller.access_key_id),
            xml_escape(&caller.account_id),
        )
        .into_bytes()),
        Some(other) => Err(ApiError::new("InvalidAction", format!("Could not find operation {other} for version 2011-06-15"))),
        None => Err(ApiError::new("MissingAction", "Missing Action parameter")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = parse_form(b"Action=GetCallerIdentity&Version=2011-06-15&x=a%2Bb+c").unwrap();
        assert_eq!(f[0], ("Action".into(), "GetCallerIdentity".into()));
        assert_eq!(f[2], ("x".into(), "a+b c".into()));
        assert_eq!(
            parse_form(b"k=%7e%2F%E2%82%AC&=&&flag").unwrap(),
            [
                ("k".into(), "~/\u{20ac}".into()),
                (String::new(), String::new()),
                ("flag".into(), String::new()),
            ]
        );
        for bad in [
            &b"a=%zz"[..],
            b"a=%2",
            b"a=%",
            b"a=%+f",
            b"a=%-1",
            b"a=% f",
            b"%g0=1",
            b"a=%%41",
        ] {
            assert_eq!(parse_form(bad), Err(FormError::MalformedEscape), "{bad:?}");
        }
        for bad in [&b"a=%ff"[..], b"\xff=1", b"a=%C3"] {
            assert_eq!(parse_form(bad), Err(FormError::NotUtf8), "{bad:?}");
        }
        let err = ApiError::from(FormError::MalformedEscape);
        assert_eq!(err.code, "ValidationException");
    }

    /// Every body of up to four symbols from an alphabet of escape fragments decodes
    /// or is refused with a typed error; a refused escape is always malformed.
    #[test]
    fn every_short_body_decodes_or_is_refused() {
        const ALPHABET: &[&[u8]] = &[b"%", b"+", b"2", b"f", b"z", b"=", b"&", b"\xff", b"a"];
        let mut body = Vec::new();
        for n in 0..ALPHABET.len().pow(4) {
            body.clear();
            let mut i = n;
            for _ in 0..4 {
                body.extend_from_slice(ALPHABET[i % ALPHABET.len()]);
                i /= ALPHABET.len();
            }
            match parse_form(&body) {
                Ok(pairs) => {
                    for (k, v) in pairs {
                        assert!(!k.contains('+') && !v.contains('+'), "{body:?}");
                    }
                }
                Err(FormError::MalformedEscape) => assert!(body.contains(&b'%'), "{body:?}"),
                Err(FormError::NotUtf8) => {}
            }
        }
    }

    #[test]
    fn caller_identity() {
        let caller = VerifiedCaller {
            access_key_id: "AKIAX".into(),
            account_id: "111122223333".into(),
            user_name: "admin".into(),
            region: "us-east-1".into(),
            service: "sts".into(),
        };
        let xml = String::from_utf8(
            handle(
                &caller,
                &parse_form(b"Action=GetCallerIdentity").unwrap(),
                "r",
            )
            .unwrap(),
        )
        .unwrap();
        assert!(xml.contains("<Account>111122223333</Account>"));
        assert!(xml.contains("<Arn>arn:aws:iam::111122223333:user/admin</Arn>"));
        assert_eq!(
            handle(&caller, &[], "r").err().unwrap().code,
            "MissingAction"
        );
    }
}
