//! The worker: takes a job id from the queue, claims the job, runs the engine with progress and
//! cancellation, stores the result arrays and completes the job. And the dead-letter path that
//! makes sure a job whose messages all failed still ends in `failed`.
//!
//! Progress: loading the bars is the first half (each symbol's share written as it arrives: on a
//! deployed worker loading takes longer than simulating), the engine's own progress up to 0.9,
//! storing the result (serializing the pages, then uploading them) the rest.
//! Writes happen at least every `heartbeat_ms` (they extend the lease) and when progress advanced
//! `progress_step`, never more often than `min_write_gap_ms`.
//!
//! Idempotence: a job is claimed with a conditional write (queued, or running with an expired
//! lease), so a duplicate delivery while a run holds the lease is retried later and a delivery
//! for a terminal job is dropped. Result objects have deterministic keys and the engine is
//! deterministic, so a second run after a crash writes the same bytes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pipai_engine::{run as run_engine, Bars, Control, EngineError, JobConfig, Timeframe};
use pipai_market_data::{resample, Coverage};
use tracing::Instrument;

use crate::clock::now_ms;
use crate::ids::{JobId, RunToken};
use crate::model::{FailCode, JobError, ResultSummary};
use crate::pages::{PagedArrayWriter, ResultArray, ResultPages, StoredFile, StoredResult, RESULT_ARTIFACT};
use crate::ports::*;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a claim holds the job without a heartbeat; progress writes extend it.
    pub lease_ms: i64,
    /// Progress is written at least this often while running (also how soon a cancel is seen).
    pub heartbeat_ms: u64,
    /// ... and whenever it advanced this much, but never more often than `min_write_gap_ms`.
    pub progress_step: f64,
    pub min_write_gap_ms: u64,
    /// Stop (TIMEOUT) this long before the invocation's deadline, to record the failure.
    pub deadline_margin_ms: i64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            lease_ms: 60_000,
            heartbeat_ms: 1_000,
            progress_step: 0.05,
            min_write_gap_ms: 250,
            deadline_margin_ms: 5_000,
        }
    }
}

/// What to tell the queue about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handled (or nothing to do): delete the message.
    Done,
    /// Leave it for a later delivery (reported as a batch item failure).
    Retry,
}

pub struct Worker<S, R, M> {
    pub store: S,
    pub results: R,
    pub market: M,
    pub settings: WorkerSettings,
}

/// The share of progress that loading the bars accounts for.
const LOAD_SHARE: f64 = 0.5;
/// Where the simulation's share ends: storing the result takes the rest.
const SIMULATION_END: f64 = 0.9;

/// Writes a run's progress (which also extends its lease) on the cadence `WorkerSettings` sets.
struct ProgressWriter<'a, S> {
    store: &'a S,
    settings: &'a WorkerSettings,
    job_id: &'a JobId,
    token: &'a RunToken,
    last_written: f64,
    last_write_ms: i64,
}

impl<S: JobStore> ProgressWriter<'_, S> {
    /// `Ok(false)` when the run no longer holds the job (cancelled, or taken over).
    async fn report(&mut self, progress: f64, now: i64) -> Result<bool, StoreError> {
        let since = now - self.last_write_ms;
        let due = since >= self.settings.heartbeat_ms as i64
            || (progress - self.last_written >= self.settings.progress_step
                && since >= self.settings.min_write_gap_ms as i64);
        if !due {
            return Ok(true);
        }
        // Never report 1.0 before the result is stored: done sets it.
        let shown = progress.min(0.99);
        let held = self.store.record_progress(self.job_id, self.token, shown, now, self.settings.lease_ms).await?;
        self.last_written = progress;
        self.last_write_ms = now;
        Ok(held)
    }
}

