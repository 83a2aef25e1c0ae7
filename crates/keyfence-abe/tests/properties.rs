//! Property tests: decryption succeeds exactly when the policy is satisfied, text and
//! byte forms round-trip for any attribute text, and malformed input gets a typed
//! error.

mod common;

use common::{is_decoding_error, keys};
use keyfence_abe::{
    AttributeKey, Attributes, Ciphertext, Error, MasterPublicKey, MasterSecretKey, Policy,
};
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

/// Three distinct labels and three distinct values the leaves index into.
#[derive(Clone, Debug)]
struct Vocabulary {
    labels: [String; 3],
    values: [String; 3],
}

/// Writes a name or value for the parser, independently of the crate's printer: plain
/// ASCII words bare, everything else in quotes with only `\` and `"` escaped (other
/// characters, control characters included, may stand for themselves in quotes).
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && !matches!(s, "and" | "or" | "not")
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Whether the canonical form must quote `s`: the documented rule, restated.
fn must_quote(s: &str) -> bool {
    s.is_empty()
        || matches!(s, "and" | "or" | "not")
        || !s
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Ast {
    fn text(&self, v: &Vocabulary) -> String {
        match self {
            Ast::Leaf(l, x) => format!("{}: {}", quote(&v.labels[*l]), quote(&v.values[*x])),
            Ast::Not(x) => format!("not ({})", x.text(v)),
            Ast::And(a, b) => format!("({}) and ({})", a.text(v), b.text(v)),
            Ast::Or(a, b) => format!("({}) or ({})", a.text(v), b.text(v)),
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

/// Attribute text of every kind the grammar must handle: plain words, reserved words,
/// the empty string, spaces, quotes, backslashes, control characters, non-ASCII.
fn awkward_text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "[a-z]{1,3}",
        Just("and".to_owned()),
        Just("or".to_owned()),
        Just("not".to_owned()),
        Just(String::new()),
        "[a-z\" \\\\:(),{}\n\t\u{7}éß日]{1,6}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

fn distinct3(
    s: impl Strategy<Value = String> + Clone,
) -> impl Strategy<Value = [String; 3]> + Clone {
    [s.clone(), s.clone(), s]
        .prop_filter("distinct", |[a, b, c]| a != b && b != c && a != c)
        .prop_filter("reserved label", |t| {
            t.iter()
                .all(|s| s != "internal-boneh-katz-transform-attribute")
        })
}

fn vocabulary() -> impl Strategy<Value = Vocabulary> {
    let plain = Vocabulary {
        labels: ["country", "region", "tier"].map(str::to_owned),
        values: ["a", "b", "c"].map(str::to_owned),
    };
    prop_oneof![
        Just(plain),
        (distinct3(awkward_text()), distinct3(awkward_text()))
            .prop_map(|(labels, values)| Vocabulary { labels, values }),
    ]
}

fn held() -> impl Strategy<Value = [Option<usize>; 3]> {
    [
        proptest::option::of(0..3usize),
        proptest::option::of(0..3usize),
        proptest::option::of(0..3usize),
    ]
}

fn to_attributes(v: &Vocabulary, a: &[Option<usize>; 3]) -> Attributes {
    Attributes::from_pairs(
        a.iter()
            .enumerate()
            .filter_map(|(l, x)| x.map(|x| (v.labels[l].clone(), v.values[x].clone()))),
    )
    .unwrap()
}

/// Checks one decoder's answer on `input`: a value that re-encodes to exactly `input`,
/// or one of the decoding errors.
fn check_decode<T>(
    name: &str,
    input: &[u8],
    got: Result<T, Error>,
    encode: impl Fn(&T) -> Vec<u8>,
) -> Result<(), TestCaseError> {
    match got {
        Ok(v) => prop_assert_eq!(
            encode(&v),
            input.to_vec(),
            "{} decoded non-canonically",
            name
        ),
        Err(e) => prop_assert!(is_decoding_error(&e), "{}: {:?}", name, e),
    }
    Ok(())
}

/// Runs every native decoder on `bytes`.
fn check_native_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    check_decode("mpk", bytes, MasterPublicKey::from_bytes(bytes), |v| {
        v.to_bytes()
    })?;
    check_decode("msk", bytes, MasterSecretKey::from_bytes(bytes), |v| {
        v.to_bytes().to_vec()
    })?;
    check_decode("key", bytes, AttributeKey::from_bytes(bytes), |v| {
        v.to_bytes().to_vec()
    })?;
    check_decode("ct", bytes, Ciphertext::from_bytes(bytes), |v| v.to_bytes())?;
    check_decode("policy", bytes, Policy::from_bytes(bytes), |v| v.to_bytes())?;
    check_decode("attrs", bytes, Attributes::from_bytes(bytes), |v| {
        v.to_bytes()
    })
}

/// Runs every CIRCL decoder on `bytes`.
fn check_circl_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    check_decode(
        "circl mpk",
        bytes,
        MasterPublicKey::from_circl_bytes(bytes),
        |v| v.to_circl_bytes(),
    )?;
    check_decode(
        "circl msk",
        bytes,
        MasterSecretKey::from_circl_bytes(bytes),
        |v| v.to_circl_bytes().to_vec(),
    )?;
    check_decode(
        "circl key",
        bytes,
        AttributeKey::from_circl_bytes(bytes),
        |v| v.to_circl_bytes().map(|b| b.to_vec()).unwrap_or_default(),
    )?;
    check_decode(
        "circl ct",
        bytes,
        Ciphertext::from_circl_bytes(bytes),
        |v| v.to_bytes(),
    )
}

const NATIVE_TYPES: std::ops::RangeInclusive<u8> = 1..=6;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn decryption_succeeds_exactly_when_satisfied(
        ast in ast(),
        vocabulary in vocabulary(),
        held in held(),
    ) {
        let (mpk, msk) = keys();
        let policy = Policy::parse(&ast.text(&vocabulary)).unwrap();
        let attrs = to_attributes(&vocabulary, &held);
        let expected = ast.eval(&held, false);
        prop_assert_eq!(policy.satisfied_by(&attrs), expected);
        let ct = mpk.encrypt(&policy, b"payload", &mut rand_core::OsRng).unwrap();
        let key = msk.keygen(&attrs, &mut rand_core::OsRng);
        match key.decrypt(&ct) {
            Ok(m) => {
                prop_assert!(expected);
                prop_assert_eq!(m, b"payload".to_vec());
            }
            Err(e) => {
                prop_assert!(!expected);
                prop_assert_eq!(e, Error::PolicyNotSatisfied);
            }
        }
    }

    #[test]
    fn policy_text_and_bytes_round_trip(ast in ast(), vocabulary in vocabulary()) {
        let policy = Policy::parse(&ast.text(&vocabulary)).unwrap();
        let shown = policy.to_string();
        prop_assert_eq!(Policy::parse(&shown).unwrap(), policy.clone());
        prop_assert_eq!(Policy::from_bytes(&policy.to_bytes()).unwrap(), policy.clone());
        let bytes = policy.to_bytes();
        for len in 0..bytes.len() {
            prop_assert!(
                matches!(Policy::from_bytes(&bytes[..len]), Err(Error::Malformed(_))),
                "truncated to {}", len
            );
        }
    }

    #[test]
    fn display_quotes_exactly_when_needed(
        label in awkward_text().prop_filter("reserved label", |s| {
            s != "internal-boneh-katz-transform-attribute"
        }),
        value in awkward_text(),
        negated in any::<bool>(),
    ) {
        let not = if negated { "not " } else { "" };
        let policy = Policy::parse(&format!("{not}{}: {}", quote(&label), quote(&value))).unwrap();
        let shown = policy.to_string();
        let body = shown.strip_prefix(not).unwrap();
        prop_assert_eq!(body.starts_with('"'), must_quote(&label), "{}", shown);
        prop_assert_eq!(body.ends_with('"'), must_quote(&value), "{}", shown);
        if !must_quote(&label) && !must_quote(&value) {
            prop_assert_eq!(body, format!("{label}: {value}"));
        }
        // Printed text never carries a raw control character.
        prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
        prop_assert_eq!(Policy::parse(&shown).unwrap(), policy);
    }

    #[test]
    fn attribute_sets_round_trip_in_text_and_bytes(
        vocabulary in vocabulary(),
        held in held(),
    ) {
        let attrs = to_attributes(&vocabulary, &held);
        prop_assert_eq!(Attributes::parse(&attrs.to_string()).unwrap(), attrs.clone());
        let bytes = attrs.to_bytes();
        prop_assert_eq!(Attributes::from_bytes(&bytes).unwrap(), attrs);
        for len in 0..bytes.len() {
            prop_assert!(
                matches!(Attributes::from_bytes(&bytes[..len]), Err(Error::Malformed(_))),
                "truncated to {}", len
            );
        }
    }

    #[test]
    fn parser_returns_a_policy_or_a_positioned_syntax_error(
        s in "[a-z:() \"\\\\,{}]{0,40}",
    ) {
        match Policy::parse(&s) {
            Ok(p) => prop_assert_eq!(Policy::parse(&p.to_string()).unwrap(), p),
            Err(Error::PolicySyntax { position, .. }) => {
                prop_assert!(position <= s.len() && s.is_char_boundary(position));
            }
            Err(other) => prop_assert!(false, "{:?}: {:?}", s, other),
        }
        match Attributes::parse(&s) {
            Ok(a) => prop_assert_eq!(Attributes::parse(&a.to_string()).unwrap(), a),
            Err(Error::InvalidAttribute(_)) => {}
            Err(other) => prop_assert!(false, "{:?}: {:?}", s, other),
        }
    }

    #[test]
    fn native_decoders_answer_arbitrary_bytes_with_typed_errors(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        kind in 0u8..=7,
        version in 0u8..=3,
    ) {
        let mut bytes = vec![b'k', b'f', kind, version];
        bytes.extend_from_slice(&body);
        check_native_decoders(&bytes)?;
        // A prefix naming no known type or version is refused as such by every decoder.
        if !NATIVE_TYPES.contains(&kind) || !(1..=2).contains(&version) {
            for got in [
                MasterPublicKey::from_bytes(&bytes).err(),
                MasterSecretKey::from_bytes(&bytes).err(),
                AttributeKey::from_bytes(&bytes).err(),
                Ciphertext::from_bytes(&bytes).err(),
                Policy::from_bytes(&bytes).err(),
                Attributes::from_bytes(&bytes).err(),
            ] {
                prop_assert!(matches!(got, Some(Error::UnsupportedVersion(_))), "{:?}", got);
            }
        }
        // Without the magic, the answer is `UnsupportedVersion` (or `Malformed` for
        // fewer than four bytes) whatever follows.
        if body.first() != Some(&b'k') {
            let short = body.len() < 4;
            for got in [
                MasterPublicKey::from_bytes(&body).err(),
                AttributeKey::from_bytes(&body).err(),
                Ciphertext::from_bytes(&body).err(),
                Policy::from_bytes(&body).err(),
            ] {
                prop_assert!(match got {
                    Some(Error::UnsupportedVersion(_)) => !short,
                    Some(Error::Malformed(_)) => short,
                    _ => false,
                }, "{:?}", got);
            }
        }
    }

    #[test]
    fn circl_decoders_answer_arbitrary_bytes_with_typed_errors(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        v138 in any::<bool>(),
    ) {
        let mut bytes = if v138 { b"v1.3.8".to_vec() } else { Vec::new() };
        bytes.extend_from_slice(&body);
        check_circl_decoders(&bytes)?;
    }
}
