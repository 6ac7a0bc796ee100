//! `result.benchmark`: buy-and-hold of the job's symbols over the same bars (definition in
//! `docs/metrics.md`, "Benchmark"), measured with the strategy's own metric functions.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::fees::Liquidity;
use crate::metrics;
use crate::result::{money, ratio, EquityPoint};
use crate::sim::{curve_for, BarsView, Execution, RawRun, BLOCK};

/// Buy-and-hold's metrics (the flat metrics' formulas and rounding) and daily equity curve.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Benchmark {
    pub total_return: Option<Decimal>,
    pub cagr: Option<Decimal>,
    pub sharpe: Option<Decimal>,
    pub max_drawdown: Option<Decimal>,
    /// One point per simulated UTC day, as `result.equity_curve`.
    pub equity_curve: Vec<EquityPoint>,
}

/// Buy-and-hold of `views` (aligned windows, one per symbol): `capital / n` each, bought with a
/// market order at the first bar's open, sold with one after the last bar's close, with the
/// run's fee model and slippage (`exec`'s; no leverage).
pub fn buy_and_hold(views: &[BarsView<'_>], capital: f64, mut exec: Execution, bar_ms: i64) -> Benchmark {
    let first = &views[0];
    let n = first.len();
    let mut cash = capital;
    let share = capital / views.len() as f64;
    let t0 = first.open_time[0];
    let mut qty = Vec::with_capacity(views.len());
    for v in views {
        let price = exec.market_price(v.open[0], true);
        let q = share / (price * (1.0 + exec.fees.taker_rate(t0)));
        let fee = exec.fee(t0, q, price, Liquidity::Taker);
        cash -= q * price + fee;
        qty.push(q);
    }
    let mut curve = curve_for(first, capital, bar_ms);
    let mut equity = [0.0; BLOCK];
    for b in (0..n).step_by(BLOCK) {
        let e = (b + BLOCK).min(n);
        let block = &mut equity[..e - b];
        block.fill(cash);
        for (v, &q) in views.iter().zip(&qty) {
            for (eq, &close) in block.iter_mut().zip(&v.close[b..e]) {
                *eq += q * close;
            }
        }
        curve.extend(&first.open_time[b..e], block);
    }
    // The end-of-window close, as the strategy's: after the last bar's close.
    let t_end = first.open_time[n - 1] + bar_ms;
    for (v, &q) in views.iter().zip(&qty) {
        let price = exec.market_price(v.close[n - 1], false);
        let fee = exec.fee(t_end, q, price, Liquidity::Taker);
        cash += q * price - fee;
    }
    let raw = RawRun::new(curve.finish(cash), Vec::new(), 0.0, 0, 0.0, None);
    let m = metrics::compute(capital, &raw);
    Benchmark {
        total_return: ratio(Some(m.total_return)),
        cagr: ratio(m.cagr),
        sharpe: ratio(m.sharpe),
        max_drawdown: ratio(Some(m.max_drawdown)),
        equity_curve: raw.daily.iter().map(|&(t, e)| EquityPoint { time_ms: t, equity: money(e) }).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::{FeeSchedule, Rates};

    fn exec(bps: f64) -> Execution {
        Execution { fees: FeeSchedule::fixed(Rates { maker_bps: bps, taker_bps: bps }), slippage: 0.0, leverage: 5.0 }
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn one_symbol_by_hand() {
        // Daily bars: open 100, closes 110, 99, 121.
        let t = [0, DAY, 2 * DAY];
        let o = [100.0, 110.0, 99.0];
        let c = [110.0, 99.0, 121.0];
        let (h, l) = ([121.0; 3], [99.0; 3]);
        let v = BarsView::whole(&t, &o, &h, &l, &c);
        let b = buy_and_hold(&[v], 1000.0, exec(10.0), DAY);
        // qty = 1000 / (100 * 1.001); leverage is ignored.
        let q = 1000.0 / 100.1;
        let last = q * 121.0 * (1.0 - 0.001);
        assert_eq!(b.total_return, ratio(Some(last / 1000.0 - 1.0)));
        assert_eq!(b.max_drawdown, ratio(Some(99.0 / 110.0 - 1.0)));
        let points: Vec<(i64, Decimal)> = b.equity_curve.iter().map(|p| (p.time_ms, p.equity)).collect();
        assert_eq!(points, vec![(0, money(q * 110.0)), (DAY, money(q * 99.0)), (2 * DAY, money(last))]);
        assert!(b.sharpe.is_some() && b.cagr.is_some());
    }

    #[test]
    fn symbols_share_the_capital_equally() {
        let t = [0, DAY];
        let (a_o, a_c) = ([10.0, 10.0], [10.0, 20.0]);
        let (b_o, b_c) = ([50.0, 50.0], [50.0, 25.0]);
        let a = BarsView::whole(&t, &a_o, &[20.0; 2], &[10.0; 2], &a_c);
        let b = BarsView::whole(&t, &b_o, &[50.0; 2], &[25.0; 2], &b_c);
        let bench = buy_and_hold(&[a, b], 1000.0, exec(0.0), DAY);
        // 500 each: 50 of A ends at 1000, 10 of B at 250.
        assert_eq!(bench.equity_curve.last().unwrap().equity, money(1250.0));
        assert_eq!(bench.total_return, ratio(Some(0.25)));
    }
}
