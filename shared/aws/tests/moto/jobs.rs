//! JobStore on DynamoDB: every method's outcomes, the create race, list paging.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use pipai_aws::DynamoStore;
use pipai_service::memory::MemoryStore;
use pipai_service::model::{FailCode, JobError, JobRecord, JobStatus};
use pipai_service::ports::*;
use pipai_service::{JobId, UserId};

use crate::common::{config, moto, now_ms, sdk, summary, token, unique_user};

async fn store() -> DynamoStore {
    DynamoStore::from_lookup(&sdk().await, &moto().lookup()).expect("store config")
}

fn job(user: &UserId, template: &str, submitted_at_ms: i64) -> JobRecord {
    JobRecord::new_queued(JobId::random(), user.clone(), config(template), submitted_at_ms)
}

async fn raw_item(store: &DynamoStore, id: &JobId) -> std::collections::HashMap<String, AttributeValue> {
    store
        .client()
        .get_item()
        .table_name(moto().var("JOBS_TABLE"))
        .key("job_id", AttributeValue::S(id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

fn attr_s(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn attr_n(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).map(|n| n.parse().unwrap())
}

#[tokio::test]
async fn create_get_and_id_taken() {
    let store = store().await;
    let user = unique_user();
    let j = job(&user, "sma_cross", now_ms());
    assert_eq!(store.create_job(&j, 5).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.get_job(&j.id).await.unwrap(), Some(j.clone()));
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);

    let item = raw_item(&store, &j.id).await;
    assert_eq!(attr_s(&item, "user_status"), format!("{user}#queued"));
    assert_eq!(attr_s(&item, "user_template"), format!("{user}#sma_cross"));
    assert_eq!(attr_s(&item, "submitted_key"), format!("{:013}#{}", j.submitted_at_ms, j.id));
    assert!(!item.contains_key("expires_at"));

    // Same id again (even for another user): IdTaken, and no slot taken.
    let mut dup = job(&unique_user(), "sma_cross", now_ms());
    dup.id = j.id.clone();
    assert_eq!(store.create_job(&dup, 5).await.unwrap(), CreateOutcome::IdTaken);
    assert_eq!(store.active_jobs(&dup.user_id).await.unwrap(), 0);
    assert_eq!(store.get_job(&j.id).await.unwrap().unwrap().user_id, user);

    assert_eq!(store.get_job(&JobId::random()).await.unwrap(), None);
}

#[tokio::test]
async fn too_many_active() {
    let store = store().await;
    let user = unique_user();
    for _ in 0..2 {
        assert_eq!(store.create_job(&job(&user, "t", now_ms()), 2).await.unwrap(), CreateOutcome::Created);
    }
    let third = job(&user, "t", now_ms());
    assert_eq!(store.create_job(&third, 2).await.unwrap(), CreateOutcome::TooManyActive);
    assert_eq!(store.get_job(&third.id).await.unwrap(), None);
    assert_eq!(store.active_jobs(&user).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_give_exactly_max() {
    let store = Arc::new(store().await);
    let user = unique_user();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, j) = (store.clone(), job(&user, "t", now_ms()));
        set.spawn(async move { store.create_job(&j, 5).await });
    }
    let mut created = 0;
    let mut refused = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap().unwrap() {
            CreateOutcome::Created => created += 1,
            CreateOutcome::TooManyActive => refused += 1,
            CreateOutcome::IdTaken => panic!("ids are random"),
        }
    }
    assert_eq!(
        (created, refused),
        (5, 15),
        "moto must serialize DynamoDB requests (tests/moto/python/sitecustomize.py), as DynamoDB is atomic"
    );
    assert_eq!(store.active_jobs(&user).await.unwrap(), 5);
    let q = ListQuery {
        user_id: user,
        status: None,
        template_id: None,
        from_ms: None,
        to_ms: None,
        after: None,
        limit: 100,
    };
    assert_eq!(store.list_jobs(&q).await.unwrap().len(), 5);
}

#[tokio::test]
async fn cancel_outcomes() {
    let store = store().await;
    let user = unique_user();
    let j = job(&user, "t", now_ms());
    store.create_job(&j, 5).await.unwrap();

    assert_eq!(
        store.cancel_job(&j.id, &"someone-else".parse().unwrap(), now_ms()).await.unwrap(),
        CancelOutcome::NotFound
    );
    assert_eq!(store.cancel_job(&JobId::random(), &user, now_ms()).await.unwrap(), CancelOutcome::NotFound);

    let t = now_ms();
    let CancelOutcome::Cancelled(c) = store.cancel_job(&j.id, &user, t).await.unwrap() else { panic!("not cancelled") };
    assert_eq!((c.status, c.finished_at_ms, c.id.as_str()), (JobStatus::Cancelled, Some(t), j.id.as_str()));
    let item = raw_item(&store, &j.id).await;
    assert_eq!(attr_s(&item, "user_status"), format!("{user}#cancelled"));
    assert_eq!(attr_n(&item, "expires_at"), Some(t / 1000 + 90 * 86_400));

    assert_eq!(
        store.cancel_job(&j.id, &user, now_ms()).await.unwrap(),
        CancelOutcome::AlreadyTerminal(JobStatus::Cancelled)
    );

    // A running job can be cancelled too; its worker then loses the job.
    let r = job(&user, "t", now_ms());
    store.create_job(&r, 5).await.unwrap();
    assert!(matches!(store.claim_job(&r.id, &token("tok"), now_ms(), 60_000).await.unwrap(), ClaimOutcome::Claimed(_)));
    assert!(matches!(store.cancel_job(&r.id, &user, now_ms()).await.unwrap(), CancelOutcome::Cancelled(_)));
    assert!(!store.record_progress(&r.id, &token("tok"), 0.5, now_ms(), 60_000).await.unwrap());
    assert!(!store
        .complete_job(&r.id, &token("tok"), now_ms(), &Completion::Done { summary: summary() })
        .await
        .unwrap());
    assert_eq!(store.get_job(&r.id).await.unwrap().unwrap().status, JobStatus::Cancelled);
}

#[tokio::test]
async fn claim_progress_complete() {
    let store = store().await;
    let user = unique_user();
    let j = job(&user, "t", now_ms());
    store.create_job(&j, 5).await.unwrap();
    assert_eq!(store.claim_job(&JobId::random(), &token("a"), now_ms(), 1000).await.unwrap(), ClaimOutcome::NotFound);

    let t0 = now_ms();
    let ClaimOutcome::Claimed(c) = store.claim_job(&j.id, &token("a"), t0, 60_000).await.unwrap() else {
        panic!("not claimed")
    };
    assert_eq!(c.status, JobStatus::Running);
    assert_eq!((c.started_at_ms, c.lease_until_ms, c.attempts), (Some(t0), Some(t0 + 60_000), 1));
    assert_eq!(c.run_token, Some(token("a")));
    assert_eq!(attr_s(&raw_item(&store, &j.id).await, "user_status"), format!("{user}#running"));

    // A duplicate delivery while the lease is live.
    assert_eq!(
        store.claim_job(&j.id, &token("b"), t0 + 1000, 60_000).await.unwrap(),
        ClaimOutcome::Leased { until_ms: t0 + 60_000 }
    );

    assert!(store.record_progress(&j.id, &token("a"), 0.25, t0 + 2000, 60_000).await.unwrap());
    assert!(!store.record_progress(&j.id, &token("b"), 0.5, t0 + 2000, 60_000).await.unwrap());
    let got = store.get_job(&j.id).await.unwrap().unwrap();
    assert_eq!((got.progress, got.lease_until_ms), (0.25, Some(t0 + 62_000)));

    // The lease runs out: another run takes over (started_at kept, attempts counted).
    let t1 = t0 + 62_000;
    let ClaimOutcome::Claimed(c) = store.claim_job(&j.id, &token("b"), t1, 60_000).await.unwrap() else {
        panic!("not re-claimed")
    };
    assert_eq!((c.started_at_ms, c.attempts, c.run_token.clone()), (Some(t0), 2, Some(token("b"))));
    assert!(!store.record_progress(&j.id, &token("a"), 0.5, t1, 60_000).await.unwrap());
    assert!(!store.complete_job(&j.id, &token("a"), t1, &Completion::Done { summary: summary() }).await.unwrap());

    let result = summary();
    assert!(store
        .complete_job(&j.id, &token("b"), t1 + 5, &Completion::Done { summary: result.clone() })
        .await
        .unwrap());
    let done = store.get_job(&j.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!((done.progress, done.finished_at_ms, done.lease_until_ms), (1.0, Some(t1 + 5), None));
    assert_eq!(done.summary, Some(*result));
    let item = raw_item(&store, &j.id).await;
    assert_eq!(attr_s(&item, "user_status"), format!("{user}#done"));
    assert_eq!(attr_n(&item, "expires_at"), Some((t1 + 5) / 1000 + 90 * 86_400));

    assert_eq!(
        store.claim_job(&j.id, &token("c"), t1 + 10, 60_000).await.unwrap(),
        ClaimOutcome::Terminal(JobStatus::Done)
    );
    assert!(!store.complete_job(&j.id, &token("b"), t1 + 10, &Completion::Done { summary: summary() }).await.unwrap());

    // The failed path.
    let f = job(&user, "t", now_ms());
    store.create_job(&f, 5).await.unwrap();
    assert!(matches!(store.claim_job(&f.id, &token("x"), now_ms(), 60_000).await.unwrap(), ClaimOutcome::Claimed(_)));
    let err = JobError::new(FailCode::DataUnavailable, "BTCUSDT: no bars");
    assert!(store.complete_job(&f.id, &token("x"), now_ms(), &Completion::Failed(err.clone())).await.unwrap());
    let failed = store.get_job(&f.id).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.error, failed.lease_until_ms), (JobStatus::Failed, Some(err), None));
    assert_eq!(attr_s(&raw_item(&store, &f.id).await, "user_status"), format!("{user}#failed"));
}

