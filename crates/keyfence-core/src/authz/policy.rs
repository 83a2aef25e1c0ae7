//! IAM JSON policy documents: parsing and matching statements to a request.

use serde_json::{Map, Value};

use super::pattern::wildcard_matches;
use super::principal::is_account_id;
use super::{Condition, PolicyError, Principal, PrincipalKind, Request};

/// The longest key policy AWS KMS accepts (32 KiB).
pub const MAX_POLICY_BYTES: usize = 32_768;

/// Which kind of policy a document is: key policies name principals,
/// identity policies do not (their principal is the identity they are attached to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A resource (key) policy.
    Key,
    /// An identity policy of a user or role.
    Identity,
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the actions.
    Allow,
    /// Refuses them, whatever else allows them.
    Deny,
}

/// One entry of a statement's Principal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalPattern {
    /// `*` or `{"AWS": "*"}`: everyone.
    Anyone,
    /// An account (`111122223333` or its root ARN): every principal of it,
    /// as far as its identity policies allow.
    Account(String),
    /// One user or role.
    Arn(String),
    /// A service or federated principal: never a keyfence caller.
    Other,
}

/// How a statement's principal relates to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalMatch {
    /// The statement names the caller (or everyone).
    Direct,
    /// The statement names the caller's account.
    Account,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its Sid, if it has one.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    principals: Option<Vec<PrincipalPattern>>,
    not_principal: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

impl Statement {
    fn parse(v: &Value, kind: PolicyKind) -> Result<Self, PolicyError> {
        let o = v.as_object().ok_or(PolicyError::WrongType("Statement"))?;
        for k in o.keys() {
            if !matches!(
                k.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(PolicyError::UnknownElement(k.clone()));
            }
        }
        let sid = match o.get("Sid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(PolicyError::WrongType("Sid")),
        };
        let effect = match o.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err(PolicyError::Effect),
        };
        let (principals, not_principal) = match (o.get("Principal"), o.get("NotPrincipal")) {
            (Some(_), Some(_)) => return Err(PolicyError::Principal),
            (Some(p), None) => (Some(principals(p)?), false),
            (None, Some(p)) => (Some(principals(p)?), true),
            (None, None) => (None, false),
        };
        match kind {
            PolicyKind::Key if principals.is_none() => return Err(PolicyError::Principal),
            PolicyKind::Identity if principals.is_some() => {
                return Err(PolicyError::UnknownElement("Principal".into()))
            }
            _ => {}
        }
        let (actions, not_action) = match (o.get("Action"), o.get("NotAction")) {
            (Some(a), None) => (strings(a, "Action")?, false),
            (None, Some(a)) => (strings(a, "NotAction")?, true),
            _ => return Err(PolicyError::Action),
        };
        for a in &actions {
            if a != "*"
                && !a
                    .split_once(':')
                    .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty())
            {
                return Err(PolicyError::InvalidAction(a.clone()));
            }
        }
        let (resources, not_resource) = match (o.get("Resource"), o.get("NotResource")) {
            (Some(r), None) => (strings(r, "Resource")?, false),
            (None, Some(r)) => (strings(r, "NotResource")?, true),
            // A key policy's resource is the key itself.
            (None, None) if kind == PolicyKind::Key => (vec!["*".to_string()], false),
            _ => return Err(PolicyError::Resource),
        };
        let mut conditions = Vec::new();
        if let Some(c) = o.get("Condition") {
            let c = c.as_object().ok_or(PolicyError::WrongType("Condition"))?;
            for (operator, block) in c {
                conditions.extend(Condition::parse_block(operator, block)?);
            }
        }
        Ok(Self {
            sid,
            effect,
            principals,
            not_principal,
            actions: actions.iter().map(|a| a.to_ascii_lowercase()).collect(),
            not_action,
            resources,
            not_resource,
            conditions,
        })
    }

    /// How the statement's Principal covers the caller, `None` if it does not.
    fn principal_match(&self, caller: &Principal) -> Option<PrincipalMatch> {
        let Some(list) = &self.principals else {
            return Some(PrincipalMatch::Direct);
        };
        let found = list.iter().fold(None, |best, p| {
            let m = match p {
                PrincipalPattern::Anyone => Some(PrincipalMatch::Direct),
                PrincipalPattern::Arn(arn) if arn == caller.arn() => Some(PrincipalMatch::Direct),
                PrincipalPattern::Account(a) if a == caller.account() => {
                    if caller.kind() == PrincipalKind::Root {
                        Some(PrincipalMatch::Direct)
                    } else {
                        Some(PrincipalMatch::Account)
                    }
                }
                _ => None,
            };
            match (best, m) {
                (Some(PrincipalMatch::Direct), _) | (_, Some(PrincipalMatch::Direct)) => {
                    Some(PrincipalMatch::Direct)
                }
                (b, m) => b.or(m),
            }
        });
        if self.not_principal {
            found.is_none().then_some(PrincipalMatch::Direct)
        } else {
            found
        }
    }

    /// Whether the statement's actions, resources and conditions cover the request.
    fn covers(&self, req: &Request<'_>) -> bool {
        let action = self
            .actions
            .iter()
            .any(|p| wildcard_matches(p, req.action, true));
        if action == self.not_action {
            return false;
        }
        let resource = self
            .resources
            .iter()
            .any(|p| wildcard_matches(p, req.resource, false));
        resource != self.not_resource && self.conditions.iter().all(|c| c.holds(req.context.keys()))
    }
}

