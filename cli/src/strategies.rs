//! `pipai strategies`: stored strategies on the API (create, get, list, update, delete).

use std::path::{Path, PathBuf};

use pipai_client::Method;
use serde_json::Value;

use crate::api_args::ApiArgs;
use crate::error::CliError;
use crate::jobs::Client;

/// Stored strategies: a name, a description and a config (any subset of a create-job body,
/// `template_id` and `params` required) that `pipai jobs submit --strategy` builds jobs on.
///
///   pipai strategies create grid.json          # {"name": .., "description": .., "config": {..}}
///   pipai strategies get st_3c91ef00
///   pipai strategies list --limit 50
///   pipai strategies update st_3c91ef00 patch.json   # a JSON merge patch (RFC 7396):
///                                                    # {"config": {"params": {"grid_levels": 10}}}
///   pipai strategies delete st_3c91ef00
///   pipai jobs submit --strategy st_3c91ef00 --start 2025-03-01T00:00:00Z --end 2025-06-01T00:00:00Z
///
/// Credentials as for `pipai jobs` (PIPAI_API_URL, PIPAI_API_KEY, PIPAI_API_SECRET).
/// Exit codes: 0 success, 1 network or server error, 2 the API refused the request (4xx).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct StrategiesArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: StrategiesCommand,
}

#[derive(clap::Subcommand)]
enum StrategiesCommand {
    /// Store a strategy from a JSON file: {"name", "description"?, "config"}.
    Create { file: PathBuf },
    /// Show one strategy as JSON.
    Get { id: String },
    /// Your strategies, most recently updated first (one page; --cursor for the next).
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The next_cursor a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// One JSON object per line instead of a summary line.
        #[arg(long)]
        json: bool,
    },
    /// Apply a JSON merge patch (RFC 7396) of name, description and config from a file;
    /// prints the strategy with its new version.
    Update { id: String, patch: PathBuf },
    /// Delete a strategy (jobs made from it keep their config).
    Delete { id: String },
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(CliError::io(path))
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON"));
}

pub fn run(args: StrategiesArgs) -> Result<(), CliError> {
    let client = Client::new(&args.api)?;
    let path = |id: &str| format!("/v1/strategies/{id}");
    match &args.command {
        StrategiesCommand::Create { file } => {
            print_json(&client.ok(Method::Post, "/v1/strategies", &[], &read(file)?)?);
        }
        StrategiesCommand::Get { id } => print_json(&client.ok(Method::Get, &path(id), &[], b"")?),
        StrategiesCommand::List { limit, cursor, json } => {
            let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            if let Some(c) = cursor {
                query.push(("cursor", c.clone()));
            }
            let page = client.ok(Method::Get, "/v1/strategies", &query, b"")?;
            for s in page["data"].as_array().into_iter().flatten() {
                if *json {
                    println!("{s}");
                } else {
                    println!(
                        "{}  v{:<3} {:<22} updated {}  {}",
                        s["id"].as_str().unwrap_or("?"),
                        s["version"].as_u64().unwrap_or(0),
                        s["config"]["template_id"].as_str().unwrap_or("?"),
                        s["updated_at"].as_str().unwrap_or("?"),
                        s["name"].as_str().unwrap_or("?"),
                    );
                }
            }
            if let Some(c) = page["next_cursor"].as_str() {
                eprintln!("more: --cursor {c}");
            }
        }
        StrategiesCommand::Update { id, patch } => {
            print_json(&client.ok(Method::Patch, &path(id), &[], &read(patch)?)?);
        }
        StrategiesCommand::Delete { id } => {
            client.ok(Method::Delete, &path(id), &[], b"")?;
            println!("deleted {id}");
        }
    }
    Ok(())
}
