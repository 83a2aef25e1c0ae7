//! The Condition element: operators, set qualifiers and their evaluation.

use std::net::IpAddr;

use super::pattern::{arn_matches, wildcard_matches};
use super::time::parse_date;
use super::{ConditionContext, PolicyError};

/// A condition operator, without `IfExists` and set qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Exact string match.
    StringEquals,
    /// Negated StringEquals.
    StringNotEquals,
    /// String match ignoring ASCII case.
    StringEqualsIgnoreCase,
    /// Negated StringEqualsIgnoreCase.
    StringNotEqualsIgnoreCase,
    /// String match with `*` and `?`.
    StringLike,
    /// Negated StringLike.
    StringNotLike,
    /// Numbers equal.
    NumericEquals,
    /// Negated NumericEquals.
    NumericNotEquals,
    /// Request value below the policy value.
    NumericLessThan,
    /// Request value at most the policy value.
    NumericLessThanEquals,
    /// Request value above the policy value.
    NumericGreaterThan,
    /// Request value at least the policy value.
    NumericGreaterThanEquals,
    /// Dates equal.
    DateEquals,
    /// Negated DateEquals.
    DateNotEquals,
    /// Request date before the policy date.
    DateLessThan,
    /// Request date at or before the policy date.
    DateLessThanEquals,
    /// Request date after the policy date.
    DateGreaterThan,
    /// Request date at or after the policy date.
    DateGreaterThanEquals,
    /// `true`/`false`, ignoring case.
    Bool,
    /// Base64 values equal.
    BinaryEquals,
    /// The request's address is in one of the CIDR ranges.
    IpAddress,
    /// Negated IpAddress.
    NotIpAddress,
    /// ARN match with wildcards per part (the same as ArnLike, as in IAM).
    ArnEquals,
    /// ARN match with wildcards per part.
    ArnLike,
    /// Negated ArnEquals.
    ArnNotEquals,
    /// Negated ArnLike.
    ArnNotLike,
    /// `true`: the key is absent; `false`: it is present.
    Null,
}

impl Operator {
    const NAMES: [(&'static str, Operator); 27] = [
        ("StringEquals", Self::StringEquals),
        ("StringNotEquals", Self::StringNotEquals),
        ("StringEqualsIgnoreCase", Self::StringEqualsIgnoreCase),
        ("StringNotEqualsIgnoreCase", Self::StringNotEqualsIgnoreCase),
        ("StringLike", Self::StringLike),
        ("StringNotLike", Self::StringNotLike),
        ("NumericEquals", Self::NumericEquals),
        ("NumericNotEquals", Self::NumericNotEquals),
        ("NumericLessThan", Self::NumericLessThan),
        ("NumericLessThanEquals", Self::NumericLessThanEquals),
        ("NumericGreaterThan", Self::NumericGreaterThan),
        ("NumericGreaterThanEquals", Self::NumericGreaterThanEquals),
        ("DateEquals", Self::DateEquals),
        ("DateNotEquals", Self::DateNotEquals),
        ("DateLessThan", Self::DateLessThan),
        ("DateLessThanEquals", Self::DateLessThanEquals),
        ("DateGreaterThan", Self::DateGreaterThan),
        ("DateGreaterThanEquals", Self::DateGreaterThanEquals),
        ("Bool", Self::Bool),
        ("BinaryEquals", Self::BinaryEquals),
        ("IpAddress", Self::IpAddress),
        ("NotIpAddress", Self::NotIpAddress),
        ("ArnEquals", Self::ArnEquals),
        ("ArnLike", Self::ArnLike),
        ("ArnNotEquals", Self::ArnNotEquals),
        ("ArnNotLike", Self::ArnNotLike),
        ("Null", Self::Null),
    ];

    /// The operator named `name` (case-sensitive, as IAM has them).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, o)| *o)
    }

