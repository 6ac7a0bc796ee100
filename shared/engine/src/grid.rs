//! The grid loop: resting limit orders at fixed levels (`docs/templates.md`, `tpl_grid`).

use std::borrow::BorrowMut;

use crate::curve::Curve;
use crate::fees::Liquidity;
use crate::sim::{
    curve_for, Account, BarCheck, BarsView, Execution, ExitReason, Observer, RawRun, RawTrade, SimEnd, Stop,
    StopReason, Trades, BLOCK, CHECK_EVERY, MAINTENANCE_MARGIN,
};
use crate::templates::Spacing;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    /// Waiting for a close above its buy level before its buy order rests.
    Idle,
    /// Buy order live at its level.
    Armed,
    /// Bought; sell order live one level up.
    Holding { time: i64, fee: f64 },
}

/// The price levels, lowest first, both bounds included exactly.
pub fn levels(n: usize, lower: f64, upper: f64, spacing: Spacing) -> Vec<f64> {
    let steps = (n - 1) as f64;
    let mut out: Vec<f64> = (0..n)
        .map(|k| match spacing {
            Spacing::Arithmetic => lower + (upper - lower) * k as f64 / steps,
            Spacing::Geometric => lower * (upper / lower).powf(k as f64 / steps),
        })
        .collect();
    out[0] = lower;
    out[n - 1] = upper;
    out
}

struct Grid {
    levels: Vec<f64>,
    qty: Vec<f64>,
    cells: Vec<Cell>,
    /// Highest live buy level, lowest live sell level, lowest idle buy level: a bar that touches
    /// none of them changes nothing, which lets most bars skip the scan over cells.
    max_buy: f64,
    min_sell: f64,
    min_idle: f64,
    /// Inventory: Σ qty of holding cells.
    held: f64,
}

