//! DELETE /v1/backtest/jobs/{id} and POST /v1/backtest/compare over the in-memory ports: who
//! wins each metric, what is 400 and 404, what a delete removes, and that slots stay exact.

mod common;

use common::*;
use pipai_engine::metrics::MetricValues;
use pipai_engine::result::{Metrics, StructuredMetrics, Summary};
use pipai_engine::JobConfig;
use pipai_service::clock::now_ms;
use pipai_service::events::{apply_change, ChangeKind, JobChange};
use pipai_service::memory::MemoryStore;
use pipai_service::model::{FailCode, JobError, JobRecord, JobStatus, ResultSummary};
use pipai_service::ports::*;
use pipai_service::worker::{Delivery, Worker, WorkerSettings};
use pipai_service::JobId;
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// Request times: unique per call (two identical signed POSTs in one millisecond are a replay).
fn at() -> i64 {
    static TICK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    now_ms() + TICK.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn d(text: &str) -> Option<Decimal> {
    Some(text.parse().unwrap())
}

/// A terminal job of `owner` stored directly, its slot already given back; `metrics` edits the
/// (otherwise default) metrics of a done one.
fn stored(kit: &Kit, owner: &str, id: &str, status: JobStatus, metrics: impl FnOnce(&mut ResultSummary)) -> JobId {
    let config = JobConfig::from_value(&seed_body(), chrono::Utc::now()).unwrap();
    let mut job = JobRecord::new_queued(job_id(id), user(owner), config, now_ms());
    job.status = status;
    job.finished_at_ms = Some(now_ms());
    job.slot_released = true;
    match status {
        JobStatus::Done => {
            let values = MetricValues::default();
            let mut summary = ResultSummary {
                metrics: Metrics::from_values(&values),
                structured_metrics: StructuredMetrics::from_values(&values),
                summary: Summary {
                    final_equity: "10000.00".parse().unwrap(),
                    bars: 10,
                    first_bar_time: "2025-01-01T00:00:00Z".into(),
                    last_bar_time: "2025-01-01T09:00:00Z".into(),
                    stopped_reason: None,
                    bankruptcy_shortfall: None,
                },
            };
            metrics(&mut summary);
            job.progress = 1.0;
            job.summary = Some(summary);
        }
        JobStatus::Failed => job.error = Some(JobError::new(FailCode::SimulationError, "no")),
        _ => {}
    }
    kit.store.put_job_raw(job);
    job_id(id)
}

async fn compare(kit: &Kit, client: &Client, ids: &[&str]) -> pipai_service::ApiResponse {
    kit.call(client, "POST", "/v1/backtest/compare", &body(&json!({ "job_ids": ids })), at()).await
}

fn worker(kit: &Kit) -> Worker<&'static MemoryStore, &'static MemoryStore, &'static MemoryStore> {
    Worker { store: kit.store, results: kit.store, market: kit.store, settings: WorkerSettings::default() }
}

async fn create(kit: &Kit, client: &Client, b: &Value) -> JobId {
    let resp = kit.call(client, "POST", "/v1/backtest/jobs", &body(b), at()).await;
    assert_eq!(resp.status, 201, "{}", resp.body_json());
    job_id(resp.body_json()["id"].as_str().unwrap())
}

/// What the stream delivers for the job's current state.
async fn stream_record(store: &MemoryStore, id: &JobId, kind: ChangeKind) -> JobChange {
    let j = store.get_job(id).await.unwrap().unwrap();
    JobChange {
        kind,
        job_id: j.id,
        user_id: Some(j.user_id),
        status: Some(j.status),
        slot_released: j.slot_released,
        old_status: None,
        notify: false,
    }
}

async fn settle(kit: &Kit, id: &JobId) {
    apply_change(&kit.store, &kit.store, &stream_record(kit.store, id, ChangeKind::Modify).await).await.unwrap();
}

