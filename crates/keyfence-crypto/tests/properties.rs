//! Property tests over every parser of untrusted bytes: whatever the input, the
//! answer is either a value that round-trips or the one typed error the format
//! predicts for it — never a panic, never the wrong error.

use keyfence_crypto::asym::{aes_kwp_unwrap, xwing::XWingPrivateKey, KeySpec, PrivateKey};
use keyfence_crypto::blob::{self, CiphertextBlob, FORMAT_VERSION, HEADER_BYTES, MIN_BLOB_BYTES};
use keyfence_crypto::{wrap, CryptoError, SymmetricKey};
use proptest::prelude::*;

const CONTEXT: &[u8] = b"ctx";
const PLAINTEXT: &[u8] = b"attack at dawn";

/// The reason `CiphertextBlob::parse` must give for `bytes`, from the documented
/// format alone (magic "KFC", version 1, algorithm 1, at least header + tag), or
/// `None` when the bytes are structurally valid.
fn expected_parse_error(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 4 || &bytes[..3] != b"KFC" {
        Some("not a keyfence ciphertext")
    } else if bytes[3] != FORMAT_VERSION {
        Some("unsupported format version")
    } else if bytes.len() < MIN_BLOB_BYTES {
        Some("truncated")
    } else if bytes[4] != 1 {
        Some("unknown algorithm id")
    } else {
        None
    }
}

fn assert_parse_matches_format(bytes: &[u8]) -> Result<(), TestCaseError> {
    match (CiphertextBlob::parse(bytes), expected_parse_error(bytes)) {
        (Ok(blob), None) => prop_assert_eq!(blob.to_bytes(), bytes),
        (Err(e), Some(reason)) => prop_assert_eq!(
            e,
            CryptoError::Malformed {
                what: "ciphertext blob",
                reason
            }
        ),
        (got, expected) => prop_assert!(false, "parse gave {got:?}, format says {expected:?}"),
    }
    Ok(())
}

fn sample() -> (SymmetricKey, Vec<u8>) {
    let key = SymmetricKey::generate().unwrap();
    let sealed = blob::seal(&key, [9; 16], 3, CONTEXT, PLAINTEXT).unwrap();
    (key, sealed.to_bytes())
}

/// Parses and opens `bytes` with `key` under `context`.
fn parse_and_open(
    key: &SymmetricKey,
    bytes: &[u8],
    context: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    CiphertextBlob::parse(bytes).and_then(|b| blob::open(key, &b, context))
}

fn is_malformed_blob(result: &Result<Vec<u8>, CryptoError>) -> bool {
    matches!(
        result,
        Err(CryptoError::Malformed {
            what: "ciphertext blob",
            ..
        })
    )
}

