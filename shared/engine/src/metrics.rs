//! Every metric of `docs/metrics.md`, computed in `f64` from a [`RawRun`]. A metric that is
//! undefined (division by zero, too little data) or not finite is `None`, never NaN or infinity.
//!
//! The per-bar parts (end-of-day equity, drawdown) are tracked by the loops as they run
//! (`curve::Curve`); [`daily_equity`] and [`drawdown`] are their reference definitions over a whole
//! series, which the tracker is tested against.

use crate::sim::{RawRun, RawTrade, Trades};
use crate::time::day_start;

pub const YEAR_DAYS: f64 = 365.0;

/// The numbers, before rounding to decimals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricValues {
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub calmar: Option<f64>,
    pub max_drawdown: f64,
    pub win_rate: Option<f64>,
    pub profit_factor: Option<f64>,
    pub cagr: Option<f64>,
    pub expected_value: Option<f64>,
    pub total_trades: u64,
    pub avg_trade_duration_seconds: Option<i64>,
    pub total_return: f64,
    pub bars_in_market: u64,
    pub volatility_annualised: Option<f64>,
    pub max_drawdown_duration_seconds: i64,
    pub var_95: Option<f64>,
    pub cvar_95: Option<f64>,
    pub var_99: Option<f64>,
    pub cvar_99: Option<f64>,
    pub avg_win: Option<f64>,
    pub avg_loss: Option<f64>,
    pub expectancy: Option<f64>,
    pub turnover_annualised: Option<f64>,
}

/// End-of-day equity: `(day at 00:00 UTC, equity at the close of the day's last bar)`.
pub fn daily_equity(open_time: &[i64], equity: &[f64]) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for i in 0..open_time.len() {
        let day = day_start(open_time[i]);
        let last_of_day = i + 1 == open_time.len() || day_start(open_time[i + 1]) != day;
        if last_of_day {
            out.push((day, equity[i]));
        }
    }
    out
}

