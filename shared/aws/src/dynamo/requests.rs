//! [`RequestLog`] on the requests table: remembered signatures (replay protection) and
//! request-weight counters, both expiring by TTL.

use aws_sdk_dynamodb::types::ReturnValue;
use pipai_service::ports::{RequestLog, StoreError};
use pipai_service::KeyId;

use super::items::{from_item, to_item, SignatureItem, WeightCounter};
use super::transact::conditional;
use super::DynamoStore;
use crate::error::{bad_item, store_err};
use crate::item::{n, s};
use crate::now_ms;

impl RequestLog for DynamoStore {
    async fn remember_signature(&self, key_id: &KeyId, signature: &str, expires_ms: i64) -> Result<bool, StoreError> {
        let key_id = key_id.as_str();
        let item = to_item(&SignatureItem::new(key_id, signature, expires_ms))
            .map_err(|e| StoreError::new(format!("signature item: {e}")))?;
        // TTL deletes late (days in AWS, never in moto): an expired item counts as absent.
        let result = self
            .client
            .put_item()
            .table_name(&self.requests_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now_s")
            .expression_attribute_values(":now_s", n(now_ms().div_euclid(1000)))
            .send()
            .await;
        Ok(conditional(result, "PutItem (remember_signature)", &self.requests_table)?.written())
    }

    async fn add_weight(&self, key_id: &KeyId, window_start_ms: i64, weight: u32) -> Result<u32, StoreError> {
        let key_id = key_id.as_str();
        let out = self
            .client
            .update_item()
            .table_name(&self.requests_table)
            .key("pk", s(WeightCounter::key(key_id, window_start_ms)))
            .update_expression("ADD weight :w SET expires_at = :exp")
            .expression_attribute_values(":w", n(weight))
            .expression_attribute_values(":exp", n(WeightCounter::expires_at_s(window_start_ms)))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store_err("dynamodb", "UpdateItem (add_weight)", &self.requests_table, e))?;
        let counter: WeightCounter = from_item(&out.attributes.unwrap_or_default())
            .map_err(|e| bad_item("weight counter", &self.requests_table, e))?;
        Ok(counter.weight.min(u64::from(u32::MAX)) as u32)
    }
}
