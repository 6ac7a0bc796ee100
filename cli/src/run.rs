//! `pipai run`: one backtest, offline, on local bar files. The same engine, config validation and
//! result shape as the service, so what you see here is what a job returns.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pipai_engine::time::iso;
use pipai_engine::{run as run_engine, Bars, EngineError, JobConfig, NoObserver, Timeframe};
use pipai_market_data::Coverage;

use crate::bar_files::{expand, parse_series, read_files, series_name, to_timeframe};

use crate::error::CliError;
use crate::table;

/// Run one backtest offline on your own bar files: no AWS, no network.
///
/// The job file is the body of `POST /v1/backtest/jobs` (see `pipai templates` for the
/// templates and their params), for example:
///
///   {"template_id": "tpl_ma_cross", "params": {"fast": 12, "slow": 48},
///    "symbols": ["BTCUSDT"], "timeframe": "1h",
///    "start": "2025-01-01T00:00:00Z", "end": "2025-12-31T23:00:00Z",
///    "capital": "10000.00", "fee_model": "fixed_bps", "fee_bps": "5"}
///
/// Bar files: Binance kline dumps (CSV or the .zip they ship in; with or without header;
/// millisecond or microsecond open_time), a plain CSV with the header
/// `open_time,open,high,low,close,volume` (open_time in ms or like 2025-01-01T00:00:00Z), or a
/// Parquet file of the market-data bucket (bars/v1/symbol=…/timeframe=…/month=….parquet). Bars
/// finer than the job's timeframe are aggregated to it on UTC boundaries (1m data serves a 1h
/// job).
///
/// A multi-symbol job needs the same bar times for every symbol. Without --strict, files that
/// start or end at different bars run on the part of the window all of them cover (with a
/// warning); a time missing for one symbol inside that part is an error (exit 3).
///
/// Prints the metrics as a table; `--out` writes the full result (metrics, structured_metrics,
/// daily equity_curve, trades, summary, benchmark, provenance) as JSON, the same shape the API
/// returns. `--artifacts DIR` writes the files a done job offers for download (equity.parquet,
/// equity.csv, trades.parquet, trades.csv, bars.parquet; see docs/api.md, "Artifacts"): running
/// the same job on DIR/bars.parquet reproduces the result exactly.
///
/// Exit codes: 0 done, 1 a file could not be read or written, 2 the job config is invalid,
/// 3 the bars cannot be used (unsorted, duplicate, malformed, wrong timeframe, outside the window).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// The job config: a create-job request body (JSON).
    #[arg(long, value_name = "JOB.json")]
    config: PathBuf,
    /// Bars for a symbol: `PATH` when the job has one symbol, else `SYMBOL=PATH`. A symbol's bars
    /// may come in several files (repeat --data) or a directory of them (its *.parquet, *.csv
    /// and *.zip files, e.g. month partitions): they are joined in time order, overlaps refused.
    #[arg(long = "data", value_name = "[SYMBOL=]PATH", required = true)]
    data: Vec<String>,
    /// Write the result JSON here.
    #[arg(long, value_name = "RESULT.json")]
    out: Option<PathBuf>,
    /// Also write the equity at every bar's close as CSV (open_time,equity).
    #[arg(long, value_name = "EQUITY.csv")]
    bar_equity: Option<PathBuf>,
    /// Also write the artifact files of the run (as a done job offers them) into this directory.
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
    /// Fail (exit 3) when the bars do not cover the whole window without gaps, as the API does;
    /// without it, gaps and a partly covered window are reported as warnings.
    #[arg(long)]
    strict: bool,
    /// Print the wall time of each phase (read, parse, validate, simulate, serialize, write) and
    /// the process's peak resident memory to stderr.
    #[arg(long)]
    timings: bool,
}

