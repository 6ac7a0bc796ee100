//! Sweeps as a service (API.md, "Sweeps"; docs/sweeps.md, "The service"): the stored sweep, its
//! chunks, and the port that stores them. The handlers are in `sweep_api`, the chunk runner in
//! `sweep_worker`; expansion, ranking and the chunk rule are `pipai_engine::sweep`'s.
//!
//! A sweep is stored beside the jobs (the jobs table, a second entity) so that creating it and
//! taking one of the user's active slots is one transaction on the same counter jobs use, and
//! its terminal update gives the slot back in the same transaction.

use std::future::Future;

use chrono::{DateTime, Utc};
use pipai_engine::batch::{Evaluation, Scores};
use pipai_engine::result::{Metrics, StructuredMetrics};
use pipai_engine::sweep::{degradation, Candidate, DegradationReport, LeaderboardEntry, OosMetrics, SweepSpec};
use pipai_engine::time::iso;
use pipai_engine::JobConfig;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::{SweepId, UserId};
use crate::model::{JobError, JobStatus, JobWebhook};
use crate::notifier::NotificationView;
use crate::ports::{CreateOutcome, StoreError};
use crate::webhook::NotifyUrl;

/// The live leaderboard a sweep keeps (API.md: "the top 20 so far").
pub const LEADERBOARD_TOP: usize = 20;

/// One ranked config as stored: what a leaderboard entry shows, plus its sweep index (ties).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub index: usize,
    pub config: JobConfig,
    pub metrics: Metrics,
    pub structured_metrics: StructuredMetrics,
    pub oos_metrics: Option<StoredScores>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredScores {
    pub metrics: Metrics,
    pub structured_metrics: StructuredMetrics,
}

impl From<LeaderboardEntry> for StoredEntry {
    fn from(e: LeaderboardEntry) -> Self {
        StoredEntry {
            index: e.index,
            config: e.config,
            metrics: e.metrics,
            structured_metrics: e.structured_metrics,
            oos_metrics: e
                .oos_metrics
                .map(|o| StoredScores { metrics: o.metrics, structured_metrics: o.structured_metrics }),
        }
    }
}

impl StoredEntry {
    /// Back into a candidate, so that merging rankings is the engine's ranking again.
    fn candidate(&self) -> Candidate {
        let scores = |metrics: &Metrics, structured: &StructuredMetrics| Scores {
            metrics: metrics.clone(),
            structured_metrics: structured.clone(),
        };
        Candidate {
            index: self.index,
            config: self.config.clone(),
            evaluation: Evaluation {
                in_sample: scores(&self.metrics, &self.structured_metrics),
                out_of_sample: self.oos_metrics.as_ref().map(|o| scores(&o.metrics, &o.structured_metrics)),
            },
        }
    }

    /// The API's entry at 1-based `rank`.
    pub fn at_rank(&self, rank: usize) -> LeaderboardEntry {
        LeaderboardEntry {
            rank,
            index: self.index,
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            structured_metrics: self.structured_metrics.clone(),
            oos_metrics: self
                .oos_metrics
                .as_ref()
                .map(|o| OosMetrics { metrics: o.metrics.clone(), structured_metrics: o.structured_metrics.clone() }),
        }
    }
}

/// Ranks already-ranked entries of several chunks together, best first (the engine's order:
/// the rank metric in its direction, nulls last, ties by sweep index).
pub fn merge_ranked(spec: &SweepSpec, entries: impl IntoIterator<Item = StoredEntry>) -> Vec<StoredEntry> {
    let candidates = entries.into_iter().map(|e| e.candidate()).collect();
    spec.rank(candidates).entries.into_iter().map(StoredEntry::from).collect()
}

/// A sweep as stored. Times are UTC milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub id: SweepId,
    pub user_id: UserId,
    pub status: JobStatus,
    /// The create body resolved (`base` merged over its strategy's config, defaults filled), as
    /// JSON text: the sweep's `config`, and what the worker re-expands its chunk's configs from.
    pub request: String,
    pub n_configs: usize,
    pub n_chunks: u32,
    /// Chunks recorded (done, failed or skipped); the sweep ends when this reaches `n_chunks`.
    pub chunks_ended: u32,
    /// Configs evaluated without error, and configs whose evaluation failed.
    pub completed: usize,
    pub failed: usize,
    /// The best [`LEADERBOARD_TOP`] so far, best first.
    pub leaderboard: Vec<StoredEntry>,
    pub error: Option<JobError>,
    pub submitted_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Bumped by every update: the optimistic-concurrency check of [`SweepStore::record_chunk`].
    pub version: u64,
    /// Set once the user's active slot has been given back (exactly once per sweep).
    pub slot_released: bool,
    /// Completion webhook: where, which key signs, and the deliveries so far (as a job's).
    #[serde(default)]
    pub webhook: JobWebhook,
    /// Set once the full ranking of an ended sweep is stored in pages (`sweep_ranking`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<RankingMark>,
}

