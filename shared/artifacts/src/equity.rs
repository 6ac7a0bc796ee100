//! `equity.parquet` and `equity.csv`: one row per simulated bar.

use pipai_engine::{Backtest, Bars, JobConfig};
use rust_decimal::prelude::ToPrimitive;

use crate::parquet_out::{write, Column};
use crate::text::push_iso;
use crate::ArtifactError;

/// The Parquet schema of `equity.parquet`.
pub const SCHEMA: &str = "message equity {
  required int64 open_time (TIMESTAMP(MILLIS,true));
  required double equity;
  required double drawdown;
}";

/// The per-bar rows of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct EquityRows<'a> {
    pub open_time: &'a [i64],
    pub equity: &'a [f64],
    pub drawdown: Vec<f64>,
}

impl<'a> EquityRows<'a> {
    /// The rows of `backtest`, a run of `config` on `data`.
    pub fn of(backtest: &'a Backtest, config: &JobConfig, data: &'a [Bars]) -> Result<EquityRows<'a>, ArtifactError> {
        let open_time = backtest.bar_open_times(data).ok_or(ArtifactError::BarsMismatch)?;
        let capital = config.capital.to_f64().unwrap_or(0.0);
        Ok(EquityRows { open_time, equity: &backtest.bar_equity, drawdown: drawdowns(capital, &backtest.bar_equity) })
    }

    pub fn to_parquet(&self) -> Result<Vec<u8>, ::parquet::errors::ParquetError> {
        let columns = [
            Column::Int64 { values: self.open_time, delta: true },
            Column::Double(self.equity),
            Column::Double(&self.drawdown),
        ];
        write(SCHEMA, &columns, self.open_time.len())
    }

    /// `open_time,equity,drawdown`; times as the API writes them, the floats in the shortest
    /// text that reads back as the same `f64`.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.open_time.len() * 56 + 32);
        out.push_str("open_time,equity,drawdown\n");
        let mut day = None;
        for ((&t, &e), &d) in self.open_time.iter().zip(self.equity).zip(&self.drawdown) {
            push_iso(&mut out, t, &mut day);
            out.push(',');
            push_float(&mut out, e);
            out.push(',');
            push_float(&mut out, d);
            out.push('\n');
        }
        out.into_bytes()
    }
}

fn push_float(out: &mut String, x: f64) {
    use std::fmt::Write;
    write!(out, "{x}").expect("writing to a String");
}

/// `e_t / peak_t - 1` (0 at or above the peak), `peak_t = max(capital, e_0 .. e_t)`: the series
/// `docs/metrics.md`'s `max_drawdown` is the minimum of.
pub fn drawdowns(capital: f64, equity: &[f64]) -> Vec<f64> {
    let mut peak = capital;
    equity
        .iter()
        .map(|&e| {
            if e >= peak {
                peak = e;
                0.0
            } else if peak > 0.0 {
                e / peak - 1.0
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawdown_from_the_running_peak_starting_at_capital() {
        assert_eq!(drawdowns(100.0, &[90.0, 120.0, 60.0, 130.0]), vec![90.0 / 100.0 - 1.0, 0.0, -0.5, 0.0]);
    }
}
