//! `pipai sweep`: a parameter sweep, offline, on local bar files. The same body, validation,
//! messages, ranking and exactness as `POST /v1/backtest/sweeps` (docs/sweeps.md).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use pipai_engine::batch::{self, Evaluation};
use pipai_engine::sweep::estimate::estimate;
use pipai_engine::sweep::rank::DegradationReport;
use pipai_engine::sweep::{degradation, group, Axes, Candidate, LeaderboardEntry, SweepSpec};
use pipai_engine::{Bars, EngineError, JobConfig, Timeframe};
use serde::Serialize;

use crate::error::CliError;
use crate::run::{assign_files, load_bars, narrow_to_shared_span, Phases};
use crate::table;

/// Run a parameter sweep offline on your own bar files: every config of a grid (or a seeded
/// random sample of it), ranked by a metric. No AWS, no network.
///
/// The sweep file is the body of `POST /v1/backtest/sweeps` (docs/sweeps.md), for example
/// (docs/examples/sweep-ma-cross.json):
///
///   {"base": {"template_id": "tpl_ma_cross", "params": {"direction": "long"},
///             "symbols": ["BTCUSDT"], "timeframe": "1h",
///             "start": "2025-01-01T00:00:00Z", "end": "2025-12-31T23:00:00Z",
///             "capital": "10000.00", "fee_model": "fixed_bps", "fee_bps": "5"},
///    "space": {"params.fast": {"from": 5, "to": 50, "step": 5}, "params.slow": [60, 120, 240]},
///    "rank_metric": "sharpe",
///    "constraints": [{"metric": "total_trades", "min": "10"}]}
///
///   pipai sweep --config sweep.json --data btc-1h.csv --out leaderboard.json
///
/// `--data` is as for `pipai run` (one PATH for one symbol, else SYMBOL=PATH per symbol the sweep
/// trades). Every config is validated before anything runs; the configs run on every core.
/// Prints the top 10 as a table; `--out` writes the whole ranking as JSON (entries as the API's
/// leaderboard: rank, config, metrics, structured_metrics, oos_metrics). `--dry-run` (or
/// `"dry_run": true` in the file) prints the cost estimate and runs nothing.
///
/// Exit codes: 0 done, 1 a file could not be read or written, 2 the sweep file is invalid,
/// 3 the bars cannot be used (or every config failed on them).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SweepArgs {
    /// The sweep: a create-sweep request body (JSON).
    #[arg(long, value_name = "SWEEP.json")]
    config: PathBuf,
    /// Bars for a symbol: `PATH` when the sweep trades one symbol, else `SYMBOL=PATH`, once per symbol.
    #[arg(long = "data", value_name = "[SYMBOL=]PATH")]
    data: Vec<String>,
    /// Write the ranking JSON here.
    #[arg(long, value_name = "LEADERBOARD.json")]
    out: Option<PathBuf>,
    /// Write only the best N entries to --out (default: all).
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// Print the cost estimate (configs, bar evaluations, chunks, seconds) and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Fail (exit 3) when the bars do not cover a config's window without gaps.
    #[arg(long)]
    strict: bool,
    /// Threads to evaluate on (default: every core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the wall time of each phase (read, parse, validate, evaluate, rank, write) and the
    /// process's peak resident memory to stderr.
    #[arg(long)]
    timings: bool,
}

/// The file `--out` writes.
#[derive(Serialize)]
struct Output<'a> {
    sweep: &'a SweepSpec,
    n_configs: usize,
    ranked: usize,
    /// Sweep indices (0-based, in sweep order) of the configs a constraint excluded.
    excluded_by_constraints: &'a [usize],
    failed: Vec<Failed>,
    leaderboard: &'a [LeaderboardEntry],
    degradation: Option<DegradationReport>,
    seconds: f64,
}

#[derive(Serialize)]
struct Failed {
    index: usize,
    config: JobConfig,
    error: String,
}

