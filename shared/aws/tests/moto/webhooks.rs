//! Completion webhooks on DynamoDB and SQS: the job item keeps notify_url, key and records; the
//! stream's records tell a terminal transition (enqueued once) from later writes; a delayed
//! notification message is held back by the queue.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use pipai_aws::{job_change, DynamoStore, SqsQueue};
use pipai_service::events::apply_change;
use pipai_service::model::{JobRecord, JobStatus};
use pipai_service::notifier::{
    job_notification, NotificationLog, NotificationMessage, NotificationQueue, NotificationRecord,
};
use pipai_service::ports::JobStore;
use pipai_service::webhook::Subject;
use pipai_service::JobId;
use serde_json::json;

use crate::common::{config, jobs_stream_records, moto, now_ms, sdk, unique, unique_key, unique_user};

/// A first attempt at `message`'s event that the receiver answered with 500.
fn failed_attempt(message: &NotificationMessage) -> NotificationRecord {
    NotificationRecord {
        event_id: message.event_id.clone(),
        event_type: message.event_type.clone(),
        attempts: 1,
        last_status: Some(500),
        last_error: Some("the receiver answered 500".into()),
        last_attempt_at_ms: Some(now_ms()),
        next_attempt_at_ms: Some(now_ms() + 1000),
        delivered_at_ms: None,
        gave_up: false,
    }
}

/// A fresh jobs queue and notifications queue (their URLs), and the adapter sending to them.
async fn fresh_queues(sdk: &pipai_aws::aws_config::SdkConfig) -> (SqsQueue, String, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let jobs_url = sqs.create_queue().queue_name(unique("pipai-test-")).send().await.unwrap().queue_url.unwrap();
    let notes_url = sqs.create_queue().queue_name(unique("pipai-test-")).send().await.unwrap().queue_url.unwrap();
    let queue = SqsQueue::from_lookup(sdk, &|k: &str| match k {
        "JOBS_QUEUE_URL" => Some(jobs_url.clone()),
        "NOTIFICATIONS_QUEUE_URL" => Some(notes_url.clone()),
        _ => None,
    })
    .unwrap();
    (queue, jobs_url, notes_url)
}

#[tokio::test]
async fn a_webhook_job_is_notified_once_per_transition_and_keeps_its_records() {
    let sdk = sdk().await;
    let store = DynamoStore::from_lookup(&sdk, &moto().lookup()).unwrap();
    let user = unique_user();
    let mut job = JobRecord::new_queued(JobId::random(), user.clone(), config("grid"), now_ms());
    job.webhook.notify_url = Some("https://93.184.216.34/hook".to_string().try_into().unwrap());
    job.webhook.key_id = Some(unique_key());
    store.create_job(&job, 5).await.unwrap();
    assert_eq!(store.get_job(&job.id).await.unwrap().unwrap().webhook, job.webhook, "stored and read back");
    store.cancel_job(&job.id, &user, now_ms()).await.unwrap();

    // The attempt record is written on the job (nothing else of it changes) ...
    let message = job_notification(&job.id, JobStatus::Cancelled).unwrap();
    let mut record = failed_attempt(&message);
    assert!(store.record_notification(&Subject::Job(job.id.clone()), &record).await.unwrap());
    record.attempts = 2;
    record.delivered_at_ms = Some(now_ms());
    assert!(store.record_notification(&Subject::Job(job.id.clone()), &record).await.unwrap());
    let stored = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.webhook.notifications), (JobStatus::Cancelled, vec![record.clone()]));
    assert!(!store.record_notification(&Subject::Job(JobId::random()), &record).await.unwrap(), "no such job");

    // ... and the stream: INSERT, the cancel (a transition), two record writes (not transitions).
    let records = jobs_stream_records(&sdk, &job.id).await;
    assert_eq!(records.len(), 4, "{records:#?}");
    let event: Event = serde_json::from_value(json!({ "Records": records })).unwrap();
    let changes: Vec<_> = event.records.iter().map(|r| job_change(r).unwrap()).collect();
    assert!(changes.iter().all(|c| c.notify));
    assert_eq!(changes[1].old_status, Some(JobStatus::Queued));
    assert_eq!(changes[2].old_status, Some(JobStatus::Cancelled));

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue, jobs_url, notes_url) = fresh_queues(&sdk).await;
    for change in &changes {
        apply_change(&store, &queue, change).await.unwrap();
    }
    let receive = || async {
        let got =
            sqs.receive_message().queue_url(&notes_url).max_number_of_messages(10).wait_time_seconds(0).send().await;
        got.unwrap().messages().iter().filter_map(|m| m.body().map(str::to_string)).collect::<Vec<_>>()
    };
    assert_eq!(receive().await, [message.body()], "one message: the cancel");

    // A retry sent with a delay is not received before it.
    let next = NotificationMessage { attempt: 2, ..message.clone() };
    queue.send_notification(&next, 2).await.unwrap();
    assert!(receive().await.is_empty(), "held back by DelaySeconds");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receive().await, [next.body()]);
    for url in [&jobs_url, &notes_url] {
        sqs.delete_queue().queue_url(url).send().await.unwrap();
    }
}

