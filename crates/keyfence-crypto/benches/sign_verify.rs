//! Sign and Verify per key spec, the crypto alone (no key unwrapping, no I/O):
//! `sign/<KeySpec>` and `verify/<KeySpec>` over a 32-byte RAW message, with
//! RSASSA-PSS-SHA-256 for RSA, the curve's ECDSA for ECC, pure Ed25519 and ML-DSA.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keyfence_crypto::asym::{KeySpec, MessageType, PrivateKey, SigningAlgorithm};

const SPECS: &[(KeySpec, SigningAlgorithm)] = &[
    (KeySpec::Rsa2048, SigningAlgorithm::RsassaPssSha256),
    (KeySpec::Rsa3072, SigningAlgorithm::RsassaPssSha256),
    (KeySpec::Rsa4096, SigningAlgorithm::RsassaPssSha256),
    (KeySpec::EccNistP256, SigningAlgorithm::EcdsaSha256),
    (KeySpec::EccNistP384, SigningAlgorithm::EcdsaSha384),
    (KeySpec::EccNistP521, SigningAlgorithm::EcdsaSha512),
    (KeySpec::EccSecgP256k1, SigningAlgorithm::EcdsaSha256),
    (
        KeySpec::EccNistEdwards25519,
        SigningAlgorithm::Ed25519Sha512,
    ),
    (KeySpec::MlDsa44, SigningAlgorithm::MlDsaShake256),
    (KeySpec::MlDsa65, SigningAlgorithm::MlDsaShake256),
    (KeySpec::MlDsa87, SigningAlgorithm::MlDsaShake256),
];

const MESSAGE: &[u8; 32] = b"keyfence sign/verify benchmark!!";

fn bench(c: &mut Criterion) {
    for &(spec, alg) in SPECS {
        let key = PrivateKey::generate(spec).expect("keygen");
        let name = format!("{spec:?}");
        c.bench_function(&format!("sign/{name}"), |b| {
            b.iter(|| {
                key.sign(alg, MessageType::Raw, black_box(MESSAGE))
                    .expect("sign")
            })
        });
        let sig = key.sign(alg, MessageType::Raw, MESSAGE).expect("sign");
        c.bench_function(&format!("verify/{name}"), |b| {
            b.iter(|| {
                assert!(key
                    .verify(alg, MessageType::Raw, black_box(MESSAGE), black_box(&sig))
                    .expect("verify"))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
