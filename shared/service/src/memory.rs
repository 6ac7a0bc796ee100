//! In-memory implementations of every port, with the same conditional semantics as the
//! DynamoDB ones: for unit tests of the handlers, worker and stream logic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use pipai_engine::{Bars, Timeframe};
use pipai_market_data::Coverage;

use crate::ids::{JobId, KeyId, RunToken, StrategyId, SweepId, UserId};
use crate::model::{ApiKeyRecord, JobError, JobRecord, JobStatus, KeyStatus, StrategyRecord};
use crate::notifier::{NotificationLog, NotificationMessage, NotificationQueue, NotificationRecord};
use crate::ports::*;
use crate::sweeps::*;
use crate::webhook::Subject;

#[derive(Default)]
struct State {
    jobs: HashMap<JobId, JobRecord>,
    active: HashMap<UserId, u32>,
    keys: BTreeMap<KeyId, ApiKeyRecord>,
    signatures: HashMap<(KeyId, String), i64>,
    weights: HashMap<(KeyId, i64), u32>,
    queue: Vec<JobId>,
    artifacts: HashMap<(JobId, String), Vec<u8>>,
    bars: HashMap<(String, Timeframe), (Bars, bool)>,
    strategies: HashMap<StrategyId, StrategyRecord>,
    // Sweeps (crate::sweeps): they share `active` with the jobs.
    sweeps: HashMap<SweepId, SweepRecord>,
    chunks: BTreeMap<(SweepId, u32), ChunkRecord>,
    chunk_queue: Vec<(SweepId, u32)>,
    ranking_pages: BTreeMap<(SweepId, u32), Vec<u8>>,
    /// The notifications queue: messages and their delays in seconds.
    notifications: Vec<(NotificationMessage, u32)>,
}

/// Every port in one struct, behind a mutex.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("no panics while holding the lock"))
    }

    pub fn active_jobs(&self, user_id: &UserId) -> u32 {
        self.with(|s| s.active.get(user_id).copied().unwrap_or(0))
    }

    /// Takes every enqueued job id.
    pub fn drain_queue(&self) -> Vec<JobId> {
        self.with(|s| std::mem::take(&mut s.queue))
    }

    pub fn put_bars(&self, symbol: &str, timeframe: Timeframe, bars: Bars, synthetic: bool) {
        self.with(|s| s.bars.insert((symbol.to_string(), timeframe), (bars, synthetic)));
    }

    pub fn put_job_raw(&self, job: JobRecord) {
        self.with(|s| s.jobs.insert(job.id.clone(), job));
    }

    /// How many artifacts the job has stored.
    pub fn artifact_count(&self, job_id: &JobId) -> usize {
        self.with(|s| s.artifacts.keys().filter(|(id, _)| id == job_id).count())
    }
}

fn lease_live(job: &JobRecord, now_ms: i64) -> Option<i64> {
    job.lease_until_ms.filter(|&until| job.status == JobStatus::Running && until > now_ms)
}

