//! Identifiers: key ids, ARNs, alias names, and the four ways a caller may name a key.

use std::fmt;
use std::str::FromStr;

use crate::{AliasNameProblem, KmsError, Missing};

/// An AWS region name (`us-east-1`): lowercase letters, digits and hyphens,
/// 1 to [`Region::MAX_LEN`] characters, held inline so key ids stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    len: u8,
    name: [u8; Region::MAX_LEN],
}

impl Region {
    /// Longest region name accepted (AWS's longest is 14).
    pub const MAX_LEN: usize = 31;

    /// Validates a region name; `None` if it is not one.
    pub fn new(name: &str) -> Option<Self> {
        let ok = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !ok {
            return None;
        }
        let mut buf = [0u8; Self::MAX_LEN];
        buf[..name.len()].copy_from_slice(name.as_bytes());
        Some(Self {
            len: name.len() as u8,
            name: buf,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `new`).
        std::str::from_utf8(&self.name[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

/// A KMS key's id: a random (version 4) UUID, or for a multi-Region key
/// `mrk-` and 32 hex digits.
///
/// The 16 bytes are what a ciphertext blob carries; a multi-Region key's
/// bytes have the two top bits of byte 8 set (a UUID v4 has `10` there), so
/// the two kinds never collide. The primary and replicas of a multi-Region
/// key share the 16 bytes, and each is bound to its region (its *home*): the
/// home is part of the id's identity (store rows, cache, grants) and of its
/// canonical text (`mrk-…@eu-west-1`), never of what a caller sees
/// ([`KeyId::public`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId {
    bytes: [u8; 16],
    home: Option<Region>,
}

/// The marker bits of a multi-Region key id (top two bits of byte 8).
const MRK_MARK: u8 = 0xc0;
/// The prefix of a multi-Region key id.
const MRK_PREFIX: &str = "mrk-";

impl KeyId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, KmsError> {
        let mut b =
            keyfence_crypto::rand::array::<16>().map_err(KmsError::internal_crypto("key id"))?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Self::from_bytes(b))
    }

    /// A fresh random multi-Region key id (`mrk-…`) bound to `home`.
    pub fn generate_multi_region(home: Region) -> Result<Self, KmsError> {
        let mut b =
            keyfence_crypto::rand::array::<16>().map_err(KmsError::internal_crypto("key id"))?;
        b[8] |= MRK_MARK;
        Ok(Self::from_bytes(b).in_region(home))
    }

    /// The 16 bytes carried in ciphertext blobs.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.bytes
    }

    /// From the 16 bytes carried in a ciphertext blob (a multi-Region id
    /// comes unbound: see [`KeyId::in_region`]).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self { bytes, home: None }
    }

    /// Whether this is a multi-Region key's id (`mrk-…`).
    pub fn is_multi_region(&self) -> bool {
        self.bytes[8] & MRK_MARK == MRK_MARK
    }

    /// The region a multi-Region id is bound to (`None` for other ids, and
    /// for a multi-Region id read from a blob or a caller).
    pub fn home(&self) -> Option<Region> {
        self.home
    }

    /// The id of the multi-Region key's member in `region`; other ids are
    /// returned unchanged (their region is in their metadata).
    pub fn in_region(self, region: Region) -> Self {
        Self {
            home: self.is_multi_region().then_some(region),
            ..self
        }
    }

    /// The id as AWS shows it: the UUID, or `mrk-` and 32 hex digits.
    pub fn public(&self) -> PublicKeyId<'_> {
        PublicKeyId(self)
    }
}

/// A key id as callers see it (see [`KeyId::public`]).
pub struct PublicKeyId<'a>(&'a KeyId);

impl PublicKeyId<'_> {
    /// The id's text, on the stack: every reply that names a key writes its
    /// id (and ARN), so no formatter and no allocation. 36 bytes either way:
    /// the UUID form (8-4-4-4-12 digits) or `mrk-` and 32 digits.
    fn text(&self) -> [u8; 36] {
        let mut digits = [0u8; 32];
        let _ = hex::encode_to_slice(self.0.bytes, &mut digits);
        if self.0.is_multi_region() {
            let mut out = [0u8; 36];
            out[..4].copy_from_slice(MRK_PREFIX.as_bytes());
            out[4..].copy_from_slice(&digits);
            out
        } else {
            hyphenated(&digits)
        }
    }
}

