//! Tags: TagResource, UntagResource, ListResourceTags.

use std::collections::BTreeMap;

use super::lifecycle::require_not_pending_deletion;
use super::{fenced, Kms};
use crate::page::{self, Page};
use crate::KmsError;

/// Most tags one key may carry (AWS: 50).
const MAX_TAGS: usize = 50;

/// Validates tags and merges them into `into` (a repeated key takes the new value).
pub(super) fn apply(
    into: &mut BTreeMap<String, String>,
    tags: Vec<(String, String)>,
) -> Result<(), KmsError> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(KmsError::Tag(format!(
                "Tag key must be 1 to 128 characters: {k:?}"
            )));
        }
        if v.chars().count() > 256 {
            return Err(KmsError::Tag(format!(
                "Tag value for {k:?} is longer than 256 characters"
            )));
        }
        if k.starts_with("aws:") {
            return Err(KmsError::Tag(format!(
                "Tag key {k:?} uses the reserved prefix aws:"
            )));
        }
        into.insert(k, v);
    }
    if into.len() > MAX_TAGS {
        return Err(KmsError::LimitExceeded(format!(
            "A key may have at most {MAX_TAGS} tags"
        )));
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
