//! keyfence-crypto
