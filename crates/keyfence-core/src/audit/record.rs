//! One audit record and its canonical encoding, the bytes the Merkle tree
//! hashes. A record names who asked what of which key and how it ended; it
//! never holds plaintext, key material, secrets or encryption-context values
//! (only the context's keys).
//!
//! Encoding (version 1), all integers big-endian:
//!
//! ```text
//! 0x01                         version
//! u64  seq                     position in the log, from 0
//! i64  time                    milliseconds since the Unix epoch
//! u8   source                  0 KMS API, 1 admin API, 2 node-to-node, 3 local action
//! str  operation, request id, principal ARN, access key id, account, source address
//! opt  key ARN, error code     0x00 absent, or 0x01 then str
//! u8   outcome                 0 success, 1 failure
//! u16  n, then n × str         encryption-context keys, sorted, distinct
//! ```
//!
//! where `str` is a u16 length then that many UTF-8 bytes. The encoding is
//! canonical: [`AuditRecord::decode`] accepts exactly what
//! [`AuditRecord::encode`] writes (trailing bytes, unsorted or repeated
//! context keys and invalid UTF-8 are refused).

use crate::clock::Timestamp;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The AWS KMS JSON API.
    Kms,
    /// keyfence's cluster admin API.
    Admin,
    /// Another node of the cluster (a forwarded request).
    Node,
    /// An action taken on the node itself (command line, start-up).
    Local,
}

impl Source {
    const ALL: [Source; 4] = [Source::Kms, Source::Admin, Source::Node, Source::Local];

