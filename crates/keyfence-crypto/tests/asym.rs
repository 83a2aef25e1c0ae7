//! Asymmetric, HMAC and KEM keys: round trips for every key spec, algorithm
//! and message type, tampering, malformed input, and known answers.

use aws_lc_rs::digest;
use keyfence_crypto::asym::{
    self, encapsulate_with_public_key, encrypt_with_public_key, generate_data_key_pair,
    unwrap_import, verify_with_public_key, wrap_for_import, EncryptionAlgorithm, KeySpec, KeyUsage,
    MacAlgorithm, MessageType, PrivateKey, SigningAlgorithm, WrappingAlgorithm,
};
use keyfence_crypto::CryptoError;

fn h(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const MESSAGE: &[u8] = b"keyfence asymmetric test message";

/// The `Message` to send for `message_type` so that it stands for MESSAGE.
fn message_for(alg: SigningAlgorithm, message_type: MessageType) -> Vec<u8> {
    match message_type {
        MessageType::Raw => MESSAGE.to_vec(),
        MessageType::Digest => {
            let d = match alg.message_len(MessageType::Digest) {
                Some(32) => &digest::SHA256,
                Some(48) => &digest::SHA384,
                _ => &digest::SHA512,
            };
            digest::digest(d, MESSAGE).as_ref().to_vec()
        }
        MessageType::ExternalMu => vec![0x5a; 64],
    }
}

/// The combinations aws-lc cannot do; everything else must work.
fn known_gap(_alg: SigningAlgorithm, message_type: MessageType) -> bool {
    message_type == MessageType::ExternalMu
}

fn signing_specs() -> impl Iterator<Item = KeySpec> {
    KeySpec::ALL
        .iter()
        .copied()
        .filter(|s| s.key_usages().contains(&KeyUsage::SignVerify))
}

#[test]
fn keys_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PrivateKey>();
    send_sync::<asym::xwing::XWingPrivateKey>();
}

#[test]
fn every_spec_generates_and_reloads() {
    for &spec in KeySpec::ALL {
        let key = PrivateKey::generate(spec).unwrap();
        assert_eq!(key.spec(), spec);
        let again = PrivateKey::from_bytes(spec, key.to_bytes()).unwrap();
        assert_eq!(again.to_bytes(), key.to_bytes(), "{spec}");
        match spec {
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
                assert!(matches!(
                    key.public_key_der(),
                    Err(CryptoError::Incompatible(_))
                ));
                let tag = key.mac(spec.mac_algorithms()[0], MESSAGE).unwrap();
                assert!(again
                    .verify_mac(spec.mac_algorithms()[0], MESSAGE, &tag)
                    .unwrap());
            }
            _ => {
                let public = key.public_key_der().unwrap();
                assert_eq!(public, again.public_key_der().unwrap(), "{spec}");
                assert_eq!(public[0], 0x30, "{spec}: SPKI is a DER SEQUENCE");
            }
        }
        let shown = format!("{key:?}");
        assert!(shown.contains(&format!("{spec:?}")), "{shown}");
        let material_hex: String = key.to_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.contains(&material_hex), "{shown}");
    }
}

#[test]
fn every_signing_algorithm_and_message_type_round_trips() {
    for spec in signing_specs() {
        let key = PrivateKey::generate(spec).unwrap();
        let public = key.public_key_der().unwrap();
        for &alg in spec.signing_algorithms() {
            for &mt in alg.message_types() {
                let msg = message_for(alg, mt);
                let result = key.sign(alg, mt, &msg);
                if known_gap(alg, mt) {
                    assert!(
                        matches!(result, Err(CryptoError::Unsupported(_))),
                        "{spec} {alg} {mt}: {result:?}"
                    );
                    assert!(matches!(
                        key.verify(alg, mt, &msg, &[0; 64]),
                        Err(CryptoError::Unsupported(_))
                    ));
                    continue;
                }
                let sig = result.unwrap_or_else(|e| panic!("{spec} {alg} {mt}: {e}"));
                assert!(
                    key.verify(alg, mt, &msg, &sig).unwrap(),
                    "{spec} {alg} {mt}"
                );
                assert!(
                    verify_with_public_key(spec, &public, alg, mt, &msg, &sig).unwrap(),
                    "{spec} {alg} {mt}"
                );
                // A signature over the digest is a signature over the message.
                if mt == MessageType::Digest && alg.message_types().contains(&MessageType::Raw) {
                    assert!(key.verify(alg, MessageType::Raw, MESSAGE, &sig).unwrap());
                }
                let mut bad = sig.clone();
                let last = bad.len() - 1;
                bad[last / 2] ^= 0x10;
                assert!(
                    !key.verify(alg, mt, &msg, &bad).unwrap(),
                    "{spec} {alg} {mt}"
                );
                let mut other = msg.clone();
                other[0] ^= 1;
                assert!(
                    !key.verify(alg, mt, &other, &sig).unwrap(),
                    "{spec} {alg} {mt}"
                );
                assert!(!key.verify(alg, mt, &msg, &sig[..last]).unwrap());
                assert!(!key.verify(alg, mt, &msg, b"").unwrap());
            }
        }
    }
}

