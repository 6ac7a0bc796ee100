//! The worker's SQS batches: every message is one job id. Messages from the dead-letter queue
//! (the same function is subscribed to it) fail their job instead of running it. Failures are
//! reported per message (`ReportBatchItemFailures`), so one bad message never redelivers the
//! others.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use pipai_service::model::QueueMessage;
use pipai_service::notifier::{NotificationLog, NotificationMessage, NotificationQueue, Notifier, WebhookSender};
use pipai_service::ports::{JobStore, KeyStore, MarketData, ResultStore};
use pipai_service::worker::{Delivery, Worker};

use crate::config::queue_name;

/// The invocation's deadline in epoch ms from the context's `Lambda-Runtime-Deadline-Ms`.
/// Lambda sends an epoch time; `cargo lambda watch --concurrency N` (1.9) sends the timeout as a
/// duration instead, which would time out every job at once. A value before 2001 (1e12 ms) cannot
/// be an epoch deadline, so it is taken as milliseconds from now.
pub fn invocation_deadline_ms(context_deadline: u64, now_ms: i64) -> i64 {
    const EPOCH_MS_2001: u64 = 1_000_000_000_000;
    if context_deadline >= EPOCH_MS_2001 {
        context_deadline as i64
    } else {
        tracing::debug!(context_deadline, "deadline is a duration, not an epoch time (local emulator)");
        now_ms + context_deadline as i64
    }
}

/// Handles a batch; `deadline_ms` is the invocation's deadline (epoch ms).
pub async fn handle_batch<S, R, M>(
    worker: &Worker<S, R, M>,
    dead_letter_queue: &str,
    event: SqsEvent,
    deadline_ms: i64,
) -> SqsBatchResponse
where
    S: JobStore,
    R: ResultStore,
    M: MarketData,
{
    let mut failures = Vec::new();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        match handle_message(worker, dead_letter_queue, &message, deadline_ms).await {
            Delivery::Done => {}
            Delivery::Retry => {
                // The event types are non-exhaustive: build from Default and set the field.
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

async fn handle_message<S, R, M>(
    worker: &Worker<S, R, M>,
    dead_letter_queue: &str,
    message: &SqsMessage,
    deadline_ms: i64,
) -> Delivery
where
    S: JobStore,
    R: ResultStore,
    M: MarketData,
{
    let body = message.body.as_deref().unwrap_or_default();
    let Some(job_id) = QueueMessage::job_id_of(body) else {
        // Not a job message: nothing can ever make it one, so it is dropped (and logged).
        tracing::error!(message_id = ?message.message_id, body, "not a job message; dropped");
        return Delivery::Done;
    };
    let from_dead_letters = message.event_source_arn.as_deref().is_some_and(|arn| queue_name(arn) == dead_letter_queue);
    let outcome = if from_dead_letters {
        let receives = message.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(0);
        worker.process_dead_letter(&job_id, receives).await
    } else {
        worker.process(&job_id, deadline_ms).await
    };
    outcome.unwrap_or_else(|e| {
        tracing::warn!(job_id = %job_id, error = %pipai_service::error::report(&e), "storage failure; the message will be retried");
        Delivery::Retry
    })
}

/// The notifier's batches: every message is one notification attempt; failures (storage only)
/// are reported per message and come back after the queue's visibility timeout.
pub async fn handle_notifications<S, Q, H>(notifier: &Notifier<S, Q, H>, event: SqsEvent) -> SqsBatchResponse
where
    S: JobStore + pipai_service::sweeps::SweepStore + KeyStore + NotificationLog,
    Q: NotificationQueue,
    H: WebhookSender,
{
    let mut failures = Vec::new();
    for message in event.records {
        let body = message.body.as_deref().unwrap_or_default();
        let Some(notification) = NotificationMessage::parse(body) else {
            tracing::error!(message_id = ?message.message_id, body, "not a notification message; dropped");
            continue;
        };
        let outcome = notifier.process(&notification, pipai_service::clock::now_ms()).await;
        if let Err(e) = outcome {
            tracing::warn!(event_id = %notification.event_id, error = %pipai_service::error::report(&e), "storage failure; the message will be retried");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            failures.push(failure);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

#[cfg(test)]
mod tests {
    use super::invocation_deadline_ms;

    #[test]
    fn deadlines_are_epoch_times_or_durations_from_now() {
        let now = 1_795_000_000_000;
        assert_eq!(invocation_deadline_ms(1_795_000_120_000, now), 1_795_000_120_000);
        assert_eq!(invocation_deadline_ms(180_000, now), now + 180_000);
    }
}
