//! Access policies: boolean formulas over `name: value` literals with `and`, `or`, `not`.
//!
//! A policy is kept in negation normal form: `not` is pushed down to the literals with
//! De Morgan's laws while parsing, which is exactly the form the scheme encrypts under.
//! A negated literal `not country: DE` holds when the holder *has* a `country` attribute
//! whose value is not `DE`; it does not hold for a holder without any `country`.

use std::fmt;

use crate::attributes::{validate_name, validate_value, Attributes};
use crate::error::{Error, Result};
use crate::text::write_text;

mod parser;

/// Most literals a policy may contain.
pub const MAX_LEAVES: usize = 1024;

/// Deepest formula tree a policy may have (a literal is at depth 0, each `and` or
/// `or` adds one level above its deeper operand). This bounds the recursion of
/// every function walking a tree, including the decoders of untrusted bytes, and
/// makes every policy's canonical text parse back (its parentheses nest at most
/// `MAX_DEPTH - 1` deep; the parser accepts 64). A chain of 65 or more literals
/// joined by one connective is that deep: group it with parentheses.
pub const MAX_DEPTH: usize = 64;

/// One literal: `label: value`, possibly negated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Literal {
    pub(crate) label: String,
    pub(crate) value: String,
    pub(crate) positive: bool,
}

/// A node of a policy in negation normal form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Leaf(Literal),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

impl Node {
    fn eval(&self, attrs: &Attributes) -> bool {
        match self {
            Node::Leaf(l) => match attrs.get(&l.label) {
                Some(v) => (v == l.value) == l.positive,
                None => false,
            },
            Node::And(a, b) => a.eval(attrs) && b.eval(attrs),
            Node::Or(a, b) => a.eval(attrs) || b.eval(attrs),
        }
    }

    /// The depth of the tree, or `None` if it is deeper than [`MAX_DEPTH`]
    /// (walking no deeper than that).
    fn depth_within(&self, limit: usize) -> Option<usize> {
        match self {
            Node::Leaf(_) => Some(0),
            Node::And(a, b) | Node::Or(a, b) => {
                let below = limit.checked_sub(1)?;
                Some(1 + a.depth_within(below)?.max(b.depth_within(below)?))
            }
        }
    }

    /// Leaves in left-to-right order.
    pub(crate) fn leaves<'a>(&'a self, out: &mut Vec<&'a Literal>) {
        match self {
            Node::Leaf(l) => out.push(l),
            Node::And(a, b) | Node::Or(a, b) => {
                a.leaves(out);
                b.leaves(out);
            }
        }
    }

    fn fmt_child(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Leaf(_) => write!(f, "{self}"),
            _ => write!(f, "({self})"),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Leaf(l) => {
                if !l.positive {
                    f.write_str("not ")?;
                }
                write_text(f, &l.label)?;
                f.write_str(": ")?;
                write_text(f, &l.value)
            }
            Node::And(a, b) | Node::Or(a, b) => {
                a.fmt_child(f)?;
                f.write_str(if matches!(self, Node::And(..)) {
                    " and "
                } else {
                    " or "
                })?;
                b.fmt_child(f)
            }
        }
    }
}

/// A parsed access policy, e.g. `region: EU and not country: DE`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    pub(crate) root: Node,
}

impl Policy {
    /// Parses a policy string.
    ///
    /// Grammar (lowest precedence first, `and`/`or` left-associative):
    /// `or := and ("or" and)*`, `and := not ("and" not)*`, `not := "not" not | atom`,
    /// `atom := "(" or ")" | text ":" text`. A name or value (`text`) is any UTF-8
    /// string of at most [`MAX_TEXT_LEN`](crate::MAX_TEXT_LEN) bytes: bare when it is
    /// a run of letters, digits, `_`, `-` and `.` other than `and`, `or`, `not`;
    /// otherwise in double quotes, with `\\`, `\"`, `\n`, `\r`, `\t` and `\u{…}` escapes,
    /// e.g. `"data center": "Frankfurt am Main" and not country: RU`. Errors carry the
    /// byte position of the offending token.
    pub fn parse(input: &str) -> Result<Self> {
        parser::parse(input)
    }

    /// Builds a policy from a tree, checking the structural limits.
    pub(crate) fn from_root(root: Node) -> Result<Self> {
        if root.depth_within(MAX_DEPTH).is_none() {
            return Err(Error::PolicyTooDeep { max: MAX_DEPTH });
        }
        let mut leaves = Vec::new();
        root.leaves(&mut leaves);
        if leaves.len() > MAX_LEAVES {
            return Err(Error::InvalidPolicy("too many literals"));
        }
        for l in &leaves {
            validate_name(&l.label)
                .and_then(|_| validate_value(&l.value))
                .map_err(|_| Error::InvalidPolicy("invalid name or value in a literal"))?;
        }
        Ok(Policy { root })
    }

