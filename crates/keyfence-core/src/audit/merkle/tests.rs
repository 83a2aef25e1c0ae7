//! RFC 6962 / RFC 9162 test vectors (the eight-leaf tree used by the
//! Certificate Transparency and transparency-dev/merkle test suites) and
//! property tests: every proof verifies, any change breaks it.

use proptest::prelude::*;

use super::*;

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The leaf inputs of the reference tree.
fn leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|d| leaf_hash(&hex::decode(d).unwrap()))
    .collect()
}

/// Roots of the trees of the first 1..=8 leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `(leaf number from 1, tree size, proof)`.
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            3,
            3,
            vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            2,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// `(old size, new size, proof)`.
fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

#[test]
fn empty_root_is_sha256_of_nothing() {
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(root(&[]), empty_root());
    assert_eq!(Frontier::new().root(), empty_root());
}

#[test]
fn roots_match_the_reference_tree() {
    let leaves = leaves();
    let mut frontier = Frontier::new();
    for (n, expected) in ROOTS.iter().enumerate() {
        frontier.push(leaves[n]);
        assert_eq!(root(&leaves[..=n]), h(expected), "MTH of {} leaves", n + 1);
        assert_eq!(frontier.root(), h(expected), "frontier of {} leaves", n + 1);
        assert_eq!(frontier.size(), n as u64 + 1);
    }
}

#[test]
fn a_frontier_round_trips_through_its_stored_form_and_keeps_growing_the_same_tree() {
    let all = tree(37);
    let mut frontier = Frontier::new();
    for (i, leaf) in all.iter().enumerate() {
        let back = Frontier::from_bytes(&frontier.to_bytes()).unwrap();
        assert_eq!(back, frontier, "size {i}");
        frontier.push(*leaf);
    }
    // Restored midway, it grows into the same tree as one never stored.
    let mut restored = Frontier::new();
    all[..21].iter().for_each(|l| restored.push(*l));
    let mut restored = Frontier::from_bytes(&restored.to_bytes()).unwrap();
    all[21..].iter().for_each(|l| restored.push(*l));
    assert_eq!(restored.root(), root(&all));
    // A length that does not fit the size it names is refused.
    let mut bytes = frontier.to_bytes();
    bytes.pop();
    assert_eq!(Frontier::from_bytes(&bytes), None);
    bytes.truncate(7);
    assert_eq!(Frontier::from_bytes(&bytes), None);
    assert_eq!(
        Frontier::from_bytes(&0u64.to_be_bytes()),
        Some(Frontier::new())
    );
}

#[test]
fn inclusion_proofs_match_and_verify() {
    let leaves = leaves();
    for (leaf, size, expected) in inclusion_vectors() {
        let tree = &leaves[..size as usize];
        let proof = inclusion_proof(leaf - 1, tree).unwrap();
        assert_eq!(proof, expected, "PATH({}, D[{size}])", leaf - 1);
        let root = h(ROOTS[size as usize - 1]);
        verify_inclusion(leaf - 1, size, &leaves[leaf as usize - 1], &proof, &root).unwrap();
    }
}

#[test]
fn consistency_proofs_match_and_verify() {
    let leaves = leaves();
    for (old, new, expected) in consistency_vectors() {
        let proof = consistency_proof(old, &leaves[..new as usize]).unwrap();
        assert_eq!(proof, expected, "PROOF({old}, D[{new}])");
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        verify_consistency(old, new, &r1, &r2, &proof).unwrap();
    }
}

#[test]
fn corrupted_reference_inclusion_proofs_are_refused() {
    let leaves = leaves();
    let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (leaf, size, proof) in inclusion_vectors().into_iter().filter(|v| v.1 > 1) {
        let (i, root, lh) = (
            leaf - 1,
            h(ROOTS[size as usize - 1]),
            leaves[leaf as usize - 1],
        );
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (i.wrapping_sub(1), size, root, lh, proof.clone()),
            (i + 1, size, root, lh, proof.clone()),
            (i ^ 2, size, root, lh, proof.clone()),
            (i, size * 2, root, lh, proof.clone()),
            (i, size / 2, root, lh, proof.clone()),
            (i, size, root, some, proof.clone()),
            (i, size, empty_root(), lh, proof.clone()),
            (i, size, some, lh, proof.clone()),
            (i, size, root, lh, [proof.clone(), vec![root]].concat()),
            (i, size, root, lh, [vec![root], proof.clone()].concat()),
        ];
        for j in 0..proof.len() {
            let mut p = proof.clone();
            p[j][0] ^= 8;
            probes.push((i, size, root, lh, p));
        }
        probes.push((i, size, root, lh, proof[..proof.len() - 1].to_vec()));
        for (n, (i, s, r, l, p)) in probes.into_iter().enumerate() {
            assert!(
                verify_inclusion(i, s, &l, &p, &r).is_err(),
                "probe {n} of leaf {leaf} in {size} verified"
            );
        }
    }
}