impl JobStore for MemoryStore {
    async fn create_job(&self, job: &JobRecord, max_active: u32) -> Result<CreateOutcome, StoreError> {
        self.with(|s| {
            if s.jobs.contains_key(&job.id) {
                return Ok(CreateOutcome::IdTaken);
            }
            let active = s.active.entry(job.user_id.clone()).or_insert(0);
            if *active >= max_active {
                return Ok(CreateOutcome::TooManyActive);
            }
            *active += 1;
            s.jobs.insert(job.id.clone(), job.clone());
            Ok(CreateOutcome::Created)
        })
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.with(|s| s.jobs.get(id).cloned()))
    }

    async fn list_jobs(&self, q: &ListQuery) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.with(|s| {
            let mut jobs: Vec<JobRecord> = s
                .jobs
                .values()
                .filter(|j| j.user_id == q.user_id)
                .filter(|j| q.status.is_none_or(|st| j.status == st))
                .filter(|j| q.template_id.as_ref().is_none_or(|t| j.template_id() == t))
                .filter(|j| q.from_ms.is_none_or(|f| j.submitted_at_ms >= f))
                .filter(|j| q.to_ms.is_none_or(|t| j.submitted_at_ms < t))
                .filter(|j| q.after.as_ref().is_none_or(|a| (j.submitted_at_ms, &j.id) < (a.submitted_at_ms, &a.id)))
                .cloned()
                .collect();
            jobs.sort_by(|a, b| (b.submitted_at_ms, &b.id).cmp(&(a.submitted_at_ms, &a.id)));
            jobs.truncate(q.limit);
            jobs
        }))
    }

    async fn cancel_job(&self, id: &JobId, user_id: &UserId, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        Ok(self.with(|s| match s.jobs.get_mut(id) {
            Some(j) if &j.user_id == user_id => {
                if j.status.is_terminal() {
                    CancelOutcome::AlreadyTerminal(j.status)
                } else {
                    j.status = JobStatus::Cancelled;
                    j.finished_at_ms = Some(now_ms);
                    CancelOutcome::Cancelled(Box::new(j.clone()))
                }
            }
            _ => CancelOutcome::NotFound,
        }))
    }

    async fn claim_job(
        &self,
        id: &JobId,
        token: &RunToken,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<ClaimOutcome, StoreError> {
        Ok(self.with(|s| match s.jobs.get_mut(id) {
            None => ClaimOutcome::NotFound,
            Some(j) if j.status.is_terminal() => ClaimOutcome::Terminal(j.status),
            Some(j) => match lease_live(j, now_ms) {
                Some(until_ms) => ClaimOutcome::Leased { until_ms },
                None => {
                    j.status = JobStatus::Running;
                    j.started_at_ms.get_or_insert(now_ms);
                    j.run_token = Some(token.clone());
                    j.lease_until_ms = Some(now_ms + lease_ms);
                    j.attempts += 1;
                    ClaimOutcome::Claimed(Box::new(j.clone()))
                }
            },
        }))
    }

    async fn record_progress(
        &self,
        id: &JobId,
        token: &RunToken,
        progress: f64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.jobs.get_mut(id) {
            Some(j) if j.status == JobStatus::Running && j.run_token.as_ref() == Some(token) => {
                j.progress = progress;
                j.lease_until_ms = Some(now_ms + lease_ms);
                true
            }
            _ => false,
        }))
    }

    async fn complete_job(
        &self,
        id: &JobId,
        token: &RunToken,
        now_ms: i64,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.jobs.get_mut(id) {
            Some(j) if j.status == JobStatus::Running && j.run_token.as_ref() == Some(token) => {
                j.finished_at_ms = Some(now_ms);
                j.lease_until_ms = None;
                match completion {
                    Completion::Done { summary } => {
                        j.status = JobStatus::Done;
                        j.progress = 1.0;
                        j.summary = Some((**summary).clone());
                    }
                    Completion::Failed(e) => {
                        j.status = JobStatus::Failed;
                        j.error = Some(e.clone());
                    }
                }
                true
            }
            _ => false,
        }))
    }

    async fn fail_abandoned(&self, id: &JobId, now_ms: i64, error: &JobError) -> Result<AbandonOutcome, StoreError> {
        Ok(self.with(|s| match s.jobs.get_mut(id) {
            None => AbandonOutcome::NotFound,
            Some(j) if j.status.is_terminal() => AbandonOutcome::AlreadyTerminal,
            Some(j) => match lease_live(j, now_ms) {
                Some(until_ms) => AbandonOutcome::StillLeased { until_ms },
                None => {
                    j.status = JobStatus::Failed;
                    j.error = Some(error.clone());
                    j.finished_at_ms = Some(now_ms);
                    j.lease_until_ms = None;
                    AbandonOutcome::Failed
                }
            },
        }))
    }

    async fn release_slot(&self, id: &JobId, user_id: &UserId) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let Some(j) = s.jobs.get_mut(id) else { return false };
            if !j.status.is_terminal() || j.slot_released {
                return false;
            }
            j.slot_released = true;
            let active = s.active.entry(user_id.clone()).or_insert(0);
            *active = active.saturating_sub(1);
            true
        }))
    }

    async fn delete_job(&self, id: &JobId, user_id: &UserId) -> Result<DeleteOutcome, StoreError> {
        Ok(self.with(|s| match s.jobs.get(id) {
            Some(j) if &j.user_id == user_id => {
                if !j.status.is_terminal() {
                    DeleteOutcome::NotTerminal(j.status)
                } else if !j.slot_released {
                    DeleteOutcome::SlotHeld
                } else {
                    s.jobs.remove(id);
                    DeleteOutcome::Deleted
                }
            }
            _ => DeleteOutcome::NotFound,
        }))
    }

    async fn get_jobs(&self, ids: &[JobId]) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.with(|s| ids.iter().filter_map(|id| s.jobs.get(id).cloned()).collect()))
    }
}

