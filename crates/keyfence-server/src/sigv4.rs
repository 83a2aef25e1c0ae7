//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`, Authorization header form).
//!
//! [`verify`] authenticates an incoming request the way AWS KMS does and reports
//! failures with the same exception names and messages, so AWS SDKs and the AWS CLI
//! show their usual errors. [`sign`] produces the same signatures for keyfence's own
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

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_lc_rs::{digest, hmac};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use hyper::http::request::Parts;
use subtle::ConstantTimeEq;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};
use zeroize::Zeroizing;

/// The only signing algorithm supported.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Services a [`CredentialStore`] accepts in a credential scope by default.
pub const DEFAULT_SERVICES: &[&str] = &["kms", "sts"];

/// Allowed difference between the request time and the server clock (AWS: 15 minutes).
const MAX_SKEW: time::Duration = time::Duration::minutes(15);

/// Scope terminator.
const TERMINATOR: &str = "aws4_request";

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

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

/// An IAM-style user credential known to the server.
#[derive(Clone)]
pub struct Credential {
    /// Access key id (`AKIA…`), public.
    pub access_key_id: String,
    /// Secret access key; zeroized on drop, never printed.
    pub secret_access_key: Zeroizing<String>,
    /// 12-digit account id of the principal.
    pub account_id: String,
    /// IAM user name of the principal.
    pub user_name: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("user_name", &self.user_name)
            .finish()
    }
}

/// Two credentials in one [`CredentialStore`] share an access key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("duplicate access key id {0}")]
pub struct DuplicateAccessKeyId(pub String);

/// The credentials the server accepts, by access key id, and the services a credential
/// scope may name.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    by_access_key: HashMap<String, Credential>,
    services: Vec<String>,
    signing_keys: Arc<Mutex<SigningKeyCache>>,
}

/// Derived signing keys by (access key id, credential scope): a scope changes once a
/// day, so verification runs one HMAC per request instead of five.
#[derive(Default)]
struct SigningKeyCache(HashMap<(String, String), hmac::Key>);

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKeyCache({} keys)", self.0.len())
    }
}

/// Most cached signing keys before the cache starts over (scopes are client-chosen).
const SIGNING_KEY_CACHE_LIMIT: usize = 256;

impl CredentialStore {
    /// A store of `credentials` accepting scopes for [`DEFAULT_SERVICES`].
    pub fn new(
        credentials: impl IntoIterator<Item = Credential>,
    ) -> Result<Self, DuplicateAccessKeyId> {
        let mut by_access_key = HashMap::new();
        for credential in credentials {
            let id = credential.access_key_id.clone();
            if by_access_key.insert(id.clone(), credential).is_some() {
                return Err(DuplicateAccessKeyId(id));
            }
        }
        Ok(CredentialStore {
            by_access_key,
            services: DEFAULT_SERVICES.iter().map(|s| (*s).to_owned()).collect(),
            signing_keys: Arc::default(),
        })
    }

    /// Replaces the services a credential scope may name (e.g. `["kms"]`).
    pub fn with_services(mut self, services: &[&str]) -> Self {
        self.services = services.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// The credential with this access key id.
    pub fn get(&self, access_key_id: &str) -> Option<&Credential> {
        self.by_access_key.get(access_key_id)
    }

    /// The signing key of `credential` for `scope`, derived once per scope.
    fn signing_key(&self, credential: &Credential, scope: &Scope<'_>) -> hmac::Key {
        let id = (credential.access_key_id.clone(), scope.render());
        let mut cache = self.signing_keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = cache.0.get(&id) {
            return key.clone();
        }
        let key = signing_key(&credential.secret_access_key, scope);
        if cache.0.len() >= SIGNING_KEY_CACHE_LIMIT {
            cache.0.clear();
        }
        cache.0.insert(id, key.clone());
        key
    }
}

/// The authenticated principal of a request whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCaller {
    /// Access key id that signed the request.
    pub access_key_id: String,
    /// Account of the principal.
    pub account_id: String,
    /// IAM user name of the principal.
    pub user_name: String,
    /// Region named in the credential scope.
    pub region: String,
    /// Service named in the credential scope.
    pub service: String,
}

impl VerifiedCaller {
    /// The principal's ARN: `arn:aws:iam::{account}:user/{user}`.
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:user/{}", self.account_id, self.user_name)
    }
}

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

