//! `pipai`: the PipAI Backtest command line. Thin: parse arguments, dispatch, map errors to exit
//! codes. Each subcommand lives in its own module.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod api_args;
mod bar_files;
mod bench_api;
mod bench_results;
mod data;
mod error;
mod jobs;
mod keys;
mod run;
mod strategies;
mod sweep;
mod sweeps;
mod table;
mod templates;
mod webhooks;

/// PipAI Backtest: run trading-strategy backtests offline or as jobs on the PipAI service.
///
/// Start offline, no AWS needed:
///   pipai data generate --symbol BTCUSDT --from 2025-01-01 --to 2026-01-01 --timeframe 1h --out btc-1h.csv
///   pipai run --config job.json --data btc-1h.csv --out result.json
///
/// `pipai templates` lists the strategy templates and their params.
#[derive(Parser)]
#[command(name = "pipai", version, about, long_about, verbatim_doc_comment, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Sweep(sweep::SweepArgs),
    Jobs(jobs::JobsArgs),
    #[command(subcommand)]
    Data(data::DataCommand),
    Templates(templates::TemplatesArgs),
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    Strategies(strategies::StrategiesArgs),
    Sweeps(sweeps::SweepsArgs),
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Data(cmd) => data::run(cmd),
        Command::Templates(args) => templates::run(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Strategies(args) => strategies::run(args),
        Command::Sweeps(args) => sweeps::run(args),
        Command::Webhooks(cmd) => webhooks::run(cmd),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