impl SweepRecord {
    pub fn new_queued(
        id: SweepId,
        user_id: UserId,
        resolved: &SweepSpec,
        n_configs: usize,
        n_chunks: u32,
        now_ms: i64,
    ) -> Self {
        SweepRecord {
            id,
            user_id,
            status: JobStatus::Queued,
            request: serde_json::to_string(resolved).expect("a sweep spec serializes"),
            n_configs,
            n_chunks,
            chunks_ended: 0,
            completed: 0,
            failed: 0,
            leaderboard: Vec::new(),
            error: None,
            submitted_at_ms: now_ms,
            started_at_ms: None,
            finished_at_ms: None,
            version: 1,
            slot_released: false,
            webhook: JobWebhook::default(),
            ranking: None,
        }
    }

    /// The resolved request, parsed again (it was written by [`SweepRecord::new_queued`]).
    pub fn spec(&self) -> Result<SweepSpec, StoreError> {
        SweepSpec::from_json_bytes(self.request.as_bytes())
            .map_err(|e| StoreError::new(format!("{}: stored request does not parse: {e}", self.id)))
    }

    /// The moment expansion ran at creation: re-expanding with it gives the same configs.
    pub fn submitted_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.submitted_at_ms).expect("a stored time is valid")
    }

    pub fn progress(&self) -> f64 {
        if self.status == JobStatus::Done {
            return 1.0;
        }
        match self.n_chunks {
            0 => 0.0,
            n => f64::from(self.chunks_ended) / f64::from(n),
        }
    }

    /// The API's view of the sweep (`GET /v1/backtest/sweeps/{id}`, create, cancel).
    pub fn view(&self) -> SweepView<'_> {
        let leaderboard: Vec<LeaderboardEntry> =
            self.leaderboard.iter().enumerate().map(|(i, e)| e.at_rank(i + 1)).collect();
        // The request was valid when stored, so its spec parses; a record that no longer does
        // shows no report rather than failing the whole view.
        let degradation =
            self.spec().ok().and_then(|spec| degradation(spec.rank_metric, &leaderboard, LEADERBOARD_TOP));
        SweepView {
            summary: self.summary_view(),
            config: RawValue::from_string(self.request.clone()).ok(),
            leaderboard,
            degradation,
        }
    }

    /// The list (summary) form: the view without the leaderboard.
    pub fn summary_view(&self) -> SweepSummary<'_> {
        SweepSummary {
            id: &self.id,
            status: self.status,
            n_configs: self.n_configs,
            submitted_at: iso(self.submitted_at_ms),
            started_at: self.started_at_ms.map(iso),
            finished_at: self.finished_at_ms.map(iso),
            progress: self.progress(),
            completed: self.completed,
            failed: self.failed,
            best: self.leaderboard.first().map(|e| e.at_rank(1)),
            error: self.error.as_ref(),
            notify_url: self.webhook.notify_url.as_ref(),
            notifications: self.webhook.notify_url.as_ref().map(|_| NotificationView::all(&self.webhook.notifications)),
        }
    }
}

/// The full form: the summary, the resolved request and the live top 20.
#[derive(Debug, Serialize)]
pub struct SweepView<'a> {
    #[serde(flatten)]
    pub summary: SweepSummary<'a>,
    pub config: Option<Box<RawValue>>,
    pub leaderboard: Vec<LeaderboardEntry>,
    /// With validation, how the live top 20's rank metric holds up out of sample (the offline
    /// sweep's report, over the same entries); null without validation.
    pub degradation: Option<DegradationReport>,
}

#[derive(Debug, Serialize)]
pub struct SweepSummary<'a> {
    pub id: &'a SweepId,
    pub status: JobStatus,
    pub n_configs: usize,
    pub submitted_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub progress: f64,
    pub completed: usize,
    pub failed: usize,
    pub best: Option<LeaderboardEntry>,
    pub error: Option<&'a JobError>,
    /// Only on sweeps created with one (as on jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<&'a NotifyUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<NotificationView<'a>>>,
}

/// How a chunk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkStatus {
    /// Evaluated (some of its configs may have failed).
    Done,
    /// Given up on (its message reached the dead-letter queue, or its bars are missing): every
    /// config counted failed.
    Failed,
}

/// One chunk's record: written once (a duplicate delivery finds it and changes nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub sweep_id: SweepId,
    pub chunk: u32,
    pub status: ChunkStatus,
    pub completed: usize,
    pub failed: usize,
    /// Every ranked entry of the chunk (constraints applied), best first: the full ranking is
    /// the merge of all chunks' entries (`expand=leaderboard`).
    pub entries: Vec<StoredEntry>,
    /// Why it failed, for the logs and the sweep's `error` when every config fails.
    pub error: Option<String>,
}

// ---- The stored ranking (`sweep_ranking`).

/// An ended sweep's full ranking is stored: `total` entries in pages of `page_size` (the last
/// one shorter), page `k` holding ranks `k * page_size + 1 ..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankingMark {
    pub total: usize,
    pub page_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MarkOutcome {
    /// Marked now.
    Marked,
    /// Marked before (a replayed stream record): nothing changed.
    AlreadyMarked,
    /// The sweep is not terminal: nothing changed.
    NotEnded,
    NotFound,
}

// ---- The port.