pub fn run(args: SweepArgs) -> Result<(), CliError> {
    let mut phases = Phases::new();
    let invalid = |e: pipai_engine::FieldError| CliError::Config(format!("{}: {e}", args.config.display()));
    let body = std::fs::read(&args.config).map_err(CliError::io(&args.config))?;
    let spec = SweepSpec::from_json_bytes(&body).map_err(invalid)?;
    let mut configs = spec.expand(spec.offline_base().map_err(invalid)?, Utc::now()).map_err(invalid)?;
    if spec.notify_url.is_some() {
        eprintln!("note: notify_url is ignored offline (there is no service to notify)");
    }
    if args.dry_run || spec.dry_run {
        let estimate = estimate(&configs, &spec.validation);
        println!("{}", serde_json::to_string_pretty(&estimate).expect("estimates serialize"));
        return Ok(());
    }
    if args.data.is_empty() {
        return Err(CliError::Config("--data is required to run a sweep (or pass --dry-run)".into()));
    }

    let started = Instant::now();
    let groups = group(&configs);
    let data = load_group_data(&args, &mut configs, &groups, &mut phases)?;
    let evaluations = evaluate_all(&configs, &groups, &data, &spec, args.threads);
    phases.end("evaluate");

    let mut candidates = Vec::with_capacity(configs.len());
    let mut failed = Vec::new();
    let validation = spec.validation.to_batch();
    for (index, (config, evaluation)) in configs.into_iter().zip(evaluations).enumerate() {
        match evaluation {
            Ok(evaluation) => candidates.push(Candidate::evaluated(index, config, evaluation, &validation)),
            Err(e) => failed.push(Failed { index, config, error: e.to_string() }),
        }
    }
    let n_configs = candidates.len() + failed.len();
    if candidates.is_empty() {
        let first = failed.first().map_or_else(String::new, |f| format!(" (config {}: {})", f.index, f.error));
        return Err(CliError::Data(format!("every config failed{first}")));
    }
    if let Some(f) = failed.first() {
        eprintln!(
            "warning: {} of {n_configs} configs failed; the first, config {}: {}",
            failed.len(),
            f.index,
            f.error
        );
    }
    let ranking = spec.rank(candidates);
    let seconds = started.elapsed().as_secs_f64();
    phases.end("rank");

    print!("{}", table::leaderboard(&varied_keys(&spec), spec.rank_metric.name, &ranking.entries, 10));
    println!(
        "{n_configs} configs in {seconds:.2} s ({:.0} configs/s): {} ranked, {} excluded by constraints, {} failed",
        n_configs as f64 / seconds.max(1e-9),
        ranking.entries.len(),
        ranking.excluded.len(),
        failed.len()
    );
    let report = degradation(spec.rank_metric, &ranking.entries, 20);
    if let Some(out) = &args.out {
        let top = args.top.unwrap_or(usize::MAX).min(ranking.entries.len());
        let output = Output {
            sweep: &spec,
            n_configs,
            ranked: ranking.entries.len(),
            excluded_by_constraints: &ranking.excluded,
            failed,
            leaderboard: &ranking.entries[..top],
            degradation: report,
            seconds,
        };
        let json = serde_json::to_vec_pretty(&output).expect("rankings serialize");
        std::fs::write(out, json).map_err(CliError::io(out))?;
        println!("ranking written to {}", out.display());
    }
    phases.end("write");
    if args.timings {
        eprintln!("{phases}");
    }
    Ok(())
}

