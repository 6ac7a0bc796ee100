//! [`KeyStore`] on the API keys table.

use pipai_service::model::{ApiKeyRecord, KeyStatus};
use pipai_service::ports::{KeyStore, StoreError};
use pipai_service::KeyId;

use super::items::{from_item, to_attr, to_item, KeyItem};
use super::transact::conditional;
use super::DynamoStore;
use crate::error::{bad_item, store_err};
use crate::item::{s, Item};

impl DynamoStore {
    fn parse_key(&self, item: &Item) -> Result<ApiKeyRecord, StoreError> {
        from_item::<KeyItem>(item).map(ApiKeyRecord::from).map_err(|e| {
            let id = item.get("key_id").and_then(|v| v.as_s().ok()).map_or("?", String::as_str);
            bad_item("API key", &self.keys_table, format!("key {id}: {e}"))
        })
    }
}

impl KeyStore for DynamoStore {
    async fn get_key(&self, key_id: &KeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key_id = key_id.as_str();
        let item = self.get_item_by(&self.keys_table, "key_id", key_id).await?;
        item.map(|item| self.parse_key(&item)).transpose()
    }

    async fn put_key(&self, key: &ApiKeyRecord) -> Result<bool, StoreError> {
        let item = to_item(&KeyItem::from(key)).map_err(|e| StoreError::new(format!("key {}: {e}", key.key_id)))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.keys_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(key_id)")
            .send()
            .await;
        Ok(conditional(result, "PutItem", &self.keys_table)?.written())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.keys_table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_err("dynamodb", "Scan", &self.keys_table, e))?;
            for item in page.items() {
                out.push(self.parse_key(item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(out)
    }

    async fn set_key_status(&self, key_id: &KeyId, status: KeyStatus) -> Result<bool, StoreError> {
        let key_id = key_id.as_str();
        let status = to_attr(&status).map_err(|e| StoreError::new(format!("key {key_id}: status: {e}")))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.keys_table)
            .key("key_id", s(key_id))
            .update_expression("SET #status = :s")
            .condition_expression("attribute_exists(key_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", status)
            .send()
            .await;
        Ok(conditional(result, "UpdateItem (set_key_status)", &self.keys_table)?.written())
    }
}
