//! The job service's domain: jobs, their states and errors, API keys.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use pipai_engine::result::{Metrics, StructuredMetrics, Summary};
use pipai_engine::time::iso;
use pipai_engine::{BacktestResult, JobConfig, StrategyConfig};

use crate::ids::{JobId, KeyId, RunToken, StrategyId, UserId};
use crate::notifier::{NotificationRecord, NotificationView};
use crate::webhook::NotifyUrl;

/// A user may have at most this many jobs queued or running (seed 003: 429 on the 6th).
pub const MAX_ACTIVE_JOBS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Queued, JobStatus::Running, JobStatus::Done, JobStatus::Failed, JobStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// `done`, `failed` and `cancelled` never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}; use one of queued, running, done, failed, cancelled"))
    }
}

/// Why a job failed: its `error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailCode {
    /// The bars for the window are missing or unusable.
    DataUnavailable,
    /// The engine rejected the run.
    SimulationError,
    /// The run did not finish within the worker's time limit.
    Timeout,
    /// Every delivery attempt failed (the message went to the dead-letter queue).
    Internal,
}

/// A failed job's `error`: `{code, message}`, the shape of every API error too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: FailCode,
    pub message: String,
}

impl JobError {
    pub fn new(code: FailCode, message: impl Into<String>) -> Self {
        JobError { code, message: message.into() }
    }
}

/// What a done job keeps beside its stored arrays: the metrics and the run's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultSummary {
    pub metrics: Metrics,
    pub structured_metrics: StructuredMetrics,
    pub summary: Summary,
}

impl ResultSummary {
    pub fn of(result: &BacktestResult) -> ResultSummary {
        ResultSummary {
            metrics: result.metrics.clone(),
            structured_metrics: result.structured_metrics.clone(),
            summary: result.summary.clone(),
        }
    }
}

/// A job as stored. Times are UTC milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub user_id: UserId,
    pub status: JobStatus,
    /// The resolved config the job runs with, as the API echoes it.
    pub config: JobConfig,
    pub submitted_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub progress: f64,
    pub error: Option<JobError>,
    /// The metrics and summary of a done job; the arrays live in the result store.
    pub summary: Option<ResultSummary>,
    /// The worker run that holds the job while it is running, and until when.
    pub run_token: Option<RunToken>,
    pub lease_until_ms: Option<i64>,
    pub attempts: u32,
    /// Set once the user's active-job slot has been given back (exactly once per job).
    pub slot_released: bool,
    /// The version of the strategy the job was made from (`config.strategy_id`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy_version: Option<u32>,
    /// Completion webhook: where, which key signs, and the deliveries so far.
    #[serde(default, flatten)]
    pub webhook: JobWebhook,
}

/// A job's (or a sweep's) completion webhook (docs/webhooks.md): kept beside the config, never
/// in it, so `config` (and its provenance hash) is the same with or without one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobWebhook {
    pub notify_url: Option<NotifyUrl>,
    /// The key that created the job (or sweep): its secret signs the deliveries.
    pub key_id: Option<KeyId>,
    pub notifications: Vec<NotificationRecord>,
}

impl JobRecord {
    pub fn new_queued(id: JobId, user_id: UserId, config: JobConfig, now_ms: i64) -> Self {
        JobRecord {
            id,
            user_id,
            status: JobStatus::Queued,
            config,
            submitted_at_ms: now_ms,
            started_at_ms: None,
            finished_at_ms: None,
            progress: 0.0,
            error: None,
            summary: None,
            run_token: None,
            lease_until_ms: None,
            attempts: 0,
            slot_released: false,
            strategy_version: None,
            webhook: JobWebhook::default(),
        }
    }

    pub fn template_id(&self) -> &str {
        &self.config.template_id
    }

