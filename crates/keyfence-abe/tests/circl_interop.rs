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
    assert!(outsider.decrypt(&ct).is_err());
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
    let text = (0..300)
        .map(|i| format!("k{i}: {long}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let policy = Policy::parse(&text).unwrap();
    assert!(mpk
        .encrypt_circl(&policy, b"m", &mut rand_core::OsRng)
        .is_err());
}
