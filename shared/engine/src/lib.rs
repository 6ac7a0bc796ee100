//! PipAI backtest engine: pure, deterministic simulation. No AWS, no tokio, no I/O.
//!
//! The execution model (fills, fees, sizing, leverage, liquidation, end of window) is written
//! down in `docs/execution-model.md`, the templates in `docs/templates.md` and every metric in
//! `docs/metrics.md`; this crate implements exactly those pages.

pub mod bars;

pub use bars::{Bar, Bars, BarsError, Timeframe};