    /// The job object of seeds 001-003 with `result` as given (full, paged or summary form).
    pub fn view<R: Serialize>(&self, result: Option<R>) -> JobView<'_, R> {
        JobView {
            id: &self.id,
            status: self.status,
            config: &self.config,
            submitted_at: iso(self.submitted_at_ms),
            started_at: self.started_at_ms.map(iso),
            finished_at: self.finished_at_ms.map(iso),
            progress: round_progress(self.progress),
            result,
            error: self.error.as_ref(),
            strategy_version: self.strategy_version,
            notify_url: self.webhook.notify_url.as_ref(),
            notifications: self.webhook.notify_url.as_ref().map(|_| NotificationView::all(&self.webhook.notifications)),
        }
    }

    /// The list endpoint's form: `result` holds the metrics only.
    pub fn summary_view(&self) -> JobView<'_, MetricsView<'_>> {
        let result = match (self.status, &self.summary) {
            (JobStatus::Done, Some(s)) => {
                Some(MetricsView { metrics: &s.metrics, structured_metrics: &s.structured_metrics })
            }
            _ => None,
        };
        self.view(result)
    }
}

/// A job as the API shows it.
#[derive(Debug, Serialize)]
pub struct JobView<'a, R> {
    pub id: &'a JobId,
    pub status: JobStatus,
    pub config: &'a JobConfig,
    pub submitted_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub progress: f64,
    pub result: Option<R>,
    pub error: Option<&'a JobError>,
    /// Only on jobs made from a strategy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy_version: Option<u32>,
    /// Only on jobs created with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<&'a NotifyUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<NotificationView<'a>>>,
}

/// The `result` of a job in the list's summary form.
#[derive(Debug, Serialize)]
pub struct MetricsView<'a> {
    pub metrics: &'a Metrics,
    pub structured_metrics: &'a StructuredMetrics,
}

/// One page of a listing: `{data, next_cursor}`.
#[derive(Debug, Serialize)]
pub struct ListPage<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Progress as the API shows it: 4 decimals, `1.0` when done.
fn round_progress(p: f64) -> f64 {
    (p.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Disabled,
}

/// An API key as stored: the secret only encrypted (see `secrets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: KeyId,
    pub user_id: UserId,
    pub secret_ciphertext: String,
    pub status: KeyStatus,
    pub created_at_ms: i64,
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_and_know_terminality() {
        assert_eq!("done".parse::<JobStatus>().unwrap(), JobStatus::Done);
        assert!("finished".parse::<JobStatus>().is_err());
        assert!(JobStatus::Cancelled.is_terminal() && !JobStatus::Running.is_terminal());
    }
}

/// The body of a jobs-queue message: `{"job_id": "bt_3c91ef"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    pub job_id: JobId,
}

impl QueueMessage {
    pub fn body(job_id: &JobId) -> String {
        serde_json::to_string(&QueueMessage { job_id: job_id.clone() }).expect("serializes")
    }

    /// The job id of a message body, if it is one of ours.
    pub fn job_id_of(body: &str) -> Option<JobId> {
        serde_json::from_str::<QueueMessage>(body).ok().map(|m| m.job_id)
    }
}

/// A stored strategy (`/v1/strategies`). Times are UTC milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyRecord {
    pub id: StrategyId,
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    /// 1 when created, + 1 on every update.
    pub version: u32,
    pub config: StrategyConfig,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl StrategyRecord {
    /// The strategy as the API shows it.
    pub fn view(&self) -> StrategyView<'_> {
        StrategyView {
            id: &self.id,
            name: &self.name,
            description: self.description.as_deref(),
            version: self.version,
            config: &self.config,
            created_at: iso(self.created_at_ms),
            updated_at: iso(self.updated_at_ms),
        }
    }
}

/// A strategy as the API shows it.
#[derive(Debug, Serialize)]
pub struct StrategyView<'a> {
    pub id: &'a StrategyId,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub version: u32,
    pub config: &'a StrategyConfig,
    pub created_at: String,
    pub updated_at: String,
}
