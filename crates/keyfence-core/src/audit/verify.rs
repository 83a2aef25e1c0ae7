//! Checking a whole log against its signed heads, one record at a time (the
//! log is never held in memory whole).
//!
//! A record is bad if it does not decode, is not at the position it names,
//! or its stored leaf hash is not the hash of its bytes: each of these names
//! the exact record. A forger who rewrites records *and* their leaf hashes
//! is caught by the first signed head whose root no longer matches: the
//! first bad record is then somewhere after the previous good head, which is
//! what is reported. Fewer records than the latest head covers is a truncation.

use super::head::{SignedTreeHead, TreeHead};
use super::merkle::{self, Frontier};
use super::record::{AuditRecord, RecordError};
use super::store::StoredEntry;

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A signed head's signature does not verify (forged or altered head).
    BadHeadSignature {
        /// The head's size.
        head_size: u64,
    },
    /// Heads not strictly growing in size and time.
    HeadsOutOfOrder {
        /// The head's size.
        head_size: u64,
    },
    /// The record at `position` does not decode.
    Malformed {
        /// Its position.
        position: u64,
        /// Why.
        error: RecordError,
    },
    /// The record at `position` says it is record `found` (a record deleted,
    /// inserted or moved).
    OutOfSequence {
        /// Its position.
        position: u64,
        /// The position it names.
        found: u64,
    },
    /// The stored leaf hash of the record at `position` is not its bytes' hash.
    LeafHashMismatch {
        /// Its position.
        position: u64,
    },
    /// The records up to `head_size` do not have the signed root: one of the
    /// records from `first_unproven` on was changed (re-hashed).
    RootMismatch {
        /// The head whose root does not match.
        head_size: u64,
        /// The first record not covered by an earlier, matching head.
        first_unproven: u64,
    },
    /// The log has `records` records but a head covers `head_size`.
    Truncated {
        /// Records found.
        records: u64,
        /// Records the head covers.
        head_size: u64,
    },
}

