//! Every metric of a result by its leaf name, with the direction in which it is better: what
//! comparing runs (`POST /v1/backtest/compare`) and ranking a sweep (`rank_metric`) both need.
//!
//! Directions, as the API contract's Compare table gives them: a larger value is better for every
//! return, ratio, win rate, profit factor and money per trade, and for `max_drawdown`, `var_*`,
//! `cvar_*` and `avg_loss` (they are negative: closer to 0 is better); a smaller value is better
//! for `max_drawdown_duration` and `volatility_annualised`; counts and activity measures
//! (`total_trades`, `bars_in_market`, `avg_trade_duration_seconds`, `turnover_annualised`) have
//! no better direction. A missing (null) value is never best; ties go to the earliest run.

use rust_decimal::Decimal;

use crate::result::{Metrics, StructuredMetrics};

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Neither: the metric describes a run, it does not grade it.
    Neither,
}

impl Better {
    /// `Some(true)` for higher, `Some(false)` for lower, `None` for neither (the API's
    /// `higher_is_better`).
    pub fn higher_is_better(self) -> Option<bool> {
        match self {
            Better::Higher => Some(true),
            Better::Lower => Some(false),
            Better::Neither => None,
        }
    }
}

/// Every metric's leaf name and direction, flat metrics first, then the structured ones not
/// already named (a structured leaf with a flat twin, `cagr` say, has the same value).
pub const METRICS: [(&str, Better); 25] = [
    ("sharpe", Better::Higher),
    ("sortino", Better::Higher),
    ("calmar", Better::Higher),
    ("max_drawdown", Better::Higher),
    ("win_rate", Better::Higher),
    ("profit_factor", Better::Higher),
    ("cagr", Better::Higher),
    ("expected_value", Better::Higher),
    ("total_trades", Better::Neither),
    ("avg_trade_duration_seconds", Better::Neither),
    ("total_return", Better::Higher),
    ("bars_in_market", Better::Neither),
    ("sharpe_ratio", Better::Higher),
    ("sortino_ratio", Better::Higher),
    ("calmar_ratio", Better::Higher),
    ("max_drawdown_duration", Better::Lower),
    ("var_95", Better::Higher),
    ("cvar_95", Better::Higher),
    ("var_99", Better::Higher),
    ("cvar_99", Better::Higher),
    ("volatility_annualised", Better::Lower),
    ("avg_win", Better::Higher),
    ("avg_loss", Better::Higher),
    ("expectancy", Better::Higher),
    ("turnover_annualised", Better::Neither),
];

/// The direction of the metric named `name`, if there is a metric by that name.
pub fn direction(name: &str) -> Option<Better> {
    METRICS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The value of the metric named `name` in a result (integers as decimals); `None` when the
/// metric is null for this run, or there is no such metric.
pub fn value(name: &str, m: &Metrics, s: &StructuredMetrics) -> Option<Decimal> {
    let int = |v: u64| Some(Decimal::from(v));
    match name {
        "sharpe" => m.sharpe,
        "sortino" => m.sortino,
        "calmar" => m.calmar,
        "max_drawdown" => m.max_drawdown,
        "win_rate" => m.win_rate,
        "profit_factor" => m.profit_factor,
        "cagr" => m.cagr,
        "expected_value" => m.expected_value,
        "total_trades" => int(m.total_trades),
        "avg_trade_duration_seconds" => m.avg_trade_duration_seconds.map(Decimal::from),
        "total_return" => s.total_return,
        "bars_in_market" => int(s.bars_in_market),
        "sharpe_ratio" => s.performance.sharpe_ratio,
        "sortino_ratio" => s.performance.sortino_ratio,
        "calmar_ratio" => s.performance.calmar_ratio,
        "max_drawdown_duration" => Some(Decimal::from(s.risk.max_drawdown_duration)),
        "var_95" => s.risk.var_95,
        "cvar_95" => s.risk.cvar_95,
        "var_99" => s.risk.var_99,
        "cvar_99" => s.risk.cvar_99,
        "volatility_annualised" => s.risk.volatility_annualised,
        "avg_win" => s.trading.avg_win,
        "avg_loss" => s.trading.avg_loss,
        "expectancy" => s.trading.expectancy,
        "turnover_annualised" => s.trading.turnover_annualised,
        _ => None,
    }
}

/// The index of the best of `values` in direction `better`: a null is never best, ties go to the
/// earliest, and a metric with no direction has no best.
pub fn best(values: &[Option<Decimal>], better: Better) -> Option<usize> {
    let wins = |a: Decimal, b: Decimal| match better {
        Better::Higher => a > b,
        Better::Lower => a < b,
        Better::Neither => false,
    };
    if better == Better::Neither {
        return None;
    }
    let mut best: Option<(usize, Decimal)> = None;
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = *v {
            if best.is_none_or(|(_, b)| wins(v, b)) {
                best = Some((i, v));
            }
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricValues;

    fn d(s: &str) -> Option<Decimal> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn directions_follow_the_contract() {
        for (name, better) in [
            ("sharpe", Better::Higher),
            ("max_drawdown", Better::Higher),
            ("var_95", Better::Higher),
            ("cvar_99", Better::Higher),
            ("avg_loss", Better::Higher),
            ("volatility_annualised", Better::Lower),
            ("max_drawdown_duration", Better::Lower),
            ("total_trades", Better::Neither),
            ("bars_in_market", Better::Neither),
            ("avg_trade_duration_seconds", Better::Neither),
            ("turnover_annualised", Better::Neither),
        ] {
            assert_eq!(direction(name), Some(better), "{name}");
        }
        assert_eq!(direction("no_such_metric"), None);
    }

    #[test]
    fn the_best_is_never_null_and_ties_go_to_the_earliest() {
        let values = [None, d("1.2"), d("1.5"), d("1.5"), None];
        assert_eq!(best(&values, Better::Higher), Some(2));
        assert_eq!(best(&values, Better::Lower), Some(1));
        assert_eq!(best(&values, Better::Neither), None);
        assert_eq!(best(&[None, None], Better::Higher), None);
        // Negative metrics: closer to 0 is larger, so better.
        assert_eq!(best(&[d("-0.35"), d("-0.10"), d("-0.2")], Better::Higher), Some(1));
    }

    #[test]
    fn every_named_metric_has_a_value_source() {
        let values = MetricValues::default();
        let (m, s) = (Metrics::from_values(&values), StructuredMetrics::from_values(&values));
        // Counts and durations are never null; every name resolves without panicking.
        for (name, _) in METRICS {
            let _ = value(name, &m, &s);
        }
        assert_eq!(value("total_trades", &m, &s), Some(Decimal::ZERO));
        assert_eq!(value("max_drawdown_duration", &m, &s), Some(Decimal::ZERO));
        assert_eq!(value("no_such_metric", &m, &s), None);
    }
}
