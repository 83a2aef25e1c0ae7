//! Client-side signing, for keyfence's own clients (`keyfence bench`, `keyfence key
//! import`, tests).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST};
use hyper::http::request::Parts;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::canonical::{canonical_request, signature, signing_key};
use super::parse::{format_basic, Scope};
use super::{incomplete, SigV4Error, ALGORITHM, TERMINATOR, X_AMZ_DATE};

/// Headers a [`Signer`] never signs (hop-by-hop, or changed by proxies).
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "te",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// What [`sign()`] signs with.
pub struct SigningParams<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Region of the credential scope.
    pub region: &'a str,
    /// Service of the credential scope (`kms`).
    pub service: &'a str,
    /// Signing time.
    pub time: SystemTime,
}

impl fmt::Debug for SigningParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningParams")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("time", &self.time)
            .finish()
    }
}

/// Signs a request in place: sets `X-Amz-Date` and `Authorization`, and `Host` from
/// the URI authority if absent. Every header present is signed except hop-by-hop ones
/// and `user-agent`; the payload hash is the SHA-256 of `body`.
///
/// A one-shot [`Signer`]; keep a [`Signer`] to sign many requests.
pub fn sign(parts: &mut Parts, body: &[u8], params: &SigningParams<'_>) -> Result<(), SigV4Error> {
    if !parts.headers.contains_key(HOST) {
        let authority = parts.uri.authority().ok_or_else(no_host)?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| incomplete("Invalid host."))?;
        parts.headers.insert(HOST, host);
    }
    Signer::new(
        params.access_key_id,
        params.secret_access_key,
        params.region,
        params.service,
    )
    .sign(parts, body, params.time)
}

/// Hex SHA-256 of a request body, the payload hash [`Signer::sign_with_payload_hash`]
/// takes.
pub fn payload_hash(body: &[u8]) -> String {
    super::canonical::Sha256Hex::of(body).as_str().to_owned()
}

/// A client-side signer for one credential, region and service.
///
/// What stays constant is kept: the signing key for the (access key, scope) of the
/// current day, derived again when the day changes, and the `X-Amz-Date` value of the
/// current second. The canonical request, string to sign and signature are computed
/// for every request, so each request carries a fresh signature. Clone it to sign on
/// several connections; clones share nothing mutable.
#[derive(Clone)]
pub struct Signer {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    region: String,
    service: String,
    /// Signing key and scope of the current day.
    day: Option<Day>,
    /// The `X-Amz-Date` value and the Unix second it renders.
    date: Option<(u64, HeaderValue)>,
}

/// What a [`Signer`] keeps for one day of credential scope.
#[derive(Clone)]
struct Day {
    /// `yyyymmdd`.
    date: String,
    /// The signing key for the (access key, scope).
    key: hmac::Key,
    /// The rendered scope, `date/region/service/aws4_request`.
    scope: String,
    /// `AWS4-HMAC-SHA256 Credential=…/scope, SignedHeaders=`.
    auth_prefix: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for a credential and the region and service of its scope (`kms`).
    pub fn new(access_key_id: &str, secret_access_key: &str, region: &str, service: &str) -> Self {
        Signer {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: Zeroizing::new(secret_access_key.to_owned()),
            region: region.to_owned(),
            service: service.to_owned(),
            day: None,
            date: None,
        }
    }

    /// Signs a request in place at `time`, with the SHA-256 of `body` as payload hash.
    /// See [`Signer::sign_with_payload_hash`].
    pub fn sign(
        &mut self,
        parts: &mut Parts,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), SigV4Error> {
        self.sign_with_payload_hash(parts, &payload_hash(body), time)
    }