pub fn run(args: RunArgs) -> Result<(), CliError> {
    let mut phases = Phases::new();
    let body = std::fs::read(&args.config).map_err(CliError::io(&args.config))?;
    phases.end("read");
    let mut config = JobConfig::from_json_bytes(&body, Utc::now())
        .map_err(|e| CliError::Config(format!("{}: {e}", args.config.display())))?;
    let files = assign_files(&config.symbols, &args.data)?;
    phases.end("parse");

    let mut data = Vec::with_capacity(files.len());
    for (symbol, paths) in config.symbols.iter().zip(&files) {
        let window = (config.start_ms(), config.end_ms());
        data.push(load_bars(symbol, paths, config.timeframe, window, args.strict, &mut phases)?);
    }
    narrow_to_shared_span(&mut config, &data)?;
    phases.end("validate");

    let backtest = run_engine(&config, &data, &mut NoObserver).map_err(|e| match e {
        EngineError::Config(f) => CliError::Config(format!("{}: {f}", args.config.display())),
        other => CliError::Data(other.to_string()),
    })?;
    phases.end("simulate");

    let config_json = serde_json::to_value(&config).expect("configs serialize");
    // The table shows the metrics and the summary: the trades and the curve are serialized once,
    // into the result file.
    let result = &backtest.result;
    let result_json = serde_json::json!({
        "metrics": result.metrics,
        "structured_metrics": result.structured_metrics,
        "summary": result.summary,
    });
    print!("{}", table::render(&config_json, &result_json));
    phases.end("serialize");
    if let Some(out) = &args.out {
        let json = serde_json::to_vec_pretty(&backtest.result).expect("results serialize");
        phases.end("serialize");
        std::fs::write(out, json).map_err(CliError::io(out))?;
        println!("result written to {}", out.display());
        phases.end("write");
    }
    if let Some(path) = &args.bar_equity {
        let times = backtest
            .bar_open_times(&data)
            .ok_or_else(|| CliError::Data("the run's bars do not match the bar files read".into()))?;
        let mut csv = String::from("open_time,equity\n");
        for (t, e) in times.iter().zip(&backtest.bar_equity) {
            csv.push_str(&format!("{t},{}\n", pipai_engine::result::money(*e)));
        }
        phases.end("serialize");
        std::fs::write(path, csv).map_err(CliError::io(path))?;
        println!("per-bar equity written to {}", path.display());
        phases.end("write");
    }
    if let Some(dir) = &args.artifacts {
        write_artifacts(&backtest, &config, &data, dir)?;
        phases.end("artifacts");
    }
    if args.timings {
        eprintln!("{phases}");
    }
    Ok(())
}

/// `--artifacts DIR`: the files of `pipai_artifacts::write_all` and `report.html`
/// (`pipai_report::render_run`, as the worker uploads it), into `dir`.
fn write_artifacts(
    backtest: &pipai_engine::Backtest,
    config: &JobConfig,
    data: &[Bars],
    dir: &std::path::Path,
) -> Result<(), CliError> {
    use pipai_artifacts::ArtifactError;
    let files = pipai_artifacts::write_all(backtest, config, data).and_then(|mut files| {
        let report = pipai_report::render_run(config, backtest, data);
        files.push(pipai_artifacts::ArtifactFile::report_html(report.into_bytes()));
        pipai_artifacts::write_dir(&files, dir)?;
        Ok(files)
    });
    match files {
        Ok(files) => {
            let bytes: u64 = files.iter().map(|f| f.bytes()).sum();
            println!("{} artifact files ({bytes} bytes) written to {}", files.len(), dir.display());
            Ok(())
        }
        Err(ArtifactError::Io { path, source }) => Err(CliError::Io { path, source }),
        Err(e) => Err(CliError::Data(format!("artifacts: {e}"))),
    }
}

