//! Round trips of every encoding, and typed errors for malformed input.

mod common;

use common::{attrs, is_decoding_error, keys};
use keyfence_abe::{
    AttributeKey, Attributes, Ciphertext, Error, MasterPublicKey, MasterSecretKey, Policy,
};

fn fixtures() -> (AttributeKey, Ciphertext) {
    let (mpk, msk) = keys();
    let key = msk.keygen(
        &attrs(&[
            ("country", "FR"),
            ("region", "EU"),
            ("data center", "Paris 1"),
        ]),
        &mut rand_core::OsRng,
    );
    let policy =
        Policy::parse(r#"region: EU and not country: DE and "data center": "Paris 1""#).unwrap();
    (
        key,
        mpk.encrypt(&policy, b"m", &mut rand_core::OsRng).unwrap(),
    )
}

#[test]
fn native_round_trips() {
    let (mpk, msk) = keys();
    let (key, ct) = fixtures();
    assert_eq!(&MasterPublicKey::from_bytes(&mpk.to_bytes()).unwrap(), mpk);
    assert_eq!(&MasterSecretKey::from_bytes(&msk.to_bytes()).unwrap(), msk);
    assert_eq!(AttributeKey::from_bytes(&key.to_bytes()).unwrap(), key);
    assert_eq!(Ciphertext::from_bytes(&ct.to_bytes()).unwrap(), ct);
    let a = attrs(&[("b", "2"), ("a", "1")]);
    assert_eq!(Attributes::from_bytes(&a.to_bytes()).unwrap(), a);
    let p = ct.policy();
    assert_eq!(Policy::from_bytes(&p.to_bytes()).unwrap(), p);
    // A key survives a round trip with its decryption ability.
    let again = AttributeKey::from_bytes(&key.to_bytes()).unwrap();
    assert_eq!(again.decrypt(&ct).unwrap(), b"m");
    assert_eq!(
        again.attributes(),
        Some(attrs(&[
            ("country", "FR"),
            ("region", "EU"),
            ("data center", "Paris 1")
        ]))
    );
}

#[test]
fn circl_round_trips_of_native_objects() {
    let (mpk, msk) = keys();
    let (key, _) = fixtures();
    assert_eq!(
        &MasterPublicKey::from_circl_bytes(&mpk.to_circl_bytes()).unwrap(),
        mpk
    );
    assert_eq!(
        &MasterSecretKey::from_circl_bytes(&msk.to_circl_bytes()).unwrap(),
        msk
    );
    let back = AttributeKey::from_circl_bytes(&key.to_circl_bytes().unwrap()).unwrap();
    // CIRCL keys carry hashed values only; the key material is the same.
    assert_eq!(
        back.to_circl_bytes().unwrap(),
        key.to_circl_bytes().unwrap()
    );
    assert_eq!(back.attributes(), None);
    let back = AttributeKey::from_bytes(&back.to_bytes()).unwrap();
    assert_eq!(
        back.to_circl_bytes().unwrap(),
        key.to_circl_bytes().unwrap()
    );
}

/// A decoder under test, returning the re-encoding of what it decoded.
type Decode = fn(&[u8]) -> Result<Vec<u8>, Error>;

fn all_encodings() -> Vec<(&'static str, Vec<u8>, Decode)> {
    let (mpk, msk) = keys();
    let (key, ct) = fixtures();
    let circl_ct = mpk
        .encrypt_circl(&ct.policy(), b"m", &mut rand_core::OsRng)
        .unwrap();
    vec![
        ("mpk", mpk.to_bytes(), |b| {
            MasterPublicKey::from_bytes(b).map(|v| v.to_bytes())
        }),
        ("msk", msk.to_bytes().to_vec(), |b| {
            MasterSecretKey::from_bytes(b).map(|v| v.to_bytes().to_vec())
        }),
        ("key", key.to_bytes().to_vec(), |b| {
            AttributeKey::from_bytes(b).map(|v| v.to_bytes().to_vec())
        }),
        ("ct", ct.to_bytes(), |b| {
            Ciphertext::from_bytes(b).map(|v| v.to_bytes())
        }),
        ("policy", ct.policy().to_bytes(), |b| {
            Policy::from_bytes(b).map(|v| v.to_bytes())
        }),
        (
            "attrs",
            attrs(&[("a", "1"), ("data center", "Frankfurt am Main")]).to_bytes(),
            |b| Attributes::from_bytes(b).map(|v| v.to_bytes()),
        ),
        ("circl mpk", mpk.to_circl_bytes(), |b| {
            MasterPublicKey::from_circl_bytes(b).map(|v| v.to_circl_bytes())
        }),
        ("circl msk", msk.to_circl_bytes().to_vec(), |b| {
            MasterSecretKey::from_circl_bytes(b).map(|v| v.to_circl_bytes().to_vec())
        }),
        ("circl key", key.to_circl_bytes().unwrap().to_vec(), |b| {
            AttributeKey::from_circl_bytes(b).and_then(|v| Ok(v.to_circl_bytes()?.to_vec()))
        }),
        ("circl ct", circl_ct.to_bytes(), |b| {
            Ciphertext::from_circl_bytes(b).map(|v| v.to_bytes())
        }),
    ]
}

#[test]
fn truncation_and_trailing_bytes_are_malformed() {
    for (name, bytes, decode) in all_encodings() {
        assert_eq!(decode(&bytes).as_ref(), Ok(&bytes), "{name}");
        for len in (0..bytes.len()).step_by(3) {
            assert!(
                matches!(decode(&bytes[..len]), Err(Error::Malformed(_))),
                "{name} truncated to {len}: {:?}",
                decode(&bytes[..len])
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            matches!(decode(&longer), Err(Error::Malformed(_))),
            "{name} with a trailing byte: {:?}",
            decode(&longer)
        );
    }
}

#[test]
fn wrong_prefix_type_or_version_is_unsupported() {
    let (mpk, _) = keys();
    let bytes = mpk.to_bytes();
    assert_eq!(&bytes[..4], b"kf\x01\x02");
    for (i, v) in [(0usize, b'x'), (2, 9), (3, 0), (3, 3), (3, 0xff)] {
        let mut t = bytes.clone();
        t[i] = v;
        assert!(matches!(
            MasterPublicKey::from_bytes(&t),
            Err(Error::UnsupportedVersion(_))
        ));
    }
    assert!(matches!(
        Policy::from_bytes(&bytes),
        Err(Error::UnsupportedVersion(_))
    ));
}

/// A compressed G1 encoding of a point on the curve but outside the r-order subgroup.
fn non_subgroup_g1() -> [u8; 48] {
    for x in 1u8..=255 {
        let mut enc = [0u8; 48];
        enc[0] = 0x80;
        enc[47] = x;
        let on_curve = bool::from(blstrs::G1Affine::from_compressed_unchecked(&enc).is_some());
        if on_curve && bool::from(blstrs::G1Affine::from_compressed(&enc).is_none()) {
            return enc;
        }
    }
    unreachable!("a small x on the curve outside the subgroup exists")
}

#[test]
fn bad_points_and_scalars_are_typed_errors() {
    let (mpk, msk) = keys();
    let bytes = mpk.to_bytes();
    // wb1[0][0] starts after the 4-byte prefix and eight 96-byte G2 points.
    let at = 4 + 8 * 96;
    let mut off_subgroup = bytes.clone();
    off_subgroup[at..at + 48].copy_from_slice(&non_subgroup_g1());
    assert!(matches!(
        MasterPublicKey::from_bytes(&off_subgroup),
        Err(Error::InvalidPoint(_))
    ));
    let mut off_curve = bytes.clone();
    let mut not_on_curve = [0u8; 48];
    not_on_curve[0] = 0x80;
    for x in 1u8..=255 {
        not_on_curve[47] = x;
        if bool::from(blstrs::G1Affine::from_compressed_unchecked(&not_on_curve).is_none()) {
            break;
        }
    }
    off_curve[at..at + 48].copy_from_slice(&not_on_curve);
    assert!(matches!(
        MasterPublicKey::from_bytes(&off_curve),
        Err(Error::InvalidPoint(_))
    ));
    // The same point in CIRCL's uncompressed form is rejected too.
    let circl = mpk.to_circl_bytes();
    let p = blstrs::G1Affine::from_compressed_unchecked(&non_subgroup_g1()).unwrap();
    let mut t = circl.clone();
    // b2 frame: 2 + 4 + 8*192; wb1 frame: 2 + 4, then entries.
    let at = 2 + 4 + 8 * 192 + 2 + 4;
    t[at..at + 96].copy_from_slice(&p.to_uncompressed());
    assert!(matches!(
        MasterPublicKey::from_circl_bytes(&t),
        Err(Error::InvalidPoint(_))
    ));
    // A scalar >= the group order is not canonical.
    let mut sk = msk.to_bytes().to_vec();
    sk[4..36].copy_from_slice(&[0xff; 32]);
    assert_eq!(MasterSecretKey::from_bytes(&sk), Err(Error::InvalidScalar));
}

#[test]
fn corrupted_bytes_are_typed_errors_or_round_trip() {
    for (name, bytes, decode) in all_encodings() {
        for i in (0..bytes.len()).step_by(11) {
            let mut t = bytes.clone();
            t[i] ^= 0xff;
            match decode(&t) {
                // A flip inside a string can leave a valid encoding of something else.
                Ok(again) => assert_eq!(again, t, "{name}: flip at {i} decoded non-canonically"),
                Err(e) => assert!(is_decoding_error(&e), "{name}: flip at {i}: {e:?}"),
            }
        }
    }
}

/// A native policy encoding: `levels` nested `and`s down the left, each with a
/// literal on the right (prefix order: `and` tags first, then the literals).
fn nested_policy_bytes(levels: usize) -> Vec<u8> {
    let leaf = Policy::parse("a: 1").unwrap().to_bytes();
    let (head, literal) = leaf.split_at(4);
    let mut out = head.to_vec();
    out.extend(std::iter::repeat_n(1u8, levels)); // TAG_AND
    for _ in 0..=levels {
        out.extend_from_slice(literal);
    }
    out
}

#[test]
fn policy_nesting_is_capped_with_a_typed_error() {
    use keyfence_abe::MAX_DEPTH;
    // At the cap: decodes, and its canonical text parses back to the same policy.
    let p = Policy::from_bytes(&nested_policy_bytes(MAX_DEPTH)).unwrap();
    assert_eq!(Policy::parse(&p.to_string()).unwrap(), p);
    // Beyond it, up to what the node budget used to let through (2,047
    // levels): refused with the typed error, on a thread with a small stack
    // (the old decoder recursed 2,047 frames deep and overflowed 2 MiB in debug).
    for levels in [MAX_DEPTH + 1, 2_047] {
        let bytes = nested_policy_bytes(levels);
        let got = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || Policy::from_bytes(&bytes).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            got,
            Err(Error::PolicyTooDeep { max: MAX_DEPTH }),
            "{levels}"
        );
    }
    // The parser refuses the same trees: a chain of MAX_DEPTH + 2 literals
    // (MAX_DEPTH + 1 levels) used to parse into a canonical text that did not
    // parse back; MAX_DEPTH + 1 literals are fine.
    let chain = |n: usize| -> String {
        (0..n)
            .map(|i| format!("a{i}: x"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let ok = Policy::parse(&chain(MAX_DEPTH + 1)).unwrap();
    assert_eq!(Policy::parse(&ok.to_string()).unwrap(), ok);
    assert_eq!(
        Policy::parse(&chain(MAX_DEPTH + 2)).unwrap_err(),
        Error::PolicyTooDeep { max: MAX_DEPTH }
    );
}