#[test]
fn deterministic_rsa_signatures_match_over_message_and_digest() {
    let key = PrivateKey::generate(KeySpec::Rsa2048).unwrap();
    let alg = SigningAlgorithm::RsassaPkcs1V15Sha384;
    let raw = key.sign(alg, MessageType::Raw, MESSAGE).unwrap();
    let dig = key
        .sign(
            alg,
            MessageType::Digest,
            &message_for(alg, MessageType::Digest),
        )
        .unwrap();
    assert_eq!(raw, dig);
    assert_eq!(raw.len(), 256);
}

#[test]
fn wrong_digest_length_is_an_error() {
    for spec in signing_specs() {
        let key = PrivateKey::generate(spec).unwrap();
        for &alg in spec.signing_algorithms() {
            for &mt in alg.message_types() {
                let Some(len) = alg.message_len(mt) else {
                    continue;
                };
                for wrong in [len - 1, len + 1, 0] {
                    let err = key.sign(alg, mt, &vec![1; wrong]).unwrap_err();
                    assert!(
                        matches!(err, CryptoError::InvalidLength { expected, got, .. } if expected == len && got == wrong),
                        "{spec} {alg} {mt}: {err:?}"
                    );
                    assert!(key.verify(alg, mt, &vec![1; wrong], &[0; 8]).is_err());
                }
            }
        }
    }
}

#[test]
fn algorithms_and_message_types_outside_the_spec_are_incompatible() {
    let p256 = PrivateKey::generate(KeySpec::EccNistP256).unwrap();
    for alg in [
        SigningAlgorithm::EcdsaSha384,
        SigningAlgorithm::RsassaPssSha256,
        SigningAlgorithm::Ed25519Sha512,
        SigningAlgorithm::MlDsaShake256,
    ] {
        assert!(matches!(
            p256.sign(alg, MessageType::Raw, MESSAGE),
            Err(CryptoError::Incompatible(_))
        ));
    }
    assert!(matches!(
        p256.sign(
            SigningAlgorithm::EcdsaSha256,
            MessageType::ExternalMu,
            &[0; 64]
        ),
        Err(CryptoError::Incompatible(_))
    ));
    let ed = PrivateKey::generate(KeySpec::EccNistEdwards25519).unwrap();
    assert!(matches!(
        ed.sign(
            SigningAlgorithm::Ed25519Sha512,
            MessageType::Digest,
            &[0; 64]
        ),
        Err(CryptoError::Incompatible(_))
    ));
    let mldsa = PrivateKey::generate(KeySpec::MlDsa44).unwrap();
    assert!(matches!(
        mldsa.sign(
            SigningAlgorithm::MlDsaShake256,
            MessageType::Digest,
            &[0; 64]
        ),
        Err(CryptoError::Incompatible(_))
    ));
    let hmac = PrivateKey::generate(KeySpec::Hmac256).unwrap();
    assert!(matches!(
        hmac.sign(SigningAlgorithm::EcdsaSha256, MessageType::Raw, MESSAGE),
        Err(CryptoError::Incompatible(_))
    ));
    assert!(matches!(
        hmac.mac(MacAlgorithm::HmacSha384, MESSAGE),
        Err(CryptoError::Incompatible(_))
    ));
    assert!(matches!(
        p256.mac(MacAlgorithm::HmacSha256, MESSAGE),
        Err(CryptoError::Incompatible(_))
    ));
    assert!(matches!(
        p256.encapsulate(),
        Err(CryptoError::Incompatible(_))
    ));
    assert!(matches!(
        p256.decrypt(EncryptionAlgorithm::RsaesOaepSha256, &[0; 256]),
        Err(CryptoError::Incompatible(_))
    ));
}

