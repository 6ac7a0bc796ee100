//! `pipai sweeps`: parameter sweeps on the API (submit, get, list, cancel, wait).

use std::path::PathBuf;
use std::time::Duration;

use pipai_client::Method;
use pipai_engine::sweep::{LeaderboardEntry, SweepSpec};
use serde_json::Value;

use crate::api_args::ApiArgs;
use crate::error::CliError;
use crate::jobs::Client;
use crate::{sweep, table};

/// Parameter sweeps run by the service: the body of `pipai sweep --config` (docs/sweeps.md),
/// fanned out over the workers.
///
///   pipai sweeps submit docs/examples/sweep-ma-cross.json --wait
///   pipai sweeps get sw_3c91ef00 --leaderboard      # the full ranking, every page
///   pipai sweeps list
///   pipai sweeps cancel sw_3c91ef00
///   pipai sweeps wait sw_3c91ef00                    # the top 10, reprinted as it changes
///
/// Credentials as for `pipai jobs` (PIPAI_API_URL, PIPAI_API_KEY, PIPAI_API_SECRET).
/// Exit codes: 0 success, 1 network or server error, 2 the API refused the request (4xx).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SweepsArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: SweepsCommand,
}

#[derive(clap::Subcommand)]
enum SweepsCommand {
    /// Submit a sweep from a JSON file; with --wait, follow it to the end.
    Submit {
        file: PathBuf,
        #[arg(long)]
        wait: bool,
    },
    /// Show one sweep as JSON; --leaderboard: its full ranking instead (all pages).
    Get {
        id: String,
        #[arg(long)]
        leaderboard: bool,
    },
    /// Your sweeps, newest first (one page; --cursor for the next).
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Cancel a queued or running sweep.
    Cancel { id: String },
    /// Follow a sweep to the end, reprinting its top 10 whenever it changes.
    Wait { id: String },
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON"));
}

/// The top `n` of a sweep as the offline sweep prints it (`None` while nothing is ranked).
fn top_table(sweep_view: &Value, n: usize) -> Option<String> {
    let spec = SweepSpec::from_json_bytes(sweep_view["config"].to_string().as_bytes()).ok()?;
    let entries: Vec<LeaderboardEntry> = sweep_view["leaderboard"]
        .as_array()?
        .iter()
        .filter_map(|e| {
            Some(LeaderboardEntry {
                rank: e["rank"].as_u64()? as usize,
                index: 0,
                config: serde_json::from_value(e["config"].clone()).ok()?,
                metrics: serde_json::from_value(e["metrics"].clone()).ok()?,
                structured_metrics: serde_json::from_value(e["structured_metrics"].clone()).ok()?,
                oos_metrics: None,
            })
        })
        .collect();
    if entries.is_empty() {
        return None;
    }
    Some(table::leaderboard(&sweep::varied_keys(&spec), spec.rank_metric.name, &entries, n))
}

fn wait(client: &Client, id: &str) -> Result<(), CliError> {
    let mut shown = String::new();
    loop {
        let v = client.ok(Method::Get, &format!("/v1/backtest/sweeps/{id}"), &[], b"")?;
        let status = v["status"].as_str().unwrap_or("?").to_string();
        let board = top_table(&v, 10).unwrap_or_default();
        if board != shown {
            println!("{id} {status}: {} of {} configs evaluated", v["completed"], v["n_configs"]);
            print!("{board}");
            shown = board;
        }
        if matches!(status.as_str(), "done" | "failed" | "cancelled") {
            println!("{id} {status}: {} completed, {} failed", v["completed"], v["failed"]);
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub fn run(args: SweepsArgs) -> Result<(), CliError> {
    let client = Client::new(&args.api)?;
    let path = |id: &str| format!("/v1/backtest/sweeps/{id}");
    match &args.command {
        SweepsCommand::Submit { file, wait: follow } => {
            let body = std::fs::read(file).map_err(CliError::io(file))?;
            let v = client.ok(Method::Post, "/v1/backtest/sweeps", &[], &body)?;
            print_json(&v);
            if let (true, Some(id)) = (*follow, v["id"].as_str()) {
                wait(&client, id)?;
            }
        }
        SweepsCommand::Get { id, leaderboard: false } => print_json(&client.ok(Method::Get, &path(id), &[], b"")?),
        SweepsCommand::Get { id, leaderboard: true } => {
            let mut cursor: Option<String> = None;
            loop {
                let mut q = vec![("expand", "leaderboard".to_string()), ("limit", "1000".to_string())];
                if let Some(c) = &cursor {
                    q.push(("cursor", c.clone()));
                }
                let page = client.ok(Method::Get, &path(id), &q, b"")?;
                for e in page["data"].as_array().into_iter().flatten() {
                    println!("{e}");
                }
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
        }
        SweepsCommand::List { limit, cursor } => {
            let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            if let Some(c) = cursor {
                query.push(("cursor", c.clone()));
            }
            let page = client.ok(Method::Get, "/v1/backtest/sweeps", &query, b"")?;
            for s in page["data"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<9} {:>5} configs  {:>5} done  {:>5} failed  submitted {}",
                    s["id"].as_str().unwrap_or("?"),
                    s["status"].as_str().unwrap_or("?"),
                    s["n_configs"],
                    s["completed"],
                    s["failed"],
                    s["submitted_at"].as_str().unwrap_or("?"),
                );
            }
            if let Some(c) = page["next_cursor"].as_str() {
                eprintln!("more: --cursor {c}");
            }
        }
        SweepsCommand::Cancel { id } => {
            print_json(&client.ok(Method::Post, &format!("{}/cancel", path(id)), &[], b"")?)
        }
        SweepsCommand::Wait { id } => wait(&client, id)?,
    }
    Ok(())
}