#[derive(Debug, Clone, PartialEq)]
pub enum SweepCancelOutcome {
    /// Now `cancelled`, its slot given back.
    Cancelled(Box<SweepRecord>),
    NotFound,
    AlreadyTerminal(JobStatus),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChunkOutcome {
    /// The chunk's record and the sweep's update are stored (one transaction).
    Recorded,
    /// This chunk was recorded before (a duplicate delivery): nothing changed.
    Duplicate,
    /// The sweep changed since it was read (another chunk, a cancel): read again and retry.
    VersionConflict,
    /// No such sweep.
    NotFound,
}

/// Where a sweep listing starts: after this sweep in newest-first order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepPageKey {
    #[serde(rename = "s")]
    pub submitted_at_ms: i64,
    #[serde(rename = "i")]
    pub id: SweepId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SweepListQuery {
    pub user_id: UserId,
    pub status: Option<JobStatus>,
    pub after: Option<SweepPageKey>,
    pub limit: usize,
}

pub trait SweepStore: Send + Sync {
    /// Stores a new queued sweep and takes one of the user's active slots (the jobs' counter),
    /// atomically.
    fn create_sweep(
        &self,
        sweep: &SweepRecord,
        max_active: u32,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send;
    fn get_sweep(&self, id: &SweepId) -> impl Future<Output = Result<Option<SweepRecord>, StoreError>> + Send;
    /// The user's sweeps, newest first.
    fn list_sweeps(&self, query: &SweepListQuery) -> impl Future<Output = Result<Vec<SweepRecord>, StoreError>> + Send;
    /// `queued`/`running` -> `cancelled` for the owner, giving the slot back in the same write.
    fn cancel_sweep(
        &self,
        id: &SweepId,
        user_id: &UserId,
        now_ms: i64,
    ) -> impl Future<Output = Result<SweepCancelOutcome, StoreError>> + Send;
    /// One transaction: puts `chunk` unless that chunk is recorded already, and replaces the
    /// sweep with `updated` if its stored version is still `updated.version - 1`; when `updated`
    /// is terminal, gives the user's slot back too.
    fn record_chunk(
        &self,
        chunk: &ChunkRecord,
        updated: &SweepRecord,
    ) -> impl Future<Output = Result<ChunkOutcome, StoreError>> + Send;
    /// Every recorded chunk of the sweep, in chunk order.
    fn get_chunks(&self, id: &SweepId) -> impl Future<Output = Result<Vec<ChunkRecord>, StoreError>> + Send;
    /// Sets `ranking` on an ended sweep that has none (its pages are stored).
    fn mark_ranking(
        &self,
        id: &SweepId,
        mark: &RankingMark,
    ) -> impl Future<Output = Result<MarkOutcome, StoreError>> + Send;
}

impl<T: SweepStore> SweepStore for &T {
    fn create_sweep(
        &self,
        sweep: &SweepRecord,
        max_active: u32,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send {
        (**self).create_sweep(sweep, max_active)
    }
    fn get_sweep(&self, id: &SweepId) -> impl Future<Output = Result<Option<SweepRecord>, StoreError>> + Send {
        (**self).get_sweep(id)
    }
    fn list_sweeps(&self, query: &SweepListQuery) -> impl Future<Output = Result<Vec<SweepRecord>, StoreError>> + Send {
        (**self).list_sweeps(query)
    }
    fn cancel_sweep(
        &self,
        id: &SweepId,
        user_id: &UserId,
        now_ms: i64,
    ) -> impl Future<Output = Result<SweepCancelOutcome, StoreError>> + Send {
        (**self).cancel_sweep(id, user_id, now_ms)
    }
    fn record_chunk(
        &self,
        chunk: &ChunkRecord,
        updated: &SweepRecord,
    ) -> impl Future<Output = Result<ChunkOutcome, StoreError>> + Send {
        (**self).record_chunk(chunk, updated)
    }
    fn get_chunks(&self, id: &SweepId) -> impl Future<Output = Result<Vec<ChunkRecord>, StoreError>> + Send {
        (**self).get_chunks(id)
    }
    fn mark_ranking(
        &self,
        id: &SweepId,
        mark: &RankingMark,
    ) -> impl Future<Output = Result<MarkOutcome, StoreError>> + Send {
        (**self).mark_ranking(id, mark)
    }
}

/// The chunk messages of a sweep (`{sweep_id, chunk}`), sent when the sweep is stored.
pub trait SweepQueue: Send + Sync {
    fn enqueue_chunks(&self, id: &SweepId, n_chunks: u32) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: SweepQueue> SweepQueue for &T {
    fn enqueue_chunks(&self, id: &SweepId, n_chunks: u32) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).enqueue_chunks(id, n_chunks)
    }
}

/// A chunk's queue message: `{"sweep_id": "sw_...", "chunk": 3}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMessage {
    pub sweep_id: SweepId,
    pub chunk: u32,
}

impl ChunkMessage {
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("serializes")
    }

    /// The message in `body`, if it is one of ours.
    pub fn of(body: &str) -> Option<ChunkMessage> {
        serde_json::from_str(body).ok()
    }
}