/// Bars for a job: the stored timeframe, or 1m bars aggregated to it; `Unavailable` unless the
/// whole window is there without gaps (a silent partial run is never acceptable).
pub async fn load_job_bars<M: MarketData>(
    market: &M,
    symbol: &str,
    tf: Timeframe,
    start_ms: i64,
    end_ms: i64,
) -> Result<Bars, DataError> {
    // The same rule as the create-time check: the stored timeframe when it covers the window,
    // else derived from 1m bars, else the stored bars (whose gap is then reported).
    let direct = market.coverage(symbol, tf).await?;
    let direct_covers = direct.as_ref().is_some_and(|c| c.check(start_ms, end_ms).is_ok());
    let minutes_cover = tf != Timeframe::M1
        && !direct_covers
        && market.coverage(symbol, Timeframe::M1).await?.is_some_and(|c| c.check(start_ms, end_ms).is_ok());
    let bars = match direct {
        Some(_) if !minutes_cover => market.load_bars(symbol, tf, start_ms, end_ms).await?,
        None if tf == Timeframe::M1 => return Err(DataError::Unavailable(format!("no {tf} bars for {symbol}"))),
        _ => {
            let step = tf.millis();
            // Whole buckets: from the start of the first bucket to the end of the last.
            let from = start_ms.div_euclid(step) * step;
            let to = end_ms.div_euclid(step) * step + step - Timeframe::M1.millis();
            let minutes = market.load_bars(symbol, Timeframe::M1, from, to).await?;
            resample(&minutes, tf)
        }
    };
    let coverage = Coverage::from_bars(symbol, tf, &bars)
        .map_err(|_| DataError::Unavailable(format!("no {tf} bars for {symbol} in the window")))?;
    coverage.check(start_ms, end_ms).map_err(|u| DataError::Unavailable(format!("bars are missing: {u}")))?;
    Ok(bars)
}

