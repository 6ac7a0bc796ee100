//! The sweeps table's stream, the completion webhook part (the outbox relay of a new sweep's
//! chunks is `sweep_api::relay_sweep_insert`): a sweep with a `notify_url` whose record moves
//! it into a terminal state (old image not terminal) gets its notification enqueued
//! (`crate::notifier`), as `events::apply_change` does for jobs. Later writes to the terminal
//! sweep (notification records) are not transitions and enqueue nothing; a replayed transition
//! enqueues the same event id again, which the notifier drops once delivered.

use crate::events::ChangeKind;
use crate::model::JobStatus;
use crate::notifier::{sweep_notification, NotificationQueue};
use crate::ports::StoreError;
use crate::sweeps::SweepRecord;

/// One stream record of a sweep item (`INSERT` or `MODIFY`; chunk items and removals are not
/// sweep changes).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepChange {
    pub kind: ChangeKind,
    /// The new image's sweep.
    pub sweep: SweepRecord,
    /// The old image's status (`None` for an insert, or an old image without one).
    pub old_status: Option<JobStatus>,
}

impl SweepChange {
    /// The record moves the sweep into a terminal state.
    pub fn ends_the_sweep(&self) -> bool {
        self.kind != ChangeKind::Remove
            && self.sweep.status.is_terminal()
            && !self.old_status.is_some_and(JobStatus::is_terminal)
    }

    /// The sweep has ended and its full ranking is not stored yet (`sweep_ranking`): every
    /// write of an ended sweep before the ranking's mark is a cue (storing is idempotent); the
    /// mark's own write is not one.
    pub fn ranking_due(&self) -> bool {
        self.kind != ChangeKind::Remove && self.sweep.status.is_terminal() && self.sweep.ranking.is_none()
    }
}

/// Enqueues the sweep's completion notification when `change` ends a sweep that has a webhook;
/// `Ok(true)` when it did. `Err` means "retry this record".
pub async fn notify_sweep_end<Q: NotificationQueue>(queue: &Q, change: &SweepChange) -> Result<bool, StoreError> {
    if !change.ends_the_sweep() || change.sweep.webhook.notify_url.is_none() {
        return Ok(false);
    }
    let Some(message) = sweep_notification(&change.sweep.id, change.sweep.status) else { return Ok(false) };
    queue.send_notification(&message, 0).await?;
    tracing::info!(sweep_id = %change.sweep.id, event_id = %message.event_id, "notification enqueued");
    Ok(true)
}
