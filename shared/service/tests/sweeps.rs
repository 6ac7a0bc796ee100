//! `/v1/backtest/sweeps` over the in-memory ports: create (and dry run), the chunk worker
//! (duplicates, failed chunks, cancel), the shared active slots, the leaderboard and its pages.

mod common;

use common::*;
use pipai_engine::{Bars, Timeframe};
use pipai_market_data::Coverage;
use pipai_service::auth::HEADER_USED_WEIGHT;
use pipai_service::events::{apply_change, ChangeKind, JobChange};
use pipai_service::memory::MemoryStore;
use pipai_service::ports::{DataError, JobStore, MarketData, StoreError};
use pipai_service::sweep_api::relay_sweep_insert;
use pipai_service::sweep_worker::SweepWorker;
use pipai_service::sweeps::SweepStore;
use pipai_service::worker::{Delivery, Worker, WorkerSettings};
use pipai_service::{ApiResponse, JobId, SweepId};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};

/// Unique request times (two identical requests signed in the same millisecond are a replay).
fn tick() -> i64 {
    static TICK: AtomicI64 = AtomicI64::new(0);
    NOW + TICK.fetch_add(1, Ordering::Relaxed)
}

async fn call(kit: &Kit, who: &Client, method: &str, path: &str, b: &[u8]) -> ApiResponse {
    let now = tick();
    kit.call(who, method, path, b, now).await
}

/// 12 configs in two groups (one per symbol), so two chunks.
fn sweep_body() -> Value {
    json!({
        "base": {"template_id": "tpl_ma_cross", "params": {"direction": "long"}, "timeframe": "1h",
                 "start": "2025-01-01T00:00:00Z", "end": "2025-12-31T23:00:00Z", "capital": "10000.00",
                 "fee_model": "fixed_bps", "fee_bps": "5"},
        "space": {"symbols": [["BTCUSDT"], ["ETHUSDT"]], "params.fast": [5, 10, 20], "params.slow": [50, 100]},
        "rank_metric": "sharpe",
        "constraints": [{"metric": "total_trades", "min": "3"}]
    })
}

fn worker(kit: &Kit) -> SweepWorker<&'static MemoryStore, &'static MemoryStore> {
    SweepWorker { store: kit.store, market: kit.store }
}

async fn create(kit: &Kit, who: &Client, b: &Value) -> Value {
    let resp = call(kit, who, "POST", "/v1/backtest/sweeps", &body(b)).await;
    assert_eq!(resp.status, 201, "{}", resp.body_json());
    resp.body_json()
}

fn sweep_id(v: &Value) -> SweepId {
    v["id"].as_str().unwrap().parse().unwrap()
}

/// The stream relay, then every chunk message through the worker.
async fn run_all(kit: &Kit, id: &SweepId) -> Vec<(SweepId, u32)> {
    let sweep = kit.store.get_sweep(id).await.unwrap().unwrap();
    relay_sweep_insert(&kit.store, &sweep).await.unwrap();
    let messages = kit.store.drain_chunk_queue();
    for (id, chunk) in &messages {
        assert_eq!(worker(kit).process_chunk(id, *chunk).await.unwrap(), Delivery::Done);
    }
    messages
}

async fn get(kit: &Kit, who: &Client, path: &str) -> Value {
    let resp = call(kit, who, "GET", path, b"").await;
    assert_eq!(resp.status, 200, "{}", resp.body_json());
    resp.body_json()
}