/// The bars of `symbol` from its `--data` file at `timeframe`, checked to cover `window`
/// (`(start_ms, end_ms)`): a gap or a partly covered window is a warning, or with `strict` an
/// error (exit 3).
pub(crate) fn load_bars(
    symbol: &str,
    paths: &[PathBuf],
    timeframe: Timeframe,
    (start_ms, end_ms): (i64, i64),
    strict: bool,
    phases: &mut Phases,
) -> Result<Bars, CliError> {
    let paths = expand(paths)?;
    let name = series_name(&paths);
    let bytes = read_files(&paths)?;
    phases.end("read");
    let bars = to_timeframe(symbol, &name, parse_series(bytes)?, timeframe)?;
    phases.end("parse");
    let coverage = Coverage::from_bars(symbol, timeframe, &bars).map_err(|e| CliError::Data(format!("{name}: {e}")))?;
    if let Err(uncovered) = coverage.check(start_ms, end_ms) {
        if strict {
            return Err(CliError::Data(format!("{name}: {uncovered}")));
        }
        eprintln!("warning: {name}: {uncovered}; running on the bars there are");
    }
    phases.end("validate");
    Ok(bars)
}

/// Narrows `config`'s window to the part every symbol's bars cover, with a warning, when the
/// symbols' bars start or end at different times (see [`shared_span`]).
pub(crate) fn narrow_to_shared_span(config: &mut JobConfig, data: &[Bars]) -> Result<(), CliError> {
    if let Some((from, to)) = shared_span(config, data)? {
        eprintln!(
            "warning: the symbols' bars start or end at different times; running on {} to {}, the part \
             of the window all of them cover",
            iso(from),
            iso(to)
        );
        let at = |ms| {
            DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| CliError::Data(format!("bar time {ms} ms is out of range")))
        };
        (config.start, config.end) = (at(from)?, at(to)?);
    }
    Ok(())
}

/// Wall time spent in each phase of a run, in the order the phases first ended.
pub(crate) struct Phases {
    last: Instant,
    spent: Vec<(&'static str, Duration)>,
}

impl Phases {
    pub(crate) fn new() -> Self {
        Phases { last: Instant::now(), spent: Vec::new() }
    }

    /// Counts the time since the previous call towards `phase`.
    pub(crate) fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        match self.spent.iter_mut().find(|(name, _)| *name == phase) {
            Some((_, total)) => *total += took,
            None => self.spent.push((phase, took)),
        }
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        f.write_str("timings:")?;
        for (name, took) in &self.spent {
            write!(f, " {name} {:.1} ms,", ms(*took))?;
        }
        write!(f, " total {:.1} ms", ms(self.spent.iter().map(|(_, d)| *d).sum()))?;
        if let Some(kib) = peak_rss_kib() {
            write!(f, "; peak RSS {:.1} MB", kib as f64 * 1024.0 / 1e6)?;
        }
        Ok(())
    }
}

/// The process's peak resident memory so far (`VmHWM`, Linux only), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// The part of the job's window every symbol has bars for, when it is narrower than some
/// symbol's bars in the window: the `(first, last)` open time to run on. `None` when nothing needs
/// cutting (one symbol, files that agree), or when a symbol has no bars in the window at all (the
/// engine says so).
fn shared_span(config: &JobConfig, data: &[Bars]) -> Result<Option<(i64, i64)>, CliError> {
    let mut spans = Vec::with_capacity(data.len());
    for (symbol, bars) in config.symbols.iter().zip(data) {
        let times = bars.open_time.get(bars.window(config.start_ms(), config.end_ms())).unwrap_or_default();
        match (times.first(), times.last()) {
            (Some(&first), Some(&last)) => spans.push((symbol, first, last)),
            _ => return Ok(None),
        }
    }
    let (Some(latest_start), Some(earliest_end)) = (spans.iter().max_by_key(|s| s.1), spans.iter().min_by_key(|s| s.2))
    else {
        return Ok(None);
    };
    let (from, to) = (latest_start.1, earliest_end.2);
    if from > to {
        return Err(CliError::Data(format!(
            "the symbols' bars in the window do not overlap: {}'s start at {}, after {}'s end at {}",
            latest_start.0,
            iso(from),
            earliest_end.0,
            iso(to)
        )));
    }
    Ok((!spans.iter().all(|s| (s.1, s.2) == (from, to))).then_some((from, to)))
}