#[tokio::test]
async fn compare_picks_the_best_per_direction_never_a_null_and_keeps_request_order() {
    let kit = kit();
    let alice = kit.client("alice").await;
    // id, sharpe, max_drawdown, total_trades, var_95, volatility_annualised
    let [a, b, c] = [
        ("bt_0000000a", "1.2", "-0.35", 40, d("-0.020"), "0.5"),
        ("bt_0000000b", "1.50", "-0.10", 12, d("-0.030"), "0.3"),
        ("bt_0000000c", "1.5", "-0.2", 99, None, "0.4"),
    ]
    .map(|(id, sharpe, drawdown, trades, var_95, volatility)| {
        stored(&kit, "alice", id, JobStatus::Done, |s| {
            s.metrics.sharpe = d(sharpe);
            s.metrics.max_drawdown = d(drawdown);
            s.metrics.total_trades = trades;
            s.structured_metrics.risk.var_95 = var_95;
            s.structured_metrics.risk.volatility_annualised = d(volatility);
        })
    });
    let failed = stored(&kit, "alice", "bt_0000000f", JobStatus::Failed, |_| {});
    let cancelled = stored(&kit, "alice", "bt_00000ccc", JobStatus::Cancelled, |_| {});
    // The failed and the cancelled job first: their nulls are never best.
    let order = [&failed, &cancelled, &a, &c, &b].map(|id| id.as_str());
    let resp = compare(&kit, &alice, &order).await;
    assert_eq!(resp.status, 200, "{}", resp.body_json());
    assert_eq!(resp.header("x-pipai-used-weight-1m"), Some("10"));
    let got = resp.body_json();
    assert_eq!(got.as_object().unwrap().len(), 2);

    let runs = got["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), order);
    assert_eq!(
        runs.iter().map(|r| r["status"].as_str().unwrap()).collect::<Vec<_>>(),
        ["failed", "cancelled", "done", "done", "done"]
    );
    for run in runs {
        assert_eq!(run.as_object().unwrap().len(), 4, "{run}");
        assert_eq!(run["config"]["template_id"], "tpl_grid");
        assert_eq!(run["metrics"].is_null(), run["status"] != "done", "{run}");
    }
    assert_eq!(runs[2]["metrics"]["sharpe"], "1.2");

    let diff = &got["metric_diff"];
    let names: Vec<&str> = diff.as_object().unwrap().keys().map(String::as_str).collect();
    let catalog: Vec<&str> = pipai_engine::metric_catalog::METRICS.iter().map(|(n, _)| *n).collect();
    let mut sorted = catalog.clone();
    sorted.sort_unstable();
    assert_eq!(names.len(), 25);
    assert!(names == catalog || names == sorted, "one entry per catalog metric: {names:?}");
    for (name, entry) in diff.as_object().unwrap() {
        let keys: Vec<&str> = entry["values"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{name}");
        assert!(entry["values"][failed.as_str()].is_null() && entry["values"][cancelled.as_str()].is_null(), "{name}");
        assert_ne!(entry["best_id"], failed.as_str());
    }
    let best = |name: &str| diff[name]["best_id"].clone();
    // Ties go to the earliest in the request: c (1.5) before b (1.50).
    assert_eq!((best("sharpe"), &diff["sharpe"]["higher_is_better"]), (json!(c.as_str()), &json!(true)));
    assert_eq!(diff["sharpe"]["values"][b.as_str()], "1.50", "the value as the job shows it");
    assert_eq!(diff["sharpe"]["values"][a.as_str()], "1.2");
    // Drawdowns and VaR are negative: closer to 0 is better; c's null VaR is never best.
    assert_eq!(best("max_drawdown"), json!(b.as_str()));
    assert_eq!(best("var_95"), json!(a.as_str()));
    assert_eq!(diff["var_95"]["values"][c.as_str()], Value::Null);
    assert_eq!(diff["var_95"]["values"][a.as_str()], "-0.020");
    assert_eq!(
        (best("volatility_annualised"), &diff["volatility_annualised"]["higher_is_better"]),
        (json!(b.as_str()), &json!(false))
    );
    assert_eq!((best("total_trades"), &diff["total_trades"]["higher_is_better"]), (Value::Null, &Value::Null));
    assert_eq!(diff["total_trades"]["values"][c.as_str()], "99");
    // Null for every run: no best.
    assert_eq!(best("sortino"), Value::Null);
    assert_eq!(diff["sortino"]["higher_is_better"], true);
}

#[tokio::test]
async fn compare_values_are_the_done_jobs_own_strings() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let mut ids = vec![];
    for levels in [6, 10] {
        let mut b = seed_body();
        b["params"]["grid_levels"] = json!(levels);
        let id = create(&kit, &alice, &b).await;
        assert_eq!(worker(&kit).process(&id, i64::MAX / 2).await.unwrap(), Delivery::Done);
        ids.push(id);
    }
    let order = [ids[1].as_str(), ids[0].as_str()];
    let got = compare(&kit, &alice, &order).await.body_json();
    for (i, id) in order.iter().enumerate() {
        let job = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{id}"), b"", at()).await.body_json();
        assert_eq!(got["runs"][i]["metrics"], job["result"]["metrics"]);
        assert_eq!(got["runs"][i]["config"], job["config"]);
        for (name, value) in job["result"]["metrics"].as_object().unwrap() {
            let shown = match value {
                Value::Number(n) => json!(n.to_string()),
                other => other.clone(),
            };
            assert_eq!(got["metric_diff"][name]["values"][id], shown, "{name}");
        }
        let risk = &job["result"]["structured_metrics"]["risk"];
        assert_eq!(got["metric_diff"]["var_95"]["values"][id], risk["var_95"]);
        assert_eq!(got["metric_diff"]["volatility_annualised"]["values"][id], risk["volatility_annualised"]);
    }
}

#[tokio::test]
async fn compare_bodies_out_of_bounds_are_400_on_job_ids() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let a = stored(&kit, "alice", "bt_0000000a", JobStatus::Done, |_| {});
    let _b = stored(&kit, "alice", "bt_0000000b", JobStatus::Done, |_| {});
    assert_error(&compare(&kit, &alice, &[a.as_str()]).await, 400, "INVALID_PARAMETER", "job_ids: must list 2 to 10");
    let eleven: Vec<String> = (1..=11).map(|i| format!("bt_{i:08x}")).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    assert_error(&compare(&kit, &alice, &eleven).await, 400, "INVALID_PARAMETER", "not 11");
    assert_error(&compare(&kit, &alice, &[]).await, 400, "INVALID_PARAMETER", "job_ids:");
    let repeated = compare(&kit, &alice, &["bt_0000000a", "bt_0000000b", "bt_0000000a"]).await;
    assert_error(&repeated, 400, "INVALID_PARAMETER", "job_ids[2]: bt_0000000a repeats job_ids[0]");
    assert_error(&compare(&kit, &alice, &["bt_0000000a", "BT_1"]).await, 400, "INVALID_PARAMETER", "job_ids[1]:");
    let call = |b: &'static str| kit.call(&alice, "POST", "/v1/backtest/compare", b.as_bytes(), at());
    assert_error(&call(r#"{"job_ids": ["bt_0000000a", 1]}"#).await, 400, "INVALID_PARAMETER", "job_ids[1]:");
    assert_error(&call(r#"{"job_ids": "bt_0000000a"}"#).await, 400, "INVALID_PARAMETER", "job_ids:");
    assert_error(&call(r#"{}"#).await, 400, "INVALID_PARAMETER", "job_ids: required");
    assert_error(&call("").await, 400, "INVALID_PARAMETER", "body");
    assert_error(
        &call(r#"{"job_ids": ["bt_0000000a", "bt_0000000b"], "metrics": ["sharpe"]}"#).await,
        400,
        "INVALID_PARAMETER",
        "metrics: unknown field",
    );
    assert_error(
        &call(r#"{"job_ids": ["bt_0000000a"], "job_ids": ["bt_0000000a", "bt_0000000b"]}"#).await,
        400,
        "INVALID_PARAMETER",
        "job_ids",
    );
    let ok = body(&json!({"job_ids": [a, "bt_0000000b"]}));
    let query = kit.call(&alice, "POST", "/v1/backtest/compare?x=1", &ok, at()).await;
    assert_error(&query, 400, "INVALID_PARAMETER", "x:");
}

#[tokio::test]
async fn compare_with_a_missing_or_foreign_id_is_404_naming_it() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let bob = kit.client("bob").await;
    let a = stored(&kit, "alice", "bt_0000000a", JobStatus::Done, |_| {});
    let theirs = stored(&kit, "bob", "bt_000000bb", JobStatus::Done, |_| {});
    assert_error(&compare(&kit, &alice, &[a.as_str(), theirs.as_str()]).await, 404, "NOT_FOUND", "bt_000000bb");
    assert_error(&compare(&kit, &alice, &["bt_00000404", a.as_str()]).await, 404, "NOT_FOUND", "bt_00000404");
    let own = compare(&kit, &bob, &[theirs.as_str(), a.as_str()]).await;
    assert_error(&own, 404, "NOT_FOUND", "bt_0000000a");
}

#[tokio::test]
async fn deleting_a_done_job_removes_it_its_results_and_its_listing() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let bob = kit.client("bob").await;
    let id = create(&kit, &alice, &seed_body()).await;
    let keep = stored(&kit, "alice", "bt_0000000a", JobStatus::Done, |_| {});
    assert_eq!(worker(&kit).process(&id, i64::MAX / 2).await.unwrap(), Delivery::Done);
    settle(&kit, &id).await;
    assert!(kit.store.artifact_count(&id) > 0);
    let path = format!("/v1/backtest/jobs/{id}");

    // Another user's delete is a 404 and changes nothing.
    assert_error(&kit.call(&bob, "DELETE", &path, b"", at()).await, 404, "NOT_FOUND", id.as_str());
    assert_eq!(kit.call(&alice, "GET", &path, b"", at()).await.status, 200);

    let gone = kit.call(&alice, "DELETE", &path, b"", at()).await;
    assert_eq!((gone.status, gone.body.len()), (204, 0));
    assert_eq!(gone.header("x-pipai-used-weight-1m"), Some(format!("{}", 20 + 2 + 5).as_str()));
    assert_eq!(kit.store.artifact_count(&id), 0);
    assert!(kit.store.get_job(&id).await.unwrap().is_none());

    for (method, p, b) in [
        ("GET", path.clone(), vec![]),
        ("GET", format!("{path}?expand=trades"), vec![]),
        ("POST", format!("{path}/cancel"), vec![]),
        ("DELETE", path.clone(), vec![]),
        ("POST", "/v1/backtest/compare".into(), body(&json!({"job_ids": [keep, id]}))),
    ] {
        assert_error(&kit.call(&alice, method, &p, &b, at()).await, 404, "NOT_FOUND", id.as_str());
    }
    for query in ["", "?status=done", "?template_id=tpl_grid"] {
        let list = kit.call(&alice, "GET", &format!("/v1/backtest/jobs{query}"), b"", at()).await.body_json();
        let listed: Vec<&str> = list["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert_eq!(listed, [keep.as_str()], "{query}");
    }
}

#[tokio::test]
async fn only_terminal_jobs_can_be_deleted() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let queued = create(&kit, &alice, &seed_body()).await;
    let path = format!("/v1/backtest/jobs/{queued}");
    assert_error(&kit.call(&alice, "DELETE", &path, b"", at()).await, 409, "INVALID_STATE", "queued; cancel it first");
    let token = "00000000000000aa".parse().unwrap();
    assert!(matches!(kit.store.claim_job(&queued, &token, now_ms(), 60_000).await.unwrap(), ClaimOutcome::Claimed(_)));
    assert_error(&kit.call(&alice, "DELETE", &path, b"", at()).await, 409, "INVALID_STATE", "running; cancel it first");
    assert!(kit.store.get_job(&queued).await.unwrap().is_some());

    // Cancelled: deleted. Failed: deleted.
    assert_eq!(kit.call(&alice, "POST", &format!("{path}/cancel"), b"", at()).await.status, 200);
    settle(&kit, &queued).await;
    assert_eq!(kit.call(&alice, "DELETE", &path, b"", at()).await.status, 204);
    let failed = stored(&kit, "alice", "bt_0000000f", JobStatus::Failed, |_| {});
    assert_eq!(kit.call(&alice, "DELETE", &format!("/v1/backtest/jobs/{failed}"), b"", at()).await.status, 204);
    assert_error(
        &kit.call(&alice, "DELETE", "/v1/backtest/jobs/nope", b"", at()).await,
        400,
        "INVALID_PARAMETER",
        "id:",
    );
    let query = kit.call(&alice, "DELETE", "/v1/backtest/jobs/bt_0000000f?force=1", b"", at()).await;
    assert_error(&query, 400, "INVALID_PARAMETER", "force:");
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);
}

#[tokio::test]
async fn deletes_keep_the_active_slot_count_exact() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let mut ids = vec![];
    for _ in 0..5 {
        ids.push(create(&kit, &alice, &seed_body()).await);
    }
    let sixth = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), at()).await;
    assert_error(&sixth, 429, "RATE_LIMITED", "5 jobs");

    // Two cancelled, their slots given back by the stream; deleting them frees nothing more.
    for id in &ids[..2] {
        assert_eq!(kit.call(&alice, "POST", &format!("/v1/backtest/jobs/{id}/cancel"), b"", at()).await.status, 200);
        settle(&kit, id).await;
    }
    assert_eq!(kit.store.active_jobs(&user("alice")), 3);
    for id in &ids[..2] {
        let removed = stream_record(kit.store, id, ChangeKind::Remove).await;
        assert_eq!(kit.call(&alice, "DELETE", &format!("/v1/backtest/jobs/{id}"), b"", at()).await.status, 204);
        // The stream's REMOVE of a terminal job is no slot release.
        apply_change(&kit.store, &kit.store, &JobChange { status: None, ..removed }).await.unwrap();
    }
    assert_eq!(kit.store.active_jobs(&user("alice")), 3);
    ids.drain(..2);
    for _ in 0..2 {
        ids.push(create(&kit, &alice, &seed_body()).await);
    }
    let sixth = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), at()).await;
    assert_error(&sixth, 429, "RATE_LIMITED", "5 jobs");

    // Cancelled but the stream has not seen it yet: the delete gives the slot back itself, and
    // the stream's late MODIFY and the REMOVE give nothing back again.
    let id = ids.remove(0);
    assert_eq!(kit.call(&alice, "POST", &format!("/v1/backtest/jobs/{id}/cancel"), b"", at()).await.status, 200);
    let late = stream_record(kit.store, &id, ChangeKind::Modify).await;
    assert!(!late.slot_released);
    assert_eq!(kit.store.active_jobs(&user("alice")), 5);
    assert_eq!(kit.call(&alice, "DELETE", &format!("/v1/backtest/jobs/{id}"), b"", at()).await.status, 204);
    assert_eq!(kit.store.active_jobs(&user("alice")), 4);
    apply_change(&kit.store, &kit.store, &late).await.unwrap();
    let removed = JobChange { kind: ChangeKind::Remove, status: None, slot_released: true, ..late };
    apply_change(&kit.store, &kit.store, &removed).await.unwrap();
    assert_eq!(kit.store.active_jobs(&user("alice")), 4);
    ids.push(create(&kit, &alice, &seed_body()).await);
    assert_eq!(kit.store.active_jobs(&user("alice")), 5);
    let sixth = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&seed_body()), at()).await;
    assert_error(&sixth, 429, "RATE_LIMITED", "5 jobs");
}

#[tokio::test]
async fn a_remove_record_never_releases_a_slot() {
    // Whatever its image says: a terminal job's slot is given back by its MODIFY (or by the
    // delete itself), never by its removal.
    let store = MemoryStore::new();
    let config = JobConfig::from_value(&seed_body(), chrono::Utc::now()).unwrap();
    let mut job = JobRecord::new_queued(job_id("bt_00000001"), user("u"), config, now_ms());
    assert_eq!(store.create_job(&job, 5).await.unwrap(), CreateOutcome::Created);
    job.status = JobStatus::Done;
    store.put_job_raw(job.clone());
    for (status, slot_released) in [(None, false), (Some(JobStatus::Done), false), (Some(JobStatus::Done), true)] {
        let change = JobChange {
            kind: ChangeKind::Remove,
            job_id: job.id.clone(),
            user_id: Some(user("u")),
            status,
            slot_released,
            old_status: Some(JobStatus::Done),
            notify: false,
        };
        apply_change(&store, &store, &change).await.unwrap();
    }
    assert_eq!(store.active_jobs(&user("u")), 1);
    assert!(store.drain_queue().is_empty());
}
