//! `pipai sweep` as a user runs it: the real binary on generated bars, the ranking file checked
//! against `pipai run` of its entries' configs.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn pipai(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pipai")).args(args).current_dir(dir).output().expect("pipai runs")
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn sweep_body() -> Value {
    json!({
        "base": {"template_id": "tpl_ma_cross", "params": {"direction": "both"}, "symbols": ["BTCUSDT"], "timeframe": "1h",
                 "start": "2024-01-01T00:00:00Z", "end": "2024-03-31T23:00:00Z", "capital": "10000.00", "fee_bps": "5"},
        "space": {"params.fast": {"from": 4, "to": 12, "step": 4}, "params.slow": [24, 48, 96]},
        "rank_metric": "sharpe",
        "constraints": [{"metric": "total_trades", "min": "3"}]
    })
}

#[test]
fn sweep_ranks_every_config_and_its_entries_reproduce_with_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(pipai(
        &[
            "data",
            "generate",
            "--symbol",
            "BTCUSDT",
            "--from",
            "2024-01-01",
            "--to",
            "2024-04-01",
            "--timeframe",
            "1h",
            "--out",
            "btc.csv",
        ],
        d,
    ));
    std::fs::write(d.join("sweep.json"), sweep_body().to_string()).unwrap();
    let stdout = ok(pipai(
        &["sweep", "--config", "sweep.json", "--data", "btc.csv", "--out", "board.json", "--threads", "2"],
        d,
    ));
    assert!(stdout.contains("params.fast") && stdout.contains("sharpe") && stdout.contains("9 configs"), "{stdout}");
    let board = read(&d.join("board.json"));
    assert_eq!(board["n_configs"], 9);
    let entries = board["leaderboard"].as_array().unwrap();
    assert_eq!(entries.len() + board["excluded_by_constraints"].as_array().unwrap().len(), 9);
    assert!(!entries.is_empty());
    let sharpe = |e: &Value| e["metrics"]["sharpe"].as_str().map(|s| s.parse::<f64>().unwrap());
    for (i, pair) in entries.windows(2).enumerate() {
        assert_eq!(pair[0]["rank"], i + 1);
        assert!(sharpe(&pair[1]).is_none() || sharpe(&pair[0]) >= sharpe(&pair[1]), "{i}");
    }
    assert!(entries.iter().all(|e| e["metrics"]["total_trades"].as_u64().unwrap() >= 3 && e["oos_metrics"].is_null()));
    // Exactness: the best entry's config, run as a job, gives its metrics string for string.
    let best = &entries[0];
    std::fs::write(d.join("job.json"), best["config"].to_string()).unwrap();
    ok(pipai(&["run", "--config", "job.json", "--data", "btc.csv", "--out", "result.json"], d));
    let result = read(&d.join("result.json"));
    assert_eq!(result["metrics"], best["metrics"]);
    assert_eq!(result["structured_metrics"], best["structured_metrics"]);
    // --top keeps the best N; --dry-run prints the estimate and needs no data.
    ok(pipai(&["sweep", "--config", "sweep.json", "--data", "btc.csv", "--out", "top2.json", "--top", "2"], d));
    let top2 = read(&d.join("top2.json"));
    assert_eq!(top2["leaderboard"].as_array().unwrap().as_slice(), &entries[..2]);
    let estimate: Value =
        serde_json::from_str(&ok(pipai(&["sweep", "--config", "sweep.json", "--dry-run"], d))).unwrap();
    assert_eq!(estimate, json!({"n_configs": 9, "bar_evaluations": 9 * 2184, "chunks": 1, "estimated_seconds": 1}));
}

#[test]
fn an_invalid_sweep_exits_2_naming_the_config_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut body = sweep_body();
    body["space"]["params.slow"] = json!([8, 48]);
    std::fs::write(d.join("sweep.json"), body.to_string()).unwrap();
    let out = pipai(&["sweep", "--config", "sweep.json", "--data", "none.csv"], d);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("space: config 2 (params.fast=8, params.slow=8): params.slow: must be greater than params.fast"),
        "{stderr}"
    );
    body["base"]["strategy_id"] = json!("st_0123abcd");
    std::fs::write(d.join("sweep.json"), body.to_string()).unwrap();
    let out = pipai(&["sweep", "--config", "sweep.json", "--dry-run"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("base.strategy_id: strategies live in the service"));
}
