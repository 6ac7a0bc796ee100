//! Large results over the in-memory ports: stored in pages, read back page by page, each response
//! within the budget and reading only the pages it returns.

mod common;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use common::*;
use pipai_engine::Timeframe;
use pipai_market_data::generate::generate_1m;
use pipai_service::api::{Api, ApiSettings, MAX_ARRAY_PAGE, TRADES_PAGE};
use pipai_service::clock::now_ms;
use pipai_service::memory::MemoryStore;
use pipai_service::ports::*;
use pipai_service::worker::{Delivery, Worker, WorkerSettings};
use pipai_service::JobId;
use serde_json::{json, Value};

const FAR: i64 = i64::MAX / 2;
const SYMBOL: &str = "PAGED1";
/// 2025-01-01 and 75 days of 1m bars: over 25,000 trades with a 1/2 moving-average cross.
const START: i64 = 1_735_689_600_000;
const DAYS: i64 = 75;

/// A result store that counts the bytes read from it.
struct Counting {
    inner: &'static MemoryStore,
    read: AtomicU64,
}

impl ResultStore for &'static Counting {
    async fn put_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.inner.put_artifact(job_id, name, bytes, content_type).await
    }

    async fn get_artifact(&self, job_id: &JobId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let got = self.inner.get_artifact(job_id, name).await?;
        self.read.fetch_add(got.as_ref().map_or(0, |b| b.len() as u64), Ordering::Relaxed);
        Ok(got)
    }

    async fn get_artifact_range(
        &self,
        job_id: &JobId,
        name: &str,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let got = self.inner.get_artifact_range(job_id, name, range).await?;
        self.read.fetch_add(got.as_ref().map_or(0, |b| b.len() as u64), Ordering::Relaxed);
        Ok(got)
    }
    async fn delete_artifacts(&self, job_id: &JobId) -> Result<usize, StoreError> {
        self.inner.delete_artifacts(job_id).await
    }
}

struct Large {
    kit: Kit,
    counting: &'static Counting,
    api: Api<&'static MemoryStore, &'static Counting, &'static MemoryStore>,
    alice: Client,
    id: JobId,
    /// The engine's result for the job, run offline.
    offline: Value,
    /// The size of the stored trades.
    trades_bytes: u64,
}

impl Large {
    async fn get(&self, path_and_query: &str) -> (Value, usize, u64) {
        let req = signed(&self.alice, "GET", path_and_query, b"", now_ms());
        let before = self.counting.read.load(Ordering::Relaxed);
        let resp = self.api.handle(pipai_service::Route::GetJob, &req, now_ms()).await;
        assert_eq!(resp.status, 200, "{}", resp.body_json());
        let read = self.counting.read.load(Ordering::Relaxed) - before;
        (resp.body_json(), resp.body.len(), read)
    }

    fn trades(&self) -> &Vec<Value> {
        self.offline["trades"].as_array().unwrap()
    }
}

fn minute_bars() -> &'static pipai_engine::Bars {
    static BARS: OnceLock<pipai_engine::Bars> = OnceLock::new();
    BARS.get_or_init(|| generate_1m(11, 100.0, START, START + DAYS * 86_400_000))
}