/// Pairs each configured symbol with its `--data` files (one or more each, in the order given).
pub(crate) fn assign_files(symbols: &[String], args: &[String]) -> Result<Vec<Vec<PathBuf>>, CliError> {
    let mut named: Vec<(Option<&str>, PathBuf)> = Vec::new();
    for a in args {
        match a.split_once('=') {
            Some((sym, path)) if !sym.is_empty() && sym.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                named.push((Some(sym), PathBuf::from(path)))
            }
            _ => named.push((None, PathBuf::from(a))),
        }
    }
    if let Some((Some(extra), _)) = named.iter().find(|(n, _)| n.is_some_and(|n| !symbols.iter().any(|s| s == n))) {
        return Err(CliError::Config(format!("--data names {extra}, which the job does not trade")));
    }
    if symbols.len() == 1 {
        return Ok(vec![named.into_iter().map(|(_, p)| p).collect()]);
    }
    if named.iter().any(|(n, _)| n.is_none()) {
        return Err(CliError::Config("with several symbols every --data must be SYMBOL=PATH".into()));
    }
    let mut out = Vec::with_capacity(symbols.len());
    for s in symbols {
        let found: Vec<PathBuf> =
            named.iter().filter(|(n, _)| *n == Some(s.as_str())).map(|(_, p)| p.clone()).collect();
        if found.is_empty() {
            return Err(CliError::Config(format!(
                "no bars for {s}: pass --data {s}=PATH (a multi-symbol job needs one --data SYMBOL=PATH per symbol)"
            )));
        }
        out.push(found);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn data_arguments_pair_with_symbols() {
        assert_eq!(assign_files(&syms(&["BTCUSDT"]), &["a.csv".into()]).unwrap(), [vec![PathBuf::from("a.csv")]]);
        assert_eq!(
            assign_files(&syms(&["BTCUSDT", "ETHUSDT"]), &["ETHUSDT=e.csv".into(), "BTCUSDT=b.csv".into()]).unwrap(),
            [vec![PathBuf::from("b.csv")], vec![PathBuf::from("e.csv")]]
        );
        let err = assign_files(&syms(&["BTCUSDT", "ETHUSDT"]), &["BTCUSDT=b.csv".into()]).unwrap_err();
        assert!(err.to_string().contains("no bars for ETHUSDT"), "{err}");
        let err = assign_files(&syms(&["BTCUSDT"]), &["BTCUSDT=b.csv".into(), "XRPUSDT=x.csv".into()]).unwrap_err();
        assert!(err.to_string().contains("XRPUSDT"), "{err}");
        // A Windows-like or odd path with '=' in it is a path, not SYMBOL=PATH.
        assert_eq!(
            assign_files(&syms(&["BTCUSDT"]), &["./x=y.csv".into()]).unwrap(),
            [vec![PathBuf::from("./x=y.csv")]]
        );
        // Several files of one symbol, named or not, stay in the order given.
        assert_eq!(
            assign_files(&syms(&["BTCUSDT"]), &["a.parquet".into(), "BTCUSDT=b.parquet".into()]).unwrap(),
            [vec![PathBuf::from("a.parquet"), PathBuf::from("b.parquet")]]
        );
        assert_eq!(
            assign_files(
                &syms(&["BTCUSDT", "ETHUSDT"]),
                &["BTCUSDT=1.csv".into(), "ETHUSDT=e.csv".into(), "BTCUSDT=2.csv".into()]
            )
            .unwrap(),
            [vec![PathBuf::from("1.csv"), PathBuf::from("2.csv")], vec![PathBuf::from("e.csv")]]
        );
    }
}
