//! The ports the service logic needs from storage and messaging. `pipai-aws` implements them on
//! DynamoDB, SQS and S3; `memory` implements them in memory for unit tests and the offline demo.
//!
//! Every method that changes a job is a single conditional write in the real store, so
//! concurrent callers (two API requests, a duplicate SQS delivery, a replayed stream record)
//! can never both win.

use std::future::Future;
use std::ops::Range;

use pipai_engine::{Bars, Timeframe};
use pipai_market_data::Coverage;

use crate::ids::{JobId, KeyId, RunToken, StrategyId, UserId};
use crate::model::{ApiKeyRecord, JobError, JobRecord, JobStatus, KeyStatus, ResultSummary, StrategyRecord};

/// The backend failed (network, throttling, a bug): retryable, never the user's fault.
/// `context` says what was being done where; the backend's own error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct StoreError {
    context: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A failure described by `context` alone (a malformed item, a retry budget spent).
    pub fn new(context: impl Into<String>) -> Self {
        StoreError { context: context.into(), source: None }
    }

    /// A failure of the backend call described by `context`, caused by `source`.
    pub fn caused_by(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError { context: context.into(), source: Some(Box::new(source)) }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created,
    /// Another job has this id (ids are random; the caller draws again).
    IdTaken,
    /// The user already has `max_active` jobs queued or running.
    TooManyActive,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    Cancelled(Box<JobRecord>),
    NotFound,
    AlreadyTerminal(JobStatus),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The job is now `running` under the caller's token.
    Claimed(Box<JobRecord>),
    /// Done, failed or cancelled: nothing to do.
    Terminal(JobStatus),
    /// Another run holds a live lease until this time.
    Leased {
        until_ms: i64,
    },
    NotFound,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// The result's arrays are stored; the job keeps its metrics and summary.
    Done {
        summary: Box<ResultSummary>,
    },
    Failed(JobError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AbandonOutcome {
    Failed,
    AlreadyTerminal,
    StillLeased { until_ms: i64 },
    NotFound,
}

// ---- Deleting and comparing jobs (DELETE /v1/backtest/jobs/{id}, POST /v1/backtest/compare).

/// What a conditional delete of a job found. The condition is "terminal, the caller's, and its
/// active slot already given back", so a delete racing a claim or a cancel can never remove a
/// queued or running job, and a job leaves the table only once its slot accounting is settled.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteOutcome {
    /// The job's item is gone (from the table and every index).
    Deleted,
    /// Queued or running: it must be cancelled first.
    NotTerminal(JobStatus),
    /// Terminal, but the stream has not given its slot back yet: give it back
    /// ([`JobStore::release_slot`], exactly once whoever does it), then delete.
    SlotHeld,
    /// No such job, or another user's.
    NotFound,
}

/// Where the list endpoint starts: after this job in newest-first order (a list cursor's payload).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageKey {
    #[serde(rename = "s")]
    pub submitted_at_ms: i64,
    #[serde(rename = "i")]
    pub id: JobId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub user_id: UserId,
    pub status: Option<JobStatus>,
    pub template_id: Option<String>,
    /// Inclusive lower bound on `submitted_at`.
    pub from_ms: Option<i64>,
    /// Exclusive upper bound on `submitted_at`.
    pub to_ms: Option<i64>,
    pub after: Option<PageKey>,
    /// How many matching jobs to return at most (the store keeps reading until it has them or
    /// runs out: a short page means there are no more).
    pub limit: usize,
}

