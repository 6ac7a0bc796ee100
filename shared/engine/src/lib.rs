//! PipAI backtest engine: pure, deterministic simulation. No AWS, no tokio, no I/O.
//!
//! The execution model (fills, fees, sizing, leverage, liquidation, end of window) is written
//! down in `docs/execution-model.md`, the templates in `docs/templates.md` and every metric in
//! `docs/metrics.md`; this crate implements exactly those pages.
//!
//! Entry point: [`run`] takes a validated [`JobConfig`] (see [`JobConfig::from_json_bytes`]) and
//! one [`Bars`] series per symbol, and returns a [`Backtest`]: the seed's `result` object in
//! decimals, plus the per-bar equity for the downloadable artifact.
//!
//! Floats: prices, quantities and cash are `f64` inside [`sim`], [`grid`], [`rotation`],
//! [`signals`] and [`metrics`]; everything crossing the crate boundary (config in, [`result`]
//! out) is `rust_decimal`.

// The loops index several parallel columns by bar number; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

pub mod bars;
pub mod batch;
pub mod benchmark;
pub mod config;
pub mod curve;
pub mod fees;
pub mod grid;
pub mod input;
pub mod metric_catalog;
pub mod metrics;
pub mod provenance;
pub mod result;
pub mod rotation;
pub mod signals;
pub mod sim;
pub mod strategy;
pub mod sweep;
pub mod templates;
pub mod time;

pub use bars::{Bar, Bars, BarsError, Timeframe};
pub use config::{FeeModel, FieldError, JobConfig};
pub use input::{parse_json_object_strict, quoted};
pub use result::BacktestResult;
pub use sim::{Control, NoObserver, Observer};
pub use strategy::StrategyConfig;

use rust_decimal::prelude::ToPrimitive;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::fees::FeeSchedule;
use crate::signals::Signal;
use crate::sim::{BarsView, Execution, RawRun, Sizing, Stop};
use crate::templates::StrategyParams;

/// Why a run did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The config does not validate (a job stored before a catalog change, say).
    #[error("invalid config: {0}")]
    Config(#[from] FieldError),
    /// The bars cannot be simulated: none in the window, misaligned symbols, bad prices.
    #[error("{0}")]
    Data(String),
    #[error("cancelled")]
    Cancelled,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    pub result: BacktestResult,
    /// Equity at each bar's close inside the window (the last after the end-of-window close).
    pub bar_equity: Vec<f64>,
    /// For each symbol, in `config.symbols` order, the index range of the simulated bars in that
    /// symbol's input series. The ranges differ when the series start at different bars, but
    /// select the same open times (the run refuses misaligned symbols), one per `bar_equity`
    /// entry.
    pub windows: Vec<Range<usize>>,
}

impl Backtest {
    /// The open time of each simulated bar (parallel to `bar_equity`), read from `data`, the
    /// series the run was given; `None` when `data` is not that.
    pub fn bar_open_times<'a>(&self, data: &'a [Bars]) -> Option<&'a [i64]> {
        let times = data.first()?.open_time.get(self.windows.first()?.clone())?;
        (times.len() == self.bar_equity.len()).then_some(times)
    }
}

/// Runs `config` on `data`: one bar series per symbol, in `config.symbols` order, covering at
/// least the window (bars outside `[start, end]` are ignored).
///
/// The window's bars are checked (`Bars::validate_range`'s rules, volume aside) by the simulation
/// loop as it reads them rather than in a pass of their own; the errors are the ones validating
/// first would give, symbol by symbol. The only difference a caller can see: progress may be
/// reported for the chunks before the one holding a bad bar.
pub fn run(config: &JobConfig, data: &[Bars], observer: &mut dyn Observer) -> Result<Backtest, EngineError> {
    run_warm(config, data, config.start_ms(), observer)
}

