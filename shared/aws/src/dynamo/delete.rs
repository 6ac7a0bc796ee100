//! Deleting a terminal job (one conditional DeleteItem) and reading several jobs at once
//! (BatchGetItem): `DELETE /v1/backtest/jobs/{id}` and `POST /v1/backtest/compare`.

use std::time::Duration;

use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValuesOnConditionCheckFailure};
use pipai_service::model::{JobRecord, JobStatus};
use pipai_service::ports::{DeleteOutcome, StoreError};
use pipai_service::JobId;

use super::transact::{conditional, Conditional};
use super::DynamoStore;
use crate::error::store_err;
use crate::item::{b, s, Item};
use crate::jitter;

/// BatchGetItem takes at most this many keys per request.
const BATCH_GET_MAX: usize = 100;
/// Rounds of a batch read whose keys keep coming back unprocessed (throttling).
const BATCH_GET_ATTEMPTS: u32 = 8;

impl DynamoStore {
    /// Deletes job `id` if it is `user_id`'s, terminal and its slot was given back. The delete
    /// removes the item from every index with it.
    pub(super) async fn delete_terminal(&self, id: &str, user_id: &str) -> Result<DeleteOutcome, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .condition_expression("user_id = :u AND #status IN (:done, :failed, :cancelled) AND slot_released = :true")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":u", s(user_id))
            .expression_attribute_values(":done", s(JobStatus::Done.as_str()))
            .expression_attribute_values(":failed", s(JobStatus::Failed.as_str()))
            .expression_attribute_values(":cancelled", s(JobStatus::Cancelled.as_str()))
            .expression_attribute_values(":true", b(true))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match conditional(result, "DeleteItem (delete_job)", &self.jobs_table)? {
            Conditional::Written(_) => {
                self.forget_owner(id);
                return Ok(DeleteOutcome::Deleted);
            }
            Conditional::Refused(old) => old,
        };
        let Some(item) = self.job_as_refused(id, old).await? else { return Ok(DeleteOutcome::NotFound) };
        let job = self.parse_job(&item)?;
        if job.user_id.as_str() != user_id {
            return Ok(DeleteOutcome::NotFound);
        }
        if !job.status.is_terminal() {
            return Ok(DeleteOutcome::NotTerminal(job.status));
        }
        if !job.slot_released {
            return Ok(DeleteOutcome::SlotHeld);
        }
        Err(StoreError::new(format!(
            "dynamodb DeleteItem (delete_job) on {}: condition failed although job {id} is {} with its slot released",
            self.jobs_table, job.status
        )))
    }

    /// The jobs among `ids` that exist (strongly consistent; `ids` distinct, as BatchGetItem requires).
    pub(super) async fn batch_get_jobs(&self, ids: &[JobId]) -> Result<Vec<JobRecord>, StoreError> {
        let mut items: Vec<Item> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let keys = chunk.iter().map(|id| Item::from([("job_id".to_string(), s(id.as_str()))])).collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| super::transact::build_err("KeysAndAttributes", e))?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                if attempt == BATCH_GET_ATTEMPTS {
                    return Err(StoreError::new(format!(
                        "dynamodb BatchGetItem on {}: keys still unprocessed after {BATCH_GET_ATTEMPTS} rounds",
                        self.jobs_table
                    )));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(5 + jitter() % (20u64 << attempt.min(5)))).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.jobs_table, request)
                    .send()
                    .await
                    .map_err(|e| store_err("dynamodb", "BatchGetItem", &self.jobs_table, e))?;
                if let Some(mut found) = out.responses {
                    items.extend(found.remove(&self.jobs_table).unwrap_or_default());
                }
                pending =
                    out.unprocessed_keys.and_then(|mut u| u.remove(&self.jobs_table)).filter(|k| !k.keys().is_empty());
            }
        }
        items.iter().map(|item| self.parse_job(item)).collect()
    }
}
