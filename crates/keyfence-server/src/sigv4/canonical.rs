//! The canonical request, the string to sign and the key derivation, shared by
//! verification and signing.

use std::borrow::Cow;

use aws_lc_rs::{digest, hmac};
use hyper::http::request::Parts;
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

use super::parse::Scope;
use super::{SigV4Error, ALGORITHM, TERMINATOR};

/// What SigV4 percent-encodes (RFC 3986 as SigV4 defines it): every byte but the
/// unreserved characters `A-Z a-z 0-9 - _ . ~`, as `%XX` with uppercase hex.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(super) fn canonical_request(
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
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(name.as_bytes());
    }
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
fn canonical_uri(path: &str) -> Cow<'_, str> {
    if path == "/" {
        return Cow::Borrowed(path);
    }
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
        out.extend(percent_encode(segment.as_bytes(), SIGV4_ENCODE));
    }
    if !segments.is_empty() && path.ends_with('/') {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Decoded, re-encoded and sorted query parameters joined with `&`.
///
/// A `%` not followed by two hex digits (`%2`, `%zz`, `%+f`) is not an escape: it is
/// kept as the literal character and so re-encoded as `%25`, the same on the signing
/// and the verifying side.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let encode = |s: &str| {
        let decoded: Cow<'_, [u8]> = percent_decode_str(s).into();
        percent_encode(&decoded, SIGV4_ENCODE).to_string()
    };
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k), encode(v))
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

/// The SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" ‖ secret, date), region), service), "aws4_request")`.
pub(super) fn signing_key(secret: &str, scope: &Scope<'_>) -> hmac::Key {
    let mut key = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    key.extend_from_slice(b"AWS4");
    key.extend_from_slice(secret.as_bytes());
    for part in [scope.date, scope.region, scope.service, TERMINATOR] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

/// The lowercase hex SHA-256 of some bytes, on the stack: SigV4 hashes the body
/// and the canonical request into hex on every request.
pub(super) struct Sha256Hex([u8; 64]);

impl Sha256Hex {
    /// The hex SHA-256 of `data`.
    pub(super) fn of(data: &[u8]) -> Self {
        let mut out = [0u8; 64];
        // 32 digest bytes always fill 64 hex characters exactly.
        let _ = hex::encode_to_slice(digest::digest(&digest::SHA256, data), &mut out);
        Self(out)
    }

    /// The 64 hex characters.
    pub(super) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into the array.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The request signature: HMAC of the string to sign under the signing key,
/// fed to the HMAC piece by piece (the string to sign is never built).
/// `scope` is the rendered credential scope (`date/region/service/aws4_request`).
pub(super) fn signature(
    signing_key: &hmac::Key,
    amz_date: &str,
    scope: &str,
    canonical_request: &[u8],
) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(signing_key);
    for part in [ALGORITHM, "\n", amz_date, "\n", scope, "\n"] {
        ctx.update(part.as_bytes());
    }
    ctx.update(Sha256Hex::of(canonical_request).as_str().as_bytes());
    ctx.sign()
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
        assert_eq!(canonical_query("k=%7e%2f%E9"), "k=~%2F%E9");
    }

    #[test]
    fn malformed_escapes_in_the_query_are_kept_literally() {
        // `%` without two hex digits after it is a literal `%` (encoded `%25`); the
        // `+` of `%+f` is not a hex digit (u8::from_str_radix would accept "+f").
        for (query, expected) in [
            ("k=%+f", "k=%25%2Bf"),
            ("k=%2", "k=%252"),
            ("k=%zz", "k=%25zz"),
            ("k=%", "k=%25"),
            ("k=%%41", "k=%25A"),
            ("%g1=v", "%25g1=v"),
            ("k=%-1", "k=%25-1"),
        ] {
            assert_eq!(canonical_query(query), expected, "{query:?}");
        }
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
}
