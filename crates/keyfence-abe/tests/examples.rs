//! The policy examples of the design, each with holders who can and cannot decrypt.

mod common;

use common::{attrs, keys};
use keyfence_abe::{Error, Policy};

fn check(policy: &str, yes: &[&[(&str, &str)]], no: &[&[(&str, &str)]]) {
    let (mpk, msk) = keys();
    let policy = Policy::parse(policy).unwrap();
    let ct = mpk
        .encrypt(&policy, b"secret", &mut rand_core::OsRng)
        .unwrap();
    assert_eq!(ct.policy(), policy);
    for a in yes {
        let a = attrs(a);
        assert!(policy.satisfied_by(&a), "{policy} should accept {a}");
        let key = msk.keygen(&a, &mut rand_core::OsRng);
        assert_eq!(key.decrypt(&ct).unwrap(), b"secret", "{policy} / {a}");
    }
    for a in no {
        let a = attrs(a);
        assert!(!policy.satisfied_by(&a), "{policy} should reject {a}");
        let key = msk.keygen(&a, &mut rand_core::OsRng);
        assert_eq!(
            key.decrypt(&ct),
            Err(Error::PolicyNotSatisfied),
            "{policy} / {a}"
        );
    }
}

#[test]
fn country_or_region() {
    check(
        "country: US or region: EU",
        &[&[("country", "US")], &[("region", "EU"), ("country", "FR")]],
        &[&[("country", "FR")], &[("region", "APAC")], &[]],
    );
}

#[test]
fn negated_disjunction() {
    check(
        "not (country: RU or country: US)",
        &[&[("country", "FR")], &[("country", "DE"), ("region", "EU")]],
        &[
            &[("country", "RU")],
            &[("country", "US")],
            &[("region", "EU")],
        ],
    );
}

#[test]
fn conjunction() {
    check(
        "country: US and security: high",
        &[&[("country", "US"), ("security", "high")]],
        &[
            &[("country", "US")],
            &[("security", "high")],
            &[("country", "US"), ("security", "low")],
        ],
    );
}

#[test]
fn region_but_not_country() {
    check(
        "region: EU and not country: DE",
        &[&[("region", "EU"), ("country", "FR")]],
        &[
            &[("region", "EU"), ("country", "DE")],
            &[("region", "EU")],
            &[("country", "FR")],
        ],
    );
}

#[test]
fn repeated_attributes() {
    check(
        "org: exec or (org: weapons and clearance: top-secret)",
        &[
            &[("org", "exec")],
            &[("org", "weapons"), ("clearance", "top-secret")],
            &[("org", "exec"), ("clearance", "none")],
        ],
        &[
            &[("org", "weapons")],
            &[("org", "weapons"), ("clearance", "secret")],
            &[("clearance", "top-secret")],
        ],
    );
}

#[test]
fn repeated_negated_attributes() {
    check(
        "(not org: a and not org: b) or (org: a and not clearance: low)",
        &[&[("org", "c")], &[("org", "a"), ("clearance", "high")]],
        &[
            &[("org", "b")],
            &[("org", "a"), ("clearance", "low")],
            &[("org", "a")],
        ],
    );
}

#[test]
fn keys_of_two_holders_do_not_combine() {
    let (mpk, msk) = keys();
    let policy = Policy::parse("country: US and security: high").unwrap();
    let ct = mpk
        .encrypt(&policy, b"secret", &mut rand_core::OsRng)
        .unwrap();
    let us = msk.keygen(&attrs(&[("country", "US")]), &mut rand_core::OsRng);
    let high = msk.keygen(&attrs(&[("security", "high")]), &mut rand_core::OsRng);
    assert_eq!(us.decrypt(&ct), Err(Error::PolicyNotSatisfied));
    assert_eq!(high.decrypt(&ct), Err(Error::PolicyNotSatisfied));
}

#[test]
fn large_messages_and_empty_messages() {
    let (mpk, msk) = keys();
    let policy = Policy::parse("tier: 1").unwrap();
    let key = msk.keygen(&attrs(&[("tier", "1")]), &mut rand_core::OsRng);
    for len in [0usize, 1, 1 << 20] {
        let msg = vec![0xa5u8; len];
        let ct = mpk.encrypt(&policy, &msg, &mut rand_core::OsRng).unwrap();
        assert_eq!(key.decrypt(&ct).unwrap(), msg);
    }
}

#[test]
fn debug_output_hides_secrets() {
    let (mpk, msk) = keys();
    let key = msk.keygen(&attrs(&[("country", "FR")]), &mut rand_core::OsRng);
    let shown = format!("{msk:?} {key:?} {mpk:?}");
    assert!(shown.contains("redacted"));
    assert!(!shown.contains("0x"));
    assert!(format!("{key:?}").contains("country"));
}

#[test]
fn keys_of_another_authority_do_not_decrypt() {
    let (mpk, _) = keys();
    let (_, other_msk) = keyfence_abe::setup(&mut rand_core::OsRng);
    let policy = Policy::parse("country: FR").unwrap();
    let ct = mpk
        .encrypt(&policy, b"secret", &mut rand_core::OsRng)
        .unwrap();
    let key = other_msk.keygen(&attrs(&[("country", "FR")]), &mut rand_core::OsRng);
    assert_eq!(key.decrypt(&ct), Err(Error::DecryptionFailed));
}
