//! Shared fixtures for the integration tests.

use std::sync::OnceLock;

use keyfence_abe::{setup, Attributes, MasterPublicKey, MasterSecretKey};

/// One master key pair per test binary (setup is the slowest step).
#[allow(dead_code)]
pub fn keys() -> &'static (MasterPublicKey, MasterSecretKey) {
    static KEYS: OnceLock<(MasterPublicKey, MasterSecretKey)> = OnceLock::new();
    KEYS.get_or_init(|| setup(&mut rand_core::OsRng))
}

/// Attributes from literal pairs.
// Each test binary compiles this module; not every one uses every helper.
#[allow(dead_code)]
pub fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    Attributes::from_pairs(pairs.iter().copied()).unwrap()
}

/// True for the errors a decoder may return: every malformed input must be one of
/// these, never a policy-syntax, attribute or primitive error.
#[allow(dead_code)]
pub fn is_decoding_error(e: &keyfence_abe::Error) -> bool {
    use keyfence_abe::Error;
    matches!(
        e,
        Error::Malformed(_)
            | Error::InvalidPoint(_)
            | Error::InvalidScalar
            | Error::UnsupportedVersion(_)
            | Error::PolicyTooDeep { .. }
    )
}
