//! Known answers from CIRCL's tkn20 golden files (`shared/interop/circl-tkn20`).

use std::path::PathBuf;

use keyfence_abe::{
    AttributeKey, Attributes, Ciphertext, MasterPublicKey, MasterSecretKey, Policy,
};

const MESSAGE: &[u8] = b"Be sure to drink your ovaltine!";

fn golden(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop/circl-tkn20");
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("reading golden file {name}: {e}"))
}

#[test]
fn parses_every_golden_key_and_re_encodes_identically() {
    let pk = golden("publicKey");
    let sk = golden("secretKey");
    let ak = golden("attributeKey");
    let mpk = MasterPublicKey::from_circl_bytes(&pk).unwrap();
    assert_eq!(mpk.to_circl_bytes(), pk);
    let msk = MasterSecretKey::from_circl_bytes(&sk).unwrap();
    assert_eq!(&msk.to_circl_bytes()[..], &sk[..]);
    let key = AttributeKey::from_circl_bytes(&ak).unwrap();
    assert_eq!(&key.to_circl_bytes().unwrap()[..], &ak[..]);
    for name in ["ciphertext", "ciphertext_v137"] {
        let bytes = golden(name);
        let ct = Ciphertext::from_circl_bytes(&bytes).unwrap();
        assert_eq!(ct.to_bytes(), bytes, "{name}");
        assert_eq!(ct.policy(), Policy::parse("EU: true").unwrap());
    }
}

#[test]
fn decrypts_circl_ciphertexts_with_circl_key() {
    let key = AttributeKey::from_circl_bytes(&golden("attributeKey")).unwrap();
    for name in ["ciphertext", "ciphertext_v137"] {
        let ct = Ciphertext::from_circl_bytes(&golden(name)).unwrap();
        assert_eq!(key.decrypt(&ct).unwrap(), MESSAGE, "{name}");
    }
}

#[test]
fn keys_we_issue_from_circl_master_key_decrypt_circl_ciphertext() {
    let msk = MasterSecretKey::from_circl_bytes(&golden("secretKey")).unwrap();
    let attrs = Attributes::from_pairs([("country", "NL"), ("EU", "true")]).unwrap();
    let key = msk.keygen(&attrs, &mut rand_core::OsRng);
    let ct = Ciphertext::from_circl_bytes(&golden("ciphertext")).unwrap();
    assert_eq!(key.decrypt(&ct).unwrap(), MESSAGE);
    // The same key, written in CIRCL's encoding and read back, still works.
    let again = AttributeKey::from_circl_bytes(&key.to_circl_bytes().unwrap()).unwrap();
    assert_eq!(again.decrypt(&ct).unwrap(), MESSAGE);
    let outsider = msk.keygen(
        &Attributes::from_pairs([("country", "NL"), ("EU", "false")]).unwrap(),
        &mut rand_core::OsRng,
    );
    assert_eq!(
        outsider.decrypt(&ct),
        Err(keyfence_abe::Error::PolicyNotSatisfied)
    );
}

#[test]
fn circl_format_ciphertexts_we_write_decrypt_with_circl_key() {
    let mpk = MasterPublicKey::from_circl_bytes(&golden("publicKey")).unwrap();
    let key = AttributeKey::from_circl_bytes(&golden("attributeKey")).unwrap();
    let policy = Policy::parse("EU: true and not country: DE").unwrap();
    let ct = mpk
        .encrypt_circl(&policy, b"to CIRCL", &mut rand_core::OsRng)
        .unwrap();
    let bytes = ct.to_bytes();
    assert!(bytes.starts_with(b"v1.3.8"));
    let back = Ciphertext::from_circl_bytes(&bytes).unwrap();
    assert_eq!(key.decrypt(&back).unwrap(), b"to CIRCL");
    // Native ciphertexts under the CIRCL master key work with the CIRCL key too.
    let native = mpk
        .encrypt(&policy, b"native", &mut rand_core::OsRng)
        .unwrap();
    assert_eq!(key.decrypt(&native).unwrap(), b"native");
}