#[tokio::test]
async fn a_fresh_store_claims_and_completes_without_a_cached_owner() {
    let user = unique_user();
    let j = job(&user, "t", now_ms());
    store().await.create_job(&j, 5).await.unwrap();
    let claimer = store().await;
    assert!(matches!(claimer.claim_job(&j.id, &token("a"), now_ms(), 60_000).await.unwrap(), ClaimOutcome::Claimed(_)));
    let completer = store().await;
    assert!(completer
        .complete_job(&j.id, &token("a"), now_ms(), &Completion::Done { summary: summary() })
        .await
        .unwrap());
    assert_eq!(store().await.get_job(&j.id).await.unwrap().unwrap().status, JobStatus::Done);
    assert!(!store()
        .await
        .complete_job(&JobId::random(), &token("a"), now_ms(), &Completion::Done { summary: summary() })
        .await
        .unwrap());
}

#[tokio::test]
async fn fail_abandoned_outcomes() {
    let store = store().await;
    let user = unique_user();
    let err = JobError::new(FailCode::Internal, "every delivery attempt failed");
    assert_eq!(store.fail_abandoned(&JobId::random(), now_ms(), &err).await.unwrap(), AbandonOutcome::NotFound);

    let queued = job(&user, "t", now_ms());
    store.create_job(&queued, 5).await.unwrap();
    assert_eq!(store.fail_abandoned(&queued.id, now_ms(), &err).await.unwrap(), AbandonOutcome::Failed);
    let got = store.get_job(&queued.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.error.as_ref()), (JobStatus::Failed, Some(&err)));
    assert_eq!(attr_s(&raw_item(&store, &queued.id).await, "user_status"), format!("{user}#failed"));
    assert_eq!(store.fail_abandoned(&queued.id, now_ms(), &err).await.unwrap(), AbandonOutcome::AlreadyTerminal);

    let running = job(&user, "t", now_ms());
    store.create_job(&running, 5).await.unwrap();
    let t = now_ms();
    store.claim_job(&running.id, &token("a"), t, 30_000).await.unwrap();
    assert_eq!(
        store.fail_abandoned(&running.id, t + 1000, &err).await.unwrap(),
        AbandonOutcome::StillLeased { until_ms: t + 30_000 }
    );
    assert_eq!(store.fail_abandoned(&running.id, t + 30_000, &err).await.unwrap(), AbandonOutcome::Failed);
    let got = store.get_job(&running.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.lease_until_ms), (JobStatus::Failed, None));
}