/// A done job with tens of thousands of trades, run by the worker, read through an API whose
/// result store counts what it reads.
async fn large(settings: ApiSettings) -> Large {
    let kit = kit_with(settings.clone());
    kit.store.put_bars(SYMBOL, Timeframe::M1, minute_bars().clone(), true);
    let counting: &'static Counting = Box::leak(Box::new(Counting { inner: kit.store, read: AtomicU64::new(0) }));
    let api = Api { store: kit.store, results: counting, market: kit.store, master: kit.api.master.clone(), settings };
    let alice = kit.client("alice").await;
    let config = json!({
        "template_id": "tpl_ma_cross",
        "params": {"fast": 1, "slow": 2, "direction": "both"},
        "symbols": [SYMBOL],
        "timeframe": "1m",
        "start": "2025-01-01T00:00:00Z",
        "end": pipai_engine::time::iso(START + DAYS * 86_400_000 - 1_000),
        "capital": "10000.00",
        // No fees: nothing stops the churn early.
        "fee_model": "none",
    });
    let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&config), now_ms()).await;
    assert_eq!(resp.status, 201, "{}", resp.body_json());
    let id = job_id(resp.body_json()["id"].as_str().unwrap());
    let worker = Worker { store: kit.store, results: counting, market: kit.store, settings: WorkerSettings::default() };
    assert_eq!(worker.process(&id, FAR).await.unwrap(), Delivery::Done);

    let job = kit.store.get_job(&id).await.unwrap().unwrap();
    let config = job.config;
    let bars = kit.store.load_bars(SYMBOL, Timeframe::M1, config.start_ms(), config.end_ms()).await.unwrap();
    let offline = pipai_engine::run(&config, &[bars], &mut pipai_engine::NoObserver).unwrap();
    let offline = serde_json::to_value(&offline.result).unwrap();
    let trades_bytes = kit.store.get_artifact(&id, "trades.json").await.unwrap().unwrap().len() as u64;
    let large = Large { kit, counting, api, alice, id, offline, trades_bytes };
    assert!(large.trades().len() > 25_000, "enough trades to page: {}", large.trades().len());
    large
}

#[tokio::test]
async fn a_large_result_is_paged_within_the_budget_and_every_trade_comes_back_once_in_order() {
    let l = large(ApiSettings::default()).await;
    let id = &l.id;
    let total = l.trades().len();

    // The default GET: the first page of each array, cursors, within 4 MiB, the arrays unread.
    let (job, size, read) = l.get(&format!("/v1/backtest/jobs/{id}")).await;
    assert!(size <= ApiSettings::default().response_budget_bytes, "{size} bytes");
    assert!(read < l.trades_bytes / 10, "the default GET read {read} of {} bytes", l.trades_bytes);
    let result = &job["result"];
    for key in ["metrics", "structured_metrics", "summary", "equity_curve", "benchmark", "provenance"] {
        assert_eq!(result[key], l.offline[key], "{key}");
    }
    assert_eq!(result["trades"], json!(l.trades()[..TRADES_PAGE]));
    assert_eq!(result["pagination"]["trades"]["total"], total);
    assert_eq!(result["pagination"]["trades"]["returned"], TRADES_PAGE);
    assert_eq!(result["pagination"]["equity_curve"]["next_cursor"], Value::Null);

    // The cursor walk with the largest pages: every trade once, in order, each page in budget.
    let mut all = result["trades"].as_array().unwrap().clone();
    let mut cursor = result["pagination"]["trades"]["next_cursor"].as_str().map(str::to_string);
    let mut pages = 0;
    while let Some(c) = cursor {
        let (page, size, _) =
            l.get(&format!("/v1/backtest/jobs/{id}?expand=trades&limit={MAX_ARRAY_PAGE}&cursor={c}")).await;
        assert!(size <= ApiSettings::default().response_budget_bytes, "{size} bytes");
        assert_eq!(page["total"], total);
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_string);
        pages += 1;
    }
    assert_eq!(pages, (total - TRADES_PAGE).div_ceil(MAX_ARRAY_PAGE));
    assert_eq!(&all, l.trades());
}

#[tokio::test]
async fn a_page_reads_only_the_stored_pages_it_covers() {
    let l = large(ApiSettings::default()).await;
    let id = &l.id;
    let total = l.trades().len();
    // Cursors at several offsets, found by walking small pages.
    let (mut page, _, read) = l.get(&format!("/v1/backtest/jobs/{id}?expand=trades&limit=1")).await;
    assert_eq!(page["data"], json!(l.trades()[..1]));
    assert!(read < l.trades_bytes / 20, "limit=1 read {read} of {} bytes", l.trades_bytes);
    let mut offset = 1;
    for step in [998, 1, 1, 2_500, 7_001, 10_000] {
        let c = page["next_cursor"].as_str().unwrap().to_string();
        let (next, _, read) = l.get(&format!("/v1/backtest/jobs/{id}?expand=trades&limit={step}&cursor={c}")).await;
        let end = (offset + step).min(total);
        assert_eq!(next["data"], json!(l.trades()[offset..end]), "{offset}+{step}");
        // At most the pages covering the slice (and the small index).
        let pages_read = step.div_ceil(TRADES_PAGE) + 1;
        assert!(
            read < l.trades_bytes * pages_read as u64 / (total / TRADES_PAGE) as u64 + 64 * 1024,
            "{offset}+{step} read {read} bytes"
        );
        (page, offset) = (next, end);
    }
    // The equity curve pages the same way.
    let (eq, _, _) = l.get(&format!("/v1/backtest/jobs/{id}?expand=equity_curve&limit=10")).await;
    assert_eq!(eq["data"], json!(l.offline["equity_curve"].as_array().unwrap()[..10]));
    assert_eq!(eq["total"], l.offline["equity_curve"].as_array().unwrap().len());
}