    /// Whether the operator is the negation of another (true when nothing matches).
    pub fn is_negated(self) -> bool {
        use Operator::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
                | ArnNotEquals
                | ArnNotLike
        )
    }

    /// Whether request value `r` matches policy value `p` under the operator's
    /// positive form (a negated operator's result is the negation of this).
    fn matches(self, p: &str, r: &str) -> bool {
        use std::cmp::Ordering::*;
        use Operator::*;
        let numeric = || {
            r.trim()
                .parse::<f64>()
                .ok()?
                .partial_cmp(&p.trim().parse::<f64>().ok()?)
        };
        let date = || Some(parse_date(r)?.cmp(&parse_date(p)?));
        match self {
            StringEquals | StringNotEquals => p == r,
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => p.eq_ignore_ascii_case(r),
            StringLike | StringNotLike => wildcard_matches(p, r, false),
            NumericEquals | NumericNotEquals => numeric() == Some(Equal),
            NumericLessThan => numeric() == Some(Less),
            NumericLessThanEquals => matches!(numeric(), Some(Less | Equal)),
            NumericGreaterThan => numeric() == Some(Greater),
            NumericGreaterThanEquals => matches!(numeric(), Some(Greater | Equal)),
            DateEquals | DateNotEquals => date() == Some(Equal),
            DateLessThan => date() == Some(Less),
            DateLessThanEquals => matches!(date(), Some(Less | Equal)),
            DateGreaterThan => date() == Some(Greater),
            DateGreaterThanEquals => matches!(date(), Some(Greater | Equal)),
            Bool => p.eq_ignore_ascii_case(r),
            BinaryEquals => p == r,
            IpAddress | NotIpAddress => ip_in_range(p, r),
            ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => arn_matches(p, r),
            Null => false,
        }
    }
}

/// Whether address `ip` lies in `range` (an address or `address/prefix`).
fn ip_in_range(range: &str, ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let (net, bits) = match range.split_once('/') {
        Some((net, bits)) => match (net.parse::<IpAddr>(), bits.parse::<u32>()) {
            (Ok(net), Ok(bits)) => (net, bits),
            _ => return false,
        },
        None => match range.parse::<IpAddr>() {
            Ok(net) => (net, if net.is_ipv4() { 32 } else { 128 }),
            Err(_) => return false,
        },
    };
    let mask = |width: u32| -> u128 {
        match bits {
            0 => 0,
            b if b <= width => (!0u128 << (128 - b)) >> (128 - width),
            _ => u128::MAX,
        }
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let m = mask(32);
            u128::from(u32::from(n)) & m == u128::from(u32::from(a)) & m
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let m = if bits == 0 { 0 } else { !0u128 << (128 - bits) };
            u128::from(n) & m == u128::from(a) & m
        }
        _ => false,
    }
}

/// `ForAnyValue:` or `ForAllValues:` before an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// At least one request value satisfies the operator.
    ForAnyValue,
    /// Every request value satisfies it (true when there are none).
    ForAllValues,
}

/// One condition: an operator on one key with the policy's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The set qualifier, if any.
    pub qualifier: Option<SetQualifier>,
    /// The operator.
    pub operator: Operator,
    /// `…IfExists`: true when the request has no value for the key.
    pub if_exists: bool,
    /// The condition key, lowercased.
    pub key: String,
    /// The policy's values (a request value matches if it matches any of them).
    pub values: Vec<String>,
}

