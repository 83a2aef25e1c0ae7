//! Why a policy document was refused (MalformedPolicyDocumentException at the edge).

/// A policy document that does not parse or breaks a rule of the policy language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON, or not a JSON object.
    #[error("the policy is not a JSON object: {0}")]
    NotJson(String),
    /// Longer than the limit.
    #[error("the policy is {0} bytes, more than {1}")]
    TooLong(usize, usize),
    /// No `Statement`, or an empty one.
    #[error("the policy has no statement")]
    NoStatement,
    /// A member has the wrong JSON type (e.g. `Action` a number).
    #[error("{0} has the wrong type")]
    WrongType(&'static str),
    /// An unknown top-level or statement member.
    #[error("unknown policy element {0:?}")]
    UnknownElement(String),
    /// `Version` is not `2012-10-17` or `2008-10-17`.
    #[error("unsupported policy version {0:?}")]
    Version(String),
    /// `Effect` missing or not `Allow`/`Deny`.
    #[error("a statement has no valid Effect")]
    Effect,
    /// A key policy statement without `Principal`/`NotPrincipal`, or an identity
    /// policy statement with one.
    #[error("a statement has no principal")]
    Principal,
    /// A principal that is not `*`, an account id, or an IAM user, role or root ARN.
    #[error("invalid principal {0:?}")]
    InvalidPrincipal(String),
    /// Both or neither of `Action` and `NotAction`.
    #[error("a statement needs exactly one of Action and NotAction")]
    Action,
    /// An action that is not `*` or `service:pattern`.
    #[error("invalid action {0:?}")]
    InvalidAction(String),
    /// Both `Resource` and `NotResource`, or (identity policies) neither.
    #[error("a statement needs exactly one of Resource and NotResource")]
    Resource,
    /// A condition operator this language does not have.
    #[error("unknown condition operator {0:?}")]
    ConditionOperator(String),
    /// A condition block whose values are not strings, numbers or booleans.
    #[error("invalid condition values for {0:?}")]
    ConditionValue(String),
}