#[test]
fn corrupted_reference_consistency_proofs_are_refused() {
    for (old, new, proof) in consistency_vectors()
        .into_iter()
        .filter(|v| !v.2.is_empty())
    {
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        let wrong = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (old - 1, new, r1, r2, proof.clone()),
            (old + 1, new, r1, r2, proof.clone()),
            (old ^ 2, new, r1, r2, proof.clone()),
            (old, new * 2, r1, r2, proof.clone()),
            (old, new / 2, r1, r2, proof.clone()),
            (old, new, wrong, r2, proof.clone()),
            (old, new, r1, wrong, proof.clone()),
            (old, new, r2, r1, proof.clone()),
            (old, new, r1, r2, vec![]),
            (old, new, r1, r2, [proof.clone(), vec![r1]].concat()),
            (old, new, r1, r2, [proof.clone(), vec![r2]].concat()),
            (old, new, r1, r2, [vec![r1], proof.clone()].concat()),
            (old, new, r1, r2, [vec![r2], proof.clone()].concat()),
            (old, new, r1, r2, [vec![proof[0]], proof.clone()].concat()),
            (old, new, r1, r2, proof[..proof.len() - 1].to_vec()),
        ];
        for j in 0..proof.len() {
            let mut p = proof.clone();
            p[j][0] ^= 16;
            probes.push((old, new, r1, r2, p));
        }
        for (n, (o, s, a, b, p)) in probes.into_iter().enumerate() {
            assert!(
                verify_consistency(o, s, &a, &b, &p).is_err(),
                "probe {n} of {old}→{new} verified"
            );
        }
    }
}

#[test]
fn trivial_consistency_cases() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert!(verify_consistency(0, 0, &a, &a, &[]).is_ok());
    assert!(verify_consistency(0, 1, &a, &b, &[]).is_ok());
    assert!(verify_consistency(1, 1, &b, &b, &[]).is_ok());
    assert!(verify_consistency(1, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 0, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 2, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 1, &a, &a, &[a]).is_err());
    assert!(verify_consistency(0, 1, &a, &a, &[a]).is_err());
    assert_eq!(
        consistency_proof(3, &[a, b]),
        Err(ProofError::SizesOutOfOrder { old: 3, new: 2 })
    );
    assert_eq!(
        inclusion_proof(2, &[a, b]),
        Err(ProofError::IndexOutOfRange { index: 2, size: 2 })
    );
}

fn tree(n: usize) -> Vec<Hash> {
    (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_inclusion_proof_verifies_and_any_change_breaks_it(
        size in 1usize..70, index_seed: usize, byte: usize, bit in 0u8..8, other_seed: usize,
    ) {
        let leaves = tree(size);
        let index = index_seed % size;
        let r = root(&leaves);
        let mut frontier = Frontier::new();
        leaves.iter().for_each(|l| frontier.push(*l));
        prop_assert_eq!(frontier.root(), r);
        let proof = inclusion_proof(index as u64, &leaves).unwrap();
        prop_assert!(verify_inclusion(index as u64, size as u64, &leaves[index], &proof, &r).is_ok());
        // Another leaf at this index.
        let other = leaf_hash(b"not in the tree");
        prop_assert!(verify_inclusion(index as u64, size as u64, &other, &proof, &r).is_err());
        // Another index (when the tree has one).
        let j = other_seed % size;
        if j != index {
            prop_assert!(verify_inclusion(j as u64, size as u64, &leaves[index], &proof, &r).is_err());
        }
        // A flipped bit anywhere in the proof or the root.
        if !proof.is_empty() {
            let mut p = proof.clone();
            let at = byte % (p.len() * 32);
            p[at / 32][at % 32] ^= 1 << bit;
            prop_assert!(verify_inclusion(index as u64, size as u64, &leaves[index], &p, &r).is_err());
            prop_assert!(verify_inclusion(index as u64, size as u64, &leaves[index], &proof[1..], &r).is_err());
        }
        let mut bad_root = r;
        bad_root[byte % 32] ^= 1 << bit;
        prop_assert!(verify_inclusion(index as u64, size as u64, &leaves[index], &proof, &bad_root).is_err());
    }

    #[test]
    fn every_consistency_proof_verifies_and_any_change_breaks_it(
        new in 1usize..70, old_seed: usize, byte: usize, bit in 0u8..8, changed_seed: usize,
    ) {
        let leaves = tree(new);
        let old = 1 + old_seed % new;
        let (r1, r2) = (root(&leaves[..old]), root(&leaves));
        let proof = consistency_proof(old as u64, &leaves).unwrap();
        prop_assert!(verify_consistency(old as u64, new as u64, &r1, &r2, &proof).is_ok());
        if old < new {
            let mut p = proof.clone();
            let at = byte % (p.len() * 32);
            p[at / 32][at % 32] ^= 1 << bit;
            prop_assert!(verify_consistency(old as u64, new as u64, &r1, &r2, &p).is_err());
            // A rewritten old leaf: the new tree no longer extends the old one.
            let mut rewritten = leaves.clone();
            rewritten[changed_seed % old] = leaf_hash(b"rewritten");
            let forged = root(&rewritten);
            prop_assert!(verify_consistency(old as u64, new as u64, &r1, &forged, &proof).is_err());
            let forged_proof = consistency_proof(old as u64, &rewritten).unwrap();
            prop_assert!(verify_consistency(old as u64, new as u64, &r1, &forged, &forged_proof).is_err());
        }
    }
}
