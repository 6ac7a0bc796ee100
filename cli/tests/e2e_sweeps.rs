//! End to end over HTTP against the local stack (`infra/local.sh up`): /v1/backtest/sweeps.
//!
//!   PIPAI_API_URL=http://127.0.0.1:3000 cargo test -p pipai --test e2e_sweeps -- --ignored

mod support;

use std::time::{Duration, Instant};

use pipai_client::Method;
use serde_json::{json, Value};
use support::*;

/// 12 configs on two months of 1h bars.
fn grid() -> Value {
    json!({
        "base": small_job("tpl_ma_cross"),
        "space": {"params.fast": [5, 10, 20], "params.slow": [30, 50, 80, 120]},
        "rank_metric": "sharpe",
        "constraints": [{"metric": "total_trades", "min": "2"}]
    })
}

fn submit(api: &Api, body: &Value) -> (u16, Value) {
    api.call(Method::Post, "/v1/backtest/sweeps", &[], body.to_string().as_bytes())
}

fn sweep(api: &Api, id: &str, query: &[(&str, &str)]) -> Value {
    let (status, v) = api.call(Method::Get, &format!("/v1/backtest/sweeps/{id}"), query, b"");
    assert_eq!(status, 200, "{v}");
    v
}

fn wait_sweep(api: &Api, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = sweep(api, id, &[]);
        if matches!(v["status"].as_str(), Some("done" | "failed" | "cancelled")) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "sweep {id} still {}", v["status"]);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every entry of the full ranking, following the cursors.
