//! Thin, typed wrappers over the aws-lc-rs primitives keyfence uses, and the byte
//! formats built from them.
//!
//! Nothing here does I/O. Every secret lives in a zeroizing type whose `Debug`
//! prints no material, and every parser of untrusted bytes returns a typed error.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub mod aead;
pub mod asym;
pub mod blob;
pub mod ct;
pub mod error;
pub mod kdf;
pub mod passphrase;
pub mod rand;
pub mod secret;
pub mod wrap;

pub use error::CryptoError;
pub use secret::{Secret, SymmetricKey};