#[tokio::test]
async fn a_grid_sweep_runs_to_done_ranked_and_exact() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let resp = call(&kit, &alice, "POST", "/v1/backtest/sweeps", &body(&sweep_body())).await;
    assert_eq!((resp.status, resp.header(HEADER_USED_WEIGHT)), (201, Some("20")));
    let created = resp.body_json();
    let id = sweep_id(&created);
    assert_eq!(resp.header("location"), Some(format!("/v1/backtest/sweeps/{id}").as_str()));
    let mut keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "best",
            "completed",
            "config",
            "degradation", // beside API.md's fields: the degradation report (null here)
            "error",
            "failed",
            "finished_at",
            "id",
            "leaderboard",
            "n_configs",
            "progress",
            "started_at",
            "status",
            "submitted_at"
        ]
    );
    assert_eq!((created["status"].as_str(), created["n_configs"].as_u64()), (Some("queued"), Some(12)));
    assert_eq!(created["config"]["search"], json!({"method": "grid"}), "the request, resolved");
    assert_eq!(kit.store.active_jobs(&user("alice")), 1, "a queued sweep holds a slot");

    let messages = run_all(&kit, &id).await;
    assert_eq!(messages.len(), 2, "one chunk per symbol");
    let done = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}")).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        (done["completed"].as_u64(), done["failed"].as_u64(), done["progress"].as_f64()),
        (Some(12), Some(0), Some(1.0))
    );
    assert_eq!(kit.store.active_jobs(&user("alice")), 0, "the slot is given back when it ends");
    let board = done["leaderboard"].as_array().unwrap();
    assert!(!board.is_empty() && board.len() <= 12);
    assert_eq!(done["best"], board[0]);
    let sharpe = |e: &Value| e["metrics"]["sharpe"].as_str().map(|s| s.parse::<f64>().unwrap());
    for (i, e) in board.iter().enumerate() {
        assert_eq!(e["rank"], i + 1);
        assert!(e["metrics"]["total_trades"].as_u64().unwrap() >= 3, "constraint applied");
        assert!(e["oos_metrics"].is_null());
    }
    assert!(board.windows(2).all(|w| sharpe(&w[0]) >= sharpe(&w[1]) || sharpe(&w[1]).is_none()));

    // The full ranking, paged: the same entries as the live top 20 (all of them here).
    let page1 = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}?expand=leaderboard&limit=5")).await;
    assert_eq!(page1["total"].as_u64(), Some(board.len() as u64));
    let mut all: Vec<Value> = page1["data"].as_array().unwrap().clone();
    let mut cursor = page1["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let page = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}?expand=leaderboard&limit=5&cursor={c}")).await;
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(&all, board);
    let bad = call(&kit, &alice, "GET", &format!("/v1/backtest/sweeps/{id}?expand=leaderboard&limit=1001"), b"").await;
    assert_error(&bad, 400, "INVALID_PARAMETER", "limit");

    // Exactness: a job created with the best entry's config has the same metrics, string for string.
    let job = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&board[0]["config"]), tick()).await;
    assert_eq!(job.status, 201, "{}", job.body_json());
    let job_id: JobId = job.body_json()["id"].as_str().unwrap().parse().unwrap();
    let record = kit.store.get_job(&job_id).await.unwrap().unwrap();
    let change = JobChange {
        kind: ChangeKind::Insert,
        job_id: job_id.clone(),
        user_id: Some(record.user_id),
        status: Some(record.status),
        slot_released: false,
        old_status: None,
        notify: false,
    };
    apply_change(&kit.store, &kit.store, &change).await.unwrap();
    kit.store.drain_queue();
    let w = Worker { store: kit.store, results: kit.store, market: kit.store, settings: WorkerSettings::default() };
    assert_eq!(w.process(&job_id, i64::MAX / 2).await.unwrap(), Delivery::Done);
    let job = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{job_id}"), b"", tick()).await.body_json();
    assert_eq!(job["result"]["metrics"].to_string(), board[0]["metrics"].to_string());
    assert_eq!(job["result"]["structured_metrics"].to_string(), board[0]["structured_metrics"].to_string());
}

#[tokio::test]
async fn dry_run_costs_five_and_creates_nothing() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let mut b = sweep_body();
    b["dry_run"] = json!(true);
    let resp = call(&kit, &alice, "POST", "/v1/backtest/sweeps", &body(&b)).await;
    assert_eq!((resp.status, resp.header(HEADER_USED_WEIGHT)), (200, Some("5")));
    let estimate = resp.body_json();
    let mut keys: Vec<&str> = estimate.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["bar_evaluations", "chunks", "estimated_seconds", "n_configs"]);
    assert_eq!((estimate["n_configs"].as_u64(), estimate["chunks"].as_u64()), (Some(12), Some(2)));
    assert_eq!(estimate["bar_evaluations"].as_u64(), Some(12 * 8760));
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);
    let list = get(&kit, &alice, "/v1/backtest/sweeps").await;
    assert_eq!(list, json!({"data": [], "next_cursor": null}));
    assert!(kit.store.drain_chunk_queue().is_empty());
}

