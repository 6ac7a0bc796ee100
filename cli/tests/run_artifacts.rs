//! `pipai run --artifacts DIR`: the files a done job offers, offline; and `bars.parquet` runs the
//! same job again to the identical result, provenance included.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn pipai(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pipai")).args(args).current_dir(dir).output().expect("pipai runs")
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn a_run_on_its_own_bars_parquet_reproduces_the_result_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Bars beyond the window on both sides: bars.parquet holds only the window's.
    ok(pipai(
        &["data", "generate", "--symbol", "BTCUSDT", "--from", "2024-03-01", "--to", "2024-03-05", "--out", "bars.csv"],
        d,
    ));
    let job = json!({"template_id": "tpl_ma_cross", "params": {"fast": 10, "slow": 50, "direction": "both"},
                     "symbols": ["BTCUSDT"], "timeframe": "1m", "start": "2024-03-02T00:00:00Z",
                     "end": "2024-03-03T23:59:00Z", "capital": "10000.00", "fee_bps": "5", "slippage_bps": "1"});
    std::fs::write(d.join("job.json"), job.to_string()).unwrap();
    let first =
        ok(pipai(&["run", "--config", "job.json", "--data", "bars.csv", "--out", "a.json", "--artifacts", "art"], d));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("6 artifact files"), "{stdout}");
    let mut names: Vec<String> =
        std::fs::read_dir(d.join("art")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["bars.parquet", "equity.csv", "equity.parquet", "report.html", "trades.csv", "trades.parquet"]);

    ok(pipai(
        &["run", "--config", "job.json", "--data", "art/bars.parquet", "--out", "b.json", "--artifacts", "again"],
        d,
    ));
    let (a, b) = (std::fs::read(d.join("a.json")).unwrap(), std::fs::read(d.join("b.json")).unwrap());
    assert_eq!(String::from_utf8(a.clone()).unwrap(), String::from_utf8(b).unwrap());
    for name in names {
        assert_eq!(
            std::fs::read(d.join("art").join(&name)).unwrap(),
            std::fs::read(d.join("again").join(&name)).unwrap(),
            "{name}"
        );
    }

    let result: Value = serde_json::from_slice(&a).unwrap();
    let p = &result["provenance"];
    assert_eq!(p["data"][0]["bars"], 2 * 1440);
    assert_eq!(p["data"][0]["first_open_time"], "2024-03-02T00:00:00Z");
    assert_eq!(p["data"][0]["last_open_time"], "2024-03-03T23:59:00Z");
    assert_eq!(p["config_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(result["benchmark"]["equity_curve"].as_array().unwrap().len(), 2);
    assert!(!result["trades"].as_array().unwrap().is_empty());
}

#[test]
fn a_multi_symbol_run_writes_a_bars_file_per_symbol_that_reproduces_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for s in ["BTCUSDT", "ETHUSDT"] {
        let out = format!("{s}.csv");
        ok(pipai(&["data", "generate", "--symbol", s, "--from", "2024-03-01", "--to", "2024-03-04", "--out", &out], d));
    }
    let job = json!({"template_id": "tpl_momentum_rotation", "params": {"lookback": 24, "rebalance_every": 12},
                     "symbols": ["BTCUSDT", "ETHUSDT"], "timeframe": "1h",
                     "start": "2024-03-01T00:00:00Z", "end": "2024-03-03T23:00:00Z", "capital": "1000"});
    std::fs::write(d.join("job.json"), job.to_string()).unwrap();
    let csv = ["--data", "BTCUSDT=BTCUSDT.csv", "--data", "ETHUSDT=ETHUSDT.csv"];
    let parquet = ["--data", "BTCUSDT=art/bars-BTCUSDT.parquet", "--data", "ETHUSDT=art/bars-ETHUSDT.parquet"];
    let mut args = vec!["run", "--config", "job.json", "--out", "a.json", "--artifacts", "art"];
    args.extend(csv);
    ok(pipai(&args, d));
    let mut args = vec!["run", "--config", "job.json", "--out", "b.json"];
    args.extend(parquet);
    ok(pipai(&args, d));
    assert_eq!(std::fs::read(d.join("a.json")).unwrap(), std::fs::read(d.join("b.json")).unwrap());
}