/// [`run`] with the indicators warmed up on the bars from `warmup_from_ms` to the window's start
/// (the bars before the window in `data`): the strategy's signals inside the window are the ones
/// it has with that history, while the account starts flat with `capital` at the window's first
/// bar, as in [`run`] (which this is with `warmup_from_ms` at the window's start). The warm-up
/// bars are checked as the window's are. Only the signal templates have indicators to warm up;
/// grid and momentum rotation ignore the warm-up bars (rotation's lookback starts in the window).
pub fn run_warm(
    config: &JobConfig,
    data: &[Bars],
    warmup_from_ms: i64,
    observer: &mut dyn Observer,
) -> Result<Backtest, EngineError> {
    // The provenance's hash of the window's bars (about 15 ms of CPU per year of 1m bars, as long
    // as the simulation) runs on another core meanwhile: the window is known before the loop
    // (`simulate` takes exactly `Bars::window`'s), and the hash is given up if the run fails.
    let (start, end) = (config.start_ms(), config.end_ms());
    let hashed_windows: Vec<Range<usize>> = data.iter().map(|bars| bars.window(start, end)).collect();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| provenance::bars_sha256_unless_stopped(data, &hashed_windows, &stop));
        let built = simulate(config, data, warmup_from_ms, observer).map(|simulated| build(config, data, simulated));
        if built.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let hashes = hashing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let (mut result, bar_equity, windows) = built?;
        result.provenance = match hashes {
            Some(hashes) if windows == hashed_windows => {
                provenance::Provenance::with_hashes(config, data, &windows, hashes)
            }
            _ => provenance::Provenance::of(config, data, &windows),
        };
        Ok(Backtest { result, bar_equity, windows })
    })
}

/// A finished simulation's result, all but its provenance (left default), its per-bar equity and
/// its windows.
fn build(config: &JobConfig, data: &[Bars], simulated: Simulated) -> (BacktestResult, Vec<f64>, Vec<Range<usize>>) {
    let Simulated { raw, windows, capital } = simulated;
    let views: Vec<BarsView> = data.iter().zip(&windows).map(|(bars, w)| BarsView::new(bars, w.clone())).collect();
    let v = views[0];
    let values = metrics::compute(capital, &raw);
    let final_equity = raw.equity.last().copied().unwrap_or(capital);
    let result = BacktestResult {
        metrics: result::Metrics::from_values(&values),
        structured_metrics: result::StructuredMetrics::from_values(&values),
        equity_curve: raw
            .daily
            .iter()
            .map(|&(t, e)| result::EquityPoint { time_ms: t, equity: result::money(e) })
            .collect(),
        trades: result::trades(&raw.trades, &config.symbols),
        summary: result::Summary {
            final_equity: result::money(final_equity),
            bars: v.len() as u64,
            first_bar_time: time::iso(v.open_time[0]),
            last_bar_time: time::iso(v.open_time[v.len() - 1]),
            stopped_reason: raw.stopped,
            bankruptcy_shortfall: (raw.bankruptcy_shortfall > 0.0).then(|| result::money(raw.bankruptcy_shortfall)),
        },
        benchmark: benchmark::buy_and_hold(&views, capital, execution(config), config.timeframe.millis()),
        provenance: provenance::Provenance::default(),
    };
    (result, raw.equity, windows)
}

/// [`run`]'s `metrics` and `structured_metrics` only (identical to its), without the work the
/// rest of the result costs: the daily curve and the trades in decimals, the benchmark, and the
/// provenance's hash of every bar (about 15 ms of CPU per year of 1m bars).
pub fn run_metrics(
    config: &JobConfig,
    data: &[Bars],
    observer: &mut dyn Observer,
) -> Result<(result::Metrics, result::StructuredMetrics), EngineError> {
    let Simulated { raw, capital, .. } = simulate(config, data, config.start_ms(), observer)?;
    let values = metrics::compute(capital, &raw);
    Ok((result::Metrics::from_values(&values), result::StructuredMetrics::from_values(&values)))
}

/// The starting capital of `config`'s account, in the numeric core's floats.
pub(crate) fn capital_of(config: &JobConfig) -> f64 {
    config.capital.to_f64().unwrap_or(0.0)
}

/// The fills' prices and fees of `config`, fresh (no fills yet in the fee tiers' window).
pub(crate) fn execution(config: &JobConfig) -> Execution {
    Execution {
        fees: FeeSchedule::for_config(config),
        slippage: config.slippage_bps.and_then(|d| d.to_f64()).unwrap_or(0.0) / 10_000.0,
        leverage: config.leverage as f64,
    }
}

/// A finished simulation, before the result is built.
pub(crate) struct Simulated {
    pub raw: RawRun,
    pub windows: Vec<Range<usize>>,
    pub capital: f64,
}

