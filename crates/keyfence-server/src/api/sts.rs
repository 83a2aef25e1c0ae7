//! STS GetCallerIdentity over the query protocol, so `aws sts
//! get-caller-identity` works against a node.

use super::error::xml_escape;
use super::ApiError;
use crate::sigv4::VerifiedCaller;

/// Decodes an `application/x-www-form-urlencoded` body into pairs.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::validation("form body is not UTF-8"))?;
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::validation("malformed percent-encoding in form body");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
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
        for bad in [&b"a=%zz"[..], b"a=%2", b"a=%ff", b"\xff=1"] {
            assert!(parse_form(bad).is_err());
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