/// Verifies the SigV4 `Authorization` header of a request against `creds`, at server
/// time `now`.
///
/// `body` must be the complete request body. On success, returns the principal and the
/// region and service of the credential scope; the caller decides whether the region
/// is acceptable. Never panics on malformed input.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    creds: &CredentialStore,
    now: SystemTime,
) -> Result<VerifiedCaller, SigV4Error> {
    let result = verify_inner(parts, body, creds, now);
    if let Err(e) = &result {
        tracing::debug!(code = e.aws_code(), reason = %e, "SigV4 verification failed");
    }
    result
}

fn verify_inner(
    parts: &Parts,
    body: &[u8],
    creds: &CredentialStore,
    now: SystemTime,
) -> Result<VerifiedCaller, SigV4Error> {
    let mut values = parts.headers.get_all(AUTHORIZATION).iter();
    let header = values
        .next()
        .ok_or(SigV4Error::MissingAuthenticationToken)?;
    if values.next().is_some() {
        return Err(incomplete("Only one Authorization header is allowed."));
    }
    let auth = parse_authorization(header)?;
    let (amz_date, request_time) = request_time(parts)?;

    if auth.scope.date != &amz_date[..8] {
        return Err(SigV4Error::InvalidScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            auth.scope.date,
            &amz_date[..8],
            amz_date
        )));
    }
    if !creds.services.iter().any(|s| *s == auth.scope.service) {
        let expected = creds.services.first().map(String::as_str).unwrap_or("");
        return Err(SigV4Error::InvalidScope(format!(
            "Credential should be scoped to correct service: '{expected}'."
        )));
    }
    if auth.scope.terminator != TERMINATOR {
        return Err(SigV4Error::InvalidScope(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
            echo(auth.scope.terminator)
        )));
    }

    let credential = creds
        .get(auth.access_key_id)
        .ok_or(SigV4Error::UnrecognizedClient)?;

    check_clock(request_time, &amz_date, now)?;

    let payload_hash = payload_hash(parts, body)?;
    let canonical = canonical_request(parts, &auth.signed_headers, &payload_hash)?;
    let expected = signature(
        &creds.signing_key(credential, &auth.scope),
        &amz_date,
        &auth.scope,
        &canonical,
    );

    let provided = match hex::decode(auth.signature) {
        Ok(sig) if sig.len() == expected.len() => sig,
        _ => return Err(SigV4Error::InvalidSignature),
    };
    if !bool::from(expected.as_slice().ct_eq(provided.as_slice())) {
        return Err(SigV4Error::InvalidSignature);
    }

    Ok(VerifiedCaller {
        access_key_id: credential.access_key_id.clone(),
        account_id: credential.account_id.clone(),
        user_name: credential.user_name.clone(),
        region: auth.scope.region.to_owned(),
        service: auth.scope.service.to_owned(),
    })
}

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

/// Credential scope: `date/region/service/aws4_request`.
struct Scope<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
}

impl Scope<'_> {
    fn render(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }
}

/// The parsed `Authorization` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    scope: Scope<'a>,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn incomplete(msg: &str) -> SigV4Error {
    SigV4Error::IncompleteSignature(msg.to_owned())
}

/// A short, printable rendition of client input for error messages.
fn echo(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

fn parse_authorization(header: &HeaderValue) -> Result<Authorization<'_>, SigV4Error> {
    let value = header
        .to_str()
        .map_err(|_| incomplete("Authorization header contains invalid characters."))?;
    let (algorithm, rest) = value
        .trim()
        .split_once([' ', '\t'])
        .unwrap_or((value.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::IncompleteSignature(format!(
            "Unsupported AWS 'algorithm': '{}'. Only '{ALGORITHM}' is supported.",
            echo(algorithm)
        )));
    }

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, val)) = pair.split_once('=') else {
            return Err(SigV4Error::IncompleteSignature(format!(
                "'{}' not a valid key=value pair (missing equal-sign) in Authorization header.",
                echo(pair)
            )));
        };
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(SigV4Error::IncompleteSignature(format!(
                    "Unknown Authorization header parameter '{}'.",
                    echo(other)
                )))
            }
        };
        if slot.replace(val.trim()).is_some() {
            return Err(SigV4Error::IncompleteSignature(format!(
                "Authorization header has more than one '{}' parameter.",
                key.trim()
            )));
        }
    }

    let mut missing = String::new();
    for (name, present) in [
        ("Credential", credential.is_some()),
        ("Signature", signature.is_some()),
        ("SignedHeaders", signed_headers.is_some()),
    ] {
        if !present {
            if !missing.is_empty() {
                missing.push(' ');
            }
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter."
            ));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(SigV4Error::IncompleteSignature(missing));
    };

    let elements: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = elements[..] else {
        return Err(incomplete(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.",
        ));
    };
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(incomplete(
            "Credential must name an access key id, a region and a service.",
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::IncompleteSignature(format!(
            "Credential scope date '{}' must be in YYYYMMDD format.",
            echo(date)
        )));
    }

    let signed_headers: Vec<&str> = signed_headers.split(';').collect();
    if signed_headers.iter().any(|h| {
        h.is_empty()
            || HeaderName::from_bytes(h.as_bytes()).is_err()
            || h.bytes().any(|b| b.is_ascii_uppercase())
    }) {
        return Err(incomplete(
            "SignedHeaders must be a ';'-separated list of lowercase header names.",
        ));
    }
    if !signed_headers.contains(&"host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }

    Ok(Authorization {
        access_key_id,
        scope: Scope {
            date,
            region,
            service,
            terminator,
        },
        signed_headers,
        signature,
    })
}

