//! Client-side signing, for keyfence's own clients (`keyfence bench`, `keyfence key
//! import`, tests).

use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::digest;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use hyper::http::request::Parts;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::canonical::{canonical_request, signature, signing_key};
use super::parse::{format_basic, Scope};
use super::{incomplete, SigV4Error, ALGORITHM, TERMINATOR, X_AMZ_DATE};

/// Headers [`sign`] never signs (hop-by-hop, or changed by proxies).
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

/// What [`sign`] signs with.
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
pub fn sign(parts: &mut Parts, body: &[u8], params: &SigningParams<'_>) -> Result<(), SigV4Error> {
    let time = OffsetDateTime::from(params.time);
    let amz_date = format_basic(time)
        .ok_or_else(|| incomplete("Signing time must be between years 0 and 9999."))?;
    if !parts.headers.contains_key(hyper::header::HOST) {
        let authority = parts
            .uri
            .authority()
            .ok_or_else(|| incomplete("A Host header or an absolute URI is required."))?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| incomplete("Invalid host."))?;
        parts.headers.insert(hyper::header::HOST, host);
    }
    let date_value = HeaderValue::from_str(&amz_date).map_err(|_| incomplete("Invalid date."))?;
    parts
        .headers
        .insert(HeaderName::from_static(X_AMZ_DATE), date_value);
    parts.headers.remove(AUTHORIZATION);

    let mut names: Vec<&str> = parts
        .headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|n| !UNSIGNED_HEADERS.contains(n))
        .collect();
    names.sort_unstable();
    names.dedup();
    let scope = Scope {
        date: &amz_date[..8],
        region: params.region,
        service: params.service,
        terminator: TERMINATOR,
    };
    let payload_hash = hex::encode(digest::digest(&digest::SHA256, body));
    let canonical = canonical_request(parts, &names, &payload_hash)?;
    let secret = Zeroizing::new(params.secret_access_key.to_owned());
    let sig = signature(&signing_key(&secret, &scope), &amz_date, &scope, &canonical);
    let value = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
        params.access_key_id,
        scope.render(),
        names.join(";"),
        hex::encode(sig.as_slice())
    );
    let value = HeaderValue::from_str(&value).map_err(|_| incomplete("Invalid access key id."))?;
    parts.headers.insert(AUTHORIZATION, value);
    Ok(())
}
