//! `pipai data`: market data. `generate` makes deterministic synthetic bars.

use std::fmt::Write as _;
use std::path::PathBuf;

use pipai_engine::time::parse_iso;
use pipai_engine::Timeframe;
use pipai_market_data::generate::GeneratorParams;
use pipai_market_data::{generate, resample, Preset};

use crate::error::CliError;

/// Market data: synthetic demo bars (and, with the service, ingest of exchange dumps).
#[derive(clap::Subcommand)]
pub enum DataCommand {
    Generate(GenerateArgs),
}

/// Generate deterministic synthetic bars as a plain CSV (open_time,open,high,low,close,volume).
///
/// The same symbol and window always give the same bars, on any machine. BTCUSDT and ETHUSDT
/// are fixed markets that start on 2024-01-01 (BTC at 42,000, ETH at 2,300); any other symbol
/// needs --start-price and gets its own seeded path. Bars are made at 1m and aggregated to
/// --timeframe on UTC boundaries. Synthetic data is for trying things out, not for research.
///
/// Example:
///   pipai data generate --symbol BTCUSDT --from 2025-01-01 --to 2026-01-01 --timeframe 1h --out btc-1h.csv
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct GenerateArgs {
    /// Symbol, e.g. BTCUSDT.
    #[arg(long)]
    symbol: String,
    /// First bar's open time (inclusive): 2025-01-01 or 2025-01-01T00:00:00Z.
    #[arg(long)]
    from: String,
    /// End of the data (exclusive), same formats.
    #[arg(long)]
    to: String,
    /// Bar interval of the output: 1m, 5m, 15m, 1h, 4h, 1d.
    #[arg(long, default_value = "1m")]
    timeframe: Timeframe,
    /// First price of a symbol without a preset (BTCUSDT and ETHUSDT have one).
    #[arg(long)]
    start_price: Option<f64>,
    /// Output CSV path.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: DataCommand) -> Result<(), CliError> {
    match cmd {
        DataCommand::Generate(args) => generate_csv(args),
    }
}

fn parse_day_or_time(flag: &str, s: &str) -> Result<i64, CliError> {
    let text = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_string() };
    parse_iso(&text)
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| CliError::Config(format!("--{flag}: {s:?} is not a date (2025-01-01) or an ISO 8601 UTC time")))
}

/// Stable 64-bit FNV-1a of the symbol: the seed of a symbol without a preset.
fn symbol_seed(symbol: &str) -> u64 {
    symbol.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn generate_csv(args: GenerateArgs) -> Result<(), CliError> {
    let (from, to) = (parse_day_or_time("from", &args.from)?, parse_day_or_time("to", &args.to)?);
    if to <= from {
        return Err(CliError::Config("--to must be after --from".into()));
    }
    let minutes = match Preset::for_symbol(&args.symbol) {
        Some(preset) => {
            if from < preset.anchor_ms {
                return Err(CliError::Config(format!(
                    "{} synthetic data starts at 2024-01-01; --from is earlier",
                    args.symbol
                )));
            }
            preset.generate(from, to)
        }
        None => {
            let price = args.start_price.filter(|p| *p > 0.0).ok_or_else(|| {
                CliError::Config(format!("{} has no preset: pass --start-price (e.g. 100)", args.symbol))
            })?;
            generate::generate(&GeneratorParams::new(symbol_seed(&args.symbol), price), from, to)
        }
    };
    let bars = if args.timeframe == Timeframe::M1 { minutes } else { resample(&minutes, args.timeframe) };
    let mut csv = String::with_capacity(bars.len() * 64);
    csv.push_str("open_time,open,high,low,close,volume\n");
    for i in 0..bars.len() {
        let b = bars.get(i);
        let _ = writeln!(csv, "{},{},{},{},{},{}", b.open_time, b.open, b.high, b.low, b.close, b.volume);
    }
    std::fs::write(&args.out, csv).map_err(CliError::io(&args.out))?;
    println!("{} {} bars of {} written to {}", bars.len(), args.timeframe, args.symbol, args.out.display());
    Ok(())
}