#[tokio::test]
async fn every_expanded_config_is_validated_and_the_count_is_capped() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let mut b = sweep_body();
    b["space"]["params.slow"] = json!([50, 8]);
    let resp = call(&kit, &alice, "POST", "/v1/backtest/sweeps", &body(&b)).await;
    assert_error(
        &resp,
        400,
        "INVALID_PARAMETER",
        "space: config 6 (params.fast=10, params.slow=8, symbols=[\"BTCUSDT\"])",
    );
    assert_error(&resp, 400, "INVALID_PARAMETER", "params.slow: must be greater than params.fast");

    let mut b = sweep_body();
    b["space"] =
        json!({"params.fast": {"from": 1, "to": 101, "step": 1}, "params.slow": {"from": 200, "to": 300, "step": 1}});
    let resp = call(&kit, &alice, "POST", "/v1/backtest/sweeps", &body(&b)).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "space: expands to 10201 configs");

    let mut b = sweep_body();
    b["base"]["start"] = json!("2024-06-01T00:00:00Z");
    let resp = call(&kit, &alice, "POST", "/v1/backtest/sweeps", &body(&b)).await;
    assert_error(&resp, 400, "INVALID_PARAMETER", "symbols[0]: the window is not covered");
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);
}

#[tokio::test]
async fn a_sweep_shares_the_five_active_slots_with_jobs() {
    let kit = kit();
    let alice = kit.client("alice").await;
    for _ in 0..4 {
        let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), tick()).await;
        assert_eq!(resp.status, 201);
    }
    let sweep = create(&kit, &alice, &sweep_body()).await;
    assert_eq!(kit.store.active_jobs(&user("alice")), 5);
    let sixth = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), tick()).await;
    assert_error(&sixth, 429, "RATE_LIMITED", "queued or running");
    let resp = call(&kit, &alice, "POST", "/v1/backtest/sweeps", &body(&sweep_body())).await;
    assert_error(&resp, 429, "RATE_LIMITED", "jobs and sweeps queued or running");
    // Ending the sweep gives its slot back.
    run_all(&kit, &sweep_id(&sweep)).await;
    assert_eq!(kit.store.active_jobs(&user("alice")), 4);
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), tick()).await;
    assert_eq!(resp.status, 201);
}

#[tokio::test]
async fn a_duplicate_chunk_counts_once_and_a_failed_chunk_still_ends_the_sweep() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = sweep_id(&create(&kit, &alice, &sweep_body()).await);
    let w = worker(&kit);
    assert_eq!(w.process_chunk(&id, 0).await.unwrap(), Delivery::Done);
    assert_eq!(w.process_chunk(&id, 0).await.unwrap(), Delivery::Done, "a duplicate delivery");
    let half = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}")).await;
    assert_eq!(
        (half["status"].as_str(), half["completed"].as_u64(), half["progress"].as_f64()),
        (Some("running"), Some(6), Some(0.5))
    );
    assert!(half["started_at"].is_string() && half["finished_at"].is_null());
    // Chunk 1 reached the dead-letter queue: its 6 configs count failed, the sweep ends.
    assert_eq!(w.fail_chunk(&id, 1).await.unwrap(), Delivery::Done);
    assert_eq!(w.fail_chunk(&id, 1).await.unwrap(), Delivery::Done, "a duplicate DLQ record");
    assert_eq!(w.process_chunk(&id, 1).await.unwrap(), Delivery::Done, "a late delivery after the end");
    let done = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}")).await;
    assert_eq!(
        (done["status"].as_str(), done["completed"].as_u64(), done["failed"].as_u64()),
        (Some("done"), Some(6), Some(6))
    );
    assert_eq!(kit.store.get_chunks(&id).await.unwrap().len(), 2);
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);

    // Every config failed: the sweep is failed, with an error.
    let id = sweep_id(&create(&kit, &alice, &sweep_body()).await);
    w.fail_chunk(&id, 0).await.unwrap();
    w.fail_chunk(&id, 1).await.unwrap();
    let failed = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}")).await;
    assert_eq!((failed["status"].as_str(), failed["failed"].as_u64()), (Some("failed"), Some(12)));
    assert!(failed["error"]["message"].as_str().unwrap().contains("every config failed"), "{failed}");
    assert!(failed["best"].is_null());
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);
}

