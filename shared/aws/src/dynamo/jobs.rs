//! [`JobStore`] on the jobs table: each state change is one conditional write (see the module
//! docs of `dynamo`); creating a job and giving its slot back are in `slots`, listing in `list`.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use pipai_service::model::{JobError, JobRecord, JobStatus};
use pipai_service::ports::{
    AbandonOutcome, CancelOutcome, ClaimOutcome, Completion, CreateOutcome, DeleteOutcome, JobStore, ListQuery,
    StoreError,
};
use pipai_service::{JobId, RunToken, UserId};

use super::items::{json_text, progress_text, to_attr, user_status};
use super::transact::{conditional, Conditional, Transition};
use super::DynamoStore;
use crate::item::{n, s};

/// A job a run may take (or fail as abandoned): queued, or running under an expired lease.
const UNHELD: &str = "user_id = :u AND (#status = :queued OR (#status = :running AND \
                      (attribute_not_exists(lease_until) OR lease_until <= :now)))";

/// Fails the job with `:err` (bound by [`DynamoStore::failing`]).
const FAIL: &str =
    "SET #status = :st, user_status = :us, #error = :err, finished_at = :now, expires_at = :exp REMOVE lease_until";

impl DynamoStore {
    /// `req` with the values of a move to terminal `status` at `now_ms`: `#status`, `:st`, `:us`
    /// (the owner's `user_status`), `:now` and `:exp` (the job's expiry).
    fn finishing(
        &self,
        req: UpdateItemFluentBuilder,
        user: &str,
        status: JobStatus,
        now_ms: i64,
    ) -> UpdateItemFluentBuilder {
        req.expression_attribute_names("#status", "status")
            .expression_attribute_values(":st", s(status.as_str()))
            .expression_attribute_values(":us", s(user_status(user, status)))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":exp", n(self.retention.expires_at_s(now_ms)))
    }

    /// `req` failing the job with `error` (its condition is the caller's).
    fn failing(
        &self,
        req: UpdateItemFluentBuilder,
        user: &str,
        error: &AttributeValue,
        now_ms: i64,
    ) -> UpdateItemFluentBuilder {
        self.finishing(req, user, JobStatus::Failed, now_ms)
            .update_expression(FAIL)
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":err", error.clone())
    }

    /// `req` with the statuses [`UNHELD`] names.
    fn unheld(req: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        req.condition_expression(UNHELD)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
            .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
    }

    fn error_attr(&self, id: &str, error: &JobError) -> Result<AttributeValue, StoreError> {
        to_attr(error).map_err(|e| StoreError::new(format!("job {id}: error: {e}")))
    }
}

impl JobStore for DynamoStore {
    async fn create_job(&self, job: &JobRecord, max_active: u32) -> Result<CreateOutcome, StoreError> {
        self.create_taking_slot(job, max_active).await
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let id = id.as_str();
        match self.get_job_item(id).await? {
            None => Ok(None),
            Some(item) => self.parse_job(&item).map(Some),
        }
    }

    async fn list_jobs(&self, q: &ListQuery) -> Result<Vec<JobRecord>, StoreError> {
        self.list(q).await
    }

    async fn cancel_job(&self, id: &JobId, user_id: &UserId, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        let (id, user_id) = (id.as_str(), user_id.as_str());
        let req = self
            .client
            .update_item()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .update_expression("SET #status = :st, user_status = :us, finished_at = :now, expires_at = :exp")
            .condition_expression("user_id = :u AND #status IN (:queued, :running)")
            .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
            .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
            .expression_attribute_values(":u", s(user_id))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let result = self.finishing(req, user_id, JobStatus::Cancelled, now_ms).send().await;
        let old = match conditional(result, "UpdateItem (cancel_job)", &self.jobs_table)? {
            Conditional::Written(out) => {
                let job = self.parse_job(&out.attributes.unwrap_or_default())?;
                return Ok(CancelOutcome::Cancelled(Box::new(job)));
            }
            Conditional::Refused(old) => old,
        };
        let Some(item) = self.job_as_refused(id, old).await? else { return Ok(CancelOutcome::NotFound) };
        let job = self.job_state(&item)?;
        if job.user_id.as_str() != user_id {
            return Ok(CancelOutcome::NotFound);
        }
        if job.status.is_terminal() {
            return Ok(CancelOutcome::AlreadyTerminal(job.status));
        }
        Err(StoreError::new(format!(
            "dynamodb UpdateItem (cancel_job) on {}: condition failed although job {id} is {}",
            self.jobs_table, job.status
        )))
    }

