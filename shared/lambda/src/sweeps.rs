//! Sweeps: the SweepsTable stream (the outbox relay: a stored sweep sends its chunk messages; a
//! sweep that ends with a webhook sends its notification) and the chunk queue (and its
//! dead-letter queue) to the chunk worker.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use pipai_service::events::ChangeKind;
use pipai_service::notifier::NotificationQueue;
use pipai_service::ports::{MarketData, ResultStore, StoreError};
use pipai_service::sweep_api::relay_sweep_insert;
use pipai_service::sweep_events::{notify_sweep_end, SweepChange};
use pipai_service::sweep_ranking::store_ranking;
use pipai_service::sweep_worker::SweepWorker;
use pipai_service::sweeps::{ChunkMessage, SweepQueue, SweepStore};
use pipai_service::worker::Delivery;

use crate::config::queue_name;

/// The sweeps table's stream, record by record: an inserted sweep has its chunks relayed; an
/// ended sweep without a stored ranking has it stored (`sweep_ranking::store_ranking`,
/// idempotent), then a sweep that this record ends has its completion notification enqueued
/// (after the ranking, so a receiver that reads `expand=leaderboard` reads the stored one).
/// `decode` gives `None` for records that are not a sweep's; stops at the first failure,
/// reported so Lambda retries from it.
pub async fn handle_stream_batch<Q: SweepQueue, N: NotificationQueue, S: SweepStore, R: ResultStore>(
    chunks: &Q,
    notifications: &N,
    store: &S,
    results: &R,
    event: Event,
    decode: impl Fn(&EventRecord) -> Result<Option<SweepChange>, String>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        let Some(change) = decoded(record, &decode) else { continue };
        let sweep = &change.sweep;
        let outcome = async {
            if change.kind == ChangeKind::Insert {
                relay_sweep_insert(chunks, sweep).await?;
                tracing::info!(sweep_id = %sweep.id, chunks = sweep.n_chunks, "chunks enqueued");
            }
            if change.ranking_due() {
                let outcome = store_ranking(store, results, &sweep.id).await?;
                tracing::info!(sweep_id = %sweep.id, ?outcome, "sweep ranking");
            }
            notify_sweep_end(notifications, &change).await?;
            Ok::<(), StoreError>(())
        };
        if let Err(e) = outcome.await {
            tracing::warn!(sweep_id = %sweep.id, error = %pipai_service::error::report(&e), "stream record failed; retrying from it");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            break;
        }
    }
    response
}

/// Runs (or, from the dead-letter queue, fails) each chunk message of the batch.
pub async fn handle_chunk_batch<S: SweepStore, M: MarketData>(
    worker: &SweepWorker<S, M>,
    dead_letter_queue: &str,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let body = message.body.as_deref().unwrap_or_default();
        let Some(m) = ChunkMessage::of(body) else {
            tracing::error!(message_id = ?message.message_id, body, "not a chunk message; dropped");
            continue;
        };
        let dead = message.event_source_arn.as_deref().is_some_and(|arn| queue_name(arn) == dead_letter_queue);
        let outcome = if dead {
            worker.fail_chunk(&m.sweep_id, m.chunk).await
        } else {
            worker.process_chunk(&m.sweep_id, m.chunk).await
        };
        let retry = outcome.unwrap_or_else(|e| {
            tracing::warn!(sweep_id = %m.sweep_id, chunk = m.chunk, error = %pipai_service::error::report(&e), "storage failure; retried");
            Delivery::Retry
        }) == Delivery::Retry;
        if retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The sweep change `decode` finds in `record`; an undecodable record is logged and skipped.
fn decoded(
    record: &EventRecord,
    decode: impl Fn(&EventRecord) -> Result<Option<SweepChange>, String>,
) -> Option<SweepChange> {
    decode(record).unwrap_or_else(|e| {
        tracing::error!(event_id = %record.event_id, error = %e, "undecodable sweep stream record skipped");
        None
    })
}