impl<S, R, M> Worker<S, R, M>
where
    S: JobStore,
    R: ResultStore,
    M: MarketData,
{
    /// Handles one queue message for `job_id`. `deadline_ms`: when the invocation will be killed.
    /// `Err` only for storage failures, which the queue retries. Its logs carry the job id.
    pub async fn process(&self, job_id: &JobId, deadline_ms: i64) -> Result<Delivery, StoreError> {
        let span = tracing::info_span!("job", job_id = %job_id);
        self.process_in_span(job_id, deadline_ms).instrument(span).await
    }

    async fn process_in_span(&self, job_id: &JobId, deadline_ms: i64) -> Result<Delivery, StoreError> {
        let token = RunToken::random();
        let job = match self.store.claim_job(job_id, &token, now_ms(), self.settings.lease_ms).await? {
            ClaimOutcome::Claimed(job) => job,
            ClaimOutcome::Terminal(status) => {
                tracing::info!(%status, "already terminal; dropping the message");
                return Ok(Delivery::Done);
            }
            ClaimOutcome::Leased { until_ms } => {
                tracing::info!(until_ms, "another run holds the job; retrying later");
                return Ok(Delivery::Retry);
            }
            ClaimOutcome::NotFound => {
                tracing::warn!("no such job; dropping the message");
                return Ok(Delivery::Done);
            }
        };
        tracing::info!(attempt = job.attempts, budget_ms = deadline_ms - now_ms(), "running");
        let fail = |code: FailCode, message: String| Completion::Failed(JobError::new(code, message));
        // The config was validated and resolved when the job was created; it is run as stored.
        let config = job.config;
        let mut progress = ProgressWriter {
            store: &self.store,
            settings: &self.settings,
            job_id,
            token: &token,
            last_written: 0.0,
            last_write_ms: now_ms(),
        };
        let mut data = Vec::with_capacity(config.symbols.len());
        for (i, symbol) in config.symbols.iter().enumerate() {
            match load_job_bars(&self.market, symbol, config.timeframe, config.start_ms(), config.end_ms()).await {
                Ok(bars) => data.push(bars),
                Err(DataError::Unavailable(m)) => {
                    return self.finish(job_id, &token, fail(FailCode::DataUnavailable, format!("{symbol}: {m}"))).await
                }
                Err(DataError::Store(e)) => return Err(e),
            }
            let loaded = LOAD_SHARE * (i + 1) as f64 / config.symbols.len() as f64;
            if !progress.report(loaded, now_ms()).await? {
                tracing::info!("stopped while loading data: cancelled or taken over");
                return Ok(Delivery::Done);
            }
        }

        let outcome = self.simulate(config.clone(), data, deadline_ms, &mut progress).await?;
        let completion = match outcome {
            RunOutcome::Finished(backtest, data) => {
                let result = &backtest.result;
                let run = FinishedRun { backtest: &backtest, config: &config, data: &data, deadline_ms };
                if !self.store_result(job_id, run, &mut progress).await? {
                    tracing::info!("stopped while storing the result: cancelled or taken over");
                    return Ok(Delivery::Done);
                }
                Completion::Done { summary: Box::new(ResultSummary::of(result)) }
            }
            RunOutcome::Failed(code, message) => fail(code, message),
            RunOutcome::Stopped => {
                tracing::info!("stopped: cancelled or taken over");
                return Ok(Delivery::Done);
            }
        };
        self.finish(job_id, &token, completion).await
    }

    /// Writes the arrays in pages (`crate::pages`), then the downloadable files
    /// ([`Self::store_files`]), then `result.json` (the metrics, both page indexes and the list
    /// of files: present only once the rest is), reporting progress from `SIMULATION_END` on
    /// and keeping the lease through slow uploads. `Ok(false)` when the run lost the job.
    async fn store_result(
        &self,
        job_id: &JobId,
        run: FinishedRun<'_>,
        progress: &mut ProgressWriter<'_, S>,
    ) -> Result<bool, StoreError> {
        let result = &run.backtest.result;
        // Serializing takes the first half of the write share, uploading the second.
        let serialized_at = SIMULATION_END + (1.0 - SIMULATION_END) / 2.0;
        let elements = (result.equity_curve.len() + result.trades.len()).max(1);
        let mut done = 0;
        let mut equity = PagedArrayWriter::new(ResultArray::EquityCurve.page_size());
        for point in &result.equity_curve {
            equity.push(point);
        }
        done += result.equity_curve.len();
        let mut trades = PagedArrayWriter::new(ResultArray::Trades.page_size());
        for batch in result.trades.chunks(ResultArray::Trades.page_size() * 10) {
            batch.iter().for_each(|t| trades.push(t));
            done += batch.len();
            let share = SIMULATION_END + (serialized_at - SIMULATION_END) * done as f64 / elements as f64;
            if !progress.report(share, now_ms()).await? {
                return Ok(false);
            }
        }
        let (equity, equity_index) = equity.finish();
        let (trades, trades_index) = trades.finish();
        let pages = ResultPages { equity_curve: equity_index, trades: trades_index };
        let total = (equity.len() + trades.len()) as f64;
        let uploads = [(ResultArray::EquityCurve.artifact(), equity), (ResultArray::Trades.artifact(), trades)];
        // The arrays take the first half of the upload share, the files the rest.
        let arrays_at = |uploaded: f64| serialized_at + (1.0 - serialized_at) / 2.0 * uploaded / total;
        let mut uploaded = 0.0;
        for (name, bytes) in uploads {
            let size = bytes.len() as f64;
            let upload = self.results.put_artifact(job_id, name, bytes, "application/json");
            if !keep_lease_during(upload, progress, arrays_at(uploaded)).await? {
                return Ok(false);
            }
            uploaded = (uploaded + size).min(total);
        }
        let files = match self.store_files(job_id, run, progress, arrays_at(total)).await? {
            FilesOutcome::Stored(files) => Some(files),
            FilesOutcome::Failed => None,
            FilesOutcome::Lost => return Ok(false),
        };
        let stored = StoredResult {
            summary: ResultSummary::of(result),
            pages,
            benchmark: Some(result.benchmark.clone()),
            provenance: Some(result.provenance.clone()),
            files,
        };
        let upload = self.results.put_artifact(job_id, RESULT_ARTIFACT, to_json(&stored), "application/json");
        keep_lease_during(upload, progress, 0.99).await
    }

    /// The downloadable files (`pipai_artifacts::files`, then `report.html` from
    /// `pipai_report::render_run`) at `results/{job_id}/{name}`, made and uploaded one at a time
    /// so one file's bytes are held at once. A file that cannot be made or uploaded, or no time
    /// left before the invocation's deadline (less than twice `deadline_margin_ms`), is logged
    /// and leaves the job without files ([`FilesOutcome::Failed`]): the result itself is never
    /// lost for them (the artifacts route then answers 409; what was uploaded goes with the job).
    async fn store_files(
        &self,
        job_id: &JobId,
        FinishedRun { backtest, config, data, deadline_ms }: FinishedRun<'_>,
        progress: &mut ProgressWriter<'_, S>,
        from: f64,
    ) -> Result<FilesOutcome, StoreError> {
        let files = match pipai_artifacts::files(backtest, config, data) {
            Ok(files) => files,
            Err(e) => {
                tracing::error!(error = %e, "artifact files not written; the job keeps its result without them");
                return Ok(FilesOutcome::Failed);
            }
        };
        let report = std::iter::once_with(|| {
            Ok(pipai_artifacts::ArtifactFile::report_html(
                pipai_report::render_run(config, backtest, data).into_bytes(),
            ))
        });
        let count = 5 + data.len();
        let started = std::time::Instant::now();
        let mut stored = Vec::with_capacity(count);
        // Never let the files run the invocation out of time: a killed run would be delivered
        // again, and after the last delivery its job would fail, result and all.
        let files_until = deadline_ms - 2 * self.settings.deadline_margin_ms;
        for (i, file) in files.chain(report).enumerate() {
            if now_ms() >= files_until {
                tracing::error!(made = i, "no time left for the artifact files; the job keeps its result without them");
                return Ok(FilesOutcome::Failed);
            }
            let file = match file {
                Ok(file) => file,
                Err(e) => {
                    tracing::error!(error = %e, "an artifact file could not be made; the job keeps its result without files");
                    return Ok(FilesOutcome::Failed);
                }
            };
            let entry =
                StoredFile { name: file.name.clone(), content: file.content, format: file.format, bytes: file.bytes() };
            let upload = self.results.put_artifact(job_id, &file.name, file.data, file.format.content_type());
            let at = from + (0.99 - from) * i as f64 / count as f64;
            match keep_lease_during(upload, progress, at).await {
                Ok(true) => stored.push(entry),
                Ok(false) => return Ok(FilesOutcome::Lost),
                // The upload failed (or a progress write did: the `result.json` write after this
                // meets that store error again and the message is retried).
                Err(e) => {
                    tracing::error!(error = %e, file = %entry.name, "an artifact file could not be uploaded; the job keeps its result without files");
                    return Ok(FilesOutcome::Failed);
                }
            }
        }
        let bytes: u64 = stored.iter().map(|f| f.bytes).sum();
        tracing::info!(files = stored.len(), bytes, ms = started.elapsed().as_millis() as u64, "artifact files stored");
        Ok(FilesOutcome::Stored(stored))
    }

    async fn finish(&self, job_id: &JobId, token: &RunToken, completion: Completion) -> Result<Delivery, StoreError> {
        if let Completion::Failed(e) = &completion {
            tracing::warn!(code = ?e.code, message = %e.message, "job failed");
        }
        if !self.store.complete_job(job_id, token, now_ms(), &completion).await? {
            tracing::info!("job was cancelled or taken over before completion; result discarded");
        }
        Ok(Delivery::Done)
    }

    /// Runs the engine on a blocking thread while this task writes progress and watches for a
    /// cancel (a failed conditional progress write) and the deadline.
    async fn simulate(
        &self,
        config: JobConfig,
        data: Vec<Bars>,
        deadline_ms: i64,
        writer: &mut ProgressWriter<'_, S>,
    ) -> Result<RunOutcome, StoreError> {
        let progress = Arc::new(AtomicU64::new(0f64.to_bits()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (progress.clone(), stop.clone());
        let mut engine = tokio::task::spawn_blocking(move || {
            let mut observer = |fraction: f64| {
                p.store(fraction.to_bits(), Ordering::Relaxed);
                if s.load(Ordering::Relaxed) {
                    Control::Cancel
                } else {
                    Control::Continue
                }
            };
            let run = run_engine(&config, &data, &mut observer);
            (run, data)
        });
        let mut timed_out = false;
        let mut lost = false;
        let joined = loop {
            // Checked before waiting, so a run that starts with no time left stops at once.
            let now = now_ms();
            if now >= deadline_ms - self.settings.deadline_margin_ms && !timed_out {
                timed_out = true;
                stop.store(true, Ordering::Relaxed);
            }
            let current = LOAD_SHARE + (SIMULATION_END - LOAD_SHARE) * f64::from_bits(progress.load(Ordering::Relaxed));
            if !lost && !timed_out && !writer.report(current, now).await? {
                lost = true;
                stop.store(true, Ordering::Relaxed);
            }
            let wait = Duration::from_millis(self.settings.min_write_gap_ms.max(50));
            tokio::select! {
                joined = &mut engine => break joined,
                _ = tokio::time::sleep(wait) => {}
            }
        };
        Ok(match joined {
            Ok((Ok(backtest), data)) if !lost => RunOutcome::Finished(Box::new(backtest), data),
            Ok((Ok(_), _)) => RunOutcome::Stopped,
            Ok((Err(EngineError::Cancelled), _)) if timed_out => RunOutcome::Failed(
                FailCode::Timeout,
                "the simulation did not finish within the worker's time limit; try a shorter window or a coarser timeframe".into(),
            ),
            Ok((Err(EngineError::Cancelled), _)) => RunOutcome::Stopped,
            Ok((Err(EngineError::Data(m)), _)) => RunOutcome::Failed(FailCode::DataUnavailable, m),
            Ok((Err(EngineError::Config(e)), _)) => RunOutcome::Failed(FailCode::SimulationError, e.to_string()),
            Err(join) => {
                tracing::error!(error = %join, "the simulation panicked");
                RunOutcome::Failed(FailCode::SimulationError, "the simulation stopped on an internal error".into())
            }
        })
    }

    /// A message that reached the dead-letter queue: fail its job unless it is terminal or a
    /// live run holds it (then try again later, so a crash of that run still ends the job).
    #[tracing::instrument(skip_all, fields(job_id = %job_id, receive_count))]
    pub async fn process_dead_letter(&self, job_id: &JobId, receive_count: u32) -> Result<Delivery, StoreError> {
        let error = JobError::new(
            FailCode::Internal,
            format!("the job could not be run: every delivery attempt failed ({receive_count} receives)"),
        );
        Ok(match self.store.fail_abandoned(job_id, now_ms(), &error).await? {
            AbandonOutcome::Failed => {
                tracing::warn!("dead-lettered job marked failed");
                Delivery::Done
            }
            AbandonOutcome::AlreadyTerminal | AbandonOutcome::NotFound => Delivery::Done,
            AbandonOutcome::StillLeased { until_ms } => {
                tracing::info!(until_ms, "dead-lettered job still leased by a run; retrying later");
                Delivery::Retry
            }
        })
    }
}

/// Waits for `write`, writing progress `at` on the heartbeat meanwhile (an upload may outlast
/// the lease); `Ok(false)` as soon as the run no longer holds the job.
async fn keep_lease_during<S: JobStore>(
    write: impl std::future::Future<Output = Result<(), StoreError>>,
    progress: &mut ProgressWriter<'_, S>,
    at: f64,
) -> Result<bool, StoreError> {
    tokio::pin!(write);
    let tick = Duration::from_millis(progress.settings.heartbeat_ms.max(50));
    loop {
        if !progress.report(at, now_ms()).await? {
            return Ok(false);
        }
        tokio::select! {
            written = &mut write => return written.map(|()| true),
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

/// A run that finished: the engine's answer, the config and the bars it was given.
#[derive(Clone, Copy)]
struct FinishedRun<'a> {
    backtest: &'a pipai_engine::Backtest,
    config: &'a JobConfig,
    data: &'a [Bars],
    /// When the invocation will be killed: the files give way to the result before it.
    deadline_ms: i64,
}

/// What became of a done job's downloadable files.
enum FilesOutcome {
    /// All uploaded, listed for `result.json`.
    Stored(Vec<StoredFile>),
    /// Not all could be made or uploaded (logged): the job is done without them.
    Failed,
    /// The run no longer holds the job.
    Lost,
}

enum RunOutcome {
    /// The run, and the bars it was given (for the downloadable files).
    Finished(Box<pipai_engine::Backtest>, Vec<Bars>),
    Failed(FailCode, String),
    /// Cancelled by the user, or the lease was lost: nothing more to write.
    Stopped,
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("results serialize")
}