/// The loop of `config`'s template over its window, signals warmed up from `warmup_from_ms`.
pub(crate) fn simulate(
    config: &JobConfig,
    data: &[Bars],
    warmup_from_ms: i64,
    observer: &mut dyn Observer,
) -> Result<Simulated, EngineError> {
    let params = config.strategy_params()?;
    if data.len() != config.symbols.len() {
        return Err(EngineError::Data(format!(
            "{} symbol(s) configured but {} bar series given",
            config.symbols.len(),
            data.len()
        )));
    }
    let (start, end) = (config.start_ms(), config.end_ms());
    let bad_bar = |stop: Stop| match stop {
        Stop::BadBar { symbol, error } => EngineError::Data(format!("{}: {error}", config.symbols[symbol])),
        Stop::Cancelled { .. } => EngineError::Cancelled,
    };
    // A problem with symbol `s` found before the loop comes after any bad bar of the symbols
    // before it, as when each symbol was validated in full before the next was looked at.
    let earlier_first = |views: &[BarsView], error: EngineError| match sim::first_bad_bar(views, 0) {
        Some(stop) => bad_bar(stop),
        None => error,
    };
    let mut views = Vec::with_capacity(data.len());
    let mut windows = Vec::with_capacity(data.len());
    for (symbol, bars) in config.symbols.iter().zip(data) {
        let range = bars.window(start, end);
        if range.is_empty() {
            let error =
                EngineError::Data(format!("{symbol}: no bars between {} and {}", time::iso(start), time::iso(end)));
            return Err(earlier_first(&views, error));
        }
        let view = BarsView::new(bars, range.clone());
        if let Some(first) = views.first() {
            let first: &BarsView = first;
            if first.open_time != view.open_time {
                let error = EngineError::Data(format!(
                    "{symbol}: bar times differ from {}'s; multi-symbol runs need aligned bars",
                    config.symbols[0]
                ));
                return Err(earlier_first(&views, error));
            }
        }
        if let Err(e) = bars.check_columns() {
            return Err(earlier_first(&views, EngineError::Data(format!("{symbol}: {e}"))));
        }
        windows.push(range);
        views.push(view);
    }

    let capital = capital_of(config);
    let bar_ms = config.timeframe.millis();
    let mut exec = execution(config);
    let v = views[0];
    // The warm-up bars of the signal templates: the first symbol's from `warmup_from_ms` to the
    // window, checked as the window's are (before it: they come first).
    let window = &windows[0];
    let warm_start = if warmup_from_ms < start {
        data[0].open_time[..window.start].partition_point(|&t| t < warmup_from_ms)
    } else {
        window.start
    };
    let warm = BarsView::new(&data[0], warm_start..window.start);
    if let Some(error) = warm.first_bad_bar(0) {
        return Err(bad_bar(Stop::BadBar { symbol: 0, error }));
    }
    let series = warm_start..window.end;
    let (high, low) = (&data[0].high[series.clone()], &data[0].low[series]);
    let mut signal_loop = |signal, direction, fraction| {
        sim::signal_loop(
            v,
            Warmed::new(signal, &warm),
            direction,
            capital,
            Sizing { fraction },
            &mut exec,
            bar_ms,
            observer,
        )
    };
    let outcome = match params {
        StrategyParams::MaCross { fast, slow, direction, fraction } => {
            signal_loop(AnySignal::MaCross(signals::MaCross::new(fast, slow)), direction, fraction)
        }
        StrategyParams::Breakout { lookback, direction, fraction } => {
            signal_loop(AnySignal::Breakout(signals::Breakout::new(high, low, lookback)), direction, fraction)
        }
        StrategyParams::RsiReversion { period, oversold, overbought, direction, fraction } => {
            signal_loop(AnySignal::Rsi(signals::RsiReversion::new(period, oversold, overbought)), direction, fraction)
        }
        StrategyParams::Grid { levels, lower, upper, spacing } => {
            grid::grid_loop(v, levels, lower, upper, spacing, capital, &mut exec, bar_ms, observer)
        }
        StrategyParams::MomentumRotation { lookback, top_n, rebalance_every, fraction } => {
            let p = rotation::RotationParams { lookback, top_n, rebalance_every, fraction };
            rotation::rotation_loop(&views, capital, &p, &mut exec, bar_ms, observer)
        }
    };
    let raw: RawRun = match outcome {
        Ok(raw) => raw,
        // Bad bars after the cancelled point still make the run a data error, as they did when
        // the bars were validated before the loop.
        Err(Stop::Cancelled { checked }) => {
            return Err(sim::first_bad_bar(&views, checked).map_or(EngineError::Cancelled, bad_bar))
        }
        Err(stop) => return Err(bad_bar(stop)),
    };

    Ok(Simulated { raw, windows, capital })
}