    /// Signs a request in place at `time`: sets `X-Amz-Date` and `Authorization`.
    /// Every header present is signed except hop-by-hop ones and `user-agent`, and
    /// always `host`: the `Host` header or, when there is none, the URI authority
    /// (HTTP/2 `:authority`), which is signed but not added as a header.
    /// `payload_hash` is the hex SHA-256 of the body ([`payload_hash`]), for a body
    /// sent many times.
    pub fn sign_with_payload_hash(
        &mut self,
        parts: &mut Parts,
        payload_hash: &str,
        time: SystemTime,
    ) -> Result<(), SigV4Error> {
        let amz_date = self.amz_date(time)?;
        parts
            .headers
            .insert(HeaderName::from_static(X_AMZ_DATE), amz_date.clone());
        parts.headers.remove(AUTHORIZATION);
        let amz_date = amz_date.to_str().map_err(|_| incomplete("Invalid date."))?;

        let mut names: Vec<&str> = parts
            .headers
            .keys()
            .map(HeaderName::as_str)
            .filter(|n| !UNSIGNED_HEADERS.contains(n))
            .collect();
        if !parts.headers.contains_key(HOST) {
            parts.uri.authority().ok_or_else(no_host)?;
            names.push(HOST.as_str());
        }
        names.sort_unstable();
        names.dedup();
        let canonical = canonical_request(parts, &names, payload_hash)?;
        let day = self.day(&amz_date[..8]);
        let sig = signature(&day.key, amz_date, &day.scope, &canonical);
        let mut value = String::with_capacity(day.auth_prefix.len() + 160);
        value.push_str(&day.auth_prefix);
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                value.push(';');
            }
            value.push_str(name);
        }
        value.push_str(", Signature=");
        value.push_str(&hex::encode(sig.as_ref()));
        let value =
            HeaderValue::from_str(&value).map_err(|_| incomplete("Invalid access key id."))?;
        parts.headers.insert(AUTHORIZATION, value);
        Ok(())
    }

    /// What is constant for the day `date` (`yyyymmdd`), derived when it changes.
    fn day(&mut self, date: &str) -> &Day {
        if self.day.as_ref().is_none_or(|d| d.date != date) {
            let scope = Scope {
                date,
                region: &self.region,
                service: &self.service,
                terminator: TERMINATOR,
            };
            let rendered = scope.render();
            self.day = Some(Day {
                date: date.to_owned(),
                key: signing_key(&self.secret_access_key, &scope),
                auth_prefix: format!(
                    "{ALGORITHM} Credential={}/{rendered}, SignedHeaders=",
                    self.access_key_id
                ),
                scope: rendered,
            });
        }
        self.day.as_ref().expect("set above")
    }

    /// The `X-Amz-Date` value for `time`, formatted once per second.
    fn amz_date(&mut self, time: SystemTime) -> Result<HeaderValue, SigV4Error> {
        // Before 1970 there is no cache, only the formatting below.
        let second = time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
        if let (Some(second), Some((cached, value))) = (second, &self.date) {
            if *cached == second {
                return Ok(value.clone());
            }
        }
        let text = format_basic(OffsetDateTime::from(time))
            .ok_or_else(|| incomplete("Signing time must be between years 0 and 9999."))?;
        let value = HeaderValue::from_str(&text).map_err(|_| incomplete("Invalid date."))?;
        if let Some(second) = second {
            self.date = Some((second, value.clone()));
        }
        Ok(value)
    }
}