impl KeyStore for MemoryStore {
    async fn get_key(&self, key_id: &KeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.with(|s| s.keys.get(key_id).cloned()))
    }

    async fn put_key(&self, key: &ApiKeyRecord) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            if s.keys.contains_key(&key.key_id) {
                return false;
            }
            s.keys.insert(key.key_id.clone(), key.clone());
            true
        }))
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(self.with(|s| s.keys.values().cloned().collect()))
    }

    async fn set_key_status(&self, key_id: &KeyId, status: KeyStatus) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.keys.get_mut(key_id).map(|k| k.status = status).is_some()))
    }
}

impl RequestLog for MemoryStore {
    async fn remember_signature(&self, key_id: &KeyId, signature: &str, expires_ms: i64) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.signatures.insert((key_id.clone(), signature.to_string()), expires_ms).is_none()))
    }

    async fn add_weight(&self, key_id: &KeyId, window_start_ms: i64, weight: u32) -> Result<u32, StoreError> {
        Ok(self.with(|s| {
            let w = s.weights.entry((key_id.clone(), window_start_ms)).or_insert(0);
            *w += weight;
            *w
        }))
    }
}

impl JobQueue for MemoryStore {
    async fn enqueue(&self, job_id: &JobId) -> Result<(), StoreError> {
        self.with(|s| s.queue.push(job_id.clone()));
        Ok(())
    }
}

impl ResultStore for MemoryStore {
    async fn put_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        bytes: Vec<u8>,
        _content_type: &str,
    ) -> Result<(), StoreError> {
        self.with(|s| s.artifacts.insert((job_id.clone(), name.to_string()), bytes));
        Ok(())
    }

    async fn get_artifact(&self, job_id: &JobId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|s| s.artifacts.get(&(job_id.clone(), name.to_string())).cloned()))
    }

    async fn get_artifact_range(
        &self,
        job_id: &JobId,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|s| match s.artifacts.get(&(job_id.clone(), name.to_string())) {
            None => Ok(None),
            Some(bytes) if range.start < range.end && range.end <= bytes.len() as u64 => {
                Ok(Some(bytes[range.start as usize..range.end as usize].to_vec()))
            }
            Some(bytes) => Err(StoreError::new(format!("{job_id}/{name}: range {range:?} of {} bytes", bytes.len()))),
        })
    }

    async fn put_sweep_ranking_page(&self, sweep_id: &SweepId, page: u32, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.with(|s| s.ranking_pages.insert((sweep_id.clone(), page), bytes));
        Ok(())
    }

    async fn get_sweep_ranking_page(&self, sweep_id: &SweepId, page: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|s| s.ranking_pages.get(&(sweep_id.clone(), page)).cloned()))
    }

    async fn delete_artifacts(&self, job_id: &JobId) -> Result<usize, StoreError> {
        Ok(self.with(|s| {
            let before = s.artifacts.len();
            s.artifacts.retain(|(id, _), _| id != job_id);
            before - s.artifacts.len()
        }))
    }

    /// `memory://results/{job_id}/{name}?expires_in={seconds}`: tests read the artifact back
    /// with [`MemoryStore::artifact_of_url`].
    async fn presign_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        expires_in: std::time::Duration,
    ) -> Result<String, StoreError> {
        Ok(format!("memory://results/{job_id}/{name}?expires_in={}", expires_in.as_secs()))
    }
}

impl MemoryStore {
    /// The bytes a [`ResultStore::presign_artifact`] URL of this store points at.
    pub fn artifact_of_url(&self, url: &str) -> Option<Vec<u8>> {
        let path = url.strip_prefix("memory://results/")?.split('?').next()?;
        let (job_id, name) = path.split_once('/')?;
        self.with(|s| {
            s.artifacts.iter().find(|((id, n), _)| id.as_str() == job_id && n == name).map(|(_, b)| b.clone())
        })
    }
}

impl MarketData for MemoryStore {
    async fn coverage(&self, symbol: &str, timeframe: Timeframe) -> Result<Option<Coverage>, StoreError> {
        Ok(self.with(|s| {
            s.bars
                .get(&(symbol.to_string(), timeframe))
                .and_then(|(b, _)| Coverage::from_bars(symbol, timeframe, b).ok())
        }))
    }

    async fn catalog(&self) -> Result<Vec<(Coverage, bool)>, StoreError> {
        Ok(self.with(|s| {
            let mut out: Vec<(Coverage, bool)> = s
                .bars
                .iter()
                .filter_map(|((sym, tf), (b, synthetic))| {
                    Coverage::from_bars(sym, *tf, b).ok().map(|c| (c, *synthetic))
                })
                .collect();
            out.sort_by(|a, b| (&a.0.symbol, a.0.timeframe).cmp(&(&b.0.symbol, b.0.timeframe)));
            out
        }))
    }