/// One of the signal templates' indicators (the loop is compiled once for all three; the match
/// is once per block of bars).
enum AnySignal<'a> {
    MaCross(signals::MaCross),
    Breakout(signals::Breakout<'a>),
    Rsi(signals::RsiReversion),
}

impl Signal for AnySignal<'_> {
    #[inline]
    fn block(&mut self, first: usize, high: &[f64], low: &[f64], close: &[f64], events: &mut [u8]) {
        match self {
            AnySignal::MaCross(s) => s.block(first, high, low, close, events),
            AnySignal::Breakout(s) => s.block(first, high, low, close, events),
            AnySignal::Rsi(s) => s.block(first, high, low, close, events),
        }
    }
}

/// A signal that has seen the warm-up bars: the window's bar `i` is bar `offset + i` of its series.
struct Warmed<S> {
    inner: S,
    offset: usize,
}

impl<S: Signal> Warmed<S> {
    fn new(mut inner: S, warm: &BarsView<'_>) -> Warmed<S> {
        let mut events = [signals::NONE; sim::BLOCK];
        for b in (0..warm.len()).step_by(sim::BLOCK) {
            let e = (b + sim::BLOCK).min(warm.len());
            inner.block(b, &warm.high[b..e], &warm.low[b..e], &warm.close[b..e], &mut events[..e - b]);
        }
        Warmed { inner, offset: warm.len() }
    }
}

