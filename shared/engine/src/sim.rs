//! The simulation loops, in `f64` (the numeric core; see `docs/execution-model.md`, "Numbers").
//!
//! Each template family has one loop: [`signal_loop`] (market orders from per-bar signal flags),
//! `grid::grid_loop` (resting limit orders) and `rotation::rotation_loop` (several symbols). They
//! share the accounting pieces here and all return a [`RawRun`], which `result` turns into
//! decimals and `metrics` into numbers.

use crate::fees::{FeeSchedule, Liquidity};
use crate::signals::{ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT};

/// Maintenance margin rate: a position is liquidated when equity falls to this share of its notional.
pub const MAINTENANCE_MARGIN: f64 = 0.005;

/// Bars between progress / cancellation checks: rare enough to cost nothing measurable, frequent
/// enough (a few hundred microseconds of simulation) that a cancel is honoured at once.
pub const CHECK_EVERY: usize = 1 << 16;

/// Whether the run goes on; returned by the [`Observer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Cancel,
}

/// Told the progress (fraction in [0, 1]) every [`CHECK_EVERY`] bars; may cancel the run.
pub trait Observer {
    fn on_progress(&mut self, fraction: f64) -> Control;
}

/// Runs to the end and reports nothing.
pub struct NoObserver;

impl Observer for NoObserver {
    fn on_progress(&mut self, _fraction: f64) -> Control {
        Control::Continue
    }
}

impl<F: FnMut(f64) -> Control> Observer for F {
    fn on_progress(&mut self, fraction: f64) -> Control {
        self(fraction)
    }
}

/// The run was cancelled by its observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Borrowed columns of one symbol's bars inside the window.
#[derive(Debug, Clone, Copy)]
pub struct BarsView<'a> {
    pub open_time: &'a [i64],
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
}

impl<'a> BarsView<'a> {
    pub fn new(bars: &'a crate::Bars, range: std::ops::Range<usize>) -> Self {
        BarsView {
            open_time: &bars.open_time[range.clone()],
            open: &bars.open[range.clone()],
            high: &bars.high[range.clone()],
            low: &bars.low[range.clone()],
            close: &bars.close[range],
        }
    }

    pub fn len(&self) -> usize {
        self.open_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open_time.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    Signal,
    Grid,
    Liquidation,
    EndOfWindow,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Signal => "signal",
            ExitReason::Grid => "grid",
            ExitReason::Liquidation => "liquidation",
            ExitReason::EndOfWindow => "end_of_window",
        }
    }
}

/// A closed round trip in `f64`. `qty` is positive; `long` tells the side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawTrade {
    pub symbol: usize,
    pub long: bool,
    pub entry_time: i64,
    pub entry_price: f64,
    pub exit_time: i64,
    pub exit_price: f64,
    pub qty: f64,
    pub entry_fee: f64,
    pub exit_fee: f64,
    pub exit_reason: ExitReason,
}

impl RawTrade {
    pub fn fee(&self) -> f64 {
        self.entry_fee + self.exit_fee
    }

    pub fn pnl(&self) -> f64 {
        let sign = if self.long { 1.0 } else { -1.0 };
        (self.exit_price - self.entry_price) * self.qty * sign - self.fee()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Equity reached zero; nothing more is traded.
    Bankrupt,
    /// The grid was liquidated and stops.
    Liquidated,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Bankrupt => "bankrupt",
            StopReason::Liquidated => "liquidated",
        }
    }
}

/// What a loop produces, in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRun {
    /// Equity at each bar's close; the last one after the end-of-window close.
    pub equity: Vec<f64>,
    pub trades: Vec<RawTrade>,
    /// Σ |qty| * price over every fill.
    pub traded_notional: f64,
    pub bars_in_market: u64,
    pub bankruptcy_shortfall: f64,
    pub stopped: Option<StopReason>,
}

/// Prices and fees common to every loop.
pub struct Execution {
    pub fees: FeeSchedule,
    /// Slippage as a fraction of price.
    pub slippage: f64,
    pub leverage: f64,
}

impl Execution {
    /// Market fill price for a buy (`buy = true`) or a sell at `price`.
    #[inline]
    pub fn market_price(&self, price: f64, buy: bool) -> f64 {
        if buy {
            price * (1.0 + self.slippage)
        } else {
            price * (1.0 - self.slippage)
        }
    }