#[tokio::test]
async fn release_slot_once() {
    let store = store().await;
    let user = unique_user();
    let a = job(&user, "t", now_ms());
    let b = job(&user, "t", now_ms());
    store.create_job(&a, 5).await.unwrap();
    store.create_job(&b, 5).await.unwrap();
    assert_eq!(store.active_jobs(&user).await.unwrap(), 2);

    assert!(!store.release_slot(&a.id, &user).await.unwrap(), "not terminal yet");
    assert!(!store.release_slot(&JobId::random(), &user).await.unwrap(), "no such job");
    store.cancel_job(&a.id, &user, now_ms()).await.unwrap();
    assert!(!store.release_slot(&a.id, &"someone-else".parse().unwrap()).await.unwrap(), "wrong user");
    assert!(store.release_slot(&a.id, &user).await.unwrap());
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);
    assert!(store.get_job(&a.id).await.unwrap().unwrap().slot_released);
    assert!(!store.release_slot(&a.id, &user).await.unwrap(), "only once");
    assert_eq!(store.active_jobs(&user).await.unwrap(), 1);

    // A counter that drifted to 0: the flag is still set, once, and the counter stays at 0.
    store
        .client()
        .put_item()
        .table_name(moto().var("USERS_TABLE"))
        .item("user_id", AttributeValue::S(user.to_string()))
        .item("active_jobs", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    store.cancel_job(&b.id, &user, now_ms()).await.unwrap();
    assert!(store.release_slot(&b.id, &user).await.unwrap());
    assert!(store.get_job(&b.id).await.unwrap().unwrap().slot_released);
    assert!(!store.release_slot(&b.id, &user).await.unwrap());
    assert_eq!(store.active_jobs(&user).await.unwrap(), 0);
}