    async fn load_bars(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Bars, DataError> {
        self.with(|s| match s.bars.get(&(symbol.to_string(), timeframe)) {
            Some((b, _)) => Ok(b.slice(b.window(start_ms, end_ms))),
            None => Err(DataError::Unavailable(format!("no {timeframe} bars for {symbol}"))),
        })
    }
}

impl StrategyStore for MemoryStore {
    async fn create_strategy(&self, strategy: &StrategyRecord) -> Result<StrategyCreateOutcome, StoreError> {
        Ok(self.with(|s| {
            if s.strategies.contains_key(&strategy.id) {
                return StrategyCreateOutcome::IdTaken;
            }
            s.strategies.insert(strategy.id.clone(), strategy.clone());
            StrategyCreateOutcome::Created
        }))
    }

    async fn get_strategy(&self, id: &StrategyId) -> Result<Option<StrategyRecord>, StoreError> {
        Ok(self.with(|s| s.strategies.get(id).cloned()))
    }

    async fn list_strategies(&self, q: &StrategyListQuery) -> Result<Vec<StrategyRecord>, StoreError> {
        Ok(self.with(|s| {
            let mut out: Vec<StrategyRecord> = s
                .strategies
                .values()
                .filter(|st| st.user_id == q.user_id)
                .filter(|st| q.after.as_ref().is_none_or(|a| (st.updated_at_ms, &st.id) < (a.updated_at_ms, &a.id)))
                .cloned()
                .collect();
            out.sort_by(|a, b| (b.updated_at_ms, &b.id).cmp(&(a.updated_at_ms, &a.id)));
            out.truncate(q.limit);
            out
        }))
    }

    async fn update_strategy(&self, updated: &StrategyRecord) -> Result<StrategyUpdateOutcome, StoreError> {
        Ok(self.with(|s| match s.strategies.get_mut(&updated.id) {
            Some(st) if st.user_id == updated.user_id => {
                if st.version + 1 != updated.version {
                    return StrategyUpdateOutcome::VersionConflict;
                }
                *st = updated.clone();
                StrategyUpdateOutcome::Updated
            }
            _ => StrategyUpdateOutcome::NotFound,
        }))
    }

    async fn delete_strategy(&self, id: &StrategyId, user_id: &UserId) -> Result<StrategyDeleteOutcome, StoreError> {
        Ok(self.with(|s| match s.strategies.get(id) {
            Some(st) if &st.user_id == user_id => {
                s.strategies.remove(id);
                StrategyDeleteOutcome::Deleted
            }
            _ => StrategyDeleteOutcome::NotFound,
        }))
    }
}

// ---------------------------------------------------------------- sweeps

impl MemoryStore {
    /// Takes every enqueued sweep chunk message.
    pub fn drain_chunk_queue(&self) -> Vec<(SweepId, u32)> {
        self.with(|s| std::mem::take(&mut s.chunk_queue))
    }
}

/// Gives the sweep's slot back if it is terminal and still holds it.
fn release_sweep_slot(active: &mut HashMap<UserId, u32>, sweep: &mut SweepRecord) {
    if sweep.status.is_terminal() && !sweep.slot_released {
        sweep.slot_released = true;
        let n = active.entry(sweep.user_id.clone()).or_insert(0);
        *n = n.saturating_sub(1);
    }
}

impl SweepStore for MemoryStore {
    async fn create_sweep(&self, sweep: &SweepRecord, max_active: u32) -> Result<CreateOutcome, StoreError> {
        self.with(|s| {
            if s.sweeps.contains_key(&sweep.id) {
                return Ok(CreateOutcome::IdTaken);
            }
            let active = s.active.entry(sweep.user_id.clone()).or_insert(0);
            if *active >= max_active {
                return Ok(CreateOutcome::TooManyActive);
            }
            *active += 1;
            s.sweeps.insert(sweep.id.clone(), sweep.clone());
            Ok(CreateOutcome::Created)
        })
    }

    async fn get_sweep(&self, id: &SweepId) -> Result<Option<SweepRecord>, StoreError> {
        Ok(self.with(|s| s.sweeps.get(id).cloned()))
    }

    async fn list_sweeps(&self, q: &SweepListQuery) -> Result<Vec<SweepRecord>, StoreError> {
        Ok(self.with(|s| {
            let mut sweeps: Vec<SweepRecord> = s
                .sweeps
                .values()
                .filter(|w| w.user_id == q.user_id)
                .filter(|w| q.status.is_none_or(|st| w.status == st))
                .filter(|w| q.after.as_ref().is_none_or(|a| (w.submitted_at_ms, &w.id) < (a.submitted_at_ms, &a.id)))
                .cloned()
                .collect();
            sweeps.sort_by(|a, b| (b.submitted_at_ms, &b.id).cmp(&(a.submitted_at_ms, &a.id)));
            sweeps.truncate(q.limit);
            sweeps
        }))
    }