/// A sweep keeps its webhook in its record on SweepsTable: records are put back over the version
/// read (nothing else changes), and the table's stream tells the cancel (a transition, enqueued
/// once) from the record writes.
#[tokio::test]
async fn a_webhook_sweep_keeps_its_records_and_its_stream_enqueues_the_end_once() {
    use pipai_aws::sweep_change;
    use pipai_service::notifier::sweep_notification;
    use pipai_service::sweep_events::notify_sweep_end;
    use pipai_service::sweeps::{SweepCancelOutcome, SweepRecord, SweepStore};
    use pipai_service::SweepId;

    let sdk = sdk().await;
    let store = DynamoStore::from_lookup(&sdk, &moto().lookup()).unwrap();
    let user = unique_user();
    let body = json!({"base": {"template_id": "tpl_ma_cross", "params": {"direction": "long"}, "symbols": ["BTCUSDT"],
                               "timeframe": "1h", "start": "2025-01-01T00:00:00Z", "end": "2025-01-31T00:00:00Z"},
                      "space": {"params.fast": [5, 10], "params.slow": [50]}});
    let spec = pipai_engine::sweep::SweepSpec::from_json_bytes(body.to_string().as_bytes()).unwrap();
    let mut sweep = SweepRecord::new_queued(SweepId::random(), user.clone(), &spec, 2, 1, now_ms());
    sweep.webhook.notify_url = Some("https://93.184.216.34/hook".to_string().try_into().unwrap());
    sweep.webhook.key_id = Some(unique_key());
    store.create_sweep(&sweep, 5).await.unwrap();
    assert_eq!(store.get_sweep(&sweep.id).await.unwrap().unwrap().webhook, sweep.webhook, "stored and read back");
    let SweepCancelOutcome::Cancelled(cancelled) = store.cancel_sweep(&sweep.id, &user, now_ms()).await.unwrap() else {
        panic!("not cancelled")
    };

    let message = sweep_notification(&sweep.id, JobStatus::Cancelled).unwrap();
    let subject = Subject::Sweep(sweep.id.clone());
    let mut record = failed_attempt(&message);
    assert!(store.record_notification(&subject, &record).await.unwrap());
    record.attempts = 2;
    record.delivered_at_ms = Some(now_ms());
    assert!(store.record_notification(&subject, &record).await.unwrap());
    let stored = store.get_sweep(&sweep.id).await.unwrap().unwrap();
    assert_eq!(stored.webhook.notifications, vec![record.clone()], "replaced, not added");
    assert_eq!(stored.version, cancelled.version + 2, "each record write moves the version on");
    let unchanged = SweepRecord { webhook: cancelled.webhook.clone(), version: cancelled.version, ..stored };
    assert_eq!(&unchanged, cancelled.as_ref(), "nothing else changed");
    assert!(!store.record_notification(&Subject::Sweep(SweepId::random()), &record).await.unwrap(), "no such sweep");

    // The stream: INSERT, the cancel (a transition), two record writes (not transitions).
    let records = crate::common::stream_records(&sdk, "SWEEPS_TABLE", "pk", sweep.id.as_str()).await;
    let event: Event = serde_json::from_value(json!({ "Records": records })).unwrap();
    let changes: Vec<_> = event.records.iter().filter_map(|r| sweep_change(r).unwrap()).collect();
    assert_eq!(changes.len(), 4, "{changes:#?}");
    assert_eq!(changes[1].old_status, Some(JobStatus::Queued));
    assert_eq!(changes[2].old_status, Some(JobStatus::Cancelled));

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue, jobs_url, notes_url) = fresh_queues(&sdk).await;
    for change in &changes {
        notify_sweep_end(&queue, change).await.unwrap();
    }
    let got = sqs.receive_message().queue_url(&notes_url).max_number_of_messages(10).wait_time_seconds(0).send().await;
    let bodies: Vec<String> = got.unwrap().messages().iter().filter_map(|m| m.body().map(str::to_string)).collect();
    assert_eq!(bodies, [message.body()], "one message: the cancel");
    for url in [&jobs_url, &notes_url] {
        sqs.delete_queue().queue_url(url).send().await.unwrap();
    }
}
