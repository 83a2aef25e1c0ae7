//! Native encoding version 1 (one-byte string lengths) is still read: the fixtures in
//! `tests/data/native-v1` were written by keyfence-abe before version 2 existed.

mod common;

use common::attrs;
use keyfence_abe::{
    AttributeKey, Attributes, Ciphertext, Error, MasterPublicKey, MasterSecretKey, Policy,
    NATIVE_VERSION,
};

const MESSAGE: &[u8] = b"written by keyfence-abe native version 1";

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/native-v1")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The version byte of an encoding.
fn version(bytes: &[u8]) -> u8 {
    bytes[3]
}

#[test]
fn every_version_1_type_decodes_and_is_rewritten_as_version_2() {
    assert_eq!(NATIVE_VERSION, 2);
    let mpk_v1 = fixture("master-public-key");
    let msk_v1 = fixture("master-secret-key");
    assert_eq!(version(&mpk_v1), 1);
    let mpk = MasterPublicKey::from_bytes(&mpk_v1).unwrap();
    let msk = MasterSecretKey::from_bytes(&msk_v1).unwrap();
    // Keys without strings: same body, new version byte.
    for (old, new) in [
        (mpk_v1.clone(), mpk.to_bytes()),
        (msk_v1.clone(), msk.to_bytes().to_vec()),
    ] {
        assert_eq!(version(&new), 2);
        assert_eq!(old[4..], new[4..]);
    }

    let policy = Policy::from_bytes(&fixture("policy")).unwrap();
    assert_eq!(
        policy,
        Policy::parse("region: EU and not country: DE").unwrap()
    );
    let again = policy.to_bytes();
    assert_eq!(version(&again), 2);
    assert_eq!(Policy::from_bytes(&again).unwrap(), policy);

    let attributes = Attributes::from_bytes(&fixture("attributes")).unwrap();
    assert_eq!(attributes, attrs(&[("country", "FR"), ("region", "EU")]));
    assert_eq!(
        Attributes::from_bytes(&attributes.to_bytes()).unwrap(),
        attributes
    );

    let key = AttributeKey::from_bytes(&fixture("attribute-key")).unwrap();
    assert_eq!(key.attributes(), Some(attributes));
    let key_v2 = key.to_bytes();
    assert_eq!(version(&key_v2), 2);
    assert_eq!(AttributeKey::from_bytes(&key_v2).unwrap(), key);
}

#[test]
fn version_1_ciphertexts_keep_their_version_and_decrypt() {
    let bytes = fixture("ciphertext");
    let ct = Ciphertext::from_bytes(&bytes).unwrap();
    // The MAC covers the encoding, so the ciphertext is written back as it came.
    assert_eq!(ct.to_bytes(), bytes);
    assert_eq!(
        ct.policy(),
        Policy::parse("region: EU and not country: DE").unwrap()
    );
    let key = AttributeKey::from_bytes(&fixture("attribute-key")).unwrap();
    assert_eq!(key.decrypt(&ct).unwrap(), MESSAGE);
    // The key re-encoded as version 2 still decrypts it; the version-1 master keys
    // encrypt new (version 2) ciphertexts and issue new keys that read both.
    let key_v2 = AttributeKey::from_bytes(&key.to_bytes()).unwrap();
    assert_eq!(key_v2.decrypt(&ct).unwrap(), MESSAGE);
    let mpk = MasterPublicKey::from_bytes(&fixture("master-public-key")).unwrap();
    let msk = MasterSecretKey::from_bytes(&fixture("master-secret-key")).unwrap();
    let fresh = mpk
        .encrypt(&ct.policy(), b"new", &mut rand_core::OsRng)
        .unwrap();
    assert_eq!(version(&fresh.to_bytes()), 2);
    assert_eq!(key.decrypt(&fresh).unwrap(), b"new");
    let issued = msk.keygen(
        &attrs(&[("region", "EU"), ("country", "FR")]),
        &mut rand_core::OsRng,
    );
    assert_eq!(issued.decrypt(&ct).unwrap(), MESSAGE);
    // Claiming version 2 for version-1 bytes changes the framing: refused.
    let mut relabelled = bytes.clone();
    relabelled[3] = 2;
    assert!(matches!(
        Ciphertext::from_bytes(&relabelled),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn version_1_is_read_with_its_own_rules() {
    let policy = fixture("policy");
    // `kf 05 01`, AND, POS, len 6 "region", len 2 "EU", NEG, len 7 "country", len 2 "DE".
    assert_eq!(&policy[7..13], b"region");
    // A space was not allowed in version 1, although version 2 takes it.
    let mut spaced = policy.clone();
    spaced[9] = b' ';
    assert_eq!(
        Policy::from_bytes(&spaced),
        Err(Error::Malformed("invalid attribute name or value"))
    );
    // Nor were reserved words (here "or" in place of "region").
    let mut keyword = policy[..6].to_vec();
    keyword.extend_from_slice(b"\x02or\x02EU\x04\x07country\x02DE");
    assert_eq!(
        Policy::from_bytes(&keyword),
        Err(Error::Malformed("invalid attribute name or value"))
    );
    // The same texts in version 2 framing are fine.
    let v2 = Policy::parse(r#""re ion": EU and not country: DE"#)
        .unwrap()
        .to_bytes();
    assert_eq!(
        Policy::from_bytes(&v2).unwrap().to_string(),
        r#""re ion": EU and not country: DE"#
    );
}
