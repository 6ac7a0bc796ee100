//! `pipai data`: market data. `generate` makes deterministic synthetic bars.

use std::fmt::Write as _;
use std::path::PathBuf;

use pipai_engine::time::parse_iso;
use pipai_engine::Bars;
use pipai_engine::Timeframe;
use pipai_market_data::generate::GeneratorParams;
use pipai_market_data::{generate, resample, IngestPlan, Preset};

use crate::error::CliError;

/// Market data: ingest exchange dumps into the service's store, or make synthetic demo bars.
#[derive(clap::Subcommand)]
pub enum DataCommand {
    Generate(GenerateArgs),
    Ingest(IngestArgs),
}

/// Load bars into the market-data bucket (one Parquet file per symbol, timeframe and UTC month)
/// and the coverage catalog, through the same code the service reads with.
///
/// Files: Binance kline dumps (monthly or daily CSV, or the zip they ship in; with or without
/// header; ms or µs times) or plain `open_time,open,high,low,close,volume` CSV, all of one
/// symbol and interval. Every file is parsed and checked before anything is written: a bad row
/// stops with its file, line and reason.
///
/// The files replace what is stored between their first and their last bar: a bar they lack in
/// that span is gone afterwards (the catalog shows the gap), bars outside it are kept (daily
/// files add up to a month). Every coarser timeframe is written too, aggregated on UTC
/// boundaries (1m files also give 5m, 15m, 1h, 4h and 1d). Each month file is replaced whole
/// in one PutObject, and its coverage in the catalog recomputed from what was written, so
/// re-ingesting is atomic per month and idempotent; after a failure, run the same command again.
///
/// --synthetic loads the deterministic demo markets instead (BTCUSDT, ETHUSDT), marked synthetic
/// in the catalog (the API says so). Needs the deployment's environment (MARKET_DATA_BUCKET,
/// MARKET_CATALOG_TABLE, AWS credentials); locally `. .local/env`.
///
///   pipai data ingest --symbol BTCUSDT BTCUSDT-1m-2025-01.zip BTCUSDT-1m-2025-02.zip
///   pipai data ingest --synthetic --symbol BTCUSDT --symbol ETHUSDT --from 2024-01-01 --to 2026-01-01
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct IngestArgs {
    /// Bar files (not with --synthetic).
    files: Vec<PathBuf>,
    /// The symbol the files hold (with --synthetic: each symbol to generate).
    #[arg(long = "symbol", required = true)]
    symbols: Vec<String>,
    /// Generate and load synthetic 1m bars instead of reading files.
    #[arg(long)]
    synthetic: bool,
    /// With --synthetic: first day (inclusive).
    #[arg(long, default_value = "2024-01-01")]
    from: String,
    /// With --synthetic: end day (exclusive).
    #[arg(long, default_value = "2026-01-01")]
    to: String,
}

/// Generate deterministic synthetic bars as a plain CSV (open_time,open,high,low,close,volume),
/// or as the market data's Parquet file when --out ends in `.parquet`.
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
    /// Output path: CSV, or Parquet (as the market-data bucket stores bars) if it ends in
    /// `.parquet`.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: DataCommand) -> Result<(), CliError> {
    match cmd {
        DataCommand::Generate(args) => generate_csv(args),
        DataCommand::Ingest(args) => ingest(args),
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
    let file = if args.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) {
        pipai_market_data::bars_to_parquet(&bars).map_err(|e| CliError::Data(e.to_string()))?
    } else {
        let mut csv = String::with_capacity(bars.len() * 64);
        csv.push_str("open_time,open,high,low,close,volume\n");
        for i in 0..bars.len() {
            let b = bars.get(i);
            let _ = writeln!(csv, "{},{},{},{},{},{}", b.open_time, b.open, b.high, b.low, b.close, b.volume);
        }
        csv.into_bytes()
    };
    std::fs::write(&args.out, file).map_err(CliError::io(&args.out))?;
    println!("{} {} bars of {} written to {}", bars.len(), args.timeframe, args.symbol, args.out.display());
    Ok(())
}

/// Bars of every file (a directory: its bar files), in time order, checked across files too.
fn read_files(files: &[PathBuf]) -> Result<(Bars, Timeframe), CliError> {
    let files = crate::bar_files::expand(files)?;
    let all = crate::bar_files::parse_series(crate::bar_files::read_files(&files)?)?;
    let tf = crate::bar_files::file_timeframe(&crate::bar_files::series_name(&files), &all)?;
    Ok((all, tf))
}

