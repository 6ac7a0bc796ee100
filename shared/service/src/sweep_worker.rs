//! Runs one chunk of a sweep (a queue message `{sweep_id, chunk}`): re-expands the sweep's
//! configs from its stored request, loads the chunk's bars once, `batch::evaluate`s its configs,
//! ranks them, and records the chunk and the sweep's new counts and top 20 in one transaction
//! (conditional on the chunk being new and on the sweep's version: a duplicate delivery counts
//! once, two chunks finishing together both land, one after a retry).
//!
//! Cancel: a cancelled (or otherwise terminal) sweep's chunks are skipped when they start; a
//! chunk already evaluating re-reads the sweep every [`CANCEL_CHECK`] and, once it is terminal,
//! stops at the next segment (`batch::evaluate_until`) and is dropped unrecorded, as a skipped
//! chunk is: the sweep's counts stay those of the chunks recorded before the cancel. A chunk
//! that finishes anyway is dropped by the recorder, which finds the sweep terminal (a cancel
//! between its read and its write bumps the version, so the write is refused and the re-read
//! sees the cancel).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pipai_engine::batch::{evaluate_until, Evaluation, Validation};
use pipai_engine::sweep::{plan_chunks, Candidate, SweepSpec};
use pipai_engine::{Bars, EngineError, JobConfig};
use tracing::Instrument;

use crate::clock::now_ms;
use crate::ids::SweepId;
use crate::model::{FailCode, JobError, JobStatus};
use crate::ports::*;
use crate::sweeps::*;
use crate::worker::{load_job_bars, Delivery};

/// How often a chunk re-reads the sweep when another chunk's update won the race.
const RECORD_ATTEMPTS: usize = 20;

/// How often a running chunk re-reads its sweep to see a cancel (one `GetItem`; the first read
/// is when the bars are loaded). A cancelled chunk stops at its next segment of
/// `batch::SEGMENT` bars, a few milliseconds later.
pub const CANCEL_CHECK: Duration = Duration::from_secs(2);

pub struct SweepWorker<S, M> {
    pub store: S,
    pub market: M,
}

/// What a chunk produced, before it is recorded.
struct ChunkResult {
    status: ChunkStatus,
    completed: usize,
    failed: usize,
    entries: Vec<StoredEntry>,
    error: Option<String>,
}

impl<S: SweepStore, M: MarketData> SweepWorker<S, M> {
    /// Handles one chunk message. `Err` only for storage failures, which the queue retries.
    pub async fn process_chunk(&self, sweep_id: &SweepId, chunk: u32) -> Result<Delivery, StoreError> {
        let span = tracing::info_span!("sweep_chunk", sweep_id = %sweep_id, chunk);
        self.process_in_span(sweep_id, chunk).instrument(span).await
    }

    async fn process_in_span(&self, sweep_id: &SweepId, chunk: u32) -> Result<Delivery, StoreError> {
        let Some(sweep) = self.store.get_sweep(sweep_id).await? else {
            tracing::warn!("no such sweep; dropping the message");
            return Ok(Delivery::Done);
        };
        if sweep.status.is_terminal() {
            tracing::info!(status = %sweep.status, "sweep is terminal; chunk skipped");
            return Ok(Delivery::Done);
        }
        let Some((spec, indices, chunk_configs)) = chunk_of(&sweep, chunk)? else {
            tracing::warn!("no such chunk; dropping the message");
            return Ok(Delivery::Done);
        };
        let indices = &indices;
        let result = match self.load_bars(&chunk_configs[0]).await? {
            Err(message) => ChunkResult {
                status: ChunkStatus::Failed,
                completed: 0,
                failed: indices.len(),
                entries: Vec::new(),
                error: Some(message),
            },
            Ok(data) => {
                let validation = spec.validation.to_batch();
                let Some(evaluated) =
                    self.evaluate_unless_cancelled(sweep_id, &chunk_configs, data, validation.clone()).await?
                else {
                    tracing::info!("sweep ended while the chunk ran; chunk stopped, not recorded");
                    return Ok(Delivery::Done);
                };
                let mut candidates = Vec::with_capacity(indices.len());
                let mut first_error = None;
                for ((&index, config), evaluation) in indices.iter().zip(chunk_configs).zip(evaluated) {
                    match evaluation {
                        Ok(evaluation) => candidates.push(Candidate::evaluated(index, config, evaluation, &validation)),
                        Err(e) => {
                            first_error.get_or_insert_with(|| format!("config {index}: {e}"));
                        }
                    }
                }
                let completed = candidates.len();
                ChunkResult {
                    status: ChunkStatus::Done,
                    completed,
                    failed: indices.len() - completed,
                    entries: spec.rank(candidates).entries.into_iter().map(StoredEntry::from).collect(),
                    error: first_error,
                }
            }
        };
        self.record(sweep_id, chunk, result).await
    }

