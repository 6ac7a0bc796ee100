//! Many configs of one sweep on the same bars: what a leaderboard needs of each (its metrics,
//! and with validation its out-of-sample metrics), never the equity curve or the trades.
//!
//! Contract: for every config, `evaluate(..)[i].in_sample` equals, string for string, the
//! metrics of [`crate::run`] with the in-sample config [`Validation::in_sample_config`] gives, and
//! `out_of_sample` is the chain of [`crate::run_warm`] over the test windows
//! ([`Validation::test_configs`], warmed up from the job window's start) that
//! `docs/metrics.md` ("Out-of-sample validation") defines.
//!
//! How: the configs of a group on the same window share the bars, checked once, and are
//! advanced side by side a segment of [`SEGMENT`] bars at a time (so each segment's bars are read
//! from memory once for the whole chunk, not once per config), on all cores (rayon). The signal
//! templates (`tpl_ma_cross`, `tpl_breakout`, `tpl_rsi_reversion`) also share their indicators:
//! the closes' running sum is computed once per group, and per chunk of at most [`CHUNK`] configs
//! (sorted by their indicator parameters) each distinct moving-average length, Donchian lookback
//! and RSI period once, into segment buffers every config of the chunk reads. Per config remain
//! the events (a comparison of two shared series, or a threshold) and the fill / position loop —
//! the job's own loop as a value ([`SignalSim`], [`RotationSim`], [`GridSim`]), fed the same floats — whose
//! equity goes to a metrics-only curve: no per-bar equity, no trade list (running sums,
//! [`TradeStats`]). One pass over the window per config gives the in-sample run and every test
//! window (they tile the window). `tpl_momentum_rotation` shares the bars only (its momentum is
//! read at rebalances, per config), and so does `tpl_grid` (no indicator).
//!
//! Any config whose window has a bar the job would refuse, or that the engine cannot take (a
//! moving-average cross with `fast >= slow`), runs through the job's own loops
//! ([`evaluate_one`]), in parallel across configs, and gets the job's result or error exactly.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, TimeZone, Utc};
use rayon::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::curve::Curve;
use crate::grid::{GridParams, GridSim};
use crate::metrics::{self, RunFigures, TradeStats};
use crate::result::{Metrics, StructuredMetrics};
use crate::rotation::{RotationParams, RotationSim};
use crate::signals::{rsi_event, Breakout, RsiSeries, Signal, CROSSING, DOWN, NONE, UP};
use crate::sim::{BarsView, Execution, SignalSim, SimEnd, Sizing, BLOCK};
use crate::templates::{Direction, StrategyParams};
use crate::{Bars, EngineError, JobConfig, NoObserver};

/// Configs evaluated side by side: their state and the chunk's shared indicator buffers bound
/// the memory, whatever the number of configs.
pub const CHUNK: usize = 1024;

/// Bars per segment: the shared indicator buffers hold one segment of each distinct series.
pub const SEGMENT: usize = 8 * BLOCK;

/// How a sweep splits the job window into in-sample and out-of-sample parts (API.md, Sweeps).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Validation {
    /// The whole window is in sample; no `oos_metrics`.
    #[default]
    None,
    /// Train first, test after: the last `test_fraction` of the window is the test window.
    Holdout { test_fraction: Decimal },
    /// `folds` consecutive test windows at the end of the window, each after its train window
    /// (anchored: train starts at the window start; rolling: fixed-length train).
    WalkForward { folds: u32, test_fraction: Decimal, anchored: bool },
}

/// What a sweep keeps of one config's run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub metrics: Metrics,
    pub structured_metrics: StructuredMetrics,
}

/// One config's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Over the in-sample window (the whole window without validation).
    pub in_sample: Scores,
    /// Aggregated over the test windows (docs/metrics.md); `None` without validation.
    pub out_of_sample: Option<Scores>,
}

/// The windows of a validation, in milliseconds, both ends included (as a job's `start` and
/// `end`): the in-sample window, then the test windows in time order. They tile the job window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub in_sample: (i64, i64),
    pub tests: Vec<(i64, i64)>,
}

/// A walk-forward's sizes in bar slots of the window: the first train window's (`train`) and
/// each test window's (`test`), with `train + folds * test` = `slots`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folds {
    pub train: u64,
    pub test: u64,
}

/// The fold arithmetic of `docs/metrics.md`: `test = floor(slots * f / (1 - f + folds * f))`,
/// `train = slots - folds * test`, so that `test / (train + test)` is `f` (up to the flooring)
/// and the first train window starts at the window's start. `None` when a window would be
/// empty or the fraction is not strictly between 0 and 1.
pub fn folds(slots: u64, folds: u32, test_fraction: Decimal) -> Option<Folds> {
    let f = test_fraction;
    if folds == 0 || f <= Decimal::ZERO || f >= Decimal::ONE {
        return None;
    }
    let denominator = Decimal::ONE - f + Decimal::from(folds) * f;
    let test = (Decimal::from(slots).checked_mul(f)? / denominator).floor().to_u64()?;
    let train = slots.checked_sub(test.checked_mul(folds as u64)?)?;
    (test >= 1 && train >= 1).then_some(Folds { train, test })
}

