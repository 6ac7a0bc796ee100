//! `pipai jobs`: the signed API client. Every request is signed as docs/api.md ("Signing") says
//! (the same code the server verifies with), so this is also the reference client.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pipai_client::{next_timestamp_ms, ApiClient, ClientError, ClientSettings, Method};
use pipai_service::auth::sign_request;
use serde_json::Value;

use crate::api_args::ApiArgs;
use crate::error::CliError;
use crate::table;

/// Call the PipAI Backtest API: submit jobs, watch them, read results.
///
/// Credentials come from flags or the environment (PIPAI_API_URL, PIPAI_API_KEY,
/// PIPAI_API_SECRET); `infra/local.sh up` prints a demo key for the local stack.
///
///   pipai jobs submit docs/examples/grid-btc-2025.json --wait
///   pipai jobs submit --strategy st_3c91ef00 --start 2025-03-01T00:00:00Z --end 2025-06-01T00:00:00Z
///   pipai jobs submit --strategy st_3c91ef00 --params '{"grid_levels": 10, "upper_price": "72000", "lower_price": "60000"}'
///   pipai jobs list --status done --limit 10
///   pipai jobs get bt_3c91ef00 --out result.json
///   pipai jobs compare bt_3c91ef00 bt_88a21000
///   pipai jobs delete bt_3c91ef00
///
/// Exit codes: 0 success, 1 network or server error, 2 the API refused the request (4xx),
/// 3 the job ended failed, 4 the job was cancelled.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct JobsArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(clap::Subcommand)]
enum JobsCommand {
    /// Submit a job from a JSON file (the create-job body) and/or a stored strategy with
    /// overrides; --wait follows it to the end. Each override replaces that top-level field of
    /// the body (and, with --strategy, the strategy's field whole: --params too).
    Submit {
        /// The create-job body (optional with --strategy).
        file: Option<PathBuf>,
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        overrides: SubmitOverrides,
    },
    /// Show one job; when done, its metrics. --out writes the full job JSON with every trade and
    /// equity point (pages are fetched and joined).
    Get {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the raw JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// List your jobs, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        template_id: Option<String>,
        /// Submitted at or after (ISO 8601 UTC).
        #[arg(long)]
        from: Option<String>,
        /// Submitted before (ISO 8601 UTC).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Follow next_cursor through every page.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running job.
    Cancel { id: String },
    /// Wait for a job to finish (polls every 5 s, backing off to 30 s), with a progress bar.
    Wait {
        id: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Compare 2 to 10 jobs metric by metric: one row per metric, one column per job, the best
    /// of each row marked `*` (a null value is never best; ties go to the earlier job).
    ///
    ///   pipai jobs compare bt_3c91ef00 bt_88a21000 bt_5d7e1200
    ///   pipai jobs compare bt_3c91ef00 bt_88a21000 --json
    #[command(verbatim_doc_comment)]
    Compare {
        /// The jobs, in the order of the columns.
        #[arg(required = true, num_args = 2..=10)]
        ids: Vec<String>,
        /// Print the API's raw answer instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a done, failed or cancelled job with its stored results (cancel a queued or
    /// running one first).
    ///
    ///   pipai jobs cancel bt_3c91ef00 && pipai jobs delete bt_3c91ef00
    #[command(verbatim_doc_comment)]
    Delete { id: String },
    /// Download a done job's files (equity, trades, bars as Parquet/CSV, report.html) by their
    /// presigned URLs into DIR (default ./ID/), printing each name and size.
    ///
    ///   pipai jobs download bt_3c91ef00 --dir out/
    #[command(verbatim_doc_comment)]
    Download {
        id: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The symbols, timeframes and date ranges with market data.
    Symbols,
    /// The strategy template catalog.
    Templates,
    /// Measure the API: create, get and list latency (p50/p99 over --requests calls each), and
    /// submit-to-done time for one year of 1m bars (BTCUSDT 2025, `tpl_ma_cross`). Creates are
    /// cancelled at once to keep slots free; waits Retry-After when the weight budget is spent
    /// (that time is not counted). `infra/bench.sh api` runs it against a release-built local stack.
    Bench {
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// Measure reading back a very large result (about 525,000 trades): time to done, default
    /// GET latency, 1,000-trade pages at several offsets. `infra/bench.sh results` runs it.
    BenchResults,
    /// Refresh the signatures of sample API Gateway events (for `cargo lambda invoke`) with this
    /// key, timestamped now; they are valid for 5 minutes.
    SignEvents { files: Vec<PathBuf> },
}

/// A create-job body's top-level fields from flags.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct SubmitOverrides {
    /// Use this stored strategy's config as the base (`strategy_id`).
    #[arg(long, value_name = "ST_ID")]
    strategy: Option<String>,
    /// Window start (ISO 8601 UTC, e.g. 2025-01-01T00:00:00Z).
    #[arg(long)]
    start: Option<String>,
    /// Window end (ISO 8601 UTC).
    #[arg(long)]
    end: Option<String>,
    /// Starting equity, a decimal (e.g. 10000.00).
    #[arg(long)]
    capital: Option<String>,
    /// Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.
    #[arg(long, value_delimiter = ',')]
    symbols: Option<Vec<String>>,
    /// Bar interval: 1m, 5m, 15m, 1h, 4h, 1d.
    #[arg(long)]
    timeframe: Option<String>,
    /// The template params as a JSON object (replaces params whole).
    #[arg(long, value_name = "JSON")]
    params: Option<String>,
}

impl SubmitOverrides {
    fn is_empty(&self) -> bool {
        let texts = [&self.strategy, &self.start, &self.end, &self.capital, &self.timeframe, &self.params];
        texts.iter().all(|t| t.is_none()) && self.symbols.is_none()
    }

    /// `base` (a JSON object) with every given flag set as its top-level field.
    pub(crate) fn apply(&self, base: Value) -> Result<Value, CliError> {
        let Value::Object(mut body) = base else {
            return Err(CliError::Config("the job file must hold a JSON object".into()));
        };
        let text = |v: &Option<String>| v.as_ref().map(|s| Value::String(s.clone()));
        let params = match &self.params {
            None => None,
            Some(p) => Some(
                serde_json::from_str::<Value>(p)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| CliError::Config("--params must be a JSON object".into()))?,
            ),
        };
        let symbols = self.symbols.as_ref().map(|s| Value::from(s.clone()));
        for (name, value) in [
            ("strategy_id", text(&self.strategy)),
            ("start", text(&self.start)),
            ("end", text(&self.end)),
            ("capital", text(&self.capital)),
            ("symbols", symbols),
            ("timeframe", text(&self.timeframe)),
            ("params", params),
        ] {
            if let Some(v) = value {
                body.insert(name.to_string(), v);
            }
        }
        Ok(Value::Object(body))
    }
}

/// `pipai jobs`'s view of the API: the signing client, with answers as JSON and refusals as
/// [`CliError`]s.
pub(crate) struct Client {
    api: ApiClient,
}

/// An API answer: status, JSON body, and `Retry-After` when there is one.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after_s: Option<u64>,
}

/// A request that got no answer: the message names the request and every cause.
fn no_answer(error: ClientError) -> CliError {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    CliError::Network(message)
}

impl Client {
    pub(crate) fn new(args: &ApiArgs) -> Result<Client, CliError> {
        let key = args
            .key
            .as_deref()
            .ok_or_else(|| CliError::Config("no API key: pass --key or set PIPAI_API_KEY".into()))?;
        let secret = args
            .secret
            .as_deref()
            .ok_or_else(|| CliError::Config("no API secret: pass --secret or set PIPAI_API_SECRET".into()))?;
        let settings = ClientSettings::parse(&args.url, key, secret).map_err(|e| CliError::Config(e.to_string()))?;
        Ok(Client { api: ApiClient::new(settings) })
    }

    pub(crate) fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: &[u8],
    ) -> Result<Reply, CliError> {
        let response = self.api.send(method, path, query, body).map_err(no_answer)?;
        Ok(Reply { status: response.status, body: response.json_or_text(), retry_after_s: response.retry_after_s() })
    }

    /// The body of a 2xx reply, or the API's `{code, message}` as an error.
    pub(crate) fn ok(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: &[u8],
    ) -> Result<Value, CliError> {
        let reply = self.call(method, path, query, body)?;
        if (200..300).contains(&reply.status) {
            return Ok(reply.body);
        }
        let detail = format!(
            "HTTP {} {}: {}",
            reply.status,
            reply.body["code"].as_str().unwrap_or("?"),
            reply.body["message"].as_str().map(str::to_string).unwrap_or_else(|| reply.body.to_string())
        );
        Err(if reply.status >= 500 { CliError::Network(detail) } else { CliError::Api(detail) })
    }

    fn job(&self, id: &str) -> Result<Value, CliError> {
        self.ok(Method::Get, &format!("/v1/backtest/jobs/{id}"), &[], b"")
    }

    /// The job with every page of its result arrays joined in.
    fn full_job(&self, id: &str) -> Result<Value, CliError> {
        let mut job = self.job(id)?;
        let pages = job["result"]["pagination"].clone();
        for array in ["equity_curve", "trades"] {
            let mut cursor = pages[array]["next_cursor"].as_str().map(str::to_string);
            while let Some(c) = cursor {
                let page = self.ok(
                    Method::Get,
                    &format!("/v1/backtest/jobs/{id}"),
                    &[("expand", array.to_string()), ("cursor", c), ("limit", "10000".into())],
                    b"",
                )?;
                if let (Some(all), Some(more)) = (job["result"][array].as_array_mut(), page["data"].as_array()) {
                    all.extend(more.iter().cloned());
                }
                cursor = page["next_cursor"].as_str().map(str::to_string);
            }
        }
        if !pages.is_null() {
            job["result"]["pagination"] = Value::Null;
        }
        Ok(job)
    }
}

fn print_job_line(job: &Value) {
    println!(
        "{}  {:<9}  {:<22}  {:<10}  submitted {}  progress {:.0}%",
        job["id"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?"),
        job["config"]["template_id"].as_str().unwrap_or("?"),
        job["config"]["symbols"]
            .as_array()
            .map(|s| s.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        job["submitted_at"].as_str().unwrap_or("?"),
        job["progress"].as_f64().unwrap_or(0.0) * 100.0
    );
}

/// Prints a finished job (metrics table, or its error) and turns its end state into the exit code.
fn report_end(job: &Value) -> Result<(), CliError> {
    match job["status"].as_str() {
        Some("done") => {
            print!("{}", table::render(&job["config"], &job["result"]));
            Ok(())
        }
        Some("failed") => Err(CliError::JobFailed(format!(
            "job {} failed: {} {}",
            job["id"].as_str().unwrap_or("?"),
            job["error"]["code"].as_str().unwrap_or("?"),
            job["error"]["message"].as_str().unwrap_or("")
        ))),
        Some("cancelled") => {
            Err(CliError::JobCancelled(format!("job {} was cancelled", job["id"].as_str().unwrap_or("?"))))
        }
        _ => {
            print_job_line(job);
            Ok(())
        }
    }
}

fn wait(client: &Client, id: &str, timeout: Duration) -> Result<Value, CliError> {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<10} [{bar:40}] {percent:>3}% {elapsed}").expect("valid template"),
    );
    let started = Instant::now();
    // The seeds' polling guidance: at most every 5 s, then back off (x1.5 up to 30 s).
    let mut interval = Duration::from_secs(5);
    let mut polls = 0;
    loop {
        let job = client.job(id)?;
        let status = job["status"].as_str().unwrap_or("?").to_string();
        bar.set_message(status.clone());
        bar.set_position((job["progress"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
        if matches!(status.as_str(), "done" | "failed" | "cancelled") {
            bar.finish();
            return Ok(job);
        }
        if started.elapsed() > timeout {
            bar.abandon();
            return Err(CliError::Network(format!("job {id} is still {status} after {} s", timeout.as_secs())));
        }
        std::thread::sleep(interval);
        polls += 1;
        if polls >= 3 {
            interval = (interval.mul_f64(1.5)).min(Duration::from_secs(30));
        }
    }
}

pub fn run(args: JobsArgs) -> Result<(), CliError> {
    let client = Client::new(&args.api)?;
    match &args.command {
        JobsCommand::Submit { file, wait: follow, overrides } => {
            let body = match file {
                // Without overrides the file goes as it is, byte for byte.
                Some(file) if overrides.is_empty() => std::fs::read(file).map_err(CliError::io(file))?,
                Some(file) => {
                    let bytes = std::fs::read(file).map_err(CliError::io(file))?;
                    let base = serde_json::from_slice(&bytes)
                        .map_err(|e| CliError::Config(format!("{}: not JSON: {e}", file.display())))?;
                    serde_json::to_vec(&overrides.apply(base)?).expect("JSON")
                }
                None if overrides.strategy.is_some() => {
                    serde_json::to_vec(&overrides.apply(Value::Object(Default::default()))?).expect("JSON")
                }
                None => return Err(CliError::Config("give a job FILE, or --strategy ST_ID".into())),
            };
            let job = client.ok(Method::Post, "/v1/backtest/jobs", &[], &body)?;
            let id = job["id"].as_str().unwrap_or_default().to_string();
            println!("submitted {id} ({})", job["status"].as_str().unwrap_or("?"));
            if *follow {
                let job = wait(&client, &id, Duration::from_secs(3600))?;
                report_end(&client.full_job(&id).unwrap_or(job))?;
            }
            Ok(())
        }
        JobsCommand::Get { id, out, json } => {
            let job = if out.is_some() || *json { client.full_job(id)? } else { client.job(id)? };
            if let Some(path) = out {
                std::fs::write(path, serde_json::to_vec_pretty(&job).expect("JSON")).map_err(CliError::io(path))?;
                println!("job written to {}", path.display());
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&job).expect("JSON"));
                return Ok(());
            }
            print_job_line(&job);
            report_end(&job)
        }
        JobsCommand::List { status, template_id, from, to, limit, all, json } => {
            let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            for (k, v) in [("status", status), ("template_id", template_id), ("from", from), ("to", to)] {
                if let Some(v) = v {
                    query.push((k, v.clone()));
                }
            }
            loop {
                let page = client.ok(Method::Get, "/v1/backtest/jobs", &query, b"")?;
                for job in page["data"].as_array().into_iter().flatten() {
                    if *json {
                        println!("{job}");
                    } else {
                        print_job_line(job);
                    }
                }
                match (page["next_cursor"].as_str(), all) {
                    (Some(c), true) => {
                        query.retain(|(k, _)| *k != "cursor");
                        query.push(("cursor", c.to_string()));
                    }
                    (Some(c), false) => {
                        eprintln!("more: --all, or the API's cursor={c}");
                        return Ok(());
                    }
                    (None, _) => return Ok(()),
                }
            }
        }
        JobsCommand::Cancel { id } => {
            let job = client.ok(Method::Post, &format!("/v1/backtest/jobs/{id}/cancel"), &[], b"")?;
            print_job_line(&job);
            Ok(())
        }
        JobsCommand::Compare { ids, json } => {
            let body = serde_json::to_vec(&serde_json::json!({ "job_ids": ids })).expect("JSON");
            let answer = client.ok(Method::Post, "/v1/backtest/compare", &[], &body)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&answer).expect("JSON"));
            } else {
                print!("{}", table::comparison(&answer));
            }
            Ok(())
        }
        JobsCommand::Delete { id } => {
            client.ok(Method::Delete, &format!("/v1/backtest/jobs/{id}"), &[], b"")?;
            println!("deleted {id}");
            Ok(())
        }
        JobsCommand::Download { id, dir } => download(&client, id, dir.clone().unwrap_or_else(|| PathBuf::from(id))),
        JobsCommand::Wait { id, timeout } => {
            wait(&client, id, Duration::from_secs(*timeout))?;
            report_end(&client.full_job(id)?)
        }
        JobsCommand::Symbols => {
            let reply = client.ok(Method::Get, "/v1/backtest/symbols", &[], b"")?;
            for s in reply["data"].as_array().into_iter().flatten() {
                println!(
                    "{:<10} {:<4} {} .. {}  gaps {}{}",
                    s["symbol"].as_str().unwrap_or("?"),
                    s["timeframe"].as_str().unwrap_or("?"),
                    s["first_open_time"].as_str().unwrap_or("?"),
                    s["last_open_time"].as_str().unwrap_or("?"),
                    s["gaps"].as_array().map(|g| g.len()).unwrap_or(0),
                    if s["synthetic"] == true { "  (synthetic)" } else { "" }
                );
            }
            Ok(())
        }
        JobsCommand::Templates => {
            let reply = client.ok(Method::Get, "/v1/backtest/templates", &[], b"")?;
            println!("{}", serde_json::to_string_pretty(&reply["data"]).expect("JSON"));
            Ok(())
        }
        JobsCommand::Bench { requests } => crate::bench_api::run(&client, *requests),
        JobsCommand::BenchResults => crate::bench_results::run(&client),
        JobsCommand::SignEvents { files } => {
            for path in files {
                let text = std::fs::read_to_string(path).map_err(CliError::io(path))?;
                let mut event: Value =
                    serde_json::from_str(&text).map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?;
                let Some(method) = event["requestContext"]["http"]["method"].as_str().map(str::to_string) else {
                    println!("{}: not an API Gateway event, left as it is", path.display());
                    continue;
                };
                let route_path = event["rawPath"].as_str().unwrap_or_default().to_string();
                let query = event["rawQueryString"].as_str().unwrap_or_default().to_string();
                let body = event["body"].as_str().unwrap_or_default().to_string();
                let now = next_timestamp_ms();
                let settings = client.api.settings();
                let (key, secret) = (settings.key_id.as_str(), settings.secret.expose());
                for (k, v) in sign_request(key, secret, now, &method, &route_path, &query, body.as_bytes()) {
                    event["headers"][k] = Value::String(v);
                }
                let mut out = serde_json::to_string_pretty(&event).expect("JSON");
                out.push('\n');
                std::fs::write(path, out).map_err(CliError::io(path))?;
                println!("{}: signed for {} at {now}", path.display(), client.api.settings().key_id.as_str());
            }
            let _ = std::io::stdout().flush();
            Ok(())
        }
    }
}

