//! The job service's domain: jobs, their states and errors, API keys.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;
use std::str::FromStr;

use pipai_engine::time::iso;

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

/// A failed job's `error`, and the body of every API error: `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

impl JobError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        JobError { code: code.to_string(), message: message.into() }
    }
}

/// Codes a job can fail with.
pub mod fail_codes {
    /// The bars for the window are missing or unusable.
    pub const DATA_UNAVAILABLE: &str = "DATA_UNAVAILABLE";
    /// The engine rejected the run (a config that no longer validates, say).
    pub const SIMULATION_ERROR: &str = "SIMULATION_ERROR";
    /// The run did not finish within the worker's time limit.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// Every delivery attempt failed (the message went to the dead-letter queue).
    pub const INTERNAL: &str = "INTERNAL";
}

/// A job as stored. Times are UTC milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub user_id: String,
    pub status: JobStatus,
    pub template_id: String,
    /// The resolved config, as the API echoes it (`JobConfig` serialized).
    pub config: Value,
    pub submitted_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub progress: f64,
    pub error: Option<JobError>,
    /// `{metrics, structured_metrics, summary}` of a done job; the arrays live in the result store.
    pub summary: Option<Value>,
    /// The worker run that holds the job while it is running, and until when.
    pub run_token: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub attempts: u32,
    /// Set once the user's active-job slot has been given back (exactly once per job).
    pub slot_released: bool,
}

impl JobRecord {
    pub fn new_queued(id: String, user_id: String, config: Value, template_id: String, now_ms: i64) -> Self {
        JobRecord {
            id,
            user_id,
            status: JobStatus::Queued,
            template_id,
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
        }
    }

    /// The job object of seeds 001-003. `result` is built by the caller (full or summary form).
    pub fn to_api(&self, result: Option<Value>) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "config": self.config,
            "submitted_at": iso(self.submitted_at_ms),
            "started_at": self.started_at_ms.map(iso),
            "finished_at": self.finished_at_ms.map(iso),
            "progress": round_progress(self.progress),
            "result": result,
            "error": self.error,
        })
    }

    /// The list endpoint's summary form: `result` holds the metrics only.
    pub fn to_api_summary(&self) -> Value {
        let result = match (&self.status, &self.summary) {
            (JobStatus::Done, Some(s)) => Some(json!({
                "metrics": s["metrics"],
                "structured_metrics": s["structured_metrics"],
            })),
            _ => None,
        };
        self.to_api(result)
    }
}

/// Progress as the API shows it: 4 decimals, `1.0` when done.
fn round_progress(p: f64) -> f64 {
    (p.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0
}

/// A new job id: `bt_` + 8 lowercase hex from the OS's random source.
pub fn new_job_id() -> String {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).expect("the OS random source works");
    format!("bt_{}", hex::encode(bytes))
}

/// A job id the API accepts: `bt_` + 6 to 8 lowercase hex.
pub fn is_job_id(s: &str) -> bool {
    s.strip_prefix("bt_").is_some_and(|h| {
        (6..=8).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
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
    pub key_id: String,
    pub user_id: String,
    pub secret_ciphertext: String,
    pub status: KeyStatus,
    pub created_at_ms: i64,
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape() {
        for _ in 0..100 {
            let id = new_job_id();
            assert!(is_job_id(&id), "{id}");
            assert_eq!(id.len(), 11);
        }
        assert!(is_job_id("bt_3c91ef"));
        assert!(!is_job_id("bt_3C91EF"));
        assert!(!is_job_id("bt_3c91e"));
        assert!(!is_job_id("xx_3c91ef"));
        assert!(!is_job_id("bt_3c91ef001"));
    }

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
    pub job_id: String,
}

impl QueueMessage {
    pub fn body(job_id: &str) -> String {
        serde_json::to_string(&QueueMessage { job_id: job_id.to_string() }).expect("serializes")
    }

    /// The job id of a message body, if it is one of ours.
    pub fn job_id_of(body: &str) -> Option<String> {
        serde_json::from_str::<QueueMessage>(body).ok().map(|m| m.job_id).filter(|id| is_job_id(id))
    }
}
