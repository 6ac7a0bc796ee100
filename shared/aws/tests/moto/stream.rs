//! job_change on real stream records: read from moto's DynamoDB Streams API, put into the exact
//! JSON shape Lambda delivers, deserialized with aws_lambda_events.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use pipai_aws::{job_change, DynamoStore, SqsQueue};
use pipai_service::events::{apply_change, ChangeKind};
use pipai_service::model::{new_job_id, JobRecord, JobStatus, QueueMessage};
use pipai_service::ports::JobStore;
use serde_json::{json, Value};

use crate::common::{moto, now_ms, sdk, unique};

fn attr(v: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b.as_ref()) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attr).collect::<Vec<_>>() }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

fn image(m: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), attr(v))).collect())
}

/// A stream record as Lambda hands it to the function (adds `eventSourceARN`, which the Streams
/// API does not return).
fn lambda_record(r: &Record, stream_arn: &str) -> Value {
    let d = r.dynamodb().expect("stream record body");
    let mut body = json!({
        "ApproximateCreationDateTime": d.approximate_creation_date_time().map(|t| t.as_secs_f64()).unwrap_or(0.0),
        "Keys": image(d.keys().unwrap_or(&HashMap::new())),
        "SequenceNumber": d.sequence_number(),
        "SizeBytes": d.size_bytes().unwrap_or(0),
        "StreamViewType": d.stream_view_type().map(|v| v.as_str()),
    });
    if let Some(n) = d.new_image() {
        body["NewImage"] = image(n);
    }
    if let Some(o) = d.old_image() {
        body["OldImage"] = image(o);
    }
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": r.event_version(),
        "eventSource": r.event_source(),
        "awsRegion": r.aws_region(),
        "eventSourceARN": stream_arn,
        "dynamodb": body,
    })
}

#[tokio::test]
async fn job_changes_from_the_jobs_table_stream() {
    let sdk = sdk().await;
    let store = DynamoStore::from_lookup(&sdk, &moto().lookup()).unwrap();
    let user = unique("u_");
    let job = JobRecord::new_queued(new_job_id(), user.clone(), json!({}), "grid".into(), now_ms());
    store.create_job(&job, 5).await.unwrap();
    store.cancel_job(&job.id, &user, now_ms()).await.unwrap();

    let table = store.client().describe_table().table_name(moto().var("JOBS_TABLE")).send().await.unwrap();
    let stream_arn =
        table.table().and_then(|t| t.latest_stream_arn()).expect("the jobs table has a stream").to_string();
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let description = streams.describe_stream().stream_arn(&stream_arn).send().await.unwrap();
    let mut ours = Vec::new();
    for shard in description.stream_description().map(|d| d.shards()).unwrap_or_default() {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator {
            let page = streams.get_records().shard_iterator(it).limit(1000).send().await.unwrap();
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                let key = r.dynamodb().and_then(|d| d.keys()).and_then(|k| k.get("job_id")).and_then(|v| v.as_s().ok());
                if key == Some(&job.id) {
                    ours.push(lambda_record(r, &stream_arn));
                }
            }
            iterator = page.next_shard_iterator;
        }
    }
    assert_eq!(ours.len(), 2, "an INSERT and a MODIFY: {ours:#?}");
    let event: Event = serde_json::from_value(json!({ "Records": ours })).unwrap();

    let insert = job_change(&event.records[0]).unwrap();
    assert_eq!(
        (insert.kind, insert.job_id.as_str(), insert.user_id.as_str(), insert.status, insert.slot_released),
        (ChangeKind::Insert, job.id.as_str(), user.as_str(), Some(JobStatus::Queued), false)
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
