//! Attribute sets (`name: value` pairs) held by a key holder.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// Longest accepted attribute name or value, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 255;
/// Most attributes one set (and so one key) may hold.
pub const MAX_ATTRIBUTES: usize = 1024;

/// Label reserved for the Boneh–Katz transform (CIRCL's name, kept for interop).
pub(crate) const BK_LABEL: &str = "internal-boneh-katz-transform-attribute";

/// True for characters allowed in attribute names and values: ASCII letters, digits,
/// `_`, `-` and `.`.
pub(crate) fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// True for the words the policy language reserves.
pub(crate) fn is_keyword(s: &str) -> bool {
    matches!(s, "and" | "or" | "not")
}

/// Checks that `s` can appear as a name or value in a policy.
pub(crate) fn validate_identifier(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > MAX_IDENTIFIER_LEN {
        return Err(Error::InvalidAttribute(format!(
            "{s:?}: names and values must be 1 to {MAX_IDENTIFIER_LEN} bytes"
        )));
    }
    if !s.chars().all(is_identifier_char) {
        return Err(Error::InvalidAttribute(format!(
            "{s:?}: only ASCII letters, digits, '_', '-' and '.' are allowed"
        )));
    }
    if is_keyword(s) {
        return Err(Error::InvalidAttribute(format!("{s:?} is a reserved word")));
    }
    if s == BK_LABEL {
        return Err(Error::InvalidAttribute(format!("{s:?} is reserved")));
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

    /// Parses a comma-separated list of `name: value` pairs, e.g.
    /// `country: FR, region: EU` (the empty string is the empty set).
    pub fn parse(input: &str) -> Result<Self> {
        let mut attrs = Attributes::new();
        if input.trim().is_empty() {
            return Ok(attrs);
        }
        for item in input.split(',') {
            let (name, value) = item.split_once(':').ok_or_else(|| {
                Error::InvalidAttribute(format!("{:?} is not `name: value`", item.trim()))
            })?;
            attrs.insert(name.trim(), value.trim())?;
        }
        Ok(attrs)
    }

    /// Adds `name: value`; fails if the name is already present or not a valid identifier.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Result<()> {
        let (name, value) = (name.into(), value.into());
        validate_identifier(&name)?;
        validate_identifier(&value)?;
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
            write!(f, "{k}: {v}")?;
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
        assert!(Attributes::parse("").unwrap().is_empty());
        for bad in [
            "country FR",
            "country: FR, country: DE",
            "a: b c",
            "and: x",
            "a: ",
        ] {
            assert!(Attributes::parse(bad).is_err(), "{bad}");
        }
    }
}
