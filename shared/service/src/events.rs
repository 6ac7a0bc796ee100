//! Status bookkeeping from the jobs table's change stream.
//!
//! - Outbox relay: a job inserted as `queued` is sent to the queue. The insert and its stream
//!   record are one write, so every stored job is enqueued (the stream retries until the send
//!   succeeds); a duplicate send is harmless because the worker's claim is conditional.
//! - Slot release: a job seen in a terminal state gives its user's active slot back, exactly
//!   once (a conditional flag on the job), so duplicate and reordered records change nothing.
//! - A removal (`DELETE /v1/backtest/jobs/{id}`, or the TTL) is never a slot release: a job is
//!   deleted only once its slot was given back (`DeleteOutcome::SlotHeld` in `ports`), and a late
//!   terminal record of a deleted job finds no job to flag.
//! - Completion webhook: a job with a `notify_url` whose record moves it into a terminal state
//!   (old image not terminal) gets its notification enqueued (`crate::notifier`). Later writes
//!   to the terminal job (slot flag, notification records) are not transitions and enqueue
//!   nothing; a replayed transition enqueues the same event id again, which the notifier drops
//!   once delivered.

use crate::ids::{JobId, UserId};
use crate::model::JobStatus;
use crate::notifier::{job_notification, NotificationQueue};
use crate::ports::{JobQueue, JobStore, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// What the bookkeeping needs from one stream record's new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobChange {
    pub kind: ChangeKind,
    pub job_id: JobId,
    /// `None` only for a removal whose old image has no owner.
    pub user_id: Option<UserId>,
    /// `None` for a removal (or an image without a status).
    pub status: Option<JobStatus>,
    pub slot_released: bool,
    /// The old image's status (`None` for an insert, or an old image without one).
    pub old_status: Option<JobStatus>,
    /// The job has a `notify_url`.
    pub notify: bool,
}

/// Applies one change. `Err` means "retry this record and the ones after it".
#[tracing::instrument(skip_all, fields(job_id = %change.job_id))]
pub async fn apply_change<S: JobStore, Q: JobQueue + NotificationQueue>(
    store: &S,
    queue: &Q,
    change: &JobChange,
) -> Result<(), StoreError> {
    if change.kind == ChangeKind::Insert && change.status == Some(JobStatus::Queued) {
        queue.enqueue(&change.job_id).await?;
        tracing::info!("enqueued");
    }
    let terminal = change.kind != ChangeKind::Remove && change.status.is_some_and(JobStatus::is_terminal);
    if let (true, false, Some(user_id)) = (terminal, change.slot_released, &change.user_id) {
        let released = store.release_slot(&change.job_id, user_id).await?;
        tracing::info!(released, "terminal job; slot release");
    }
    let became_terminal = terminal && !change.old_status.is_some_and(JobStatus::is_terminal);
    if let (true, true, Some(status)) = (became_terminal, change.notify, change.status) {
        if let Some(message) = job_notification(&change.job_id, status) {
            queue.send_notification(&message, 0).await?;
            tracing::info!(event_id = %message.event_id, "notification enqueued");
        }
    }
    Ok(())
}