#[test]
fn agrees_with_every_line_of_policies_json() {
    let text = String::from_utf8(golden("policies.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(!cases.is_empty());
    let mpk = MasterPublicKey::from_circl_bytes(&golden("publicKey")).unwrap();
    let msk = MasterSecretKey::from_circl_bytes(&golden("secretKey")).unwrap();
    for case in cases {
        let policy = Policy::parse(case["policy"].as_str().unwrap()).unwrap();
        let attrs = Attributes::from_pairs(
            case["attributes"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
        )
        .unwrap();
        let expected = case["success"].as_bool().unwrap();
        assert_eq!(policy.satisfied_by(&attrs), expected, "{policy} / {attrs}");
        let key = msk.keygen(&attrs, &mut rand_core::OsRng);
        let ct = mpk
            .encrypt_circl(&policy, b"m", &mut rand_core::OsRng)
            .unwrap();
        assert_eq!(key.decrypt(&ct).is_ok(), expected, "{policy} / {attrs}");
    }
}

#[test]
fn policies_too_large_for_circl_framing_are_refused_not_truncated() {
    let mpk = MasterPublicKey::from_circl_bytes(&golden("publicKey")).unwrap();
    let long = "v".repeat(250);
    // 300 literals in 20 groups of 15, so the tree stays within MAX_DEPTH.
    let text = (0..20)
        .map(|g| {
            let group = (0..15)
                .map(|i| format!("k{}: {long}", g * 15 + i))
                .collect::<Vec<_>>()
                .join(" or ");
            format!("({group})")
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let policy = Policy::parse(&text).unwrap();
    assert!(matches!(
        mpk.encrypt_circl(&policy, b"m", &mut rand_core::OsRng),
        Err(keyfence_abe::Error::InvalidPolicy(_))
    ));
}

/// Replaces every occurrence of `from` in `bytes` by `to` (same length); returns the
/// count.
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut count = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            count += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    count
}

#[test]
fn golden_key_with_a_label_that_needs_quoting_is_read() {
    // CIRCL keys name their attributes in two places (the attribute list and the K3
    // map); a label with a space, which CIRCL's KeyGen accepts, used to make the whole
    // key unreadable here.
    let mut ak = golden("attributeKey");
    assert_eq!(replace_all(&mut ak, b"country", b"cou try"), 2);
    let key = AttributeKey::from_circl_bytes(&ak).unwrap();
    assert_eq!(&key.to_circl_bytes().unwrap()[..], &ak[..]);
    // Only the label changed: the key still satisfies `EU: true` and decrypts.
    let ct = Ciphertext::from_circl_bytes(&golden("ciphertext")).unwrap();
    assert_eq!(key.decrypt(&ct).unwrap(), MESSAGE);
}

#[test]
fn circl_keys_with_any_attribute_text_are_read_and_decrypt() {
    let msk = MasterSecretKey::from_circl_bytes(&golden("secretKey")).unwrap();
    let mpk = MasterPublicKey::from_circl_bytes(&golden("publicKey")).unwrap();
    let long_name = "n".repeat(300);
    let long_value = "v".repeat(1000);
    let attrs = Attributes::from_pairs([
        ("data center", "Frankfurt am Main"),
        ("and", "or"),
        ("not", ""),
        ("", "empty name"),
        ("country", "DE"),
        ("città", "Zürich \"Altstadt\"\n"),
        (long_name.as_str(), long_value.as_str()),
    ])
    .unwrap();
    // Issued from CIRCL's master key and written in CIRCL's key encoding, as CIRCL's
    // KeyGen + MarshalBinary would: the bytes are then read back as a CIRCL key.
    let issued = msk.keygen(&attrs, &mut rand_core::OsRng);
    let circl_key = issued.to_circl_bytes().unwrap();
    let key = AttributeKey::from_circl_bytes(&circl_key).unwrap();
    assert_eq!(&key.to_circl_bytes().unwrap()[..], &circl_key[..]);
    assert_eq!(
        key.attributes(),
        None,
        "CIRCL keys carry hashed values only"
    );

    let policy = Policy::parse(&format!(
        r#""data center": "Frankfurt am Main" and not country: RU and "and": "or" and "città": "Zürich \"Altstadt\"\n" and {long_name}: {long_value} and "not": "" and "": "empty name""#
    ))
    .unwrap();
    assert!(policy.satisfied_by(&attrs));
    let ct = mpk
        .encrypt_circl(&policy, b"fenced", &mut rand_core::OsRng)
        .unwrap();
    let ct = Ciphertext::from_circl_bytes(&ct.to_bytes()).unwrap();
    assert_eq!(ct.policy(), policy);
    assert_eq!(key.decrypt(&ct).unwrap(), b"fenced");
    // Native ciphertexts under the same policy too, and a holder with a near miss
    // ("Frankfurt" instead of "Frankfurt am Main") is refused.
    let native = mpk
        .encrypt(&policy, b"native", &mut rand_core::OsRng)
        .unwrap();
    assert_eq!(key.decrypt(&native).unwrap(), b"native");
    let mut near: Vec<(&str, &str)> = attrs.iter().collect();
    near.retain(|(k, _)| *k != "data center");
    near.push(("data center", "Frankfurt"));
    let near = Attributes::from_pairs(near).unwrap();
    let outsider = AttributeKey::from_circl_bytes(
        &msk.keygen(&near, &mut rand_core::OsRng)
            .to_circl_bytes()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        outsider.decrypt(&ct),
        Err(keyfence_abe::Error::PolicyNotSatisfied)
    );
}

#[test]
fn circl_framing_limits_are_refused_with_an_error() {
    let mpk = MasterPublicKey::from_circl_bytes(&golden("publicKey")).unwrap();
    // One wire holds label + value + 39 bytes in a 16-bit frame.
    let name = "n".repeat(40_000);
    let value = "v".repeat(30_000);
    let policy = Policy::parse(&format!("{name}: {value}")).unwrap();
    assert!(matches!(
        mpk.encrypt_circl(&policy, b"m", &mut rand_core::OsRng),
        Err(keyfence_abe::Error::InvalidPolicy(_))
    ));
    // The native format has no such frame.
    let ct = mpk.encrypt(&policy, b"m", &mut rand_core::OsRng).unwrap();
    assert_eq!(Ciphertext::from_bytes(&ct.to_bytes()).unwrap(), ct);
}