#[test]
fn public_keys_of_another_spec_are_rejected() {
    let p256 = PrivateKey::generate(KeySpec::EccNistP256).unwrap();
    let sig = p256
        .sign(SigningAlgorithm::EcdsaSha256, MessageType::Raw, MESSAGE)
        .unwrap();
    let public = p256.public_key_der().unwrap();
    // The same bytes claimed as secp256k1 or Ed25519, or truncated.
    for (spec, spki) in [
        (KeySpec::EccSecgP256k1, &public[..]),
        (KeySpec::EccNistP256, &public[..public.len() - 1]),
        (KeySpec::EccNistP256, &b"not a key"[..]),
    ] {
        let r = verify_with_public_key(
            spec,
            spki,
            SigningAlgorithm::EcdsaSha256,
            MessageType::Raw,
            MESSAGE,
            &sig,
        );
        assert!(
            matches!(r, Err(CryptoError::Malformed { .. })),
            "{spec}: {r:?}"
        );
    }
    let rsa = PrivateKey::generate(KeySpec::Rsa2048).unwrap();
    let sig = rsa
        .sign(SigningAlgorithm::RsassaPssSha256, MessageType::Raw, MESSAGE)
        .unwrap();
    let r = verify_with_public_key(
        KeySpec::Rsa3072,
        &rsa.public_key_der().unwrap(),
        SigningAlgorithm::RsassaPssSha256,
        MessageType::Raw,
        MESSAGE,
        &sig,
    );
    assert!(matches!(
        r,
        Err(CryptoError::InvalidLength {
            expected: 3072,
            got: 2048,
            ..
        })
    ));
}

#[test]
fn malformed_material_is_a_typed_error() {
    for &spec in KeySpec::ALL {
        for bytes in [&b""[..], &b"garbage"[..], &[0u8; 3000][..]] {
            let r = PrivateKey::from_bytes(spec, bytes);
            assert!(
                matches!(
                    r,
                    Err(CryptoError::Malformed { .. } | CryptoError::InvalidLength { .. })
                ),
                "{spec}: {r:?}"
            );
        }
        let good = PrivateKey::generate(spec).unwrap();
        let truncated = &good.to_bytes()[..good.to_bytes().len() - 1];
        let is_hmac = spec.key_usages().contains(&KeyUsage::GenerateVerifyMac);
        if !is_hmac {
            assert!(PrivateKey::from_bytes(spec, truncated).is_err(), "{spec}");
        }
    }
    // The right format for another spec.
    let p256 = PrivateKey::generate(KeySpec::EccNistP256).unwrap();
    assert!(matches!(
        PrivateKey::from_bytes(KeySpec::EccNistP384, p256.to_bytes()),
        Err(CryptoError::Malformed { .. })
    ));
    assert!(matches!(
        PrivateKey::from_bytes(KeySpec::EccNistEdwards25519, p256.to_bytes()),
        Err(CryptoError::Malformed { .. })
    ));
    let rsa = PrivateKey::generate(KeySpec::Rsa2048).unwrap();
    assert!(matches!(
        PrivateKey::from_bytes(KeySpec::Rsa4096, rsa.to_bytes()),
        Err(CryptoError::InvalidLength { .. })
    ));
    let mldsa = PrivateKey::generate(KeySpec::MlDsa44).unwrap();
    assert!(matches!(
        PrivateKey::from_bytes(KeySpec::MlDsa65, mldsa.to_bytes()),
        Err(CryptoError::Malformed { .. })
    ));
    // ML-KEM: a flipped bit in the embedded encapsulation key fails the H(ek) check.
    let kem = PrivateKey::generate(KeySpec::MlKem768).unwrap();
    let mut bytes = kem.to_bytes().to_vec();
    bytes[3 * 384 + 5] ^= 1;
    assert!(matches!(
        PrivateKey::from_bytes(KeySpec::MlKem768, &bytes),
        Err(CryptoError::Malformed { .. })
    ));
    assert!(matches!(
        PrivateKey::from_bytes(KeySpec::MlKem512, kem.to_bytes()),
        Err(CryptoError::InvalidLength { .. })
    ));
    // HMAC lengths as AWS allows them.
    assert!(PrivateKey::from_bytes(KeySpec::Hmac224, &[1; 28]).is_ok());
    assert!(PrivateKey::from_bytes(KeySpec::Hmac224, &[1; 64]).is_ok());
    assert!(PrivateKey::from_bytes(KeySpec::Hmac224, &[1; 27]).is_err());
    assert!(PrivateKey::from_bytes(KeySpec::Hmac256, &[1; 65]).is_err());
    assert!(PrivateKey::from_bytes(KeySpec::Hmac512, &[1; 128]).is_ok());
    assert!(PrivateKey::from_bytes(KeySpec::Hmac512, &[1; 63]).is_err());
}

