//! CCA: any modification of a ciphertext makes decryption fail.

mod common;

use common::{attrs, is_decoding_error, keys};
use keyfence_abe::{Ciphertext, Error, Policy};

/// Decodes and decrypts; a failure must be a decoding error or one of the two
/// decryption errors, never anything else.
fn decrypts(key: &keyfence_abe::AttributeKey, bytes: &[u8]) -> bool {
    match Ciphertext::from_bytes(bytes).and_then(|ct| key.decrypt(&ct)) {
        Ok(_) => true,
        Err(Error::DecryptionFailed | Error::PolicyNotSatisfied) => false,
        Err(e) => {
            assert!(is_decoding_error(&e), "{e:?}");
            false
        }
    }
}

#[test]
fn flipping_any_byte_or_truncating_fails() {
    let (mpk, msk) = keys();
    let policy = Policy::parse("region: EU and not country: DE").unwrap();
    let key = msk.keygen(
        &attrs(&[("region", "EU"), ("country", "FR")]),
        &mut rand_core::OsRng,
    );
    let bytes = mpk
        .encrypt(&policy, b"m", &mut rand_core::OsRng)
        .unwrap()
        .to_bytes();
    assert!(decrypts(&key, &bytes));
    for i in 0..bytes.len() {
        // Every byte gets its low bit flipped; every fifth also its high (flag) bit.
        let bits: &[u8] = if i % 5 == 0 { &[0x01, 0x80] } else { &[0x01] };
        for bit in bits {
            let mut t = bytes.clone();
            t[i] ^= bit;
            assert!(!decrypts(&key, &t), "flip {bit:#x} at byte {i} accepted");
        }
    }
    for len in 0..bytes.len() {
        assert!(
            !decrypts(&key, &bytes[..len]),
            "truncation to {len} accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(!decrypts(&key, &longer));
}

#[test]
fn swapping_the_policy_fails() {
    let (mpk, msk) = keys();
    let key = msk.keygen(&attrs(&[("a", "x"), ("b", "y")]), &mut rand_core::OsRng);
    let p1 = Policy::parse("a: x or b: y").unwrap();
    let p2 = Policy::parse("b: y or a: x").unwrap();
    let bytes = mpk
        .encrypt(&p1, b"m", &mut rand_core::OsRng)
        .unwrap()
        .to_bytes();
    let (e1, e2) = (p1.to_bytes(), p2.to_bytes());
    // Policy bytes (after the 4-byte prefix) sit after the 4-byte prefix and 32-byte id.
    let (t1, t2) = (&e1[4..], &e2[4..]);
    assert_eq!(&bytes[36..36 + t1.len()], t1);
    let mut swapped = bytes.clone();
    swapped[36..36 + t2.len()].copy_from_slice(t2);
    let ct = Ciphertext::from_bytes(&swapped).unwrap();
    assert_eq!(ct.policy(), p2);
    assert_eq!(key.decrypt(&ct), Err(Error::DecryptionFailed));
}

#[test]
fn circl_format_ciphertexts_are_also_tamper_evident() {
    let (mpk, msk) = keys();
    let policy = Policy::parse("tier: 1 or tier: 2").unwrap();
    let key = msk.keygen(&attrs(&[("tier", "2")]), &mut rand_core::OsRng);
    let bytes = mpk
        .encrypt_circl(&policy, b"m", &mut rand_core::OsRng)
        .unwrap()
        .to_bytes();
    let ok = |b: &[u8]| {
        Ciphertext::from_circl_bytes(b)
            .and_then(|ct| key.decrypt(&ct))
            .is_ok()
    };
    assert!(ok(&bytes));
    // Every 7th byte keeps the debug-mode run short while touching every field.
    for i in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        assert!(!ok(&t), "flip at byte {i} accepted");
    }
    assert!(!ok(&bytes[..bytes.len() - 1]));
}
