//! Deleting jobs and comparing them on DynamoDB and S3: the conditional delete's outcomes, the
//! batched read, deleting a job's result objects, and the stream's REMOVE records giving no slot
//! back.

use aws_lambda_events::event::dynamodb::Event;
use pipai_aws::{job_change, DynamoStore, S3Results};
use pipai_service::events::{apply_change, ChangeKind};
use pipai_service::memory::MemoryStore;
use pipai_service::model::{JobRecord, JobStatus};
use pipai_service::ports::*;
use pipai_service::{JobId, UserId};
use serde_json::json;

use crate::common::{config, moto, now_ms, sdk, summary, token, unique_user};

async fn store() -> DynamoStore {
    DynamoStore::from_lookup(&sdk().await, &moto().lookup()).expect("store config")
}

fn job(user: &UserId, template: &str) -> JobRecord {
    JobRecord::new_queued(JobId::random(), user.clone(), config(template), now_ms())
}

fn listing(user: &UserId, status: Option<JobStatus>, template_id: Option<&str>) -> ListQuery {
    ListQuery {
        user_id: user.clone(),
        status,
        template_id: template_id.map(str::to_string),
        from_ms: None,
        to_ms: None,
        after: None,
        limit: 100,
    }
}

#[tokio::test]
async fn delete_outcomes_and_every_index_forgets_the_job() {
    let store = store().await;
    let (user, other) = (unique_user(), unique_user());
    let j = job(&user, "t_del");
    store.create_job(&j, 5).await.unwrap();
    let keep = job(&user, "t_del");
    store.create_job(&keep, 5).await.unwrap();

    assert_eq!(store.delete_job(&j.id, &user).await.unwrap(), DeleteOutcome::NotTerminal(JobStatus::Queued));
    assert!(matches!(store.claim_job(&j.id, &token("d"), now_ms(), 60_000).await.unwrap(), ClaimOutcome::Claimed(_)));
    assert_eq!(store.delete_job(&j.id, &user).await.unwrap(), DeleteOutcome::NotTerminal(JobStatus::Running));
    let done = Completion::Done { summary: summary() };
    assert!(store.complete_job(&j.id, &token("d"), now_ms(), &done).await.unwrap());

    // Done, but the stream has not given the slot back: held until it is.
    assert_eq!(store.delete_job(&j.id, &user).await.unwrap(), DeleteOutcome::SlotHeld);
    assert_eq!(store.delete_job(&j.id, &other).await.unwrap(), DeleteOutcome::NotFound);
    assert!(store.release_slot(&j.id, &user).await.unwrap());
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);
    assert_eq!(store.delete_job(&j.id, &other).await.unwrap(), DeleteOutcome::NotFound);
    assert_eq!(store.delete_job(&j.id, &user).await.unwrap(), DeleteOutcome::Deleted);

    assert_eq!(store.get_job(&j.id).await.unwrap(), None);
    assert_eq!(store.delete_job(&j.id, &user).await.unwrap(), DeleteOutcome::NotFound);
    assert_eq!(store.delete_job(&JobId::random(), &user).await.unwrap(), DeleteOutcome::NotFound);
    for q in [
        listing(&user, None, None),
        listing(&user, Some(JobStatus::Done), None),
        listing(&user, None, Some("t_del")),
        listing(&user, Some(JobStatus::Queued), Some("t_del")),
    ] {
        let ids: Vec<JobId> = store.list_jobs(&q).await.unwrap().into_iter().map(|j| j.id).collect();
        assert!(!ids.contains(&j.id), "{q:?}: {ids:?}");
    }
    // The slot given back once, by the release; the delete gave nothing back.
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);
    assert!(!store.release_slot(&j.id, &user).await.unwrap());
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);
}

#[tokio::test]
async fn get_jobs_reads_the_existing_ones_in_one_batch() {
    let store = store().await;
    let user = unique_user();
    let mut jobs = vec![];
    for _ in 0..3 {
        let j = job(&user, "t_cmp");
        store.create_job(&j, 5).await.unwrap();
        jobs.push(j);
    }
    let mut ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
    ids.insert(1, JobId::random());
    let mut got = store.get_jobs(&ids).await.unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, jobs);
    assert_eq!(store.get_jobs(&[]).await.unwrap(), vec![]);
    // More than one BatchGetItem's worth of keys.
    let many: Vec<JobId> = (0..150).map(|_| JobId::random()).chain([jobs[0].id.clone()]).collect();
    assert_eq!(store.get_jobs(&many).await.unwrap(), vec![jobs[0].clone()]);
}

