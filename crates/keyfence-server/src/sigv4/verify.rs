//! Server-side verification: the credentials the node accepts, their cached signing
//! keys, and the checks of an incoming request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_lc_rs::hmac;
use hyper::header::AUTHORIZATION;
use hyper::http::request::Parts;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::canonical::{canonical_request, signature, signing_key, Sha256Hex};
use super::parse::{format_basic, parse_authorization, request_time, Scope};
use super::{echo, incomplete, SigV4Error, TERMINATOR, X_AMZ_DATE};

/// Services a [`CredentialStore`] accepts in a credential scope by default.
pub const DEFAULT_SERVICES: &[&str] = &["kms", "sts"];

/// Allowed difference between the request time and the server clock (AWS: 15 minutes).
const MAX_SKEW: time::Duration = time::Duration::minutes(15);

const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";

/// Longest region name accepted in a credential scope (AWS's longest is 14).
const MAX_REGION_LEN: usize = 32;
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

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

/// Derived signing keys by access key id, then credential scope: a scope changes
/// once a day, so verification runs one HMAC per request instead of five. Two
/// levels so that a lookup borrows both strings (no allocation per request).
#[derive(Default)]
struct SigningKeyCache {
    by_access_key: HashMap<String, HashMap<String, hmac::Key>>,
    len: usize,
}

impl SigningKeyCache {
    fn get(&self, access_key_id: &str, scope: &str) -> Option<&hmac::Key> {
        self.by_access_key.get(access_key_id)?.get(scope)
    }

    fn insert(&mut self, access_key_id: &str, scope: String, key: hmac::Key) {
        if self.len >= SIGNING_KEY_CACHE_LIMIT {
            self.by_access_key.clear();
            self.len = 0;
        }
        let scopes = self
            .by_access_key
            .entry(access_key_id.to_owned())
            .or_default();
        if scopes.insert(scope, key).is_none() {
            self.len += 1;
        }
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKeyCache({} keys)", self.len)
    }
}

/// An HMAC-SHA256 signature, in bytes (64 hex digits on the wire).
const SIGNATURE_BYTES: usize = 32;

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

    /// The cached signing key of `credential` for `rendered_scope`, or one
    /// derived now (not cached: [`Self::remember`] caches it once a signature
    /// verified with it).
    fn signing_key(
        &self,
        credential: &Credential,
        scope: &Scope<'_>,
        rendered_scope: &str,
    ) -> (hmac::Key, bool) {
        let cached = self
            .signing_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&credential.access_key_id, rendered_scope)
            .cloned();
        match cached {
            Some(key) => (key, true),
            None => (signing_key(&credential.secret_access_key, scope), false),
        }
    }

    /// Caches a signing key a signature has just verified with.
    fn remember(&self, credential: &Credential, rendered_scope: String, key: hmac::Key) {
        self.signing_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(&credential.access_key_id, rendered_scope, key);
    }

    /// Signing keys cached now (at most 256; only keys a signature verified with).
    pub fn cached_signing_keys(&self) -> usize {
        self.signing_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len
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
    if !is_region_name(auth.scope.region) {
        return Err(SigV4Error::InvalidScope(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            echo(auth.scope.region)
        )));
    }

    let credential = creds
        .get(auth.access_key_id)
        .ok_or(SigV4Error::UnrecognizedClient)?;
    // Every credential is permanent: a session token cannot belong to it.
    if parts.headers.contains_key(X_AMZ_SECURITY_TOKEN) {
        return Err(SigV4Error::UnrecognizedClient);
    }

    check_clock(request_time, &amz_date, now)?;
    check_signed_headers(parts, &auth.signed_headers)?;

    let payload_hash = payload_hash(parts, body)?;
    let canonical = canonical_request(parts, &auth.signed_headers, payload_hash.as_str())?;
    let scope = auth.scope_text;
    let (key, cached) = creds.signing_key(credential, &auth.scope, scope);
    let expected = signature(&key, &amz_date, scope, &canonical);

    let mut provided = [0u8; SIGNATURE_BYTES];
    if expected.as_ref().len() != SIGNATURE_BYTES
        || hex::decode_to_slice(auth.signature, &mut provided).is_err()
    {
        return Err(SigV4Error::InvalidSignature);
    }
    if !bool::from(expected.as_ref().ct_eq(&provided)) {
        return Err(SigV4Error::InvalidSignature);
    }
    if !cached {
        creds.remember(credential, scope.to_owned(), key);
    }

    Ok(VerifiedCaller {
        access_key_id: credential.access_key_id.clone(),
        account_id: credential.account_id.clone(),
        user_name: credential.user_name.clone(),
        region: auth.scope.region.to_owned(),
        service: auth.scope.service.to_owned(),
    })
}

/// A region name as AWS writes them (`us-east-1`, `us-gov-west-1`): lowercase
/// letters, digits and dashes, at most [`MAX_REGION_LEN`] bytes.
fn is_region_name(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= MAX_REGION_LEN
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The headers the signature must cover, so a captured request cannot be
/// replayed with a header changed: `host`, the date header the time came from
/// (`x-amz-date`, else `date`), `content-type` and `x-amz-target` when present,
/// and every other `x-amz-*` header present.
fn check_signed_headers(parts: &Parts, signed: &[&str]) -> Result<(), SigV4Error> {
    let date = if parts.headers.contains_key(X_AMZ_DATE) {
        X_AMZ_DATE
    } else {
        "date"
    };
    let required = parts
        .headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| *n == "content-type" || n.starts_with("x-amz-"))
        .chain(["host", date]);
    for name in required {
        if !signed.contains(&name) {
            return Err(SigV4Error::IncompleteSignature(format!(
                "'{}' must be a 'SignedHeader' in the AWS Authorization.",
                echo(name)
            )));
        }
    }
    Ok(())
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
fn payload_hash(parts: &Parts, body: &[u8]) -> Result<Sha256Hex, SigV4Error> {
    let computed = Sha256Hex::of(body);
    if let Some(claimed) = parts.headers.get(X_AMZ_CONTENT_SHA256) {
        let claimed = claimed.to_str().map(str::trim).unwrap_or("");
        if claimed != UNSIGNED_PAYLOAD && !claimed.eq_ignore_ascii_case(computed.as_str()) {
            return Err(SigV4Error::PayloadHashMismatch);
        }
    }
    Ok(computed)
}

#[cfg(test)]
mod tests {
    use super::*;

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
