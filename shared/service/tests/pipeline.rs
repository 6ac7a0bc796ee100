//! Create -> stream (outbox) -> queue -> worker -> done, and every way a job can end, over the
//! in-memory ports.

mod common;

use common::*;
use pipai_engine::{JobConfig, Timeframe};
use pipai_service::clock::now_ms;
use pipai_service::events::{apply_change, ChangeKind, JobChange};
use pipai_service::memory::MemoryStore;
use pipai_service::model::FailCode;
use pipai_service::model::{JobRecord, JobStatus};
use pipai_service::ports::*;
use pipai_service::worker::{Delivery, Worker, WorkerSettings};
use pipai_service::{JobId, RunToken};
use serde_json::json;

const FAR: i64 = i64::MAX / 2;

fn worker(kit: &Kit) -> Worker<&'static MemoryStore, &'static MemoryStore, &'static MemoryStore> {
    Worker { store: kit.store, results: kit.store, market: kit.store, settings: WorkerSettings::default() }
}

/// What the stream would deliver for the job's current state.
async fn stream_record(store: &MemoryStore, id: &JobId, kind: ChangeKind) -> JobChange {
    let j = store.get_job(id).await.unwrap().unwrap();
    JobChange {
        kind,
        notify: j.webhook.notify_url.is_some(),
        job_id: j.id,
        user_id: Some(j.user_id),
        status: Some(j.status),
        slot_released: j.slot_released,
        old_status: None,
    }
}

async fn create(kit: &Kit, client: &Client, b: &serde_json::Value) -> JobId {
    // Two identical requests signed in the same millisecond are a replay: keep timestamps unique.
    static TICK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let at = now_ms() + TICK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let resp = kit.call(client, "POST", "/v1/backtest/jobs", &body(b), at).await;
    assert_eq!(resp.status, 201, "{}", resp.body_json());
    job_id(resp.body_json()["id"].as_str().unwrap())
}

#[tokio::test]
async fn a_job_runs_to_done_and_reads_back_like_the_offline_run() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice, &seed_body()).await;

    // The stream relays the insert to the queue.
    apply_change(&kit.store, &kit.store, &stream_record(kit.store, &id, ChangeKind::Insert).await).await.unwrap();
    assert_eq!(kit.store.drain_queue(), vec![id.clone()]);

    assert_eq!(worker(&kit).process(&id, FAR).await.unwrap(), Delivery::Done);
    let job = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{id}"), b"", now_ms()).await.body_json();
    assert_eq!(job["status"], "done");
    assert_eq!(job["progress"], 1.0);
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());
    assert!(job["error"].is_null());
    let result = &job["result"];

    // Same numbers as running the engine directly on the same bars.
    let config = JobConfig::from_value(&seed_body(), chrono::Utc::now()).unwrap();
    let bars = kit.store.load_bars("BTCUSDT", Timeframe::H1, config.start_ms(), config.end_ms()).await.unwrap();
    let offline = pipai_engine::run(&config, &[bars], &mut pipai_engine::NoObserver).unwrap();
    let offline = serde_json::to_value(&offline.result).unwrap();
    for key in ["metrics", "structured_metrics", "equity_curve", "trades", "summary", "benchmark", "provenance"] {
        assert_eq!(result[key], offline[key], "{key}");
    }
    assert!(result["pagination"].is_null());
    assert_eq!(result["equity_curve"].as_array().unwrap().len(), 365);

    // The terminal change releases the slot once; replays change nothing.
    assert_eq!(kit.store.active_jobs(&user("alice")), 1);
    let done = stream_record(kit.store, &id, ChangeKind::Modify).await;
    apply_change(&kit.store, &kit.store, &done).await.unwrap();
    apply_change(&kit.store, &kit.store, &done).await.unwrap();
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);

    // The list shows the summary form: metrics without arrays.
    let list = kit.call(&alice, "GET", "/v1/backtest/jobs", b"", now_ms()).await.body_json();
    let item = &list["data"][0];
    assert_eq!(item["result"]["metrics"], offline["metrics"]);
    assert!(item["result"].get("trades").is_none() && item["result"].get("equity_curve").is_none());
}

