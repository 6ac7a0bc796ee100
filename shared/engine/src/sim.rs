//! The simulation loops, in `f64` (the numeric core; see `docs/execution-model.md`, "Numbers").
//!
//! Each template family has one loop: [`signal_loop`] (market orders from a [`Signal`]),
//! `grid::grid_loop` (resting limit orders) and `rotation::rotation_loop` (several symbols). They
//! share the accounting pieces here and all return a [`RawRun`], which `result` turns into
//! decimals and `metrics` into numbers.
//!
//! The work is bound by memory bandwidth (a year of 1m bars is 25 MB), so each loop is the run's
//! only pass over the bars. It takes them a [`BLOCK`] at a time: checks them ([`BarCheck`]),
//! computes its indicator, simulates, and hands the block's equity to the curve tracker
//! ([`Curve`]), all while the block is in L1.

use std::borrow::BorrowMut;

use crate::bars::{check_bar, BarsError};
use crate::curve::{Curve, CurveSummary};
use crate::fees::{FeeSchedule, Liquidity};
use crate::signals::{flag_table, Signal, ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT, NONE};
use crate::templates::Direction;

/// Maintenance margin rate: a position is liquidated when equity falls to this share of its notional.
pub const MAINTENANCE_MARGIN: f64 = 0.005;

/// Bars between progress / cancellation checks: rare enough to cost nothing measurable, frequent
/// enough (a few hundred microseconds of simulation) that a cancel is honoured at once.
pub const CHECK_EVERY: usize = 1 << 16;

/// Bars per block. A loop takes its bars a block at a time through a few tight loops (check,
/// indicator, simulation, equity curve): the block's bars come from memory once and stay in L1
/// (5 columns × 8 bytes × 512 = 20 KB) for the later loops, and each loop keeps its few values in
/// registers, where one loop doing everything would spill.
pub const BLOCK: usize = 512;
const _: () = assert!(CHECK_EVERY.is_multiple_of(BLOCK), "chunks are whole blocks");

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

/// Why a loop stopped before the end of the window.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The observer cancelled. The window's bars before `checked` passed the bar check; the rest
    /// were not read.
    Cancelled { checked: usize },
    /// A bar the simulation cannot use: the first bad bar of the first symbol (index into the
    /// views) that has one, as `Bars::validate_range` would report it.
    BadBar { symbol: usize, error: BarsError },
}

/// Borrowed columns of one symbol's bars inside the window.
#[derive(Debug, Clone, Copy)]
pub struct BarsView<'a> {
    pub open_time: &'a [i64],
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    /// Index of the window's first bar in the whole series (bar errors give series indices).
    pub first: usize,
    /// Open time of the bar just before the window, if any: the window's first bar must be later.
    pub before: Option<i64>,
}

impl<'a> BarsView<'a> {
    pub fn new(bars: &'a crate::Bars, range: std::ops::Range<usize>) -> Self {
        BarsView {
            open_time: &bars.open_time[range.clone()],
            open: &bars.open[range.clone()],
            high: &bars.high[range.clone()],
            low: &bars.low[range.clone()],
            close: &bars.close[range.clone()],
            first: range.start,
            before: range.start.checked_sub(1).map(|i| bars.open_time[i]),
        }
    }

    /// Whole columns as a view (the window is the whole series).
    pub fn whole(open_time: &'a [i64], open: &'a [f64], high: &'a [f64], low: &'a [f64], close: &'a [f64]) -> Self {
        BarsView { open_time, open, high, low, close, first: 0, before: None }
    }

    pub fn len(&self) -> usize {
        self.open_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open_time.is_empty()
    }

    /// Whether every bar keeps the rules [`BarsView::first_bad_bar`] checks (`true` exactly when
    /// it finds none), by [`BarCheck`]'s branch-free test a [`BLOCK`] at a time: a pass over a
    /// year of 1m bars in a fraction of the time of the bar-by-bar search.
    pub fn all_valid(&self) -> bool {
        let mut check = BarCheck::new(self);
        for from in (0..self.len()).step_by(BLOCK) {
            let r = from..(from + BLOCK).min(self.len());
            let (t, o, h) = (&self.open_time[r.clone()], &self.open[r.clone()], &self.high[r.clone()]);
            check.block(t, o, h, &self.low[r.clone()], &self.close[r]);
        }
        check.ok
    }