/// 32 hex digits in the UUID layout, 8-4-4-4-12 (key ids, request ids).
pub fn hyphenated(digits: &[u8; 32]) -> [u8; 36] {
    let mut out = [b'-'; 36];
    for (from, to, at) in [
        (0, 8, 0),
        (8, 12, 9),
        (12, 16, 14),
        (16, 20, 19),
        (20, 32, 24),
    ] {
        out[at..at + (to - from)].copy_from_slice(&digits[from..to]);
    }
    out
}

impl fmt::Display for PublicKeyId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.text()).unwrap_or_default())
    }
}

impl fmt::Display for KeyId {
    /// The canonical text: the public id, then `@region` for a bound
    /// multi-Region id (how stores and logs name it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.public())?;
        match self.home {
            Some(home) => write!(f, "@{home}"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = ();

    /// Parses the hyphenated 36-character UUID form, or `mrk-` and 32 hex
    /// digits with an optional `@region` (either letter case).
    fn from_str(s: &str) -> Result<Self, ()> {
        if let Some(rest) = s.strip_prefix(MRK_PREFIX) {
            let (hex_part, home) = match rest.split_once('@') {
                Some((h, r)) => (h, Some(Region::new(r).ok_or(())?)),
                None => (rest, None),
            };
            let mut out = [0u8; 16];
            if hex_part.len() != 32 {
                return Err(());
            }
            hex::decode_to_slice(hex_part, &mut out).map_err(|_| ())?;
            let id = Self::from_bytes(out);
            if !id.is_multi_region() {
                return Err(());
            }
            return Ok(Self { home, ..id });
        }
        let b = s.as_bytes();
        if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return Err(());
        }
        // The five hex groups straight into their bytes (no string built).
        let mut out = [0u8; 16];
        let groups = [
            (0, 8, 0),
            (9, 13, 4),
            (14, 18, 6),
            (19, 23, 8),
            (24, 36, 10),
        ];
        for (from, to, at) in groups {
            let bytes = (to - from) / 2;
            hex::decode_to_slice(&b[from..to], &mut out[at..at + bytes]).map_err(|_| ())?;
        }
        let id = Self::from_bytes(out);
        if id.is_multi_region() {
            return Err(());
        }
        Ok(id)
    }
}

/// Identifies one version of a KMS key's material (AWS's `KeyMaterialId`): 32 bytes
/// derived deterministically from the key id and the version number, so every node
/// reports the same id for the same material, and rotation gives a new one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyMaterialId([u8; 32]);

impl KeyMaterialId {
    /// Domain separation for the derivation.
    const LABEL: &'static [u8] = b"keyfence KeyMaterialId v1";

    /// The id of version `version` of key `key`: HKDF-SHA256 with the key id and the
    /// big-endian version as input keying material.
    pub fn of(key: &KeyId, version: u32) -> Result<Self, KmsError> {
        let mut ikm = [0u8; 20];
        ikm[..16].copy_from_slice(key.as_bytes());
        ikm[16..].copy_from_slice(&version.to_be_bytes());
        let out = keyfence_crypto::kdf::derive::<32>(&ikm, Self::LABEL, &[])
            .map_err(KmsError::internal_crypto("key material id"))?;
        Ok(Self(*out))
    }

    /// The 64 lowercase hex digits AWS uses.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for KeyMaterialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterialId({})", self.to_hex())
    }
}

/// The ARN of a key.
pub fn key_arn(region: &str, account: &str, id: &KeyId) -> String {
    let text = id.public().text();
    let id = std::str::from_utf8(&text).unwrap_or_default();
    let parts = ["arn:aws:kms:", region, ":", account, ":key/", id];
    let mut arn = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        arn.push_str(part);
    }
    arn
}

/// The ARN of an alias (`name` includes the `alias/` prefix).
pub fn alias_arn(region: &str, account: &str, name: &AliasName) -> String {
    format!("arn:aws:kms:{region}:{account}:{}", name.as_str())
}

/// A validated alias name, `alias/` followed by `[a-zA-Z0-9:/_-]+`, at most
/// 256 characters, and not in the reserved `alias/aws/` namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AliasName(String);

impl AliasName {
    /// Longest alias name AWS accepts.
    pub const MAX_LEN: usize = 256;

