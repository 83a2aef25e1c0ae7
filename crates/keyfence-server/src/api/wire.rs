//! JSON wire helpers: base64 blobs, dates, body parsing without echoing values.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use keyfence_core::Timestamp;
use serde::de::DeserializeOwned;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use super::{messages, ApiError};

/// A base64 blob member; the decoded bytes are zeroized on drop.
pub struct Blob(pub Zeroizing<Vec<u8>>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        STANDARD
            .decode(s.as_bytes())
            .map(|v| Blob(Zeroizing::new(v)))
            .map_err(|_| serde::de::Error::custom("a blob member is not valid base64"))
    }
}

/// Encodes bytes for a blob member.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A date member: seconds since the epoch.
pub fn date(t: Timestamp) -> serde_json::Value {
    serde_json::json!(t.as_secs_f64())
}

/// Parses a JSON request body, then checks the length constraints of the
/// string members AWS bounds ([`check_constraints`]). Errors name the position
/// and kind, never the offending value (which could be secret): a body that is
/// not JSON (invalid UTF-8, trailing bytes included) or has a member of the
/// wrong type is a SerializationException; a missing or `null` required member
/// is a ValidationException.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let value = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed JSON"
            }
            serde_json::error::Category::Data => {
                let text = e.to_string();
                if text.contains("missing field") {
                    return ApiError::validation(first_clause(&text));
                }
                if text.starts_with("invalid type: null") {
                    return messages::null_member(e.line(), e.column());
                }
                if text.contains("base64") {
                    "a blob member is not valid base64"
                } else {
                    "a member has the wrong type"
                }
            }
            serde_json::error::Category::Io => "unreadable body",
        };
        ApiError::serialization(format!("{what} at line {} column {}", e.line(), e.column()))
    })?;
    check_constraints(body)?;
    Ok(value)
}

/// String members AWS bounds by length, as (JSON name, AWS member name, min, max).
const STRING_CONSTRAINTS: &[(&str, &str, usize, usize)] = &[
    ("KeyId", "keyId", 1, 2048),
    ("SourceKeyId", "sourceKeyId", 1, 2048),
    ("DestinationKeyId", "destinationKeyId", 1, 2048),
    ("TargetKeyId", "targetKeyId", 1, 2048),
    ("AliasName", "aliasName", 1, 256),
    ("Marker", "marker", 1, 1024),
    ("Description", "description", 0, 8192),
    ("CustomKeyStoreId", "customKeyStoreId", 1, 64),
];

/// Most grant tokens in a request, and the length bounds of each.
const GRANT_TOKENS: (usize, usize, usize) = (10, 1, 8192);

/// The members [`check_constraints`] looks at, of any JSON type (a type the
/// operation does not expect was refused by its own parse); every other
/// member is skipped. Read without allocating: only the lengths are kept.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Constrained {
    key_id: Option<StrLen>,
    source_key_id: Option<StrLen>,
    destination_key_id: Option<StrLen>,
    target_key_id: Option<StrLen>,
    alias_name: Option<StrLen>,
    marker: Option<StrLen>,
    description: Option<StrLen>,
    custom_key_store_id: Option<StrLen>,
    grant_tokens: Option<Items>,
}

/// A member's length in characters if it is a string; `None` for any other
/// JSON value (skipped).
struct StrLen(Option<usize>);

/// An array member's item count and the lengths of its string items; `None`
/// for any other JSON value (skipped).
struct Items(Option<(usize, Vec<usize>)>);

/// Reads any JSON value, keeping what [`StrLen`] or [`Items`] need.
struct LengthVisitor<const ARRAY: bool>;