impl Problem {
    /// The position of the first bad record: exact, or the first that may be.
    pub fn first_bad_record(&self) -> Option<u64> {
        match self {
            Problem::BadHeadSignature { .. } | Problem::HeadsOutOfOrder { .. } => None,
            Problem::Malformed { position, .. }
            | Problem::OutOfSequence { position, .. }
            | Problem::LeafHashMismatch { position } => Some(*position),
            Problem::RootMismatch { first_unproven, .. } => Some(*first_unproven),
            Problem::Truncated { records, .. } => Some(*records),
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records read.
    pub records: u64,
    /// Signed heads checked.
    pub heads: usize,
    /// The latest signed head.
    pub latest: Option<TreeHead>,
    /// Records after the latest signed head (checked for sequence and leaf
    /// hash only, until a head covers them).
    pub unsigned_tail: u64,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Verifies a log streamed through [`Self::push`] against its signed heads.
#[derive(Debug)]
pub struct LogVerifier {
    heads: Vec<SignedTreeHead>,
    next_head: usize,
    last_good: u64,
    frontier: Frontier,
    problem: Option<Problem>,
}

impl LogVerifier {
    /// Checks every head's signature under `public_key` and their order; then
    /// expects the records from position 0.
    pub fn new(public_key: &[u8], mut heads: Vec<SignedTreeHead>) -> Self {
        heads.sort_by_key(|h| h.head.size);
        let mut problem = None;
        for (i, h) in heads.iter().enumerate() {
            if h.verify(public_key).is_err() {
                problem = Some(Problem::BadHeadSignature {
                    head_size: h.head.size,
                });
                break;
            }
            if i > 0 {
                let prev = &heads[i - 1].head;
                if prev.size == h.head.size || prev.time > h.head.time {
                    problem = Some(Problem::HeadsOutOfOrder {
                        head_size: h.head.size,
                    });
                    break;
                }
            }
        }
        let mut v = Self {
            heads,
            next_head: 0,
            last_good: 0,
            frontier: Frontier::new(),
            problem,
        };
        v.check_heads();
        v
    }

    /// Whether a problem was found (later records are then not read).
    pub fn failed(&self) -> bool {
        self.problem.is_some()
    }

    /// The next record, in order of position.
    pub fn push(&mut self, entry: &StoredEntry) {
        if self.problem.is_some() {
            return;
        }
        let position = self.frontier.size();
        let found = match AuditRecord::decode(&entry.data) {
            Ok(r) => r.seq,
            Err(error) => {
                self.problem = Some(Problem::Malformed { position, error });
                return;
            }
        };
        if found != position || entry.seq != position {
            let found = if found != position { found } else { entry.seq };
            self.problem = Some(Problem::OutOfSequence { position, found });
            return;
        }
        let leaf = merkle::leaf_hash(&entry.data);
        if !super::ct_eq(&leaf, &entry.leaf_hash) {
            self.problem = Some(Problem::LeafHashMismatch { position });
            return;
        }
        self.frontier.push(leaf);
        self.check_heads();
    }

    fn check_heads(&mut self) {
        while self.problem.is_none() {
            let Some(h) = self.heads.get(self.next_head) else {
                return;
            };
            if h.head.size != self.frontier.size() {
                return;
            }
            if super::ct_eq(&self.frontier.root(), &h.head.root) {
                self.last_good = h.head.size;
                self.next_head += 1;
            } else {
                self.problem = Some(Problem::RootMismatch {
                    head_size: h.head.size,
                    first_unproven: self.last_good,
                });
            }
        }
    }

    /// The verdict once every record was pushed.
    pub fn finish(mut self) -> Report {
        if self.problem.is_none() {
            if let Some(h) = self.heads.get(self.next_head) {
                self.problem = Some(Problem::Truncated {
                    records: self.frontier.size(),
                    head_size: h.head.size,
                });
            }
        }
        let latest = self.heads.last().map(|h| h.head);
        Report {
            records: self.frontier.size(),
            heads: self.heads.len(),
            latest,
            unsigned_tail: self
                .frontier
                .size()
                .saturating_sub(latest.map_or(0, |h| h.size)),
            problem: self.problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use keyfence_crypto::SymmetricKey;

    use super::*;
    use crate::audit::head::AuditSigner;
    use crate::audit::record::{Outcome, Source};
    use crate::clock::Timestamp;
    use crate::root::LocalRootKey;

    fn entry(seq: u64, op: &str) -> StoredEntry {
        let data = AuditRecord {
            seq,
            time: Timestamp(seq as i64),
            source: Source::Kms,
            operation: op.into(),
            request_id: format!("r{seq}"),
            principal: String::new(),
            access_key_id: String::new(),
            account: String::new(),
            source_address: "127.0.0.1:1".into(),
            key: None,
            context_keys: vec![],
            outcome: Outcome::Success,
        }
        .encode()
        .unwrap();
        StoredEntry {
            seq,
            leaf_hash: merkle::leaf_hash(&data),
            data,
        }
    }

    /// 20 records, heads at 5, 10 and 20.
    fn log() -> (Vec<u8>, Vec<StoredEntry>, Vec<SignedTreeHead>) {
        let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
        let (signer, _) = AuditSigner::generate(&root).unwrap();
        let entries: Vec<_> = (0..20).map(|i| entry(i, "Encrypt")).collect();
        let heads = [5u64, 10, 20]
            .iter()
            .map(|&n| {
                let leaves: Vec<_> = entries[..n as usize].iter().map(|e| e.leaf_hash).collect();
                signer
                    .sign(TreeHead {
                        size: n,
                        root: merkle::root(&leaves),
                        time: Timestamp(n as i64),
                    })
                    .unwrap()
            })
            .collect();
        (signer.public_key().unwrap(), entries, heads)
    }

    fn run(public: &[u8], entries: &[StoredEntry], heads: Vec<SignedTreeHead>) -> Report {
        let mut v = LogVerifier::new(public, heads);
        entries.iter().for_each(|e| v.push(e));
        v.finish()
    }

    #[test]
    fn an_intact_log_verifies() {
        let (public, mut entries, heads) = log();
        let report = run(&public, &entries, heads.clone());
        assert_eq!(report.problem, None);
        assert_eq!(
            (report.records, report.heads, report.unsigned_tail),
            (20, 3, 0)
        );
        entries.push(entry(20, "Decrypt"));
        let report = run(&public, &entries, heads);
        assert_eq!((report.problem, report.unsigned_tail), (None, 1));
    }

    #[test]
    fn each_kind_of_tampering_names_the_first_bad_record() {
        let (public, entries, heads) = log();
        // An edited field, leaf hash left alone.
        let mut e = entries.clone();
        e[7].data = entry(7, "Decrypt").data;
        assert_eq!(
            run(&public, &e, heads.clone()).problem,
            Some(Problem::LeafHashMismatch { position: 7 })
        );
        // The same, re-hashed: the head at 10 no longer matches; 5 still does.
        e[7] = entry(7, "Decrypt");
        assert_eq!(
            run(&public, &e, heads.clone()).problem,
            Some(Problem::RootMismatch {
                head_size: 10,
                first_unproven: 5
            })
        );
        // A deleted record.
        let mut e = entries.clone();
        e.remove(3);
        assert_eq!(
            run(&public, &e, heads.clone()).problem,
            Some(Problem::OutOfSequence {
                position: 3,
                found: 4
            })
        );
        // Two records swapped.
        let mut e = entries.clone();
        e.swap(12, 13);
        assert_eq!(
            run(&public, &e, heads.clone())
                .problem
                .unwrap()
                .first_bad_record(),
            Some(12)
        );
        // Truncated.
        assert_eq!(
            run(&public, &entries[..15], heads.clone()).problem,
            Some(Problem::Truncated {
                records: 15,
                head_size: 20
            })
        );
        // A tail replaced by a consistent forgery with a head it signed itself.
        let mut e = entries.clone();
        for (i, slot) in e.iter_mut().enumerate().skip(11) {
            *slot = entry(i as u64, "ListKeys");
        }
        assert_eq!(
            run(&public, &e, heads.clone()).problem,
            Some(Problem::RootMismatch {
                head_size: 20,
                first_unproven: 10
            })
        );
        let root = LocalRootKey::new(SymmetricKey::generate().unwrap());
        let (forger, _) = AuditSigner::generate(&root).unwrap();
        let mut forged_heads = heads.clone();
        let leaves: Vec<_> = e.iter().map(|x| x.leaf_hash).collect();
        forged_heads[2] = forger
            .sign(TreeHead {
                size: 20,
                root: merkle::root(&leaves),
                time: Timestamp(20),
            })
            .unwrap();
        assert_eq!(
            run(&public, &e, forged_heads).problem,
            Some(Problem::BadHeadSignature { head_size: 20 })
        );
    }
}
