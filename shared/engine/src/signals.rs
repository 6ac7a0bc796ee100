//! Signal templates' indicators, stepped bar by bar inside the simulation loop ([`Signal`]).
//!
//! A bar's event, turned into flags by the direction, says what the close of that bar asks for;
//! the simulation turns them into an order for the next open according to the current position.
//! The formulas are the ones in `docs/templates.md`; the vectorbt cross-check reproduces them
//! exactly.

use crate::templates::Direction;

pub const ENTER_LONG: u8 = 1;
pub const EXIT_LONG: u8 = 2;
pub const ENTER_SHORT: u8 = 4;
pub const EXIT_SHORT: u8 = 8;

/// Flags for an "up" event (cross above, breakout above, oversold) and a "down" event.
fn event_flags(direction: Direction) -> (u8, u8) {
    match direction {
        Direction::Long => (ENTER_LONG, EXIT_LONG),
        Direction::Short => (EXIT_SHORT, ENTER_SHORT),
        Direction::Both => (ENTER_LONG | EXIT_SHORT, EXIT_LONG | ENTER_SHORT),
    }
}

/// What a bar's close says, before the direction turns it into flags: nothing, an "up" event or a
/// "down" event.
pub const NONE: u8 = 0;
pub const UP: u8 = 1;
pub const DOWN: u8 = 2;

/// The flags each event stands for under `direction`, indexed by [`NONE`], [`UP`], [`DOWN`].
pub fn flag_table(direction: Direction) -> [u8; 4] {
    let (up, down) = event_flags(direction);
    [0, up, down, 0]
}

/// An indicator computed inside the simulation loop, a block of bars at a time, so the bars are
/// read once per run and no per-bar flag or indicator column is stored.
pub trait Signal {
    /// The events ([`NONE`], [`UP`] or [`DOWN`]) at the closes of bars `first..first + n`, from
    /// their highs, lows and closes (`n` = `close.len()`, the length of every slice). Called for
    /// consecutive blocks from bar 0.
    ///
    /// Implementations copy their running state into locals for the block's loop: state behind
    /// `&mut self` would stay in memory (stores into the indicator's own buffers might alias it),
    /// putting a store and a reload on the indicator's per-bar dependency chain.
    fn block(&mut self, first: usize, high: &[f64], low: &[f64], close: &[f64], events: &mut [u8]);
}

/// Moving-average crossover. `sma_w[i] = (C[i] - C[i-w]) / w` with `C` the running sum of closes.
pub struct MaCross {
    fast: usize,
    slow: usize,
    sum: f64,
    /// `C[j]` at slot `(j + 1) % len` (slot 0 starts as `C[-1] = 0`): the last `slow + 1` running
    /// sums. The means must be these exact differences of running sums, the floats numpy's cumsum
    /// gives (the vectorbt cross-check compares crossings bar by bar); a power-of-two length makes
    /// the wrap a mask instead of a division.
    ring: Box<[f64]>,
    /// `1 + sign` of fast - slow on the previous bar.
    prev: usize,
}

impl MaCross {
    pub fn new(fast: usize, slow: usize) -> MaCross {
        let size = (slow + 1).next_power_of_two();
        MaCross { fast, slow, sum: 0.0, ring: vec![0.0; size].into_boxed_slice(), prev: 1 }
    }
}

/// The event for (previous, current) sign of fast - slow, each as `1 + sign` (0, 1, 2), at
/// `3 * previous + current`: up when the sign turns positive from <= 0, down when it turns
/// negative from >= 0. Padded to 16 so a masked index needs no bounds check.
pub(crate) const CROSSING: [u8; 16] = [NONE, NONE, UP, DOWN, NONE, UP, DOWN, NONE, NONE, 0, 0, 0, 0, 0, 0, 0];

