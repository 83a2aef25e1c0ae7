//! Ciphertext-policy attribute-based encryption for keyfence geo-fences.
//!
//! This crate implements the CP-ABE scheme of Tomida, Kawahara and Nishimaki, "Fast,
//! compact, and expressive attribute-based encryption" (PKC 2020, ePrint 2019/966), the
//! scheme behind Cloudflare's Geo Key Manager v2, over BLS12-381 (blst via blstrs):
//!
//! * policies with `and`, `or` and `not` over `name: value` literals, with repeated
//!   attributes; `not country: DE` means "has a `country`, and it is not `DE`";
//! * names and values of any UTF-8 text up to 65,535 bytes, as CIRCL accepts them,
//!   quoted in policy text when they are not plain words
//!   (`"data center": "Frankfurt am Main" and not country: RU`);
//! * CCA security through the Boneh–Katz transform;
//! * hybrid encryption: the ABE part protects a fresh key, the message is sealed with
//!   AES-256-GCM (aws-lc-rs), so messages of any size work;
//! * versioned canonical encodings of every public type, plus CIRCL `tkn20`'s
//!   encodings of keys and ciphertexts (with its own payload construction) for
//!   interoperability in both directions.
//!
//! ```
//! use keyfence_abe::{setup, Attributes, Policy};
//! let mut rng = rand_core::OsRng;
//! let (mpk, msk) = setup(&mut rng);
//! let policy = Policy::parse("region: EU and not country: DE").unwrap();
//! let ct = mpk.encrypt(&policy, b"policy key", &mut rng).unwrap();
//! let fr = Attributes::from_pairs([("region", "EU"), ("country", "FR")]).unwrap();
//! let key = msk.keygen(&fr, &mut rng);
//! assert_eq!(key.decrypt(&ct).unwrap(), b"policy key");
//! ```

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod attributes;
mod cca;
mod circl;
mod codec;
mod encoding;
mod error;
mod formula;
mod hashing;
mod keys;
// Calls into blst's C API (GT arithmetic, the shared Miller loop, encodings).
#[allow(unsafe_code)]
mod pairing;
mod policy;
mod scheme;
mod text;
// Volatile writes that erase secrets.
#[allow(unsafe_code)]
mod wipe;

pub use attributes::{Attributes, MAX_ATTRIBUTES, MAX_TEXT_LEN};
pub use cca::Ciphertext;
pub use encoding::NATIVE_VERSION;
pub use error::{Error, Result};
pub use keys::{setup, AttributeKey, MasterPublicKey, MasterSecretKey};
pub use policy::{Policy, MAX_DEPTH, MAX_LEAVES};
