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
        // A sweep example (docs/sweeps.md) runs as a sweep over its base's symbols.
        let (command, job) = match job.get("base") {
            Some(base) => ("sweep", base.clone()),
            None => ("run", job),
        };
        let mut args = vec![command.to_string(), "--config".into(), path.to_str().unwrap().into(), "--strict".into()];
        for s in job["symbols"].as_array().unwrap() {
            let s = s.as_str().unwrap();
            args.extend(["--data".into(), format!("{s}={s}.csv")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pipai(&args, dir.path());
        assert!(out.status.success(), "{}: {}", path.display(), text(&out).1);
        ran += usize::from(command == "run");
    }
    assert_eq!(ran, 5);
}

/// A plain CSV of hourly bars `hours` after 2024-01-01T00:00:00Z, skipping `missing`.
fn hourly_csv(hours: std::ops::RangeInclusive<i64>, missing: &[i64]) -> String {
    const T0: i64 = 1_704_067_200_000;
    let mut csv = String::from("open_time,open,high,low,close,volume\n");
    for h in hours.filter(|h| !missing.contains(h)) {
        let price = 100 + (h * 7) % 13;
        csv.push_str(&format!("{},{price},{},{},{price},1\n", T0 + h * 3_600_000, price + 1, price - 1));
    }
    csv
}

/// The `open_time` column of a `--bar-equity` file, in hours after 2024-01-01T00:00:00Z.
fn bar_equity_hours(path: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("open_time,equity"));
    lines.map(|l| (l.split(',').next().unwrap().parse::<i64>().unwrap() - 1_704_067_200_000) / 3_600_000).collect()
}

#[test]
fn symbols_whose_files_start_and_end_at_different_bars() {
    let dir = tempfile::tempdir().unwrap();
    let job = |from_hour: i64, to_hour: i64| {
        let at = |h: i64| format!("2024-01-{:02}T{:02}:00:00Z", 1 + h / 24, h % 24);
        let job = json!({"template_id": "tpl_momentum_rotation", "params": {"lookback": 3, "rebalance_every": 2},
                         "symbols": ["BTCUSDT", "ETHUSDT"], "timeframe": "1h",
                         "start": at(from_hour), "end": at(to_hour), "capital": "1000"});
        std::fs::write(dir.path().join("job.json"), job.to_string()).unwrap();
    };
    let files = |btc: std::ops::RangeInclusive<i64>, eth: std::ops::RangeInclusive<i64>, eth_missing: &[i64]| {
        std::fs::write(dir.path().join("btc.csv"), hourly_csv(btc, &[])).unwrap();
        std::fs::write(dir.path().join("eth.csv"), hourly_csv(eth, eth_missing)).unwrap();
    };
    let run = |strict: bool| {
        let mut args = vec!["run", "--config", "job.json", "--data", "BTCUSDT=btc.csv", "--data", "ETHUSDT=eth.csv"];
        args.extend(["--bar-equity", "eq.csv", "--out", "result.json"]);
        if strict {
            args.push("--strict");
        }
        let _ = std::fs::remove_file(dir.path().join("eq.csv"));
        pipai(&args, dir.path())
    };
    let eq = || bar_equity_hours(&dir.path().join("eq.csv"));

    // The window inside both files: BTCUSDT's bars from row 20, ETHUSDT's from row 10.
    files(0..=99, 10..=119, &[]);
    job(20, 80);
    let out = run(true);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(eq(), (20..=80).collect::<Vec<_>>());
    let result: Value = serde_json::from_slice(&std::fs::read(dir.path().join("result.json")).unwrap()).unwrap();
    assert_eq!(result["summary"]["first_bar_time"], "2024-01-01T20:00:00Z");

    // The first symbol's file is the shorter one (this used to index past its end).
    files(30..=59, 0..=119, &[]);
    job(35, 55);
    let out = run(true);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(eq(), (35..=55).collect::<Vec<_>>());

    // A window wider than both: without --strict, the part both cover, said in a warning.
    files(0..=99, 10..=119, &[]);
    job(0, 119);
    let out = run(false);
    let stderr = text(&out).1;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("running on 2024-01-01T10:00:00Z to 2024-01-05T03:00:00Z"), "{stderr}");
    assert_eq!(eq(), (10..=99).collect::<Vec<_>>());
    assert_eq!(run(true).status.code(), Some(3));

    // Files that share no bar, and a bar missing for one symbol inside the shared part: exit 3.
    files(0..=9, 50..=59, &[]);
    let out = run(false);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
    assert!(text(&out).1.contains("do not overlap"), "{}", text(&out).1);
    files(0..=99, 10..=119, &[50]);
    let out = run(false);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
    assert!(text(&out).1.contains("aligned"), "{}", text(&out).1);
}