    /// Validates a name given by a caller who wants to create or update it.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        let bad = |problem| KmsError::InvalidAliasName {
            name: name.to_string(),
            problem,
        };
        let Some(rest) = name.strip_prefix("alias/") else {
            return Err(bad(AliasNameProblem::Prefix));
        };
        if name.len() > Self::MAX_LEN {
            return Err(bad(AliasNameProblem::TooLong { max: Self::MAX_LEN }));
        }
        if rest.is_empty() {
            return Err(bad(AliasNameProblem::Empty));
        }
        if !rest
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'/' | b'_' | b'-'))
        {
            return Err(bad(AliasNameProblem::Characters));
        }
        if rest.starts_with("aws/") {
            return Err(bad(AliasNameProblem::Reserved));
        }
        Ok(Self(name.to_string()))
    }

    /// The full name, `alias/...`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a caller named a key: id, key ARN, alias name or alias ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A bare key id.
    Id(KeyId),
    /// A key ARN.
    Arn {
        /// Region in the ARN.
        region: String,
        /// Account in the ARN.
        account: String,
        /// Key id in the ARN.
        id: KeyId,
    },
    /// An alias name (`alias/...`).
    Alias(String),
    /// An alias ARN.
    AliasArn {
        /// Region in the ARN.
        region: String,
        /// Account in the ARN.
        account: String,
        /// Alias name (`alias/...`).
        name: String,
    },
}

