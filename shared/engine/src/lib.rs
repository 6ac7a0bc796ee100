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
pub mod config;
pub mod fees;
pub mod grid;
pub mod metrics;
pub mod result;
pub mod rotation;
pub mod signals;
pub mod sim;
pub mod templates;
pub mod time;

pub use bars::{Bar, Bars, BarsError, Timeframe};
pub use config::{FeeModel, FieldError, JobConfig};
pub use result::BacktestResult;
pub use sim::{Control, NoObserver, Observer};

use rust_decimal::prelude::ToPrimitive;
use std::ops::Range;

use crate::fees::FeeSchedule;
use crate::sim::{BarsView, Execution, RawRun, Sizing};
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
    /// Index range of the window's bars in the input series.
    pub window: Range<usize>,
}

/// Runs `config` on `data`: one bar series per symbol, in `config.symbols` order, covering at
/// least the window (bars outside `[start, end]` are ignored).
pub fn run(config: &JobConfig, data: &[Bars], observer: &mut dyn Observer) -> Result<Backtest, EngineError> {
    let params = config.strategy_params()?;
    if data.len() != config.symbols.len() {
        return Err(EngineError::Data(format!(
            "{} symbol(s) configured but {} bar series given",
            config.symbols.len(),
            data.len()
        )));
    }
    let (start, end) = (config.start_ms(), config.end_ms());
    let mut views = Vec::with_capacity(data.len());
    let mut window = 0..0;
    for (symbol, bars) in config.symbols.iter().zip(data) {
        let range = bars.window(start, end);
        if range.is_empty() {
            return Err(EngineError::Data(format!(
                "{symbol}: no bars between {} and {}",
                time::iso(start),
                time::iso(end)
            )));
        }
        let view = BarsView::new(bars, range.clone());
        if let Some(first) = views.first() {
            let first: &BarsView = first;
            if first.open_time != view.open_time {
                return Err(EngineError::Data(format!(
                    "{symbol}: bar times differ from {}'s; multi-symbol runs need aligned bars",
                    config.symbols[0]
                )));
            }
        }
        bars.validate_range(range.clone()).map_err(|e| EngineError::Data(format!("{symbol}: {e}")))?;
        window = range;
        views.push(view);
    }

    let capital = config.capital.to_f64().unwrap_or(0.0);
    let bar_ms = config.timeframe.millis();
    let mut exec = Execution {
        fees: FeeSchedule::for_config(config),
        slippage: config.slippage_bps.and_then(|d| d.to_f64()).unwrap_or(0.0) / 10_000.0,
        leverage: config.leverage as f64,
    };
    let v = views[0];
    let signal = |flags: Vec<u8>, fraction: f64, exec: &mut Execution, obs: &mut dyn Observer| {
        sim::signal_loop(v, &flags, capital, Sizing { fraction }, exec, bar_ms, obs)
    };
    let raw: RawRun = match params {
        StrategyParams::MaCross { fast, slow, direction, fraction } => {
            signal(signals::ma_cross(v.close, fast, slow, direction), fraction, &mut exec, observer)
        }
        StrategyParams::Breakout { lookback, direction, fraction } => {
            signal(signals::breakout(v.high, v.low, v.close, lookback, direction), fraction, &mut exec, observer)
        }
        StrategyParams::RsiReversion { period, oversold, overbought, direction, fraction } => signal(
            signals::rsi_reversion(v.close, period, oversold, overbought, direction),
            fraction,
            &mut exec,
            observer,
        ),
        StrategyParams::Grid { levels, lower, upper, spacing } => {
            grid::grid_loop(v, levels, lower, upper, spacing, capital, &mut exec, bar_ms, observer)
        }
        StrategyParams::MomentumRotation { lookback, top_n, rebalance_every, fraction } => {
            let p = rotation::RotationParams { lookback, top_n, rebalance_every, fraction };
            rotation::rotation_loop(&views, capital, &p, &mut exec, bar_ms, observer)
        }
    }
    .map_err(|_| EngineError::Cancelled)?;

    let values = metrics::compute(capital, v.open_time, bar_ms, &raw);
    let daily = metrics::daily_equity(v.open_time, &raw.equity);
    let final_equity = raw.equity.last().copied().unwrap_or(capital);
    let result = BacktestResult {
        metrics: result::Metrics::from_values(&values),
        structured_metrics: result::StructuredMetrics::from_values(&values),
        equity_curve: daily
            .iter()
            .map(|&(t, e)| result::EquityPoint { time_ms: t, equity: result::money(e) })
            .collect(),
        trades: result::trades(&raw.trades, &config.symbols),
        summary: result::Summary {
            final_equity: result::money(final_equity),
            bars: v.len() as u64,
            first_bar_time: time::iso(v.open_time[0]),
            last_bar_time: time::iso(v.open_time[v.len() - 1]),
            stopped_reason: raw.stopped.map(|s| s.as_str()),
            bankruptcy_shortfall: (raw.bankruptcy_shortfall > 0.0).then(|| result::money(raw.bankruptcy_shortfall)),
        },
    };
    Ok(Backtest { result, bar_equity: raw.equity, window })
}