    fn code(self) -> u8 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }

    /// CloudTrail-like event source name.
    pub fn name(self) -> &'static str {
        match self {
            Source::Kms => "kms.amazonaws.com",
            Source::Admin => "admin.keyfence",
            Source::Node => "node.keyfence",
            Source::Local => "local.keyfence",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered with success.
    Success,
    /// Refused or failed, with the AWS error code sent (e.g. `NotFoundException`).
    Failure(String),
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditRecord {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When the request was answered.
    pub time: Timestamp,
    /// Which API it came through.
    pub source: Source,
    /// The operation, e.g. `Encrypt`.
    pub operation: String,
    /// The request id sent back to the caller.
    pub request_id: String,
    /// The caller's principal ARN; empty when the request was not authenticated.
    pub principal: String,
    /// The access key id that signed the request; empty when none did.
    pub access_key_id: String,
    /// The caller's account; empty when unauthenticated.
    pub account: String,
    /// The client's address (`ip:port`).
    pub source_address: String,
    /// The key the request was about, by ARN (or as the caller named it when
    /// the request failed before it was resolved).
    pub key: Option<String>,
    /// The names of the encryption-context pairs (never their values).
    pub context_keys: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why bytes are not a canonical record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end early.
    #[error("record truncated")]
    Truncated,
    /// An unknown version, source or outcome byte.
    #[error("unknown {0} byte")]
    UnknownTag(&'static str),
    /// A string is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A field is longer than the encoding allows (65 535 bytes, or entries).
    #[error("{0} too long")]
    TooLong(&'static str),
    /// Context keys not sorted and distinct, or bytes after the record.
    #[error("not canonical: {0}")]
    NotCanonical(&'static str),
}

const VERSION: u8 = 1;

fn put_str(out: &mut Vec<u8>, what: &'static str, s: &str) -> Result<(), RecordError> {
    let len = u16::try_from(s.len()).map_err(|_| RecordError::TooLong(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_opt(out: &mut Vec<u8>, what: &'static str, s: Option<&str>) -> Result<(), RecordError> {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, what, s)?;
        }
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn str(&mut self, what: &'static str) -> Result<String, RecordError> {
        let n = self.u16()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::NotUtf8(what))
    }
    fn opt(&mut self, what: &'static str) -> Result<Option<String>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str(what).map(Some),
            _ => Err(RecordError::UnknownTag(what)),
        }
    }
}

/// Sets the position of an [`AuditRecord::encode`]d record in place (it
/// sits at bytes 1..9, after the version), so a record can be encoded before
/// its position is known and placed by the log's writer.
pub fn place(encoded: &mut [u8], seq: u64) -> Result<(), RecordError> {
    encoded
        .get_mut(1..9)
        .ok_or(RecordError::Truncated)?
        .copy_from_slice(&seq.to_be_bytes());
    Ok(())
}

impl AuditRecord {
    /// The canonical bytes. Fails only for a field over 65 535 bytes, which
    /// the request limits never let through.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut keys = self.context_keys.clone();
        keys.sort();
        keys.dedup();
        let mut out = Vec::with_capacity(160);
        out.push(VERSION);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.time.0.to_be_bytes());
        out.push(self.source.code());
        put_str(&mut out, "operation", &self.operation)?;
        put_str(&mut out, "request id", &self.request_id)?;
        put_str(&mut out, "principal", &self.principal)?;
        put_str(&mut out, "access key id", &self.access_key_id)?;
        put_str(&mut out, "account", &self.account)?;
        put_str(&mut out, "source address", &self.source_address)?;
        put_opt(&mut out, "key", self.key.as_deref())?;
        match &self.outcome {
            Outcome::Success => {
                out.push(0);
                put_opt(&mut out, "error code", None)?;
            }
            Outcome::Failure(code) => {
                out.push(1);
                put_opt(&mut out, "error code", Some(code))?;
            }
        }
        let n = u16::try_from(keys.len()).map_err(|_| RecordError::TooLong("context keys"))?;
        out.extend_from_slice(&n.to_be_bytes());
        for k in &keys {
            put_str(&mut out, "context key", k)?;
        }
        Ok(out)
    }

    /// Parses canonical bytes (untrusted: read back from storage).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err(RecordError::UnknownTag("version"));
        }
        let seq = r.u64()?;
        let time = Timestamp(r.u64()? as i64);
        let source = *Source::ALL
            .get(r.u8()? as usize)
            .ok_or(RecordError::UnknownTag("source"))?;
        let operation = r.str("operation")?;
        let request_id = r.str("request id")?;
        let principal = r.str("principal")?;
        let access_key_id = r.str("access key id")?;
        let account = r.str("account")?;
        let source_address = r.str("source address")?;
        let key = r.opt("key")?;
        let outcome = match (r.u8()?, r.opt("error code")?) {
            (0, None) => Outcome::Success,
            (1, Some(code)) => Outcome::Failure(code),
            _ => return Err(RecordError::UnknownTag("outcome")),
        };
        let n = r.u16()?;
        let mut context_keys: Vec<String> = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let k = r.str("context key")?;
            if context_keys.last().is_some_and(|prev| *prev >= k) {
                return Err(RecordError::NotCanonical("context keys not sorted"));
            }
            context_keys.push(k);
        }
        if !r.0.is_empty() {
            return Err(RecordError::NotCanonical("bytes after the record"));
        }
        Ok(Self {
            seq,
            time,
            source,
            operation,
            request_id,
            principal,
            access_key_id,
            account,
            source_address,
            key,
            context_keys,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(seq: u64) -> AuditRecord {
        AuditRecord {
            seq,
            time: Timestamp(1_764_550_000_000 + seq as i64),
            source: Source::Kms,
            operation: "Encrypt".into(),
            request_id: format!("req-{seq}"),
            principal: "arn:aws:iam::111122223333:user/alice".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            account: "111122223333".into(),
            source_address: "127.0.0.1:50000".into(),
            key: Some("arn:aws:kms:us-east-1:111122223333:key/k".into()),
            context_keys: vec!["department".into(), "purpose".into()],
            outcome: Outcome::Success,
        }
    }

    #[test]
    fn encoding_is_canonical_and_round_trips() {
        let mut r = sample(7);
        r.context_keys = vec!["purpose".into(), "department".into(), "purpose".into()];
        let bytes = r.encode().unwrap();
        let back = AuditRecord::decode(&bytes).unwrap();
        assert_eq!(
            back.context_keys,
            vec!["department", "purpose"],
            "sorted, distinct"
        );
        assert_eq!(back.encode().unwrap(), bytes);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            AuditRecord::decode(&longer),
            Err(RecordError::NotCanonical("bytes after the record"))
        );
        assert_eq!(
            AuditRecord::decode(&bytes[..bytes.len() - 1]),
            Err(RecordError::Truncated)
        );
    }

    #[test]
    fn placing_a_record_sets_its_position_and_nothing_else() {
        let mut unplaced = sample(41);
        unplaced.seq = 0;
        let mut bytes = unplaced.encode().unwrap();
        place(&mut bytes, 41).unwrap();
        assert_eq!(bytes, sample(41).encode().unwrap());
        assert_eq!(place(&mut [1, 2, 3], 1), Err(RecordError::Truncated));
    }

    #[test]
    fn a_failure_keeps_its_code() {
        let mut r = sample(1);
        r.outcome = Outcome::Failure("NotFoundException".into());
        r.key = None;
        let back = AuditRecord::decode(&r.encode().unwrap()).unwrap();
        assert_eq!(back, r);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(r) = AuditRecord::decode(&bytes) {
                prop_assert_eq!(r.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn any_field_round_trips(
            seq: u64, time: i64, op in "[A-Za-z]{0,20}", key in proptest::option::of("[ -~]{0,80}"),
            keys in proptest::collection::btree_set("[a-z]{1,8}", 0..5), fail in proptest::option::of("[A-Za-z]{1,30}"),
        ) {
            let mut r = sample(seq);
            r.time = Timestamp(time);
            r.operation = op;
            r.key = key;
            r.context_keys = keys.into_iter().collect();
            r.outcome = fail.map_or(Outcome::Success, Outcome::Failure);
            let bytes = r.encode().unwrap();
            prop_assert_eq!(AuditRecord::decode(&bytes).unwrap(), r);
        }
    }
}
