//! `pipai run` and `pipai data generate` as a user runs them: the real binary, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn pipai(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pipai")).args(args).current_dir(dir).output().expect("pipai runs")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/engine/crosscheck/fixtures")
}

#[test]
fn run_reproduces_the_vectorbt_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let fixture: Value =
        serde_json::from_slice(&std::fs::read(fixture_dir().join("ma_cross_long.json")).unwrap()).unwrap();
    std::fs::write(dir.path().join("job.json"), fixture["config"].to_string()).unwrap();
    let bars = fixture_dir().join("bars_btcusdt_1h.csv");
    let out = pipai(
        &[
            "run",
            "--config",
            "job.json",
            "--data",
            bars.to_str().unwrap(),
            "--out",
            "result.json",
            "--bar-equity",
            "eq.csv",
        ],
        dir.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("sharpe") && stdout.contains("total_trades"), "{stdout}");
    let result: Value = serde_json::from_slice(&std::fs::read(dir.path().join("result.json")).unwrap()).unwrap();
    let expected = &fixture["expected"];
    assert_eq!(result["trades"].as_array().unwrap().len(), expected["trades"].as_array().unwrap().len());
    let ours: f64 = result["summary"]["final_equity"].as_str().unwrap().parse().unwrap();
    let theirs = expected["final_equity"].as_f64().unwrap();
    assert!((ours - theirs).abs() <= 1e-9 * theirs);
    let eq = std::fs::read_to_string(dir.path().join("eq.csv")).unwrap();
    assert_eq!(eq.lines().count(), 8784 + 1);
}

#[test]
fn bad_config_exits_2_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let job = json!({"template_id": "tpl_ma_cross", "params": {"fast": 50, "slow": 10}, "symbols": ["BTCUSDT"],
                     "timeframe": "1h", "start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z", "capital": "1000"});
    std::fs::write(dir.path().join("job.json"), job.to_string()).unwrap();
    let bars = fixture_dir().join("bars_btcusdt_1h.csv");
    let out = pipai(&["run", "--config", "job.json", "--data", bars.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("params.slow: must be greater than params.fast"), "{}", text(&out).1);
}

#[test]
fn bad_data_exits_3_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let job = json!({"template_id": "tpl_breakout", "params": {"lookback": 2}, "symbols": ["BTCUSDT"],
                     "timeframe": "1m", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:10:00Z", "capital": "1000"});
    std::fs::write(dir.path().join("job.json"), job.to_string()).unwrap();
    std::fs::write(
        dir.path().join("bars.csv"),
        "open_time,open,high,low,close,volume\n1704067200000,10,11,9,10,1\n1704067260000,10,11,9,abc,1\n",
    )
    .unwrap();
    let out = pipai(&["run", "--config", "job.json", "--data", "bars.csv"], dir.path());
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out).1;
    assert!(stderr.contains("bars.csv line 3"), "{stderr}");

    std::fs::write(
        dir.path().join("dup.csv"),
        "open_time,open,high,low,close,volume\n1704067200000,10,11,9,10,1\n1704067200000,10,11,9,10,1\n",
    )
    .unwrap();
    let out = pipai(&["run", "--config", "job.json", "--data", "dup.csv"], dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
}

#[test]
fn generated_minutes_serve_a_multi_symbol_hourly_job_and_gaps_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    for s in ["BTCUSDT", "ETHUSDT"] {
        let out = pipai(
            &[
                "data",
                "generate",
                "--symbol",
                s,
                "--from",
                "2024-03-01",
                "--to",
                "2024-03-08",
                "--out",
                &format!("{s}.csv"),
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{}", text(&out).1);
    }
    let job = json!({"template_id": "tpl_momentum_rotation", "params": {"lookback": 24, "rebalance_every": 12},
                     "symbols": ["BTCUSDT", "ETHUSDT"], "timeframe": "1h",
                     "start": "2024-03-01T00:00:00Z", "end": "2024-03-10T00:00:00Z", "capital": "1000"});
    std::fs::write(dir.path().join("job.json"), job.to_string()).unwrap();
    let args = ["run", "--config", "job.json", "--data", "BTCUSDT=BTCUSDT.csv", "--data", "ETHUSDT=ETHUSDT.csv"];
    let out = pipai(&args, dir.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("aggregating 1m bars"), "{stderr}");
    // The window runs two days past the data: said, not hidden.
    assert!(stderr.contains("warning") && stderr.contains("has data from"), "{stderr}");
    assert!(stdout.contains("(168 bars)"), "{stdout}");
    let mut strict = args.to_vec();
    strict.push("--strict");
    assert_eq!(pipai(&strict, dir.path()).status.code(), Some(3));
}

#[test]
fn every_documented_example_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    for s in ["BTCUSDT", "ETHUSDT"] {
        let out = pipai(
            &[
                "data",
                "generate",
                "--symbol",
                s,
                "--from",
                "2025-01-01",
                "--to",
                "2026-01-01",
                "--timeframe",
                "15m",
                "--out",
                &format!("{s}.csv"),
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{}", text(&out).1);
    }
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    let mut ran = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let job: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut args = vec!["run".to_string(), "--config".into(), path.to_str().unwrap().into(), "--strict".into()];
        for s in job["symbols"].as_array().unwrap() {
            let s = s.as_str().unwrap();
            args.extend(["--data".into(), format!("{s}={s}.csv")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pipai(&args, dir.path());
        assert!(out.status.success(), "{}: {}", path.display(), text(&out).1);
        ran += 1;
    }
    assert_eq!(ran, 5);
}