/// Daily returns with the starting capital as the base of the first day.
pub fn daily_returns(capital: f64, daily: &[(i64, f64)]) -> Vec<f64> {
    let mut prev = capital;
    daily
        .iter()
        .map(|&(_, e)| {
            let r = if prev > 0.0 { e / prev - 1.0 } else { 0.0 };
            prev = e;
            r
        })
        .collect()
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (ddof = 1); `None` under two values.
fn std_dev(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// numpy's default (linear) percentile of sorted values, `q` in [0, 1].
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = pos - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    // numpy's lerp: from the nearer end, so t = 1 gives b exactly.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// Historical VaR (a return, the `1 - level` percentile) and CVaR (the mean of returns at or below it).
fn var_cvar(sorted: &[f64], tail: f64) -> (Option<f64>, Option<f64>) {
    if sorted.is_empty() {
        return (None, None);
    }
    let var = percentile_sorted(sorted, tail);
    let tail_values: Vec<f64> = sorted.iter().copied().filter(|&r| r <= var).collect();
    let cvar = if tail_values.is_empty() { var } else { mean(&tail_values) };
    (finite(var), finite(cvar))
}

/// Max drawdown (a fraction <= 0) and the longest peak-to-recovery time in milliseconds, over the
/// per-bar equity. Bar `i`'s equity is stamped at its close; the starting capital at the first open.
pub fn drawdown(capital: f64, open_time: &[i64], bar_ms: i64, equity: &[f64]) -> (f64, i64) {
    let mut peak = capital;
    let mut peak_time = open_time.first().copied().unwrap_or(0);
    let mut max_dd = 0.0f64;
    let mut longest = 0i64;
    let mut under = false;
    for (i, &e) in equity.iter().enumerate() {
        let t = open_time[i] + bar_ms;
        if e >= peak {
            if under {
                longest = longest.max(t - peak_time);
                under = false;
            }
            peak = e;
            peak_time = t;
        } else {
            under = true;
            if peak > 0.0 {
                max_dd = max_dd.min(e / peak - 1.0);
            }
        }
    }
    if under {
        let last = open_time.last().copied().unwrap_or(0) + bar_ms;
        longest = longest.max(last - peak_time);
    }
    (max_dd, longest)
}

/// What the trade metrics need of a run's trades: running sums in trade order, which are the very
/// floats summing the whole lists gives (a sweep keeps these instead of the trades).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeStats {
    pub trades: u64,
    pub wins: u64,
    pub losses: u64,
    /// Σ pnl, Σ pnl of winners, Σ pnl of losers, Σ pnl / entry notional, in trade order.
    pub pnl: f64,
    pub win_pnl: f64,
    pub loss_pnl: f64,
    pub returns: f64,
    pub duration_ms: i128,
}

impl Default for TradeStats {
    fn default() -> Self {
        // The starting value of `Iterator::sum` for floats (so an empty or all -0.0 sum agrees).
        let zero: f64 = std::iter::empty::<f64>().sum();
        TradeStats {
            trades: 0,
            wins: 0,
            losses: 0,
            pnl: zero,
            win_pnl: zero,
            loss_pnl: zero,
            returns: zero,
            duration_ms: 0,
        }
    }
}

impl TradeStats {
    pub fn of(trades: &[RawTrade]) -> TradeStats {
        let mut stats = TradeStats::default();
        for &t in trades {
            stats.record(t);
        }
        stats
    }
}

impl Trades for TradeStats {
    #[inline]
    fn record(&mut self, t: RawTrade) {
        let pnl = t.pnl();
        self.trades += 1;
        self.pnl += pnl;
        if pnl > 0.0 {
            self.wins += 1;
            self.win_pnl += pnl;
        }
        if pnl < 0.0 {
            self.losses += 1;
            self.loss_pnl += pnl;
        }
        self.returns += pnl / (t.entry_price * t.qty);
        self.duration_ms += (t.exit_time - t.entry_time) as i128;
    }
}

/// What the metrics read of a run: its [`RawRun`] less the per-bar equity and the trades.
#[derive(Debug, Clone, Copy)]
pub struct RunFigures<'a> {
    pub daily: &'a [(i64, f64)],
    pub final_equity: f64,
    pub max_drawdown: f64,
    pub max_drawdown_ms: i64,
    pub trades: &'a TradeStats,
    pub traded_notional: f64,
    pub bars_in_market: u64,
}

/// All metrics of a run.
pub fn compute(capital: f64, run: &RawRun) -> MetricValues {
    let trades = TradeStats::of(&run.trades);
    compute_figures(
        capital,
        &RunFigures {
            daily: &run.daily,
            final_equity: run.equity.last().copied().unwrap_or(capital),
            max_drawdown: run.max_drawdown,
            max_drawdown_ms: run.max_drawdown_ms,
            trades: &trades,
            traded_notional: run.traded_notional,
            bars_in_market: run.bars_in_market,
        },
    )
}