#[test]
fn a_config_with_a_key_twice_or_a_loose_time_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bars = fixture_dir().join("bars_btcusdt_1h.csv");
    let base = r#"{"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}, "symbols": ["BTCUSDT"],
                   "timeframe": "1h", "start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z", "capital": "1000"}"#;
    for (from, to, needle) in [
        (r#""slow": 20"#, r#""slow": 20, "fast": 6"#, "params.fast: is given more than once"),
        (r#""capital": "1000""#, r#""capital": "1000", "capital": "2000""#, "capital: is given more than once"),
        ("2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", "start: \"2024-01-01T01:00:00+01:00\" is not"),
        ("2024-02-01T00:00:00Z", "2024-02-01 00:00:00Z", "end: \"2024-02-01 00:00:00Z\" is not"),
    ] {
        std::fs::write(dir.path().join("job.json"), base.replacen(from, to, 1)).unwrap();
        let out = pipai(&["run", "--config", "job.json", "--data", bars.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(2), "{to}: {}", text(&out).1);
        assert!(text(&out).1.contains(needle), "{to}: {}", text(&out).1);
    }
}

/// A one-symbol 1m job over 2024-03-01 to 2024-03-03 (SMA 10/50), and the generated bars as
/// `bars.csv` and `bars.parquet` in `dir`.
fn two_days_of_minutes(dir: &Path) {
    for out in ["bars.csv", "bars.parquet"] {
        let args =
            ["data", "generate", "--symbol", "BTCUSDT", "--from", "2024-03-01", "--to", "2024-03-03", "--out", out];
        let generated = pipai(&args, dir);
        assert!(generated.status.success(), "{}", text(&generated).1);
    }
    assert!(std::fs::read(dir.join("bars.parquet")).unwrap().starts_with(b"PAR1"));
    let job = json!({"template_id": "tpl_ma_cross", "params": {"fast": 10, "slow": 50}, "symbols": ["BTCUSDT"],
                     "timeframe": "1m", "start": "2024-03-01T00:00:00Z", "end": "2024-03-02T23:59:00Z",
                     "capital": "10000.00", "fee_model": "fixed_bps", "fee_bps": "5"});
    std::fs::write(dir.join("job.json"), job.to_string()).unwrap();
}

#[test]
fn a_parquet_file_runs_as_its_csv_does() {
    let dir = tempfile::tempdir().unwrap();
    two_days_of_minutes(dir.path());
    let mut results = Vec::new();
    for (data, out) in [("bars.csv", "from_csv.json"), ("bars.parquet", "from_parquet.json")] {
        let run = pipai(&["run", "--config", "job.json", "--data", data, "--out", out], dir.path());
        assert!(run.status.success(), "{}", text(&run).1);
        results.push(std::fs::read(dir.path().join(out)).unwrap());
    }
    assert_eq!(results[0], results[1]);
    let result: Value = serde_json::from_slice(&results[0]).unwrap();
    assert!(!result["trades"].as_array().unwrap().is_empty());

    std::fs::write(dir.path().join("bad.parquet"), b"PAR1 but nothing else").unwrap();
    let run = pipai(&["run", "--config", "job.json", "--data", "bad.parquet"], dir.path());
    assert_eq!(run.status.code(), Some(3));
    assert!(text(&run).1.contains("bad.parquet"), "{}", text(&run).1);
}

#[test]
fn timings_go_to_stderr_with_the_peak_memory() {
    let dir = tempfile::tempdir().unwrap();
    two_days_of_minutes(dir.path());
    let args = ["run", "--config", "job.json", "--data", "bars.csv", "--out", "result.json"];
    let plain = pipai(&args, dir.path());
    let timed = pipai(&[&args[..], &["--timings"]].concat(), dir.path());
    assert!(plain.status.success() && timed.status.success(), "{}", text(&timed).1);
    // The table is unchanged; the timings are one line on stderr.
    assert_eq!(text(&plain).0, text(&timed).0);
    assert!(!text(&plain).1.contains("timings:"), "{}", text(&plain).1);
    let stderr = text(&timed).1;
    let line = stderr.lines().find(|l| l.starts_with("timings:")).unwrap_or_else(|| panic!("{stderr}"));
    for phase in ["read", "parse", "validate", "simulate", "serialize", "write", "total"] {
        assert!(line.contains(&format!(" {phase} ")) && line.contains(" ms"), "{phase}: {line}");
    }
    if cfg!(target_os = "linux") {
        assert!(line.contains("; peak RSS ") && line.ends_with(" MB"), "{line}");
    }
}