pub trait JobStore: Send + Sync {
    /// Stores a new queued job and takes one of the user's active slots, atomically.
    fn create_job(
        &self,
        job: &JobRecord,
        max_active: u32,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send;
    fn get_job(&self, id: &JobId) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;
    /// The user's jobs matching `query`, newest first.
    fn list_jobs(&self, query: &ListQuery) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;
    /// `queued`/`running` -> `cancelled` for the job's owner.
    fn cancel_job(
        &self,
        id: &JobId,
        user_id: &UserId,
        now_ms: i64,
    ) -> impl Future<Output = Result<CancelOutcome, StoreError>> + Send;
    /// `queued` (or `running` with an expired lease) -> `running` under `token` until `now + lease_ms`.
    fn claim_job(
        &self,
        id: &JobId,
        token: &RunToken,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;
    /// Records progress and extends the lease; `false` when the job is no longer running under
    /// `token` (cancelled, or taken over), which tells the worker to stop.
    fn record_progress(
        &self,
        id: &JobId,
        token: &RunToken,
        progress: f64,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// `running` under `token` -> `done` or `failed`; `false` if the job was no longer ours.
    fn complete_job(
        &self,
        id: &JobId,
        token: &RunToken,
        now_ms: i64,
        completion: &Completion,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Fails a job whose delivery was given up on, unless it is terminal or a live run holds it.
    fn fail_abandoned(
        &self,
        id: &JobId,
        now_ms: i64,
        error: &JobError,
    ) -> impl Future<Output = Result<AbandonOutcome, StoreError>> + Send;
    /// Gives the user's active slot back for a terminal job, once: `false` if already given back.
    fn release_slot(&self, id: &JobId, user_id: &UserId) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Removes the owner's terminal job whose slot was given back (one conditional delete).
    fn delete_job(
        &self,
        id: &JobId,
        user_id: &UserId,
    ) -> impl Future<Output = Result<DeleteOutcome, StoreError>> + Send;
    /// The jobs among `ids` that exist, in no particular order (one batched read; `ids` distinct).
    fn get_jobs(&self, ids: &[JobId]) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;
}

pub trait KeyStore: Send + Sync {
    fn get_key(&self, key_id: &KeyId) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;
    /// Stores a new key; `false` if the id exists.
    fn put_key(&self, key: &ApiKeyRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn list_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyRecord>, StoreError>> + Send;
    /// `false` if there is no such key.
    fn set_key_status(
        &self,
        key_id: &KeyId,
        status: KeyStatus,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Short-lived request bookkeeping: replay protection and request weight.
pub trait RequestLog: Send + Sync {
    /// Remembers a signature until `expires_ms`; `false` if it was already remembered (a replay).
    fn remember_signature(
        &self,
        key_id: &KeyId,
        signature: &str,
        expires_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Adds `weight` to the key's counter for the window starting at `window_start_ms`, returns the new total.
    fn add_weight(
        &self,
        key_id: &KeyId,
        window_start_ms: i64,
        weight: u32,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
}

pub trait JobQueue: Send + Sync {
    fn enqueue(&self, job_id: &JobId) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The large result arrays of done jobs, as JSON documents (laid out in pages, `crate::pages`).
pub trait ResultStore: Send + Sync {
    /// Writes one artifact (`result.json`, `equity_curve.json`, `trades.json`, `bar_equity.csv`).
    fn put_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_artifact(
        &self,
        job_id: &JobId,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// Exactly the bytes `range` of an artifact (an S3 ranged GET); `None` if there is no such
    /// artifact, an error if the range is empty or reaches past its end.
    fn get_artifact_range(
        &self,
        job_id: &JobId,
        name: &str,
        range: Range<u64>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// Deletes every artifact of the job (everything under its result prefix); how many there were.
    fn delete_artifacts(&self, job_id: &JobId) -> impl Future<Output = Result<usize, StoreError>> + Send;
    /// A URL that GETs the artifact without signing until `expires_in` from now (S3: a presigned
    /// GetObject). Whether the object exists is not checked. Stores that cannot say so.
    fn presign_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        expires_in: std::time::Duration,
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        let _ = expires_in;
        let message = format!("{job_id}/{name}: this result store cannot presign URLs");
        async move { Err(StoreError::new(message)) }
    }

    // An ended sweep's full ranking, page `page` (JSON, `sweep_ranking`). Stores without them
    // answer `None` (the ranking is then merged from the chunks) and cannot write them.
    fn put_sweep_ranking_page(
        &self,
        sweep_id: &crate::ids::SweepId,
        page: u32,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (message, _) = (format!("{sweep_id}: this result store cannot store rankings"), (page, bytes));
        async move { Err(StoreError::new(message)) }
    }
    fn get_sweep_ranking_page(
        &self,
        sweep_id: &crate::ids::SweepId,
        page: u32,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
        let _ = (sweep_id, page);
        async { Ok(None) }
    }
}

/// Why bars could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Not there (or not all of it): the job fails with DATA_UNAVAILABLE.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Market data: what is covered, and the bars themselves.
pub trait MarketData: Send + Sync {
    fn coverage(
        &self,
        symbol: &str,
        timeframe: Timeframe,
    ) -> impl Future<Output = Result<Option<Coverage>, StoreError>> + Send;
    /// All symbols and timeframes held, with their coverage and whether they are synthetic.
    fn catalog(&self) -> impl Future<Output = Result<Vec<(Coverage, bool)>, StoreError>> + Send;
    /// Bars with `start_ms <= open_time <= end_ms`.
    fn load_bars(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: i64,
        end_ms: i64,
    ) -> impl Future<Output = Result<Bars, DataError>> + Send;
}

// A reference to a port is a port: one store serves the API, the worker and the stream
// bookkeeping in tests, and one client serves several roles in a function.
impl<T: JobStore> JobStore for &T {
    fn create_job(
        &self,
        job: &JobRecord,
        max_active: u32,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send {
        (**self).create_job(job, max_active)
    }
    fn get_job(&self, id: &JobId) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send {
        (**self).get_job(id)
    }
    fn list_jobs(&self, query: &ListQuery) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send {
        (**self).list_jobs(query)
    }
    fn cancel_job(
        &self,
        id: &JobId,
        user_id: &UserId,
        now_ms: i64,
    ) -> impl Future<Output = Result<CancelOutcome, StoreError>> + Send {
        (**self).cancel_job(id, user_id, now_ms)
    }
    fn claim_job(
        &self,
        id: &JobId,
        token: &RunToken,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send {
        (**self).claim_job(id, token, now_ms, lease_ms)
    }
    fn record_progress(
        &self,
        id: &JobId,
        token: &RunToken,
        progress: f64,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).record_progress(id, token, progress, now_ms, lease_ms)
    }
    fn complete_job(
        &self,
        id: &JobId,
        token: &RunToken,
        now_ms: i64,
        completion: &Completion,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).complete_job(id, token, now_ms, completion)
    }
    fn fail_abandoned(
        &self,
        id: &JobId,
        now_ms: i64,
        error: &JobError,
    ) -> impl Future<Output = Result<AbandonOutcome, StoreError>> + Send {
        (**self).fail_abandoned(id, now_ms, error)
    }
    fn release_slot(&self, id: &JobId, user_id: &UserId) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).release_slot(id, user_id)
    }
    fn delete_job(
        &self,
        id: &JobId,
        user_id: &UserId,
    ) -> impl Future<Output = Result<DeleteOutcome, StoreError>> + Send {
        (**self).delete_job(id, user_id)
    }
    fn get_jobs(&self, ids: &[JobId]) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send {
        (**self).get_jobs(ids)
    }
}

impl<T: KeyStore> KeyStore for &T {
    fn get_key(&self, key_id: &KeyId) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send {
        (**self).get_key(key_id)
    }
    fn put_key(&self, key: &ApiKeyRecord) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).put_key(key)
    }
    fn list_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyRecord>, StoreError>> + Send {
        (**self).list_keys()
    }
    fn set_key_status(
        &self,
        key_id: &KeyId,
        status: KeyStatus,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).set_key_status(key_id, status)
    }
}

impl<T: RequestLog> RequestLog for &T {
    fn remember_signature(
        &self,
        key_id: &KeyId,
        signature: &str,
        expires_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).remember_signature(key_id, signature, expires_ms)
    }
    fn add_weight(
        &self,
        key_id: &KeyId,
        window_start_ms: i64,
        weight: u32,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send {
        (**self).add_weight(key_id, window_start_ms, weight)
    }
}

impl<T: JobQueue> JobQueue for &T {
    fn enqueue(&self, job_id: &JobId) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).enqueue(job_id)
    }
}

impl<T: ResultStore> ResultStore for &T {
    fn put_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_artifact(job_id, name, bytes, content_type)
    }
    fn get_artifact(
        &self,
        job_id: &JobId,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
        (**self).get_artifact(job_id, name)
    }
    fn get_artifact_range(
        &self,
        job_id: &JobId,
        name: &str,
        range: Range<u64>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
        (**self).get_artifact_range(job_id, name, range)
    }
    fn delete_artifacts(&self, job_id: &JobId) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).delete_artifacts(job_id)
    }
    fn presign_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        expires_in: std::time::Duration,
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        (**self).presign_artifact(job_id, name, expires_in)
    }
    fn put_sweep_ranking_page(
        &self,
        sweep_id: &crate::ids::SweepId,
        page: u32,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_sweep_ranking_page(sweep_id, page, bytes)
    }
    fn get_sweep_ranking_page(
        &self,
        sweep_id: &crate::ids::SweepId,
        page: u32,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
        (**self).get_sweep_ranking_page(sweep_id, page)
    }
}

