//! What every end-to-end test file shares: the stack's env, a signing client with the tests'
//! habits, a fresh user per test, job bodies, the paused worker, the jobs queue.
#![allow(dead_code)] // each test file uses its own part of this

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use pipai_client::{ApiClient, ClientSettings, Method, Response};
use serde_json::{json, Value};

/// The stack's state directory: `PIPAI_LOCAL_DIR` as `infra/local.sh` uses it, or `.local`.
pub fn local_dir() -> PathBuf {
    match std::env::var("PIPAI_LOCAL_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join(".local"),
    }
}

/// The stack's resources, from the `export K=V` lines `infra/create_resources.py` writes.
pub fn local_env() -> HashMap<String, String> {
    let text = std::fs::read_to_string(local_dir().join("env")).expect("the stack's env file: is it up?");
    text.lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The signing client, with the test's habits: answers as `(status, JSON)`, a lost connection
/// is a test failure, `Retry-After` is waited out.
pub struct Api {
    pub client: ApiClient,
}

impl Api {
    pub fn with_key(key: &str, secret: &str) -> Api {
        let base = std::env::var("PIPAI_API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
        let settings = ClientSettings::parse(&base, key, secret).expect("valid API settings");
        Api { client: ApiClient::new(settings.with_timeout(Duration::from_secs(120))) }
    }

    pub fn key(&self) -> &str {
        self.client.settings().key_id.as_str()
    }

    pub fn secret(&self) -> &str {
        self.client.settings().secret.expose()
    }

    pub fn send(&self, method: Method, path: &str, query: &[(&str, &str)], body: &[u8]) -> Response {
        self.client.send(method, path, query, body).expect("the API answers")
    }

    /// One request; like a well-behaved client, waits `Retry-After` when the request-weight
    /// budget is spent (not when the 5 active jobs are taken: those 429s are returned).
    ///
    /// A 500 without our `{code, message}` body comes from `cargo lambda watch` itself (it
    /// rarely fails to relay a response: "Internal Server Error" as problem+json, with nothing
    /// logged by the function); a GET is retried a few times and the glitch reported.
    pub fn call(&self, method: Method, path: &str, query: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        let mut emulator_errors = 0;
        loop {
            let r = self.send(method, path, query, body);
            let json = r.json_or_text();
            if method == Method::Get && r.status == 500 && json.get("code").is_none() && emulator_errors < 3 {
                emulator_errors += 1;
                eprintln!("{method} {path}: the emulator answered {json} (retrying)");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            match r.header("retry-after") {
                Some(s) if r.status == 429 => std::thread::sleep(Duration::from_secs(s.parse().unwrap_or(1))),
                _ => return (r.status, json),
            }
        }
    }

    pub fn create(&self, body: &Value) -> (u16, Value) {
        self.call(Method::Post, "/v1/backtest/jobs", &[], body.to_string().as_bytes())
    }

    /// Creates a job, waiting (as a client would) while the user's 5 slots are taken: a job that
    /// just ended gives its slot back a moment later (the stream function), not at once.
    pub fn create_ok(&self, body: &Value) -> String {
        let start = Instant::now();
        let (status, job) = loop {
            let (status, job) = self.create(body);
            let slots_taken = status == 429 && job["message"].as_str().is_some_and(|m| m.contains("queued or running"));
            if !slots_taken || start.elapsed() > Duration::from_secs(60) {
                break (status, job);
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        assert_eq!(status, 201, "{job}");
        assert_eq!(job["status"], "queued");
        job["id"].as_str().unwrap().to_string()
    }

    pub fn cancel(&self, id: &str) -> (u16, Value) {
        self.call(Method::Post, &format!("/v1/backtest/jobs/{id}/cancel"), &[], b"")
    }

    pub fn get(&self, id: &str) -> Value {
        let (status, job) = self.call(Method::Get, &format!("/v1/backtest/jobs/{id}"), &[], b"");
        assert_eq!(status, 200, "{job}");
        job
    }

    pub fn list(&self, query: &[(&str, &str)]) -> Value {
        let (status, page) = self.call(Method::Get, "/v1/backtest/jobs", query, b"");
        assert_eq!(status, 200, "{page}");
        page
    }

    /// Follows `next_cursor` to the end; returns the ids and the page sizes.
    pub fn walk(&self, query: &[(&str, &str)]) -> (Vec<String>, Vec<usize>) {
        let (mut ids, mut sizes) = (Vec::new(), Vec::new());
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let page = self.list(&q);
            let jobs = page["data"].as_array().unwrap();
            sizes.push(jobs.len());
            ids.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_string()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return (ids, sizes),
            }
        }
    }

    /// Polls until terminal; returns the job and every (status, progress) seen.
    pub fn wait(&self, id: &str, timeout: Duration) -> (Value, Vec<(String, f64)>) {
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
            // 10 GETs (weight 2) a second: a tenth of the 1200-a-minute budget each.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_done(&self, id: &str) -> Value {
        let (job, _) = self.wait(id, Duration::from_secs(300));
        assert_eq!(job["status"], "done", "{job}");
        job
    }

    /// Polls until the job is running and has made progress (its first symbol loaded, at least).
    pub fn wait_progressing(&self, id: &str) -> Option<Value> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(300) {
            let job = self.get(id);
            match job["status"].as_str().unwrap() {
                "running" if job["progress"].as_f64().unwrap() > 0.0 => return Some(job),
                "queued" | "running" => std::thread::sleep(Duration::from_millis(50)),
                _ => return None,
            }
        }
        panic!("job {id} never made progress");
    }
}

pub fn job_body(template: &str, params: Value, timeframe: &str, start: &str, end: &str) -> Value {
    json!({"template_id": template, "params": params, "symbols": ["BTCUSDT"], "timeframe": timeframe,
           "start": start, "end": end, "capital": "10000.00"})
}

/// Finishes in well under a second.
pub fn small_job(template: &str) -> Value {
    let params = if template == "tpl_breakout" { json!({"lookback": 24}) } else { json!({"fast": 5, "slow": 20}) };
    job_body(template, params, "1h", "2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z")
}

/// Two years of one-minute bars of two symbols (2 x 1,052,640): long enough to be seen running.
pub fn long_job() -> Value {
    let mut body = job_body(
        "tpl_momentum_rotation",
        json!({"lookback": 1440, "rebalance_every": 60}),
        "1m",
        "2024-01-01T00:00:00Z",
        "2025-12-31T23:59:00Z",
    );
    body["symbols"] = json!(["BTCUSDT", "ETHUSDT"]);
    body
}

/// A fresh user of its own for a test, so tests do not share active-job slots.
pub fn fresh_client(name: &str) -> Api {
    let user = format!("e2e-{name}-{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pipai"))
        .args(["keys", "create", "--user", &user, "--label", "e2e"])
        .envs(local_env())
        .output()
        .expect("pipai keys create runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    let grab = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string)).unwrap();
    Api::with_key(&grab("PIPAI_API_KEY="), &grab("PIPAI_API_SECRET="))
}

/// The worker's queue mapping held paused while this lives (one file per holder, so tests
/// running at once do not resume each other's pause).
pub struct WorkerPaused(PathBuf);

impl WorkerPaused {
    pub fn new(tag: &str) -> WorkerPaused {
        WorkerPaused::mapping("JobWorkerQueueMapping", tag)
    }

    /// Any event source mapping of template.yaml held paused (`SweepWorkerQueueMapping`, say).
    pub fn mapping(mapping: &str, tag: &str) -> WorkerPaused {
        let dir = local_dir().join("paused").join(mapping);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{tag}-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        // The pump checks before each receive, and a receive long-polls for up to a second.
        std::thread::sleep(Duration::from_millis(1500));
        WorkerPaused(file)
    }
}

impl Drop for WorkerPaused {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The jobs queue as a test sees it: send a copy of a job's message, wait until it is drained.
pub struct JobsQueue {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_sqs::Client,
    url: String,
}

impl JobsQueue {
    pub fn new() -> JobsQueue {
        let env = local_env();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = rt.block_on(
            pipai_aws::config_loader()
                .endpoint_url(&env["AWS_ENDPOINT_URL"])
                .region(aws_sdk_sqs::config::Region::new(env["AWS_REGION"].clone()))
                .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "e2e"))
                .load(),
        );
        JobsQueue { rt, client: aws_sdk_sqs::Client::new(&config), url: env["JOBS_QUEUE_URL"].clone() }
    }

    /// What the stream relay sends for a job: a duplicate of its delivery.
    pub fn send_duplicate(&self, job_id: &str) {
        let body = json!({ "job_id": job_id }).to_string();
        self.rt.block_on(self.client.send_message().queue_url(&self.url).message_body(body).send()).unwrap();
    }

    /// Messages waiting or in flight.
    pub fn depth(&self) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .rt
            .block_on(
                self.client
                    .get_queue_attributes()
                    .queue_url(&self.url)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                    .send(),
            )
            .unwrap();
        let attrs = out.attributes().cloned().unwrap_or_default();
        [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
            .iter()
            .map(|a| attrs.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
            .sum()
    }

    pub fn wait_drained(&self) {
        let start = Instant::now();
        while self.depth() > 0 {
            assert!(start.elapsed() < Duration::from_secs(120), "the jobs queue never drained");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The keys the stack's results bucket holds under the job's prefix.
pub fn result_objects(id: &str) -> Vec<String> {
    let env = local_env();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sdk = pipai_aws::config_loader()
            .endpoint_url(&env["AWS_ENDPOINT_URL"])
            .region(aws_sdk_sqs::config::Region::new(env["AWS_REGION"].clone()))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "e2e"))
            .load()
            .await;
        let results = pipai_aws::S3Results::from_lookup(&sdk, &|k: &str| env.get(k).cloned()).unwrap();
        let listed = results
            .client()
            .list_objects_v2()
            .bucket(&env["RESULTS_BUCKET"])
            .prefix(pipai_aws::S3Results::prefix(id).unwrap())
            .send()
            .await
            .unwrap();
        listed.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
    })
}
