//! End to end over HTTP against the local stack (`infra/local.sh up`): the real functions under
//! `cargo lambda watch`, moto's DynamoDB/SQS/S3, the event pump. `infra/test.sh` starts the stack
//! and runs these with `--ignored`; they need PIPAI_API_URL, PIPAI_API_KEY, PIPAI_API_SECRET and
//! the stack's AWS environment (`.local/env`).

use std::time::{Duration, Instant};

use pipai_service::auth::{rfc3986, sign_request};
use serde_json::{json, Value};

struct Api {
    base: String,
    key: String,
    secret: String,
    agent: ureq::Agent,
}

impl Api {
    fn with_key(key: String, secret: String) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        Api {
            base: std::env::var("PIPAI_API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into()),
            key,
            secret,
            agent,
        }
    }

    fn call(&self, method: &str, path: &str, query: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        let raw_query =
            query.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect::<Vec<_>>().join("&");
        let headers = sign_request(
            &self.key,
            &self.secret,
            chrono::Utc::now().timestamp_millis(),
            method,
            path,
            &raw_query,
            body,
        );
        let url = if raw_query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{raw_query}", self.base)
        };
        let mut resp = if method == "GET" {
            let mut r = self.agent.get(&url);
            for (k, v) in &headers {
                r = r.header(k.as_str(), v.as_str());
            }
            r.call().expect("the API answers")
        } else {
            let mut r = self.agent.post(&url).header("content-type", "application/json");
            for (k, v) in &headers {
                r = r.header(k.as_str(), v.as_str());
            }
            r.send(body).expect("the API answers")
        };
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn create(&self, body: &Value) -> (u16, Value) {
        self.call("POST", "/v1/backtest/jobs", &[], body.to_string().as_bytes())
    }

    fn get(&self, id: &str) -> Value {
        let (status, job) = self.call("GET", &format!("/v1/backtest/jobs/{id}"), &[], b"");
        assert_eq!(status, 200, "{job}");
        job
    }

    /// Polls until terminal; returns the job and every (status, progress) seen.
    fn wait(&self, id: &str, timeout: Duration) -> (Value, Vec<(String, f64)>) {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            let job = self.get(id);
            let status = job["status"].as_str().unwrap().to_string();
            seen.push((status.clone(), job["progress"].as_f64().unwrap_or(0.0)));
            if matches!(status.as_str(), "done" | "failed" | "cancelled") {
                return (job, seen);
            }
            assert!(start.elapsed() < timeout, "job {id} still {status} after {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn job_body(template: &str, params: Value, timeframe: &str, start: &str, end: &str) -> Value {
    json!({"template_id": template, "params": params, "symbols": ["BTCUSDT"], "timeframe": timeframe,
           "start": start, "end": end, "capital": "10000.00"})
}

/// A fresh user of its own for a test, so tests do not share active-job slots.
fn fresh_client(user: &str) -> Api {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pipai"))
        .args(["keys", "create", "--user", user, "--label", "e2e"])
        .output()
        .expect("pipai keys create runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    let grab = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string)).unwrap();
    Api::with_key(grab("PIPAI_API_KEY="), grab("PIPAI_API_SECRET="))
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn a_job_goes_queued_running_done_and_matches_the_offline_run() {
    let api = fresh_client(&format!("e2e-run-{}", std::process::id()));
    let body = job_body(
        "tpl_ma_cross",
        json!({"fast": 60, "slow": 240, "direction": "both"}),
        "1m",
        "2024-01-01T00:00:00Z",
        "2025-12-31T23:59:00Z",
    );
    let (status, job) = api.create(&body);
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "queued");
    let id = job["id"].as_str().unwrap().to_string();
    let (done, seen) = api.wait(&id, Duration::from_secs(600));
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["progress"], 1.0);
    let running: Vec<f64> = seen.iter().filter(|(s, _)| s == "running").map(|(_, p)| *p).collect();
    eprintln!("observed while running: {running:?}");
    assert!(running.windows(2).all(|w| w[1] >= w[0]), "progress never goes back: {running:?}");

    // The offline command on the same (synthetic, deterministic) bars gives the same numbers.
    let dir = tempfile::tempdir().unwrap();
    let pipai = env!("CARGO_BIN_EXE_pipai");
    let gen = std::process::Command::new(pipai)
        .args([
            "data",
            "generate",
            "--symbol",
            "BTCUSDT",
            "--from",
            "2024-01-01",
            "--to",
            "2026-01-01",
            "--out",
            "btc.csv",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(gen.status.success());
    std::fs::write(dir.path().join("job.json"), body.to_string()).unwrap();
    let run = std::process::Command::new(pipai)
        .args(["run", "--config", "job.json", "--data", "btc.csv", "--out", "result.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let offline: Value = serde_json::from_slice(&std::fs::read(dir.path().join("result.json")).unwrap()).unwrap();
    let result = &done["result"];
    assert_eq!(result["metrics"], offline["metrics"]);
    assert_eq!(result["structured_metrics"], offline["structured_metrics"]);
    assert_eq!(result["summary"], offline["summary"]);
    // Equity and trades read back (walking pages if the result was paged).
    let out = std::process::Command::new(pipai)
        .args(["jobs", "get", &id, "--out", "job.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let full: Value = serde_json::from_slice(&std::fs::read(dir.path().join("job.json")).unwrap()).unwrap();
    assert_eq!(full["result"]["trades"], offline["trades"]);
    assert_eq!(full["result"]["equity_curve"], offline["equity_curve"]);
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn twenty_concurrent_creates_give_exactly_five_jobs() {
    let api = std::sync::Arc::new(fresh_client(&format!("e2e-race-{}", std::process::id())));
    let body = job_body("tpl_breakout", json!({"lookback": 24}), "1h", "2024-01-01T00:00:00Z", "2024-06-30T23:00:00Z");
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let api = api.clone();
            let body = body.clone();
            std::thread::spawn(move || api.create(&body))
        })
        .collect();
    let results: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created: Vec<&Value> = results.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
    let limited = results.iter().filter(|(s, b)| *s == 429 && b["code"] == "RATE_LIMITED").count();
    assert_eq!((created.len(), limited), (5, 15), "{results:?}");
    for job in created {
        let (done, _) = api.wait(job["id"].as_str().unwrap(), Duration::from_secs(300));
        assert_eq!(done["status"], "done");
    }
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn errors_over_http_have_code_and_message() {
    let api = fresh_client(&format!("e2e-errors-{}", std::process::id()));
    let (s, b) = api.create(&json!({"template_id": "tpl_grid"}));
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("params:"), "{b}");
    let (s, b) = api.call("GET", "/v1/backtest/jobs/bt_00000000", &[], b"");
    assert_eq!((s, b["code"].as_str()), (404, Some("NOT_FOUND")));
    let stranger = Api::with_key("pk_ffffffffffffffff".into(), "nope".into());
    let (s, b) = stranger.call("GET", "/v1/backtest/jobs", &[], b"");
    assert_eq!((s, b["code"].as_str()), (401, Some("UNAUTHENTICATED")));
    let (s, b) = api.call("GET", "/v1/backtest/jobs", &[("limit", "500")], b"");
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")));
}
