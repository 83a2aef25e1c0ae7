//! Tags: TagResource, UntagResource, ListResourceTags.

use std::collections::BTreeMap;

use super::lifecycle::require_not_pending_deletion;
use super::{fenced, Kms};
use crate::page::{self, Page};
use crate::{KmsError, TagProblem};

/// Most tags one key may carry (AWS: 50).
const MAX_TAGS: usize = 50;

/// Longest tag key (AWS: 128 characters).
const MAX_TAG_KEY: usize = 128;

/// Longest tag value (AWS: 256 characters).
const MAX_TAG_VALUE: usize = 256;

/// Validates tags as AWS does and merges them into `into`: each key 1 to 128
/// characters, each value at most 256, no key in the reserved `aws:` namespace
/// (in any case), no key twice in one request, at most 50 tags on the key.
pub(super) fn apply(
    into: &mut BTreeMap<String, String>,
    tags: Vec<(String, String)>,
) -> Result<(), KmsError> {
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in &tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            return Err(KmsError::InvalidTag(TagProblem::KeyLength {
                key: k.clone(),
                max: MAX_TAG_KEY,
            }));
        }
        if v.chars().count() > MAX_TAG_VALUE {
            return Err(KmsError::InvalidTag(TagProblem::ValueLength {
                key: k.clone(),
                max: MAX_TAG_VALUE,
            }));
        }
        if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(KmsError::InvalidTag(TagProblem::ReservedPrefix {
                key: k.clone(),
            }));
        }
        if !seen.insert(k.as_str()) {
            return Err(KmsError::InvalidTag(TagProblem::Duplicate {
                key: k.clone(),
            }));
        }
    }
    let mut merged = into.clone();
    merged.extend(tags);
    if merged.len() > MAX_TAGS {
        return Err(KmsError::InvalidTag(TagProblem::TooMany { max: MAX_TAGS }));
    }
    *into = merged;
    Ok(())
}

impl Kms {
    /// TagResource.
    pub fn tag_resource(
        &self,
        account: &str,
        key_ref: &str,
        tags: Vec<(String, String)>,
    ) -> Result<(), KmsError> {
        self.update_metadata(account, key_ref, |m| {
            require_not_pending_deletion(m)?;
            fenced::refuse_fence_tag(m, tags.iter().map(|(k, _)| k.as_str()))?;
            apply(&mut m.tags, tags.clone())
        })
        .map(drop)
    }

    /// UntagResource.
    pub fn untag_resource(
        &self,
        account: &str,
        key_ref: &str,
        tag_keys: &[String],
    ) -> Result<(), KmsError> {
        self.update_metadata(account, key_ref, |m| {
            require_not_pending_deletion(m)?;
            fenced::refuse_fence_tag(m, tag_keys.iter().map(String::as_str))?;
            for k in tag_keys {
                m.tags.remove(k);
            }
            Ok(())
        })
        .map(drop)
    }

    /// ListResourceTags: sorted by tag key, paged.
    pub fn list_resource_tags(
        &self,
        account: &str,
        key_ref: &str,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<(String, String)>, KmsError> {
        let limit = page::limit(limit, 50, 50)?;
        let key = self.resolve_key(account, key_ref)?;
        let tags: Vec<(String, String)> = key.meta.tags.clone().into_iter().collect();
        page::paginate(tags, |(k, _)| k.clone(), marker, limit)
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_are_validated_as_aws_does() {
        let mut m = BTreeMap::new();
        let problem = |m: &mut BTreeMap<String, String>, t: &[(&str, &str)]| match apply(m, tags(t))
        {
            Err(KmsError::InvalidTag(p)) => Some(p),
            Err(other) => panic!("{other:?}"),
            Ok(()) => None,
        };
        assert!(matches!(
            problem(&mut m, &[("AWS:x", "v")]),
            Some(TagProblem::ReservedPrefix { .. })
        ));
        assert!(matches!(
            problem(&mut m, &[("Aws:", "v")]),
            Some(TagProblem::ReservedPrefix { .. })
        ));
        assert!(matches!(
            problem(&mut m, &[("a", "1"), ("a", "2")]),
            Some(TagProblem::Duplicate { .. })
        ));
        assert!(matches!(
            problem(&mut m, &[("", "v")]),
            Some(TagProblem::KeyLength { .. })
        ));
        let long_value = "v".repeat(257);
        assert!(matches!(
            problem(&mut m, &[("k", &long_value)]),
            Some(TagProblem::ValueLength { .. })
        ));
        assert!(m.is_empty(), "a refused request changes nothing");
        assert_eq!(problem(&mut m, &[("awsx", "v"), ("k", "")]), None);
        let fifty: Vec<(String, String)> =
            (0..48).map(|i| (format!("t{i}"), String::new())).collect();
        apply(&mut m, fifty).unwrap();
        assert_eq!(m.len(), 50);
        assert!(matches!(
            problem(&mut m, &[("one-more", "v")]),
            Some(TagProblem::TooMany { max: 50 })
        ));
        assert_eq!(
            problem(&mut m, &[("t0", "replaced")]),
            None,
            "a replaced tag adds none"
        );
        assert_eq!(m["t0"], "replaced");
    }
}