impl Validation {
    /// The windows of a job window `start_ms..=end_ms` of `bar_ms` bars. Bar slots are the
    /// timeframe's open times (multiples of `bar_ms`) inside the window, whether or not the data
    /// has a bar there: the split is by time, on bar boundaries.
    pub fn split(&self, start_ms: i64, end_ms: i64, bar_ms: i64) -> Result<Split, EngineError> {
        let (count, test_fraction) = match self {
            Validation::None => return Ok(Split { in_sample: (start_ms, end_ms), tests: Vec::new() }),
            Validation::Holdout { test_fraction } => (1, *test_fraction),
            Validation::WalkForward { folds, test_fraction, .. } => (*folds, *test_fraction),
        };
        let first = start_ms.div_euclid(bar_ms) * bar_ms + if start_ms.rem_euclid(bar_ms) == 0 { 0 } else { bar_ms };
        let last = end_ms.div_euclid(bar_ms) * bar_ms;
        let slots = if last < first { 0 } else { ((last - first) / bar_ms + 1) as u64 };
        let Some(Folds { train, test }) = folds(slots, count, test_fraction) else {
            return Err(EngineError::Data(format!(
                "the window's {slots} bar(s) are too few for {count} test window(s) of test_fraction {test_fraction}"
            )));
        };
        let slot = |k: u64| first + k as i64 * bar_ms;
        let tests = (0..count as u64)
            .map(|j| {
                let from = slot(train + j * test);
                let to = if j + 1 == count as u64 { end_ms } else { slot(train + (j + 1) * test) - 1 };
                (from, to)
            })
            .collect();
        Ok(Split { in_sample: (start_ms, slot(train) - 1), tests })
    }

    fn split_of(&self, config: &JobConfig) -> Result<Split, EngineError> {
        self.split(config.start_ms(), config.end_ms(), config.timeframe.millis())
    }

    /// The config whose job run gives an entry's in-sample metrics exactly: `config` with its
    /// window narrowed to the in-sample part (the whole window without validation, or when the
    /// window is too short to split, which [`evaluate`] reports as an error).
    pub fn in_sample_config(&self, config: &JobConfig) -> JobConfig {
        match self.split_of(config) {
            Ok(split) => with_window(config, split.in_sample),
            Err(_) => config.clone(),
        }
    }

    /// The configs of the test windows, in time order (none without validation): each is run
    /// with [`crate::run_warm`] from `config`'s start.
    pub fn test_configs(&self, config: &JobConfig) -> Result<Vec<JobConfig>, EngineError> {
        Ok(self.split_of(config)?.tests.into_iter().map(|w| with_window(config, w)).collect())
    }
}

/// `config` over the window `from..=to` (milliseconds).
fn with_window(config: &JobConfig, (from, to): (i64, i64)) -> JobConfig {
    let time = |ms: i64| -> DateTime<Utc> { Utc.timestamp_millis_opt(ms).single().unwrap_or_default() };
    JobConfig { start: time(from), end: time(to), ..config.clone() }
}

/// Evaluates every config (all of one template, on the same symbols and timeframe) on `data`
/// (one bar series per symbol, covering the configs' windows). Results are in `configs` order.
pub fn evaluate(configs: &[JobConfig], data: &[Bars], validation: &Validation) -> Vec<Result<Evaluation, EngineError>> {
    evaluate_until(configs, data, validation, &|| false)
}

/// [`evaluate`], asking `stop` before each segment of [`SEGMENT`] bars (and before each config
/// run through the job's loops): once it answers `true`, the configs not finished yet are
/// `Err(EngineError::Cancelled)` (a sweep's cancel reaching a running chunk).
pub fn evaluate_until(
    configs: &[JobConfig],
    data: &[Bars],
    validation: &Validation,
    stop: &(dyn Fn() -> bool + Sync),
) -> Vec<Result<Evaluation, EngineError>> {
    let mut out: Vec<Option<Result<Evaluation, EngineError>>> = configs.iter().map(|_| None).collect();
    let mut groups: BTreeMap<(i64, i64, i64), Vec<Job<'_>>> = BTreeMap::new();
    let mut reference = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        match Job::of(index, config, data, validation) {
            Some(job) => groups.entry((config.start_ms(), config.end_ms(), job.bar_ms)).or_default().push(job),
            None => reference.push(index),
        }
    }
    for ((start, end, _), jobs) in groups {
        match Group::new(data, start, end, &jobs[0].split) {
            Some(group) => {
                for (index, evaluation) in group.evaluate(jobs, stop) {
                    out[index] = Some(Ok(evaluation));
                }
            }
            None => reference.extend(jobs.iter().map(|j| j.index)),
        }
    }
    let referenced: Vec<_> =
        reference.par_iter().filter(|_| !stop()).map(|&i| (i, evaluate_one(&configs[i], data, validation))).collect();
    for (i, evaluation) in referenced {
        out[i] = Some(evaluation);
    }
    out.into_iter().map(|e| e.unwrap_or(Err(EngineError::Cancelled))).collect()
}

