//! Status bookkeeping from the jobs table's change stream.
//!
//! - Outbox relay: a job inserted as `queued` is sent to the queue. The insert and its stream
//!   record are one write, so every stored job is enqueued (the stream retries until the send
//!   succeeds); a duplicate send is harmless because the worker's claim is conditional.
//! - Slot release: a job seen in a terminal state gives its user's active slot back, exactly
//!   once (a conditional flag on the job), so duplicate and reordered records change nothing.

use crate::model::JobStatus;
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
    pub job_id: String,
    pub user_id: String,
    /// `None` for a removal (or an image without a status).
    pub status: Option<JobStatus>,
    pub slot_released: bool,
}

/// Applies one change. `Err` means "retry this record and the ones after it".
pub async fn apply_change<S: JobStore, Q: JobQueue>(
    store: &S,
    queue: &Q,
    change: &JobChange,
) -> Result<(), StoreError> {
    if change.kind == ChangeKind::Insert && change.status == Some(JobStatus::Queued) {
        queue.enqueue(&change.job_id).await?;
        tracing::info!(job_id = %change.job_id, "enqueued");
    }
    if change.kind != ChangeKind::Remove && change.status.is_some_and(JobStatus::is_terminal) && !change.slot_released {
        let released = store.release_slot(&change.job_id, &change.user_id).await?;
        tracing::info!(job_id = %change.job_id, released, "terminal job; slot release");
    }
    Ok(())
}
