//! Attribute sets (`name: value` pairs) held by a key holder.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::text::{tokenize, write_text, Kind};

/// Longest accepted attribute name or value, in bytes: the most CIRCL's 16-bit string
/// framing can carry.
pub const MAX_TEXT_LEN: usize = 65_535;
/// Most attributes one set (and so one key) may hold.
pub const MAX_ATTRIBUTES: usize = 1024;

/// Label reserved for the Boneh–Katz transform (CIRCL's name, kept for interop).
pub(crate) const BK_LABEL: &str = "internal-boneh-katz-transform-attribute";

/// Checks that `s` can be an attribute name: any UTF-8 text of at most
/// [`MAX_TEXT_LEN`] bytes (the empty string and reserved words included: text forms
/// quote them) other than the label the Boneh–Katz transform reserves.
pub(crate) fn validate_name(s: &str) -> Result<()> {
    if s == BK_LABEL {
        return Err(Error::InvalidAttribute(format!("{s:?} is reserved")));
    }
    validate_value(s)
}

/// Checks that `s` can be an attribute value: any UTF-8 text of at most
/// [`MAX_TEXT_LEN`] bytes.
pub(crate) fn validate_value(s: &str) -> Result<()> {
    if s.len() > MAX_TEXT_LEN {
        return Err(Error::InvalidAttribute(format!(
            "names and values are at most {MAX_TEXT_LEN} bytes, not {}",
            s.len()
        )));
    }
    Ok(())
}

/// A set of attributes: at most one value per name, e.g. `{country: FR, region: EU}`.
///
/// Attributes are public information (they are what the authority certifies); the
/// secret is the key issued for them.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    pairs: BTreeMap<String, String>,
}

impl Attributes {
    /// An empty attribute set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from `(name, value)` pairs; a repeated name is an error.
    pub fn from_pairs<N, V, I>(pairs: I) -> Result<Self>
    where
        N: Into<String>,
        V: Into<String>,
        I: IntoIterator<Item = (N, V)>,
    {
        let mut attrs = Attributes::new();
        for (name, value) in pairs {
            attrs.insert(name, value)?;
        }
        Ok(attrs)
    }

    /// Parses a comma-separated list of `name: value` pairs, optionally in braces
    /// (as [`Display`](fmt::Display) prints them), e.g. `country: FR, region: EU` or
    /// `{"data center": "Frankfurt am Main", country: DE}`. Names and values that are
    /// not plain words are quoted as in policies (see [`Policy::parse`](crate::Policy::parse)).
    /// The empty string and `{}` are the empty set.
    pub fn parse(input: &str) -> Result<Self> {
        let at = |pos: usize, message: &str| {
            Error::InvalidAttribute(format!("at byte {pos}: {message}"))
        };
        let tokens = tokenize(input).map_err(|e| at(e.pos, &e.message))?;
        // The list always ends with `End`; clamping keeps every index in bounds.
        let tok = |i: usize| &tokens[i.min(tokens.len() - 1)];
        let braced = tok(0).kind == Kind::LBrace;
        let close = if braced { Kind::RBrace } else { Kind::End };
        let mut i = usize::from(braced);
        let mut attrs = Attributes::new();
        if tok(i).kind != close {
            loop {
                let text = |i: usize, what: &str| match &tok(i).kind {
                    Kind::Text(s) => Ok(s.clone()),
                    Kind::And | Kind::Or | Kind::Not => Err(at(
                        tok(i).pos,
                        &format!("{what} that is a reserved word must be quoted"),
                    )),
                    _ => Err(at(tok(i).pos, &format!("expected {what}"))),
                };
                let name = text(i, "an attribute name")?;
                if tok(i + 1).kind != Kind::Colon {
                    return Err(at(tok(i + 1).pos, "expected ':' after the name"));
                }
                let value = text(i + 2, "an attribute value")?;
                attrs
                    .insert(name, value)
                    .map_err(|e| at(tok(i).pos, &e.to_string()))?;
                i += 3;
                if tok(i).kind != Kind::Comma {
                    break;
                }
                i += 1;
            }
        }
        if tok(i).kind != close {
            return Err(at(tok(i).pos, "expected ',' or the end of the list"));
        }
        if braced && tok(i + 1).kind != Kind::End {
            return Err(at(tok(i + 1).pos, "unexpected text after '}'"));
        }
        Ok(attrs)
    }

    /// Adds `name: value`; fails if the name is already present, is the reserved
    /// Boneh–Katz label, or either text is longer than [`MAX_TEXT_LEN`] bytes. Any
    /// other UTF-8 text is accepted, as CIRCL accepts it.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Result<()> {
        let (name, value) = (name.into(), value.into());
        validate_name(&name)?;
        validate_value(&value)?;
        if self.pairs.len() >= MAX_ATTRIBUTES {
            return Err(Error::InvalidAttribute(format!(
                "more than {MAX_ATTRIBUTES} attributes"
            )));
        }
        if self.pairs.contains_key(&name) {
            return Err(Error::InvalidAttribute(format!(
                "{name:?} appears twice; an attribute has one value"
            )));
        }
        self.pairs.insert(name, value);
        Ok(())
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.get(name).map(String::as_str)
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Iterates over `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl std::str::FromStr for Attributes {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Attributes::parse(s)
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_text(f, k)?;
            f.write_str(": ")?;
            write_text(f, v)?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_agree() {
        let a = Attributes::parse("country: FR, region: EU").unwrap();
        assert_eq!(a.get("country"), Some("FR"));
        assert_eq!(a.to_string(), "{country: FR, region: EU}");
        assert_eq!(Attributes::parse(&a.to_string()).unwrap(), a);
        assert!(Attributes::parse("").unwrap().is_empty());
        assert!(Attributes::parse(" { } ").unwrap().is_empty());
        for bad in [
            "country FR",
            "country: FR, country: DE",
            "a: b c",
            "and: x",
            "a: or",
            "a: ",
            "a: b,",
            "{a: b",
            "{a: b} c",
            "a: \"open",
            "internal-boneh-katz-transform-attribute: x",
        ] {
            assert!(
                matches!(Attributes::parse(bad), Err(Error::InvalidAttribute(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn quoted_names_and_values() {
        let a = Attributes::parse(
            r#"{"data center": "Frankfurt am Main", "and": "", country: DE, city: Zürich}"#,
        )
        .unwrap();
        assert_eq!(a.get("data center"), Some("Frankfurt am Main"));
        assert_eq!(a.get("and"), Some(""));
        assert_eq!(a.get("city"), Some("Zürich"));
        assert_eq!(
            a.to_string(),
            r#"{"and": "", city: Zürich, country: DE, "data center": "Frankfurt am Main"}"#
        );
        assert_eq!(Attributes::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn lengths_up_to_circl_framing() {
        let long = "n".repeat(MAX_TEXT_LEN);
        let a = Attributes::from_pairs([(long.clone(), long.clone())]).unwrap();
        assert_eq!(a.get(&long), Some(long.as_str()));
        let too_long = "n".repeat(MAX_TEXT_LEN + 1);
        assert!(matches!(
            Attributes::from_pairs([(too_long.as_str(), "v")]),
            Err(Error::InvalidAttribute(_))
        ));
        assert!(matches!(
            Attributes::from_pairs([("n", too_long.as_str())]),
            Err(Error::InvalidAttribute(_))
        ));
    }
}