impl<'de, const ARRAY: bool> Visitor<'de> for LengthVisitor<ARRAY> {
    type Value = (Option<usize>, Option<(usize, Vec<usize>)>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((Some(v.chars().count()), None))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok((None, None))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok((None, None))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok((None, None))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok((None, None))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((None, None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (mut items, mut lengths) = (0, Vec::new());
        if ARRAY {
            while let Some(item) = seq.next_element::<StrLen>()? {
                items += 1;
                lengths.extend(item.0);
            }
            return Ok((None, Some((items, lengths))));
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok((None, None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok((None, None))
    }
}

impl<'de> Deserialize<'de> for StrLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(StrLen(d.deserialize_any(LengthVisitor::<false>)?.0))
    }
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Items(d.deserialize_any(LengthVisitor::<true>)?.1))
    }
}

/// Checks the length constraints AWS puts on string members, after the body
/// has parsed as the operation's input (so a member of the wrong type has
/// already been refused; a member the operation does not have but that
/// carries a bound name is held to the same bound).
fn check_constraints(body: &[u8]) -> Result<(), ApiError> {
    let Ok(c) = serde_json::from_slice::<Constrained>(body) else {
        // Only an object body names members; the operation's parse took it.
        return Ok(());
    };
    let values = [
        &c.key_id,
        &c.source_key_id,
        &c.destination_key_id,
        &c.target_key_id,
        &c.alias_name,
        &c.marker,
        &c.description,
        &c.custom_key_store_id,
    ];
    for (value, (_, member, min, max)) in values.into_iter().zip(STRING_CONSTRAINTS) {
        if let Some(StrLen(Some(len))) = value {
            if len < min || len > max {
                return Err(messages::length_constraint(member, *len, *min, *max));
            }
        }
    }
    if let Some(Items(Some((items, lengths)))) = &c.grant_tokens {
        let (max_items, min, max) = GRANT_TOKENS;
        if *items > max_items {
            return Err(messages::too_many_items("grantTokens", max_items));
        }
        for &len in lengths {
            if len < min || len > max {
                return Err(messages::length_constraint("grantTokens", len, min, max));
            }
        }
    }
    Ok(())
}

/// "missing field `KeyId` at line 1 column 2" → "missing field `KeyId`".
fn first_clause(message: &str) -> String {
    message
        .split(" at line")
        .next()
        .unwrap_or(message)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code)]
    struct T {
        key_id: String,
        plaintext: Option<Blob>,
        limit: Option<i64>,
    }

    #[test]
    fn errors_do_not_echo_values() {
        let e = parse::<T>(br#"{"KeyId": "k", "Limit": "topsecret"}"#)
            .err()
            .unwrap();
        assert_eq!(e.code, "SerializationException");
        assert!(!e.message.contains("topsecret"), "{}", e.message);
        let e = parse::<T>(br#"{"KeyId": "k", "Plaintext": "not base64!!"}"#)
            .err()
            .unwrap();
        assert_eq!(e.code, "SerializationException");
        let e = parse::<T>(br#"{"Plaintext": "AAAA"}"#).err().unwrap();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("ValidationException", "missing field `KeyId`")
        );
        assert_eq!(
            parse::<T>(b"{not json").err().unwrap().code,
            "SerializationException"
        );
        assert_eq!(
            parse::<T>(br#"[1,2]"#).err().unwrap().code,
            "SerializationException"
        );
        let ok = parse::<T>(br#"{"KeyId": "k", "Plaintext": "aGk="}"#).unwrap();
        assert_eq!(ok.plaintext.unwrap().0.as_slice(), b"hi");
    }

    fn refused(body: &[u8]) -> (&'static str, String) {
        let e = parse::<T>(body).err().expect("refused");
        (e.code, e.message)
    }

    #[test]
    fn validation_follows_aws_order_and_bounds() {
        // null for a required member: validation, not serialization.
        assert_eq!(refused(br#"{"KeyId": null}"#).0, "ValidationException");
        // null for an optional member is absent.
        assert!(parse::<T>(br#"{"KeyId": "k", "Limit": null}"#).is_ok());
        // Empty and over-long strings.
        let (code, msg) = refused(br#"{"KeyId": ""}"#);
        assert_eq!(code, "ValidationException");
        assert!(msg.contains("'keyId'") && msg.contains("greater than or equal to 1"));
        let long = format!(r#"{{"KeyId": "{}"}}"#, "k".repeat(2049));
        let (code, msg) = refused(long.as_bytes());
        assert_eq!(code, "ValidationException");
        assert!(msg.contains("less than or equal to 2048"), "{msg}");
        let ok = format!(r#"{{"KeyId": "{}"}}"#, "k".repeat(2048));
        assert!(parse::<T>(ok.as_bytes()).is_ok());
        assert_eq!(
            refused(br#"{"KeyId": "k", "Marker": ""}"#).0,
            "ValidationException"
        );
        let tokens =
            br#"{"KeyId": "k", "GrantTokens": ["a","a","a","a","a","a","a","a","a","a","a"]}"#;
        assert_eq!(refused(tokens).0, "ValidationException");
        // Items of any type count; string items are held to the bounds.
        let mixed =
            br#"{"KeyId": "k", "GrantTokens": [1,{"a":[2]},"a","a","a","a","a","a","a","a","a"]}"#;
        assert_eq!(refused(mixed).0, "ValidationException");
        let empty_token = br#"{"KeyId": "k", "GrantTokens": [1, ""]}"#;
        assert_eq!(refused(empty_token).0, "ValidationException");
        // Members of other types and nested values are skipped, not refused here.
        assert!(parse::<T>(br#"{"KeyId": "k", "Marker": null, "Other": {"Marker": ""}}"#).is_ok());
        // Escapes count as the characters they stand for.
        let escaped = format!(r#"{{"KeyId": "{}"}}"#, "\\u00e9".repeat(2048));
        assert!(parse::<T>(escaped.as_bytes()).is_ok());
        // Not JSON: invalid UTF-8 (in a string or outside), trailing garbage.
        assert_eq!(
            refused(b"{\"KeyId\": \"k\xff\"}").0,
            "SerializationException"
        );
        assert_eq!(
            refused(b"{\"KeyId\": \"k\"}\xff").0,
            "SerializationException"
        );
        assert_eq!(
            refused(br#"{"KeyId": "k"} {"KeyId": "j"}"#).0,
            "SerializationException"
        );
        assert_eq!(refused(br#"{"KeyId": "k"}x"#).0, "SerializationException");
    }
}
