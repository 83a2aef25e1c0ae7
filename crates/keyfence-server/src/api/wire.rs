//! JSON wire helpers: base64 blobs, dates, body parsing without echoing values.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use keyfence_core::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use super::ApiError;

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

/// Parses a JSON request body. Errors name the position and kind, never the
/// offending value (which could be secret).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed JSON"
            }
            serde_json::error::Category::Data => {
                if e.to_string().contains("missing field") {
                    return ApiError::validation(first_clause(&e.to_string()));
                }
                if e.to_string().contains("base64") {
                    "a blob member is not valid base64"
                } else {
                    "a member has the wrong type"
                }
            }
            serde_json::error::Category::Io => "unreadable body",
        };
        ApiError::serialization(format!("{what} at line {} column {}", e.line(), e.column()))
    })
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
}
