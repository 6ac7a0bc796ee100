//! job_change on real stream records: read from moto's DynamoDB Streams API, put into the exact
//! JSON shape Lambda delivers, deserialized with aws_lambda_events.

use aws_lambda_events::event::dynamodb::Event;
use pipai_aws::{job_change, DynamoStore, SqsQueue};
use pipai_service::events::{apply_change, ChangeKind};
use pipai_service::model::{JobRecord, JobStatus, QueueMessage};
use pipai_service::ports::JobStore;
use pipai_service::JobId;
use serde_json::json;

use crate::common::{config, jobs_stream_records, moto, now_ms, sdk, unique, unique_user};

#[tokio::test]
async fn job_changes_from_the_jobs_table_stream() {
    let sdk = sdk().await;
    let store = DynamoStore::from_lookup(&sdk, &moto().lookup()).unwrap();
    let user = unique_user();
    let job = JobRecord::new_queued(JobId::random(), user.clone(), config("grid"), now_ms());
    store.create_job(&job, 5).await.unwrap();
    store.cancel_job(&job.id, &user, now_ms()).await.unwrap();

    let ours = jobs_stream_records(&sdk, &job.id).await;
    assert_eq!(ours.len(), 2, "an INSERT and a MODIFY: {ours:#?}");
    let event: Event = serde_json::from_value(json!({ "Records": ours })).unwrap();

    let insert = job_change(&event.records[0]).unwrap();
    assert_eq!(
        (
            insert.kind,
            insert.job_id.as_str(),
            insert.user_id.as_ref().map(|u| u.as_str()),
            insert.status,
            insert.slot_released
        ),
        (ChangeKind::Insert, job.id.as_str(), Some(user.as_str()), Some(JobStatus::Queued), false)
    );
    let modify = job_change(&event.records[1]).unwrap();
    assert_eq!(
        (modify.kind, modify.status, modify.slot_released),
        (ChangeKind::Modify, Some(JobStatus::Cancelled), false)
    );

    // The bookkeeping on them: the insert is enqueued, the cancel gives the slot back, once.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs.create_queue().queue_name(unique("pipai-test-")).send().await.unwrap().queue_url.unwrap();
    let queue = SqsQueue::from_lookup(&sdk, &|k: &str| (k == "JOBS_QUEUE_URL").then(|| url.clone())).unwrap();
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);
    for record in &event.records {
        apply_change(&store, &queue, &job_change(record).unwrap()).await.unwrap();
    }
    apply_change(&store, &queue, &modify).await.unwrap(); // a redelivered record changes nothing
    assert_eq!(store.active_jobs(&user).await.unwrap(), 0);
    let got =
        sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
    let bodies: Vec<&str> = got.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, [QueueMessage::body(&job.id).as_str()]);
    sqs.delete_queue().queue_url(&url).send().await.unwrap();
}