#[tokio::test]
async fn a_duplicate_delivery_does_one_run() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice, &seed_body()).await;
    let w = worker(&kit);
    assert_eq!(w.process(&id, FAR).await.unwrap(), Delivery::Done);
    let first = kit.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(w.process(&id, FAR).await.unwrap(), Delivery::Done);
    let second = kit.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(first, second, "the second delivery changed nothing");
    assert_eq!(second.attempts, 1);
}

#[tokio::test]
async fn a_delivery_while_another_run_holds_the_lease_is_retried() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice, &seed_body()).await;
    let other_run = RunToken::random();
    let claimed = kit.store.claim_job(&id, &other_run, now_ms(), 60_000).await.unwrap();
    assert!(matches!(claimed, ClaimOutcome::Claimed(_)));
    assert_eq!(worker(&kit).process(&id, FAR).await.unwrap(), Delivery::Retry);
    assert_eq!(kit.store.get_job(&id).await.unwrap().unwrap().run_token, Some(other_run));
}

#[tokio::test]
async fn a_run_that_crashed_is_taken_over_after_its_lease() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice, &seed_body()).await;
    // A worker claimed it and died: a 1 ms lease, never extended.
    kit.store.claim_job(&id, &RunToken::random(), now_ms(), 1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(worker(&kit).process(&id, FAR).await.unwrap(), Delivery::Done);
    let job = kit.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Done, 2));
}

#[tokio::test]
async fn dead_lettered_jobs_fail_once_and_release_their_slot_once() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice, &seed_body()).await;
    let w = worker(&kit);
    assert_eq!(w.process_dead_letter(&id, 4).await.unwrap(), Delivery::Done);
    let job = kit.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_ref().unwrap().code, FailCode::Internal);
    let failed = stream_record(kit.store, &id, ChangeKind::Modify).await;
    for _ in 0..3 {
        apply_change(&kit.store, &kit.store, &failed).await.unwrap();
    }
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);
    // A late original delivery finds it terminal and does nothing.
    assert_eq!(w.process(&id, FAR).await.unwrap(), Delivery::Done);
    assert_eq!(kit.store.get_job(&id).await.unwrap().unwrap().status, JobStatus::Failed);
    // A dead letter for a job a live run still holds waits for that run.
    let id2 = create(&kit, &alice, &seed_body()).await;
    kit.store.claim_job(&id2, &RunToken::random(), now_ms(), 60_000).await.unwrap();
    assert_eq!(w.process_dead_letter(&id2, 4).await.unwrap(), Delivery::Retry);
}

#[tokio::test]
async fn missing_bars_fail_with_data_unavailable() {
    let kit = kit();
    // A job whose symbol has a gap in the window (stored directly: the API would refuse it).
    let mut bars = kit.store.load_bars("BTCUSDT", Timeframe::H1, 0, FAR).await.unwrap();
    let keep: Vec<usize> = (0..bars.len()).filter(|&i| !(1000..1010).contains(&i)).collect();
    let cols = |v: &Vec<f64>| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    bars = pipai_engine::Bars {
        open_time: keep.iter().map(|&i| bars.open_time[i]).collect(),
        open: cols(&bars.open),
        high: cols(&bars.high),
        low: cols(&bars.low),
        close: cols(&bars.close),
        volume: cols(&bars.volume),
    };
    kit.store.put_bars("GAPUSDT", Timeframe::H1, bars, true);
    let mut cfg = seed_body();
    cfg["symbols"] = json!(["GAPUSDT"]);
    let config = JobConfig::from_value(&cfg, chrono::Utc::now()).unwrap();
    let job = JobRecord::new_queued(job_id("bt_0000aaaa"), user("alice"), config, now_ms());
    kit.store.put_job_raw(job);
    assert_eq!(worker(&kit).process(&job_id("bt_0000aaaa"), FAR).await.unwrap(), Delivery::Done);
    let job = kit.store.get_job(&job_id("bt_0000aaaa")).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.code, FailCode::DataUnavailable);
    assert!(error.message.contains("GAPUSDT") && error.message.contains("gap"), "{}", error.message);
}