fn ranking(api: &Api, id: &str, limit: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("expand", "leaderboard"), ("limit", limit)];
        if let Some(c) = &cursor {
            q.push(("cursor", c.as_str()));
        }
        let page = sweep(api, id, &q);
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert_eq!(page["total"].as_u64(), Some(all.len() as u64));
                return all;
            }
        }
    }
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str, needle: &str) {
    let (got, body) = answer;
    assert_eq!((*got, body["code"].as_str()), (status, Some(code)), "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn a_grid_sweep_runs_to_done_ranked_and_as_exact_as_a_job() {
    let api = fresh_client("sweep-grid");
    let (status, created) = submit(&api, &grid());
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["status"].as_str(), created["n_configs"].as_u64()), (Some("queued"), Some(12)));
    let id = created["id"].as_str().unwrap().to_string();
    let done = wait_sweep(&api, &id);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["completed"].as_u64(), Some(12));
    let board = done["leaderboard"].as_array().unwrap();
    assert!(!board.is_empty());
    assert_eq!(done["best"], board[0]);
    let sharpe = |e: &Value| e["metrics"]["sharpe"].as_str().and_then(|s| s.parse::<f64>().ok());
    assert!(board.windows(2).all(|w| sharpe(&w[0]) >= sharpe(&w[1]) || sharpe(&w[1]).is_none()));
    assert!(board.iter().all(|e| e["metrics"]["total_trades"].as_u64().unwrap() >= 2));
    assert_eq!(&ranking(&api, &id, "5"), board, "the full ranking is the top 20 here");

    // The top entry's metrics are those of a job created with its config, string for string.
    let job = api.create_ok(&board[0]["config"]);
    let job = api.wait_done(&job);
    assert_eq!(job["result"]["metrics"].to_string(), board[0]["metrics"].to_string());
    assert_eq!(job["result"]["structured_metrics"].to_string(), board[0]["structured_metrics"].to_string());
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn dry_runs_create_nothing_and_bad_sweeps_are_400() {
    let api = fresh_client("sweep-bad");
    let mut body = grid();
    body["dry_run"] = json!(true);
    let r = api.send(Method::Post, "/v1/backtest/sweeps", &[], body.to_string().as_bytes());
    assert_eq!((r.status, r.header("x-pipai-used-weight-1m")), (200, Some("5")));
    let estimate = r.json_or_text();
    assert_eq!((estimate["n_configs"].as_u64(), estimate["chunks"].as_u64()), (Some(12), Some(1)));
    let (_, list) = api.call(Method::Get, "/v1/backtest/sweeps", &[], b"");
    assert_eq!(list["data"], json!([]));

    let mut bad = grid();
    bad["space"]["params.slow"] = json!([30, 8]);
    assert_error(&submit(&api, &bad), 400, "INVALID_PARAMETER", "space: config 3 (params.fast=10, params.slow=8)");
    let mut huge = grid();
    huge["space"] =
        json!({"params.fast": {"from": 1, "to": 101, "step": 1}, "params.slow": {"from": 200, "to": 300, "step": 1}});
    assert_error(&submit(&api, &huge), 400, "INVALID_PARAMETER", "space: expands to 10201 configs");
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn random_search_is_reproducible_by_seed() {
    let api = fresh_client("sweep-random");
    let mut body = grid();
    body["space"] =
        json!({"params.fast": {"from": 2, "to": 20, "step": 1}, "params.slow": {"from": 30, "to": 120, "step": 10}});
    body["search"] = json!({"method": "random", "samples": 5, "seed": 11});
    body["constraints"] = json!([]);
    let configs: Vec<Vec<String>> = (0..2)
        .map(|_| {
            let (status, created) = submit(&api, &body);
            assert_eq!(status, 201, "{created}");
            let id = created["id"].as_str().unwrap();
            assert_eq!(wait_sweep(&api, id)["status"], "done");
            let mut c: Vec<String> = ranking(&api, id, "1000").iter().map(|e| e["config"].to_string()).collect();
            c.sort();
            c
        })
        .collect();
    assert_eq!(configs[0].len(), 5);
    assert_eq!(configs[0], configs[1]);
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn a_held_sweep_takes_a_slot_cancels_and_is_private() {
    let api = fresh_client("sweep-slot");
    let other = fresh_client("sweep-other");
    let _jobs = WorkerPaused::new("sweep-slot");
    let held = local_dir().join("paused/SweepWorkerQueueMapping");
    std::fs::create_dir_all(&held).unwrap();
    let pause = held.join(format!("sweep-slot-{}", std::process::id()));
    std::fs::write(&pause, b"").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (status, created) = submit(&api, &grid());
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    for _ in 0..4 {
        assert_eq!(api.create(&small_job("tpl_ma_cross")).0, 201);
    }
    assert_error(&api.create(&small_job("tpl_ma_cross")), 429, "RATE_LIMITED", "queued or running");
    for (method, path) in
        [(Method::Get, format!("/v1/backtest/sweeps/{id}")), (Method::Post, format!("/v1/backtest/sweeps/{id}/cancel"))]
    {
        assert_error(&other.call(method, &path, &[], b""), 404, "NOT_FOUND", "no sweep");
    }
    let (status, cancelled) = api.call(Method::Post, &format!("/v1/backtest/sweeps/{id}/cancel"), &[], b"");
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    assert_eq!(api.create(&small_job("tpl_ma_cross")).0, 201, "the cancel gave the slot back");
    let again = api.call(Method::Post, &format!("/v1/backtest/sweeps/{id}/cancel"), &[], b"");
    assert_error(&again, 409, "INVALID_STATE", "already cancelled");
    let _ = std::fs::remove_file(&pause);
    std::thread::sleep(Duration::from_secs(3));
    let after = sweep(&api, &id, &[]);
    assert_eq!(
        (after["status"].as_str(), after["completed"].as_u64()),
        (Some("cancelled"), Some(0)),
        "its chunk skipped"
    );
}

/// The sweep worker's queue mapping held paused while this lives.
fn sweeps_paused(tag: &str) -> WorkerPaused {
    WorkerPaused::mapping("SweepWorkerQueueMapping", tag)
}

/// 144 configs in 12 groups (one per start), so 12 chunks: more than run while a test holds
/// the worker again after seeing the first.
fn twelve_chunks() -> Value {
    let mut body = grid();
    let starts: Vec<String> = (1..=12).map(|d| format!("2024-01-{d:02}T00:00:00Z")).collect();
    body["space"]["start"] = json!(starts);
    body
}

/// Submits `body` with the sweep worker held, lets chunks through until one is recorded, and
/// holds the rest again: the sweep as seen then (running, part of its chunks recorded).
fn submit_and_run_one_chunk(api: &Api, tag: &str, body: &Value) -> (String, WorkerPaused, Value) {
    let held = sweeps_paused(tag);
    let (status, created) = submit(api, body);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    drop(held);
    let start = Instant::now();
    let seen = loop {
        let v = sweep(api, &id, &[]);
        if v["completed"].as_u64().unwrap_or(0) + v["failed"].as_u64().unwrap_or(0) > 0 {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no chunk of {id} recorded: {v}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let held = sweeps_paused(tag);
    (id, held, seen)
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn validated_sweeps_carry_out_of_sample_metrics_on_every_entry() {
    let api = fresh_client("sweep-oos");
    for validation in [
        json!({"method": "walk_forward", "folds": 3, "test_fraction": "0.25"}),
        json!({"method": "holdout", "test_fraction": "0.3"}),
    ] {
        let mut body = grid();
        body["validation"] = validation.clone();
        body["constraints"] = json!([]);
        let (status, created) = submit(&api, &body);
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap();
        let done = wait_sweep(&api, id);
        assert_eq!((done["status"].as_str(), done["completed"].as_u64()), (Some("done"), Some(12)), "{done}");
        let all = ranking(&api, id, "7");
        assert_eq!(all.len(), 12, "{validation}");
        for e in &all {
            let oos = &e["oos_metrics"];
            assert!(oos["metrics"].is_object() && oos["structured_metrics"].is_object(), "{validation}: {e}");
            assert!(oos["metrics"].get("sharpe").is_some(), "the rank metric out of sample: {oos}");
            // Entries rank by in-sample sharpe; the config is the in-sample window's.
            assert!(e["config"]["end"].as_str() < body["base"]["end"].as_str(), "{}", e["config"]);
        }
        let sharpe = |m: &Value| m["sharpe"].as_str().and_then(|s| s.parse::<f64>().ok());
        assert!(all
            .windows(2)
            .all(|w| sharpe(&w[0]["metrics"]) >= sharpe(&w[1]["metrics"]) || sharpe(&w[1]["metrics"]).is_none()));
        assert_eq!(&done["leaderboard"].as_array().unwrap()[..], &all[..12]);
        // The degradation report over the live top 20 (here all 12), in rank order.
        let report = &done["degradation"];
        assert_eq!((report["metric"].as_str(), report["higher_is_better"].as_bool()), (Some("sharpe"), Some(true)));
        let rows = report["entries"].as_array().unwrap();
        assert!(rows.iter().enumerate().all(|(i, r)| r["rank"].as_u64() == Some(i as u64 + 1)), "{report}");
        assert_eq!(rows[0]["in_sample"], all[0]["metrics"]["sharpe"]);
        // Exactness with validation: a job with the top entry's (in-sample) config gives its metrics.
        let job = api.wait_done(&api.create_ok(&all[0]["config"]));
        assert_eq!(job["result"]["metrics"].to_string(), all[0]["metrics"].to_string(), "{validation}");
    }
    let plain = wait_sweep(&api, submit(&api, &grid()).1["id"].as_str().unwrap());
    assert!(plain["degradation"].is_null(), "no validation, no report: {plain}");
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn the_live_leaderboard_shows_while_running() {
    let api = fresh_client("sweep-live");
    let (id, held, seen) = submit_and_run_one_chunk(&api, "sweep-live", &twelve_chunks());
    let now = sweep(&api, &id, &[]);
    for v in [&seen, &now] {
        assert_eq!(v["status"], "running", "{v}");
        let completed = v["completed"].as_u64().unwrap() + v["failed"].as_u64().unwrap();
        assert!(completed > 0 && completed < 144, "{v}");
        assert!(!v["leaderboard"].as_array().unwrap().is_empty(), "{v}");
        assert!(v["progress"].as_f64().unwrap() < 1.0);
    }
    let live = ranking(&api, &id, "10");
    assert!(!live.is_empty() && live.len() < 144);
    drop(held);
    let done = wait_sweep(&api, &id);
    assert_eq!((done["status"].as_str(), done["completed"].as_u64()), (Some("done"), Some(144)), "{done}");
    assert!(ranking(&api, &id, "1000").len() > live.len());
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn a_running_sweep_cancels_with_exact_counts_and_gives_the_slot_back() {
    let api = fresh_client("sweep-cancel-running");
    let (id, held, seen) = submit_and_run_one_chunk(&api, "sweep-cancel-running", &twelve_chunks());
    assert_eq!(seen["status"], "running", "{seen}");
    let (status, cancelled) = api.call(Method::Post, &format!("/v1/backtest/sweeps/{id}/cancel"), &[], b"");
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let counted = |v: &Value| v["completed"].as_u64().unwrap() + v["failed"].as_u64().unwrap();
    assert!(counted(&cancelled) >= counted(&seen) && counted(&cancelled) <= 144, "{cancelled}");
    {
        let _jobs = WorkerPaused::new("sweep-cancel-running");
        for _ in 0..5 {
            assert_eq!(api.create(&small_job("tpl_ma_cross")).0, 201, "the cancel gave the slot back");
        }
    }
    drop(held);
    std::thread::sleep(Duration::from_secs(3));
    let after = sweep(&api, &id, &[]);
    assert_eq!(after["status"], "cancelled");
    assert_eq!(counted(&after), counted(&cancelled), "no chunk counted after the cancel: {after}");
    assert_eq!(ranking(&api, &id, "1000").len(), ranking(&api, &id, "3").len());
}
