//! The caller of a request: an IAM user, an IAM role, or an account's root.

use super::PolicyError;

/// What kind of IAM identity a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
    User,
    /// `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
    Role,
    /// `arn:aws:iam::ACCOUNT:root`, the account itself.
    Root,
}

/// An authenticated caller (or a principal named by a grant): its ARN and account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    arn: String,
    account: String,
    kind: PrincipalKind,
}

impl Principal {
    /// The IAM user `name` of `account`.
    pub fn user(account: &str, name: &str) -> Self {
        Self {
            arn: format!("arn:aws:iam::{account}:user/{name}"),
            account: account.to_string(),
            kind: PrincipalKind::User,
        }
    }

    /// Parses an IAM user, role or root ARN (`arn:PARTITION:iam::ACCOUNT:…`).
    pub fn parse_arn(arn: &str) -> Result<Self, PolicyError> {
        let invalid = || PolicyError::InvalidPrincipal(arn.to_string());
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else {
            return Err(invalid());
        };
        if prefix != "arn"
            || !partition.starts_with("aws")
            || service != "iam"
            || !region.is_empty()
            || !is_account_id(account)
        {
            return Err(invalid());
        }
        let kind = if resource == "root" {
            PrincipalKind::Root
        } else if let Some(name) = resource.strip_prefix("user/") {
            valid_name(name)
                .then_some(PrincipalKind::User)
                .ok_or_else(invalid)?
        } else if let Some(name) = resource.strip_prefix("role/") {
            valid_name(name)
                .then_some(PrincipalKind::Role)
                .ok_or_else(invalid)?
        } else {
            return Err(invalid());
        };
        Ok(Self {
            arn: arn.to_string(),
            account: account.to_string(),
            kind,
        })
    }

    /// The principal's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The 12-digit account it belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// User, role or root.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }
}

/// Whether `s` is a 12-digit account id.
pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An IAM path and name: non-empty, printable, no wildcards, at most 512 characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && !name.ends_with('/')
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '*' && c != '?')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_parse_by_kind() {
        let p = Principal::parse_arn("arn:aws:iam::111122223333:user/alice").unwrap();
        assert_eq!(
            (p.account(), p.kind()),
            ("111122223333", PrincipalKind::User)
        );
        assert_eq!(p, Principal::user("111122223333", "alice"));
        let r = Principal::parse_arn("arn:aws:iam::111122223333:role/ops/Admin").unwrap();
        assert_eq!(r.kind(), PrincipalKind::Role);
        let root = Principal::parse_arn("arn:aws:iam::111122223333:root").unwrap();
        assert_eq!(root.kind(), PrincipalKind::Root);
        for bad in [
            "arn:aws:iam::1111:user/a",
            "arn:aws:kms:us-east-1:111122223333:key/x",
            "arn:aws:iam::111122223333:user/",
            "arn:aws:iam::111122223333:user/a*",
            "arn:aws:iam::111122223333:group/a",
            "111122223333",
        ] {
            assert!(Principal::parse_arn(bad).is_err(), "{bad}");
        }
    }
}
