//! Tags: TagResource, UntagResource, ListResourceTags.

use std::collections::BTreeMap;

use super::lifecycle::require_not_pending_deletion;
use super::{fenced, Kms};
use crate::page::{self, Page};
use crate::{KmsError, Limit, TagProblem};

/// Most tags one key may carry (AWS: 50).
const MAX_TAGS: usize = 50;

/// Longest tag key (AWS: 128 characters).
const MAX_TAG_KEY: usize = 128;

/// Longest tag value (AWS: 256 characters).
const MAX_TAG_VALUE: usize = 256;

/// Validates tags and merges them into `into` (a repeated key takes the new value).
pub(super) fn apply(
    into: &mut BTreeMap<String, String>,
    tags: Vec<(String, String)>,
) -> Result<(), KmsError> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            return Err(KmsError::InvalidTag(TagProblem::KeyLength {
                key: k,
                max: MAX_TAG_KEY,
            }));
        }
        if v.chars().count() > MAX_TAG_VALUE {
            return Err(KmsError::InvalidTag(TagProblem::ValueLength {
                key: k,
                max: MAX_TAG_VALUE,
            }));
        }
        if k.starts_with("aws:") {
            return Err(KmsError::InvalidTag(TagProblem::ReservedPrefix { key: k }));
        }
        into.insert(k, v);
    }
    if into.len() > MAX_TAGS {
        return Err(KmsError::LimitExceeded(Limit::Tags { max: MAX_TAGS }));
    }
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
