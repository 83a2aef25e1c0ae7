//! Criterion benchmarks, shaped like CIRCL's tkn20 benchmark for comparison.
//!
//! * `*/50`: 50 attributes `k0: v0 … k49: v49` in the key and CIRCL's policy
//!   `k0: v0 and k1: v1 or k2: v2 and k3: v3 or …` (an OR of 25 two-leaf ANDs under
//!   left-associative parsing); decryption uses two leaves.
//! * `*/and50`: the same key, policy = AND of all 50 leaves (decryption uses every leaf).
//! * `*/geo5`: the realistic geo-fencing case, 5 attributes and a small policy with NOT.
//!
//! `decrypt/*` decrypts a parsed ciphertext; `decode_decrypt/*` also decodes it from
//! bytes with every point subgroup-checked (what CIRCL's `Decrypt([]byte)` measures).

use criterion::{criterion_group, criterion_main, Criterion};
use keyfence_abe::{setup, Attributes, Ciphertext, Policy};
use rand_core::OsRng;

const MSG: &[u8] = b"drink your ovaltine now";

fn circl_policy(n: usize) -> String {
    (0..n)
        .map(|i| {
            let sep = if i + 1 == n {
                ""
            } else if i % 2 == 0 {
                " and "
            } else {
                " or "
            };
            format!("k{i}: v{i}{sep}")
        })
        .collect()
}

fn and_policy(n: usize) -> String {
    (0..n)
        .map(|i| format!("k{i}: v{i}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

fn bench(c: &mut Criterion) {
    let (mpk, msk) = setup(&mut OsRng);
    let attrs50 =
        Attributes::from_pairs((0..50).map(|i| (format!("k{i}"), format!("v{i}")))).unwrap();
    let geo = Attributes::from_pairs([
        ("country", "FR"),
        ("region", "EU"),
        ("dc", "par1"),
        ("security", "high"),
        ("tier", "1"),
    ])
    .unwrap();
    let cases = [
        (
            "50",
            attrs50.clone(),
            Policy::parse(&circl_policy(50)).unwrap(),
        ),
        ("and50", attrs50, Policy::parse(&and_policy(50)).unwrap()),
        (
            "geo5",
            geo,
            Policy::parse("(region: EU or country: US) and not country: DE and security: high")
                .unwrap(),
        ),
    ];
    for (name, attrs, policy) in &cases {
        if *name != "and50" {
            c.bench_function(&format!("keygen/{name}"), |b| {
                b.iter(|| msk.keygen(attrs, &mut OsRng))
            });
        }
        c.bench_function(&format!("encrypt/{name}"), |b| {
            b.iter(|| mpk.encrypt(policy, MSG, &mut OsRng).unwrap())
        });
        let key = msk.keygen(attrs, &mut OsRng);
        let ct = mpk.encrypt(policy, MSG, &mut OsRng).unwrap();
        let bytes = ct.to_bytes();
        c.bench_function(&format!("decrypt/{name}"), |b| {
            b.iter(|| key.decrypt(&ct).unwrap())
        });
        c.bench_function(&format!("decode_decrypt/{name}"), |b| {
            b.iter(|| {
                key.decrypt(&Ciphertext::from_bytes(&bytes).unwrap())
                    .unwrap()
            })
        });
        println!(
            "sizes/{name}: master public key {} B, attribute key {} B, ciphertext overhead {} B \
             (CIRCL encoding: {} B, {} B, {} B)",
            mpk.to_bytes().len(),
            key.to_bytes().len(),
            bytes.len() - MSG.len(),
            mpk.to_circl_bytes().len(),
            key.to_circl_bytes().unwrap().len(),
            mpk.encrypt_circl(policy, MSG, &mut OsRng)
                .unwrap()
                .to_bytes()
                .len()
                - MSG.len(),
        );
    }
}

/// The primitive operations the scheme is made of, to explain the totals.
fn primitives(c: &mut Criterion) {
    use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar};
    use ff::Field;
    use group::{Curve, Group};
    let s = Scalar::random(&mut OsRng);
    let p1 = (G1Projective::generator() * Scalar::random(&mut OsRng)).to_affine();
    let p2 = (G2Projective::generator() * Scalar::random(&mut OsRng)).to_affine();
    let p1c = p1.to_compressed();
    let p2c = p2.to_compressed();
    c.bench_function("ops/g1_mul_ct", |b| b.iter(|| G1Projective::from(p1) * s));
    c.bench_function("ops/g2_mul_ct", |b| b.iter(|| G2Projective::from(p2) * s));
    c.bench_function("ops/g1_decode_checked", |b| {
        b.iter(|| G1Affine::from_compressed(&p1c).unwrap())
    });
    c.bench_function("ops/g2_decode_checked", |b| {
        b.iter(|| G2Affine::from_compressed(&p2c).unwrap())
    });
    c.bench_function("ops/pairing", |b| b.iter(|| blstrs::pairing(&p1, &p2)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = primitives, bench
}
criterion_main!(benches);