#[tokio::test]
async fn deleting_artifacts_empties_the_jobs_prefix_only() {
    let results = S3Results::from_lookup(&sdk().await, &moto().lookup()).unwrap();
    // Two ids, one starting with the other: the prefix ends at the `/`.
    let id: JobId = JobId::random().as_str()[..9].parse().unwrap();
    let longer: JobId = format!("{id}0").parse().unwrap();
    for name in ["result.json", "equity_curve.json", "trades.json"] {
        results.put_artifact(&id, name, b"{}".to_vec(), "application/json").await.unwrap();
    }
    results.put_artifact(&longer, "result.json", b"{}".to_vec(), "application/json").await.unwrap();
    assert_eq!(results.delete_artifacts(&id).await.unwrap(), 3);
    for name in ["result.json", "equity_curve.json", "trades.json"] {
        assert_eq!(results.get_artifact(&id, name).await.unwrap(), None);
    }
    assert_eq!(results.get_artifact(&longer, "result.json").await.unwrap(), Some(b"{}".to_vec()));
    assert_eq!(results.delete_artifacts(&id).await.unwrap(), 0);
    assert_eq!(results.delete_artifacts(&longer).await.unwrap(), 1);
}

#[tokio::test]
async fn replayed_stream_records_of_a_deleted_job_give_no_slot_back() {
    let sdk = sdk().await;
    let store = DynamoStore::from_lookup(&sdk, &moto().lookup()).unwrap();
    let user = unique_user();
    let (gone, active) = (job(&user, "t"), job(&user, "t"));
    store.create_job(&gone, 5).await.unwrap();
    store.create_job(&active, 5).await.unwrap();
    store.cancel_job(&gone.id, &user, now_ms()).await.unwrap();
    // The delete handler's order: held, so give the slot back, then delete.
    assert_eq!(store.delete_job(&gone.id, &user).await.unwrap(), DeleteOutcome::SlotHeld);
    assert!(store.release_slot(&gone.id, &user).await.unwrap());
    assert_eq!(store.delete_job(&gone.id, &user).await.unwrap(), DeleteOutcome::Deleted);
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);

    let records = crate::common::jobs_stream_records(&sdk, &gone.id).await;
    let event: Event = serde_json::from_value(json!({ "Records": records })).unwrap();
    let changes: Vec<_> = event.records.iter().map(|r| job_change(r).unwrap()).collect();
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds.first(), Some(&ChangeKind::Insert));
    assert_eq!(kinds.last(), Some(&ChangeKind::Remove), "{kinds:?}");
    let removed = changes.last().unwrap();
    assert_eq!((removed.status, removed.slot_released), (None, true));
    // Every record, twice (a late and a replayed delivery): the count stays exact.
    let queue = MemoryStore::new();
    for _ in 0..2 {
        for change in &changes {
            apply_change(&store, &queue, change).await.unwrap();
        }
    }
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);
}

/// A presigned artifact URL is a plain GET of the object against the configured endpoint (moto
/// here), with the stored Content-Type; a missing object is an S3 error, not a 200.
#[tokio::test]
async fn a_presigned_artifact_url_gets_the_object_without_signing() {
    let results = S3Results::from_lookup(&sdk().await, &moto().lookup()).unwrap();
    let id = JobId::random();
    let csv = b"open_time,equity,drawdown\n".to_vec();
    results.put_artifact(&id, "equity.csv", csv.clone(), "text/csv; charset=utf-8").await.unwrap();
    let ttl = std::time::Duration::from_secs(1800);
    let url = results.presign_artifact(&id, "equity.csv", ttl).await.unwrap();
    let endpoint = moto().var("AWS_ENDPOINT_URL");
    assert!(url.starts_with(&endpoint), "{url} is not on {endpoint}");
    assert!(url.contains(&format!("/results/{id}/equity.csv?")) && url.contains("X-Amz-Expires=1800"), "{url}");
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut got = agent.get(&url).call().unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.headers().get("content-type").unwrap().to_str().unwrap(), "text/csv; charset=utf-8");
    assert_eq!(got.body_mut().read_to_vec().unwrap(), csv);
    let missing = results.presign_artifact(&id, "report.html", ttl).await.unwrap();
    assert_eq!(agent.get(&missing).call().unwrap().status().as_u16(), 404);
    assert!(results.presign_artifact(&id, "../x", ttl).await.is_err());
}