impl<S: Signal> Signal for Warmed<S> {
    #[inline]
    fn block(&mut self, first: usize, high: &[f64], low: &[f64], close: &[f64], events: &mut [u8]) {
        self.inner.block(self.offset + first, high, low, close, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    const START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
    const MINUTE: i64 = 60_000;

    /// `n` one-minute bars of a zigzag from `START`.
    fn bars(n: usize) -> Bars {
        let mut out = Bars::with_capacity(n);
        let mut close = 100.0;
        for i in 0..n {
            let open = close;
            close = 100.0 + ((i * 7919) % 23) as f64 - 11.0;
            let (lo, hi) = (open.min(close), open.max(close));
            out.push(Bar {
                open_time: START + i as i64 * MINUTE,
                open,
                high: hi + 0.5,
                low: lo - 0.5,
                close,
                volume: 1.0,
            });
        }
        out
    }

    fn config(template: &str, params: serde_json::Value, symbols: &[&str], from: i64, to: i64) -> JobConfig {
        let body = json!({"template_id": template, "params": params, "symbols": symbols, "timeframe": "1m",
            "start": time::iso(from), "end": time::iso(to), "capital": "10000", "fee_model": "fixed_bps"});
        JobConfig::from_value(&body, Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()).unwrap()
    }

    /// The error validating the window before the run gives, as the run reports it.
    fn validation_error(symbol: &str, bars: &Bars, range: Range<usize>) -> EngineError {
        EngineError::Data(format!("{symbol}: {}", bars.validate_range(range).unwrap_err()))
    }

    #[test]
    fn bad_bars_give_the_errors_validation_gives() {
        let n = 2 * sim::CHECK_EVERY + 100;
        type Corrupt = fn(&mut Bars, usize);
        let corruptions: [(&str, Corrupt); 7] = [
            ("nan close", |b, i| b.close[i] = f64::NAN),
            ("infinite high", |b, i| b.high[i] = f64::INFINITY),
            ("zero low", |b, i| b.low[i] = 0.0),
            ("negative prices", |b, i| (b.open[i], b.high[i], b.low[i], b.close[i]) = (-2.0, -1.0, -3.0, -2.0)),
            ("high below close", |b, i| b.high[i] = b.close[i] - 0.25),
            ("repeated time", |b, i| b.open_time[i] = b.open_time[i - 1]),
            ("time going back", |b, i| b.open_time[i] -= 5 * MINUTE),
        ];
        let templates = [
            ("tpl_ma_cross", json!({"fast": 3, "slow": 10})),
            ("tpl_breakout", json!({"lookback": 5})),
            ("tpl_rsi_reversion", json!({"period": 5})),
            ("tpl_grid", json!({"grid_levels": 5, "lower_price": "90", "upper_price": "110"})),
        ];
        for (name, corrupt) in corruptions {
            // The window starts at bar 1 (bar 0 is only the previous time), chunk edges, the end.
            for at in [1, 2, 511, 512, sim::CHECK_EVERY, sim::CHECK_EVERY + 1, n - 1] {
                let mut b = bars(n);
                corrupt(&mut b, at);
                let (from, to) = (START + MINUTE, START + n as i64 * MINUTE);
                // As validated before the run: the window's bars (bar 0 only as the time before).
                let expected = b.validate_range(b.window(from, to)).map_err(|e| format!("BTCUSDT: {e}"));
                for (template, params) in &templates {
                    let cfg = config(template, params.clone(), &["BTCUSDT"], from, to);
                    let got =
                        run(&cfg, std::slice::from_ref(&b), &mut NoObserver).map(|_| ()).map_err(|e| e.to_string());
                    assert_eq!(got, expected, "{name} at {at}, {template}");
                }
            }
        }
    }

    #[test]
    fn the_first_symbol_with_a_bad_bar_is_reported_and_bad_bars_beat_cancel_and_alignment() {
        let n = 3 * sim::CHECK_EVERY;
        let cfg = config(
            "tpl_momentum_rotation",
            json!({"lookback": 10}),
            &["BTCUSDT", "ETHUSDT"],
            START,
            START + n as i64 * MINUTE,
        );
        let (mut first, mut second) = (bars(n), bars(n));
        first.close[2 * sim::CHECK_EVERY + 5] = f64::NAN;
        let expected = validation_error("BTCUSDT", &first, 0..n);
        let err = |data: &[Bars], observer: &mut dyn Observer| run(&cfg, data, observer).map(|_| ()).unwrap_err();
        // A cancel before the bad bar is read: still the data error.
        let mut calls = 0;
        let mut cancel = |_: f64| {
            calls += 1;
            Control::Cancel
        };
        assert_eq!(err(&[first.clone(), second.clone()], &mut cancel), expected);
        assert_eq!(calls, 1);
        // Validated symbol by symbol: the first symbol's late bad bar comes before the second's.
        second.low[10] = 0.0;
        assert_eq!(err(&[first.clone(), second.clone()], &mut NoObserver), expected);
        // A misaligned second symbol: the first symbol's bad bar still comes first.
        second.open_time.iter_mut().for_each(|t| *t += 1);
        assert_eq!(err(&[first.clone(), second], &mut NoObserver), expected);
        // Clean bars: cancelled.
        assert_eq!(err(&[bars(n), bars(n)], &mut |_| Control::Cancel), EngineError::Cancelled);
    }

    #[test]
    fn series_starting_at_different_bars_give_each_symbol_its_window() {
        let cfg = config(
            "tpl_momentum_rotation",
            json!({"lookback": 3}),
            &["BTCUSDT", "ETHUSDT"],
            START + 20 * MINUTE,
            START + 60 * MINUTE,
        );
        // BTCUSDT from bar 0 to 79, ETHUSDT from bar 10 to 99: the window is BTC's 20..=60, ETH's 10..=50.
        let btc = bars(80);
        let data = [btc, bars(100).slice(10..100)];
        let out = run(&cfg, &data, &mut NoObserver).unwrap();
        assert_eq!(out.windows, [20..61, 10..51]);
        let times = out.bar_open_times(&data).unwrap();
        assert_eq!((times[0], times[40]), (START + 20 * MINUTE, START + 60 * MINUTE));
        assert_eq!(times.len(), out.bar_equity.len());
        assert_eq!(out.result.summary.first_bar_time, time::iso(START + 20 * MINUTE));
        // Other series than the run's: no times rather than wrong ones.
        assert_eq!(out.bar_open_times(&[bars(30)]), None);
        assert_eq!(out.bar_open_times(&[]), None);
    }

    #[test]
    fn same_config_and_bars_give_the_same_provenance_and_result_byte_for_byte() {
        let cfg =
            config("tpl_ma_cross", json!({"fast": 3, "slow": 10}), &["BTCUSDT"], START + MINUTE, START + 500 * MINUTE);
        let json = |cfg: &JobConfig, data: &[Bars]| {
            serde_json::to_vec(&run(cfg, data, &mut NoObserver).unwrap().result).unwrap()
        };
        let data = [bars(600)];
        let first = json(&cfg, &data);
        assert_eq!(json(&cfg, &data), first);
        // Bars outside the window are not part of it; where the config came from is not either.
        let mut with_strategy = cfg.clone();
        with_strategy.strategy_id = Some("st_0123abcd".into());
        assert_eq!(json(&with_strategy, &[bars(600).slice(1..501)]), first);
        let out = run(&cfg, &data, &mut NoObserver).unwrap();
        let p = &out.result.provenance;
        assert_eq!(p.engine_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(p.config_sha256.len(), 64);
        assert_eq!(p.data.len(), 1);
        let d = &p.data[0];
        assert_eq!((d.bars, d.first_open_time.as_str()), (500, time::iso(START + MINUTE).as_str()));
        assert_eq!(d.last_open_time, time::iso(START + 500 * MINUTE));
        assert_eq!(d.sha256, provenance::bars_sha256(&data[0], 1..501));
        // A changed bar or config changes its hash.
        let mut other = bars(600);
        other.volume[7] += 1.0;
        let changed = run(&cfg, &[other], &mut NoObserver).unwrap().result.provenance;
        assert_ne!(changed.data[0].sha256, d.sha256);
        assert_eq!(changed.config_sha256, p.config_sha256);
        let mut cfg2 = cfg.clone();
        cfg2.capital += rust_decimal::Decimal::ONE;
        assert_ne!(run(&cfg2, &data, &mut NoObserver).unwrap().result.provenance.config_sha256, p.config_sha256);
    }

    #[test]
    fn run_metrics_gives_runs_metrics() {
        for (template, params, symbols) in [
            ("tpl_ma_cross", json!({"fast": 3, "slow": 10, "direction": "both"}), &["BTCUSDT"][..]),
            ("tpl_grid", json!({"grid_levels": 5, "lower_price": "90", "upper_price": "110"}), &["BTCUSDT"][..]),
            ("tpl_momentum_rotation", json!({"lookback": 3}), &["BTCUSDT", "ETHUSDT"][..]),
        ] {
            let cfg = config(template, params, symbols, START, START + 999 * MINUTE);
            let data = vec![bars(1000); symbols.len()];
            let full = run(&cfg, &data, &mut NoObserver).unwrap().result;
            let (m, s) = run_metrics(&cfg, &data, &mut NoObserver).unwrap();
            assert_eq!((m, s), (full.metrics, full.structured_metrics), "{template}");
        }
    }

    #[test]
    fn the_benchmark_holds_every_symbol_over_the_window() {
        let cfg = config(
            "tpl_momentum_rotation",
            json!({"lookback": 3}),
            &["BTCUSDT", "ETHUSDT"],
            START,
            START + 99 * MINUTE,
        );
        let out = run(&cfg, &[bars(100), bars(100)], &mut NoObserver).unwrap();
        let b = &out.result.benchmark;
        assert_eq!(b.equity_curve.len(), out.result.equity_curve.len());
        assert_eq!(b.equity_curve[0].time_ms, out.result.equity_curve[0].time_ms);
        // Two identical symbols: the same as holding one with all the capital.
        let single = config("tpl_ma_cross", json!({"fast": 3, "slow": 10}), &["BTCUSDT"], START, START + 99 * MINUTE);
        let one = run(&single, &[bars(100)], &mut NoObserver).unwrap().result.benchmark;
        assert_eq!(one.total_return, b.total_return);
        assert_eq!(one.max_drawdown, b.max_drawdown);
        // Bought at the first open (100), held to the last close, 5 bps in and out.
        let last = bars(100).close[99];
        let expected = 1.0 / 1.0005 * last / 100.0 * (1.0 - 0.0005) - 1.0;
        let got: f64 = one.total_return.unwrap().try_into().unwrap();
        assert!((got - expected).abs() < 1e-9, "{got} {expected}");
    }

    #[test]
    fn volume_is_left_to_ingest() {
        let mut b = bars(100);
        b.volume[50] = f64::NAN;
        assert!(b.validate().is_err());
        let cfg = config("tpl_ma_cross", json!({"fast": 3, "slow": 10}), &["BTCUSDT"], START, START + 99 * MINUTE);
        assert!(run(&cfg, &[b], &mut NoObserver).is_ok());
    }
}
