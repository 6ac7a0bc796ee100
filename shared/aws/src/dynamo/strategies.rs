//! [`StrategyStore`] on the strategies table: one conditional write per change. An update is a
//! PutItem of the whole new item on condition that the stored item is the owner's at the
//! version the update was made from (`user_id = :u AND version = :v`), so of two concurrent
//! updates exactly one is written and the other learns `VersionConflict` (the item as it was
//! comes back with the failed condition, which tells a conflict from a missing strategy).
//! The list is a Query of the `by_user_updated` GSI, newest `updated_key` first: never a Scan.

use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use pipai_service::model::StrategyRecord;
use pipai_service::ports::{
    StoreError, StrategyCreateOutcome, StrategyDeleteOutcome, StrategyListQuery, StrategyStore, StrategyUpdateOutcome,
};
use pipai_service::{StrategyId, UserId};

use super::items::{from_item, to_item, updated_key, StrategyItem, StrategyState, MAX_KEY_MS};
use super::transact::{conditional, Conditional};
use super::DynamoStore;
use crate::error::{bad_item, store_err};
use crate::item::{n, s, Item};

/// The GSI the list reads.
const BY_USER_UPDATED: &str = "by_user_updated";

impl DynamoStore {
    fn parse_strategy(&self, item: &Item) -> Result<StrategyRecord, StoreError> {
        from_item::<StrategyItem>(item).and_then(StrategyRecord::try_from).map_err(|e| {
            let id = item.get("strategy_id").and_then(|v| v.as_s().ok()).map_or("?", String::as_str);
            bad_item("strategy", &self.strategies_table, format!("strategy {id}: {e}"))
        })
    }

    fn strategy_item(&self, strategy: &StrategyRecord) -> Result<Item, StoreError> {
        StrategyItem::new(strategy)
            .and_then(|i| to_item(&i))
            .map_err(|e| StoreError::new(format!("strategy {}: {e}", strategy.id)))
    }

    /// Whether a refused write's item (as it was) belongs to `user_id`.
    fn owned_by(&self, old: Option<&Item>, user_id: &str) -> Result<bool, StoreError> {
        match old {
            None => Ok(false),
            Some(item) => {
                let state: StrategyState =
                    from_item(item).map_err(|e| bad_item("strategy", &self.strategies_table, e))?;
                Ok(state.user_id == user_id)
            }
        }
    }
}

impl StrategyStore for DynamoStore {
    async fn create_strategy(&self, strategy: &StrategyRecord) -> Result<StrategyCreateOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.strategies_table)
            .set_item(Some(self.strategy_item(strategy)?))
            .condition_expression("attribute_not_exists(strategy_id)")
            .send()
            .await;
        Ok(match conditional(result, "PutItem (create_strategy)", &self.strategies_table)? {
            Conditional::Written(_) => StrategyCreateOutcome::Created,
            Conditional::Refused(_) => StrategyCreateOutcome::IdTaken,
        })
    }

    async fn get_strategy(&self, id: &StrategyId) -> Result<Option<StrategyRecord>, StoreError> {
        let item = self.get_item_by(&self.strategies_table, "strategy_id", id.as_str()).await?;
        item.map(|item| self.parse_strategy(&item)).transpose()
    }

    async fn list_strategies(&self, q: &StrategyListQuery) -> Result<Vec<StrategyRecord>, StoreError> {
        let mut out = Vec::new();
        if q.limit == 0 {
            return Ok(out);
        }
        let hi = match &q.after {
            Some(a) if a.updated_at_ms < 0 => return Ok(out),
            Some(a) => Some(updated_key(a.updated_at_ms.min(MAX_KEY_MS), a.id.as_str())),
            None => None,
        };
        let mut start: Option<Item> = None;
        loop {
            let want = (q.limit - out.len()).min(1000) as i32;
            let mut req = self
                .client
                .query()
                .table_name(&self.strategies_table)
                .index_name(BY_USER_UPDATED)
                .scan_index_forward(false)
                .limit(want)
                .set_exclusive_start_key(start)
                .expression_attribute_values(":u", s(q.user_id.as_str()));
            req = match &hi {
                Some(hi) => req
                    .key_condition_expression("user_id = :u AND updated_key < :hi")
                    .expression_attribute_values(":hi", s(hi)),
                None => req.key_condition_expression("user_id = :u"),
            };
            let page = req
                .send()
                .await
                .map_err(|e| store_err("dynamodb", &format!("Query {BY_USER_UPDATED}"), &self.strategies_table, e))?;
            for item in page.items() {
                out.push(self.parse_strategy(item)?);
                if out.len() == q.limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn update_strategy(&self, updated: &StrategyRecord) -> Result<StrategyUpdateOutcome, StoreError> {
        let user = updated.user_id.as_str();
        let result = self
            .client
            .put_item()
            .table_name(&self.strategies_table)
            .set_item(Some(self.strategy_item(updated)?))
            .condition_expression("user_id = :u AND version = :v")
            .expression_attribute_values(":u", s(user))
            .expression_attribute_values(":v", n(updated.version.saturating_sub(1)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match conditional(result, "PutItem (update_strategy)", &self.strategies_table)? {
            Conditional::Written(_) => StrategyUpdateOutcome::Updated,
            Conditional::Refused(old) if self.owned_by(old.as_ref(), user)? => StrategyUpdateOutcome::VersionConflict,
            Conditional::Refused(_) => StrategyUpdateOutcome::NotFound,
        })
    }

    async fn delete_strategy(&self, id: &StrategyId, user_id: &UserId) -> Result<StrategyDeleteOutcome, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.strategies_table)
            .key("strategy_id", s(id.as_str()))
            .condition_expression("user_id = :u")
            .expression_attribute_values(":u", s(user_id.as_str()))
            .send()
            .await;
        Ok(match conditional(result, "DeleteItem (delete_strategy)", &self.strategies_table)? {
            Conditional::Written(_) => StrategyDeleteOutcome::Deleted,
            Conditional::Refused(_) => StrategyDeleteOutcome::NotFound,
        })
    }
}