fn no_host() -> SigV4Error {
    incomplete("A Host header or an absolute URI is required.")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::Request;

    use super::*;
    use crate::sigv4::{verify, Credential, CredentialStore};

    const ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn request(uri: &str, host: Option<&str>) -> Parts {
        let mut builder = Request::post(uri)
            .header("x-amz-target", "TrentService.Encrypt")
            .header("content-type", "application/x-amz-json-1.1");
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    fn header<'a>(parts: &'a Parts, name: &str) -> &'a str {
        parts.headers[name].to_str().unwrap()
    }

    #[test]
    fn dates_are_formatted_in_utc() {
        let mut signer = Signer::new(ID, SECRET, "us-east-1", "kms");
        for (unix, expected) in [
            (0, "19700101T000000Z"),
            (951_782_400, "20000229T000000Z"),
            (1_440_938_160, "20150830T123600Z"),
            (4_102_444_799, "20991231T235959Z"),
        ] {
            let mut parts = request("/", Some("h:1"));
            signer.sign(&mut parts, b"", at(unix)).unwrap();
            assert_eq!(header(&parts, "x-amz-date"), expected);
            let scope = format!("/{}/us-east-1/kms/aws4_request", &expected[..8]);
            assert!(header(&parts, "authorization").contains(&scope));
        }
    }

    #[test]
    fn cached_key_and_date_follow_the_clock() {
        let t = at(1_763_942_399); // 2025-11-23 23:59:59
        let mut signer = Signer::new("AKID", "secret", "us-east-1", "kms");
        let hash = payload_hash(b"{}");
        let sign = |signer: &mut Signer, time| {
            let mut parts = request("/", Some("h:1"));
            signer
                .sign_with_payload_hash(&mut parts, &hash, time)
                .unwrap();
            (
                header(&parts, "x-amz-date").to_owned(),
                header(&parts, "authorization").to_owned(),
            )
        };
        let (d1, a1) = sign(&mut signer, t);
        assert_eq!(sign(&mut signer, t), (d1.clone(), a1.clone()));
        let (d2, a2) = sign(&mut signer, t + Duration::from_secs(1));
        assert_ne!(d1, d2);
        assert!(a1.contains("/20251123/"), "{a1}");
        assert!(a2.contains("/20251124/"), "{a2}");
        // After the day changed, a fresh signer agrees with the cached one.
        let mut fresh = Signer::new("AKID", "secret", "us-east-1", "kms");
        assert_eq!(sign(&mut fresh, t + Duration::from_secs(1)).1, a2);
        // And so does the one-shot signer.
        let mut parts = request("/", Some("h:1"));
        super::sign(
            &mut parts,
            b"{}",
            &SigningParams {
                access_key_id: "AKID",
                secret_access_key: "secret",
                region: "us-east-1",
                service: "kms",
                time: t + Duration::from_secs(1),
            },
        )
        .unwrap();
        assert_eq!(header(&parts, "authorization"), a2);
    }

    #[test]
    fn signed_requests_verify_with_host_header_or_authority() {
        let store = CredentialStore::new([Credential {
            access_key_id: ID.into(),
            secret_access_key: Zeroizing::new(SECRET.into()),
            account_id: "111122223333".into(),
            user_name: "admin".into(),
        }])
        .unwrap();
        let now = SystemTime::now();
        let mut signer = Signer::new(ID, SECRET, "eu-west-3", "kms");
        let body = br#"{"KeyId":"k","Plaintext":"AA=="}"#;

        // HTTP/1.1: origin-form URI and a Host header.
        let mut h1 = request("/", Some("127.0.0.1:8443"));
        signer.sign(&mut h1, body, now).unwrap();
        let caller = verify(&h1, body, &store, now).unwrap();
        assert_eq!(caller.region, "eu-west-3");
        assert!(header(&h1, "authorization")
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"));

        // HTTP/2: the authority is in the URI; host is signed, no header is added.
        let mut h2 = request("https://127.0.0.1:8443/", None);
        signer.sign(&mut h2, body, now).unwrap();
        assert!(!h2.headers.contains_key(HOST));
        assert!(header(&h2, "authorization")
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"));
        verify(&h2, body, &store, now).unwrap();

        // Another body under the same signature does not verify.
        assert_eq!(
            verify(&h2, b"{}", &store, now),
            Err(SigV4Error::InvalidSignature)
        );
        // Without a Host header or an authority there is nothing to sign as host.
        let mut none = request("/", None);
        assert!(matches!(
            signer.sign(&mut none, body, now),
            Err(SigV4Error::IncompleteSignature(_))
        ));
    }

    #[test]
    fn debug_redacts_secret() {
        let shown = format!("{:?}", Signer::new(ID, SECRET, "us-east-1", "kms"));
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
