//! Shared fixtures for the integration tests.

use std::sync::OnceLock;

use keyfence_abe::{setup, Attributes, MasterPublicKey, MasterSecretKey};

/// One master key pair per test binary (setup is the slowest step).
pub fn keys() -> &'static (MasterPublicKey, MasterSecretKey) {
    static KEYS: OnceLock<(MasterPublicKey, MasterSecretKey)> = OnceLock::new();
    KEYS.get_or_init(|| setup(&mut rand_core::OsRng))
}

/// Attributes from literal pairs.
pub fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    Attributes::from_pairs(pairs.iter().copied()).unwrap()
}
