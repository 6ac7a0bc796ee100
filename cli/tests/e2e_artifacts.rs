//! End to end over HTTP against the local stack (`infra/local.sh up`): GET
//! /v1/backtest/jobs/{id}/artifacts and the files behind its presigned URLs (issue 13, "Proof").
//!
//!   PIPAI_API_URL=http://127.0.0.1:3000 cargo test -p pipai --test e2e_artifacts -- --ignored
//!
//! The Parquet files are read by pandas in the project's venv (`.venv`, made by `infra/venv.sh`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use pipai_client::Method;
use serde_json::{json, Value};
use support::*;

const NAMES: [&str; 6] =
    ["equity.parquet", "equity.csv", "trades.parquet", "trades.csv", "bars.parquet", "report.html"];

fn artifacts(api: &Api, id: &str) -> (u16, Value) {
    api.call(Method::Get, &format!("/v1/backtest/jobs/{id}/artifacts"), &[], b"")
}

/// Every file of a done job by its URL (a plain GET) into `dir`; the listing.
fn download_all(api: &Api, id: &str, dir: &Path) -> Value {
    let (status, listed) = artifacts(api, id);
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, NAMES, "{listed}");
    let expires = chrono::DateTime::parse_from_rfc3339(listed["expires_at"].as_str().unwrap()).unwrap();
    let left = expires.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((15 * 60..=31 * 60).contains(&left), "URLs valid for {left} s");
    std::fs::create_dir_all(dir).unwrap();
    for f in listed["files"].as_array().unwrap() {
        let path = dir.join(f["name"].as_str().unwrap());
        let mut out = std::fs::File::create(&path).unwrap();
        let (status, bytes) = api.client.download(f["url"].as_str().unwrap(), &mut out).unwrap();
        assert_eq!((status, bytes), (200, f["bytes"].as_u64().unwrap()), "{f}");
        assert!(bytes > 0, "{f}");
    }
    listed
}

/// The project venv's python.
fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join(".venv/bin/python")
}

/// pandas reads the Parquet files and compares them with the JSON result (all of its arrays).
const PANDAS_CHECK: &str = r#"
import json, sys
from decimal import Decimal
import pandas as pd
d, result = sys.argv[1], json.load(open(sys.argv[2]))
eq = pd.read_parquet(f"{d}/equity.parquet")
assert list(eq.columns) == ["open_time", "equity", "drawdown"], eq.columns
assert len(eq) == result["summary"]["bars"], (len(eq), result["summary"]["bars"])
assert eq["open_time"].iloc[0] == pd.Timestamp(result["summary"]["first_bar_time"])
assert eq["open_time"].iloc[-1] == pd.Timestamp(result["summary"]["last_bar_time"])
daily = eq.groupby(eq["open_time"].dt.floor("D"))["equity"].last()
assert len(daily) == len(result["equity_curve"])
for (day, value), (time, equity) in zip(daily.items(), result["equity_curve"]):
    assert day == pd.Timestamp(time) and abs(Decimal(repr(float(value))) - Decimal(equity)) <= Decimal("1e-8"), (time, equity)
tr = pd.read_parquet(f"{d}/trades.parquet")
trades = result["trades"]
assert len(tr) == len(trades) > 0, (len(tr), len(trades))
for row, t in zip(tr.to_dict("records"), trades):
    for k in ["id", "side", "symbol", "exit_reason"]:
        assert row[k] == t[k], (k, row, t)
    for k in ["entry_time", "exit_time"]:
        assert row[k] == pd.Timestamp(t[k]), (k, row, t)
    for k in ["entry_price", "exit_price", "qty", "pnl", "fee"]:
        assert row[k] == Decimal(t[k]), (k, row, t)
bars = pd.read_parquet(f"{d}/bars.parquet")
assert len(bars) == result["provenance"]["data"][0]["bars"] == len(eq)
print(f"pandas: {len(eq)} equity rows, {len(tr)} trades, {len(bars)} bars")
"#;