/// One config, through the job's own loops: [`crate::run`]'s simulation for the in-sample
/// window and [`crate::run_warm`]'s for each test window.
pub fn evaluate_one(config: &JobConfig, data: &[Bars], validation: &Validation) -> Result<Evaluation, EngineError> {
    let split = validation.split_of(config)?;
    let in_sample_config = with_window(config, split.in_sample);
    let sim = crate::simulate(&in_sample_config, data, in_sample_config.start_ms(), &mut NoObserver)?;
    let raw = &sim.raw;
    let in_sample = Scores::of(&metrics::compute(sim.capital, raw));
    if split.tests.is_empty() {
        return Ok(Evaluation { in_sample, out_of_sample: None });
    }
    let mut chain = Chain::new(sim.capital, config.timeframe.millis());
    let mut scaled = [0.0; BLOCK];
    for window in split.tests {
        let test = with_window(config, window);
        let sim = crate::simulate(&test, data, config.start_ms(), &mut NoObserver)?;
        let times = &data[0].open_time[sim.windows[0].clone()];
        for (time, equity) in times.chunks(BLOCK).zip(sim.raw.equity.chunks(BLOCK)) {
            chain.extend(time, equity, &mut scaled);
        }
        let final_equity = sim.raw.equity.last().copied().unwrap_or(sim.capital);
        let stats = TradeStats::of(&sim.raw.trades);
        chain.end_fold(final_equity, &stats, sim.raw.traded_notional, sim.raw.bars_in_market);
    }
    Ok(Evaluation { in_sample, out_of_sample: Some(chain.finish()) })
}

impl Scores {
    fn of(values: &metrics::MetricValues) -> Scores {
        Scores { metrics: Metrics::from_values(values), structured_metrics: StructuredMetrics::from_values(values) }
    }

    fn of_sim(capital: f64, end: &SimEnd<TradeStats>) -> Scores {
        Scores::of(&metrics::compute_figures(
            capital,
            &RunFigures {
                daily: &end.curve.daily,
                final_equity: end.final_equity,
                max_drawdown: end.curve.max_drawdown,
                max_drawdown_ms: end.curve.max_drawdown_ms,
                trades: &end.trades,
                traded_notional: end.traded,
                bars_in_market: end.in_market,
            },
        ))
    }
}

/// The out-of-sample account (`docs/metrics.md`): the test windows' equity chained, each window's
/// per-bar equity scaled by the chained equity at its start over the capital.
struct Chain {
    capital: f64,
    bar_ms: i64,
    curve: Option<Curve>,
    scale: f64,
    equity: f64,
    trades: TradeStats,
    traded: f64,
    in_market: u64,
}

impl Chain {
    fn new(capital: f64, bar_ms: i64) -> Chain {
        Chain {
            capital,
            bar_ms,
            curve: None,
            scale: 1.0,
            equity: capital,
            trades: TradeStats::default(),
            traded: 0.0,
            in_market: 0,
        }
    }

    /// The next bars of the current test window, opening at `time`, with the window's own equity.
    fn extend(&mut self, time: &[i64], equity: &[f64], scaled: &mut [f64; BLOCK]) {
        let Some(&first) = time.first() else { return };
        let scaled = &mut scaled[..time.len()];
        for (s, &e) in scaled.iter_mut().zip(equity) {
            *s = e * self.scale;
        }
        let (capital, bar_ms) = (self.capital, self.bar_ms);
        self.curve.get_or_insert_with(|| Curve::metrics_only(capital, first, first, bar_ms)).extend(time, scaled);
    }

    /// The end of a test window whose account ended at `final_equity` (after its end-of-window
    /// close) with these trades.
    fn end_fold(&mut self, final_equity: f64, trades: &TradeStats, traded: f64, in_market: u64) {
        let scale = self.scale;
        self.equity = final_equity * scale;
        if let Some(curve) = &mut self.curve {
            curve.set_last(self.equity);
        }
        let t = &mut self.trades;
        t.trades += trades.trades;
        t.wins += trades.wins;
        t.losses += trades.losses;
        t.pnl += trades.pnl * scale;
        t.win_pnl += trades.win_pnl * scale;
        t.loss_pnl += trades.loss_pnl * scale;
        t.returns += trades.returns;
        t.duration_ms += trades.duration_ms;
        self.traded += traded * scale;
        self.in_market += in_market;
        self.scale = self.equity / self.capital;
    }