#[tokio::test]
async fn cancel_skips_the_rest_and_other_users_see_nothing() {
    let kit = kit();
    let (alice, bob) = (kit.client("alice").await, kit.client("bob").await);
    let id = sweep_id(&create(&kit, &alice, &sweep_body()).await);
    worker(&kit).process_chunk(&id, 0).await.unwrap();
    for (method, path) in
        [("GET", format!("/v1/backtest/sweeps/{id}")), ("POST", format!("/v1/backtest/sweeps/{id}/cancel"))]
    {
        let resp = call(&kit, &bob, method, &path, b"").await;
        assert_error(&resp, 404, "NOT_FOUND", "no sweep");
    }
    assert_eq!(get(&kit, &bob, "/v1/backtest/sweeps").await["data"], json!([]));
    let resp = call(&kit, &alice, "POST", &format!("/v1/backtest/sweeps/{id}/cancel"), b"").await;
    assert_eq!((resp.status, resp.header(HEADER_USED_WEIGHT)), (200, Some("25")), "create 20 + cancel 5");
    assert_eq!(resp.body_json()["status"], "cancelled");
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);
    assert_eq!(worker(&kit).process_chunk(&id, 1).await.unwrap(), Delivery::Done);
    let after = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}")).await;
    assert_eq!(
        (after["status"].as_str(), after["completed"].as_u64()),
        (Some("cancelled"), Some(6)),
        "chunk 1 skipped"
    );
    let again = call(&kit, &alice, "POST", &format!("/v1/backtest/sweeps/{id}/cancel"), b"").await;
    assert_error(&again, 409, "INVALID_STATE", "already cancelled");
    let list = get(&kit, &alice, "/v1/backtest/sweeps?status=cancelled").await;
    assert_eq!(list["data"][0]["id"], json!(id.as_str()));
}

#[tokio::test]
async fn random_search_is_reproducible_and_lists_page_newest_first() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let mut b = sweep_body();
    b["space"] =
        json!({"params.fast": {"from": 2, "to": 30, "step": 1}, "params.slow": {"from": 40, "to": 200, "step": 10}});
    b["base"]["symbols"] = json!(["BTCUSDT"]);
    b["search"] = json!({"method": "random", "samples": 6, "seed": 7});
    b["constraints"] = json!([]);
    let mut boards = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = sweep_id(&create(&kit, &alice, &b).await);
        run_all(&kit, &id).await;
        let page = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}?expand=leaderboard")).await;
        assert_eq!(page["total"], 6);
        let mut configs: Vec<String> =
            page["data"].as_array().unwrap().iter().map(|e| e["config"].to_string()).collect();
        configs.sort();
        boards.push(configs);
        ids.push(id);
    }
    assert_eq!(boards[0], boards[1], "the same seed picks the same configs");
    let page = get(&kit, &alice, "/v1/backtest/sweeps?limit=1").await;
    assert_eq!(page["data"][0]["id"], json!(ids[1].as_str()), "newest first");
    assert!(page["data"][0].get("leaderboard").is_none(), "the list is the summary form");
    let c = page["next_cursor"].as_str().unwrap();
    let next = get(&kit, &alice, &format!("/v1/backtest/sweeps?limit=1&cursor={c}")).await;
    assert_eq!(next["data"][0]["id"], json!(ids[0].as_str()));
    assert!(next["next_cursor"].is_null());
}

