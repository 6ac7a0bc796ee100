//! The jobs table's DynamoDB stream: records in order, stopping at the first that cannot be
//! applied, which is reported (with its sequence number) so Lambda retries from there; bisect
//! and a finite retry count in the event source mapping bound the damage of a poison record.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use pipai_service::events::{apply_change, JobChange};
use pipai_service::notifier::NotificationQueue;
use pipai_service::ports::{JobQueue, JobStore};

pub async fn handle_batch<S, Q>(
    store: &S,
    queue: &Q,
    event: Event,
    decode: impl Fn(&EventRecord) -> Result<JobChange, String>,
) -> DynamoDbEventResponse
where
    S: JobStore,
    Q: JobQueue + NotificationQueue,
{
    let mut failures = Vec::new();
    for record in &event.records {
        let change = match decode(record) {
            Ok(c) => c,
            Err(e) => {
                // Not a job image (a malformed or foreign record): retrying cannot fix it.
                tracing::error!(event_id = %record.event_id, error = %e, "undecodable stream record skipped");
                continue;
            }
        };
        if let Err(e) = apply_change(store, queue, &change).await {
            tracing::warn!(
                job_id = %change.job_id,
                error = %pipai_service::error::report(&e),
                "stream record failed; retrying from it"
            );
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            failures.push(failure);
            break;
        }
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures;
    response
}