    fn finish(self) -> Scores {
        let summary = self.curve.map(|c| c.finish(self.equity));
        let (daily, max_drawdown, max_drawdown_ms) =
            summary.map(|s| (s.daily, s.max_drawdown, s.max_drawdown_ms)).unwrap_or_default();
        Scores::of(&metrics::compute_figures(
            self.capital,
            &RunFigures {
                daily: &daily,
                final_equity: self.equity,
                max_drawdown,
                max_drawdown_ms,
                trades: &self.trades,
                traded_notional: self.traded,
                bars_in_market: self.in_market,
            },
        ))
    }
}

/// A signal template's indicator, by the parameters its shared series depend on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Indicator {
    MaCross {
        fast: usize,
        slow: usize,
    },
    Breakout {
        lookback: usize,
    },
    Rsi {
        period: usize,
        oversold: f64,
        overbought: f64,
    },
    /// Momentum rotation: nothing shared but the bars (its momentum is read at rebalances only).
    Rotation {
        lookback: usize,
        top_n: usize,
        rebalance_every: usize,
    },
    /// A grid: nothing shared but the bars.
    Grid(GridParams),
}

impl Indicator {
    /// Sort key: configs sharing series end up in the same chunk.
    fn key(&self) -> (usize, usize) {
        match *self {
            Indicator::MaCross { fast, slow } => (fast, slow),
            Indicator::Breakout { lookback } => (lookback, 0),
            Indicator::Rsi { period, .. } => (period, 0),
            Indicator::Rotation { lookback, .. } => (lookback, 0),
            Indicator::Grid(p) => (p.levels, 0),
        }
    }
}

/// A config the batch engine takes (any template, a signal template on one symbol, a moving-average
/// cross with `fast < slow`) with a valid split.
struct Job<'a> {
    index: usize,
    config: &'a JobConfig,
    indicator: Indicator,
    direction: Direction,
    fraction: f64,
    capital: f64,
    bar_ms: i64,
    split: Split,
}

impl<'a> Job<'a> {
    fn of(index: usize, config: &'a JobConfig, data: &[Bars], validation: &Validation) -> Option<Job<'a>> {
        if config.symbols.len() != data.len() || data.is_empty() {
            return None;
        }
        let params = config.strategy_params().ok()?;
        if data.len() != 1 && !matches!(params, StrategyParams::MomentumRotation { .. }) {
            return None;
        }
        let (indicator, direction, fraction) = match params {
            StrategyParams::MaCross { fast, slow, direction, fraction } if fast < slow => {
                (Indicator::MaCross { fast, slow }, direction, fraction)
            }
            StrategyParams::Breakout { lookback, direction, fraction } => {
                (Indicator::Breakout { lookback }, direction, fraction)
            }
            StrategyParams::RsiReversion { period, oversold, overbought, direction, fraction } => {
                (Indicator::Rsi { period, oversold, overbought }, direction, fraction)
            }
            StrategyParams::MomentumRotation { lookback, top_n, rebalance_every, fraction } => {
                (Indicator::Rotation { lookback, top_n, rebalance_every }, Direction::Long, fraction)
            }
            StrategyParams::Grid { levels, lower, upper, spacing } => {
                (Indicator::Grid(GridParams { levels, lower, upper, spacing }), Direction::Long, 1.0)
            }
            StrategyParams::MaCross { .. } => return None,
        };
        let split = validation.split_of(config).ok()?;
        let (capital, bar_ms) = (crate::capital_of(config), config.timeframe.millis());
        Some(Job { index, config, indicator, direction, fraction, capital, bar_ms, split })
    }
}

/// The bars of a group of configs on one window, checked once, and the window's parts.
struct Group<'a> {
    /// The first symbol's window.
    view: BarsView<'a>,
    /// The in-sample window, then the test windows, as ranges of window bars; they tile it.
    parts: Vec<Range<usize>>,
    /// Each part's bars of every symbol (rotation's loop reads them by part-relative index).
    part_views: Vec<Vec<BarsView<'a>>>,
}

