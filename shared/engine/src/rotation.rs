//! The multi-symbol loop: momentum rotation (`docs/templates.md`, `tpl_momentum_rotation`).

use std::borrow::BorrowMut;

use crate::curve::Curve;
use crate::fees::Liquidity;
use crate::sim::{
    curve_for, reportable, Account, BarCheck, BarsView, Execution, ExitReason, Observer, RawRun, RawTrade, SimEnd,
    Stop, StopReason, Trades, BLOCK, CHECK_EVERY, MAINTENANCE_MARGIN,
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
    // The symbols share one time column (the caller checks they are aligned), so times are
    // checked on the first symbol; only each window's first bar has its own predecessor.
    let mut check = BarCheck::new(&symbols[0]);
    for v in &symbols[1..] {
        if v.before.is_some_and(|b| v.open_time.first().is_some_and(|&t| t <= b)) {
            check.fail();
        }
    }
    let curve = curve_for(&symbols[0], capital, bar_ms);
    let mut sim = RotationSim::new(symbols.len(), curve, capital, p, exec, Vec::new());
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
            sim.block(symbols, b, e, &mut equity[..e - b]);
        }
        check.end_chunk(symbols, start, stop, observer)?;
        start = stop;
    }
    let end = sim.finish(symbols, bar_ms);
    Ok(RawRun::new(end.curve, end.trades, end.traded, end.in_market, end.shortfall, end.stopped))
}

/// The simulation of [`rotation_loop`] as a value, advanced a block of bars at a time (as
/// `sim::SignalSim` is for the signal templates): a job's loop drives one, a sweep many.
pub struct RotationSim<E, T> {
    account: Account<T>,
    held: Vec<Option<Held>>,
    pending: Option<Vec<usize>>,
    /// The next rebalancing bar: `lookback`, then every `rebalance_every` bars (a counter rather
    /// than a division every bar).
    rebalance_at: usize,
    lookback: usize,
    top_n: usize,
    rebalance_every: usize,
    fraction: f64,
    exec: E,
}

impl<E: BorrowMut<Execution>, T: Trades> RotationSim<E, T> {
    /// A flat account of `capital` before the window's first bar; `curve` is the window's.
    pub fn new(n_symbols: usize, curve: Curve, capital: f64, p: &RotationParams, exec: E, trades: T) -> Self {
        RotationSim {
            account: Account::new(curve, capital, trades),
            held: vec![None; n_symbols],
            pending: None,
            rebalance_at: p.lookback,
            lookback: p.lookback,
            top_n: p.top_n,
            rebalance_every: p.rebalance_every,
            fraction: p.fraction,
            exec,
        }
    }

    /// Closes held position `h` of symbol `s` at `price` (a taker fill) at time `t`.
    fn close_position(&mut self, s: usize, h: Held, t: i64, price: f64, reason: ExitReason) {
        let fee = self.exec.borrow_mut().fee(t, h.qty, price, Liquidity::Taker);
        self.account.cash += h.qty * price - fee;
        self.account.traded += h.qty * price;
        self.account.trades.record(RawTrade {
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
        });
    }

    /// The window's bars `b..e` of every symbol; `equity` (of length `e - b`) is scratch, left
    /// holding the bars' equity.
    pub fn block(&mut self, symbols: &[BarsView<'_>], b: usize, e: usize, equity: &mut [f64]) {
        for i in b..e {
            let t = symbols[0].open_time[i];
            if let Some(selected) = self.pending.take() {
                for s in 0..self.held.len() {
                    if let Some(h) = self.held[s] {
                        if !selected.contains(&s) {
                            let price = self.exec.borrow_mut().market_price(symbols[s].open[i], false);
                            self.close_position(s, h, t, price, ExitReason::Signal);
                            self.held[s] = None;
                        }
                    }
                }
                let held = &self.held;
                let marked: f64 =
                    held.iter().enumerate().filter_map(|(s, h)| h.map(|h| h.qty * symbols[s].open[i])).sum();
                let eq = self.account.cash + marked;
                let exec = self.exec.borrow_mut();
                let budget = eq * self.fraction * exec.leverage;
                let per_symbol = budget / self.top_n as f64;
                let mut remaining = (budget - marked).max(0.0);
                for &s in &selected {
                    if self.held[s].is_some() || eq <= 0.0 {
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
                    self.account.cash -= qty * price + fee;
                    self.account.traded += qty * price;
                    remaining -= notional;
                    self.held[s] = Some(Held { qty, time: t, price, fee });
                }
            }
            let any_held = self.held.iter().any(|h| h.is_some());
            if any_held && self.account.cash < 0.0 {
                // Account-wide maintenance check at every symbol's low (the adverse extreme).
                let at_lows: f64 =
                    self.held.iter().enumerate().filter_map(|(s, h)| h.map(|h| h.qty * symbols[s].low[i])).sum();
                if self.account.cash + at_lows <= MAINTENANCE_MARGIN * at_lows {
                    for s in 0..self.held.len() {
                        if let Some(h) = self.held[s].take() {
                            let price = symbols[s].low[i];
                            self.close_position(s, h, t, price, ExitReason::Liquidation);
                        }
                    }
                    if self.account.cash <= 0.0 {
                        self.account.shortfall = -self.account.cash;
                        self.account.cash = 0.0;
                        self.account.stopped = Some(StopReason::Bankrupt);
                    }
                }
            }
            let marked: f64 =
                self.held.iter().enumerate().filter_map(|(s, h)| h.map(|h| h.qty * symbols[s].close[i])).sum();
            self.account.in_market += self.held.iter().any(|h| h.is_some()) as u64;
            equity[i - b] = self.account.cash + marked;
            if i == self.rebalance_at {
                self.rebalance_at += self.rebalance_every;
                if self.account.stopped.is_none() {
                    self.pending = Some(select(symbols, i, self.lookback, self.top_n));
                }
            }
        }
        self.account.curve.extend(&symbols[0].open_time[b..e], &equity[..e - b]);
    }

    /// After the window's last bar: the end-of-window close of every held position, and the
    /// account's figures.
    pub fn finish(mut self, symbols: &[BarsView<'_>], bar_ms: i64) -> SimEnd<T> {
        let last = symbols[0].len() - 1;
        let t = symbols[0].open_time[last] + bar_ms;
        let mut final_equity = self.account.last_equity();
        for s in 0..self.held.len() {
            if let Some(h) = self.held[s].take() {
                let price = self.exec.borrow_mut().market_price(symbols[s].close[last], false);
                self.close_position(s, h, t, price, ExitReason::EndOfWindow);
                final_equity = self.account.cash;
            }
        }
        self.account.end(final_equity)
    }
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