impl Grid {
    fn refresh(&mut self) {
        self.max_buy = f64::NEG_INFINITY;
        self.min_sell = f64::INFINITY;
        self.min_idle = f64::INFINITY;
        self.held = 0.0;
        for (k, cell) in self.cells.iter().enumerate() {
            match cell {
                Cell::Idle => self.min_idle = self.min_idle.min(self.levels[k]),
                Cell::Armed => self.max_buy = self.max_buy.max(self.levels[k]),
                Cell::Holding { .. } => {
                    self.min_sell = self.min_sell.min(self.levels[k + 1]);
                    self.held += self.qty[k];
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn grid_loop(
    bars: BarsView<'_>,
    n_levels: usize,
    lower: f64,
    upper: f64,
    spacing: Spacing,
    capital: f64,
    exec: &mut Execution,
    bar_ms: i64,
    observer: &mut dyn Observer,
) -> Result<RawRun, Stop> {
    let n = bars.len();
    let p = GridParams { levels: n_levels, lower, upper, spacing };
    let curve = curve_for(&bars, capital, bar_ms);
    let mut sim = GridSim::new(&p, bars.open_time[0], bars.open[0], curve, capital, exec, Vec::new());
    let mut check = BarCheck::new(&bars);
    let mut equity = [0.0; BLOCK];
    let mut start = 0;
    while start < n {
        let stop = (start + CHECK_EVERY).min(n);
        for b in (start..stop).step_by(BLOCK) {
            let e = (b + BLOCK).min(stop);
            let (time, opens, highs, lows, closes) =
                (&bars.open_time[b..e], &bars.open[b..e], &bars.high[b..e], &bars.low[b..e], &bars.close[b..e]);
            check.block(time, opens, highs, lows, closes);
            sim.block(time, opens, highs, lows, closes, &mut equity[..e - b]);
        }
        check.end_chunk(std::slice::from_ref(&bars), start, stop, observer)?;
        start = stop;
    }
    let end = sim.finish(bars.open_time[n - 1], bars.close[n - 1], bar_ms);
    Ok(RawRun::new(end.curve, end.trades, end.traded, end.in_market, end.shortfall, end.stopped))
}

/// A grid's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridParams {
    pub levels: usize,
    pub lower: f64,
    pub upper: f64,
    pub spacing: Spacing,
}

/// The simulation of [`grid_loop`] as a value, advanced a block of bars at a time (as
/// `sim::SignalSim` is for the signal templates): a job's loop drives one, a sweep many.
pub struct GridSim<E, T> {
    account: Account<T>,
    grid: Grid,
    exec: E,
}

impl<E: BorrowMut<Execution>, T: Trades> GridSim<E, T> {
    /// A flat account of `capital` before the window's first bar, which opens at `first_time` at
    /// `first_open`; `curve` is the window's.
    pub fn new(
        p: &GridParams,
        first_time: i64,
        first_open: f64,
        curve: Curve,
        capital: f64,
        mut exec: E,
        trades: T,
    ) -> Self {
        let n_levels = p.levels;
        let levels = levels(n_levels, p.lower, p.upper, p.spacing);
        let budget = capital * exec.borrow_mut().leverage / (n_levels - 1) as f64;
        let maker = exec.borrow_mut().fees.maker_rate(first_time);
        let qty: Vec<f64> = levels[..n_levels - 1].iter().map(|l| budget / (l * (1.0 + maker))).collect();
        let cells =
            levels[..n_levels - 1].iter().map(|&l| if l < first_open { Cell::Armed } else { Cell::Idle }).collect();
        let mut grid = Grid { levels, qty, cells, max_buy: 0.0, min_sell: 0.0, min_idle: 0.0, held: 0.0 };
        grid.refresh();
        GridSim { account: Account::new(curve, capital, trades), grid, exec }
    }

    /// The next bars of the window (every slice of the same length); `equity` is scratch of that
    /// length, left holding the bars' equity.
    pub fn block(
        &mut self,
        time: &[i64],
        opens: &[f64],
        highs: &[f64],
        lows: &[f64],
        closes: &[f64],
        equity: &mut [f64],
    ) {
        let (grid, exec, trades) = (&mut self.grid, self.exec.borrow_mut(), &mut self.account.trades);
        let (mut cash, mut traded, mut in_market) = (self.account.cash, self.account.traded, self.account.in_market);
        let bars_of_block = time.iter().zip(opens).zip(highs).zip(lows).zip(closes).zip(equity.iter_mut());
        for (((((&t, &open), &high), &low), &close), equity) in bars_of_block {
            if low <= grid.max_buy || high >= grid.min_sell {
                for k in 0..grid.cells.len() {
                    let (buy, sell, q) = (grid.levels[k], grid.levels[k + 1], grid.qty[k]);
                    match grid.cells[k] {
                        Cell::Armed if low <= buy => {
                            let fee = exec.fee(t, q, buy, Liquidity::Maker);
                            cash -= q * buy + fee;
                            traded += q * buy;
                            grid.cells[k] = Cell::Holding { time: t, fee };
                        }
                        Cell::Holding { time, fee: entry_fee } if high >= sell => {
                            let fee = exec.fee(t, q, sell, Liquidity::Maker);
                            cash += q * sell - fee;
                            traded += q * sell;
                            trades.record(cell_trade(time, buy, t, sell, q, entry_fee, fee, ExitReason::Grid));
                            grid.cells[k] = Cell::Armed;
                        }
                        _ => {}
                    }
                }
                grid.refresh();
            }
            if grid.held > 0.0 && cash < 0.0 {
                let liq = -cash / (grid.held * (1.0 - MAINTENANCE_MARGIN));
                if low <= liq {
                    let price = liq.min(open);
                    for k in 0..grid.cells.len() {
                        if let Cell::Holding { time, fee: entry_fee } = grid.cells[k] {
                            let q = grid.qty[k];
                            let fee = exec.fee(t, q, price, Liquidity::Taker);
                            cash += q * price - fee;
                            traded += q * price;
                            let level = grid.levels[k];
                            trades.record(cell_trade(
                                time,
                                level,
                                t,
                                price,
                                q,
                                entry_fee,
                                fee,
                                ExitReason::Liquidation,
                            ));
                        }
                    }
                    grid.cells.iter_mut().for_each(|c| *c = Cell::Idle);
                    grid.refresh();
                    grid.min_idle = f64::INFINITY; // the grid stops: nothing is armed again
                    self.account.stopped = Some(StopReason::Liquidated);
                    if cash < 0.0 {
                        self.account.shortfall = -cash;
                        cash = 0.0;
                        self.account.stopped = Some(StopReason::Bankrupt);
                    }
                }
            }
            if close > grid.min_idle {
                for k in 0..grid.cells.len() {
                    if grid.cells[k] == Cell::Idle && grid.levels[k] < close {
                        grid.cells[k] = Cell::Armed;
                    }
                }
                grid.refresh();
            }
            in_market += (grid.held > 0.0) as u64;
            *equity = cash + grid.held * close;
        }
        (self.account.cash, self.account.traded, self.account.in_market) = (cash, traded, in_market);
        self.account.curve.extend(time, &equity[..time.len()]);
    }

    /// After the window's last bar (opening at `last_open`, closing at `last_close`): the
    /// end-of-window close of the held cells, and the account's figures.
    pub fn finish(mut self, last_open: i64, last_close: f64, bar_ms: i64) -> SimEnd<T> {
        let mut final_equity = self.account.last_equity();
        let grid = &self.grid;
        if grid.held > 0.0 {
            let t = last_open + bar_ms;
            let exec = self.exec.borrow_mut();
            let price = exec.market_price(last_close, false);
            for k in 0..grid.cells.len() {
                if let Cell::Holding { time, fee: entry_fee } = grid.cells[k] {
                    let q = grid.qty[k];
                    let fee = exec.fee(t, q, price, Liquidity::Taker);
                    self.account.cash += q * price - fee;
                    self.account.traded += q * price;
                    let level = grid.levels[k];
                    self.account.trades.record(cell_trade(
                        time,
                        level,
                        t,
                        price,
                        q,
                        entry_fee,
                        fee,
                        ExitReason::EndOfWindow,
                    ));
                }
            }
            final_equity = self.account.cash;
        }
        self.account.end(final_equity)
    }
}

#[allow(clippy::too_many_arguments)]
fn cell_trade(
    entry_time: i64,
    entry_price: f64,
    exit_time: i64,
    exit_price: f64,
    qty: f64,
    entry_fee: f64,
    exit_fee: f64,
    exit_reason: ExitReason,
) -> RawTrade {
    RawTrade {
        symbol: 0,
        long: true,
        entry_time,
        entry_price,
        exit_time,
        exit_price,
        qty,
        entry_fee,
        exit_fee,
        exit_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::{FeeSchedule, Rates};
    use crate::sim::NoObserver;

    fn exec(maker_bps: f64, leverage: f64) -> Execution {
        Execution { fees: FeeSchedule::fixed(Rates { maker_bps, taker_bps: 5.0 }), slippage: 0.0, leverage }
    }

    fn run(rows: &[(f64, f64, f64, f64)], levels: usize, lower: f64, upper: f64, ex: &mut Execution) -> RawRun {
        let t: Vec<i64> = (0..rows.len() as i64).map(|i| i * 60_000).collect();
        let o: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let h: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let l: Vec<f64> = rows.iter().map(|r| r.2).collect();
        let c: Vec<f64> = rows.iter().map(|r| r.3).collect();
        let view = BarsView::whole(&t, &o, &h, &l, &c);
        grid_loop(view, levels, lower, upper, Spacing::Arithmetic, 900.0, ex, 60_000, &mut NoObserver).unwrap()
    }

    #[test]
    fn levels_are_spaced_as_documented() {
        assert_eq!(levels(4, 100.0, 130.0, Spacing::Arithmetic), vec![100.0, 110.0, 120.0, 130.0]);
        let g = levels(3, 100.0, 400.0, Spacing::Geometric);
        assert_eq!((g[0], g[2]), (100.0, 400.0));
        assert!((g[1] - 200.0).abs() < 1e-9);
    }

    #[test]
    fn hand_computed_grid_round_trip() {
        // Levels 100, 110, 120, 130; 3 cells of 300 each; no fees.
        // Bar 0 opens at 115: cells 0 (100) and 1 (110) are armed, cell 2 (120) idle.
        // Bar 1 dips to 108: cell 1 buys 300/110 at 110. Its sell (120) is live from bar 2 only,
        //   so bar 1's high of 121 sells nothing even though it touches 120 (conservative rule).
        // Bar 2 high 125: cell 1 sells at 120. Close 125 > 120: cell 2 armed from bar 3.
        // Bar 3 low 119: cell 2 buys at 120, cell 1 (110) untouched. Closes at 119.
        let rows = [
            (115.0, 116.0, 112.0, 115.0),
            (115.0, 121.0, 108.0, 115.0),
            (115.0, 125.0, 114.0, 125.0),
            (125.0, 125.0, 119.0, 119.0),
        ];
        let r = run(&rows, 4, 100.0, 130.0, &mut exec(0.0, 1.0));
        assert_eq!(r.trades.len(), 2);
        let t = r.trades[0];
        assert_eq!((t.entry_price, t.exit_price, t.entry_time, t.exit_time), (110.0, 120.0, 60_000, 120_000));
        assert!((t.qty - 300.0 / 110.0).abs() < 1e-12);
        assert!((t.pnl() - 300.0 / 110.0 * 10.0).abs() < 1e-9);
        // Cell 2 still holds at the end: closed at the last close 119.
        let e = r.trades[1];
        assert_eq!((e.entry_price, e.exit_price, e.exit_reason), (120.0, 119.0, ExitReason::EndOfWindow));
        let expected = 900.0 + t.pnl() + e.pnl();
        assert!((r.equity[3] - expected).abs() < 1e-9);
    }

    #[test]
    fn one_bar_touching_several_levels_fills_each_cell_once() {
        // Opens 125 with every cell armed; one bar sweeps 95..131: all three buys fill and none of
        // their sells (live from the next bar, which stays below the lowest sell at 110).
        let rows = [(125.0, 131.0, 95.0, 105.0), (105.0, 105.0, 105.0, 105.0)];
        let r = run(&rows, 4, 100.0, 130.0, &mut exec(2.0, 1.0));
        assert_eq!(r.trades.len(), 3);
        assert!(r.trades.iter().all(|t| t.exit_reason == ExitReason::EndOfWindow && t.entry_time == 0));
        // Maker fee 2 bps on each buy: qty * level * 0.0002 = 300 / 1.0002 * 0.0002.
        let entry_fee = 300.0 / 1.0002 * 0.0002;
        assert!(r.trades.iter().all(|t| (t.entry_fee - entry_fee).abs() < 1e-12));
    }

    #[test]
    fn price_above_the_range_sells_everything_and_waits() {
        let rows = [(105.0, 105.0, 99.0, 100.0), (100.0, 140.0, 100.0, 140.0), (140.0, 150.0, 140.0, 150.0)];
        let r = run(&rows, 4, 100.0, 130.0, &mut exec(0.0, 1.0));
        // Bar 0 buys cell 0 at 100; bar 1 sells it at 110; cells 1 and 2 armed at close 140 but never touched.
        assert_eq!(r.trades.len(), 1);
        assert_eq!(r.trades[0].exit_reason, ExitReason::Grid);
        assert_eq!(r.equity[2], r.equity[1]);
        assert_eq!(r.bars_in_market, 1);
    }
}