#[test]
fn ed25519_rfc8032_test_1() {
    let seed = h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let mut pkcs8 = h("302e020100300506032b657004220420");
    pkcs8.extend(&seed);
    let key = PrivateKey::from_bytes(KeySpec::EccNistEdwards25519, &pkcs8).unwrap();
    let expected = h("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    let sig = key
        .sign(SigningAlgorithm::Ed25519Sha512, MessageType::Raw, b"")
        .unwrap();
    assert_eq!(sig, expected);
    let spki = key.public_key_der().unwrap();
    assert_eq!(
        spki,
        h("302a300506032b6570032100 d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    );
    assert!(verify_with_public_key(
        KeySpec::EccNistEdwards25519,
        &spki,
        SigningAlgorithm::Ed25519Sha512,
        MessageType::Raw,
        b"",
        &expected
    )
    .unwrap());
}

#[test]
fn rsa_oaep_round_trips_and_rejects_the_wrong_key() {
    let key = PrivateKey::generate(KeySpec::Rsa2048).unwrap();
    let other = PrivateKey::generate(KeySpec::Rsa2048).unwrap();
    for &alg in KeySpec::Rsa2048.encryption_algorithms() {
        let ct = key.encrypt(alg, b"attack at dawn").unwrap();
        assert_eq!(ct.len(), 256);
        assert_eq!(key.decrypt(alg, &ct).unwrap().expose(), b"attack at dawn");
        assert_eq!(
            other.decrypt(alg, &ct),
            Err(CryptoError::AuthenticationFailed)
        );
        let mut bad = ct.clone();
        bad[100] ^= 1;
        assert_eq!(
            key.decrypt(alg, &bad),
            Err(CryptoError::AuthenticationFailed)
        );
        assert!(matches!(
            key.decrypt(alg, &ct[1..]),
            Err(CryptoError::InvalidLength { .. })
        ));
        let ct2 =
            encrypt_with_public_key(KeySpec::Rsa2048, &key.public_key_der().unwrap(), alg, b"")
                .unwrap();
        assert!(key.decrypt(alg, &ct2).unwrap().is_empty());
    }
    let sha1 = key
        .encrypt(EncryptionAlgorithm::RsaesOaepSha1, b"x")
        .unwrap();
    assert_eq!(
        key.decrypt(EncryptionAlgorithm::RsaesOaepSha256, &sha1),
        Err(CryptoError::AuthenticationFailed)
    );
    // The OAEP limit: k - 2 hLen - 2 bytes.
    assert!(key
        .encrypt(EncryptionAlgorithm::RsaesOaepSha256, &[0; 190])
        .is_ok());
    assert!(matches!(
        key.encrypt(EncryptionAlgorithm::RsaesOaepSha256, &[0; 191]),
        Err(CryptoError::InvalidLength { expected: 190, .. })
    ));
}

#[test]
fn ml_kem_round_trips_with_implicit_rejection() {
    for spec in [KeySpec::MlKem512, KeySpec::MlKem768, KeySpec::MlKem1024] {
        let key = PrivateKey::generate(spec).unwrap();
        let (ct, ss) = key.encapsulate().unwrap();
        assert_eq!(ss.len(), 32);
        assert_eq!(key.decapsulate(&ct).unwrap(), ss);
        let spki = key.public_key_der().unwrap();
        let (ct2, ss2) = encapsulate_with_public_key(spec, &spki).unwrap();
        assert_ne!(ss2, ss);
        let reloaded = PrivateKey::from_bytes(spec, key.to_bytes()).unwrap();
        assert_eq!(reloaded.decapsulate(&ct2).unwrap(), ss2);
        let mut bad = ct.clone();
        bad[7] ^= 1;
        let rejected = key.decapsulate(&bad).unwrap();
        assert_eq!(rejected.len(), 32);
        assert_ne!(rejected, ss, "{spec}");
        assert_eq!(key.decapsulate(&bad).unwrap(), rejected, "deterministic");
        assert!(matches!(
            key.decapsulate(&ct[1..]),
            Err(CryptoError::InvalidLength { .. })
        ));
        let other = match spec {
            KeySpec::MlKem512 => KeySpec::MlKem768,
            _ => KeySpec::MlKem512,
        };
        assert!(matches!(
            encapsulate_with_public_key(other, &spki),
            Err(CryptoError::Malformed { .. })
        ));
    }
    // SPKI sizes: 800/1184/1568-byte keys in 822/1206/1590-byte SubjectPublicKeyInfos.
    for (spec, len) in [
        (KeySpec::MlKem512, 822),
        (KeySpec::MlKem768, 1206),
        (KeySpec::MlKem1024, 1590),
    ] {
        assert_eq!(
            PrivateKey::generate(spec)
                .unwrap()
                .public_key_der()
                .unwrap()
                .len(),
            len
        );
    }
}

#[test]
fn ecdh_both_sides_agree() {
    for spec in [
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
    ] {
        let a = PrivateKey::generate(spec).unwrap();
        let b = PrivateKey::generate(spec).unwrap();
        let ab = a
            .derive_shared_secret(&b.public_key_der().unwrap())
            .unwrap();
        let ba = b
            .derive_shared_secret(&a.public_key_der().unwrap())
            .unwrap();
        assert_eq!(ab, ba);
        let field_len = match spec {
            KeySpec::EccNistP256 => 32,
            KeySpec::EccNistP384 => 48,
            _ => 66,
        };
        assert_eq!(ab.len(), field_len);
        // Reloaded from its stored bytes, still the same secret.
        let a2 = PrivateKey::from_bytes(spec, a.to_bytes()).unwrap();
        assert_eq!(
            a2.derive_shared_secret(&b.public_key_der().unwrap())
                .unwrap(),
            ab
        );
    }
    let p256 = PrivateKey::generate(KeySpec::EccNistP256).unwrap();
    let p384 = PrivateKey::generate(KeySpec::EccNistP384).unwrap();
    assert!(matches!(
        p256.derive_shared_secret(&p384.public_key_der().unwrap()),
        Err(CryptoError::Malformed { .. })
    ));
    // A bare point is not a SubjectPublicKeyInfo.
    let spki = p256.public_key_der().unwrap();
    let point = &spki[spki.len() - 65..];
    assert!(matches!(
        p256.derive_shared_secret(point),
        Err(CryptoError::Malformed { .. })
    ));
    let k1 = PrivateKey::generate(KeySpec::EccSecgP256k1).unwrap();
    assert!(matches!(
        k1.derive_shared_secret(&k1.public_key_der().unwrap()),
        Err(CryptoError::Unsupported(_))
    ));
    let ed = PrivateKey::generate(KeySpec::EccNistEdwards25519).unwrap();
    assert!(matches!(
        ed.derive_shared_secret(&spki),
        Err(CryptoError::Incompatible(_))
    ));
}

#[test]
fn data_key_pairs_reload_as_pkcs8() {
    for &spec in KeySpec::ALL {
        let r = generate_data_key_pair(spec);
        if !spec.is_data_key_pair_spec() {
            assert!(matches!(r, Err(CryptoError::Incompatible(_))), "{spec}");
            continue;
        }
        let (private, public) = r.unwrap();
        let key = PrivateKey::from_bytes(spec, private.expose()).unwrap();
        assert_eq!(key.public_key_der().unwrap(), public);
        // PKCS#8 v1 PrivateKeyInfo: SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING }.
        assert_eq!(private.expose()[0], 0x30);
    }
}

#[test]
fn import_wrapping_round_trips() {
    let wrapping = PrivateKey::generate(KeySpec::Rsa2048).unwrap();
    let spki = wrapping.public_key_der().unwrap();
    let material = [0x42u8; 32];
    let rsa_material = PrivateKey::generate(KeySpec::EccNistP384).unwrap();
    for &alg in WrappingAlgorithm::ALL {
        let wrapped = wrap_for_import(KeySpec::Rsa2048, &spki, alg, &material).unwrap();
        assert_eq!(
            unwrap_import(&wrapping, alg, &wrapped).unwrap().expose(),
            &material
        );
        let mut bad = wrapped.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            unwrap_import(&wrapping, alg, &bad),
            Err(CryptoError::AuthenticationFailed),
            "{alg}"
        );
        let is_kwp = matches!(
            alg,
            WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256
        );
        if is_kwp {
            // RSA-AES carries material longer than OAEP could, such as a PKCS#8 key.
            let big = rsa_material.to_bytes();
            let wrapped = wrap_for_import(KeySpec::Rsa2048, &spki, alg, big).unwrap();
            assert_eq!(wrapped.len(), 256 + big.len().div_ceil(8) * 8 + 8);
            assert_eq!(
                unwrap_import(&wrapping, alg, &wrapped).unwrap().expose(),
                big
            );
            assert!(unwrap_import(&wrapping, alg, &wrapped[..256]).is_err());
        }
    }
    let hmac = PrivateKey::generate(KeySpec::Hmac256).unwrap();
    assert!(matches!(
        unwrap_import(&hmac, WrappingAlgorithm::RsaesOaepSha256, &[0; 256]),
        Err(CryptoError::Incompatible(_))
    ));
}
