//! The quorum-sealed root: the root key wrapped under an unsealing key that
//! exists only as Shamir shares (the `blahaj` crate, GF(256) per byte), one
//! per operator; the node starts sealed and opens the root once a threshold
//! of shares has been given back.
//!
//! File `root.sealed` (version 1): magic `KFSEAL` ‖ version 0x01 ‖
//! threshold (u8) ‖ share count n (u8) ‖ n × SHA-256 commitment of share
//! i (32 bytes each, over [`COMMITMENT_LABEL`] ‖ the share's bytes) ‖ the root
//! key wrapped (AES-256-GCM, 60 bytes) under the unsealing key, bound to the
//! threshold and count.
//!
//! A share is checked against its commitment when it is given (a wrong share
//! is refused at once, by index), and the recovered unsealing key must open
//! the wrapped root (authenticated): either check alone refuses a forgery.
//! Each share has 256 bits of uniform randomness, so a commitment reveals
//! nothing usable. A share's text form is `kfshare1-` ‖ hex(index ‖ 32 bytes).

use std::collections::BTreeMap;
use std::path::Path;

use aws_lc_rs::digest;
use blahaj::{Share, Sharks};
use keyfence_crypto::{wrap, SymmetricKey};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::root_key::write_private;

const MAGIC: &[u8; 6] = b"KFSEAL";
const VERSION: u8 = 1;
const HEADER: usize = 6 + 1 + 2;
/// What a share's commitment hashes before the share.
pub const COMMITMENT_LABEL: &[u8] = b"keyfence/v1/root-share";
/// The text prefix of a share.
pub const SHARE_PREFIX: &str = "kfshare1-";
/// Bytes of a share: its index and 32 bytes of the split key.
const SHARE_BYTES: usize = 1 + 32;