proptest! {
    #[test]
    fn blob_parse_of_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        assert_parse_matches_format(&bytes)?;
    }

    /// Inputs that get past the magic, so every later check is reached.
    #[test]
    fn blob_parse_past_the_magic(
        version in prop_oneof![Just(FORMAT_VERSION), any::<u8>()],
        alg in prop_oneof![Just(1u8), any::<u8>()],
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = b"KFC".to_vec();
        bytes.push(version);
        bytes.push(alg);
        bytes.extend(tail);
        assert_parse_matches_format(&bytes)?;
    }

    /// One byte changed anywhere: the first five bytes make the blob malformed;
    /// any later byte (key id, version, salt, ciphertext, tag) fails authentication.
    #[test]
    fn blob_with_a_changed_byte_is_rejected_with_the_right_error(
        index in 0usize..(HEADER_BYTES + PLAINTEXT.len() + 16),
        mask in 1u8..=255,
    ) {
        let (key, mut bytes) = sample();
        bytes[index] ^= mask;
        let result = parse_and_open(&key, &bytes, CONTEXT);
        if index < 5 {
            prop_assert!(is_malformed_blob(&result), "byte {index}: {result:?}");
        } else {
            prop_assert_eq!(result, Err(CryptoError::AuthenticationFailed));
        }
    }

    #[test]
    fn blob_truncated_is_malformed_or_fails_authentication(
        len in 0usize..(HEADER_BYTES + PLAINTEXT.len() + 16),
    ) {
        let (key, bytes) = sample();
        let result = parse_and_open(&key, &bytes[..len], CONTEXT);
        if len < MIN_BLOB_BYTES {
            prop_assert!(is_malformed_blob(&result), "length {len}: {result:?}");
        } else {
            prop_assert_eq!(result, Err(CryptoError::AuthenticationFailed));
        }
    }

    #[test]
    fn blob_under_another_context_fails_authentication(
        context in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        prop_assume!(context != CONTEXT);
        let (key, bytes) = sample();
        prop_assert_eq!(
            parse_and_open(&key, &bytes, &context),
            Err(CryptoError::AuthenticationFailed)
        );
        prop_assert_eq!(parse_and_open(&key, &bytes, CONTEXT).unwrap(), PLAINTEXT);
    }

    #[test]
    fn unwrapping_arbitrary_bytes_is_a_length_or_authentication_error(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..100),
            proptest::collection::vec(any::<u8>(), wrap::WRAPPED_KEY_BYTES),
        ],
    ) {
        let kek = SymmetricKey::generate().unwrap();
        match wrap::unwrap(&kek, b"binding", &bytes) {
            Err(CryptoError::InvalidLength { expected, got, .. }) => {
                prop_assert_eq!(expected, wrap::WRAPPED_KEY_BYTES);
                prop_assert_eq!(got, bytes.len());
                prop_assert_ne!(got, wrap::WRAPPED_KEY_BYTES);
            }
            other => {
                prop_assert_eq!(bytes.len(), wrap::WRAPPED_KEY_BYTES);
                prop_assert_eq!(other, Err(CryptoError::AuthenticationFailed));
            }
        }
        match wrap::unwrap_bytes(&kek, b"binding", &bytes) {
            Err(CryptoError::Malformed { what: "wrapped secret", .. }) => {
                prop_assert!(bytes.len() < 12 + 16);
            }
            Err(CryptoError::AuthenticationFailed) => prop_assert!(bytes.len() >= 12 + 16),
            other => prop_assert!(false, "unwrap_bytes of garbage: {:?}", other.map(|s| s.len())),
        }
    }

    #[test]
    fn aes_kwp_unwrap_of_arbitrary_bytes_is_malformed_or_fails_integrity(
        bytes in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let well_formed = bytes.len() >= 16 && bytes.len() % 8 == 0;
        match aes_kwp_unwrap(&[7; 32], &bytes) {
            Err(CryptoError::Malformed { what: "AES-KWP ciphertext", .. }) => prop_assert!(!well_formed),
            Err(CryptoError::AuthenticationFailed) => prop_assert!(well_formed),
            other => prop_assert!(false, "aes_kwp_unwrap of garbage: {:?}", other.map(|s| s.len())),
        }
    }

    /// Random bytes are not a private key of any non-HMAC spec (HMAC keys are
    /// raw bytes, so any length in range is a valid key).
    #[test]
    fn private_key_from_arbitrary_bytes_is_a_typed_error(
        spec in prop::sample::select(vec![
            KeySpec::Rsa2048, KeySpec::Rsa4096, KeySpec::EccNistP256, KeySpec::EccNistP521,
            KeySpec::EccSecgP256k1, KeySpec::EccNistEdwards25519, KeySpec::MlDsa44,
            KeySpec::MlDsa87, KeySpec::MlKem512, KeySpec::MlKem1024,
        ]),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let result = PrivateKey::from_bytes(spec, &bytes);
        prop_assert!(
            matches!(
                result,
                Err(CryptoError::Malformed { .. } | CryptoError::InvalidLength { .. })
            ),
            "{spec:?} from {} random bytes: {:?}",
            bytes.len(),
            result.map(|k| k.spec())
        );
    }

    #[test]
    fn xwing_private_key_from_arbitrary_bytes_is_a_typed_error(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), keyfence_crypto::asym::xwing::PRIVATE_KEY_LEN),
        ],
    ) {
        let result = XWingPrivateKey::from_bytes(&bytes).map(|_| ());
        if bytes.len() == keyfence_crypto::asym::xwing::PRIVATE_KEY_LEN {
            prop_assert!(matches!(result, Err(CryptoError::Malformed { .. })), "{result:?}");
        } else {
            prop_assert!(matches!(result, Err(CryptoError::InvalidLength { .. })), "{result:?}");
        }
    }
}