/// ~30 jobs over three templates and three statuses; every filter combination, paged with
/// several limits, must equal the in-memory store's answer, and no page may be short while
/// more jobs match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_match_the_reference() {
    let store = store().await;
    let user = unique_user();
    let other = unique_user();
    let base = 1_750_000_000_000i64;
    let templates = ["sma_cross", "grid", "rotation"];
    let mut ids = Vec::new();
    for i in 0..30i64 {
        // Some jobs share a millisecond: the id breaks the tie.
        let j = job(&user, templates[(i % 3) as usize], base + (i / 2) * 1000);
        assert_eq!(store.create_job(&j, 1000).await.unwrap(), CreateOutcome::Created);
        match i % 5 {
            0 | 3 => {
                store.cancel_job(&j.id, &user, base + 100_000).await.unwrap();
            }
            1 => {
                store.claim_job(&j.id, &token("w"), now_ms(), 60_000).await.unwrap();
                store
                    .complete_job(&j.id, &token("w"), now_ms(), &Completion::Done { summary: summary() })
                    .await
                    .unwrap();
            }
            _ => {}
        }
        ids.push(j.id);
    }
    // Another user's jobs never show.
    store.create_job(&job(&other, "grid", base + 5000), 1000).await.unwrap();

    let reference = MemoryStore::new();
    for id in &ids {
        reference.put_job_raw(store.get_job(id).await.unwrap().unwrap());
    }

    let statuses =
        [None, Some(JobStatus::Queued), Some(JobStatus::Cancelled), Some(JobStatus::Done), Some(JobStatus::Failed)];
    let template_filters = [None, Some("grid"), Some("sma_cross")];
    let windows =
        [(None, None), (Some(base + 3000), None), (None, Some(base + 9000)), (Some(base + 2000), Some(base + 11_000))];
    for status in statuses {
        for template in template_filters {
            for (from_ms, to_ms) in windows {
                let full = ListQuery {
                    user_id: user.clone(),
                    status,
                    template_id: template.map(str::to_string),
                    from_ms,
                    to_ms,
                    after: None,
                    limit: 1000,
                };
                let expected: Vec<JobId> =
                    reference.list_jobs(&full).await.unwrap().into_iter().map(|j| j.id).collect();
                assert_eq!(
                    store.list_jobs(&full).await.unwrap().into_iter().map(|j| j.id).collect::<Vec<_>>(),
                    expected,
                    "{full:?}"
                );
                let limits: &[usize] = if status.is_none() && template.is_none() { &[1, 4, 7] } else { &[2, 7] };
                for &limit in limits {
                    let mut got = Vec::new();
                    let mut after = None;
                    loop {
                        let q = ListQuery { after: after.clone(), limit, ..full.clone() };
                        let page = store.list_jobs(&q).await.unwrap();
                        assert!(page.len() <= limit);
                        let more = expected.len().saturating_sub(got.len() + page.len());
                        assert!(page.len() == limit || more == 0, "short page while {more} more match: {q:?}");
                        got.extend(page.iter().map(|j| j.id.clone()));
                        match page.last() {
                            Some(last) if page.len() == limit => {
                                after = Some(PageKey { submitted_at_ms: last.submitted_at_ms, id: last.id.clone() })
                            }
                            _ => break,
                        }
                    }
                    assert_eq!(got, expected, "limit {limit}: {full:?}");
                }
            }
        }
    }
}