/// The sealed root could not be made, read or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuorumError {
    /// Threshold and share count out of range.
    #[error("need 2 <= threshold <= shares <= 255 (got threshold {threshold}, shares {shares})")]
    BadSplit {
        /// Shares needed.
        threshold: u16,
        /// Shares made.
        shares: u16,
    },
    /// The file is not a sealed root this build reads.
    #[error("sealed root file is malformed: {0}")]
    Malformed(&'static str),
    /// The text is not a share.
    #[error("not a keyfence share (expected {SHARE_PREFIX} and 66 hex digits)")]
    NotAShare,
    /// The share's index is not one this root was split into.
    #[error("share {index} is not one of this root's {count} shares")]
    UnknownIndex {
        /// The share's index.
        index: u8,
        /// How many shares there are.
        count: u8,
    },
    /// The share was given already in this round.
    #[error("share {0} was given already")]
    Repeated(u8),
    /// The share does not match its commitment.
    #[error("share {0} is not a valid share of this node's sealed root")]
    WrongShare(u8),
    /// The shares combined do not open the root (all shares given were
    /// dropped; start again).
    #[error("the shares given do not open the sealed root; progress was reset")]
    DoesNotOpen,
    /// The random generator or the wrapping failed.
    #[error("sealed root crypto: {0}")]
    Crypto(#[from] keyfence_crypto::CryptoError),
    /// The file could not be read or written.
    #[error("sealed root file {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A share in text form, zeroized on drop.
pub type ShareText = Zeroizing<String>;

/// The parsed `root.sealed` file.
#[derive(Clone)]
pub struct SealedRoot {
    threshold: u8,
    commitments: Vec<[u8; 32]>,
    wrapped: Vec<u8>,
}

fn binding(threshold: u8, count: u8) -> Vec<u8> {
    let mut b = b"keyfence/v1/quorum-root/".to_vec();
    b.extend_from_slice(&[threshold, count]);
    b
}

fn commitment(share: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(COMMITMENT_LABEL);
    ctx.update(share);
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Parses a share's text (surrounding white space ignored).
pub fn parse_share(text: &str) -> Result<Zeroizing<Vec<u8>>, QuorumError> {
    let hex_part = text
        .trim()
        .strip_prefix(SHARE_PREFIX)
        .ok_or(QuorumError::NotAShare)?;
    let bytes = Zeroizing::new(hex::decode(hex_part).map_err(|_| QuorumError::NotAShare)?);
    if bytes.len() != SHARE_BYTES || bytes[0] == 0 {
        return Err(QuorumError::NotAShare);
    }
    Ok(bytes)
}

fn share_text(bytes: &[u8]) -> ShareText {
    let mut text = Zeroizing::new(String::with_capacity(SHARE_PREFIX.len() + 2 * bytes.len()));
    text.push_str(SHARE_PREFIX);
    text.push_str(&Zeroizing::new(hex::encode(bytes)));
    text
}

impl SealedRoot {
    /// Splits a fresh unsealing key into `shares` shares, `threshold` of which
    /// open it, and seals `root` under it. Returns the file's bytes and the
    /// shares' texts (index 1 to `shares`, in order).
    pub fn create(
        root: &SymmetricKey,
        threshold: u16,
        shares: u16,
    ) -> Result<(Vec<u8>, Vec<ShareText>), QuorumError> {
        let bad = QuorumError::BadSplit { threshold, shares };
        let (t, n) = match (u8::try_from(threshold), u8::try_from(shares)) {
            (Ok(t), Ok(n)) if 2 <= t && t <= n => (t, n),
            _ => return Err(bad),
        };
        let unsealing = SymmetricKey::generate()?;
        let dealt: Vec<Share> = Sharks(t)
            .dealer(unsealing.expose())
            .take(n.into())
            .collect();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[VERSION, t, n]);
        let mut texts = Vec::with_capacity(dealt.len());
        for share in &dealt {
            let raw = Zeroizing::new(Vec::<u8>::from(share));
            bytes.extend_from_slice(&commitment(&raw));
            texts.push(share_text(&raw));
        }
        bytes.extend_from_slice(&wrap::wrap(&unsealing, &binding(t, n), root)?);
        Ok((bytes, texts))
    }

    /// Parses the bytes of a `root.sealed` file.
    pub fn parse(bytes: &[u8]) -> Result<Self, QuorumError> {
        if bytes.len() < HEADER || &bytes[..6] != MAGIC {
            return Err(QuorumError::Malformed("not a keyfence sealed root file"));
        }
        if bytes[6] != VERSION {
            return Err(QuorumError::Malformed("unsupported version"));
        }
        let (t, n) = (bytes[7], bytes[8]);
        if t < 2 || t > n {
            return Err(QuorumError::Malformed("threshold out of range"));
        }
        let body = &bytes[HEADER..];
        if body.len() != usize::from(n) * 32 + wrap::WRAPPED_KEY_BYTES {
            return Err(QuorumError::Malformed("wrong length"));
        }
        let (commits, wrapped) = body.split_at(usize::from(n) * 32);
        Ok(Self {
            threshold: t,
            commitments: commits
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32-byte chunks"))
                .collect(),
            wrapped: wrapped.to_vec(),
        })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, QuorumError> {
        let bytes = std::fs::read(path).map_err(|e| QuorumError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&bytes)
    }

    /// Writes a new file (which must not exist), mode 0600.
    pub fn write(path: &Path, bytes: &[u8]) -> Result<(), QuorumError> {
        write_private(path, bytes).map_err(|e| QuorumError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Shares needed to open the root.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Shares the unsealing key was split into.
    pub fn share_count(&self) -> u8 {
        self.commitments.len() as u8
    }
}

/// Shares given so far towards opening a [`SealedRoot`].
pub struct Unsealing {
    root: SealedRoot,
    given: BTreeMap<u8, Zeroizing<Vec<u8>>>,
}

/// Where an unsealing stands after a share was accepted.
pub enum Progress {
    /// More shares are needed: `given` of `threshold`.
    Partial {
        /// Shares accepted so far.
        given: u8,
        /// Shares needed.
        threshold: u8,
    },
    /// The threshold was reached: the root key.
    Opened(SymmetricKey),
}

impl Unsealing {
    /// A fresh round over `root`.
    pub fn new(root: SealedRoot) -> Self {
        Self {
            root,
            given: BTreeMap::new(),
        }
    }

    /// Shares accepted so far.
    pub fn given(&self) -> u8 {
        self.given.len() as u8
    }

    /// The sealed root this round opens.
    pub fn root(&self) -> &SealedRoot {
        &self.root
    }

    /// Forgets every share given.
    pub fn reset(&mut self) {
        self.given.clear();
    }

    /// Checks one share and adds it; opens the root once the threshold is in.
    pub fn add(&mut self, text: &str) -> Result<Progress, QuorumError> {
        let share = parse_share(text)?;
        let index = share[0];
        let count = self.root.share_count();
        let expected = self
            .root
            .commitments
            .get(usize::from(index) - 1)
            .ok_or(QuorumError::UnknownIndex { index, count })?;
        if self.given.contains_key(&index) {
            return Err(QuorumError::Repeated(index));
        }
        if !bool::from(commitment(&share).ct_eq(expected)) {
            return Err(QuorumError::WrongShare(index));
        }
        self.given.insert(index, share);
        let threshold = self.root.threshold;
        if self.given() < threshold {
            return Ok(Progress::Partial {
                given: self.given(),
                threshold,
            });
        }
        let opened = self.open();
        self.reset();
        opened.map(Progress::Opened)
    }

    fn open(&self) -> Result<SymmetricKey, QuorumError> {
        let shares = self
            .given
            .values()
            .map(|b| Share::try_from(b.as_slice()).map_err(|_| QuorumError::NotAShare))
            .collect::<Result<Vec<_>, _>>()?;
        let key = Zeroizing::new(
            Sharks(self.root.threshold)
                .recover(&shares)
                .map_err(|_| QuorumError::DoesNotOpen)?,
        );
        let unsealing = SymmetricKey::from_slice(&key).map_err(|_| QuorumError::DoesNotOpen)?;
        wrap::unwrap(
            &unsealing,
            &binding(self.root.threshold, self.root.share_count()),
            &self.root.wrapped,
        )
        .map_err(|_| QuorumError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(t: u16, n: u16) -> (SymmetricKey, SealedRoot, Vec<ShareText>) {
        let root = SymmetricKey::generate().unwrap();
        let (bytes, shares) = SealedRoot::create(&root, t, n).unwrap();
        (root, SealedRoot::parse(&bytes).unwrap(), shares)
    }

    #[test]
    fn any_threshold_of_shares_opens_the_root() {
        let (root, sealed, shares) = split(3, 5);
        assert_eq!(shares.len(), 5);
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let mut round = Unsealing::new(sealed.clone());
            for (i, &s) in pick.iter().enumerate() {
                match round.add(&shares[s]).unwrap() {
                    Progress::Partial { given, threshold } => {
                        assert_eq!((given, threshold), (i as u8 + 1, 3));
                        assert!(i < 2);
                    }
                    Progress::Opened(key) => {
                        assert_eq!(i, 2);
                        assert_eq!(key, root);
                    }
                }
            }
            assert_eq!(round.given(), 0, "a round that opened starts over");
        }
    }

    #[test]
    fn wrong_repeated_and_foreign_shares_are_refused() {
        let (_, sealed, shares) = split(2, 3);
        let (_, _, foreign) = split(2, 3);
        let mut round = Unsealing::new(sealed);
        round.add(&shares[0]).unwrap();
        assert_eq!(round.add(&shares[0]).err(), Some(QuorumError::Repeated(1)));
        assert_eq!(
            round.add(&foreign[1]).err(),
            Some(QuorumError::WrongShare(2))
        );
        // One bit flipped in the share's value.
        let mut flipped = shares[2].to_string();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(round.add(&flipped).err(), Some(QuorumError::WrongShare(3)));
        let bad_index = format!("{SHARE_PREFIX}09{}", &shares[0][SHARE_PREFIX.len() + 2..]);
        assert_eq!(
            round.add(&bad_index).err(),
            Some(QuorumError::UnknownIndex { index: 9, count: 3 })
        );
        for junk in ["", "kfshare1-zz", "kfshare1-00", "hello"] {
            assert_eq!(
                round.add(junk).err(),
                Some(QuorumError::NotAShare),
                "{junk}"
            );
        }
        assert_eq!(round.given(), 1, "refused shares do not count");
    }

    #[test]
    fn bad_splits_and_files_are_refused() {
        let root = SymmetricKey::generate().unwrap();
        for (t, n) in [(1, 3), (4, 3), (2, 256), (0, 0)] {
            assert!(matches!(
                SealedRoot::create(&root, t, n),
                Err(QuorumError::BadSplit { .. })
            ));
        }
        let (bytes, _) = SealedRoot::create(&root, 2, 2).unwrap();
        for bad in [
            &bytes[..5],
            &bytes[..bytes.len() - 1],
            b"KFSEAL\x02\x02\x02",
        ] {
            assert!(matches!(
                SealedRoot::parse(bad),
                Err(QuorumError::Malformed(_))
            ));
        }
    }
}