impl<'a> Group<'a> {
    /// `None` when a job would fail (an empty part, a bad bar): its configs take the job's path,
    /// which reports the job's error.
    fn new(data: &'a [Bars], start: i64, end: i64, split: &Split) -> Option<Group<'a>> {
        let mut windows = Vec::with_capacity(data.len());
        for bars in data {
            bars.check_columns().ok()?;
            let window = bars.window(start, end);
            let view = BarsView::new(bars, window.clone());
            // Aligned symbols (the same open times), every bar valid.
            let aligned =
                windows.first().is_none_or(|w: &Range<usize>| data[0].open_time[w.clone()] == *view.open_time);
            if view.is_empty() || !aligned || !view.all_valid() {
                return None;
            }
            windows.push(window);
        }
        let (bars, window) = (&data[0], windows[0].clone());
        let mut parts = Vec::new();
        let mut at = window.start;
        for &(from, to) in std::iter::once(&split.in_sample).chain(&split.tests) {
            let part = bars.window(from, to);
            if part.is_empty() || part.start != at {
                return None;
            }
            at = part.end;
            parts.push(part.start - window.start..part.end - window.start);
        }
        let part_views = parts
            .iter()
            .map(|p| {
                let symbols = data.iter().zip(&windows);
                symbols.map(|(bars, w)| BarsView::new(bars, w.start + p.start..w.start + p.end)).collect()
            })
            .collect();
        let view = BarsView::new(bars, window.clone());
        (at == window.end).then_some(Group { view, parts, part_views })
    }

    /// Evaluates the jobs (all on this group's window): `(config index, evaluation)`.
    fn evaluate(self, mut jobs: Vec<Job<'_>>, stop: &(dyn Fn() -> bool + Sync)) -> Vec<(usize, Evaluation)> {
        jobs.sort_by_key(|j| j.indicator.key());
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(CHUNK) {
            out.extend(self.chunk(chunk, stop));
        }
        out
    }

    /// The chunk's evaluations, or none when `stop` answered `true` before a segment.
    fn chunk(&self, jobs: &[Job<'_>], stop: &(dyn Fn() -> bool + Sync)) -> Vec<(usize, Evaluation)> {
        let mut shared = Shared::new(self, jobs);
        let mut states: Vec<State<'_, '_>> = jobs.iter().map(|job| State::new(job, &shared)).collect();
        let n = self.view.len();
        for from in (0..n).step_by(SEGMENT) {
            if stop() {
                return Vec::new();
            }
            let to = (from + SEGMENT).min(n);
            shared.compute(self, from, to);
            let shared = &shared;
            states.par_iter_mut().with_min_len(4).for_each(|state| state.advance(self, shared, from, to));
        }
        states.into_iter().map(|s| (s.job.index, s.finish())).collect()
    }
}

/// The distinct indicator series of a chunk's configs, one segment at a time.
struct Shared<'a> {
    /// Moving-average lengths and their means over the segment (NaN where undefined).
    lengths: Vec<usize>,
    means: Vec<Vec<f64>>,
    /// The closes' running sum (`C[i]` = close[0] + ... + close[i], added in bar order: the
    /// running sum of `MaCross`) of the bars `from - longest .. to` of the segment `from..to`
    /// (`longest` = the last of `lengths`; entries before the window's first bar unused), and
    /// `C` at the segment's last bar. Kept a segment at a time, not for the whole window: no
    /// window-sized allocation (a year of 1m bars: 4 MB of page faults) and no serial pass
    /// before the first segment.
    sums: Vec<f64>,
    running: f64,
    /// Donchian lookbacks, their running state and events over the segment.
    lookbacks: Vec<usize>,
    breakouts: Vec<(Breakout<'a>, Vec<u8>)>,
    /// RSI periods, their running state and values over the segment.
    periods: Vec<usize>,
    rsi: Vec<(RsiSeries, Vec<f64>)>,
}

fn distinct(values: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = values.collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl<'a> Shared<'a> {
    fn new(group: &Group<'a>, jobs: &[Job<'_>]) -> Shared<'a> {
        let lengths = distinct(jobs.iter().flat_map(|j| match j.indicator {
            Indicator::MaCross { fast, slow } => vec![fast, slow],
            _ => vec![],
        }));
        let lookbacks = distinct(jobs.iter().filter_map(|j| match j.indicator {
            Indicator::Breakout { lookback } => Some(lookback),
            _ => None,
        }));
        let periods = distinct(jobs.iter().filter_map(|j| match j.indicator {
            Indicator::Rsi { period, .. } => Some(period),
            _ => None,
        }));
        let v = &group.view;
        let longest = lengths.last().copied().unwrap_or(0);
        Shared {
            means: lengths.iter().map(|_| vec![0.0; SEGMENT]).collect(),
            sums: Vec::with_capacity(if longest > 0 { longest + SEGMENT } else { 0 }),
            running: 0.0,
            lengths,
            breakouts: lookbacks.iter().map(|&l| (Breakout::new(v.high, v.low, l), vec![NONE; SEGMENT])).collect(),
            lookbacks,
            rsi: periods.iter().map(|&p| (RsiSeries::new(p), vec![0.0; SEGMENT])).collect(),
            periods,
        }
    }

    fn index(values: &[usize], value: usize) -> usize {
        values.binary_search(&value).unwrap_or(0)
    }

    /// Every series over the window bars `from..to`.
    fn compute(&mut self, group: &Group<'a>, from: usize, to: usize) {
        let v = &group.view;
        let longest = self.lengths.last().copied().unwrap_or(0);
        if longest > 0 {
            // The previous segment's last `longest` sums move to the front (zeros before the
            // first segment), then this segment's are added on.
            let kept = self.sums.len().saturating_sub(longest);
            self.sums.copy_within(kept.., 0);
            self.sums.resize(longest, 0.0);
            let mut running = self.running;
            self.sums.extend(v.close[from..to].iter().map(|&c| {
                running += c;
                running
            }));
            self.running = running;
        }
        // `C[i]` is `sums[longest + i - from]`.
        let sums = &self.sums;
        let lengths = &self.lengths;
        self.means.par_iter_mut().zip(lengths.par_iter()).for_each(|(means, &w)| {
            // sma_w[i] = (C[i] - C[i-w]) / w with C[-1] = 0: the floats `MaCross` computes.
            let wf = w as f64;
            let means = &mut means[..to - from];
            // Bars before `w`: undefined, then C[w-1] - 0; from bar `w` on, one vectorizable loop.
            let steady = w.clamp(from, to) - from;
            for (k, mean) in means[..steady].iter_mut().enumerate() {
                let i = from + k;
                *mean = if i + 1 < w { f64::NAN } else { (sums[longest + k] - 0.0) / wf };
            }
            if steady < to - from {
                // From bar `from + steady` (>= w): C[i] and C[i - w], both in the buffer (w <= longest).
                let now = &sums[longest + steady..longest + to - from];
                let before = &sums[longest + steady - w..];
                for ((mean, &s), &b) in means[steady..].iter_mut().zip(now).zip(before) {
                    *mean = (s - b) / wf;
                }
            }
        });
        self.breakouts.par_iter_mut().for_each(|(signal, events)| {
            signal.block(from, &v.high[from..to], &v.low[from..to], &v.close[from..to], &mut events[..to - from]);
        });
        self.rsi.par_iter_mut().for_each(|(series, values)| {
            series.block(from, &v.close[from..to], &mut values[..to - from]);
        });
    }
}

/// Where a config's events come from.
#[derive(Clone, Copy)]
enum Source {
    MaCross {
        fast: usize,
        slow: usize,
        slow_len: usize,
        prev: usize,
    },
    Breakout {
        series: usize,
    },
    Rsi {
        series: usize,
        oversold: f64,
        overbought: f64,
    },
    /// No events (rotation, grid).
    None,
}

/// A config's simulation of the current part.
enum Sim {
    Signal(SignalSim<Execution, TradeStats>),
    Rotation(RotationSim<Execution, TradeStats>),
    Grid(GridSim<Execution, TradeStats>),
}

/// One config's progress through the window.
struct State<'j, 'c> {
    job: &'j Job<'c>,
    source: Source,
    /// The part being simulated (0: in sample, then the test windows) and its simulation.
    part: usize,
    sim: Option<Sim>,
    in_sample: Option<Scores>,
    chain: Chain,
}

impl<'j, 'c> State<'j, 'c> {
    fn new(job: &'j Job<'c>, shared: &Shared<'_>) -> State<'j, 'c> {
        let source = match job.indicator {
            Indicator::MaCross { fast, slow } => Source::MaCross {
                fast: Shared::index(&shared.lengths, fast),
                slow: Shared::index(&shared.lengths, slow),
                slow_len: slow,
                prev: 1,
            },
            Indicator::Breakout { lookback } => Source::Breakout { series: Shared::index(&shared.lookbacks, lookback) },
            Indicator::Rsi { period, oversold, overbought } => {
                Source::Rsi { series: Shared::index(&shared.periods, period), oversold, overbought }
            }
            Indicator::Rotation { .. } | Indicator::Grid(_) => Source::None,
        };
        State { job, source, part: 0, sim: None, in_sample: None, chain: Chain::new(job.capital, job.bar_ms) }
    }

