//! Sweeps: the SweepsTable stream (the outbox relay: a stored sweep sends its chunk messages)
//! and the chunk queue (and its dead-letter queue) to the chunk worker.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use pipai_service::ports::{MarketData, ResultStore};
use pipai_service::sweep_api::relay_sweep_insert;
use pipai_service::sweep_ranking::store_ranking;
use pipai_service::sweep_worker::SweepWorker;
use pipai_service::sweeps::{ChunkMessage, SweepQueue, SweepRecord, SweepStore};
use pipai_service::worker::Delivery;

use crate::config::queue_name;

/// Relays every inserted sweep (`decode` gives `None` for records that are not a new sweep);
/// stops at the first failure, reported so Lambda retries from it.
pub async fn handle_stream_batch<Q: SweepQueue>(
    queue: &Q,
    event: Event,
    decode: impl Fn(&EventRecord) -> Result<Option<SweepRecord>, String>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        let Some(sweep) = decoded(record, &decode) else { continue };
        if let Err(e) = relay_sweep_insert(queue, &sweep).await {
            tracing::warn!(sweep_id = %sweep.id, error = %pipai_service::error::report(&e), "relay failed; retrying from it");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            break;
        }
        tracing::info!(sweep_id = %sweep.id, chunks = sweep.n_chunks, "chunks enqueued");
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

/// The ranking step of the SweepsTable stream: every ended sweep without a stored ranking
/// (`decode`: `pipai_aws::ended_sweep`) gets it stored (`sweep_ranking::store_ranking`,
/// idempotent); stops at the first failure, reported so Lambda retries from it.
pub async fn store_ended_rankings<S: SweepStore, R: ResultStore>(
    store: &S,
    results: &R,
    event: &Event,
    decode: impl Fn(&EventRecord) -> Result<Option<SweepRecord>, String>,
) -> Vec<DynamoDbBatchItemFailure> {
    for record in &event.records {
        let Some(sweep) = decoded(record, &decode) else { continue };
        match store_ranking(store, results, &sweep.id).await {
            Ok(outcome) => tracing::info!(sweep_id = %sweep.id, ?outcome, "sweep ranking"),
            Err(e) => {
                tracing::warn!(sweep_id = %sweep.id, error = %pipai_service::error::report(&e), "ranking not stored; retrying from it");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                return vec![failure];
            }
        }
    }
    Vec::new()
}

/// The sweep `decode` finds in `record`; an undecodable record is logged and skipped.
fn decoded(
    record: &EventRecord,
    decode: impl Fn(&EventRecord) -> Result<Option<SweepRecord>, String>,
) -> Option<SweepRecord> {
    decode(record).unwrap_or_else(|e| {
        tracing::error!(event_id = %record.event_id, error = %e, "undecodable sweep stream record skipped");
        None
    })
}
