//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use keyfence_core::Kms;
use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::{alias_entry, paged};
use super::Ops;
use crate::api::ApiError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AliasInput {
    alias_name: String,
    target_key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteAliasInput {
    alias_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListAliasesInput {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

impl Ops<'_> {
    pub(super) fn alias(
        &self,
        i: AliasInput,
        op: impl FnOnce(&Kms, &str, &str, &str) -> Result<(), keyfence_core::KmsError>,
    ) -> Result<Value, ApiError> {
        op(self.kms, self.account, &i.alias_name, &i.target_key_id)?;
        Ok(json!({}))
    }

    pub(super) fn delete_alias(&self, i: DeleteAliasInput) -> Result<Value, ApiError> {
        self.kms.delete_alias(self.account, &i.alias_name)?;
        Ok(json!({}))
    }

    pub(super) fn list_aliases(&self, i: ListAliasesInput) -> Result<Value, ApiError> {
        let page = self.kms.list_aliases(
            self.account,
            i.key_id.as_deref(),
            i.limit,
            i.marker.as_deref(),
        )?;
        let items = page.items.iter().map(alias_entry).collect();
        Ok(paged(json!({}), "Aliases", items, page.next_marker))
    }
}