    async fn claim_job(
        &self,
        id: &JobId,
        token: &RunToken,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<ClaimOutcome, StoreError> {
        let (id, token) = (id.as_str(), token.as_str());
        for _ in 0..3 {
            let transition = self
                .transition(id, "claim_job", |user| {
                    Self::unheld(self.client.update_item())
                        .update_expression(
                            "SET #status = :running, user_status = :us, started_at = if_not_exists(started_at, :now), \
                             run_token = :token, lease_until = :lease, attempts = if_not_exists(attempts, :zero) + :one",
                        )
                        .expression_attribute_values(":us", s(user_status(user, JobStatus::Running)))
                        .expression_attribute_values(":now", n(now_ms))
                        .expression_attribute_values(":token", s(token))
                        .expression_attribute_values(":lease", n(now_ms.saturating_add(lease_ms)))
                        .expression_attribute_values(":zero", n(0))
                        .expression_attribute_values(":one", n(1))
                })
                .await?;
            match transition {
                Transition::Updated(item) => return Ok(ClaimOutcome::Claimed(Box::new(self.parse_job(&item)?))),
                Transition::Refused(None) => return Ok(ClaimOutcome::NotFound),
                Transition::Refused(Some(job)) => {
                    if job.status.is_terminal() {
                        return Ok(ClaimOutcome::Terminal(job.status));
                    }
                    if let Some(until_ms) = job.live_lease(now_ms) {
                        return Ok(ClaimOutcome::Leased { until_ms });
                    }
                    // Changed between the write and its evaluation: try again.
                }
            }
        }
        Err(StoreError::new(format!("dynamodb UpdateItem (claim_job) on {}: job {id} kept changing", self.jobs_table)))
    }

    async fn record_progress(
        &self,
        id: &JobId,
        token: &RunToken,
        progress: f64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let (id, token) = (id.as_str(), token.as_str());
        let result = self
            .client
            .update_item()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .update_expression("SET progress = :p, lease_until = :lease")
            .condition_expression("#status = :running AND run_token = :token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":p", AttributeValue::N(progress_text(progress)))
            .expression_attribute_values(":lease", n(now_ms.saturating_add(lease_ms)))
            .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        Ok(conditional(result, "UpdateItem (record_progress)", &self.jobs_table)?.written())
    }

    async fn complete_job(
        &self,
        id: &JobId,
        token: &RunToken,
        now_ms: i64,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        let (id, token) = (id.as_str(), token.as_str());
        /// The completion's stored values.
        enum Finish {
            Done { summary: String },
            Failed { error: AttributeValue },
        }
        let finish = match completion {
            Completion::Done { summary } => Finish::Done {
                summary: json_text("summary", summary).map_err(|e| StoreError::new(format!("job {id}: {e}")))?,
            },
            Completion::Failed(error) => Finish::Failed { error: self.error_attr(id, error)? },
        };
        let transition = self
            .transition(id, "complete_job", |user| {
                let req = self
                    .client
                    .update_item()
                    .condition_expression("user_id = :u AND #status = :running AND run_token = :token")
                    .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
                    .expression_attribute_values(":token", s(token));
                match &finish {
                    Finish::Failed { error } => self.failing(req, user, error, now_ms),
                    Finish::Done { summary } => self
                        .finishing(req, user, JobStatus::Done, now_ms)
                        .update_expression(
                            "SET #status = :st, user_status = :us, progress = :one, summary = :summary, \
                             finished_at = :now, expires_at = :exp REMOVE lease_until",
                        )
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":summary", s(summary)),
                }
            })
            .await?;
        Ok(matches!(transition, Transition::Updated(_)))
    }

    async fn fail_abandoned(&self, id: &JobId, now_ms: i64, error: &JobError) -> Result<AbandonOutcome, StoreError> {
        let id = id.as_str();
        let error = self.error_attr(id, error)?;
        for _ in 0..3 {
            let transition = self
                .transition(id, "fail_abandoned", |user| {
                    self.failing(Self::unheld(self.client.update_item()), user, &error, now_ms)
                })
                .await?;
            match transition {
                Transition::Updated(_) => return Ok(AbandonOutcome::Failed),
                Transition::Refused(None) => return Ok(AbandonOutcome::NotFound),
                Transition::Refused(Some(job)) => {
                    if job.status.is_terminal() {
                        return Ok(AbandonOutcome::AlreadyTerminal);
                    }
                    if let Some(until_ms) = job.live_lease(now_ms) {
                        return Ok(AbandonOutcome::StillLeased { until_ms });
                    }
                }
            }
        }
        Err(StoreError::new(format!(
            "dynamodb UpdateItem (fail_abandoned) on {}: job {id} kept changing",
            self.jobs_table
        )))
    }

    async fn release_slot(&self, id: &JobId, user_id: &UserId) -> Result<bool, StoreError> {
        let (id, user_id) = (id.as_str(), user_id.as_str());
        self.give_slot_back(id, user_id).await
    }
    async fn delete_job(&self, id: &JobId, user_id: &UserId) -> Result<DeleteOutcome, StoreError> {
        self.delete_terminal(id.as_str(), user_id.as_str()).await
    }

    async fn get_jobs(&self, ids: &[JobId]) -> Result<Vec<JobRecord>, StoreError> {
        self.batch_get_jobs(ids).await
    }
}
