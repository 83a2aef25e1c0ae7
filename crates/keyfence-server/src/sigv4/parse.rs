//! Parsing what the client sent: the `Authorization` header with its credential
//! scope, and the request time (`X-Amz-Date` or `Date`).

use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use time::format_description::BorrowedFormatItem;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{echo, incomplete, SigV4Error, ALGORITHM, X_AMZ_DATE};

/// Credential scope: `date/region/service/aws4_request`.
pub(super) struct Scope<'a> {
    pub(super) date: &'a str,
    pub(super) region: &'a str,
    pub(super) service: &'a str,
    pub(super) terminator: &'a str,
}

impl Scope<'_> {
    pub(super) fn render(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }
}

/// The parsed `Authorization` header.
pub(super) struct Authorization<'a> {
    pub(super) access_key_id: &'a str,
    pub(super) scope: Scope<'a>,
    /// The scope as the client wrote it (`date/region/service/aws4_request`):
    /// what it signed, so what the string to sign holds.
    pub(super) scope_text: &'a str,
    pub(super) signed_headers: Vec<&'a str>,
    pub(super) signature: &'a str,
}

pub(super) fn parse_authorization(header: &HeaderValue) -> Result<Authorization<'_>, SigV4Error> {
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
        // Exactly five '/'-separated elements: the scope is all after the first.
        scope_text: &credential[access_key_id.len() + 1..],
        signed_headers,
        signature,
    })
}

/// The request timestamp in ISO-8601 basic format (`YYYYMMDDTHHMMSSZ`) and as a time,
/// from `X-Amz-Date` or else `Date` (basic format or IMF-fixdate).
pub(super) fn request_time(parts: &Parts) -> Result<(String, OffsetDateTime), SigV4Error> {
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

/// ISO-8601 basic format in UTC, as SigV4 writes dates: `20150830T123600Z`.
const BASIC_FORMAT: &[BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// Parses `YYYYMMDDTHHMMSSZ`; exactly 16 characters, digits everywhere but `T` and `Z`.
fn parse_basic(s: &str) -> Option<OffsetDateTime> {
    let shape = s.len() == 16
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    PrimitiveDateTime::parse(s, BASIC_FORMAT)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(s, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// `t` in ISO-8601 basic format (UTC); `None` outside the years 0 to 9999.
pub(super) fn format_basic(t: OffsetDateTime) -> Option<String> {
    let t = t.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    t.format(BASIC_FORMAT).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse_basic("20150830T123600Z"), Some(t));
        // Leap day, the epoch and the last second of a year round-trip.
        for text in ["20000229T000000Z", "19700101T000000Z", "20991231T235959Z"] {
            let t = parse_basic(text).expect(text);
            assert_eq!(format_basic(t).as_deref(), Some(text));
        }
        assert!(parse_basic("20010229T000000Z").is_none());
        let year_0 = OffsetDateTime::from_unix_timestamp(-62_167_219_200).unwrap();
        assert_eq!(format_basic(year_0).as_deref(), Some("00000101T000000Z"));
        assert_eq!(format_basic(year_0 - time::Duration::SECOND), None);
    }
}