    /// Whether `attrs` satisfies the policy (the holder of a key for `attrs` can decrypt).
    pub fn satisfied_by(&self, attrs: &Attributes) -> bool {
        self.root.eval(attrs)
    }

    /// Number of literals (leaves) in the policy.
    pub fn len(&self) -> usize {
        let mut leaves = Vec::new();
        self.root.leaves(&mut leaves);
        leaves.len()
    }

    /// Always false: a policy has at least one literal.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for Policy {
    /// Canonical text form: parsing it yields the same policy. Names and values are
    /// quoted exactly when they cannot be written bare.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Policy({self})")
    }
}

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Policy::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        Attributes::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn negation_requires_presence() {
        let p = Policy::parse("not country: DE").unwrap();
        assert!(p.satisfied_by(&attrs(&[("country", "FR")])));
        assert!(!p.satisfied_by(&attrs(&[("country", "DE")])));
        assert!(!p.satisfied_by(&attrs(&[("region", "EU")])));
    }

    #[test]
    fn de_morgan_and_double_negation() {
        let p = Policy::parse("not (country: RU or country: US)").unwrap();
        assert_eq!(p.to_string(), "not country: RU and not country: US");
        let p = Policy::parse("not not region: US").unwrap();
        assert_eq!(p.to_string(), "region: US");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "a: 1 or (b: 2 and c: 3)",
            "(a: 1 or b: 2) and not (c: 3 or d: 4)",
            "a: 1 or (b: 2 or c: 3)",
            "org: exec or (org: weapons and clearance: top-secret)",
        ] {
            let p = Policy::parse(s).unwrap();
            assert_eq!(Policy::parse(&p.to_string()).unwrap(), p, "{s}");
        }
    }

    #[test]
    fn quoted_names_and_values() {
        let p = Policy::parse(
            r#""data center": "Frankfurt am Main" and not country: RU or "and": "not""#,
        )
        .unwrap();
        assert_eq!(
            p.to_string(),
            r#"("data center": "Frankfurt am Main" and not country: RU) or "and": "not""#
        );
        assert!(p.satisfied_by(&attrs(&[
            ("data center", "Frankfurt am Main"),
            ("country", "DE")
        ])));
        assert!(!p.satisfied_by(&attrs(&[("data center", "Frankfurt"), ("country", "DE")])));
        assert!(p.satisfied_by(&attrs(&[("and", "not")])));
        // Quotes around plain words are accepted and dropped from the canonical form.
        let plain = Policy::parse(r#""region": "EU" and "city": Zürich"#).unwrap();
        assert_eq!(plain.to_string(), "region: EU and city: Zürich");
        // Empty texts and escapes.
        let odd = Policy::parse(r#""": "" or "say \"hi\"": "a\\b\u{7}""#).unwrap();
        assert_eq!(odd.to_string(), r#""": "" or "say \"hi\"": "a\\b\u{7}""#);
        assert!(odd.satisfied_by(&attrs(&[("say \"hi\"", "a\\b\u{7}")])));
        for s in [p, plain, odd] {
            assert_eq!(Policy::parse(&s.to_string()).unwrap(), s);
        }
    }

    #[test]
    fn reserved_words_and_long_texts() {
        let long = "x".repeat(crate::MAX_TEXT_LEN);
        let p = Policy::parse(&format!("{long}: {long}")).unwrap();
        assert_eq!(Policy::parse(&p.to_string()).unwrap(), p);
        for (input, pos) in [
            ("and: x", 0),
            ("a: or", 3),
            ("a: b and \"c: d", 9),
            ("a: \"\\q\"", 4),
            ("internal-boneh-katz-transform-attribute: x", 0),
            ("\"internal-boneh-katz-transform-attribute\": x", 0),
        ] {
            match Policy::parse(input) {
                Err(Error::PolicySyntax { position, .. }) => {
                    assert_eq!(position, pos, "{input:?}")
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
        let too_long = "x".repeat(crate::MAX_TEXT_LEN + 1);
        assert!(matches!(
            Policy::parse(&format!("a: {too_long}")),
            Err(Error::PolicySyntax { position: 3, .. })
        ));
        assert!(matches!(
            Policy::parse(&format!("\"{too_long}\": b")),
            Err(Error::PolicySyntax { position: 0, .. })
        ));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            ("country: US or", 14),
            ("country US", 8),
            ("(country: US", 12),
            ("country: US)", 11),
            ("country: U$", 10),
            ("", 0),
            ("a: b c: d", 5),
            ("and: x", 0),
        ];
        for (input, pos) in cases {
            match Policy::parse(input) {
                Err(Error::PolicySyntax { position, .. }) => {
                    assert_eq!(position, pos, "{input:?}")
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let deep = format!("{}a: b{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(
            Policy::parse(&deep),
            Err(Error::PolicySyntax { .. })
        ));
        let nots = format!("{}a: b", "not ".repeat(10_000));
        assert!(matches!(
            Policy::parse(&nots),
            Err(Error::PolicySyntax { .. })
        ));
    }
}
