//! Completion webhooks end to end over HTTP against the local stack, started with
//! `PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS=1` (as `infra/test.sh` does) so that `http://127.0.0.1:PORT`
//! is an acceptable `notify_url`. Each test runs its own tiny HTTP receiver on 127.0.0.1 (a
//! `std::net::TcpListener`); the refusal tests use IP literals and names that are refused before
//! any lookup, so nothing here sends traffic anywhere but 127.0.0.1.

mod support;
use support::*;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    /// Header names in lower case.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }

    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the event is JSON")
    }
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// These statuses in turn, then 200.
    Statuses(&'static [u16]),
    /// Reads the request and never answers (holds the connection for a minute).
    Never,
}

struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let (sink, answered) = (got.clone(), Arc::new(Mutex::new(0usize)));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (sink, answered) = (sink.clone(), answered.clone());
                std::thread::spawn(move || serve(stream, answer, &sink, &answered));
            }
        });
        Receiver { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/pipai?src=e2e", self.port)
    }

    /// Waits until `n` requests arrived; returns them all.
    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(start.elapsed() < timeout, "{} of {n} webhook requests after {timeout:?}", got.len());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn serve(stream: TcpStream, answer: Answer, sink: &Mutex<Vec<Received>>, answered: &Mutex<usize>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || !line.starts_with("POST /hooks/pipai?src=e2e HTTP/1.1") {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    sink.lock().unwrap().push(Received { headers, body });
    let status = match answer {
        Answer::Never => {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        Answer::Statuses(list) => {
            let mut n = answered.lock().unwrap();
            *n += 1;
            list.get(*n - 1).copied().unwrap_or(200)
        }
    };
    let mut stream = stream;
    let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

fn with_hook(url: &str) -> Value {
    let mut body = small_job("tpl_ma_cross");
    body["notify_url"] = Value::String(url.to_string());
    body
}

/// Polls the job until its first notification satisfies `done`.
fn wait_record(api: &Api, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let job = api.get(id);
        if job["notifications"].get(0).is_some_and(&done) {
            return job;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "notification record never got there: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn verifies(api: &Api, r: &Received) -> bool {
    let (ts, evt, sig) = (r.header("x-pipai-timestamp"), r.header("x-pipai-event-id"), r.header("x-pipai-signature"));
    pipai_service::webhook::verify(api.secret(), ts, evt, &r.body, sig, Some((pipai_service::clock::now_ms(), 300_000)))
        .is_ok()
}

#[test]
#[ignore = "needs the local stack with PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS=1: infra/local.sh up"]
fn a_done_job_posts_a_signed_job_done_event_that_verifies_with_the_keys_secret() {
    let api = fresh_client("hook-done");
    let receiver = Receiver::start(Answer::Statuses(&[]));
    let id = api.create_ok(&with_hook(&receiver.url()));
    let job = api.wait_done(&id);
    assert_eq!(job["notify_url"], receiver.url().as_str());
    let got = receiver.wait_for(1, Duration::from_secs(60));
    let r = &got[0];
    assert!(verifies(&api, r), "signature must verify with the key's secret: {r:?}");
    assert!(!verifies(&fresh_client("hook-other"), r), "and not with another key's");
    let event = r.event();
    assert_eq!(event["type"], "job.done");
    assert_eq!(event["id"], r.header("x-pipai-event-id"));
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(event["created_at"], job["finished_at"]);
    assert_eq!(event["data"]["id"], id.as_str());
    assert_eq!(event["data"]["status"], "done");
    assert_eq!(event["data"]["result"]["metrics"], job["result"]["metrics"]);
    assert!(event["data"]["result"].get("equity_curve").is_none(), "data is the list form");
    assert_eq!(r.header("content-type"), "application/json");

    let job = wait_record(&api, &id, |n| n["delivered_at"].is_string());
    let n = &job["notifications"][0];
    assert_eq!((n["attempts"].as_u64(), n["last_status"].as_u64()), (Some(1), Some(200)), "{n}");
    assert_eq!(n["event_id"], event["id"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.got.lock().unwrap().len(), 1, "delivered once");
}

#[test]
#[ignore = "needs the local stack with PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS=1: infra/local.sh up"]
fn a_receiver_answering_500_then_200_gets_the_event_twice_with_the_same_id() {
    let api = fresh_client("hook-retry");
    let receiver = Receiver::start(Answer::Statuses(&[500]));
    let id = api.create_ok(&with_hook(&receiver.url()));
    api.wait_done(&id);
    let got = receiver.wait_for(2, Duration::from_secs(60));
    assert_eq!(got[0].header("x-pipai-event-id"), got[1].header("x-pipai-event-id"));
    assert_eq!(got[0].event()["id"], got[1].event()["id"]);
    assert_eq!(got[0].event()["created_at"], got[1].event()["created_at"]);
    assert!(got.iter().all(|r| verifies(&api, r)));
    let job = wait_record(&api, &id, |n| n["delivered_at"].is_string());
    let n = &job["notifications"][0];
    assert_eq!((n["attempts"].as_u64(), n["last_status"].as_u64()), (Some(2), Some(200)), "{n}");
    assert_eq!(job["status"], "done");
}

#[test]
#[ignore = "needs the local stack with PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS=1: infra/local.sh up"]
fn a_receiver_that_never_answers_does_not_hold_the_job() {
    let api = fresh_client("hook-silent");
    let receiver = Receiver::start(Answer::Never);
    let start = Instant::now();
    let id = api.create_ok(&with_hook(&receiver.url()));
    let (job, _) = api.wait(&id, Duration::from_secs(60));
    assert_eq!(job["status"], "done", "{job}");
    receiver.wait_for(1, Duration::from_secs(60));
    let job = wait_record(&api, &id, |n| n["attempts"].as_u64() >= Some(1) && n["last_error"].is_string());
    let n = &job["notifications"][0];
    assert!(n["last_status"].is_null() && n["delivered_at"].is_null(), "{n}");
    assert!(n["last_error"].as_str().unwrap().contains("no answer"), "{n}");
    assert!(n["next_attempt_at"].is_string() && n["gave_up"] == false, "{n}");
    assert!(job["result"]["metrics"].is_object(), "the result is there, untouched");
    println!("done and first attempt recorded {:?} after creation", start.elapsed());
}

#[test]
#[ignore = "needs the local stack with PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS=1: infra/local.sh up"]
fn a_cancelled_job_posts_job_cancelled() {
    let api = fresh_client("hook-cancel");
    let receiver = Receiver::start(Answer::Statuses(&[]));
    let id = {
        let _paused = WorkerPaused::new("hook-cancel");
        let id = api.create_ok(&with_hook(&receiver.url()));
        let (status, job) = api.cancel(&id);
        assert_eq!(status, 200, "{job}");
        id
    };
    let got = receiver.wait_for(1, Duration::from_secs(60));
    let event = got[0].event();
    assert_eq!((event["type"].as_str(), event["data"]["id"].as_str()), (Some("job.cancelled"), Some(id.as_str())));
    assert!(verifies(&api, &got[0]));
}

#[test]
#[ignore = "needs the local stack with PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS=1: infra/local.sh up"]
fn refused_notify_urls_are_400_and_create_nothing() {
    let api = fresh_client("hook-refused");
    // IP literals and names refused before any lookup: no traffic leaves this machine.
    for url in [
        "https://10.0.0.1/x",
        "https://169.254.169.254/",
        "http://example.com",
        "https://127.0.0.1/x",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost/x",
        "http://localhost:9/x",
        "https://user:pw@10.0.0.1/",
        "ftp://127.0.0.1/",
    ] {
        let (status, body) = api.create(&with_hook(url));
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["code"], "INVALID_PARAMETER", "{url}: {body}");
        assert!(body["message"].as_str().unwrap().starts_with("notify_url: "), "{url}: {body}");
    }
    assert_eq!(api.list(&[])["data"].as_array().unwrap().len(), 0);
}

// ---------------------------------------------------------------- sweeps

/// A small grid (4 configs, one chunk) that notifies `url` when it ends.
fn sweep_with_hook(url: &str) -> Value {
    serde_json::json!({
        "base": small_job("tpl_ma_cross"),
        "space": {"params.fast": [5, 10], "params.slow": [30, 50]},
        "notify_url": url
    })
}

/// Polls the sweep until `done` holds of it.
fn wait_sweep(api: &Api, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (status, sweep) = api.call(pipai_client::Method::Get, &format!("/v1/backtest/sweeps/{id}"), &[], b"");
        assert_eq!(status, 200, "{sweep}");
        if done(&sweep) {
            return sweep;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "sweep {id} never got there: {sweep}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs the local stack with PIPAI_LOCAL_ALLOW_HTTP_WEBHOOKS=1: infra/local.sh up"]
fn a_done_sweep_posts_a_signed_sweep_done_event_and_shows_the_delivery() {
    let api = fresh_client("hook-sweep");
    let receiver = Receiver::start(Answer::Statuses(&[]));
    let (status, created) = api.call(
        pipai_client::Method::Post,
        "/v1/backtest/sweeps",
        &[],
        sweep_with_hook(&receiver.url()).to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["notify_url"], &created["notifications"]),
        (&Value::from(receiver.url()), &serde_json::json!([]))
    );
    let id = created["id"].as_str().unwrap().to_string();
    let sweep = wait_sweep(&api, &id, |s| s["status"] != "queued" && s["status"] != "running");
    assert_eq!(sweep["status"], "done", "{sweep}");

    let got = receiver.wait_for(1, Duration::from_secs(60));
    let r = &got[0];
    assert!(verifies(&api, r), "signature must verify with the key's secret: {r:?}");
    assert!(!verifies(&fresh_client("hook-sweep-other"), r), "and not with another key's");
    let event = r.event();
    assert_eq!(event["type"], "sweep.done");
    assert_eq!(event["id"], r.header("x-pipai-event-id"));
    assert_eq!(event["created_at"], sweep["finished_at"]);
    assert_eq!(event["data"]["id"], id.as_str());
    assert_eq!((&event["data"]["status"], &event["data"]["best"]), (&Value::from("done"), &sweep["best"]));
    assert!(event["data"].get("leaderboard").is_none(), "data is the list form");

    let sweep = wait_sweep(&api, &id, |s| s["notifications"].get(0).is_some_and(|n| n["delivered_at"].is_string()));
    let n = &sweep["notifications"][0];
    assert_eq!((n["attempts"].as_u64(), n["last_status"].as_u64()), (Some(1), Some(200)), "{n}");
    assert_eq!((&n["event_id"], &n["type"]), (&event["id"], &Value::from("sweep.done")));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.got.lock().unwrap().len(), 1, "delivered once");
}
