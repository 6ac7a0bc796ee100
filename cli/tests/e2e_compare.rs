//! End to end over HTTP against the local stack (`infra/local.sh up`): DELETE
//! /v1/backtest/jobs/{id} and POST /v1/backtest/compare.
//!
//!   PIPAI_API_URL=http://127.0.0.1:3000 cargo test -p pipai --test e2e_compare -- --ignored

mod support;

use std::time::Duration;

use pipai_client::Method;
use serde_json::{json, Value};
use support::*;

fn compare(api: &Api, ids: &[&str]) -> (u16, Value) {
    api.call(Method::Post, "/v1/backtest/compare", &[], json!({ "job_ids": ids }).to_string().as_bytes())
}

fn delete(api: &Api, id: &str) -> (u16, Value) {
    api.call(Method::Delete, &format!("/v1/backtest/jobs/{id}"), &[], b"")
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str, needle: &str) {
    let (got, body) = answer;
    assert_eq!((*got, body["code"].as_str()), (status, Some(code)), "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

/// Which of `ids` the contract makes best for `values` (strings or nulls) in direction
/// `higher`: a null is never best, ties go to the earliest.
fn expected_best<'a>(ids: &[&'a str], values: &[Value], higher: bool) -> Option<&'a str> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.iter().enumerate() {
        let Some(x) = v.as_str().map(|s| s.parse::<f64>().unwrap()) else { continue };
        if best.is_none_or(|(_, b)| if higher { x > b } else { x < b }) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| ids[i])
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn compare_names_the_best_per_metric_in_request_order() {
    let alice = fresh_client("cmp-alice");
    let bob = fresh_client("cmp-bob");
    let mut done = vec![];
    for (template, params) in [
        ("tpl_ma_cross", json!({"fast": 5, "slow": 20})),
        ("tpl_breakout", json!({"lookback": 24})),
        ("tpl_ma_cross", json!({"fast": 10, "slow": 50})),
    ] {
        let id = alice.create_ok(&job_body(template, params, "1h", "2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"));
        done.push(id);
    }
    let cancelled = alice.create_ok(&long_job());
    assert_eq!(alice.cancel(&cancelled).0, 200);
    let jobs: Vec<Value> = done.iter().map(|id| alice.wait_done(id)).collect();

    // The cancelled job first: its nulls are never best. Request order is kept.
    let order = [cancelled.as_str(), done[2].as_str(), done[0].as_str(), done[1].as_str()];
    let (status, got) = compare(&alice, &order);
    assert_eq!(status, 200, "{got}");
    let runs = got["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), order);
    assert_eq!(runs[0]["status"], "cancelled");
    assert!(runs[0]["metrics"].is_null());
    let job_of = |id: &str| &jobs[done.iter().position(|d| d == id).unwrap()];
    for run in &runs[1..] {
        let job = job_of(run["id"].as_str().unwrap());
        assert_eq!((&run["metrics"], &run["config"]), (&job["result"]["metrics"], &job["config"]));
    }

    let diff = &got["metric_diff"];
    assert_eq!(diff.as_object().unwrap().len(), 25);
    let value_of = |job: &Value, name: &str| -> Value {
        let r = &job["result"];
        match name {
            "var_95" | "volatility_annualised" => r["structured_metrics"]["risk"][name].clone(),
            "total_trades" => json!(r["metrics"][name].to_string()),
            _ => r["metrics"][name].clone(),
        }
    };
    for (name, higher) in [
        ("sharpe", Some(true)),
        ("max_drawdown", Some(true)),
        ("var_95", Some(true)),
        ("volatility_annualised", Some(false)),
        ("total_trades", None),
    ] {
        let entry = &diff[name];
        assert_eq!(entry["higher_is_better"], json!(higher), "{name}");
        assert!(entry["values"][order[0]].is_null(), "{name}");
        let values: Vec<Value> = order.iter().map(|id| entry["values"][id].clone()).collect();
        for (id, value) in order[1..].iter().zip(&values[1..]) {
            assert_eq!(*value, value_of(job_of(id), name), "{name} of {id}: the job's own string");
        }
        let expected = higher.and_then(|h| expected_best(&order, &values, h));
        assert_eq!(entry["best_id"].as_str(), expected, "{name}: {entry}");
    }
    assert!(diff["total_trades"]["best_id"].is_null());

    // Out of bounds: 400 on job_ids; someone else's or an unknown id: 404 naming it.
    assert_error(&compare(&alice, &[done[0].as_str()]), 400, "INVALID_PARAMETER", "job_ids");
    let eleven: Vec<String> = (1..=11).map(|i| format!("bt_{i:08x}")).collect();
    assert_error(
        &compare(&alice, &eleven.iter().map(String::as_str).collect::<Vec<_>>()),
        400,
        "INVALID_PARAMETER",
        "job_ids",
    );
    assert_error(&compare(&alice, &[&done[0], &done[1], &done[0]]), 400, "INVALID_PARAMETER", "job_ids[2]");
    assert_error(&compare(&bob, &[&done[0], &done[1]]), 404, "NOT_FOUND", &done[0]);
    assert_error(&compare(&alice, &[&done[0], "bt_0badf00d"]), 404, "NOT_FOUND", "bt_0badf00d");
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn deleting_removes_a_terminal_job_everywhere_and_refuses_an_active_one() {
    let alice = fresh_client("del-alice");
    let bob = fresh_client("del-bob");
    let id = alice.create_ok(&small_job("tpl_ma_cross"));
    alice.wait_done(&id);
    let objects = result_objects(&id);
    assert!(!objects.is_empty(), "a done job has result objects");

    // Someone else's: 404, and the job stays.
    assert_error(&delete(&bob, &id), 404, "NOT_FOUND", &id);
    assert_eq!(alice.get(&id)["status"], "done");

    let response = alice.send(Method::Delete, &format!("/v1/backtest/jobs/{id}"), &[], b"");
    assert_eq!((response.status, response.body.len()), (204, 0));
    assert!(response.header("x-pipai-used-weight-1m").is_some());
    assert_eq!(result_objects(&id), Vec::<String>::new(), "its S3 objects are gone");
    let path = format!("/v1/backtest/jobs/{id}");
    assert_error(&alice.call(Method::Get, &path, &[], b""), 404, "NOT_FOUND", &id);
    assert_error(&alice.cancel(&id), 404, "NOT_FOUND", &id);
    assert_error(&delete(&alice, &id), 404, "NOT_FOUND", &id);
    let other = alice.create_ok(&small_job("tpl_breakout"));
    assert_error(&compare(&alice, &[&other, &id]), 404, "NOT_FOUND", &id);
    for query in [vec![], vec![("status", "done")], vec![("template_id", "tpl_ma_cross")]] {
        let (listed, _) = alice.walk(&query);
        assert!(!listed.contains(&id), "{query:?}: {listed:?}");
    }

    // Running: 409 until cancelled; then the cancelled job is deleted.
    let running = alice.create_ok(&long_job());
    if alice.wait_progressing(&running).is_some() {
        assert_error(&delete(&alice, &running), 409, "INVALID_STATE", "cancel it first");
    }
    assert_eq!(alice.cancel(&running).0, 200);
    assert_eq!(delete(&alice, &running).0, 204);
    assert_error(&alice.call(Method::Get, &format!("/v1/backtest/jobs/{running}"), &[], b""), 404, "NOT_FOUND", "");
    alice.wait_done(&other);
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn deletes_keep_the_five_active_slots_exact() {
    let carol = fresh_client("del-slots");
    let paused = WorkerPaused::new("e2e-compare-slots");
    let mut active: Vec<String> = (0..5).map(|_| carol.create_ok(&small_job("tpl_ma_cross"))).collect();
    assert_error(&delete(&carol, &active[0]), 409, "INVALID_STATE", "queued");
    let sixth = carol.create(&small_job("tpl_ma_cross"));
    assert_error(&sixth, 429, "RATE_LIMITED", "queued or running");

    // Two cancelled and deleted (whether or not the stream has given their slots back yet):
    // exactly two slots free, no more.
    for id in active.drain(..2) {
        assert_eq!(carol.cancel(&id).0, 200);
        assert_eq!(delete(&carol, &id).0, 204);
    }
    for _ in 0..2 {
        active.push(carol.create_ok(&small_job("tpl_ma_cross")));
    }
    std::thread::sleep(Duration::from_secs(2)); // any late stream record has landed
    assert_error(&carol.create(&small_job("tpl_ma_cross")), 429, "RATE_LIMITED", "queued or running");
    drop(paused);
    for id in &active {
        carol.wait(id, Duration::from_secs(300));
    }
}