#[tokio::test]
async fn a_job_cancelled_while_its_data_loads_stays_cancelled() {
    /// Market data that cancels the job while "loading", like a user calling cancel mid-run.
    struct CancellingMarket(&'static MemoryStore, JobId);
    impl MarketData for CancellingMarket {
        async fn coverage(&self, s: &str, tf: Timeframe) -> Result<Option<pipai_market_data::Coverage>, StoreError> {
            self.0.coverage(s, tf).await
        }
        async fn catalog(&self) -> Result<Vec<(pipai_market_data::Coverage, bool)>, StoreError> {
            self.0.catalog().await
        }
        async fn load_bars(&self, s: &str, tf: Timeframe, a: i64, b: i64) -> Result<pipai_engine::Bars, DataError> {
            self.0.cancel_job(&self.1, &user("alice"), now_ms()).await?;
            self.0.load_bars(s, tf, a, b).await
        }
    }
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice, &seed_body()).await;
    let w = Worker {
        store: kit.store,
        results: kit.store,
        market: CancellingMarket(kit.store, id.clone()),
        settings: WorkerSettings::default(),
    };
    assert_eq!(w.process(&id, FAR).await.unwrap(), Delivery::Done);
    let job = kit.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(job.summary.is_none() && job.error.is_none());
}

#[tokio::test]
async fn a_run_past_its_deadline_fails_with_timeout() {
    let kit = kit();
    let alice = kit.client("alice").await;
    // A year of minutes: long enough in a debug build to outlast the first progress tick.
    let minutes = pipai_market_data::Preset::btcusdt().generate(1_735_689_600_000, 1_767_225_600_000);
    kit.store.put_bars("BTCUSDT", Timeframe::M1, minutes, true);
    let mut b = seed_body();
    b["timeframe"] = json!("1m");
    let id = create(&kit, &alice, &b).await;
    let w = Worker {
        store: kit.store,
        results: kit.store,
        market: kit.store,
        settings: WorkerSettings { min_write_gap_ms: 1, ..WorkerSettings::default() },
    };
    // The invocation's deadline is already within the safety margin.
    assert_eq!(w.process(&id, now_ms()).await.unwrap(), Delivery::Done);
    let job = kit.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.unwrap().code, FailCode::Timeout);
}

