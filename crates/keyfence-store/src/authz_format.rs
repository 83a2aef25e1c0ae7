//! How grants are stored: operations as a comma-separated list of names,
//! constraints as a small JSON object. Shared by the SQLite and PostgreSQL adapters.

use std::collections::BTreeMap;

use keyfence_core::authz::{GrantConstraints, GrantOperation};
use keyfence_core::StoreError;
use serde::{Deserialize, Serialize};

/// The stored form of [`GrantConstraints`].
#[derive(Serialize, Deserialize)]
struct StoredConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    equals: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subset: Option<BTreeMap<String, String>>,
}

/// `Encrypt,Decrypt,…`.
pub(crate) fn encode_operations(ops: &[GrantOperation]) -> String {
    ops.iter().map(|o| o.name()).collect::<Vec<_>>().join(",")
}

pub(crate) fn decode_operations(s: &str) -> Result<Vec<GrantOperation>, StoreError> {
    s.split(',')
        .filter(|n| !n.is_empty())
        .map(|n| {
            GrantOperation::from_name(n)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown grant operation {n:?}")))
        })
        .collect()
}

/// `None` when there are no constraints.
pub(crate) fn encode_constraints(c: &GrantConstraints) -> Option<String> {
    (!c.is_empty()).then(|| {
        serde_json::to_string(&StoredConstraints {
            equals: c.equals.clone(),
            subset: c.subset.clone(),
        })
        .expect("maps of strings serialize")
    })
}

pub(crate) fn decode_constraints(s: Option<&str>) -> Result<GrantConstraints, StoreError> {
    let Some(s) = s else {
        return Ok(GrantConstraints::default());
    };
    let c: StoredConstraints = serde_json::from_str(s)
        .map_err(|e| StoreError::Corrupt(format!("grant constraints: {e}")))?;
    Ok(GrantConstraints {
        equals: c.equals,
        subset: c.subset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ops = vec![GrantOperation::Encrypt, GrantOperation::ReEncryptFrom];
        assert_eq!(decode_operations(&encode_operations(&ops)).unwrap(), ops);
        assert!(decode_operations("Encrypt,Nope").is_err());
        let c = GrantConstraints {
            equals: None,
            subset: Some([("a".to_string(), "b".to_string())].into()),
        };
        assert_eq!(
            decode_constraints(encode_constraints(&c).as_deref()).unwrap(),
            c
        );
        assert_eq!(encode_constraints(&GrantConstraints::default()), None);
        assert_eq!(
            decode_constraints(None).unwrap(),
            GrantConstraints::default()
        );
    }
}