#[tokio::test]
async fn base_strategy_id_resolves_like_create_job() {
    let kit = kit();
    let (alice, bob) = (kit.client("alice").await, kit.client("bob").await);
    let strategy = json!({"name": "ma", "config": {"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 50, "direction": "long"},
                          "symbols": ["BTCUSDT"], "timeframe": "1h", "capital": "5000.00"}});
    let s = kit.call(&alice, "POST", "/v1/strategies", &body(&strategy), tick()).await.body_json();
    let b = json!({"base": {"strategy_id": s["id"], "start": "2025-01-01T00:00:00Z", "end": "2025-06-30T23:00:00Z"},
                   "space": {"params.fast": [5, 10]}});
    let created = create(&kit, &alice, &b).await;
    assert_eq!(created["n_configs"], 2);
    assert_eq!(created["config"]["base"]["capital"], "5000.00", "base merged over the strategy's config");
    assert_eq!(created["config"]["base"]["strategy_id"], s["id"]);
    let resp = call(&kit, &bob, "POST", "/v1/backtest/sweeps", &body(&b)).await;
    assert_error(&resp, 409, "INVALID_STATE", "base.strategy_id");
}

/// Market data that cancels the sweep while the chunk loads its bars, after the chunk's
/// start-of-chunk check: the cancel reaches a running chunk.
struct CancelWhileLoading {
    store: &'static MemoryStore,
    sweep: SweepId,
}

impl MarketData for CancelWhileLoading {
    async fn coverage(&self, symbol: &str, timeframe: Timeframe) -> Result<Option<Coverage>, StoreError> {
        self.store.coverage(symbol, timeframe).await
    }
    async fn catalog(&self) -> Result<Vec<(Coverage, bool)>, StoreError> {
        self.store.catalog().await
    }
    async fn load_bars(
        &self,
        symbol: &str,
        timeframe: Timeframe,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Bars, DataError> {
        self.store.cancel_sweep(&self.sweep, &user("alice"), NOW).await.unwrap();
        self.store.load_bars(symbol, timeframe, start_ms, end_ms).await
    }
}

#[tokio::test]
async fn a_cancel_during_a_chunk_stops_it_and_the_counts_stay_exact() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = sweep_id(&create(&kit, &alice, &sweep_body()).await);
    assert_eq!(worker(&kit).process_chunk(&id, 0).await.unwrap(), Delivery::Done);
    assert_eq!(kit.store.get_sweep(&id).await.unwrap().unwrap().status.to_string(), "running");

    let cancelling =
        SweepWorker { store: kit.store, market: CancelWhileLoading { store: kit.store, sweep: id.clone() } };
    assert_eq!(cancelling.process_chunk(&id, 1).await.unwrap(), Delivery::Done);
    let after = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}")).await;
    assert_eq!(after["status"], "cancelled", "{after}");
    assert_eq!(
        (after["completed"].as_u64(), after["failed"].as_u64(), after["n_configs"].as_u64()),
        (Some(6), Some(0), Some(12)),
        "chunk 0's counts only: chunk 1 stopped unrecorded"
    );
    let chunks = kit.store.get_chunks(&id).await.unwrap();
    assert_eq!(chunks.iter().map(|c| c.chunk).collect::<Vec<_>>(), [0]);
    let recorded: usize = chunks.iter().map(|c| c.completed + c.failed).sum();
    assert_eq!(recorded as u64, after["completed"].as_u64().unwrap() + after["failed"].as_u64().unwrap());
    assert_eq!(kit.store.active_jobs(&user("alice")), 0, "the slot is given back once");
    // A redelivery of the stopped chunk is skipped at its start.
    assert_eq!(worker(&kit).process_chunk(&id, 1).await.unwrap(), Delivery::Done);
    assert_eq!(kit.store.get_chunks(&id).await.unwrap().len(), 1);
}