impl Condition {
    /// Parses one `"Operator": { "key": value(s), … }` block into its conditions.
    pub fn parse_block(
        operator: &str,
        block: &serde_json::Value,
    ) -> Result<Vec<Condition>, PolicyError> {
        let unknown = || PolicyError::ConditionOperator(operator.to_string());
        let (qualifier, rest) = if let Some(r) = operator.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else if let Some(r) = operator.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else {
            (None, operator)
        };
        let (name, if_exists) = match rest.strip_suffix("IfExists") {
            Some(n) => (n, true),
            None => (rest, false),
        };
        let operator_kind = Operator::from_name(name).ok_or_else(unknown)?;
        if operator_kind == Operator::Null && (if_exists || qualifier.is_some()) {
            return Err(unknown());
        }
        let block = block
            .as_object()
            .ok_or(PolicyError::WrongType("Condition"))?;
        block
            .iter()
            .map(|(key, v)| {
                let bad = || PolicyError::ConditionValue(key.clone());
                let scalar = |v: &serde_json::Value| match v {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    serde_json::Value::Bool(b) => Ok(b.to_string()),
                    serde_json::Value::Number(n) => Ok(n.to_string()),
                    _ => Err(bad()),
                };
                let values = match v {
                    serde_json::Value::Array(a) if !a.is_empty() => {
                        a.iter().map(scalar).collect::<Result<_, _>>()?
                    }
                    serde_json::Value::Array(_) => return Err(bad()),
                    v => vec![scalar(v)?],
                };
                Ok(Condition {
                    qualifier,
                    operator: operator_kind,
                    if_exists,
                    key: key.to_ascii_lowercase(),
                    values,
                })
            })
            .collect()
    }

    /// Whether the request satisfies the condition.
    pub fn holds(&self, context: &ConditionContext) -> bool {
        let present = context.get(&self.key);
        let present = present.as_deref().filter(|v| !v.is_empty());
        if self.operator == Operator::Null {
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == present.is_none());
        }
        let negated = self.operator.is_negated();
        let hit = |r: &String| {
            self.values.iter().any(|p| {
                if p.contains("${") {
                    expand(p, context).is_some_and(|p| self.operator.matches(&p, r))
                } else {
                    self.operator.matches(p, r)
                }
            })
        };
        match (self.qualifier, present) {
            (None, None) => self.if_exists || negated,
            (None, Some(req)) => req.iter().any(hit) != negated,
            (Some(SetQualifier::ForAnyValue), None) => self.if_exists,
            (Some(SetQualifier::ForAnyValue), Some(req)) => req.iter().any(|r| hit(r) != negated),
            (Some(SetQualifier::ForAllValues), None) => true,
            (Some(SetQualifier::ForAllValues), Some(req)) => req.iter().all(|r| hit(r) != negated),
        }
    }
}

/// A policy value with its policy variables (`${aws:username}`,
/// `${aws:PrincipalTag/KEY}`, any single-valued condition key) replaced by
/// the request's values; `None` when a variable has no value, so the policy
/// value matches nothing (as in IAM).
fn expand(value: &str, context: &ConditionContext) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let name = after[..end].trim().to_ascii_lowercase();
        let values = context.get(&name)?;
        match values.as_ref() {
            [one] => out.push_str(one),
            _ => return None,
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_variables_expand_from_the_request() {
        let alice = super::super::Principal::user("111122223333", "alice");
        let c = ConditionContext::new(&alice, crate::Timestamp(0));
        assert_eq!(expand("${aws:username}", &c).as_deref(), Some("alice"));
        assert_eq!(
            expand("home/${aws:UserName}/x", &c).as_deref(),
            Some("home/alice/x")
        );
        assert_eq!(expand("${aws:PrincipalTag/team}", &c), None);
        assert_eq!(expand("${aws:username", &c), None);
        assert_eq!(expand("plain", &c).as_deref(), Some("plain"));
    }

    #[test]
    fn ip_ranges() {
        assert!(ip_in_range("203.0.113.0/24", "203.0.113.9"));
        assert!(!ip_in_range("203.0.113.0/24", "203.0.114.9"));
        assert!(ip_in_range("0.0.0.0/0", "8.8.8.8"));
        assert!(ip_in_range("10.1.2.3", "10.1.2.3"));
        assert!(ip_in_range("2001:db8::/32", "2001:db8:1::1"));
        assert!(!ip_in_range("2001:db8::/32", "2001:db9::1"));
        assert!(!ip_in_range("10.0.0.0/8", "2001:db8::1"));
        assert!(!ip_in_range("10.0.0.0/40", "10.0.0.1"));
        assert!(!ip_in_range("nonsense", "10.0.0.1"));
    }
}