#[tokio::test]
async fn results_too_large_for_one_response_are_paged() {
    let kit = kit_with(pipai_service::ApiSettings { response_budget_bytes: 10_000, ..Default::default() });
    let alice = kit.client("alice").await;
    let mut b = seed_body();
    b["template_id"] = json!("tpl_ma_cross");
    b["params"] = json!({"fast": 3, "slow": 7, "direction": "both"});
    let id = create(&kit, &alice, &b).await;
    worker(&kit).process(&id, FAR).await.unwrap();
    let job = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{id}"), b"", now_ms()).await.body_json();
    let result = &job["result"];
    let total_trades = result["pagination"]["trades"]["total"].as_u64().unwrap() as usize;
    assert!(total_trades > pipai_service::api::TRADES_PAGE, "enough trades to page: {total_trades}");
    assert_eq!(result["trades"].as_array().unwrap().len(), pipai_service::api::TRADES_PAGE);
    assert_eq!(result["metrics"]["total_trades"].as_u64().unwrap() as usize, total_trades);

    // Walk the trades with expand=trades&cursor=... and get every trade exactly once, in order.
    let mut all: Vec<serde_json::Value> = result["trades"].as_array().unwrap().clone();
    let mut cursor = result["pagination"]["trades"]["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let page = kit
            .call(&alice, "GET", &format!("/v1/backtest/jobs/{id}?expand=trades&limit=700&cursor={c}"), b"", now_ms())
            .await;
        assert_eq!(page.status, 200, "{}", page.body_json());
        let page = page.body_json();
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(all.len(), total_trades);
    assert!(all.iter().enumerate().all(|(i, t)| t["id"] == json!(i + 1)));
    // The cursor belongs to its job and its array.
    let c = result["pagination"]["trades"]["next_cursor"].as_str().unwrap();
    let wrong =
        kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{id}?expand=equity_curve&cursor={c}"), b"", now_ms()).await;
    assert_error(&wrong, 400, "INVALID_PARAMETER", "cursor:");
    let bad = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{id}?expand=orders"), b"", now_ms()).await;
    assert_error(&bad, 400, "INVALID_PARAMETER", "expand:");
}

#[tokio::test]
async fn stream_bookkeeping_ignores_what_it_need_not_act_on() {
    let store = MemoryStore::new();
    let base = JobChange {
        kind: ChangeKind::Modify,
        job_id: job_id("bt_00000001"),
        user_id: Some(user("u")),
        status: Some(JobStatus::Running),
        slot_released: false,
        old_status: None,
        notify: false,
    };
    apply_change(&store, &store, &base).await.unwrap();
    apply_change(&store, &store, &JobChange { kind: ChangeKind::Remove, status: None, ..base.clone() }).await.unwrap();
    apply_change(
        &store,
        &store,
        &JobChange { kind: ChangeKind::Modify, status: Some(JobStatus::Done), slot_released: true, ..base },
    )
    .await
    .unwrap();
    assert!(store.drain_queue().is_empty());
}

#[tokio::test]
async fn a_stored_series_that_does_not_cover_the_window_gives_way_to_1m_bars() {
    // As the create-time check does: the stored 1h series has a gap, 1m covers the window, so the
    // worker derives 1h from 1m instead of failing the job with DATA_UNAVAILABLE.
    use pipai_market_data::{generate::generate_1m, resample};
    use pipai_service::worker::load_job_bars;
    let store: &'static MemoryStore = Box::leak(Box::new(MemoryStore::new()));
    let (start, end) = (1_704_067_200_000, 1_704_067_200_000 + 3 * 86_400_000 - 60_000); // 3 days of 2024
    let minutes = generate_1m(7, 100.0, start, end + 60_000);
    let hours = resample(&minutes, Timeframe::H1);
    let mut with_gap = hours.clone();
    for column in [&mut with_gap.open, &mut with_gap.high, &mut with_gap.low, &mut with_gap.close, &mut with_gap.volume]
    {
        column.remove(30);
    }
    with_gap.open_time.remove(30);
    store.put_bars("MIXUSDT", Timeframe::M1, minutes, false);
    store.put_bars("MIXUSDT", Timeframe::H1, with_gap, false);
    let loaded = load_job_bars(&store, "MIXUSDT", Timeframe::H1, start, end).await.unwrap();
    assert_eq!(loaded.open_time, hours.open_time);
    assert_eq!(loaded.close, hours.close);
    // Without 1m bars the gap is what the job is told about.
    let mut gappy = loaded;
    gappy.open_time.remove(30);
    for column in [&mut gappy.open, &mut gappy.high, &mut gappy.low, &mut gappy.close, &mut gappy.volume] {
        column.remove(30);
    }
    store.put_bars("GAPPYUSDT", Timeframe::H1, gappy, false);
    let err = load_job_bars(&store, "GAPPYUSDT", Timeframe::H1, start, end).await.unwrap_err();
    assert!(matches!(err, DataError::Unavailable(ref m) if m.contains("missing")), "{err:?}");
}