/// Every Principal entry of a statement.
fn principals(v: &Value) -> Result<Vec<PrincipalPattern>, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalPattern::Anyone]),
        Value::Object(o) if !o.is_empty() => {
            let mut out = Vec::new();
            for (kind, names) in o {
                for name in strings(names, "Principal")? {
                    out.push(match kind.as_str() {
                        "AWS" => aws_principal(&name)?,
                        "Service" | "Federated" | "CanonicalUser" => PrincipalPattern::Other,
                        _ => return Err(PolicyError::InvalidPrincipal(kind.clone())),
                    });
                }
            }
            Ok(out)
        }
        _ => Err(PolicyError::InvalidPrincipal(v.to_string())),
    }
}

fn aws_principal(name: &str) -> Result<PrincipalPattern, PolicyError> {
    if name == "*" {
        return Ok(PrincipalPattern::Anyone);
    }
    if is_account_id(name) {
        return Ok(PrincipalPattern::Account(name.to_string()));
    }
    let p = Principal::parse_arn(name)?;
    Ok(match p.kind() {
        PrincipalKind::Root => PrincipalPattern::Account(p.account().to_string()),
        _ => PrincipalPattern::Arn(name.to_string()),
    })
}

/// A string or a non-empty array of strings.
fn strings(v: &Value, what: &'static str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or(PolicyError::WrongType(what))
            })
            .collect(),
        _ => Err(PolicyError::WrongType(what)),
    }
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// What a key policy says about a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyPolicyOutcome {
    /// A Deny statement covers the request.
    pub denied: bool,
    /// An Allow statement names the caller (or everyone).
    pub allows_caller: bool,
    /// An Allow statement names the caller's account (delegating to its identity policies).
    pub allows_account: bool,
}

impl Policy {
    /// Parses a policy document of `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLong(text.len(), MAX_POLICY_BYTES));
        }
        let doc: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::NotJson(e.to_string()))?;
        let o: &Map<String, Value> = doc
            .as_object()
            .ok_or_else(|| PolicyError::NotJson("not an object".into()))?;
        for k in o.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError::UnknownElement(k.clone()));
            }
        }
        match o.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(v) => return Err(PolicyError::Version(v.to_string())),
        }
        let statements = match o.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|s| Statement::parse(s, kind))
                .collect::<Result<_, _>>()?,
            Some(s @ Value::Object(_)) => vec![Statement::parse(s, kind)?],
            _ => return Err(PolicyError::NoStatement),
        };
        Ok(Self { statements })
    }

    /// Whether a condition of any statement reads `key` (lowercase).
    pub fn uses_condition_key(&self, key: &str) -> bool {
        self.statements
            .iter()
            .any(|s| s.conditions.iter().any(|c| c.key == key))
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Evaluates as a key policy.
    pub(crate) fn evaluate_key(&self, req: &Request<'_>) -> KeyPolicyOutcome {
        let mut out = KeyPolicyOutcome::default();
        for s in &self.statements {
            let Some(m) = s.principal_match(req.principal) else {
                continue;
            };
            if !s.covers(req) {
                continue;
            }
            match (s.effect, m) {
                (Effect::Deny, _) => out.denied = true,
                (Effect::Allow, PrincipalMatch::Direct) => out.allows_caller = true,
                (Effect::Allow, PrincipalMatch::Account) => out.allows_account = true,
            }
        }
        out
    }

    /// Evaluates as an identity policy: (denied, allowed).
    pub(crate) fn evaluate_identity(&self, req: &Request<'_>) -> (bool, bool) {
        let (mut denied, mut allowed) = (false, false);
        for s in self.statements.iter().filter(|s| s.covers(req)) {
            match s.effect {
                Effect::Deny => denied = true,
                Effect::Allow => allowed = true,
            }
        }
        (denied, allowed)
    }

    /// The identity policy a principal of `account` has when the config gives
    /// it none: every KMS action on its own account's keys, and the actions on
    /// no key.
    pub fn default_identity(account: &str) -> Self {
        Self::parse(&default_identity_policy(account), PolicyKind::Identity)
            .expect("the default identity policy parses")
    }
}

/// The text of the default identity policy of `account` (see [`Policy::default_identity`]).
fn default_identity_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:{account}:*"}},{{"Effect":"Allow","Action":["kms:CreateKey","kms:ListKeys","kms:ListAliases","kms:GenerateRandom","kms:ListRetirableGrants"],"Resource":"*"}}]}}"#
    )
}

/// The key policy a key of `account` gets when CreateKey names none, in
/// AWS's words and layout: the account root may do everything, which
/// delegates to the account's identity policies.
pub fn default_key_policy(account: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}