/// `pipai jobs download`: every file of `GET .../artifacts`, by its URL, into `dir`.
fn download(client: &Client, id: &str, dir: PathBuf) -> Result<(), CliError> {
    let listed = client.ok(Method::Get, &format!("/v1/backtest/jobs/{id}/artifacts"), &[], b"")?;
    let files = listed["files"].as_array().cloned().unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(CliError::io(&dir))?;
    let mut total = 0;
    for file in &files {
        let (Some(name), Some(url)) = (file["name"].as_str(), file["url"].as_str()) else {
            return Err(CliError::Network(format!("the artifacts answer lists a file without name or url: {file}")));
        };
        // A name is one path segment (the service's own); anything else is refused, not followed.
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(CliError::Network(format!("refusing the artifact name {}", pipai_engine::quoted(name))));
        }
        let path = dir.join(name);
        let mut out = std::fs::File::create(&path).map_err(CliError::io(&path))?;
        let (status, bytes) = client
            .api
            .download(url, &mut out)
            .map_err(|e| CliError::Network(format!("{name}: {}", pipai_service::error::report(&e))))?;
        if !(200..300).contains(&status) {
            return Err(CliError::Network(format!("{name}: HTTP {status} from its download URL")));
        }
        println!("{name}\t{bytes} bytes");
        total += bytes;
    }
    println!("{} files, {total} bytes, in {}", files.len(), dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        overrides: SubmitOverrides,
    }

    #[test]
    fn overrides_set_top_level_fields() {
        let flags = Flags::parse_from([
            "x",
            "--strategy",
            "st_0a1b2c3d",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--params",
            r#"{"lookback": 24}"#,
            "--capital",
            "500",
        ]);
        let body = flags.overrides.apply(json!({"capital": "1", "timeframe": "1h"})).unwrap();
        assert_eq!(
            body,
            json!({"strategy_id": "st_0a1b2c3d", "symbols": ["BTCUSDT", "ETHUSDT"], "params": {"lookback": 24},
                   "capital": "500", "timeframe": "1h"})
        );
        assert!(!flags.overrides.is_empty());
        assert!(Flags::parse_from(["x"]).overrides.is_empty());
        let bad = Flags::parse_from(["x", "--params", "[1]"]);
        assert!(bad.overrides.apply(json!({})).is_err());
        assert!(Flags::parse_from(["x"]).overrides.apply(json!([1])).is_err());
    }
}