fn pandas_check(dir: &Path, result_json: &Path) {
    let out = Command::new(python()).args(["-c", PANDAS_CHECK]).arg(dir).arg(result_json).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

/// The whole result of a done job (every array in full: the job is small).
fn full_result(api: &Api, id: &str) -> (Value, Value) {
    let job = api.get(id);
    assert!(job["result"]["pagination"].is_null(), "a small job's result fits one answer");
    (job["config"].clone(), job["result"].clone())
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn a_done_jobs_files_download_read_in_pandas_and_reproduce_offline() {
    let api = fresh_client("artifacts");
    let body = small_job("tpl_ma_cross");
    let mut narrower = body.clone();
    narrower["end"] = json!("2024-02-15T00:00:00Z");
    let ids: Vec<String> = [&body, &body, &narrower].iter().map(|b| api.create_ok(b)).collect();
    for id in &ids {
        api.wait_done(id);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    download_all(&api, &ids[0], &dir);
    let (config, result) = full_result(&api, &ids[0]);
    std::fs::write(tmp.path().join("service.json"), result.to_string()).unwrap();
    pandas_check(&dir, &tmp.path().join("service.json"));
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.starts_with("<!DOCTYPE html>") && report.contains("<svg"), "{}", &report[..report.len().min(200)]);

    // Provenance: the same config on the same bars, the same; another window, another.
    let (_, twin) = full_result(&api, &ids[1]);
    let (_, other) = full_result(&api, &ids[2]);
    assert_eq!(result["provenance"], twin["provenance"]);
    assert_eq!(result, twin, "identical jobs give identical results");
    assert_ne!(result["provenance"]["config_sha256"], other["provenance"]["config_sha256"]);
    assert_ne!(result["provenance"]["data"], other["provenance"]["data"]);

    // Offline: the job's config on the downloaded bars.parquet gives the service's result.
    std::fs::write(tmp.path().join("cfg.json"), config.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pipai"))
        .args(["run", "--config", "cfg.json", "--data", "a/bars.parquet", "--out", "r.json"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let offline: Value = serde_json::from_slice(&std::fs::read(tmp.path().join("r.json")).unwrap()).unwrap();
    for key in ["metrics", "structured_metrics", "summary", "trades", "equity_curve", "provenance", "benchmark"] {
        assert_eq!(offline[key], result[key], "{key} differs offline");
    }

    // `pipai jobs download` fetches the same files.
    let out = Command::new(env!("CARGO_BIN_EXE_pipai"))
        .args(["jobs", "download", &ids[1], "--dir", "b"])
        .current_dir(tmp.path())
        .env("PIPAI_API_URL", std::env::var("PIPAI_API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into()))
        .env("PIPAI_API_KEY", api.key())
        .env("PIPAI_API_SECRET", api.secret())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("6 files"), "{stdout}");
    for name in NAMES {
        let (a, b) = (std::fs::read(dir.join(name)).unwrap(), std::fs::read(tmp.path().join("b").join(name)).unwrap());
        assert_eq!(a, b, "{name}: identical jobs give identical files");
    }

    // Deleted: the objects go with the job, and the route is a 404.
    let before = result_objects(&ids[0]);
    for name in NAMES {
        assert!(before.iter().any(|k| k.ends_with(&format!("/{name}"))), "{name} in {before:?}");
    }
    let (status, body) = api.call(Method::Delete, &format!("/v1/backtest/jobs/{}", ids[0]), &[], b"");
    assert_eq!(status, 204, "{body}");
    assert_eq!(result_objects(&ids[0]), Vec::<String>::new());
    let (status, body) = artifacts(&api, &ids[0]);
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn a_job_not_done_has_no_artifacts_and_anothers_are_not_found() {
    let api = fresh_client("artifacts-409");
    // Held queued while the worker is paused (the other test's jobs just wait a moment).
    let paused = WorkerPaused::new("artifacts");
    let id = api.create_ok(&long_job());
    let (status, body) = artifacts(&api, &id);
    assert_eq!((status, body["code"].as_str()), (409, Some("INVALID_STATE")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("only when it is done"), "{body}");
    let (status, body) = artifacts(&fresh_client("artifacts-other"), &id);
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let (status, body) = api.cancel(&id);
    assert_eq!(status, 200, "{body}");
    drop(paused);
    let (status, body) = artifacts(&api, &id);
    assert_eq!((status, body["code"].as_str()), (409, Some("INVALID_STATE")), "{body}");
}
