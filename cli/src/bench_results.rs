//! `pipai jobs bench-results`: how a very large result reads back. Submits two years of 1m
//! BTCUSDT with a 1/2 moving-average cross in both directions and no fees (so nothing stops the
//! churn: about 525,000 trades), and prints the time to done (with the progress seen on the way),
//! the latency and size of the default GET, and the latency of 1,000-trade pages at several
//! offsets. `infra/bench.sh results` runs it
//! against a release-built local stack and adds the functions' peak memory.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::CliError;
use pipai_client::Method;

use crate::jobs::{Client, Reply};

fn large_job() -> Value {
    json!({"template_id": "tpl_ma_cross", "params": {"fast": 1, "slow": 2, "direction": "both"},
           "symbols": ["BTCUSDT"], "timeframe": "1m", "start": "2024-01-01T00:00:00Z",
           "end": "2025-12-31T23:59:00Z", "capital": "10000.00", "fee_model": "none"})
}

/// One GET, its reply, its latency in ms and its body size in bytes (as re-serialized). Locally
/// `cargo lambda watch` now and then answers a 500 of its own (no `code`) or never answers
/// (the client's 60 s timeout): such a call is said and tried again, up to 3 times.
fn get(client: &Client, path: &str, query: &[(&str, String)]) -> Result<(Reply, f64, usize), CliError> {
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let outcome = client.call(Method::Get, path, query, b"");
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let problem = match outcome {
            Ok(reply) if reply.status == 200 => {
                let size = reply.body.to_string().len();
                return Ok((reply, ms, size));
            }
            Ok(reply) if reply.status < 500 || reply.body.get("code").is_some() => {
                return Err(CliError::Api(format!("GET {path} {query:?}: HTTP {} {}", reply.status, reply.body)));
            }
            Ok(reply) => format!("HTTP {} {}", reply.status, reply.body),
            Err(e) => e.to_string(),
        };
        eprintln!("  (local emulator: {problem} after {ms:.0} ms; attempt {attempt} of 3)");
        if attempt == 3 {
            return Err(CliError::Network(format!("GET {path} {query:?}: {problem}")));
        }
        attempt += 1;
    }
}

pub fn run(client: &Client) -> Result<(), CliError> {
    let jobs = "/v1/backtest/jobs";
    eprintln!("submitting two years of 1m BTCUSDT, tpl_ma_cross fast 1 slow 2 both");
    let started = Instant::now();
    let reply = client.call(Method::Post, jobs, &[], large_job().to_string().as_bytes())?;
    if reply.status != 201 {
        return Err(CliError::Api(format!("create: HTTP {} {}", reply.status, reply.body)));
    }
    let id = reply.body["id"].as_str().unwrap_or_default().to_string();
    let path = format!("{jobs}/{id}");
    // Polled every 250 ms; each progress value is printed once, with when it was first seen.
    let mut last_progress = None;
    let job = loop {
        let reply = client.call(Method::Get, &path, &[], b"")?;
        let progress = reply.body["progress"].as_f64();
        if progress != last_progress {
            eprintln!(
                "  {:>7.1} s  {} {:.4}",
                started.elapsed().as_secs_f64(),
                reply.body["status"],
                progress.unwrap_or(0.0)
            );
            last_progress = progress;
        }
        match reply.body["status"].as_str() {
            Some("done" | "failed" | "cancelled") => break reply.body,
            Some(_) => std::thread::sleep(Duration::from_millis(250)),
            None => return Err(CliError::Api(format!("get {id}: HTTP {} {}", reply.status, reply.body))),
        }
    };
    let to_done = started.elapsed().as_secs_f64();
    if job["status"] != "done" {
        return Err(CliError::Api(format!("the job ended {}: {}", job["status"], job["error"])));
    }
    let trades = job["result"]["pagination"]["trades"]["total"].as_u64().unwrap_or(0);
    println!("job {id}: {trades} trades; submit to done {to_done:.1} s");

    let mut default_ms = Vec::new();
    let mut default_size = 0;
    for _ in 0..5 {
        let (_, ms, size) = get(client, &path, &[])?;
        default_ms.push(ms);
        default_size = size;
    }
    let shown: Vec<String> = default_ms.iter().map(|ms| format!("{ms:.0}")).collect();
    println!("default GET: {default_size} bytes; latency ms, 5 calls: {}", shown.join(" "));

    // Pages of 1,000 trades at offsets spread over the array; the cursors to get there come from
    // walking 10,000-trade pages (timed too).
    let page = |cursor: Option<&str>, limit: usize| {
        let mut q = vec![("expand", "trades".to_string()), ("limit", limit.to_string())];
        q.extend(cursor.map(|c| ("cursor", c.to_string())));
        get(client, &path, &q)
    };
    let (_, ms, size) = page(None, 1)?;
    println!("expand=trades limit=1 at offset 0: {ms:.0} ms, {size} bytes");
    let targets = [0, trades / 4, trades / 2, trades * 3 / 4, trades.saturating_sub(1_000)];
    let mut cursor: Option<String> = None;
    let mut offset = 0u64;
    let mut walk_ms = Vec::new();
    for target in targets {
        while offset + 10_000 <= target {
            let (reply, ms, _) = page(cursor.as_deref(), 10_000)?;
            walk_ms.push(ms);
            offset += reply.body["data"].as_array().map_or(0, |d| d.len() as u64);
            cursor = reply.body["next_cursor"].as_str().map(str::to_string);
        }
        let (reply, ms, size) = page(cursor.as_deref(), 1_000)?;
        let got = reply.body["data"].as_array().map_or(0, Vec::len);
        println!("expand=trades limit=1000 at offset {offset}: {ms:.0} ms, {got} trades, {size} bytes");
    }
    if !walk_ms.is_empty() {
        walk_ms.sort_by(f64::total_cmp);
        println!(
            "expand=trades limit=10000 ({} pages walked): median {:.0} ms, max {:.0} ms",
            walk_ms.len(),
            walk_ms[walk_ms.len() / 2],
            walk_ms[walk_ms.len() - 1]
        );
    }
    Ok(())
}