/// The keys the sweep varies, for the table's columns: `space` keys, or every key a
/// `param_grid` entry sets (first appearance order).
pub(crate) fn varied_keys(spec: &SweepSpec) -> Vec<String> {
    match &spec.axes {
        Axes::Space(axes) => axes.iter().map(|a| a.key.name()).collect(),
        Axes::ParamGrid(entries) => {
            let mut keys: Vec<String> = Vec::new();
            for k in entries.iter().flat_map(|e| e.keys()) {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            keys
        }
    }
}

/// Each group's bar series (one per symbol), loaded once per symbol set and timeframe, checked
/// against the union of the windows that use them. A group whose symbols' bars start or end at
/// different times has its configs' windows narrowed as `pipai run` does (with a warning), so
/// each entry's config is exactly what ran.
fn load_group_data(
    args: &SweepArgs,
    configs: &mut [JobConfig],
    groups: &[(pipai_engine::sweep::GroupKey, Vec<usize>)],
    phases: &mut Phases,
) -> Result<Vec<Vec<Bars>>, CliError> {
    let mut symbols: Vec<String> = Vec::new();
    for (key, _) in groups {
        for s in &key.symbols {
            if !symbols.contains(s) {
                symbols.push(s.clone());
            }
        }
    }
    let files = assign_files(&symbols, &args.data)?;
    let file_of = |s: &str| &files[symbols.iter().position(|x| x == s).expect("every group symbol is listed")];
    // The window each (symbol, timeframe) must cover: the union of its groups' windows.
    let mut windows: HashMap<(&str, Timeframe), (i64, i64)> = HashMap::new();
    for (key, _) in groups {
        for s in &key.symbols {
            let w = windows.entry((s, key.timeframe)).or_insert((key.start_ms, key.end_ms));
            *w = (w.0.min(key.start_ms), w.1.max(key.end_ms));
        }
    }
    // How many groups use each series: the last one takes it, earlier ones take a copy (one
    // group, the usual sweep, copies nothing: a year of 1m bars is 25 MB).
    let mut uses: HashMap<(&str, Timeframe), usize> = HashMap::new();
    for (key, _) in groups {
        for s in &key.symbols {
            *uses.entry((s, key.timeframe)).or_default() += 1;
        }
    }
    let mut loaded: HashMap<(&str, Timeframe), Bars> = HashMap::new();
    let mut data = Vec::with_capacity(groups.len());
    for (key, members) in groups {
        let mut series = Vec::with_capacity(key.symbols.len());
        for s in &key.symbols {
            let at = (s.as_str(), key.timeframe);
            if let Entry::Vacant(slot) = loaded.entry(at) {
                slot.insert(load_bars(s, file_of(s), key.timeframe, windows[&at], args.strict, phases)?);
            }
            let left = uses.get_mut(&at).expect("every group's series is counted");
            *left -= 1;
            let bars = if *left == 0 { loaded.remove(&at) } else { loaded.get(&at).cloned() };
            series.push(bars.expect("a series is loaded before its last use"));
        }
        let mut narrowed = configs[members[0]].clone();
        narrow_to_shared_span(&mut narrowed, &series)?;
        for &i in members {
            (configs[i].start, configs[i].end) = (narrowed.start, narrowed.end);
        }
        data.push(series);
    }
    Ok(data)
}

/// Evaluates every config with `batch::evaluate` on a pool of `threads` threads (default every
/// core), a group's configs [`batch::CHUNK`] at a time (the batch engine shares indicators across
/// the configs of a call and spreads them over the pool itself), with a progress bar (configs/s)
/// on a terminal. Results in sweep order.
fn evaluate_all(
    configs: &[JobConfig],
    groups: &[(pipai_engine::sweep::GroupKey, Vec<usize>)],
    data: &[Vec<Bars>],
    spec: &SweepSpec,
    threads: Option<usize>,
) -> Vec<Result<Evaluation, EngineError>> {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let validation = spec.validation.to_batch();
    let bar = ProgressBar::new(configs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} configs, {per_sec}, {elapsed} (eta {eta})")
            .expect("valid template"),
    );
    let mut results: Vec<Option<Result<Evaluation, EngineError>>> = vec![None; configs.len()];
    let mut evaluate = || {
        for ((_, members), bars) in groups.iter().zip(data) {
            for members in members.chunks(batch::CHUNK) {
                let chunk: Vec<JobConfig> = members.iter().map(|&i| configs[i].clone()).collect();
                for (&i, r) in members.iter().zip(batch::evaluate(&chunk, bars, &validation)) {
                    results[i] = Some(r);
                }
                bar.inc(members.len() as u64);
            }
        }
    };
    // One pool for the whole sweep: the engine's parallel loops run on it, so `--threads` bounds
    // them (the global pool, the default, has a thread per core).
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(evaluate),
        Err(_) => evaluate(),
    }
    bar.finish_and_clear();
    results.into_iter().map(|r| r.expect("every config evaluated")).collect()
}
