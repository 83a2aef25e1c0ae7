//! STS GetCallerIdentity over the query protocol, so `aws sts
//! get-caller-identity` works against a node.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::error::xml_escape;
use super::ApiError;
use crate::sigv4::VerifiedCaller;
use keyfence_core::authz::{Principal, PrincipalKind};

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

/// The caller's `UserId` in AWS's form for an IAM user: `AIDA` and 17 characters of
/// `A–Z2–7`, stable and unique per account and access key id (the first 85 bits of
/// SHA-256 over both, base32).
pub fn user_id(account_id: &str, access_key_id: &str) -> String {
    const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut input = Vec::with_capacity(account_id.len() + access_key_id.len() + 1);
    input.extend_from_slice(account_id.as_bytes());
    input.push(0);
    input.extend_from_slice(access_key_id.as_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let bits = u128::from_be_bytes(digest.as_ref()[..16].try_into().expect("16 bytes"));
    let mut id = String::from("AIDA");
    for i in 0..17 {
        id.push(char::from(
            BASE32[((bits >> (123 - 5 * i)) & 0x1f) as usize],
        ));
    }
    id
}

/// The caller as GetCallerIdentity reports it: `(Arn, UserId)`. A credential
/// acting as a role is an assumed-role session, as AWS reports one: the role's
/// name (without its path) and the credential's user name as session name, and
/// a role `UserId` (`AROA…:SESSION`).
fn identity(caller: &VerifiedCaller, principal: &Principal) -> (String, String) {
    let id = user_id(&caller.account_id, &caller.access_key_id);
    match principal.kind() {
        PrincipalKind::Role => {
            let role = principal.arn().rsplit('/').next().unwrap_or_default();
            let session = &caller.user_name;
            (
                format!(
                    "arn:aws:sts::{}:assumed-role/{role}/{session}",
                    principal.account()
                ),
                format!("AROA{}:{session}", &id[4..]),
            )
        }
        _ => (principal.arn().to_string(), id),
    }
}

/// Answers a query-protocol request; only `GetCallerIdentity` exists.
/// `principal` is who the credential acts as (an IAM user or role).
pub fn handle(
    caller: &VerifiedCaller,
    principal: &Principal,
    form: &[(String, String)],
    request_id: &str,
) -> Result<Vec<u8>, ApiError> {
    let action = form
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str());
    match action {
        Some("GetCallerIdentity") => {
            let (arn, user_id) = identity(caller, principal);
            Ok(format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
                xml_escape(&arn),
                xml_escape(&user_id),
                xml_escape(principal.account()),
            )
            .into_bytes())
        }
        Some(other) => Err(ApiError::new(
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
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
    fn user_ids_have_the_aws_shape_and_are_stable_and_distinct() {
        let id = user_id("111122223333", "AKIAEXAMPLE");
        assert_eq!(id.len(), 21, "{id}");
        assert!(id.starts_with("AIDA"), "{id}");
        assert!(id[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(id, user_id("111122223333", "AKIAEXAMPLE"), "stable");
        assert_ne!(id, user_id("111122223333", "AKIAOTHER"));
        assert_ne!(id, user_id("444455556666", "AKIAEXAMPLE"));
        // No ambiguity between the two inputs.
        assert_ne!(user_id("1", "23"), user_id("12", "3"));
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
        let user = Principal::user("111122223333", "admin");
        let xml = String::from_utf8(
            handle(
                &caller,
                &user,
                &parse_form(b"Action=GetCallerIdentity").unwrap(),
                "r",
            )
            .unwrap(),
        )
        .unwrap();
        assert!(xml.contains("<Account>111122223333</Account>"));
        assert!(xml.contains("<Arn>arn:aws:iam::111122223333:user/admin</Arn>"));
        let id = user_id("111122223333", "AKIAX");
        assert!(xml.contains(&format!("<UserId>{id}</UserId>")), "{xml}");
        assert_eq!(
            handle(&caller, &user, &[], "r").err().unwrap().code,
            "MissingAction"
        );
        // A credential acting as a role is an assumed-role session.
        let role = Principal::parse_arn("arn:aws:iam::111122223333:role/ops/Deployer").unwrap();
        let xml = String::from_utf8(
            handle(
                &caller,
                &role,
                &parse_form(b"Action=GetCallerIdentity").unwrap(),
                "r",
            )
            .unwrap(),
        )
        .unwrap();
        assert!(
            xml.contains("<Arn>arn:aws:sts::111122223333:assumed-role/Deployer/admin</Arn>"),
            "{xml}"
        );
        assert!(
            xml.contains(&format!("<UserId>AROA{}:admin</UserId>", &id[4..])),
            "{xml}"
        );
    }
}