    /// Evaluates the chunk on a blocking thread while re-reading the sweep every
    /// [`CANCEL_CHECK`]; `None` when the sweep was found terminal (the evaluation is stopped).
    async fn evaluate_unless_cancelled(
        &self,
        sweep_id: &SweepId,
        configs: &[JobConfig],
        data: Vec<Bars>,
        validation: Validation,
    ) -> Result<Option<Vec<Result<Evaluation, EngineError>>>, StoreError> {
        let stop = Arc::new(AtomicBool::new(false));
        let evaluation = {
            let (configs, stop) = (configs.to_vec(), stop.clone());
            tokio::task::spawn_blocking(move || {
                evaluate_until(&configs, &data, &validation, &|| stop.load(Ordering::Relaxed))
            })
        };
        tokio::pin!(evaluation);
        let mut checks = tokio::time::interval(CANCEL_CHECK);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let evaluated = loop {
            tokio::select! {
                evaluated = &mut evaluation => break evaluated,
                _ = checks.tick(), if !stop.load(Ordering::Relaxed) => {
                    let ended = match self.store.get_sweep(sweep_id).await {
                        Ok(sweep) => sweep.is_none_or(|s| s.status.is_terminal()),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not re-read the sweep; the chunk goes on");
                            false
                        }
                    };
                    stop.store(ended, Ordering::Relaxed);
                }
            }
        };
        let evaluated = evaluated.map_err(|e| StoreError::caused_by("the chunk's evaluation panicked", e))?;
        Ok((!stop.load(Ordering::Relaxed)).then_some(evaluated))
    }

    /// A chunk whose message was given up on (dead-letter queue): recorded failed, its configs
    /// counted failed, so the sweep still ends.
    pub async fn fail_chunk(&self, sweep_id: &SweepId, chunk: u32) -> Result<Delivery, StoreError> {
        let Some(sweep) = self.store.get_sweep(sweep_id).await? else {
            return Ok(Delivery::Done);
        };
        let Some((_, indices, _)) = chunk_of(&sweep, chunk)? else {
            return Ok(Delivery::Done);
        };
        let configs = indices.len();
        let result = ChunkResult {
            status: ChunkStatus::Failed,
            completed: 0,
            failed: configs,
            entries: Vec::new(),
            error: Some("every delivery of this chunk failed".into()),
        };
        self.record(sweep_id, chunk, result).await
    }

    /// The chunk's bars (one series per symbol), or why they cannot be had.
    async fn load_bars(&self, config: &JobConfig) -> Result<Result<Vec<Bars>, String>, StoreError> {
        let mut data = Vec::with_capacity(config.symbols.len());
        for symbol in &config.symbols {
            match load_job_bars(&self.market, symbol, config.timeframe, config.start_ms(), config.end_ms()).await {
                Ok(bars) => data.push(bars),
                Err(DataError::Unavailable(m)) => return Ok(Err(format!("{symbol}: {m}"))),
                Err(DataError::Store(e)) => return Err(e),
            }
        }
        Ok(Ok(data))
    }

    /// Records the chunk and merges it into the sweep, retrying on a version conflict.
    async fn record(&self, sweep_id: &SweepId, chunk: u32, result: ChunkResult) -> Result<Delivery, StoreError> {
        let record = ChunkRecord {
            sweep_id: sweep_id.clone(),
            chunk,
            status: result.status,
            completed: result.completed,
            failed: result.failed,
            entries: result.entries,
            error: result.error,
        };
        for _ in 0..RECORD_ATTEMPTS {
            let Some(sweep) = self.store.get_sweep(sweep_id).await? else {
                return Ok(Delivery::Done);
            };
            if sweep.status.is_terminal() {
                tracing::info!(status = %sweep.status, "sweep ended meanwhile; chunk not recorded");
                return Ok(Delivery::Done);
            }
            let updated = merged(&sweep, &record, now_ms())?;
            match self.store.record_chunk(&record, &updated).await? {
                ChunkOutcome::Recorded => {
                    tracing::info!(status = %updated.status, ended = updated.chunks_ended, "chunk recorded");
                    return Ok(Delivery::Done);
                }
                ChunkOutcome::Duplicate => {
                    tracing::info!("chunk recorded before; duplicate delivery");
                    return Ok(Delivery::Done);
                }
                ChunkOutcome::NotFound => return Ok(Delivery::Done),
                ChunkOutcome::VersionConflict => continue,
            }
        }
        Ok(Delivery::Retry)
    }
}

/// A sweep's spec, and one chunk's sweep indices and configs.
type Chunk = (SweepSpec, Vec<usize>, Vec<JobConfig>);

/// The sweep's spec, and chunk `chunk`'s sweep indices and configs (`None`: no such chunk):
/// re-expanded from the stored request at its `submitted_at`, so the same configs as at creation.
fn chunk_of(sweep: &SweepRecord, chunk: u32) -> Result<Option<Chunk>, StoreError> {
    let spec = sweep.spec()?;
    let configs = spec
        .expand(&spec.base, sweep.submitted_at())
        .map_err(|e| StoreError::new(format!("{}: stored request no longer expands: {e}", sweep.id)))?;
    let Some(indices) = plan_chunks(&configs, &spec.validation).into_iter().nth(chunk as usize) else {
        return Ok(None);
    };
    let chunk_configs = indices.iter().map(|&i| configs[i].clone()).collect();
    Ok(Some((spec, indices, chunk_configs)))
}

/// The sweep after `chunk`: counts, the top 20 merged, `running`, or terminal when it was the
/// last chunk (`failed` when no config of the whole sweep evaluated, else `done`).
fn merged(sweep: &SweepRecord, chunk: &ChunkRecord, now_ms: i64) -> Result<SweepRecord, StoreError> {
    let spec = sweep.spec()?;
    let mut next = sweep.clone();
    next.version += 1;
    next.chunks_ended += 1;
    next.completed += chunk.completed;
    next.failed += chunk.failed;
    next.status = JobStatus::Running;
    next.started_at_ms.get_or_insert(now_ms);
    let mut top = merge_ranked(&spec, sweep.leaderboard.iter().chain(&chunk.entries).cloned());
    top.truncate(LEADERBOARD_TOP);
    next.leaderboard = top;
    if next.chunks_ended >= next.n_chunks {
        next.finished_at_ms = Some(now_ms);
        if next.completed == 0 {
            next.status = JobStatus::Failed;
            let why = chunk.error.as_deref().unwrap_or("no config could be evaluated");
            next.error = Some(JobError::new(FailCode::SimulationError, format!("every config failed; last: {why}")));
        } else {
            next.status = JobStatus::Done;
        }
    }
    Ok(next)
}
