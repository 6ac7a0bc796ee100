//! The users' active-job counters: a job takes a slot when it is created and gives it back once
//! it is terminal, each in one transaction with the job's own write.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use pipai_service::model::{JobRecord, JobStatus};
use pipai_service::ports::{CreateOutcome, StoreError};
use pipai_service::UserId;

use super::items::{to_item, JobItem};
use super::transact::{build_err, conditional, CONDITION_FAILED};
use super::DynamoStore;
use crate::item::{b, n, s};

impl DynamoStore {
    /// The counter increment that takes one of the user's `max_active` slots (jobs and sweeps).
    pub(super) fn take_slot(&self, user_id: &UserId, max_active: u32) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(&self.users_table)
            .key("user_id", s(user_id))
            .update_expression("SET active_jobs = if_not_exists(active_jobs, :zero) + :one")
            .condition_expression("attribute_not_exists(active_jobs) OR active_jobs < :max")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max_active))
            .build()
            .map_err(|e| build_err("Update", e))
    }

    /// Puts the new job and takes one of its owner's `max_active` slots, in one transaction.
    pub(super) async fn create_taking_slot(
        &self,
        job: &JobRecord,
        max_active: u32,
    ) -> Result<CreateOutcome, StoreError> {
        let item = JobItem::new(job, self.retention)
            .and_then(|item| to_item(&item))
            .map_err(|e| StoreError::new(format!("job {}: {e}", job.id)))?;
        let put = Put::builder()
            .table_name(&self.jobs_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(job_id)")
            .build()
            .map_err(|e| build_err("Put", e))?;
        let take_slot = self.take_slot(&job.user_id, max_active)?;
        let items =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(take_slot).build()];
        let Some(codes) = self.transact("create_job", items).await? else {
            self.remember_owner(job.id.as_str(), job.user_id.as_str());
            return Ok(CreateOutcome::Created);
        };
        let code = |i: usize| codes.get(i).map(String::as_str);
        if code(0) == Some(CONDITION_FAILED) {
            return Ok(CreateOutcome::IdTaken);
        }
        if code(1) == Some(CONDITION_FAILED) {
            return Ok(CreateOutcome::TooManyActive);
        }
        if codes.is_empty() {
            // No reasons given: tell the two conditions apart by reading.
            if self.get_job_item(job.id.as_str()).await?.is_some() {
                return Ok(CreateOutcome::IdTaken);
            }
            if self.active_jobs(&job.user_id).await? >= max_active {
                return Ok(CreateOutcome::TooManyActive);
            }
        }
        Err(self.unexpected_cancel("create_job", &codes))
    }

    /// The counter decrement that gives one slot back (never below 0: the condition fails then).
    pub(super) fn slot_back(&self, user_id: impl AsRef<str>) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(&self.users_table)
            .key("user_id", s(user_id))
            .update_expression("SET active_jobs = active_jobs - :one")
            .condition_expression("active_jobs > :zero")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(|e| build_err("Update", e))
    }

    /// Marks terminal job `id` `slot_released` and gives its owner's slot back, once.
    pub(super) async fn give_slot_back(&self, id: &str, user_id: &str) -> Result<bool, StoreError> {
        let flag_condition = "user_id = :u AND #status IN (:done, :failed, :cancelled) \
                              AND (attribute_not_exists(slot_released) OR slot_released = :false)";
        // One set of values for the flag update, in the transaction and in the fallback below.
        let flag_values: HashMap<String, AttributeValue> = [
            (":u", s(user_id)),
            (":done", s(JobStatus::Done.as_str())),
            (":failed", s(JobStatus::Failed.as_str())),
            (":cancelled", s(JobStatus::Cancelled.as_str())),
            (":true", b(true)),
            (":false", b(false)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let flag = Update::builder()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .update_expression("SET slot_released = :true")
            .condition_expression(flag_condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(flag_values.clone()))
            .build()
            .map_err(|e| build_err("Update", e))?;
        let give_back = self.slot_back(user_id)?;
        let items = vec![
            TransactWriteItem::builder().update(flag).build(),
            TransactWriteItem::builder().update(give_back).build(),
        ];
        let Some(codes) = self.transact("release_slot", items).await? else { return Ok(true) };
        let job_failed = codes.first().map(String::as_str) == Some(CONDITION_FAILED);
        let counter_failed = codes.get(1).map(String::as_str) == Some(CONDITION_FAILED);
        if job_failed {
            return Ok(false);
        }
        if codes.is_empty() {
            // No reasons given: the job's condition is by far the likelier one.
            tracing::warn!(
                job_id = id,
                "release_slot: transaction cancelled without reasons; treating the slot as released"
            );
            return Ok(false);
        }
        if !counter_failed {
            return Err(self.unexpected_cancel("release_slot", &codes));
        }
        // The counter is already 0 (it drifted): still mark the job, so this happens once.
        let result = self
            .client
            .update_item()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .update_expression("SET slot_released = :true")
            .condition_expression(flag_condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(flag_values))
            .send()
            .await;
        let marked = conditional(result, "UpdateItem (release_slot)", &self.jobs_table)?.written();
        if marked {
            tracing::warn!(
                job_id = id,
                user_id,
                "release_slot: the user's active_jobs was already 0; marked the job released only"
            );
        }
        Ok(marked)
    }
}