impl KeyRef {
    /// Parses any of the four forms; anything else is NotFoundException, as AWS answers.
    pub fn parse(s: &str) -> Result<Self, KmsError> {
        let invalid = || {
            KmsError::NotFound(Missing::InvalidKeyId {
                given: s.to_string(),
            })
        };
        if s.starts_with("alias/") {
            return Ok(Self::Alias(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix("arn:aws:kms:") {
            let mut parts = rest.splitn(3, ':');
            let (Some(region), Some(account), Some(resource)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid());
            };
            if region.is_empty()
                || account.len() != 12
                || !account.bytes().all(|c| c.is_ascii_digit())
            {
                return Err(invalid());
            }
            let (region, account) = (region.to_string(), account.to_string());
            if let Some(id) = resource.strip_prefix("key/") {
                let id = id.parse().map_err(|_| invalid())?;
                return Ok(Self::Arn {
                    region,
                    account,
                    id,
                });
            }
            if resource.starts_with("alias/") {
                return Ok(Self::AliasArn {
                    region,
                    account,
                    name: resource.to_string(),
                });
            }
            return Err(invalid());
        }
        s.parse().map(Self::Id).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_ids_are_deterministic_per_key_and_version() {
        let key: KeyId = "1234abcd-12ab-34cd-56ef-1234567890ab".parse().unwrap();
        let other: KeyId = "1234abcd-12ab-34cd-56ef-1234567890ac".parse().unwrap();
        let v1 = KeyMaterialId::of(&key, 1).unwrap();
        assert_eq!(v1, KeyMaterialId::of(&key, 1).unwrap());
        assert_eq!(v1.to_hex().len(), 64);
        assert_ne!(v1, KeyMaterialId::of(&key, 2).unwrap());
        assert_ne!(v1, KeyMaterialId::of(&other, 1).unwrap());
    }

    #[test]
    fn key_id_round_trip() {
        let id = KeyId::generate().unwrap();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s.as_bytes()[14], b'4');
        assert_eq!(s.parse::<KeyId>(), Ok(id));
        assert_eq!(s.to_uppercase().parse::<KeyId>(), Ok(id));
        assert!("1234".parse::<KeyId>().is_err());
        assert!("1234abcd-12ab-34cd-56ef-1234567890zz"
            .parse::<KeyId>()
            .is_err());
        assert!("1234abcd_12ab-34cd-56ef-1234567890ab"
            .parse::<KeyId>()
            .is_err());
        // 36 bytes, but a two-byte character where a digit pair should be.
        assert!("1234abcd-12ab-34cd-56ef-1234567890é"
            .parse::<KeyId>()
            .is_err());
        assert!("1234abcd-12ab-34cd-56ef-+234567890ab"
            .parse::<KeyId>()
            .is_err());
        for _ in 0..100 {
            let id = KeyId::generate().unwrap();
            assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
        }
        // Known answers: the text and the ARN.
        let text = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let id: KeyId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(
            key_arn("eu-west-1", "111122223333", &id),
            format!("arn:aws:kms:eu-west-1:111122223333:key/{text}")
        );
        let mrk = KeyId::generate_multi_region(Region::new("us-east-1").unwrap()).unwrap();
        let text = mrk.public().to_string();
        assert!(text.starts_with("mrk-") && text.len() == 36, "{text}");
        assert!(text[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
    }

    #[test]
    fn multi_region_ids() {
        let east = Region::new("us-east-1").unwrap();
        let west = Region::new("eu-west-1").unwrap();
        let id = KeyId::generate_multi_region(east).unwrap();
        assert!(id.is_multi_region());
        assert_eq!(id.home(), Some(east));
        let public = id.public().to_string();
        assert!(public.starts_with("mrk-") && public.len() == 36, "{public}");
        assert_eq!(id.to_string(), format!("{public}@us-east-1"));
        // The canonical text round-trips; the public form parses unbound.
        assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
        let unbound: KeyId = public.parse().unwrap();
        assert_eq!(unbound.home(), None);
        assert_eq!(unbound.in_region(east), id);
        // Members in two regions share the bytes a blob carries, not the identity.
        let replica = unbound.in_region(west);
        assert_ne!(replica, id);
        assert_eq!(replica.as_bytes(), id.as_bytes());
        assert_eq!(KeyId::from_bytes(*id.as_bytes()), unbound);
        // A UUID is never bound to a region, and never reads as an mrk id.
        let uuid = KeyId::generate().unwrap();
        assert!(!uuid.is_multi_region());
        assert_eq!(uuid.in_region(west), uuid);
        let mut bytes = *uuid.as_bytes();
        bytes[8] |= 0xc0;
        let disguised = KeyId::from_bytes(bytes);
        assert!(disguised.is_multi_region());
        let text = uuid.to_string();
        let as_uuid = format!("{}{}{}", &text[..19], hex::encode([bytes[8]]), &text[21..]);
        assert!(as_uuid.parse::<KeyId>().is_err(), "{as_uuid}");
        for bad in [
            "mrk-1234",
            "mrk-1234abcd12ab34cd56ef1234567890ab", // marker bits not set
            "mrk-1234abcd12ab34cdd6ef1234567890ab@",
            "mrk-1234abcd12ab34cdd6ef1234567890ab@EU",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
        assert_eq!(
            key_arn("eu-west-1", "111122223333", &replica),
            format!("arn:aws:kms:eu-west-1:111122223333:key/{public}")
        );
        assert!(Region::new("").is_none());
        assert!(Region::new("US-east-1").is_none());
        assert!(Region::new(&"a".repeat(32)).is_none());
    }

    #[test]
    fn key_refs() {
        let id: KeyId = "1234abcd-12ab-34cd-56ef-1234567890ab".parse().unwrap();
        assert_eq!(KeyRef::parse(&id.to_string()), Ok(KeyRef::Id(id)));
        assert_eq!(
            KeyRef::parse(&key_arn("us-east-1", "111122223333", &id)),
            Ok(KeyRef::Arn {
                region: "us-east-1".into(),
                account: "111122223333".into(),
                id
            })
        );
        assert_eq!(
            KeyRef::parse("alias/app"),
            Ok(KeyRef::Alias("alias/app".into()))
        );
        assert_eq!(
            KeyRef::parse("arn:aws:kms:eu-west-1:111122223333:alias/app"),
            Ok(KeyRef::AliasArn {
                region: "eu-west-1".into(),
                account: "111122223333".into(),
                name: "alias/app".into()
            })
        );
        for bad in [
            "",
            "nope",
            "arn:aws:kms:us-east-1:1111:key/x",
            "arn:aws:kms:us-east-1:111122223333:thing/x",
            "arn:aws:kms:::",
        ] {
            assert!(
                matches!(KeyRef::parse(bad), Err(KmsError::NotFound(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn alias_names() {
        assert!(AliasName::parse("alias/app-1:x/y_z").is_ok());
        for bad in ["app", "alias/", "alias/a b", "alias/aws/x", "alias/é"] {
            assert!(
                matches!(
                    AliasName::parse(bad),
                    Err(KmsError::InvalidAliasName { .. })
                ),
                "{bad}"
            );
        }
        assert!(AliasName::parse(&format!("alias/{}", "a".repeat(250))).is_ok());
        assert!(AliasName::parse(&format!("alias/{}", "a".repeat(251))).is_err());
    }
}