fn ingest(args: IngestArgs) -> Result<(), CliError> {
    let mut batches: Vec<(String, Timeframe, Bars)> = Vec::new();
    if args.synthetic {
        if !args.files.is_empty() {
            return Err(CliError::Config("--synthetic generates its bars: pass no files".into()));
        }
        let (from, to) = (parse_day_or_time("from", &args.from)?, parse_day_or_time("to", &args.to)?);
        for symbol in &args.symbols {
            let preset = Preset::for_symbol(symbol).ok_or_else(|| {
                CliError::Config(format!("no synthetic market for {symbol}; there are BTCUSDT and ETHUSDT"))
            })?;
            batches.push((symbol.clone(), Timeframe::M1, preset.generate(from, to)));
        }
    } else {
        let [symbol] = args.symbols.as_slice() else {
            return Err(CliError::Config("files hold one symbol: pass exactly one --symbol".into()));
        };
        if args.files.is_empty() {
            return Err(CliError::Config("no files to ingest (or pass --synthetic)".into()));
        }
        pipai_market_data::layout::validate_symbol(symbol).map_err(|e| CliError::Config(e.to_string()))?;
        let (bars, tf) = read_files(&args.files)?;
        batches.push((symbol.clone(), tf, bars));
    }

    // Plan every batch first: bad bars stop the command before anything is written.
    let mut plans = Vec::with_capacity(batches.len());
    for (symbol, tf, bars) in batches {
        let plan = IngestPlan::from_bars(&symbol, tf, bars, true)
            .map_err(|e| CliError::Data(format!("{symbol} {tf}: {e}")))?;
        plans.push(plan);
    }

    let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Network(e.to_string()))?;
    rt.block_on(async move {
        let sdk = pipai_aws::load_sdk_config().await;
        let market = pipai_aws::S3MarketData::from_env(&sdk).map_err(|e| CliError::Config(e.to_string()))?;
        for plan in plans {
            let symbol = plan.symbol().to_string();
            let base = plan.series()[0].timeframe;
            let derived: Vec<&str> = plan.series()[1..].iter().map(|r| r.timeframe.as_str()).collect();
            let started = std::time::Instant::now();
            let report = market.ingest(plan, args.synthetic).await.map_err(|e| CliError::Network(e.to_string()))?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{symbol} {base}: {} bars in {} month(s){}; {} files, {:.1} MB, {:.1} s, {:.0} rows/s{}",
                report.rows,
                report.months,
                if derived.is_empty() { String::new() } else { format!(", with {} derived", derived.join(", ")) },
                report.files,
                report.bytes as f64 / 1e6,
                secs,
                report.rows as f64 / secs.max(1e-9),
                if args.synthetic { " (synthetic)" } else { "" }
            );
            for c in &report.coverage {
                println!(
                    "  catalog {} {}: {} to {}, {} gap(s)",
                    c.symbol,
                    c.timeframe,
                    pipai_engine::time::iso(c.first_open_time),
                    pipai_engine::time::iso(c.last_open_time),
                    c.gaps.len()
                );
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain CSV of `bars`.
    fn csv(bars: &Bars) -> String {
        let mut s = String::from("open_time,open,high,low,close,volume\n");
        for i in 0..bars.len() {
            let b = bars.get(i);
            let _ = writeln!(s, "{},{},{},{},{},{}", b.open_time, b.open, b.high, b.low, b.close, b.volume);
        }
        s
    }

    #[test]
    fn hourly_files_are_planned_as_1h_with_4h_and_1d_derived() {
        let minutes = pipai_market_data::generate_1m(3, 100.0, 1_704_067_200_000, 1_704_067_200_000 + 3 * 86_400_000);
        let hours = resample(&minutes, Timeframe::H1);
        let dir = tempfile::tempdir().unwrap();
        // Two files, given out of order.
        let (a, b) = (dir.path().join("b.csv"), dir.path().join("a.csv"));
        std::fs::write(&a, csv(&hours.slice(36..72))).unwrap();
        std::fs::write(&b, csv(&hours.slice(0..36))).unwrap();
        let (bars, tf) = read_files(&[a.clone(), b.clone()]).unwrap();
        assert_eq!((tf, &bars), (Timeframe::H1, &hours));
        let plan = IngestPlan::new("BTCUSDT", tf, &bars, true).unwrap();
        let series: Vec<Timeframe> = plan.series().iter().map(|r| r.timeframe).collect();
        assert_eq!(series, [Timeframe::H1, Timeframe::H4, Timeframe::D1]);

        // Overlapping files are refused before anything is planned.
        std::fs::write(&a, csv(&hours.slice(30..72))).unwrap();
        let err = read_files(&[a, b]).unwrap_err();
        assert!(matches!(&err, CliError::Data(m) if m.contains("overlaps")), "{err}");
    }
}