    /// Fee of a fill, recorded in the tier window.
    #[inline]
    pub fn fee(&mut self, time: i64, qty: f64, price: f64, liquidity: Liquidity) -> f64 {
        let notional = qty.abs() * price;
        notional * self.fees.rate_for_fill(time, notional, liquidity)
    }
}

/// An open single-symbol position.
#[derive(Debug, Clone, Copy)]
struct Open {
    qty: f64,
    long: bool,
    time: i64,
    price: f64,
    fee: f64,
}

/// Liquidation price of a single position. `0` for a long that cannot be liquidated (no borrowed
/// cash); a short always has one.
pub fn liquidation_price(cash: f64, signed_qty: f64) -> f64 {
    if signed_qty > 0.0 {
        if cash >= 0.0 {
            0.0
        } else {
            -cash / (signed_qty * (1.0 - MAINTENANCE_MARGIN))
        }
    } else if signed_qty < 0.0 {
        if cash <= 0.0 {
            // Cannot happen for a short opened with positive equity; 0 means "at once" for a short.
            0.0
        } else {
            cash / (-signed_qty * (1.0 + MAINTENANCE_MARGIN))
        }
    } else {
        0.0
    }
}

/// How a signal template sizes entries.
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    pub fraction: f64,
}

/// The market-order loop of the signal templates: flags at bar `i`'s close become an order at bar
/// `i + 1`'s open.
pub fn signal_loop(
    bars: BarsView<'_>,
    flags: &[u8],
    capital: f64,
    sizing: Sizing,
    exec: &mut Execution,
    bar_ms: i64,
    observer: &mut dyn Observer,
) -> Result<RawRun, Cancelled> {
    let n = bars.len();
    let mut equity = Vec::with_capacity(n);
    let mut trades = Vec::new();
    let mut cash = capital;
    let mut pos: Option<Open> = None;
    let mut signed_qty = 0.0f64;
    let mut liq = 0.0f64;
    let mut pending = 0u8;
    let mut traded = 0.0f64;
    let mut in_market = 0u64;
    let mut shortfall = 0.0;
    let mut stopped = None;

    let mut start = 0;
    while start < n {
        let stop = (start + CHECK_EVERY).min(n);
        for i in start..stop {
            if pending != 0 {
                let t = bars.open_time[i];
                let open = bars.open[i];
                // Exit first (an exit flag, or the exit half of a reversal).
                if let Some(p) = pos {
                    let exits = if p.long { pending & EXIT_LONG != 0 } else { pending & EXIT_SHORT != 0 };
                    if exits {
                        let price = exec.market_price(open, !p.long);
                        let fee = exec.fee(t, p.qty, price, Liquidity::Taker);
                        cash += signed_qty * price - fee;
                        traded += p.qty * price;
                        trades.push(close_trade(p, t, price, fee, ExitReason::Signal));
                        pos = None;
                        signed_qty = 0.0;
                    }
                }
                if pos.is_none() && stopped.is_none() {
                    let long = pending & ENTER_LONG != 0;
                    if long || pending & ENTER_SHORT != 0 {
                        let eq = cash;
                        if eq > 0.0 {
                            let price = exec.market_price(open, long);
                            let rate = exec.fees.taker_rate(t);
                            let qty = eq * sizing.fraction * exec.leverage / (price * (1.0 + rate));
                            let fee = exec.fee(t, qty, price, Liquidity::Taker);
                            signed_qty = if long { qty } else { -qty };
                            cash -= signed_qty * price + fee;
                            traded += qty * price;
                            pos = Some(Open { qty, long, time: t, price, fee });
                            liq = liquidation_price(cash, signed_qty);
                        }
                    }
                }
                pending = 0;
            }
            if let Some(p) = pos {
                let hit = if p.long { bars.low[i] <= liq } else { bars.high[i] >= liq };
                if hit {
                    let t = bars.open_time[i];
                    let open = bars.open[i];
                    // A gap through the liquidation price fills at the open, which is worse.
                    let price = if p.long { liq.min(open) } else { liq.max(open) };
                    let fee = exec.fee(t, p.qty, price, Liquidity::Taker);
                    cash += signed_qty * price - fee;
                    traded += p.qty * price;
                    trades.push(close_trade(p, t, price, fee, ExitReason::Liquidation));
                    pos = None;
                    signed_qty = 0.0;
                    if cash <= 0.0 {
                        shortfall = -cash;
                        cash = 0.0;
                        stopped = Some(StopReason::Bankrupt);
                    }
                }
            }
            in_market += (signed_qty != 0.0) as u64;
            equity.push(cash + signed_qty * bars.close[i]);
            let f = flags[i];
            if f != 0 {
                pending = match pos {
                    Some(p) if p.long && f & EXIT_LONG != 0 => f & (EXIT_LONG | ENTER_SHORT),
                    Some(p) if !p.long && f & EXIT_SHORT != 0 => f & (EXIT_SHORT | ENTER_LONG),
                    Some(_) => 0,
                    None if f & ENTER_LONG != 0 => ENTER_LONG,
                    None => f & ENTER_SHORT,
                };
            }
        }
        start = stop;
        if observer.on_progress(start as f64 / n as f64) == Control::Cancel {
            return Err(Cancelled);
        }
    }

    if let Some(p) = pos {
        let last = n - 1;
        let t = bars.open_time[last] + bar_ms;
        let price = exec.market_price(bars.close[last], !p.long);
        let fee = exec.fee(t, p.qty, price, Liquidity::Taker);
        cash += signed_qty * price - fee;
        traded += p.qty * price;
        trades.push(close_trade(p, t, price, fee, ExitReason::EndOfWindow));
        equity[last] = cash;
    }
    Ok(RawRun {
        equity,
        trades,
        traded_notional: traded,
        bars_in_market: in_market,
        bankruptcy_shortfall: shortfall,
        stopped,
    })
}