impl Signal for MaCross {
    // Not inlined: compiled on its own, the loop keeps its state in registers (inlined into the
    // simulation loop, register pressure there spilled the running sum onto its dependency chain).
    #[inline(never)]
    fn block(&mut self, first: usize, _high: &[f64], _low: &[f64], close: &[f64], events: &mut [u8]) {
        let (fast, slow) = (self.fast, self.slow);
        let (fast_w, slow_w) = (fast as f64, slow as f64);
        let ring = &mut self.ring[..];
        let mask = ring.len() - 1;
        let (mut sum, mut prev) = (self.sum, self.prev);
        // Bars before `slow` (the start of the run): the means are not both defined yet, or the
        // bar before is missing.
        let warm_up = slow.saturating_sub(first).min(close.len());
        let (warm_close, steady_close) = close.split_at(warm_up);
        let (warm_events, steady_events) = events.split_at_mut(warm_up);
        for (k, (&c, event)) in warm_close.iter().zip(warm_events.iter_mut()).enumerate() {
            let slot = first + k + 1;
            sum += c;
            ring[slot & mask] = sum;
            *event = NONE;
            if slot == slow {
                // Bar `slow - 1`: both means defined, the first sign to compare with.
                let fast_mean = (sum - ring[(slot - fast) & mask]) / fast_w;
                let slow_mean = (sum - ring[(slot - slow) & mask]) / slow_w;
                prev = 1 + (fast_mean > slow_mean) as usize - (fast_mean < slow_mean) as usize;
            }
        }
        let first = first + warm_up;
        for (k, (&c, event)) in steady_close.iter().zip(steady_events.iter_mut()).enumerate() {
            let slot = first + k + 1;
            sum += c;
            ring[slot & mask] = sum;
            let fast_mean = (sum - ring[(slot - fast) & mask]) / fast_w;
            let slow_mean = (sum - ring[(slot - slow) & mask]) / slow_w;
            // Comparing the means themselves, so equal means count as neither above nor below,
            // exactly as the doc's `<=` / `>=` say.
            let now = 1 + (fast_mean > slow_mean) as usize - (fast_mean < slow_mean) as usize;
            *event = CROSSING[(3 * prev + now) & 15];
            prev = now;
        }
        (self.sum, self.prev) = (sum, prev);
    }
}

/// Donchian breakout: `upper[i] = max(high[i-n..i])`, `lower[i] = min(low[i-n..i])` over the
/// previous `n` bars; up when `close > upper`, down when `close < lower`.
///
/// The sliding extremes use van Herk / Gil-Werman blocks of `n` bars: the previous `n` bars are a
/// suffix of the last complete block (its suffix extremes, computed once when it completes) plus
/// the bars of the current block (a running extreme). Three comparisons a bar per side and no
/// data-dependent branches, where a monotonic deque pops an unpredictable number of candidates.
pub struct Breakout<'a> {
    high: &'a [f64],
    low: &'a [f64],
    lookback: usize,
    /// Bars in the current block.
    filled: usize,
    block_max: f64,
    block_min: f64,
    /// `suffix_max[k]` = max of the last complete block's highs from its `k`-th bar on.
    suffix_max: Vec<f64>,
    suffix_min: Vec<f64>,
}

