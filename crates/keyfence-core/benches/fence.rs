//! Geo-fencing costs: a cold policy-key unwrap at a satisfying node (what the
//! first request for a fence pays before the cache holds the key), a backing-key
//! unwrap with the policy key in hand, and a master rotation over 100 fences
//! (rotate_master, then refresh_fence for each: k_abe re-encrypted and the
//! private half re-sealed; backing keys are not touched, so the figure does not
//! depend on how many keys are fenced).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keyfence_abe::Attributes;
use keyfence_core::fence::{
    unwrap_backing_key, wrap_backing_key, Authority, FenceRecord, NodeGrant, NodeIdentity,
    NodeKeyring,
};

/// fra, par, iad, mow, as in the tests; returns the identities' encodings and grants.
fn cluster(authority: &Authority) -> Vec<(Vec<u8>, NodeGrant)> {
    [
        ("fra", "country: DE, region: EU, security: high"),
        ("par", "country: FR, region: EU"),
        ("iad", "country: US, region: NA, security: high"),
        ("mow", "country: RU, region: EU"),
    ]
    .into_iter()
    .map(|(name, attrs)| {
        let identity = NodeIdentity::generate(name, Attributes::parse(attrs).unwrap()).unwrap();
        let grant = authority
            .approve(
                &identity.join_request().unwrap(),
                identity.public().attributes().clone(),
                &[],
            )
            .unwrap()
            .grant;
        (identity.to_bytes().to_vec(), grant)
    })
    .collect()
}

fn policy(i: usize) -> String {
    match i % 2 {
        0 => format!("region: EU and not country: C{i}"),
        _ => format!("(region: EU or country: US) and not country: C{i} and security: high"),
    }
}

fn unwrap(c: &mut Criterion) {
    let authority = Authority::new().unwrap();
    let nodes = cluster(&authority);
    let grants: Vec<NodeGrant> = nodes.iter().map(|(_, g)| g.clone()).collect();
    let fra = NodeKeyring::open(
        NodeIdentity::from_bytes(&nodes[0].0).unwrap(),
        &nodes[0].1,
        authority.public(),
    )
    .unwrap();
    let mut group = c.benchmark_group("fence");
    for (name, p) in [
        ("two_literals", "region: EU and not country: RU"),
        (
            "four_literals",
            "(region: EU or country: US) and not country: RU and security: high",
        ),
    ] {
        let record =
            FenceRecord::from_bytes(&authority.create_fence(p, &grants).unwrap().to_bytes())
                .unwrap();
        group.bench_function(format!("cold_policy_key_unwrap/{name}"), |b| {
            b.iter(|| fra.open_policy_key(&record).unwrap())
        });
    }
    let record = authority
        .create_fence("region: EU and not country: RU", &grants)
        .unwrap();
    let key = fra.open_policy_key(&record).unwrap();
    let wrapped = wrap_backing_key(&key.public(), &[7; 32], b"key/v1").unwrap();
    group.bench_function("backing_key_unwrap", |b| {
        b.iter(|| unwrap_backing_key(&key, &wrapped, b"key/v1").unwrap())
    });
    group.finish();
}

fn master_rotation(c: &mut Criterion) {
    let authority = Authority::new().unwrap();
    let grants: Vec<NodeGrant> = cluster(&authority).into_iter().map(|(_, g)| g).collect();
    let records: Vec<FenceRecord> = (0..100)
        .map(|i| authority.create_fence(&policy(i), &grants).unwrap())
        .collect();
    let saved = authority.to_bytes().to_vec();
    let mut group = c.benchmark_group("fence");
    group.sample_size(10);
    group.bench_function("master_rotation/100_fences", |b| {
        b.iter_batched(
            || Authority::from_bytes(&saved).unwrap(),
            |mut authority| {
                authority.rotate_master().unwrap();
                let refreshed: Vec<FenceRecord> = records
                    .iter()
                    .map(|r| authority.refresh_fence(r).unwrap())
                    .collect();
                assert!(refreshed.iter().all(|r| r.generations() == [1, 2]));
                refreshed
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, unwrap, master_rotation);
criterion_main!(benches);