    async fn cancel_sweep(
        &self,
        id: &SweepId,
        user_id: &UserId,
        now_ms: i64,
    ) -> Result<SweepCancelOutcome, StoreError> {
        Ok(self.with(|s| match s.sweeps.get_mut(id) {
            Some(w) if &w.user_id == user_id => {
                if w.status.is_terminal() {
                    return SweepCancelOutcome::AlreadyTerminal(w.status);
                }
                w.status = JobStatus::Cancelled;
                w.finished_at_ms = Some(now_ms);
                w.version += 1;
                release_sweep_slot(&mut s.active, w);
                SweepCancelOutcome::Cancelled(Box::new(w.clone()))
            }
            _ => SweepCancelOutcome::NotFound,
        }))
    }

    async fn record_chunk(&self, chunk: &ChunkRecord, updated: &SweepRecord) -> Result<ChunkOutcome, StoreError> {
        Ok(self.with(|s| {
            let key = (chunk.sweep_id.clone(), chunk.chunk);
            if s.chunks.contains_key(&key) {
                return ChunkOutcome::Duplicate;
            }
            let Some(stored) = s.sweeps.get_mut(&updated.id) else {
                return ChunkOutcome::NotFound;
            };
            if stored.version + 1 != updated.version {
                return ChunkOutcome::VersionConflict;
            }
            *stored = updated.clone();
            release_sweep_slot(&mut s.active, stored);
            s.chunks.insert(key, chunk.clone());
            ChunkOutcome::Recorded
        }))
    }

    async fn get_chunks(&self, id: &SweepId) -> Result<Vec<ChunkRecord>, StoreError> {
        Ok(self.with(|s| s.chunks.range((id.clone(), 0)..=(id.clone(), u32::MAX)).map(|(_, c)| c.clone()).collect()))
    }

    async fn mark_ranking(&self, id: &SweepId, mark: &RankingMark) -> Result<MarkOutcome, StoreError> {
        Ok(self.with(|s| match s.sweeps.get_mut(id) {
            None => MarkOutcome::NotFound,
            Some(w) if !w.status.is_terminal() => MarkOutcome::NotEnded,
            Some(w) if w.ranking.is_some() => MarkOutcome::AlreadyMarked,
            Some(w) => {
                w.ranking = Some(*mark);
                w.version += 1;
                MarkOutcome::Marked
            }
        }))
    }
}

impl MemoryStore {
    /// How many ranking pages of the sweep are stored.
    pub fn ranking_pages(&self, id: &SweepId) -> usize {
        self.with(|s| s.ranking_pages.range((id.clone(), 0)..=(id.clone(), u32::MAX)).count())
    }
}

impl SweepQueue for MemoryStore {
    async fn enqueue_chunks(&self, id: &SweepId, n_chunks: u32) -> Result<(), StoreError> {
        self.with(|s| s.chunk_queue.extend((0..n_chunks).map(|c| (id.clone(), c))));
        Ok(())
    }
}

// ---------------------------------------------------------------- completion webhooks

impl MemoryStore {
    /// Takes every queued notification with its delay in seconds.
    pub fn drain_notifications(&self) -> Vec<(NotificationMessage, u32)> {
        self.with(|s| std::mem::take(&mut s.notifications))
    }
}

impl NotificationLog for MemoryStore {
    async fn record_notification(&self, subject: &Subject, record: &NotificationRecord) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let all = match subject {
                Subject::Job(id) => s.jobs.get_mut(id).map(|job| &mut job.webhook.notifications),
                // A sweep's version is bumped, as by any other write to it (DynamoDB's too).
                Subject::Sweep(id) => s.sweeps.get_mut(id).map(|sweep| {
                    sweep.version += 1;
                    &mut sweep.webhook.notifications
                }),
            };
            let Some(all) = all else { return false };
            match all.iter_mut().find(|r| r.event_id == record.event_id) {
                Some(r) => *r = record.clone(),
                None => all.push(record.clone()),
            }
            true
        }))
    }
}

impl NotificationQueue for MemoryStore {
    async fn send_notification(&self, message: &NotificationMessage, delay_s: u32) -> Result<(), StoreError> {
        self.with(|s| s.notifications.push((message.clone(), delay_s)));
        Ok(())
    }
}
