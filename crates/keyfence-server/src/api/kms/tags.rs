//! Tags: TagResource, UntagResource, ListResourceTags.

use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::paged;
use super::{KeyListInput, Ops, Tag};
use crate::api::ApiError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TagResourceInput {
    key_id: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UntagResourceInput {
    key_id: String,
    tag_keys: Vec<String>,
}

impl Ops<'_> {
    pub(super) fn tag_resource(&self, i: TagResourceInput) -> Result<Value, ApiError> {
        let tags = i
            .tags
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect();
        self.kms.tag_resource(self.account, &i.key_id, tags)?;
        Ok(json!({}))
    }

    pub(super) fn untag_resource(&self, i: UntagResourceInput) -> Result<Value, ApiError> {
        self.kms
            .untag_resource(self.account, &i.key_id, &i.tag_keys)?;
        Ok(json!({}))
    }

    pub(super) fn list_resource_tags(&self, i: KeyListInput) -> Result<Value, ApiError> {
        let page =
            self.kms
                .list_resource_tags(self.account, &i.key_id, i.limit, i.marker.as_deref())?;
        let items = page
            .items
            .iter()
            .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
            .collect();
        Ok(paged(json!({}), "Tags", items, page.next_marker))
    }
}