/// The request timestamp in ISO-8601 basic format (`YYYYMMDDTHHMMSSZ`) and as a time,
/// from `X-Amz-Date` or else `Date` (basic format or IMF-fixdate).
fn request_time(parts: &Parts) -> Result<(String, OffsetDateTime), SigV4Error> {
    if let Some(value) = parts.headers.get(X_AMZ_DATE) {
        let text = value.to_str().unwrap_or("");
        let time = parse_basic(text).ok_or_else(|| bad_date(text))?;
        return Ok((text.to_owned(), time));
    }
    if let Some(value) = parts.headers.get(hyper::header::DATE) {
        let text = value.to_str().unwrap_or("");
        let time = parse_basic(text)
            .or_else(|| parse_http_date(text))
            .ok_or_else(|| bad_date(text))?;
        let basic = format_basic(time).ok_or_else(|| bad_date(text))?;
        return Ok((basic, time));
    }
    Err(incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    ))
}

fn bad_date(text: &str) -> SigV4Error {
    SigV4Error::IncompleteSignature(format!(
        "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
        echo(text)
    ))
}

fn parse_basic(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    let hour = u8::try_from(num(9..11)?).ok()?;
    let minute = u8::try_from(num(11..13)?).ok()?;
    let second = u8::try_from(num(13..15)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(s, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn format_basic(t: OffsetDateTime) -> Option<String> {
    let t = t.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

fn check_clock(request: OffsetDateTime, amz_date: &str, now: SystemTime) -> Result<(), SigV4Error> {
    let now = OffsetDateTime::from(now);
    let render = |t: OffsetDateTime| format_basic(t).unwrap_or_else(|| t.to_string());
    if request < now - MAX_SKEW {
        return Err(SigV4Error::SignatureExpired {
            request_time: amz_date.to_owned(),
            limit: render(now - MAX_SKEW),
            server_time: render(now),
        });
    }
    if request > now + MAX_SKEW {
        return Err(SigV4Error::SignatureNotYetCurrent {
            request_time: amz_date.to_owned(),
            limit: render(now + MAX_SKEW),
            server_time: render(now),
        });
    }
    Ok(())
}

/// Hex SHA-256 of the body, checked against `x-amz-content-sha256` when present.
fn payload_hash(parts: &Parts, body: &[u8]) -> Result<String, SigV4Error> {
    let computed = hex::encode(digest::digest(&digest::SHA256, body));
    if let Some(claimed) = parts.headers.get(X_AMZ_CONTENT_SHA256) {
        let claimed = claimed.to_str().map(str::trim).unwrap_or("");
        if claimed != UNSIGNED_PAYLOAD && !claimed.eq_ignore_ascii_case(&computed) {
            return Err(SigV4Error::PayloadHashMismatch);
        }
    }
    Ok(computed)
}

fn canonical_request(
    parts: &Parts,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Result<Vec<u8>, SigV4Error> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(parts.uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(parts.uri.query().unwrap_or("")).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = parts.headers.get_all(*name).iter().peekable();
        if values.peek().is_none() {
            // HTTP/2 carries the host in the :authority pseudo-header (the URI).
            match (*name, parts.uri.authority()) {
                ("host", Some(authority)) => out.extend_from_slice(authority.as_str().as_bytes()),
                _ => {
                    return Err(SigV4Error::IncompleteSignature(format!(
                        "Signed header '{name}' is not present in the request."
                    )))
                }
            }
        }
        let mut first = true;
        for value in values {
            if !first {
                out.push(b',');
            }
            first = false;
            push_trimmed(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

/// Appends `value` with leading/trailing whitespace removed and inner runs of spaces
/// and tabs collapsed into one space.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let mut in_ws = false;
    let start = out.len();
    for b in value {
        if is_ws(b) {
            in_ws = true;
        } else {
            if in_ws && out.len() > start {
                out.push(b' ');
            }
            in_ws = false;
            out.push(*b);
        }
    }
}

/// Normalized, URI-encoded path (non-S3 rules: dot segments resolved, empty segments
/// dropped, then each byte other than unreserved characters and `/` percent-encoded).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode(&mut out, segment.as_bytes());
    }
    if !segments.is_empty() && path.ends_with('/') {
        out.push('/');
    }
    out
}

/// Decoded, re-encoded and sorted query parameters joined with `&`.
fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut key = String::new();
            let mut val = String::new();
            uri_encode(&mut key, &percent_decode(k));
            uri_encode(&mut val, &percent_decode(v));
            (key, val)
        })
        .collect();
    params.sort();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                // Two hex digits: at most 0xFF.
                out.push(((hi << 4) | lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// RFC 3986 encoding as SigV4 defines it: unreserved characters kept, every other byte
/// as `%XX` (uppercase).
fn uri_encode(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// The SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" ‖ secret, date), region), service), "aws4_request")`.
fn signing_key(secret: &str, scope: &Scope<'_>) -> hmac::Key {
    let mut key = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    key.extend_from_slice(b"AWS4");
    key.extend_from_slice(secret.as_bytes());
    for part in [scope.date, scope.region, scope.service, TERMINATOR] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

/// The request signature: HMAC of the string to sign under the signing key.
fn signature(
    signing_key: &hmac::Key,
    amz_date: &str,
    scope: &Scope<'_>,
    canonical_request: &[u8],
) -> Zeroizing<Vec<u8>> {
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope.render(),
        hex::encode(digest::digest(&digest::SHA256, canonical_request))
    );
    Zeroizing::new(
        hmac::sign(signing_key, string_to_sign.as_bytes())
            .as_ref()
            .to_vec(),
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    Zeroizing::new(hmac::sign(&key, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uri_normalizes_like_the_aws_suite() {
        for (path, expected) in [
            ("/", "/"),
            ("", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/", "/a/b/"),
            ("/../../a", "/a"),
            ("/foo%20bar", "/foo%2520bar"),
            ("/-._~AZaz09", "/-._~AZaz09"),
        ] {
            assert_eq!(canonical_uri(path), expected, "{path:?}");
        }
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(
            canonical_query("Param2=value2&Param1=value1"),
            "Param1=value1&Param2=value2"
        );
        assert_eq!(
            canonical_query("Param1=value2&Param1=Value1"),
            "Param1=Value1&Param1=value2"
        );
        assert_eq!(canonical_query("%E1%88%B4=bar"), "%E1%88%B4=bar");
        assert_eq!(canonical_query("a&b=&&c=%2"), "a=&b=&c=%252");
        assert_eq!(canonical_query("k=a+b%20c"), "k=a%2Bb%20c");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut out = Vec::new();
        push_trimmed(&mut out, b"  \"a   b \t c\"  ");
        assert_eq!(out, b"\"a b c\"");
        out.clear();
        push_trimmed(&mut out, b"   ");
        assert!(out.is_empty());
    }

    #[test]
    fn dates_parse_strictly() {
        assert!(parse_basic("20150830T123600Z").is_some());
        for bad in [
            "",
            "20150830T123600",
            "2015083OT123600Z",
            "20151330T123600Z",
            "20150830T246000Z",
            "+0150830T123600Z",
            "20150830T12360\u{e9}",
        ] {
            assert!(parse_basic(bad).is_none(), "{bad:?}");
        }
        let t = parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT").expect("IMF-fixdate");
        assert_eq!(format_basic(t).as_deref(), Some("20150830T123600Z"));
    }

    #[test]
    fn credential_debug_redacts_secret() {
        let c = Credential {
            access_key_id: "AKID".into(),
            secret_access_key: Zeroizing::new("super-secret-value".into()),
            account_id: "111122223333".into(),
            user_name: "alice".into(),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("super-secret-value"));
        assert!(shown.contains("<redacted>"));
    }
}