    /// The window bars `from..to` (a segment), a block at a time.
    fn advance(&mut self, group: &Group<'_>, shared: &Shared<'_>, from: usize, to: usize) {
        let mut events = [NONE; BLOCK];
        let mut equity = [0.0; BLOCK];
        let mut scaled = [0.0; BLOCK];
        for b in (from..to).step_by(BLOCK) {
            let e = (b + BLOCK).min(to);
            let events = &mut events[..e - b];
            self.events(shared, b, b - from, events);
            let mut at = b;
            while at < e {
                let part = group.parts[self.part].clone();
                let v = &group.view;
                let job = self.job;
                let views = &group.part_views[self.part];
                let sim = self.sim.get_or_insert_with(|| {
                    let curve = Curve::metrics_only(
                        job.capital,
                        v.open_time[part.start],
                        v.open_time[part.end - 1],
                        job.bar_ms,
                    );
                    let exec = crate::execution(job.config);
                    match job.indicator {
                        Indicator::Rotation { lookback, top_n, rebalance_every } => {
                            let p = RotationParams { lookback, top_n, rebalance_every, fraction: job.fraction };
                            let trades = TradeStats::default();
                            Sim::Rotation(RotationSim::new(views.len(), curve, job.capital, &p, exec, trades))
                        }
                        Indicator::Grid(p) => {
                            let (time, open) = (v.open_time[part.start], v.open[part.start]);
                            Sim::Grid(GridSim::new(&p, time, open, curve, job.capital, exec, TradeStats::default()))
                        }
                        _ => {
                            let sizing = Sizing { fraction: job.fraction };
                            let trades = TradeStats::default();
                            Sim::Signal(SignalSim::new(curve, job.direction, job.capital, sizing, exec, trades))
                        }
                    }
                });
                let stop = e.min(part.end);
                let (r, k) = (at..stop, at - b..stop - b);
                let time = &v.open_time[r.clone()];
                let equity = &mut equity[..stop - at];
                match sim {
                    Sim::Signal(sim) => {
                        let (open, high, low, close) =
                            (&v.open[r.clone()], &v.high[r.clone()], &v.low[r.clone()], &v.close[r]);
                        sim.block(at - part.start, time, open, high, low, close, &events[k], equity);
                    }
                    Sim::Rotation(sim) => sim.block(views, at - part.start, stop - part.start, equity),
                    Sim::Grid(sim) => {
                        let (open, high, low, close) =
                            (&v.open[r.clone()], &v.high[r.clone()], &v.low[r.clone()], &v.close[r]);
                        sim.block(time, open, high, low, close, equity);
                    }
                }
                if self.part > 0 {
                    self.chain.extend(time, equity, &mut scaled);
                }
                at = stop;
                if stop == part.end {
                    let last = part.end - 1;
                    let end = self.sim.take().map(|sim| match sim {
                        Sim::Signal(s) => s.finish(v.open_time[last], v.close[last], part.len(), job.bar_ms),
                        Sim::Rotation(s) => s.finish(views, job.bar_ms),
                        Sim::Grid(s) => s.finish(v.open_time[last], v.close[last], job.bar_ms),
                    });
                    if let Some(end) = end {
                        if self.part == 0 {
                            self.in_sample = Some(Scores::of_sim(job.capital, &end));
                        } else {
                            self.chain.end_fold(end.final_equity, &end.trades, end.traded, end.in_market);
                        }
                    }
                    self.part += 1;
                }
            }
        }
    }

