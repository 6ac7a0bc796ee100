//! The multi-symbol loop: momentum rotation (`docs/templates.md`, `tpl_momentum_rotation`).

use crate::fees::Liquidity;
use crate::sim::{
    curve_for, reportable, BarCheck, BarsView, Execution, ExitReason, Observer, RawRun, RawTrade, Stop, StopReason,
    BLOCK, CHECK_EVERY, MAINTENANCE_MARGIN,
};

#[derive(Debug, Clone, Copy)]
struct Held {
    qty: f64,
    time: i64,
    price: f64,
    fee: f64,
}

pub struct RotationParams {
    pub lookback: usize,
    pub top_n: usize,
    pub rebalance_every: usize,
    pub fraction: f64,
}

/// Symbols with the best positive momentum at bar `i`, best first; ties keep symbol order.
fn select(symbols: &[BarsView<'_>], i: usize, lookback: usize, top_n: usize) -> Vec<usize> {
    let mut ranked: Vec<(usize, f64)> =
        symbols.iter().enumerate().map(|(s, b)| (s, b.close[i] / b.close[i - lookback] - 1.0)).collect();
    // Stable sort, descending: equal momentum keeps the request's symbol order.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.into_iter().filter(|&(_, m)| m > 0.0).take(top_n).map(|(s, _)| s).collect()
}

pub fn rotation_loop(
    symbols: &[BarsView<'_>],
    capital: f64,
    p: &RotationParams,
    exec: &mut Execution,
    bar_ms: i64,
    observer: &mut dyn Observer,
) -> Result<RawRun, Stop> {
    let n = symbols[0].len();
    let mut held: Vec<Option<Held>> = vec![None; symbols.len()];
    // The symbols share one time column (the caller checks they are aligned), so times are
    // checked on the first symbol; only each window's first bar has its own predecessor.
    let mut check = BarCheck::new(&symbols[0]);
    for v in &symbols[1..] {
        if v.before.is_some_and(|b| v.open_time.first().is_some_and(|&t| t <= b)) {
            check.fail();
        }
    }
    let mut curve = curve_for(&symbols[0], capital, bar_ms);
    let mut trades = Vec::new();
    let mut cash = capital;
    let mut traded = 0.0;
    let mut in_market = 0u64;
    let mut shortfall = 0.0;
    let mut stopped = None;
    let mut pending: Option<Vec<usize>> = None;
    // The next rebalancing bar: `lookback`, then every `rebalance_every` bars (a counter rather
    // than a division every bar).
    let mut rebalance_at = p.lookback;

    let close_position =
        |s: usize, h: Held, t: i64, price: f64, reason, exec: &mut Execution, cash: &mut f64, traded: &mut f64| {
            let fee = exec.fee(t, h.qty, price, Liquidity::Taker);
            *cash += h.qty * price - fee;
            *traded += h.qty * price;
            RawTrade {
                symbol: s,
                long: true,
                entry_time: h.time,
                entry_price: h.price,
                exit_time: t,
                exit_price: price,
                qty: h.qty,
                entry_fee: h.fee,
                exit_fee: fee,
                exit_reason: reason,
            }
        };

    let mut equity = [0.0; BLOCK];
    let mut start = 0;
    while start < n {
        let stop = (start + CHECK_EVERY).min(n);
        for b in (start..stop).step_by(BLOCK) {
            let e = (b + BLOCK).min(stop);
            let v = &symbols[0];
            check.block(&v.open_time[b..e], &v.open[b..e], &v.high[b..e], &v.low[b..e], &v.close[b..e]);
            for v in &symbols[1..] {
                check.prices(&v.open[b..e], &v.high[b..e], &v.low[b..e], &v.close[b..e]);
            }
            for i in b..e {
                let t = symbols[0].open_time[i];
                if let Some(selected) = pending.take() {
                    for (s, slot) in held.iter_mut().enumerate() {
                        if let Some(h) = *slot {
                            if !selected.contains(&s) {
                                let price = exec.market_price(symbols[s].open[i], false);
                                trades.push(close_position(
                                    s,
                                    h,
                                    t,
                                    price,
                                    ExitReason::Signal,
                                    exec,
                                    &mut cash,
                                    &mut traded,
                                ));
                                *slot = None;
                            }
                        }
                    }
                    let marked: f64 =
                        held.iter().enumerate().filter_map(|(s, h)| h.map(|h| h.qty * symbols[s].open[i])).sum();
                    let eq = cash + marked;
                    let budget = eq * p.fraction * exec.leverage;
                    let per_symbol = budget / p.top_n as f64;
                    let mut remaining = (budget - marked).max(0.0);
                    for &s in &selected {
                        if held[s].is_some() || eq <= 0.0 {
                            continue;
                        }
                        let notional = per_symbol.min(remaining);
                        if notional <= 0.0 {
                            break;
                        }
                        let price = exec.market_price(symbols[s].open[i], true);
                        let rate = exec.fees.taker_rate(t);
                        let qty = notional / (price * (1.0 + rate));
                        if !reportable(qty) {
                            continue;
                        }
                        let fee = exec.fee(t, qty, price, Liquidity::Taker);
                        cash -= qty * price + fee;
                        traded += qty * price;
                        remaining -= notional;
                        held[s] = Some(Held { qty, time: t, price, fee });
                    }
                }
                let any_held = held.iter().any(|h| h.is_some());
                if any_held && cash < 0.0 {
                    // Account-wide maintenance check at every symbol's low (the adverse extreme).
                    let at_lows: f64 =
                        held.iter().enumerate().filter_map(|(s, h)| h.map(|h| h.qty * symbols[s].low[i])).sum();
                    if cash + at_lows <= MAINTENANCE_MARGIN * at_lows {
                        for (s, slot) in held.iter_mut().enumerate() {
                            if let Some(h) = slot.take() {
                                let price = symbols[s].low[i];
                                trades.push(close_position(
                                    s,
                                    h,
                                    t,
                                    price,
                                    ExitReason::Liquidation,
                                    exec,
                                    &mut cash,
                                    &mut traded,
                                ));
                            }
                        }
                        if cash <= 0.0 {
                            shortfall = -cash;
                            cash = 0.0;
                            stopped = Some(StopReason::Bankrupt);
                        }
                    }
                }
                let marked: f64 =
                    held.iter().enumerate().filter_map(|(s, h)| h.map(|h| h.qty * symbols[s].close[i])).sum();
                in_market += held.iter().any(|h| h.is_some()) as u64;
                equity[i - b] = cash + marked;
                if i == rebalance_at {
                    rebalance_at += p.rebalance_every;
                    if stopped.is_none() {
                        pending = Some(select(symbols, i, p.lookback, p.top_n));
                    }
                }
            }
            curve.extend(&symbols[0].open_time[b..e], &equity[..e - b]);
        }
        check.end_chunk(symbols, start, stop, observer)?;
        start = stop;
    }

    let last = n - 1;
    let t = symbols[0].open_time[last] + bar_ms;
    let mut final_equity = curve.last().unwrap_or(capital);
    for (s, slot) in held.iter_mut().enumerate() {
        if let Some(h) = slot.take() {
            let price = exec.market_price(symbols[s].close[last], false);
            trades.push(close_position(s, h, t, price, ExitReason::EndOfWindow, exec, &mut cash, &mut traded));
            final_equity = cash;
        }
    }
    Ok(RawRun::new(curve.finish(final_equity), trades, traded, in_market, shortfall, stopped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::{FeeSchedule, Rates};
    use crate::sim::NoObserver;

    struct Series {
        t: Vec<i64>,
        c: Vec<f64>,
    }

    impl Series {
        fn flat_bars(close: &[f64]) -> Series {
            Series { t: (0..close.len() as i64).map(|i| i * 60_000).collect(), c: close.to_vec() }
        }
        fn view(&self) -> BarsView<'_> {
            // Open = high = low = close: fills at the open are at the previous close's level.
            BarsView::whole(&self.t, &self.c, &self.c, &self.c, &self.c)
        }
    }

    #[test]
    fn rotates_into_the_strongest_symbol() {
        let a = Series::flat_bars(&[100.0, 110.0, 110.0, 100.0, 100.0, 100.0]);
        let b = Series::flat_bars(&[100.0, 101.0, 101.0, 120.0, 130.0, 130.0]);
        let views = [a.view(), b.view()];
        let p = RotationParams { lookback: 1, top_n: 1, rebalance_every: 2, fraction: 1.0 };
        let mut exec = Execution {
            fees: FeeSchedule::fixed(Rates { maker_bps: 0.0, taker_bps: 0.0 }),
            slippage: 0.0,
            leverage: 1.0,
        };
        let run = rotation_loop(&views, 1000.0, &p, &mut exec, 60_000, &mut NoObserver).unwrap();
        // Bar 1 (rebalance): A +10%, B +1% -> buy A at bar 2's open (110).
        // Bar 3 (rebalance): A -9.1%, B +18.8% -> sell A at bar 4's open (100), buy B at 130.
        // Bar 5 (rebalance): B 0% -> nothing positive: pending for bar 6, which does not exist.
        assert_eq!(run.trades.len(), 2);
        let (ta, tb) = (run.trades[0], run.trades[1]);
        assert_eq!((ta.symbol, ta.entry_price, ta.exit_price), (0, 110.0, 100.0));
        assert_eq!((tb.symbol, tb.entry_price, tb.exit_reason), (1, 130.0, ExitReason::EndOfWindow));
        let after_a = 1000.0 / 110.0 * 100.0;
        assert!((run.equity[5] - after_a).abs() < 1e-9);
    }
}