impl<'a> Breakout<'a> {
    /// `high` and `low` are the whole window's columns: a completed block is re-read from them.
    pub fn new(high: &'a [f64], low: &'a [f64], lookback: usize) -> Breakout<'a> {
        Breakout {
            high,
            low,
            lookback,
            filled: 0,
            block_max: f64::NEG_INFINITY,
            block_min: f64::INFINITY,
            suffix_max: vec![f64::NEG_INFINITY; lookback],
            suffix_min: vec![f64::INFINITY; lookback],
        }
    }

    /// Bar `last` completed a block: its suffix extremes replace the previous block's.
    #[inline(never)]
    fn complete_block(&mut self, last: usize) {
        let first = last + 1 - self.lookback;
        let (high, low) = (&self.high[first..=last], &self.low[first..=last]);
        let (mut hi, mut lo) = (f64::NEG_INFINITY, f64::INFINITY);
        // From the end, four bars at a time: a group's own suffix extremes do not wait for the
        // running ones, so the dependency chain takes one step per group instead of one per bar
        // (max and min are exact, so grouping changes no value).
        let groups = high.rchunks_exact(4).zip(low.rchunks_exact(4));
        let outputs = self.suffix_max.rchunks_exact_mut(4).zip(self.suffix_min.rchunks_exact_mut(4));
        for ((h, l), (suffix_max, suffix_min)) in groups.zip(outputs) {
            let h2 = max(h[2], h[3]);
            let h1 = max(h[1], h2);
            let h0 = max(h[0], h1);
            let l2 = min(l[2], l[3]);
            let l1 = min(l[1], l2);
            let l0 = min(l[0], l1);
            suffix_max.copy_from_slice(&[max(h0, hi), max(h1, hi), max(h2, hi), max(h[3], hi)]);
            suffix_min.copy_from_slice(&[min(l0, lo), min(l1, lo), min(l2, lo), min(l[3], lo)]);
            (hi, lo) = (max(h0, hi), min(l0, lo));
        }
        let head = self.lookback % 4;
        for k in (0..head).rev() {
            hi = max(hi, high[k]);
            lo = min(lo, low[k]);
            self.suffix_max[k] = hi;
            self.suffix_min[k] = lo;
        }
    }
}

