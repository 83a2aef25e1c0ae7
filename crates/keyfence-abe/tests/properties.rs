//! Property tests: decryption succeeds exactly when the policy is satisfied.

mod common;

use common::keys;
use keyfence_abe::{Attributes, Policy};
use proptest::prelude::*;

/// A policy AST with explicit negation, rendered to text and evaluated independently
/// of the crate (negation = "the attribute is present with another value").
#[derive(Clone, Debug)]
enum Ast {
    Leaf(usize, usize),
    Not(Box<Ast>),
    And(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
}

const LABELS: [&str; 3] = ["country", "region", "tier"];
const VALUES: [&str; 3] = ["a", "b", "c"];

impl Ast {
    fn text(&self) -> String {
        match self {
            Ast::Leaf(l, v) => format!("{}: {}", LABELS[*l], VALUES[*v]),
            Ast::Not(x) => format!("not ({})", x.text()),
            Ast::And(a, b) => format!("({}) and ({})", a.text(), b.text()),
            Ast::Or(a, b) => format!("({}) or ({})", a.text(), b.text()),
        }
    }

    fn eval(&self, attrs: &[Option<usize>; 3], negated: bool) -> bool {
        match self {
            Ast::Leaf(l, v) => attrs[*l].is_some_and(|have| (have == *v) != negated),
            Ast::Not(x) => x.eval(attrs, !negated),
            Ast::And(a, b) if !negated => a.eval(attrs, negated) && b.eval(attrs, negated),
            Ast::Or(a, b) if negated => a.eval(attrs, negated) && b.eval(attrs, negated),
            Ast::And(a, b) | Ast::Or(a, b) => a.eval(attrs, negated) || b.eval(attrs, negated),
        }
    }
}

fn ast() -> impl Strategy<Value = Ast> {
    let leaf = (0..3usize, 0..3usize).prop_map(|(l, v)| Ast::Leaf(l, v));
    leaf.prop_recursive(4, 12, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|x| Ast::Not(Box::new(x))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Ast::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Ast::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn attributes() -> impl Strategy<Value = [Option<usize>; 3]> {
    [
        proptest::option::of(0..3usize),
        proptest::option::of(0..3usize),
        proptest::option::of(0..3usize),
    ]
}

fn to_attributes(a: &[Option<usize>; 3]) -> Attributes {
    Attributes::from_pairs(
        a.iter()
            .enumerate()
            .filter_map(|(l, v)| v.map(|v| (LABELS[l], VALUES[v]))),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn decryption_succeeds_exactly_when_satisfied(ast in ast(), held in attributes()) {
        let (mpk, msk) = keys();
        let policy = Policy::parse(&ast.text()).unwrap();
        let attrs = to_attributes(&held);
        let expected = ast.eval(&held, false);
        prop_assert_eq!(policy.satisfied_by(&attrs), expected);
        let ct = mpk.encrypt(&policy, b"payload", &mut rand_core::OsRng).unwrap();
        let key = msk.keygen(&attrs, &mut rand_core::OsRng);
        let got = key.decrypt(&ct);
        prop_assert_eq!(got.is_ok(), expected);
        if let Ok(m) = got {
            prop_assert_eq!(m, b"payload".to_vec());
        }
    }

    #[test]
    fn policy_text_and_bytes_round_trip(ast in ast()) {
        let policy = Policy::parse(&ast.text()).unwrap();
        prop_assert_eq!(Policy::parse(&policy.to_string()).unwrap(), policy.clone());
        prop_assert_eq!(Policy::from_bytes(&policy.to_bytes()).unwrap(), policy);
    }

    #[test]
    fn parser_never_panics(s in "[a-z:() ]{0,40}") {
        let _ = Policy::parse(&s);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        kind in 1u8..=6,
    ) {
        // With a valid native prefix, so decoding gets past the first check.
        let mut bytes = vec![b'k', b'f', kind, 1];
        bytes.extend_from_slice(&body);
        let _ = keyfence_abe::MasterPublicKey::from_bytes(&bytes);
        let _ = keyfence_abe::MasterSecretKey::from_bytes(&bytes);
        let _ = keyfence_abe::AttributeKey::from_bytes(&bytes);
        let _ = keyfence_abe::Ciphertext::from_bytes(&bytes);
        let _ = Policy::from_bytes(&bytes);
        let _ = Attributes::from_bytes(&bytes);
        let _ = keyfence_abe::MasterPublicKey::from_circl_bytes(&body);
        let _ = keyfence_abe::MasterSecretKey::from_circl_bytes(&body);
        let _ = keyfence_abe::AttributeKey::from_circl_bytes(&body);
        let _ = keyfence_abe::Ciphertext::from_circl_bytes(&body);
        let mut v138 = b"v1.3.8".to_vec();
        v138.extend_from_slice(&body);
        let _ = keyfence_abe::Ciphertext::from_circl_bytes(&v138);
    }
}
