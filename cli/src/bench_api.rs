//! `pipai jobs bench`: latency of the API as a client sees it (signing, network, the functions and
//! their storage), and how long a one-year 1m backtest takes from submit to done.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use pipai_client::Method;

use crate::error::CliError;
use crate::jobs::{Client, Reply};

/// A quick job for the create calls (cancelled at once): one month of 1h bars.
fn small_job(i: usize) -> Value {
    json!({"template_id": "tpl_breakout", "params": {"lookback": 24}, "symbols": ["BTCUSDT"], "timeframe": "1h",
           "start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z", "capital": format!("{}.00", 10_000 + i)})
}

/// One year of 1m bars: 525,600 of them.
fn one_year_job() -> Value {
    json!({"template_id": "tpl_ma_cross", "params": {"fast": 60, "slow": 240}, "symbols": ["BTCUSDT"],
           "timeframe": "1m", "start": "2025-01-01T00:00:00Z", "end": "2025-12-31T23:59:00Z", "capital": "10000.00"})
}

/// Sends until the answer is not a spent weight budget (waiting Retry-After, uncounted); returns
/// the reply and how long the answered request took.
fn timed(
    client: &Client,
    method: Method,
    path: &str,
    query: &[(&str, String)],
    body: &[u8],
) -> Result<(Reply, Duration), CliError> {
    loop {
        let start = Instant::now();
        let reply = client.call(method, path, query, body)?;
        let took = start.elapsed();
        match reply.retry_after_s {
            Some(s) if reply.status == 429 => std::thread::sleep(Duration::from_secs(s.max(1))),
            _ => return Ok((reply, took)),
        }
    }
}

fn expect(reply: &Reply, status: u16, what: &str) -> Result<(), CliError> {
    if reply.status == status {
        Ok(())
    } else {
        Err(CliError::Api(format!("{what}: HTTP {} {}", reply.status, reply.body)))
    }
}

struct Samples {
    name: &'static str,
    ms: Vec<f64>,
}

impl Samples {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

pub fn run(client: &Client, requests: usize) -> Result<(), CliError> {
    let requests = requests.max(1);
    let mut create = Samples { name: "create", ms: Vec::new() };
    let mut get = Samples { name: "get", ms: Vec::new() };
    let mut list = Samples { name: "list", ms: Vec::new() };
    let jobs_path = "/v1/backtest/jobs";

    eprintln!("create x{requests} (each cancelled at once, to keep the 5 slots free)");
    let mut i = 0;
    let mut last_id = String::new();
    while create.ms.len() < requests {
        let (reply, took) = timed(client, Method::Post, jobs_path, &[], small_job(i).to_string().as_bytes())?;
        i += 1;
        if reply.status == 429 {
            // Slots come back a moment after a cancel (the stream function releases them).
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        expect(&reply, 201, "create")?;
        create.ms.push(took.as_secs_f64() * 1e3);
        last_id = reply.body["id"].as_str().unwrap_or_default().to_string();
        let (reply, _) = timed(client, Method::Post, &format!("{jobs_path}/{last_id}/cancel"), &[], b"")?;
        if reply.status != 200 && reply.status != 409 {
            expect(&reply, 200, "cancel")?;
        }
    }

    eprintln!("get x{requests}");
    for _ in 0..requests {
        let (reply, took) = timed(client, Method::Get, &format!("{jobs_path}/{last_id}"), &[], b"")?;
        expect(&reply, 200, "get")?;
        get.ms.push(took.as_secs_f64() * 1e3);
    }
    eprintln!("list x{requests} (limit 20)");
    for _ in 0..requests {
        let (reply, took) = timed(client, Method::Get, jobs_path, &[("limit", "20".into())], b"")?;
        expect(&reply, 200, "list")?;
        list.ms.push(took.as_secs_f64() * 1e3);
    }

    eprintln!("one year of 1m bars, submit to done");
    // From sending the create (the last of the slots may take a moment to come back: retried).
    let started = Instant::now();
    let (reply, _) = loop {
        let (reply, took) = timed(client, Method::Post, jobs_path, &[], one_year_job().to_string().as_bytes())?;
        if reply.status != 429 {
            break (reply, took);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    expect(&reply, 201, "create the one-year job")?;
    let id = reply.body["id"].as_str().unwrap_or_default().to_string();
    let job = loop {
        let (reply, _) = timed(client, Method::Get, &format!("{jobs_path}/{id}"), &[], b"")?;
        expect(&reply, 200, "get")?;
        match reply.body["status"].as_str() {
            Some("done" | "failed" | "cancelled") => break reply.body,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let submit_to_done = started.elapsed();
    if job["status"] != "done" {
        return Err(CliError::Api(format!("the one-year job ended {}: {}", job["status"], job["error"])));
    }

    println!("{:<8} {:>6} {:>10} {:>10} {:>10}", "call", "n", "p50 ms", "p99 ms", "max ms");
    for s in [&create, &get, &list] {
        println!(
            "{:<8} {:>6} {:>10.1} {:>10.1} {:>10.1}",
            s.name,
            s.ms.len(),
            s.percentile(50.0),
            s.percentile(99.0),
            s.percentile(100.0)
        );
    }
    println!(
        "one year of 1m bars (525,600, tpl_ma_cross): submit to done {:.2} s (polling every 50 ms)",
        submit_to_done.as_secs_f64()
    );
    Ok(())
}