/// All metrics of a run, from its figures.
pub fn compute_figures(capital: f64, run: &RunFigures<'_>) -> MetricValues {
    let daily = run.daily;
    let returns = daily_returns(capital, daily);
    let days = returns.len() as f64;
    let annual = YEAR_DAYS.sqrt();
    let final_equity = run.final_equity;

    let m = if returns.is_empty() { 0.0 } else { mean(&returns) };
    let sd = std_dev(&returns);
    let sharpe = sd.filter(|&s| s > 0.0).and_then(|s| finite(m / s * annual));
    let downside =
        if returns.is_empty() { 0.0 } else { (returns.iter().map(|&r| r.min(0.0).powi(2)).sum::<f64>() / days).sqrt() };
    let sortino = (downside > 0.0).then(|| m / downside * annual).and_then(finite);
    let (max_drawdown, dd_ms) = (run.max_drawdown, run.max_drawdown_ms);
    let total_return = final_equity / capital - 1.0;
    let cagr = if days == 0.0 {
        None
    } else if final_equity <= 0.0 {
        Some(-1.0)
    } else {
        finite((final_equity / capital).powf(YEAR_DAYS / days) - 1.0)
    };
    let calmar = cagr.filter(|_| max_drawdown < 0.0).and_then(|c| finite(c / max_drawdown.abs()));

    let mut sorted = returns.clone();
    sorted.sort_by(f64::total_cmp);
    let (var_95, cvar_95) = var_cvar(&sorted, 0.05);
    let (var_99, cvar_99) = var_cvar(&sorted, 0.01);

    // The sums of the pnl lists, each divided by its length: the lists' means.
    let t = run.trades;
    let n_trades = t.trades;
    let (win_rate, expected_value, expectancy, avg_duration) = if n_trades == 0 {
        (None, None, None, None)
    } else {
        // Half-to-even, the rounding used at every decimal boundary of the result.
        let avg_seconds = (t.duration_ms as f64 / n_trades as f64 / 1000.0).round_ties_even() as i64;
        (
            Some(t.wins as f64 / n_trades as f64),
            finite(t.pnl / n_trades as f64),
            finite(t.returns / n_trades as f64),
            Some(avg_seconds),
        )
    };
    let profit_factor = (t.losses > 0).then(|| t.win_pnl / t.loss_pnl.abs()).and_then(finite);
    let mean_equity = if daily.is_empty() { 0.0 } else { daily.iter().map(|d| d.1).sum::<f64>() / days };
    let turnover = (mean_equity > 0.0).then(|| run.traded_notional / mean_equity * YEAR_DAYS / days).and_then(finite);

    MetricValues {
        sharpe,
        sortino,
        calmar,
        max_drawdown,
        win_rate,
        profit_factor,
        cagr,
        expected_value,
        total_trades: n_trades,
        avg_trade_duration_seconds: avg_duration,
        total_return,
        bars_in_market: run.bars_in_market,
        volatility_annualised: sd.and_then(|s| finite(s * annual)),
        max_drawdown_duration_seconds: dd_ms / 1000,
        var_95,
        cvar_95,
        var_99,
        cvar_99,
        avg_win: (t.wins > 0).then(|| t.win_pnl / t.wins as f64),
        avg_loss: (t.losses > 0).then(|| t.loss_pnl / t.losses as f64),
        expectancy,
        turnover_annualised: turnover,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::track;
    use crate::sim::{ExitReason, RawTrade};

    const DAY: i64 = 86_400_000;

    /// Metrics of a run with this per-bar equity (bars opening at `times`, a day long each).
    fn metrics(capital: f64, times: &[i64], equity: Vec<f64>, trades: Vec<RawTrade>) -> MetricValues {
        let curve = track(capital, times, DAY, &equity);
        compute(capital, &RawRun::new(curve, trades, 0.0, 0, 0.0, None))
    }

    fn trade(pnl_before_fees: f64, fee: f64, entry: i64, exit: i64) -> RawTrade {
        RawTrade {
            symbol: 0,
            long: true,
            entry_time: entry,
            entry_price: 100.0,
            exit_time: exit,
            exit_price: 100.0 + pnl_before_fees,
            qty: 1.0,
            entry_fee: fee,
            exit_fee: 0.0,
            exit_reason: ExitReason::Signal,
        }
    }

    #[test]
    fn no_trades_and_flat_equity_give_nulls_not_nan() {
        let times: Vec<i64> = (0..3).map(|d| d * DAY).collect();
        let m = metrics(1000.0, &times, vec![1000.0; 3], vec![]);
        assert_eq!(m.sharpe, None);
        assert_eq!(m.sortino, None);
        assert_eq!(m.calmar, None);
        assert_eq!(m.max_drawdown, 0.0);
        assert_eq!(m.win_rate, None);
        assert_eq!(m.profit_factor, None);
        assert_eq!(m.expected_value, None);
        assert_eq!(m.avg_trade_duration_seconds, None);
        assert_eq!(m.cagr, Some(0.0));
        assert_eq!(m.total_trades, 0);
        assert_eq!(m.volatility_annualised, Some(0.0));
        assert_eq!(m.var_95, Some(0.0));
        assert_eq!(m.max_drawdown_duration_seconds, 0);
    }

    #[test]
    fn hand_computed_daily_metrics() {
        // Four daily closes from 1000: returns +10%, -10%, +5%, 0%.
        let times: Vec<i64> = (0..4).map(|d| d * DAY).collect();
        let eq = vec![1100.0, 990.0, 1039.5, 1039.5];
        let m = metrics(1000.0, &times, eq, vec![]);
        let r = [0.1, -0.1, 0.05, 0.0];
        let mean = 0.0125;
        let sd = (r.iter().map(|x: &f64| (x - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
        assert!((m.sharpe.unwrap() - mean / sd * 365f64.sqrt()).abs() < 1e-12);
        let dd = (0.01f64 / 4.0).sqrt();
        assert!((m.sortino.unwrap() - mean / dd * 365f64.sqrt()).abs() < 1e-12);
        assert!((m.max_drawdown - (990.0 / 1100.0 - 1.0)).abs() < 1e-15);
        // Peak at day 0's close (1 DAY); never regained: lasts to the last close (4 DAYs).
        assert_eq!(m.max_drawdown_duration_seconds, 3 * 86_400);
        let cagr = 1.0395f64.powf(365.0 / 4.0) - 1.0;
        assert!((m.cagr.unwrap() - cagr).abs() < 1e-9);
        assert!((m.calmar.unwrap() - cagr / 0.1).abs() < 1e-6);
        // Sorted returns -0.1, 0, 0.05, 0.1: 5th percentile at position 0.15 -> -0.1 + 0.1 * 0.15.
        assert!((m.var_95.unwrap() - (-0.085)).abs() < 1e-12);
        assert!((m.cvar_95.unwrap() - (-0.1)).abs() < 1e-12);
        assert!((m.total_return - 0.0395).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_trade_metrics() {
        let times: Vec<i64> = vec![0];
        let trades = vec![trade(10.0, 1.0, 0, 3_600_000), trade(-4.0, 1.0, 0, 7_200_000), trade(1.0, 1.0, 0, 1_000)];
        let m = metrics(1000.0, &times, vec![1004.0], trades);
        // pnls 9, -5, 0: one winner, one loser, one neither.
        assert_eq!(m.win_rate, Some(1.0 / 3.0));
        assert_eq!(m.profit_factor, Some(9.0 / 5.0));
        assert_eq!(m.expected_value, Some(4.0 / 3.0));
        assert_eq!(m.avg_win, Some(9.0));
        assert_eq!(m.avg_loss, Some(-5.0));
        assert_eq!(m.avg_trade_duration_seconds, Some(3_600));
        assert!((m.expectancy.unwrap() - (0.09 - 0.05 + 0.0) / 3.0).abs() < 1e-15);
        // A single day: no standard deviation.
        assert_eq!(m.sharpe, None);
        assert_eq!(m.volatility_annualised, None);
    }

    #[test]
    fn only_winners_give_null_profit_factor_and_bankrupt_cagr_is_minus_one() {
        let m = metrics(1000.0, &[0], vec![0.0], vec![trade(5.0, 0.0, 0, 1000)]);
        assert_eq!(m.profit_factor, None);
        assert_eq!(m.avg_loss, None);
        assert_eq!(m.cagr, Some(-1.0));
        assert_eq!(m.max_drawdown, -1.0);
    }

    #[test]
    fn daily_equity_takes_each_days_last_close() {
        let times = [0, DAY / 2, DAY, DAY + 1, 3 * DAY];
        let eq = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(daily_equity(&times, &eq), vec![(0, 2.0), (DAY, 4.0), (3 * DAY, 5.0)]);
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&s, 0.0), 1.0);
        assert_eq!(percentile_sorted(&s, 1.0), 4.0);
        assert!((percentile_sorted(&s, 0.5) - 2.5).abs() < 1e-15);
        assert!((percentile_sorted(&s, 0.05) - 1.15).abs() < 1e-15);
    }
}