    /// The events at the closes of window bars `b..b + n`, the block at `k` of the segment.
    #[inline]
    fn events(&mut self, shared: &Shared<'_>, b: usize, k: usize, events: &mut [u8]) {
        let n = events.len();
        match &mut self.source {
            Source::MaCross { fast, slow, slow_len, prev } => {
                let (fast, slow) = (&shared.means[*fast][k..k + n], &shared.means[*slow][k..k + n]);
                ma_events(b, fast, slow, *slow_len, prev, events);
            }
            Source::Breakout { series } => events.copy_from_slice(&shared.breakouts[*series].1[k..k + n]),
            Source::Rsi { series, oversold, overbought } => {
                let (oversold, overbought) = (*oversold, *overbought);
                for (event, &r) in events.iter_mut().zip(&shared.rsi[*series].1[k..k + n]) {
                    *event = rsi_event(r, oversold, overbought);
                }
            }
            Source::None => {}
        }
    }

    fn finish(self) -> Evaluation {
        let in_sample = self.in_sample.unwrap_or_else(unreachable_scores);
        let out_of_sample = (!self.job.split.tests.is_empty()).then(|| self.chain.finish());
        Evaluation { in_sample, out_of_sample }
    }
}

/// Never used: every part of a group's window is simulated before its states finish.
fn unreachable_scores() -> Scores {
    Scores::of(&metrics::MetricValues::default())
}

/// `MaCross`'s events from shared means: the sign of fast - slow, compared with the previous
/// bar's from bar `slow` on (the first sign is bar `slow - 1`'s). Past the warm-up, 64 bars at a
/// time as bit masks ([`above_below`]): up where fast turns above slow from at or below it (the
/// sign turns positive from <= 0), down where it turns below from at or above it (negative from
/// >= 0), `CROSSING`'s rule; the block's events are cleared, then the few crossings set.
#[inline]
fn ma_events(first: usize, fast: &[f64], slow: &[f64], slow_len: usize, prev: &mut usize, events: &mut [u8]) {
    let mut p = *prev;
    if first >= slow_len {
        events.fill(NONE);
        // Bit 0 of each: the bar before the 64 (above: sign 2, below: sign 0).
        let (mut was_above, mut was_below) = (u64::from(p == 2), u64::from(p == 0));
        for ((events, fast), slow) in events.chunks_mut(64).zip(fast.chunks(64)).zip(slow.chunks(64)) {
            let (above, below) = above_below(fast, slow);
            let mut up = above & !((above << 1) | was_above);
            let mut down = below & !((below << 1) | was_below);
            let last = events.len() - 1;
            (was_above, was_below) = ((above >> last) & 1, (below >> last) & 1);
            while up != 0 {
                events[up.trailing_zeros() as usize] = UP;
                up &= up - 1;
            }
            while down != 0 {
                events[down.trailing_zeros() as usize] = DOWN;
                down &= down - 1;
            }
        }
        p = 1 + was_above as usize - was_below as usize;
    } else {
        for (k, ((event, &f), &s)) in events.iter_mut().zip(fast).zip(slow).enumerate() {
            let i = first + k;
            let now = 1 + (f > s) as usize - (f < s) as usize;
            *event = if i >= slow_len { CROSSING[(3 * p + now) & 15] } else { NONE };
            if i + 1 >= slow_len {
                p = now;
            }
        }
    }
    *prev = p;
}

/// For up to 64 bars, bit `j` of the masks: `fast[j] > slow[j]`, `fast[j] < slow[j]` (both
/// clear when equal or NaN, the sign 1 of `1 + (f > s) - (f < s)`).
#[inline]
fn above_below(fast: &[f64], slow: &[f64]) -> (u64, u64) {
    let n = fast.len().min(slow.len()).min(64);
    let (fast, slow) = (&fast[..n], &slow[..n]);
    let (mut above, mut below) = (0u64, 0u64);
    // Bars compared two at a time (x86-64), the rest one at a time.
    #[cfg(not(target_arch = "x86_64"))]
    let paired = 0;
    #[cfg(target_arch = "x86_64")]
    let paired = {
        use std::arch::x86_64::{_mm_cmpgt_pd, _mm_cmplt_pd, _mm_loadu_pd, _mm_movemask_pd};
        for j in 0..n / 2 {
            // SAFETY: SSE2 is part of x86_64; `2 * j + 1 < n` reads inside both slices.
            let (a, b) = unsafe {
                let (f, s) = (_mm_loadu_pd(fast.as_ptr().add(2 * j)), _mm_loadu_pd(slow.as_ptr().add(2 * j)));
                (_mm_movemask_pd(_mm_cmpgt_pd(f, s)), _mm_movemask_pd(_mm_cmplt_pd(f, s)))
            };
            above |= (a as u64) << (2 * j);
            below |= (b as u64) << (2 * j);
        }
        n / 2 * 2
    };
    for j in paired..n {
        above |= u64::from(fast[j] > slow[j]) << j;
        below |= u64::from(fast[j] < slow[j]) << j;
    }
    (above, below)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `MaCross`'s rule bar by bar (`CROSSING`), as the job's loop applies it.
    fn reference(first: usize, fast: &[f64], slow: &[f64], slow_len: usize, prev: &mut usize) -> Vec<u8> {
        let mut events = vec![NONE; fast.len()];
        for (k, event) in events.iter_mut().enumerate() {
            let i = first + k;
            let now = 1 + (fast[k] > slow[k]) as usize - (fast[k] < slow[k]) as usize;
            *event = if i >= slow_len { CROSSING[(3 * *prev + now) & 15] } else { NONE };
            if i + 1 >= slow_len {
                *prev = now;
            }
        }
        events
    }

    fn mean() -> impl Strategy<Value = f64> {
        // Few distinct values, so ties are common; NaN and both signs of zero too.
        prop_oneof![8 => (0..4u8).prop_map(f64::from), 1 => Just(f64::NAN), 1 => Just(-0.0)]
    }

    proptest! {
        #[test]
        fn ma_events_by_masks_are_the_bar_by_bar_rule(
            pairs in prop::collection::vec((mean(), mean()), 1..=BLOCK),
            first in 0usize..200,
            slow_len in 1usize..100,
            prev in 0usize..3,
        ) {
            let (fast, slow): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
            let (mut p, mut q) = (prev, prev);
            let mut events = vec![7; fast.len()];
            ma_events(first, &fast, &slow, slow_len, &mut p, &mut events);
            prop_assert_eq!(events, reference(first, &fast, &slow, slow_len, &mut q));
            prop_assert_eq!(p, q);
        }
    }
}