/// `max` / `min` as one comparison each (no NaN handling: the loops reject bars with NaN prices).
#[inline(always)]
fn max(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

#[inline(always)]
fn min(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

impl Signal for Breakout<'_> {
    // Not inlined: compiled on its own, the loop keeps its state in registers (inlined into the
    // simulation loop, register pressure there spilled the running sum onto its dependency chain).
    #[inline(never)]
    fn block(&mut self, first: usize, high: &[f64], low: &[f64], close: &[f64], events: &mut [u8]) {
        let lookback = self.lookback;
        let (mut filled, mut block_max, mut block_min) = (self.filled, self.block_max, self.block_min);
        let bars = high.iter().zip(low).zip(close).zip(events.iter_mut());
        for (k, (((&h, &l), &c), event)) in bars.enumerate() {
            let i = first + k;
            *event = NONE;
            if i >= lookback {
                // The previous `lookback` bars: the last `lookback - filled` of the complete
                // block, then the `filled` bars of the current one.
                let upper = max(self.suffix_max[filled], block_max);
                let lower = min(self.suffix_min[filled], block_min);
                *event = if c > upper {
                    UP
                } else if c < lower {
                    DOWN
                } else {
                    NONE
                };
            }
            block_max = max(block_max, h);
            block_min = min(block_min, l);
            filled += 1;
            if filled == lookback {
                self.complete_block(i);
                (filled, block_max, block_min) = (0, f64::NEG_INFINITY, f64::INFINITY);
            }
        }
        (self.filled, self.block_max, self.block_min) = (filled, block_max, block_min);
    }
}

/// Wilder RSI reversion: up (oversold) when `RSI < oversold`, down when `RSI > overbought`.
pub struct RsiReversion {
    rsi: RsiSeries,
    oversold: f64,
    overbought: f64,
}

impl RsiReversion {
    pub fn new(period: usize, oversold: f64, overbought: f64) -> RsiReversion {
        RsiReversion { rsi: RsiSeries::new(period), oversold, overbought }
    }
}

/// The event of an RSI value: NaN (not yet defined) is neither below nor above a threshold.
#[inline(always)]
pub fn rsi_event(rsi: f64, oversold: f64, overbought: f64) -> u8 {
    if rsi < oversold {
        UP
    } else if rsi > overbought {
        DOWN
    } else {
        NONE
    }
}

impl Signal for RsiReversion {
    fn block(&mut self, first: usize, _high: &[f64], _low: &[f64], close: &[f64], events: &mut [u8]) {
        let mut rsi = [0.0; crate::sim::BLOCK];
        for (k, (close, events)) in close.chunks(rsi.len()).zip(events.chunks_mut(rsi.len())).enumerate() {
            let rsi = &mut rsi[..close.len()];
            self.rsi.block(first + k * crate::sim::BLOCK, close, rsi);
            for (event, &r) in events.iter_mut().zip(rsi.iter()) {
                *event = rsi_event(r, self.oversold, self.overbought);
            }
        }
    }
}

/// Wilder's RSI of the closes, bar by bar (NaN before bar `period`, where it is not defined); a
/// sweep computes it once per period and thresholds it per config.
pub struct RsiSeries {
    period: usize,
    prev_close: f64,
    gain: f64,
    loss: f64,
}

impl RsiSeries {
    pub fn new(period: usize) -> RsiSeries {
        RsiSeries { period, prev_close: 0.0, gain: 0.0, loss: 0.0 }
    }

    /// The RSI at the closes of bars `first..first + n` (`n` = `close.len()` = `rsi.len()`);
    /// called for consecutive blocks from bar 0.
    // Not inlined: compiled on its own, the loop keeps its state in registers (inlined into the
    // simulation loop, register pressure there spilled the running sum onto its dependency chain).
    #[inline(never)]
    pub fn block(&mut self, first: usize, close: &[f64], rsi: &mut [f64]) {
        let period = self.period;
        let p = period as f64;
        let (mut prev_close, mut gain, mut loss) = (self.prev_close, self.gain, self.loss);
        for (k, (&c, out)) in close.iter().zip(rsi.iter_mut()).enumerate() {
            let i = first + k;
            let d = c - prev_close;
            prev_close = c;
            *out = f64::NAN;
            if i == 0 {
                continue;
            }
            if i <= period {
                // The first averages: the mean of the first `period` changes.
                if d > 0.0 {
                    gain += d;
                } else {
                    loss -= d;
                }
                if i < period {
                    continue;
                }
                gain /= p;
                loss /= p;
            } else {
                let (g, l) = if d > 0.0 { (d, 0.0) } else { (0.0, -d) };
                gain = (gain * (p - 1.0) + g) / p;
                loss = (loss * (p - 1.0) + l) / p;
            }
            *out = rsi_value(gain, loss);
        }
        (self.prev_close, self.gain, self.loss) = (prev_close, gain, loss);
    }
}

/// Runs `signal` over whole columns into one flag byte per bar (for tools and tests; the
/// simulation runs the signal block by block inside its loop).
pub fn flags(mut signal: impl Signal, high: &[f64], low: &[f64], close: &[f64], direction: Direction) -> Vec<u8> {
    let mut events = vec![NONE; close.len()];
    for first in (0..close.len()).step_by(crate::sim::BLOCK) {
        let end = (first + crate::sim::BLOCK).min(close.len());
        signal.block(first, &high[first..end], &low[first..end], &close[first..end], &mut events[first..end]);
    }
    let table = flag_table(direction);
    events.into_iter().map(|e| table[e as usize]).collect()
}

/// [`MaCross`] flags for whole columns.
pub fn ma_cross(close: &[f64], fast: usize, slow: usize, direction: Direction) -> Vec<u8> {
    flags(MaCross::new(fast, slow), close, close, close, direction)
}

/// [`Breakout`] flags for whole columns.
pub fn breakout(high: &[f64], low: &[f64], close: &[f64], lookback: usize, direction: Direction) -> Vec<u8> {
    flags(Breakout::new(high, low, lookback), high, low, close, direction)
}

/// [`RsiReversion`] flags for whole columns.
pub fn rsi_reversion(close: &[f64], period: usize, oversold: f64, overbought: f64, direction: Direction) -> Vec<u8> {
    flags(RsiReversion::new(period, oversold, overbought), close, close, close, direction)
}

pub fn rsi_value(avg_gain: f64, avg_loss: f64) -> f64 {
    if avg_loss == 0.0 {
        if avg_gain == 0.0 {
            50.0
        } else {
            100.0
        }
    } else {
        100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first implementation (whole-column running sums, a monotonic deque): the streaming
    /// signals must give the same flags bar for bar.
    mod reference {
        use super::super::{event_flags, rsi_value};
        use crate::templates::Direction;

        // Moving-average crossover. `sma_w[i] = (C[i] - C[i-w]) / w` with `C` the running sum of closes.
        pub(super) fn ma_cross(close: &[f64], fast: usize, slow: usize, direction: Direction) -> Vec<u8> {
            let n = close.len();
            let mut out = vec![0u8; n];
            if n <= slow {
                return out;
            }
            let (up, down) = event_flags(direction);
            // Running sums; kept whole because the sum differences must be the same floats numpy's cumsum
            // gives (the cross-check compares crossings bar by bar).
            let mut csum = Vec::with_capacity(n);
            let mut acc = 0.0f64;
            for &c in close {
                acc += c;
                csum.push(acc);
            }
            let sma = |i: usize, w: usize| -> f64 {
                let prev = if i >= w { csum[i - w] } else { 0.0 };
                (csum[i] - prev) / w as f64
            };
            // Sign of fast - slow on the previous bar, comparing the means themselves so ties (equal
            // means) count as "not above" and "not below" exactly as the doc's `<=` / `>=` say.
            let relation = |f: f64, s: f64| -> i8 {
                if f > s {
                    1
                } else if f < s {
                    -1
                } else {
                    0
                }
            };
            let mut prev = relation(sma(slow - 1, fast), sma(slow - 1, slow));
            for i in slow..n {
                let now = relation(sma(i, fast), sma(i, slow));
                if now == 1 && prev <= 0 {
                    out[i] = up;
                } else if now == -1 && prev >= 0 {
                    out[i] = down;
                }
                prev = now;
            }
            out
        }

        // Donchian breakout: `upper[i] = max(high[i-n..i])`, `lower[i] = min(low[i-n..i])` over the
        // previous `n` bars; up when `close > upper`, down when `close < lower`.
        pub(super) fn breakout(
            high: &[f64],
            low: &[f64],
            close: &[f64],
            lookback: usize,
            direction: Direction,
        ) -> Vec<u8> {
            let n = close.len();
            let mut out = vec![0u8; n];
            if n <= lookback {
                return out;
            }
            let (up, down) = event_flags(direction);
            let mut maxq = MonotonicWindow::new(lookback);
            let mut minq = MonotonicWindow::new(lookback);
            for i in 0..n {
                if i >= lookback {
                    let upper = maxq.extreme_since(high, i - lookback);
                    let lower = minq.extreme_since(low, i - lookback);
                    let c = close[i];
                    if c > upper {
                        out[i] = up;
                    } else if c < lower {
                        out[i] = down;
                    }
                }
                maxq.push(high, i, |a, b| a >= b);
                minq.push(low, i, |a, b| a <= b);
            }
            out
        }

        // Indices of a sliding window's candidates for its extreme, in a fixed ring (no allocation per bar).
        struct MonotonicWindow {
            ring: Vec<usize>,
            head: usize,
            len: usize,
        }

        impl MonotonicWindow {
            fn new(window: usize) -> Self {
                MonotonicWindow { ring: vec![0; window + 1], head: 0, len: 0 }
            }

            // Adds bar `i`, dropping candidates it dominates (`keep(old, new)` false).
            #[inline(always)]
            fn push(&mut self, values: &[f64], i: usize, keep: impl Fn(f64, f64) -> bool) {
                let cap = self.ring.len();
                let v = values[i];
                while self.len > 0 {
                    let back = self.ring[(self.head + self.len - 1) % cap];
                    if keep(values[back], v) {
                        break;
                    }
                    self.len -= 1;
                }
                self.ring[(self.head + self.len) % cap] = i;
                self.len += 1;
            }

            // The extreme over indices `>= first`.
            #[inline(always)]
            fn extreme_since(&mut self, values: &[f64], first: usize) -> f64 {
                let cap = self.ring.len();
                while self.ring[self.head] < first {
                    self.head = (self.head + 1) % cap;
                    self.len -= 1;
                }
                values[self.ring[self.head]]
            }
        }

        // Wilder RSI reversion: up (oversold) when `RSI < oversold`, down when `RSI > overbought`.
        pub(super) fn rsi_reversion(
            close: &[f64],
            period: usize,
            oversold: f64,
            overbought: f64,
            direction: Direction,
        ) -> Vec<u8> {
            let n = close.len();
            let mut out = vec![0u8; n];
            if n <= period {
                return out;
            }
            let (up, down) = event_flags(direction);
            let p = period as f64;
            let (mut gain, mut loss) = (0.0f64, 0.0f64);
            for i in 1..=period {
                let d = close[i] - close[i - 1];
                if d > 0.0 {
                    gain += d;
                } else {
                    loss -= d;
                }
            }
            gain /= p;
            loss /= p;
            for i in period..n {
                if i > period {
                    let d = close[i] - close[i - 1];
                    let (g, l) = if d > 0.0 { (d, 0.0) } else { (0.0, -d) };
                    gain = (gain * (p - 1.0) + g) / p;
                    loss = (loss * (p - 1.0) + l) / p;
                }
                let rsi = rsi_value(gain, loss);
                if rsi < oversold {
                    out[i] = up;
                } else if rsi > overbought {
                    out[i] = down;
                }
            }
            out
        }
    }

    /// A random walk on a coarse tick, so equal means and closes exactly at a channel edge occur.
    fn walk(seed: u64, n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut high, mut low, mut close) = (vec![], vec![], vec![]);
        let mut c: f64 = 100.0;
        for _ in 0..n {
            let open = c;
            c = (c * (1.0 + (next() - 0.5) * 0.02) * 4.0).round() / 4.0;
            c = c.max(0.25);
            high.push(open.max(c) + (next() * 3.0).floor() * 0.25);
            low.push((open.min(c) - (next() * 3.0).floor() * 0.25).max(0.25));
            close.push(c);
        }
        (high, low, close)
    }

    /// Flags from `signal` run over blocks of uneven lengths (chunk ends make short blocks).
    fn flags_in_uneven_blocks(
        mut signal: impl Signal,
        high: &[f64],
        low: &[f64],
        close: &[f64],
        d: Direction,
    ) -> Vec<u8> {
        let mut events = vec![NONE; close.len()];
        let (mut first, mut k) = (0, 0);
        while first < close.len() {
            let end = (first + [1, 2, 3, 500, 7, 64][k % 6]).min(close.len());
            signal.block(first, &high[first..end], &low[first..end], &close[first..end], &mut events[first..end]);
            (first, k) = (end, k + 1);
        }
        events.into_iter().map(|e| flag_table(d)[e as usize]).collect()
    }

    #[test]
    fn streaming_signals_match_the_reference_bar_for_bar() {
        let dirs = [Direction::Long, Direction::Short, Direction::Both];
        for seed in 0..12 {
            let n = 50 + seed as usize * 700;
            let (high, low, close) = walk(seed, n);
            for d in dirs {
                for (fast, slow) in [(1, 2), (2, 3), (3, 7), (5, 20), (50, 200), (10, n + 5), (1, n - 1)] {
                    let expected = reference::ma_cross(&close, fast, slow, d);
                    assert_eq!(ma_cross(&close, fast, slow, d), expected, "ma_cross {seed} {fast} {slow}");
                    let uneven = flags_in_uneven_blocks(MaCross::new(fast, slow), &high, &low, &close, d);
                    assert_eq!(uneven, expected, "ma_cross {seed} {fast} {slow}, uneven blocks");
                }
                for lookback in [1, 2, 3, 7, 64, 240, n - 1, n, n + 3] {
                    let expected = reference::breakout(&high, &low, &close, lookback, d);
                    assert_eq!(breakout(&high, &low, &close, lookback, d), expected, "breakout {seed} {lookback}");
                    let uneven = flags_in_uneven_blocks(Breakout::new(&high, &low, lookback), &high, &low, &close, d);
                    assert_eq!(uneven, expected, "breakout {seed} {lookback}, uneven blocks");
                }
                for (period, lo, hi) in [(2, 30.0, 70.0), (14, 30.0, 70.0), (5, 50.0, 50.5), (40, 45.0, 55.0)] {
                    let expected = reference::rsi_reversion(&close, period, lo, hi, d);
                    assert_eq!(rsi_reversion(&close, period, lo, hi, d), expected, "rsi {seed} {period}");
                    let uneven = flags_in_uneven_blocks(RsiReversion::new(period, lo, hi), &high, &low, &close, d);
                    assert_eq!(uneven, expected, "rsi {seed} {period}, uneven blocks");
                }
            }
        }
    }

    #[test]
    fn ma_cross_fires_on_the_crossing_bar_only() {
        // fast=1 (the close itself), slow=3.
        let close = [10.0, 10.0, 10.0, 9.0, 12.0, 13.0, 8.0, 8.0];
        let s = ma_cross(&close, 1, 3, Direction::Long);
        // i=3: f=9 < s=9.667, prev (i=2) f=10 = s=10 -> down: EXIT_LONG.
        // i=4: f=12 > s=10.33, prev f<s -> up.
        // i=6: f=8 < s=11 -> down.
        assert_eq!(s, vec![0, 0, 0, EXIT_LONG, ENTER_LONG, 0, EXIT_LONG, 0]);
        let both = ma_cross(&close, 1, 3, Direction::Both);
        assert_eq!(both[4], ENTER_LONG | EXIT_SHORT);
        assert_eq!(both[6], EXIT_LONG | ENTER_SHORT);
    }

    #[test]
    fn breakout_uses_previous_bars_only() {
        let high = [10.0, 11.0, 12.0, 12.5, 20.0, 9.0];
        let low = [9.0, 10.0, 11.0, 11.0, 11.0, 5.0];
        let close = [9.5, 10.5, 11.5, 12.6, 12.0, 6.0];
        let s = breakout(&high, &low, &close, 2, Direction::Long);
        // i=2: upper=max(10,11)=11, close 11.5 > 11 -> up.
        // i=3: upper=max(11,12)=12, close 12.6 -> up.
        // i=4: upper=max(12,12.5)=12.5, close 12 not above; lower=min(11,11)=11, not below -> 0.
        // i=5: lower=min(11,11)=11, close 6 -> down.
        assert_eq!(s, vec![0, 0, ENTER_LONG, ENTER_LONG, 0, EXIT_LONG]);
    }

    #[test]
    fn rsi_matches_a_hand_computation() {
        // period 2. Changes: +1, -1, +2, +2.
        let close = [10.0, 11.0, 10.0, 12.0, 14.0];
        // First averages over changes 1..=2: gain 0.5, loss 0.5 -> RSI 50 at i=2.
        // i=3: gain (0.5+2)/2 = 1.25, loss 0.25 -> RSI 100 - 100/6 = 83.33 -> overbought (>70).
        let s = rsi_reversion(&close, 2, 30.0, 70.0, Direction::Long);
        assert_eq!(s, vec![0, 0, 0, EXIT_LONG, EXIT_LONG]);
        assert!((rsi_value(1.25, 0.25) - 83.333_333_333_333_33).abs() < 1e-9);
        assert_eq!(rsi_value(0.0, 0.0), 50.0);
    }
}