    /// The first bar from window index `from` on that breaks the rules of
    /// `Bars::validate_range` (volume aside), with its error.
    pub fn first_bad_bar(&self, from: usize) -> Option<BarsError> {
        (from..self.len()).find_map(|k| {
            let previous = if k > 0 { Some(self.open_time[k - 1]) } else { self.before };
            check_bar(
                self.first + k,
                self.open_time[k],
                previous,
                self.open[k],
                self.high[k],
                self.low[k],
                self.close[k],
            )
            .err()
        })
    }
}

/// The first bad bar from window index `from` on, symbol by symbol in order: what validating
/// each symbol's window in full, one symbol after the other, reports first.
pub fn first_bad_bar(views: &[BarsView<'_>], from: usize) -> Option<Stop> {
    views.iter().enumerate().find_map(|(symbol, v)| v.first_bad_bar(from).map(|error| Stop::BadBar { symbol, error }))
}

/// The bar rules of `Bars::validate_range` (open times strictly increasing, prices finite and
/// positive, `low <= open, close <= high`), checked inside the loops so the bars are read once.
///
/// Branch-free over a block of bars (so it vectorizes): the verdicts are and-ed into one flag,
/// and only when the flag drops does [`BarCheck::end_chunk`] re-read the chunk with [`check_bar`]
/// to name the first bad bar with the usual error. Volume is not read: ingest validates it and
/// the simulation does not use it.
#[derive(Debug, Clone, Copy)]
pub struct BarCheck {
    previous: i64,
    ok: bool,
}

impl BarCheck {
    pub fn new(bars: &BarsView<'_>) -> BarCheck {
        // Bars before the window are not read except this one; i64::MIN is below any window.
        BarCheck { previous: bars.before.unwrap_or(i64::MIN), ok: true }
    }

    /// The next bars of the symbol whose times are checked.
    #[inline]
    pub fn block(&mut self, time: &[i64], open: &[f64], high: &[f64], low: &[f64], close: &[f64]) {
        let (Some(&first), Some(&last)) = (time.first(), time.last()) else { return };
        self.ok &= first > self.previous;
        self.previous = last;
        // `t[k] - t[k-1] - 1` is negative exactly when the times do not increase: window times
        // are within chrono's range (about ±2^53 ms), far from overflowing. Or-ing them keeps the
        // sign of any.
        let steps = time.windows(2).fold(0i64, |acc, w| acc | w[1].wrapping_sub(w[0]).wrapping_sub(1));
        self.ok &= steps >= 0;
        self.prices(open, high, low, close);
    }

    /// The price rules only (for the other symbols of an aligned multi-symbol run).
    #[inline]
    pub fn prices(&mut self, open: &[f64], high: &[f64], low: &[f64], close: &[f64]) {
        let n = open.len();
        let (high, low, close) = (&high[..n], &low[..n], &close[..n]);
        let mut ok = true;
        for k in 0..n {
            let (o, h, l, c) = (open[k], high[k], low[k], close[k]);
            // `0 < low <= open, close <= high < inf` implies every price is finite and positive;
            // NaN fails every comparison. `&` on bools: no branch.
            ok &= (l > 0.0) & (l <= o) & (l <= c) & (o <= h) & (c <= h) & (h < f64::INFINITY);
        }
        self.ok &= ok;
    }

    /// Flags the check as failed (a condition found outside the per-bar calls).
    pub fn fail(&mut self) {
        self.ok = false;
    }

    /// At the end of the chunk of window bars `start..stop`: the first bad bar if the check
    /// failed, then progress to the observer, who may cancel.
    pub fn end_chunk(
        &mut self,
        views: &[BarsView<'_>],
        start: usize,
        stop: usize,
        observer: &mut dyn Observer,
    ) -> Result<(), Stop> {
        if !self.ok {
            if let Some(bad) = first_bad_bar(views, start) {
                return Err(bad);
            }
            self.ok = true;
        }
        if observer.on_progress(stop as f64 / views[0].len() as f64) == Control::Cancel {
            return Err(Stop::Cancelled { checked: stop });
        }
        Ok(())
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

/// Why a run stopped trading before the end of its window (`summary.stopped_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// End-of-day equity: `(day at 00:00 UTC, equity at the close of the day's last bar)`.
    pub daily: Vec<(i64, f64)>,
    /// `min_t (e_t / peak_t - 1)` over the per-bar equity (`docs/metrics.md`).
    pub max_drawdown: f64,
    /// Longest peak-to-recovery time of the per-bar equity, milliseconds.
    pub max_drawdown_ms: i64,
    pub trades: Vec<RawTrade>,
    /// Σ |qty| * price over every fill.
    pub traded_notional: f64,
    pub bars_in_market: u64,
    pub bankruptcy_shortfall: f64,
    pub stopped: Option<StopReason>,
}

impl RawRun {
    pub fn new(
        curve: CurveSummary,
        trades: Vec<RawTrade>,
        traded_notional: f64,
        bars_in_market: u64,
        bankruptcy_shortfall: f64,
        stopped: Option<StopReason>,
    ) -> RawRun {
        RawRun {
            equity: curve.equity,
            daily: curve.daily,
            max_drawdown: curve.max_drawdown,
            max_drawdown_ms: curve.max_drawdown_ms,
            trades,
            traded_notional,
            bars_in_market,
            bankruptcy_shortfall,
            stopped,
        }
    }
}

/// A fresh [`Curve`] for the bars of `view`.
pub fn curve_for(view: &BarsView<'_>, capital: f64, bar_ms: i64) -> Curve {
    let (first, last) = (view.open_time.first().copied().unwrap_or(0), view.open_time.last().copied().unwrap_or(0));
    Curve::new(capital, first, last, bar_ms, view.len())
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

/// Whether a position of `qty` shows in the result: an entry whose quantity rounds to zero at the
/// result's 8 places (equity all but gone, after liquidations) would be a trade of nothing, so it
/// is not made.
pub fn reportable(qty: f64) -> bool {
    !crate::result::quantity(qty).is_zero()
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

/// The values the signal loop reads on every bar, copied into locals for a block's loop (so they
/// stay in registers) and written back around the rare calls into [`Book`].
#[derive(Debug, Clone, Copy)]
struct Hot {
    cash: f64,
    signed_qty: f64,
    /// A bar needs the book when its low reaches `alert_low` or its high `alert_high`: the
    /// liquidation price of a long (low side) or a short (high side), the other side ±inf, which
    /// valid bars never reach; both ±inf the other way round while an order waits for the next
    /// open, so any bar reaches them. One test per bar covers fills and liquidations.
    alert_low: f64,
    alert_high: f64,
}

/// Where a loop puts its closed trades: a `Vec` for a job, running sums for a sweep
/// (`metrics::TradeStats`).
pub trait Trades {
    fn record(&mut self, trade: RawTrade);
}

impl Trades for Vec<RawTrade> {
    fn record(&mut self, trade: RawTrade) {
        self.push(trade);
    }
}

/// The account of a single-symbol signal run: everything but [`Hot`] changes only at fills.
struct Book<E, T> {
    hot: Hot,
    pos: Option<Open>,
    /// Liquidation thresholds of the position, as in [`Hot`] without a pending order.
    liq_low: f64,
    liq_high: f64,
    /// The order the last close asked for, filled at the next open.
    pending: u8,
    /// Bar from which the open position counts as in the market (none for a zero quantity).
    in_market_from: Option<usize>,
    in_market: u64,
    trades: T,
    traded: f64,
    shortfall: f64,
    stopped: Option<StopReason>,
    sizing: Sizing,
    exec: E,
}

impl<E: BorrowMut<Execution>, T: Trades> Book<E, T> {
    /// Bar `i`, with a pending order (filled at its open) or whose range reaches the liquidation
    /// price, in the order of `docs/execution-model.md`.
    #[cold]
    #[inline(never)]
    fn at_bar(&mut self, i: usize, t: i64, open: f64, high: f64, low: f64) {
        let pending = self.pending;
        if pending != 0 {
            // Exit first (an exit flag, or the exit half of a reversal).
            if let Some(p) = self.pos {
                let exits = if p.long { pending & EXIT_LONG != 0 } else { pending & EXIT_SHORT != 0 };
                if exits {
                    let price = self.exec.borrow_mut().market_price(open, !p.long);
                    self.close(p, i, t, price, ExitReason::Signal);
                }
            }
            if self.pos.is_none() && self.stopped.is_none() {
                let long = pending & ENTER_LONG != 0;
                if long || pending & ENTER_SHORT != 0 {
                    self.enter(i, t, open, long);
                }
            }
            self.pending = 0;
        }
        if low <= self.liq_low || high >= self.liq_high {
            if let Some(p) = self.pos {
                let liq = if p.long { self.liq_low } else { self.liq_high };
                // A gap through the liquidation price fills at the open, which is worse.
                let price = if p.long { liq.min(open) } else { liq.max(open) };
                self.close(p, i, t, price, ExitReason::Liquidation);
                let hot = &mut self.hot;
                if hot.cash <= 0.0 {
                    self.shortfall = -hot.cash;
                    hot.cash = 0.0;
                    self.stopped = Some(StopReason::Bankrupt);
                }
            }
        }
        (self.hot.alert_low, self.hot.alert_high) = (self.liq_low, self.liq_high);
    }

    /// A market entry at bar `i`'s open: sized off the equity at that open (all cash when flat).
    fn enter(&mut self, i: usize, t: i64, open: f64, long: bool) {
        let eq = self.hot.cash;
        if eq <= 0.0 {
            return;
        }
        let exec = self.exec.borrow_mut();
        let price = exec.market_price(open, long);
        let rate = exec.fees.taker_rate(t);
        let qty = eq * self.sizing.fraction * exec.leverage / (price * (1.0 + rate));
        if !reportable(qty) {
            return;
        }
        let fee = exec.fee(t, qty, price, Liquidity::Taker);
        let hot = &mut self.hot;
        hot.signed_qty = if long { qty } else { -qty };
        hot.cash -= hot.signed_qty * price + fee;
        self.traded += qty * price;
        self.pos = Some(Open { qty, long, time: t, price, fee });
        self.in_market_from = (hot.signed_qty != 0.0).then_some(i);
        let liq = liquidation_price(hot.cash, hot.signed_qty);
        if long {
            self.liq_low = liq;
        } else {
            self.liq_high = liq;
        }
    }

    /// Closes position `p` at `price` (a taker fill) during bar `i`.
    fn close(&mut self, p: Open, i: usize, t: i64, price: f64, reason: ExitReason) {
        let fee = self.exec.borrow_mut().fee(t, p.qty, price, Liquidity::Taker);
        let hot = &mut self.hot;
        hot.cash += hot.signed_qty * price - fee;
        self.traded += p.qty * price;
        self.trades.record(close_trade(p, t, price, fee, reason));
        self.pos = None;
        hot.signed_qty = 0.0;
        (self.liq_low, self.liq_high) = (f64::NEG_INFINITY, f64::INFINITY);
        // The position was non-zero at the closes of its bars before this one.
        if let Some(from) = self.in_market_from.take() {
            self.in_market += (i - from) as u64;
        }
    }

    /// A close whose signal flags are `f` (not 0): the order for the next open, given the position.
    #[cold]
    #[inline(never)]
    fn signal(&mut self, f: u8) {
        self.pending = match self.pos {
            Some(p) if p.long && f & EXIT_LONG != 0 => f & (EXIT_LONG | ENTER_SHORT),
            Some(p) if !p.long && f & EXIT_SHORT != 0 => f & (EXIT_SHORT | ENTER_LONG),
            Some(_) => 0,
            None if f & ENTER_LONG != 0 => ENTER_LONG,
            None => f & ENTER_SHORT,
        };
        if self.pending != 0 {
            (self.hot.alert_low, self.hot.alert_high) = (f64::INFINITY, f64::NEG_INFINITY);
        }
    }
}

/// The market-order loop of the signal templates: `signal`'s event at bar `i`'s close becomes an
/// order at bar `i + 1`'s open. Generic so each template's indicator is compiled into the loop.
#[allow(clippy::too_many_arguments)]
pub fn signal_loop<S: Signal>(
    bars: BarsView<'_>,
    mut signal: S,
    direction: Direction,
    capital: f64,
    sizing: Sizing,
    exec: &mut Execution,
    bar_ms: i64,
    observer: &mut dyn Observer,
) -> Result<RawRun, Stop> {
    let n = bars.len();
    let mut check = BarCheck::new(&bars);
    let curve = curve_for(&bars, capital, bar_ms);
    let mut sim = SignalSim::new(curve, direction, capital, sizing, exec, Vec::new());
    let mut events = [NONE; BLOCK];
    let mut equity = [0.0; BLOCK];
    let mut start = 0;
    while start < n {
        let stop = (start + CHECK_EVERY).min(n);
        for b in (start..stop).step_by(BLOCK) {
            let e = (b + BLOCK).min(stop);
            let (time, opens, highs, lows, closes) =
                (&bars.open_time[b..e], &bars.open[b..e], &bars.high[b..e], &bars.low[b..e], &bars.close[b..e]);
            let (events, equity) = (&mut events[..e - b], &mut equity[..e - b]);
            // The check first: its wide loads of all five columns bring the block from memory
            // with the most loads in flight (measured faster than letting the indicator do it).
            check.block(time, opens, highs, lows, closes);
            signal.block(b, highs, lows, closes, events);
            sim.block(b, time, opens, highs, lows, closes, events, equity);
        }
        check.end_chunk(std::slice::from_ref(&bars), start, stop, observer)?;
        start = stop;
    }
    let end = sim.finish(bars.open_time[n - 1], bars.close[n - 1], n, bar_ms);
    Ok(RawRun::new(end.curve, end.trades, end.traded, end.in_market, end.shortfall, end.stopped))
}

/// The simulation of [`signal_loop`] as a value, advanced a block of bars (and their events) at
/// a time: the job's loop drives one, a sweep (`batch`) many side by side on shared events.
pub struct SignalSim<E, T> {
    book: Book<E, T>,
    curve: Curve,
    flags_of: [u8; 4],
    capital: f64,
}

/// What a [`SignalSim`] ends with.
pub struct SimEnd<T> {
    pub curve: CurveSummary,
    /// Equity after the end-of-window close (the curve's last bar).
    pub final_equity: f64,
    pub trades: T,
    pub traded: f64,
    pub in_market: u64,
    pub shortfall: f64,
    pub stopped: Option<StopReason>,
}

/// The account of a grid or rotation run: what every loop's end reports.
pub struct Account<T> {
    pub curve: Curve,
    pub trades: T,
    pub cash: f64,
    pub traded: f64,
    pub in_market: u64,
    pub shortfall: f64,
    pub stopped: Option<StopReason>,
    pub capital: f64,
}

impl<T> Account<T> {
    /// `capital` in cash, nothing traded yet; `curve` is the window's.
    pub fn new(curve: Curve, capital: f64, trades: T) -> Self {
        Account { curve, trades, cash: capital, traded: 0.0, in_market: 0, shortfall: 0.0, stopped: None, capital }
    }

    /// The equity before the end-of-window close: the last bar's, or the capital.
    pub fn last_equity(&self) -> f64 {
        self.curve.last().unwrap_or(self.capital)
    }

    /// The account's end, with the equity after its end-of-window close.
    pub fn end(self, final_equity: f64) -> SimEnd<T> {
        SimEnd::of(self.curve, final_equity, self.trades, self.traded, self.in_market, self.shortfall)
            .stopped(self.stopped)
    }
}

impl<T> SimEnd<T> {
    /// The end of an account tracked by `curve`, after its end-of-window close.
    pub fn of(curve: Curve, final_equity: f64, trades: T, traded: f64, in_market: u64, shortfall: f64) -> Self {
        SimEnd { curve: curve.finish(final_equity), final_equity, trades, traded, in_market, shortfall, stopped: None }
    }

    /// With the reason the account stopped trading, if it did.
    pub fn stopped(self, stopped: Option<StopReason>) -> Self {
        SimEnd { stopped, ..self }
    }
}

impl<E: BorrowMut<Execution>, T: Trades> SignalSim<E, T> {
    /// A flat account of `capital` before the window's first bar; `curve` is the window's.
    pub fn new(curve: Curve, direction: Direction, capital: f64, sizing: Sizing, exec: E, trades: T) -> Self {
        SignalSim {
            book: Book {
                hot: Hot { cash: capital, signed_qty: 0.0, alert_low: f64::NEG_INFINITY, alert_high: f64::INFINITY },
                pos: None,
                liq_low: f64::NEG_INFINITY,
                liq_high: f64::INFINITY,
                pending: 0,
                in_market_from: None,
                in_market: 0,
                trades,
                traded: 0.0,
                shortfall: 0.0,
                stopped: None,
                sizing,
                exec,
            },
            curve,
            flags_of: flag_table(direction),
            capital,
        }
    }

    /// The window's bars `b..b + n` (`n` = the length of every slice), with the events at their
    /// closes; `equity` is scratch of the same length, left holding the bars' equity.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn block(
        &mut self,
        b: usize,
        time: &[i64],
        opens: &[f64],
        highs: &[f64],
        lows: &[f64],
        closes: &[f64],
        events: &[u8],
        equity: &mut [f64],
    ) {
        let book = &mut self.book;
        let flags_of = self.flags_of;
        let n = time.len();
        let (opens, highs, lows, closes, events, equity) =
            (&opens[..n], &highs[..n], &lows[..n], &closes[..n], &events[..n], &mut equity[..n]);
        let mut hot = book.hot;
        let mut k = 0;
        while k < n {
            if book.pending == 0 {
                // No order waiting: until the next bar with an event (every event has flags under
                // every direction) only a liquidation can change the account, at the first bar
                // reaching the alert prices; before it the equity is `cash + qty * close`, the
                // loop below's floats, computed in a loop of their own (which vectorizes).
                let quiet = first_nonzero(&events[k..]);
                let stop = k + first_alert(&lows[k..k + quiet], &highs[k..k + quiet], hot.alert_low, hot.alert_high);
                let (cash, qty) = (hot.cash, hot.signed_qty);
                for (e, &close) in equity[k..stop].iter_mut().zip(&closes[k..stop]) {
                    *e = cash + qty * close;
                }
                k = stop;
                if k == n {
                    break;
                }
            }
            // Bar `k`: an event, an alert or a waiting order.
            let (t, open, high, low, close) = (time[k], opens[k], highs[k], lows[k], closes[k]);
            if (low <= hot.alert_low) | (high >= hot.alert_high) {
                book.hot = hot;
                book.at_bar(b + k, t, open, high, low);
                hot = book.hot;
            }
            equity[k] = hot.cash + hot.signed_qty * close;
            let f = flags_of[events[k] as usize & 3];
            if f != 0 {
                book.hot = hot;
                book.signal(f);
                hot = book.hot;
            }
            k += 1;
        }
        book.hot = hot;
        self.curve.extend(time, &equity[..time.len().min(equity.len())]);
    }

    /// After the window's `n` bars, the last opening at `last_open` and closing at `last_close`:
    /// the end-of-window close of any open position, and the account's figures.
    pub fn finish(mut self, last_open: i64, last_close: f64, n: usize, bar_ms: i64) -> SimEnd<T> {
        let book = &mut self.book;
        let mut final_equity = self.curve.last().unwrap_or(self.capital);
        if let Some(p) = book.pos {
            let t = last_open + bar_ms;
            let price = book.exec.borrow_mut().market_price(last_close, !p.long);
            // Closed after the last bar's close, which found it open: the last bar counts.
            book.close(p, n, t, price, ExitReason::EndOfWindow);
            final_equity = book.hot.cash;
        }
        let b = self.book;
        SimEnd::of(self.curve, final_equity, b.trades, b.traded, b.in_market, b.shortfall).stopped(b.stopped)
    }
}

/// The number of leading zero bytes of `bytes`, sixteen at a time.
#[inline]
fn first_nonzero(bytes: &[u8]) -> usize {
    let mut chunks = bytes.chunks_exact(16);
    let mut zeros = 0;
    for chunk in &mut chunks {
        if chunk.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            break;
        }
        zeros += 16;
    }
    zeros + bytes[zeros..].iter().position(|&b| b != 0).unwrap_or(bytes.len() - zeros)
}

/// The index of the first bar whose low reaches `alert_low` or whose high reaches `alert_high`
/// (`lows.len()` if none), eight bars at a time.
#[inline]
fn first_alert(lows: &[f64], highs: &[f64], alert_low: f64, alert_high: f64) -> usize {
    let n = lows.len().min(highs.len());
    // A valid bar has `0 < low` and `high < inf`: a side at or below 0 (low) or at +inf (high)
    // is never reached, so that side is not read (flat: neither; a long: the lows; a short: the
    // highs). Invalid bars fail the run whatever the loop did with them (the bar check reads
    // them all). The highs are read only up to the first low alert.
    let low = if alert_low <= 0.0 { n } else { first_where(&lows[..n], |l| l <= alert_low) };
    if alert_high == f64::INFINITY {
        low
    } else {
        first_where(&highs[..low], |h| h >= alert_high)
    }
}

/// The index of the first of `values` that `hit` holds for (`values.len()` if none), eight at a
/// time.
#[inline(always)]
fn first_where(values: &[f64], hit: impl Fn(f64) -> bool) -> usize {
    let mut at = 0;
    for chunk in values.chunks_exact(8) {
        if chunk.iter().fold(false, |acc, &v| acc | hit(v)) {
            break;
        }
        at += 8;
    }
    values[at..].iter().position(|&v| hit(v)).map_or(values.len(), |k| at + k)
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
    use crate::signals::{DOWN, UP};

    /// Events given bar by bar.
    struct Script(Vec<u8>);

    impl Signal for Script {
        fn block(&mut self, first: usize, _high: &[f64], _low: &[f64], close: &[f64], events: &mut [u8]) {
            events.copy_from_slice(&self.0[first..first + close.len()]);
        }
    }

    fn run(bars: &Cols, events: &[u8], direction: Direction, ex: &mut Execution) -> RawRun {
        signal_loop(
            bars.view(),
            Script(events.to_vec()),
            direction,
            1000.0,
            Sizing { fraction: 1.0 },
            ex,
            60_000,
            &mut NoObserver,
        )
        .unwrap()
    }

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
            BarsView::whole(&self.t, &self.o, &self.h, &self.l, &self.c)
        }
    }

    #[test]
    fn entry_fills_next_open_and_end_of_window_closes_at_last_close() {
        let bars =
            Cols::new(&[(100.0, 100.0, 100.0, 100.0), (100.0, 110.0, 100.0, 110.0), (110.0, 120.0, 110.0, 120.0)]);
        let run = run(&bars, &[UP, NONE, NONE], Direction::Long, &mut exec(10.0, 1.0));
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
        let run = run(&bars, &[NONE, UP], Direction::Long, &mut exec(5.0, 1.0));
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
        let run = run(&bars, &[UP, DOWN, NONE, NONE], Direction::Both, &mut exec(0.0, 1.0));
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
        let run = run(&bars, &[UP, NONE, NONE, NONE], Direction::Long, &mut exec(0.0, 10.0));
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
        let run = run(&bars, &[UP, NONE, UP, NONE], Direction::Long, &mut exec(0.0, 10.0));
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
        let mut calls = 0;
        let mut obs = |_f: f64| {
            calls += 1;
            Control::Cancel
        };
        let script = Script(vec![NONE; n]);
        let r = signal_loop(
            bars.view(),
            script,
            Direction::Long,
            1000.0,
            Sizing { fraction: 1.0 },
            &mut exec(0.0, 1.0),
            60_000,
            &mut obs,
        );
        assert_eq!(r, Err(Stop::Cancelled { checked: CHECK_EVERY }));
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_fused_check_finds_a_bad_bar_exactly_when_the_search_does() {
        let good = (100.0, 101.0, 99.0, 100.5);
        let n = 3 * BLOCK + 7;
        let bads = [
            (0.0, 1.0, 0.0, 0.5),       // zero low
            (100.0, 99.0, 98.0, 100.0), // close above high
            (100.0, f64::INFINITY, 99.0, 100.0),
            (f64::NAN, 101.0, 99.0, 100.0),
            (100.0, 101.0, 100.5, 100.0), // low above close
            (100.0, 101.0, -1.0, 100.0),
        ];
        let clean = Cols::new(&vec![good; n]);
        assert!(clean.view().all_valid() && clean.view().first_bad_bar(0).is_none());
        for (i, bad) in bads.into_iter().enumerate() {
            for at in [0, 1, BLOCK - 1, BLOCK, 2 * BLOCK + 3, n - 1] {
                let mut rows = vec![good; n];
                rows[at] = bad;
                let bars = Cols::new(&rows);
                assert!(!bars.view().all_valid(), "bad {i} at {at}");
                assert!(bars.view().first_bad_bar(0).is_some(), "bad {i} at {at}");
            }
        }
        // Times: a repeated or a decreasing one, in a block or where two blocks meet.
        for at in [1, BLOCK, 2 * BLOCK + 3] {
            for step in [0, -60_000] {
                let mut bars = Cols::new(&vec![good; n]);
                bars.t[at] = bars.t[at - 1] + step;
                assert!(!bars.view().all_valid() && bars.view().first_bad_bar(0).is_some(), "{at} {step}");
            }
        }
    }
}
