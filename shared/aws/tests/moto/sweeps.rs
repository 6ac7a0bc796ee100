//! SweepStore on SweepsTable: the shared active slots, chunk records written once (a duplicate
//! delivery and a failed chunk leave exact counts), optimistic versions, chunks cut into parts,
//! cancel, and the newest-first list.

use pipai_aws::DynamoStore;
use pipai_engine::sweep::SweepSpec;
use pipai_service::model::{JobRecord, JobStatus};
use pipai_service::ports::*;
use pipai_service::sweeps::*;
use pipai_service::{JobId, SweepId, UserId};
use serde_json::json;

use crate::common::{config, moto, now_ms, sdk, unique_user};

async fn store() -> DynamoStore {
    DynamoStore::from_lookup(&sdk().await, &moto().lookup()).expect("store config")
}

fn sweep(user: &UserId, at_ms: i64, n_chunks: u32) -> SweepRecord {
    let body = json!({"base": {"template_id": "tpl_ma_cross", "params": {"direction": "long"}, "symbols": ["BTCUSDT"],
                               "timeframe": "1h", "start": "2025-01-01T00:00:00Z", "end": "2025-01-31T00:00:00Z"},
                      "space": {"params.fast": [5, 10], "params.slow": [50, 100]}});
    let spec = SweepSpec::from_json_bytes(body.to_string().as_bytes()).unwrap();
    SweepRecord::new_queued(SweepId::random(), user.clone(), &spec, 4, n_chunks, at_ms)
}

fn chunk(id: &SweepId, chunk: u32, completed: usize, failed: usize, error: Option<String>) -> ChunkRecord {
    ChunkRecord {
        sweep_id: id.clone(),
        chunk,
        status: if completed == 0 { ChunkStatus::Failed } else { ChunkStatus::Done },
        completed,
        failed,
        entries: Vec::new(),
        error,
    }
}

/// What the worker writes after `c`: counts added, version + 1, terminal after the last chunk.
fn after(w: &SweepRecord, c: &ChunkRecord) -> SweepRecord {
    let mut next = w.clone();
    next.version += 1;
    next.chunks_ended += 1;
    next.completed += c.completed;
    next.failed += c.failed;
    next.status = if next.chunks_ended == next.n_chunks { JobStatus::Done } else { JobStatus::Running };
    next
}

#[tokio::test]
async fn chunks_count_once_and_the_sweep_shares_the_slots() {
    let store = store().await;
    let user = unique_user();
    for _ in 0..4 {
        let job = JobRecord::new_queued(JobId::random(), user.clone(), config("tpl_grid"), now_ms());
        assert_eq!(store.create_job(&job, 5).await.unwrap(), CreateOutcome::Created);
    }
    let w = sweep(&user, now_ms(), 2);
    assert_eq!(store.create_sweep(&w, 5).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.active_jobs(&user).await.unwrap(), 5);
    assert_eq!(store.create_sweep(&sweep(&user, now_ms(), 2), 5).await.unwrap(), CreateOutcome::TooManyActive);
    let sixth = JobRecord::new_queued(JobId::random(), user.clone(), config("tpl_grid"), now_ms());
    assert_eq!(store.create_job(&sixth, 5).await.unwrap(), CreateOutcome::TooManyActive);
    assert_eq!(store.create_sweep(&w, 9).await.unwrap(), CreateOutcome::IdTaken);
    assert_eq!(store.get_sweep(&w.id).await.unwrap().as_ref(), Some(&w));

    // Chunk 0, then its duplicate delivery (same write again): counted once.
    let c0 = chunk(&w.id, 0, 2, 0, None);
    let w1 = after(&w, &c0);
    assert_eq!(store.record_chunk(&c0, &w1).await.unwrap(), ChunkOutcome::Recorded);
    assert_eq!(store.record_chunk(&c0, &after(&w1, &c0)).await.unwrap(), ChunkOutcome::Duplicate);
    // A writer that read the sweep before chunk 0 landed loses the version check.
    let c1 = chunk(&w.id, 1, 0, 2, Some("x".repeat(700_000)));
    assert_eq!(store.record_chunk(&c1, &after(&w, &c1)).await.unwrap(), ChunkOutcome::VersionConflict);
    assert_eq!(store.active_jobs(&user).await.unwrap(), 5);
    // Chunk 1 failed (its message in the DLQ, a 700 KB error cut into parts): the sweep ends.
    let w2 = after(&w1, &c1);
    assert_eq!(store.record_chunk(&c1, &w2).await.unwrap(), ChunkOutcome::Recorded);
    let done = store.get_sweep(&w.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.completed, done.failed, done.chunks_ended), (JobStatus::Done, 2, 2, 2));
    assert!(done.slot_released);
    assert_eq!(store.active_jobs(&user).await.unwrap(), 4, "the terminal write gave the slot back");
    assert_eq!(store.get_chunks(&w.id).await.unwrap(), vec![c0, c1]);
    assert_eq!(
        store.record_chunk(&chunk(&w.id, 1, 0, 2, None), &after(&w2, &chunk(&w.id, 1, 0, 2, None))).await.unwrap(),
        ChunkOutcome::Duplicate
    );
    assert_eq!(store.active_jobs(&user).await.unwrap(), 4);
    let missing = sweep(&user, now_ms(), 1);
    let c = chunk(&missing.id, 0, 1, 0, None);
    assert_eq!(store.record_chunk(&c, &after(&missing, &c)).await.unwrap(), ChunkOutcome::NotFound);
}