impl<T: MarketData> MarketData for &T {
    fn coverage(
        &self,
        symbol: &str,
        timeframe: Timeframe,
    ) -> impl Future<Output = Result<Option<Coverage>, StoreError>> + Send {
        (**self).coverage(symbol, timeframe)
    }
    fn catalog(&self) -> impl Future<Output = Result<Vec<(Coverage, bool)>, StoreError>> + Send {
        (**self).catalog()
    }
    fn load_bars(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: i64,
        end_ms: i64,
    ) -> impl Future<Output = Result<Bars, DataError>> + Send {
        (**self).load_bars(symbol, timeframe, start_ms, end_ms)
    }
}

// ---------------------------------------------------------------- strategies

#[derive(Debug, Clone, PartialEq)]
pub enum StrategyCreateOutcome {
    Created,
    /// Another strategy has this id (ids are random; the caller draws again).
    IdTaken,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrategyUpdateOutcome {
    Updated,
    /// The stored version is no longer the one the update was made from (another update won):
    /// the caller re-reads and applies its change again.
    VersionConflict,
    /// No such strategy for this user (deleted meanwhile, or another user's).
    NotFound,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrategyDeleteOutcome {
    Deleted,
    NotFound,
}

/// Where a strategy listing starts: after this strategy in newest-`updated_at`-first order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StrategyPageKey {
    #[serde(rename = "u")]
    pub updated_at_ms: i64,
    #[serde(rename = "i")]
    pub id: StrategyId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StrategyListQuery {
    pub user_id: UserId,
    pub after: Option<StrategyPageKey>,
    pub limit: usize,
}

/// Stored strategies. A deleted strategy is gone: every read answers as for one that never was.
pub trait StrategyStore: Send + Sync {
    fn create_strategy(
        &self,
        strategy: &StrategyRecord,
    ) -> impl Future<Output = Result<StrategyCreateOutcome, StoreError>> + Send;
    fn get_strategy(&self, id: &StrategyId) -> impl Future<Output = Result<Option<StrategyRecord>, StoreError>> + Send;
    /// The user's strategies, newest `updated_at` first (ties by id, descending).
    fn list_strategies(
        &self,
        query: &StrategyListQuery,
    ) -> impl Future<Output = Result<Vec<StrategyRecord>, StoreError>> + Send;
    /// Replaces the strategy with `updated` if it belongs to `updated.user_id` and its stored
    /// version is still `updated.version - 1` (one conditional write).
    fn update_strategy(
        &self,
        updated: &StrategyRecord,
    ) -> impl Future<Output = Result<StrategyUpdateOutcome, StoreError>> + Send;
    fn delete_strategy(
        &self,
        id: &StrategyId,
        user_id: &UserId,
    ) -> impl Future<Output = Result<StrategyDeleteOutcome, StoreError>> + Send;
}

impl<T: StrategyStore> StrategyStore for &T {
    fn create_strategy(
        &self,
        strategy: &StrategyRecord,
    ) -> impl Future<Output = Result<StrategyCreateOutcome, StoreError>> + Send {
        (**self).create_strategy(strategy)
    }
    fn get_strategy(&self, id: &StrategyId) -> impl Future<Output = Result<Option<StrategyRecord>, StoreError>> + Send {
        (**self).get_strategy(id)
    }
    fn list_strategies(
        &self,
        query: &StrategyListQuery,
    ) -> impl Future<Output = Result<Vec<StrategyRecord>, StoreError>> + Send {
        (**self).list_strategies(query)
    }
    fn update_strategy(
        &self,
        updated: &StrategyRecord,
    ) -> impl Future<Output = Result<StrategyUpdateOutcome, StoreError>> + Send {
        (**self).update_strategy(updated)
    }
    fn delete_strategy(
        &self,
        id: &StrategyId,
        user_id: &UserId,
    ) -> impl Future<Output = Result<StrategyDeleteOutcome, StoreError>> + Send {
        (**self).delete_strategy(id, user_id)
    }
}

/// Everything the public API reads and writes besides results and market data: one name for
/// the bound every `impl Api` block and the Lambda glue share.
pub trait ApiStore: JobStore + KeyStore + RequestLog + StrategyStore + crate::sweeps::SweepStore {}

impl<T: JobStore + KeyStore + RequestLog + StrategyStore + crate::sweeps::SweepStore> ApiStore for T {}