#[tokio::test]
async fn a_small_budget_returns_fewer_than_limit_and_the_walk_stays_complete() {
    let budget = 60_000;
    let l = large(ApiSettings { response_budget_bytes: budget, ..Default::default() }).await;
    let id = &l.id;
    let (first, size, _) = l.get(&format!("/v1/backtest/jobs/{id}?expand=trades&limit={MAX_ARRAY_PAGE}")).await;
    assert!(size <= budget, "{size} bytes");
    let returned = first["data"].as_array().unwrap().len();
    assert!((1..MAX_ARRAY_PAGE).contains(&returned), "{returned}");
    assert_eq!(first["data"], json!(l.trades()[..returned]));
    let mut all = first["data"].as_array().unwrap().clone();
    let mut cursor = first["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (page, size, _) =
            l.get(&format!("/v1/backtest/jobs/{id}?expand=trades&limit={MAX_ARRAY_PAGE}&cursor={c}")).await;
        assert!(size <= budget, "{size} bytes");
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(&all, l.trades());
}

#[tokio::test]
async fn the_stored_result_holds_each_array_once() {
    let l = large(ApiSettings::default()).await;
    let stored = l.kit.store.get_artifact(&l.id, "result.json").await.unwrap().unwrap();
    assert!(stored.len() < 64 * 1024, "result.json is {} bytes", stored.len());
    let stored: Value = serde_json::from_slice(&stored).unwrap();
    assert!(stored.get("trades").is_none() && stored.get("equity_curve").is_none());
    assert_eq!(stored["metrics"], l.offline["metrics"]);
    // The array objects are the plain JSON arrays.
    for name in ["trades", "equity_curve"] {
        let bytes = l.kit.store.get_artifact(&l.id, &format!("{name}.json")).await.unwrap().unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), l.offline[name], "{name}");
    }
}

#[tokio::test]
async fn a_result_stored_before_pages_existed_reads_the_same() {
    let l = large(ApiSettings::default()).await;
    let id = &l.id;
    let paged_default = l.get(&format!("/v1/backtest/jobs/{id}")).await.0;
    let paged_page = l.get(&format!("/v1/backtest/jobs/{id}?expand=trades&limit=1500")).await.0;
    // The earlier layout: compact arrays, and result.json with everything again.
    for name in ["trades", "equity_curve"] {
        let bytes = serde_json::to_vec(&l.offline[name]).unwrap();
        l.kit.store.put_artifact(id, &format!("{name}.json"), bytes, "application/json").await.unwrap();
    }
    let whole = serde_json::to_vec(&l.offline).unwrap();
    l.kit.store.put_artifact(id, "result.json", whole, "application/json").await.unwrap();

    assert_eq!(l.get(&format!("/v1/backtest/jobs/{id}")).await.0, paged_default);
    assert_eq!(l.get(&format!("/v1/backtest/jobs/{id}?expand=trades&limit=1500")).await.0, paged_page);
    let c = paged_page["next_cursor"].as_str().unwrap();
    let (next, _, _) = l.get(&format!("/v1/backtest/jobs/{id}?expand=trades&limit=3&cursor={c}")).await;
    assert_eq!(next["data"], json!(l.trades()[1500..1503]));
}