/// Every page of the full ranking (`expand=leaderboard`), `limit` at a time.
async fn walk_ranking(kit: &Kit, who: &Client, id: &SweepId, limit: usize) -> (Vec<Value>, u64) {
    let path = format!("/v1/backtest/sweeps/{id}?expand=leaderboard&limit={limit}");
    let first = get(kit, who, &path).await;
    let total = first["total"].as_u64().unwrap();
    let mut all: Vec<Value> = first["data"].as_array().unwrap().clone();
    let mut cursor = first["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let page = get(kit, who, &format!("{path}&cursor={c}")).await;
        assert_eq!(page["total"].as_u64(), Some(total));
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    (all, total)
}

#[tokio::test]
async fn an_ended_sweep_stores_its_ranking_once_and_pages_read_it() {
    use pipai_service::ports::ResultStore;
    use pipai_service::sweep_ranking::{ranking_slice, store_ranking, RankingOutcome, RANKING_PAGE};
    use pipai_service::sweeps::{merge_ranked, RankingMark, StoredEntry};

    let kit = kit();
    let alice = kit.client("alice").await;
    let id = sweep_id(&create(&kit, &alice, &sweep_body()).await);
    run_all(&kit, &id).await;
    let merged = walk_ranking(&kit, &alice, &id, 5).await;

    // Before the end: nothing stored. At the end: stored once, marked; a replay writes nothing.
    let running = sweep_id(&create(&kit, &alice, &sweep_body()).await);
    assert_eq!(store_ranking(kit.store, kit.store, &running).await.unwrap(), RankingOutcome::NotEnded);
    assert_eq!(kit.store.ranking_pages(&running), 0);
    let mark = RankingMark { total: merged.1 as usize, page_size: RANKING_PAGE };
    assert_eq!(store_ranking(kit.store, kit.store, &id).await.unwrap(), RankingOutcome::Stored(mark));
    assert_eq!(kit.store.ranking_pages(&id), 1);
    assert_eq!(kit.store.get_sweep(&id).await.unwrap().unwrap().ranking, Some(mark));
    assert_eq!(store_ranking(kit.store, kit.store, &id).await.unwrap(), RankingOutcome::AlreadyStored);
    for limit in [1, 5, 100] {
        assert_eq!(walk_ranking(&kit, &alice, &id, limit).await, merged, "limit {limit}");
    }
    let view = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}")).await;
    assert!(view.get("ranking").is_none(), "the mark is not part of the API: {view}");

    // The GET reads the stored pages once marked: a page written otherwise shows.
    let page: Vec<StoredEntry> =
        serde_json::from_slice(&kit.store.get_sweep_ranking_page(&id, 0).await.unwrap().unwrap()).unwrap();
    let mut reversed = page.clone();
    reversed.reverse();
    kit.store.put_sweep_ranking_page(&id, 0, serde_json::to_vec(&reversed).unwrap()).await.unwrap();
    let shown = get(&kit, &alice, &format!("/v1/backtest/sweeps/{id}?expand=leaderboard&limit=2")).await;
    assert_eq!(shown["data"][0]["config"], json!(reversed[0].config));
    assert_eq!(shown["data"][0]["rank"], 1);

    // Slices across pages of any size read only their pages; a missing page is `None`.
    let spec = kit.store.get_sweep(&id).await.unwrap().unwrap().spec().unwrap();
    let all = merge_ranked(&spec, kit.store.get_chunks(&id).await.unwrap().into_iter().flat_map(|c| c.entries));
    let other: SweepId = "sw_0000beef".parse().unwrap();
    let small = RankingMark { total: all.len(), page_size: 3 };
    for (k, entries) in all.chunks(3).enumerate() {
        kit.store.put_sweep_ranking_page(&other, k as u32, serde_json::to_vec(entries).unwrap()).await.unwrap();
    }
    for (from, to) in [(0, all.len()), (0, 1), (2, 4), (3, 6), (1, all.len()), (all.len(), all.len())] {
        let slice = ranking_slice(kit.store, &other, &small, from..to).await.unwrap().unwrap();
        assert_eq!(slice, all[from..to], "{from}..{to}");
    }
    let missing = RankingMark { total: 500, page_size: 3 };
    assert_eq!(ranking_slice(kit.store, &other, &missing, 0..400).await.unwrap(), None);
}

#[tokio::test]
async fn a_cancelled_sweep_stores_the_ranking_of_its_recorded_chunks() {
    use pipai_service::sweep_ranking::{store_ranking, RankingOutcome};
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = sweep_id(&create(&kit, &alice, &sweep_body()).await);
    worker(&kit).process_chunk(&id, 0).await.unwrap();
    let resp = call(&kit, &alice, "POST", &format!("/v1/backtest/sweeps/{id}/cancel"), b"").await;
    assert_eq!(resp.status, 200);
    let merged = walk_ranking(&kit, &alice, &id, 4).await;
    assert!(matches!(store_ranking(kit.store, kit.store, &id).await.unwrap(), RankingOutcome::Stored(_)));
    assert_eq!(walk_ranking(&kit, &alice, &id, 4).await, merged);
}
