//! End to end over HTTP against the local stack (`infra/local.sh up`): the real functions under
//! `cargo lambda watch` behind the local API gateway (`infra/local_gateway.py`), moto's
//! DynamoDB/SQS/S3, the event pump. `infra/test.sh` starts the stack
//! and runs these with `--ignored`. Each test makes its own user (`pipai keys create`), so tests
//! never share active-job slots; they read the stack's resources from `.local/env`.
//!
//! Where a test needs jobs to stay queued (the 5-slot race, cancelling a queued job, a duplicate
//! delivery), it pauses the worker's queue mapping the way one would disable an event source
//! mapping in AWS (`infra/local.sh pause JobWorkerQueueMapping`): messages wait in SQS.
//!
//! Not here: a worker killed mid-run. `cargo lambda watch` (1.9.2) does not restart a function
//! process that dies, and its other functions stop answering after one is killed, so that case
//! is proven one level down, with the real handlers and adapters against moto
//! (`shared/aws/tests/moto/pipeline.rs`).

mod support;
use support::*;

use pipai_client::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn a_job_goes_queued_running_done_and_matches_the_offline_run() {
    let api = fresh_client("run");
    let body = long_job();
    let id = api.create_ok(&body);
    let (done, seen) = api.wait(&id, Duration::from_secs(300));
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["progress"], 1.0);
    let running: Vec<f64> = seen.iter().filter(|(s, _)| s == "running").map(|(_, p)| *p).collect();
    let mut distinct = running.clone();
    distinct.dedup();
    eprintln!("progress observed while running: {distinct:?}");
    assert!(running.windows(2).all(|w| w[1] >= w[0]), "progress never goes back: {running:?}");
    // Polled 10 times a second (the weight budget's pace), a busy machine may see only one step.
    assert!(distinct.iter().any(|p| *p > 0.0 && *p < 1.0), "progress rises in steps: {distinct:?}");

    // The offline command on the same (synthetic, deterministic) bars gives the same numbers.
    let dir = tempfile::tempdir().unwrap();
    let pipai = env!("CARGO_BIN_EXE_pipai");
    for (symbol, file) in [("BTCUSDT", "btc.csv"), ("ETHUSDT", "eth.csv")] {
        let gen = std::process::Command::new(pipai)
            .args(["data", "generate", "--symbol", symbol, "--from", "2024-01-01", "--to", "2026-01-01"])
            .args(["--out", file])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(gen.status.success());
    }
    std::fs::write(dir.path().join("job.json"), body.to_string()).unwrap();
    let run = std::process::Command::new(pipai)
        .args(["run", "--config", "job.json", "--data", "BTCUSDT=btc.csv", "--data", "ETHUSDT=eth.csv"])
        .args(["--out", "result.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let offline: Value = serde_json::from_slice(&std::fs::read(dir.path().join("result.json")).unwrap()).unwrap();
    let result = &done["result"];
    assert_eq!(result["metrics"], offline["metrics"]);
    assert_eq!(result["structured_metrics"], offline["structured_metrics"]);
    assert_eq!(result["summary"], offline["summary"]);
    // Equity and trades read back through `pipai jobs get` (which walks the pages if paged).
    let out = std::process::Command::new(pipai)
        .args(["jobs", "get", &id, "--out", "job.json"])
        .env("PIPAI_API_KEY", api.key())
        .env("PIPAI_API_SECRET", api.secret())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let full: Value = serde_json::from_slice(&std::fs::read(dir.path().join("job.json")).unwrap()).unwrap();
    assert!(!offline["trades"].as_array().unwrap().is_empty());
    assert_eq!(full["result"]["trades"], offline["trades"]);
    assert_eq!(full["result"]["equity_curve"], offline["equity_curve"]);
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn twenty_concurrent_creates_give_exactly_five_jobs() {
    let api = Arc::new(fresh_client("race"));
    // Held in the queue, so no job can finish and free a slot during the burst.
    let paused = WorkerPaused::new("race");
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let api = api.clone();
            let mut body = small_job("tpl_breakout");
            body["capital"] = json!(format!("{}.00", 10_000 + i));
            std::thread::spawn(move || api.create(&body))
        })
        .collect();
    let results: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created: Vec<String> =
        results.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b["id"].as_str().unwrap().to_string()).collect();
    let limited: Vec<&Value> = results.iter().filter(|(s, _)| *s == 429).map(|(_, b)| b).collect();
    assert_eq!((created.len(), limited.len()), (5, 15), "{results:?}");
    for b in limited {
        assert_eq!(b["code"], "RATE_LIMITED");
        assert!(b["message"].as_str().unwrap().contains('5'), "{b}");
    }
    let active = api.walk(&[("status", "queued")]).0;
    assert_eq!(active.len(), 5, "exactly five jobs were stored");
    drop(paused);
    for id in &created {
        api.wait_done(id);
    }
    // Every slot comes back (the stream function releases each once, a moment after the job
    // ends): five more fit.
    let start = Instant::now();
    let mut more = 0;
    while more < 5 {
        let mut body = small_job("tpl_ma_cross");
        body["capital"] = json!(format!("{}.00", 20_000 + more));
        match api.create(&body) {
            (201, _) => more += 1,
            (429, _) if start.elapsed() < Duration::from_secs(30) => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn cancel_a_queued_job_and_a_running_one() {
    let api = fresh_client("cancel");
    let queued = {
        let _paused = WorkerPaused::new("cancel");
        let id = api.create_ok(&small_job("tpl_breakout"));
        let (status, job) = api.cancel(&id);
        assert_eq!((status, job["status"].as_str()), (200, Some("cancelled")), "{job}");
        let (status, again) = api.cancel(&id);
        assert_eq!((status, again["code"].as_str()), (409, Some("INVALID_STATE")), "{again}");
        id
    };
    // Its message is delivered once the mapping resumes; the worker drops it.
    let after = api.create_ok(&small_job("tpl_ma_cross"));
    api.wait_done(&after);
    let job = api.get(&queued);
    assert_eq!((job["status"].as_str(), job["progress"].as_f64()), (Some("cancelled"), Some(0.0)), "{job}");
    assert!(job["result"].is_null(), "{job}");

    // A running simulation: cancelled while it runs, it stops and stays cancelled. On a fast
    // machine a run can finish between two polls; then try again with another.
    let mut attempts = 0;
    let (id, at) = loop {
        attempts += 1;
        assert!(attempts <= 3, "never caught a job while it was running");
        let id = api.create_ok(&long_job());
        let Some(job) = api.wait_progressing(&id) else { continue };
        let (status, cancelled) = api.cancel(&id);
        if status == 409 {
            continue; // finished in between
        }
        assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
        break (id, job["progress"].as_f64().unwrap());
    };
    std::thread::sleep(Duration::from_secs(3));
    let job = api.get(&id);
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["result"].is_null(), "{job}");
    assert!(job["progress"].as_f64().unwrap() < 1.0, "cancelled at {at}: {job}");
    // The slots are free again.
    let ids: Vec<String> = (0..5).map(|_| api.create_ok(&small_job("tpl_breakout"))).collect();
    for id in ids {
        api.wait_done(&id);
    }
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn a_duplicate_delivery_gives_one_result() {
    let api = fresh_client("duplicate");
    let queue = JobsQueue::new();
    let id = {
        let _paused = WorkerPaused::new("duplicate");
        let id = api.create_ok(&small_job("tpl_breakout"));
        // Wait for the stream relay's own message, then add a second copy.
        let start = Instant::now();
        while queue.depth() == 0 {
            assert!(start.elapsed() < Duration::from_secs(30), "the job was never enqueued");
            std::thread::sleep(Duration::from_millis(100));
        }
        queue.send_duplicate(&id);
        id
    };
    let done = api.wait_done(&id);
    queue.wait_drained();
    // And one more after it finished.
    queue.send_duplicate(&id);
    queue.wait_drained();
    let again = api.get(&id);
    assert_eq!(again, done, "a duplicate delivery changed nothing");
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn list_filters_and_cursor_walks() {
    let api = fresh_client("list");
    let mut created = Vec::new(); // (id, template, status), oldest first
    for batch in 0..3 {
        let mut ids = Vec::new();
        for i in 0..4 {
            let template = if (batch + i) % 2 == 0 { "tpl_breakout" } else { "tpl_ma_cross" };
            ids.push((api.create_ok(&small_job(template)), template));
        }
        for (id, template) in ids {
            api.wait_done(&id);
            created.push((id, template, "done"));
        }
    }
    {
        let _paused = WorkerPaused::new("list");
        for _ in 0..2 {
            let id = api.create_ok(&small_job("tpl_breakout"));
            assert_eq!(api.cancel(&id).0, 200);
            created.push((id, "tpl_breakout", "cancelled"));
        }
    }
    let newest_first: Vec<String> = created.iter().rev().map(|(id, _, _)| id.clone()).collect();

    let (ids, sizes) = api.walk(&[("limit", "5")]);
    assert_eq!(ids, newest_first);
    assert_eq!(sizes, vec![5, 5, 4], "pages are full while more jobs match");
    assert_eq!(api.walk(&[]).0, newest_first, "default limit 20 takes all 14 at once");

    let breakouts: Vec<String> =
        created.iter().rev().filter(|(_, t, _)| *t == "tpl_breakout").map(|(id, _, _)| id.clone()).collect();
    let (ids, sizes) = api.walk(&[("template_id", "tpl_breakout"), ("limit", "3")]);
    assert_eq!(ids, breakouts);
    assert!(sizes[..sizes.len() - 1].iter().all(|n| *n == 3), "{sizes:?}");
    let cancelled: Vec<String> =
        created.iter().rev().filter(|(_, _, s)| *s == "cancelled").map(|(id, _, _)| id.clone()).collect();
    assert_eq!(api.walk(&[("status", "cancelled"), ("limit", "1")]).0, cancelled);
    let page = api.list(&[("status", "done"), ("template_id", "tpl_ma_cross")]);
    let summaries = page["data"].as_array().unwrap();
    assert_eq!(summaries.len(), created.iter().filter(|(_, t, s)| *t == "tpl_ma_cross" && *s == "done").count());
    for job in summaries {
        assert!(job["result"]["metrics"].is_object(), "summary form has the metrics: {job}");
        assert!(job["result"].get("trades").is_none() && job["result"].get("equity_curve").is_none(), "{job}");
    }

    // from is inclusive, to exclusive, on submitted_at.
    let sixth = api.get(&created[5].0);
    let at = sixth["submitted_at"].as_str().unwrap().to_string();
    let from = api.walk(&[("from", &at)]).0;
    assert_eq!(from.last(), Some(&created[5].0));
    let to = api.walk(&[("to", &at)]).0;
    assert!(!to.contains(&created[5].0) && to.contains(&created[4].0), "{to:?}");
    assert_eq!(from.len() + to.len(), created.len());

    // The cursor is bound to its user and filters, and tamper-proof.
    let first = api.list(&[("limit", "2"), ("template_id", "tpl_breakout")]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let bad = |query: &[(&str, &str)], who: &Api| {
        let (status, body) = who.call(Method::Get, "/v1/backtest/jobs", query, b"");
        assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{query:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains("cursor"), "{body}");
    };
    bad(&[("limit", "2"), ("template_id", "tpl_ma_cross"), ("cursor", cursor)], &api);
    bad(&[("limit", "2"), ("cursor", cursor)], &api);
    let mut tampered = cursor.to_string();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    bad(&[("limit", "2"), ("template_id", "tpl_breakout"), ("cursor", &tampered)], &api);
    bad(&[("cursor", "garbage")], &api);
    bad(&[("limit", "2"), ("template_id", "tpl_breakout"), ("cursor", cursor)], &fresh_client("stranger"));
}

/// Issue 9: identical POSTs sent back to back (same body, same path, several threads at once)
/// are signed with distinct timestamps, so none is taken for a replay: each gets its own answer.
#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn identical_posts_from_many_threads_are_never_replays() {
    let api = fresh_client("identical");
    let id = api.create_ok(&small_job("tpl_breakout"));
    api.wait_done(&id);
    let invalid = json!({"template_id": "tpl_grid"});
    let answers: Vec<(&str, u16, Value)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (api, id, invalid) = (&api, &id, &invalid);
                s.spawn(move || {
                    let mut answers = Vec::new();
                    for _ in 0..5 {
                        let (status, body) = api.cancel(id);
                        answers.push(("cancel", status, body));
                        let (status, body) = api.create(invalid);
                        answers.push(("create", status, body));
                    }
                    answers
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(answers.len(), 60);
    for (what, status, body) in &answers {
        let expected = if *what == "cancel" { (409, "INVALID_STATE") } else { (400, "INVALID_PARAMETER") };
        assert_eq!((*status, body["code"].as_str().unwrap_or("?")), expected, "{what}: {body}");
    }
}

/// Input the contract answers with 400 naming the field, never normalized or echoed whole.
#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn strict_input_over_http() {
    let api = fresh_client("strict");
    let bad = |body: &[u8], field: &str| {
        let (s, b) = api.call(Method::Post, "/v1/backtest/jobs", &[], body);
        assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{b}");
        let message = b["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{field}: {message}");
        assert!(message.len() < 400, "{} characters", message.len());
    };
    let body = small_job("tpl_breakout").to_string();
    // A key given twice, at the top and inside params.
    bad(body.replacen("{", r#"{"capital":"5.00","#, 1).as_bytes(), "capital");
    bad(body.replacen(r#""lookback":24"#, r#""lookback":24,"lookback":48"#, 1).as_bytes(), "params.lookback");
    // Times not exactly YYYY-MM-DDTHH:MM:SS[.fff]Z.
    for start in [
        "2024-01-01T00:00:00z",
        "2024-01-01 00:00:00Z",
        "2024-01-01t00:00:00Z",
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T01:00:00+01:00",
        "2024-01-01T00:00:00.0000Z",
        "2023-12-31T23:59:60Z",
    ] {
        let mut b = small_job("tpl_breakout");
        b["start"] = json!(start);
        bad(b.to_string().as_bytes(), "start");
    }
    // A 200 KB template id is quoted briefly.
    let mut b = small_job("tpl_breakout");
    b["template_id"] = json!("x".repeat(200_000));
    bad(b.to_string().as_bytes(), "template_id");
    // Non-canonical integers and times in the query.
    for (name, value) in [("limit", "+5"), ("limit", "05"), ("limit", " 5"), ("from", "2024-01-01T00:00:00+00:00")] {
        let (s, b) = api.call(Method::Get, "/v1/backtest/jobs", &[(name, value)], b"");
        assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{name}={value}: {b}");
        assert!(b["message"].as_str().unwrap().starts_with(name), "{b}");
    }
    let (s, b) = api.call(Method::Get, "/v1/backtest/jobs", &[("status", &"z".repeat(5_000))], b"");
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().len() < 300, "{b}");
}

#[test]
#[ignore = "needs the local stack: infra/local.sh up"]
fn errors_over_http_have_code_and_message() {
    let api = fresh_client("errors");
    let (s, b) = api.create(&json!({"template_id": "tpl_grid"}));
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("params:"), "{b}");
    let (s, b) = api.call(Method::Post, "/v1/backtest/jobs", &[], b"{not json");
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{b}");
    let mut body = small_job("tpl_breakout");
    body["end"] = json!("2099-01-01T00:00:00Z");
    let (s, b) = api.create(&body);
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("end"), "{b}");
    let mut body = small_job("tpl_breakout");
    body["symbols"] = json!(["SOLUSDT"]);
    let (s, b) = api.create(&body);
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("SOLUSDT"), "coverage is named: {b}");
    let mut body = small_job("tpl_breakout");
    body["strategy_id"] = json!("st_1");
    let (s, b) = api.create(&body);
    assert_eq!(s, 409, "{b}");
    let (s, b) = api.call(Method::Get, "/v1/backtest/jobs/bt_00000000", &[], b"");
    assert_eq!((s, b["code"].as_str()), (404, Some("NOT_FOUND")));
    let (s, b) = api.call(Method::Get, "/v1/backtest/jobs/nonsense", &[], b"");
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")));
    let (s, b) = api.call(Method::Get, "/v1/backtest/jobs", &[("limit", "500")], b"");
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_PARAMETER")));

    // Another user's job is as absent as an unknown one.
    let id = api.create_ok(&small_job("tpl_breakout"));
    let other = fresh_client("errors-other");
    let (s, b) = other.call(Method::Get, &format!("/v1/backtest/jobs/{id}"), &[], b"");
    assert_eq!((s, b["code"].as_str()), (404, Some("NOT_FOUND")));
    let (s, b) = other.cancel(&id);
    assert_eq!((s, b["code"].as_str()), (404, Some("NOT_FOUND")));

    // 401: unknown key, wrong secret, a replayed request.
    let stranger = Api::with_key("pk_ffffffffffffffff", "nope");
    let (s, b) = stranger.call(Method::Get, "/v1/backtest/jobs", &[], b"");
    assert_eq!((s, b["code"].as_str()), (401, Some("UNAUTHENTICATED")));
    let wrong = Api::with_key(api.key(), "not-the-secret");
    let (s, b) = wrong.call(Method::Get, "/v1/backtest/jobs", &[], b"");
    assert_eq!((s, b["code"].as_str()), (401, Some("UNAUTHENTICATED")));
    let ts = pipai_client::now_ms();
    let replay = || {
        let no_query: &[(&str, &str)] = &[];
        api.client.send_at(ts, Method::Post, "/v1/backtest/jobs", no_query, b"{}").expect("the API answers").status
    };
    assert_eq!((replay(), replay()), (400, 401), "a POST signature is accepted once");

    // Request weights: every answer says what was used; past the budget, 429 with Retry-After.
    let r = api.send(Method::Get, "/v1/backtest/templates", &[], b"");
    assert_eq!(r.status, 200);
    let used = r.used_weight_1m().unwrap();
    assert!(used > 0, "{used}");
}