fn close_trade(p: Open, time: i64, price: f64, fee: f64, reason: ExitReason) -> RawTrade {
    RawTrade {
        symbol: 0,
        long: p.long,
        entry_time: p.time,
        entry_price: p.price,
        exit_time: time,
        exit_price: price,
        qty: p.qty,
        entry_fee: p.fee,
        exit_fee: fee,
        exit_reason: reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::Rates;

    fn exec(bps: f64, leverage: f64) -> Execution {
        Execution { fees: FeeSchedule::fixed(Rates { maker_bps: bps, taker_bps: bps }), slippage: 0.0, leverage }
    }

    struct Cols {
        t: Vec<i64>,
        o: Vec<f64>,
        h: Vec<f64>,
        l: Vec<f64>,
        c: Vec<f64>,
    }

    impl Cols {
        fn new(rows: &[(f64, f64, f64, f64)]) -> Cols {
            Cols {
                t: (0..rows.len() as i64).map(|i| i * 60_000).collect(),
                o: rows.iter().map(|r| r.0).collect(),
                h: rows.iter().map(|r| r.1).collect(),
                l: rows.iter().map(|r| r.2).collect(),
                c: rows.iter().map(|r| r.3).collect(),
            }
        }
        fn view(&self) -> BarsView<'_> {
            BarsView { open_time: &self.t, open: &self.o, high: &self.h, low: &self.l, close: &self.c }
        }
    }

    #[test]
    fn entry_fills_next_open_and_end_of_window_closes_at_last_close() {
        let bars =
            Cols::new(&[(100.0, 100.0, 100.0, 100.0), (100.0, 110.0, 100.0, 110.0), (110.0, 120.0, 110.0, 120.0)]);
        let flags = [ENTER_LONG, 0, 0];
        let run = signal_loop(
            bars.view(),
            &flags,
            1000.0,
            Sizing { fraction: 1.0 },
            &mut exec(10.0, 1.0),
            60_000,
            &mut NoObserver,
        )
        .unwrap();
        let t = run.trades[0];
        assert_eq!((t.entry_time, t.entry_price), (60_000, 100.0));
        // qty = 1000 / (100 * 1.001); entry fee = qty * 100 * 0.001 = 1000 * 0.001 / 1.001
        let qty = 1000.0 / 100.1;
        assert!((t.qty - qty).abs() < 1e-12);
        assert_eq!(t.exit_reason, ExitReason::EndOfWindow);
        assert_eq!((t.exit_time, t.exit_price), (180_000, 120.0));
        let final_equity = qty * 120.0 * (1.0 - 0.001);
        assert!((run.equity[2] - final_equity).abs() < 1e-9);
        assert!((1000.0 + t.pnl() - final_equity).abs() < 1e-9);
        assert_eq!(run.bars_in_market, 2);
        // Equity on bar 1 close: cash 0 + qty * 110.
        assert!((run.equity[1] - qty * 110.0).abs() < 1e-9);
    }

    #[test]
    fn a_signal_on_the_last_bar_never_fills() {
        let bars = Cols::new(&[(100.0, 100.0, 100.0, 100.0), (100.0, 100.0, 100.0, 100.0)]);
        let run = signal_loop(
            bars.view(),
            &[0, ENTER_LONG],
            1000.0,
            Sizing { fraction: 1.0 },
            &mut exec(5.0, 1.0),
            60_000,
            &mut NoObserver,
        )
        .unwrap();
        assert!(run.trades.is_empty());
        assert_eq!(run.equity, vec![1000.0, 1000.0]);
    }

    #[test]
    fn reversal_exits_then_enters_at_the_same_open() {
        let bars = Cols::new(&[
            (100.0, 100.0, 100.0, 100.0),
            (100.0, 100.0, 100.0, 100.0),
            (90.0, 90.0, 90.0, 90.0),
            (80.0, 80.0, 80.0, 80.0),
        ]);
        let flags = [ENTER_LONG | EXIT_SHORT, EXIT_LONG | ENTER_SHORT, 0, 0];
        let run = signal_loop(
            bars.view(),
            &flags,
            1000.0,
            Sizing { fraction: 1.0 },
            &mut exec(0.0, 1.0),
            60_000,
            &mut NoObserver,
        )
        .unwrap();
        assert_eq!(run.trades.len(), 2);
        assert!(run.trades[0].long && !run.trades[1].long);
        assert_eq!(run.trades[1].entry_time, 120_000);
        assert_eq!(run.trades[1].entry_price, 90.0);
        // Long 10 @100 -> 90: equity 900; short 10 @90 -> 80: +100.
        assert!((run.equity[3] - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn leveraged_long_is_liquidated_at_its_price() {
        // 10x long at 100: qty 100, cash -9000. Liquidation P = 9000 / (100 * 0.995) = 90.452...
        let bars = Cols::new(&[
            (100.0, 100.0, 100.0, 100.0),
            (100.0, 100.0, 99.0, 99.0),
            (99.0, 99.0, 85.0, 86.0),
            (86.0, 86.0, 86.0, 86.0),
        ]);
        let run = signal_loop(
            bars.view(),
            &[ENTER_LONG, 0, 0, 0],
            1000.0,
            Sizing { fraction: 1.0 },
            &mut exec(0.0, 10.0),
            60_000,
            &mut NoObserver,
        )
        .unwrap();
        let t = run.trades[0];
        let p = 9000.0 / (100.0 * 0.995);
        assert_eq!(t.exit_reason, ExitReason::Liquidation);
        assert!((t.exit_price - p).abs() < 1e-9);
        assert_eq!(t.exit_time, 120_000);
        // Equity left = maintenance margin: 0.005 * 100 * P.
        assert!((run.equity[2] - 0.005 * 100.0 * p).abs() < 1e-9);
        assert!(run.equity.iter().all(|&e| e >= 0.0));
        assert_eq!(run.stopped, None);
    }

    #[test]
    fn gap_through_liquidation_goes_bankrupt_not_negative() {
        let bars = Cols::new(&[
            (100.0, 100.0, 100.0, 100.0),
            (100.0, 100.0, 100.0, 100.0),
            (50.0, 50.0, 50.0, 50.0),
            (50.0, 50.0, 50.0, 50.0),
        ]);
        let flags = [ENTER_LONG, 0, ENTER_LONG, 0];
        let run = signal_loop(
            bars.view(),
            &flags,
            1000.0,
            Sizing { fraction: 1.0 },
            &mut exec(0.0, 10.0),
            60_000,
            &mut NoObserver,
        )
        .unwrap();
        assert_eq!(run.stopped, Some(StopReason::Bankrupt));
        // qty 100 sold at 50: cash -9000 + 5000 = -4000 -> shortfall 4000, equity 0.
        assert!((run.bankruptcy_shortfall - 4000.0).abs() < 1e-9);
        assert_eq!(run.equity[2..], [0.0, 0.0]);
        assert_eq!(run.trades.len(), 1, "no entry after bankruptcy");
    }

    #[test]
    fn observer_cancels_between_chunks() {
        let n = CHECK_EVERY + 10;
        let bars = Cols::new(&vec![(100.0, 100.0, 100.0, 100.0); n]);
        let flags = vec![0u8; n];
        let mut calls = 0;
        let mut obs = |_f: f64| {
            calls += 1;
            Control::Cancel
        };
        let r =
            signal_loop(bars.view(), &flags, 1000.0, Sizing { fraction: 1.0 }, &mut exec(0.0, 1.0), 60_000, &mut obs);
        assert_eq!(r, Err(Cancelled));
        assert_eq!(calls, 1);
    }
}
