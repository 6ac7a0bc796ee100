//! Conditional writes: a failed condition is an outcome, never an error; owner-checked updates of
//! a job; transactions retried while other transactions conflict with them.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use pipai_service::ports::StoreError;

use super::items::{from_item, JobState};
use super::DynamoStore;
use crate::error::{bad_item, store_err};
use crate::item::{s, Item};
use crate::jitter;

/// Attempts of a transaction that keeps being cancelled by conflicting transactions.
const TRANSACTION_ATTEMPTS: u32 = 12;

/// A transaction item's cancellation reason when its condition failed.
pub(super) const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// What a conditional write did.
pub(super) enum Conditional<T> {
    Written(T),
    /// The condition failed; the item as it was, when the request asked for it
    /// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) and the service returned it.
    Refused(Option<Item>),
}

impl<T> Conditional<T> {
    pub(super) fn written(&self) -> bool {
        matches!(self, Conditional::Written(_))
    }
}

/// An operation error that may be a failed condition.
pub(super) trait ConditionError: std::error::Error + 'static {
    /// `Some(item as it was)` when the error is a failed condition.
    fn refused(&self) -> Option<Option<&Item>>;
}

impl ConditionError for PutItemError {
    fn refused(&self) -> Option<Option<&Item>> {
        match self {
            PutItemError::ConditionalCheckFailedException(c) => Some(c.item()),
            _ => None,
        }
    }
}

impl ConditionError for DeleteItemError {
    fn refused(&self) -> Option<Option<&Item>> {
        match self {
            DeleteItemError::ConditionalCheckFailedException(c) => Some(c.item()),
            _ => None,
        }
    }
}

impl ConditionError for UpdateItemError {
    fn refused(&self) -> Option<Option<&Item>> {
        match self {
            UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item()),
            _ => None,
        }
    }
}

/// A conditional PutItem's or UpdateItem's result: a failed condition becomes
/// [`Conditional::Refused`], any other failure a [`StoreError`] about `operation` on `table`.
pub(super) fn conditional<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    operation: &str,
    table: &str,
) -> Result<Conditional<T>, StoreError>
where
    E: ConditionError + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Conditional::Written(out)),
        Err(e) => match e.as_service_error().and_then(ConditionError::refused) {
            Some(old) => Ok(Conditional::Refused(old.cloned())),
            None => Err(store_err("dynamodb", operation, table, e)),
        },
    }
}

/// An owner-checked update of a job.
pub(super) enum Transition {
    /// The job as written.
    Updated(Item),
    /// The condition failed: the job as it was (`None`: no such job).
    Refused(Option<JobState>),
}

impl DynamoStore {
    /// The job a refused write found: the item the service returned, or (not every DynamoDB
    /// implementation returns it) the item read now.
    pub(super) async fn job_as_refused(&self, id: &str, old: Option<Item>) -> Result<Option<Item>, StoreError> {
        match old {
            Some(item) => Ok(Some(item)),
            None => self.get_job_item(id).await,
        }
    }

    pub(super) fn job_state(&self, item: &Item) -> Result<JobState, StoreError> {
        from_item(item).map_err(|e| bad_item("job", &self.jobs_table, e))
    }

    /// A conditional update of job `id` built by `build(owner)`, which must include
    /// `user_id = :u` in its condition (`:u` is bound to the owner here).
    pub(super) async fn transition(
        &self,
        id: &str,
        op: &str,
        build: impl Fn(&str) -> UpdateItemFluentBuilder,
    ) -> Result<Transition, StoreError> {
        let mut owner = self.cached_owner(id);
        for _ in 0..4 {
            let user = match owner.take() {
                Some(u) => u,
                None => match self.get_job_item(id).await? {
                    None => return Ok(Transition::Refused(None)),
                    Some(item) => self.job_state(&item)?.user_id,
                },
            };
            let result = build(&user)
                .table_name(&self.jobs_table)
                .key("job_id", s(id))
                .expression_attribute_values(":u", s(&user))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let old = match conditional(result, &format!("UpdateItem ({op})"), &self.jobs_table)? {
                Conditional::Written(out) => {
                    self.remember_owner(id, &user);
                    return Ok(Transition::Updated(out.attributes.unwrap_or_default()));
                }
                Conditional::Refused(old) => old,
            };
            let Some(item) = self.job_as_refused(id, old).await? else {
                self.forget_owner(id);
                return Ok(Transition::Refused(None));
            };
            let current = self.job_state(&item)?;
            if current.user_id != user {
                // The cached owner was wrong (an id reused after its TTL): try again.
                self.remember_owner(id, &current.user_id);
                owner = Some(current.user_id);
                continue;
            }
            return Ok(Transition::Refused(Some(current)));
        }
        Err(StoreError::new(format!(
            "dynamodb UpdateItem ({op}) on {}: job {id} changed owner repeatedly",
            self.jobs_table
        )))
    }

    /// Runs a transaction on the jobs and users tables, retrying cancellations caused by
    /// conflicting transactions. `Ok(None)`: committed. `Ok(Some(codes))`: cancelled, with each
    /// item's reason code (`"None"`, [`CONDITION_FAILED`], ...; empty when the service gave none).
    pub(super) async fn transact(
        &self,
        op: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let result = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let err = match result {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            let retry = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    let codes: Vec<String> =
                        c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_string()).collect();
                    let transient = codes.iter().any(|c| {
                        matches!(
                            c.as_str(),
                            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                        )
                    });
                    if !transient {
                        return Ok(Some(codes));
                    }
                    true
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
                _ => false,
            };
            if !retry {
                return Err(store_err("dynamodb", &format!("TransactWriteItems ({op})"), &self.slot_tables(), err));
            }
            let cap = 10u64 << attempt.min(6);
            tokio::time::sleep(Duration::from_millis(2 + jitter() % cap)).await;
        }
        Err(StoreError::new(format!(
            "dynamodb TransactWriteItems ({op}) on {}: still conflicting with other transactions after {TRANSACTION_ATTEMPTS} attempts",
            self.slot_tables()
        )))
    }

    /// The tables a transaction writes, for messages.
    pub(super) fn slot_tables(&self) -> String {
        format!("{} + {}", self.jobs_table, self.users_table)
    }

    /// A transaction cancelled for reasons that are not the outcomes `op` knows.
    pub(super) fn unexpected_cancel(&self, op: &str, codes: &[String]) -> StoreError {
        StoreError::new(format!(
            "dynamodb TransactWriteItems ({op}) on {}: cancelled for reasons {codes:?}",
            self.slot_tables()
        ))
    }
}

/// A request that failed to build (a missing required field: a bug here).
pub(super) fn build_err(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("dynamodb: could not build {what}: {e}"))
}