#[tokio::test]
async fn cancel_gives_the_slot_back_once_and_lists_are_newest_first() {
    let store = store().await;
    let (alice, bob) = (unique_user(), unique_user());
    let older = sweep(&alice, 1_700_000_000_000, 3);
    let newer = sweep(&alice, 1_700_000_001_000, 3);
    for w in [&older, &newer] {
        assert_eq!(store.create_sweep(w, 5).await.unwrap(), CreateOutcome::Created);
    }
    assert_eq!(store.cancel_sweep(&newer.id, &bob, now_ms()).await.unwrap(), SweepCancelOutcome::NotFound);
    let SweepCancelOutcome::Cancelled(cancelled) = store.cancel_sweep(&newer.id, &alice, now_ms()).await.unwrap()
    else {
        panic!("not cancelled")
    };
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(
        store.cancel_sweep(&newer.id, &alice, now_ms()).await.unwrap(),
        SweepCancelOutcome::AlreadyTerminal(JobStatus::Cancelled)
    );
    assert_eq!(store.active_jobs(&alice).await.unwrap(), 1);
    // A chunk that finishes after the cancel is refused by the version check.
    let c = chunk(&newer.id, 0, 4, 0, None);
    assert_eq!(store.record_chunk(&c, &after(&newer, &c)).await.unwrap(), ChunkOutcome::VersionConflict);
    assert_eq!(store.active_jobs(&alice).await.unwrap(), 1);

    let q = |status, after, limit| SweepListQuery { user_id: alice.clone(), status, after, limit };
    let all = store.list_sweeps(&q(None, None, 10)).await.unwrap();
    assert_eq!(all.iter().map(|w| w.id.clone()).collect::<Vec<_>>(), vec![newer.id.clone(), older.id.clone()]);
    let key = SweepPageKey { submitted_at_ms: newer.submitted_at_ms, id: newer.id.clone() };
    let rest = store.list_sweeps(&q(None, Some(key), 10)).await.unwrap();
    assert_eq!(rest.iter().map(|w| w.id.clone()).collect::<Vec<_>>(), vec![older.id.clone()]);
    let queued = store.list_sweeps(&q(Some(JobStatus::Queued), None, 10)).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert!(store
        .list_sweeps(&SweepListQuery { user_id: bob, status: None, after: None, limit: 5 })
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_ended_sweeps_ranking_is_stored_in_s3_pages_and_marked_once() {
    use pipai_aws::S3Results;
    use pipai_service::sweep_ranking::{ranking_slice, store_ranking, RankingOutcome};
    let store = store().await;
    let results = S3Results::from_lookup(&sdk().await, &moto().lookup()).unwrap();
    let user = unique_user();
    let w = sweep(&user, now_ms(), 1);
    assert_eq!(store.create_sweep(&w, 5).await.unwrap(), CreateOutcome::Created);
    let mark = RankingMark { total: 0, page_size: 100 };
    assert_eq!(store.mark_ranking(&w.id, &mark).await.unwrap(), MarkOutcome::NotEnded);
    assert_eq!(store_ranking(&store, &results, &w.id).await.unwrap(), RankingOutcome::NotEnded);
    let SweepCancelOutcome::Cancelled(_) = store.cancel_sweep(&w.id, &user, now_ms()).await.unwrap() else {
        panic!("not cancelled")
    };
    // No chunk recorded: an empty ranking, no page, marked; a replay changes nothing.
    assert_eq!(store_ranking(&store, &results, &w.id).await.unwrap(), RankingOutcome::Stored(mark));
    assert_eq!(store_ranking(&store, &results, &w.id).await.unwrap(), RankingOutcome::AlreadyStored);
    assert_eq!(store.mark_ranking(&w.id, &mark).await.unwrap(), MarkOutcome::AlreadyMarked);
    let marked = store.get_sweep(&w.id).await.unwrap().unwrap();
    assert_eq!((marked.ranking, marked.status), (Some(mark), JobStatus::Cancelled));
    assert_eq!(store.active_jobs(&user).await.unwrap(), 0, "the mark gives nothing back twice");
    assert_eq!(store.mark_ranking(&SweepId::random(), &mark).await.unwrap(), MarkOutcome::NotFound);

    // Pages in S3 under sweeps/{id}/ranking/, read back by slice.
    let page = |k: u32| format!("[{k}]").into_bytes();
    assert_eq!(results.get_sweep_ranking_page(&w.id, 0).await.unwrap(), None);
    results.put_sweep_ranking_page(&w.id, 3, page(3)).await.unwrap();
    assert_eq!(results.get_sweep_ranking_page(&w.id, 3).await.unwrap(), Some(page(3)));
    assert_eq!(S3Results::ranking_key(&w.id, 3), format!("sweeps/{}/ranking/000003.json", w.id));
    let missing = RankingMark { total: 10, page_size: 5 };
    assert_eq!(ranking_slice(&results, &w.id, &missing, 0..3).await.unwrap(), None);
}
