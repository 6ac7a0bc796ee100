//! The equity curve, tracked while the loops run: per-bar equity (for the artifact), the
//! end-of-day points and the drawdown figures of `docs/metrics.md`, so `metrics` never re-reads
//! the per-bar series.
//!
//! Every loop hands over each block of bars' equity at their closes ([`Curve::extend`]). A bar
//! is *accounted* (drawdown, end of day) one bar late: the last bar's equity still changes when
//! the end-of-window close fills, and [`Curve::finish`] accounts it with that final value.

use crate::sim::BLOCK;
use crate::time::{day_start, DAY_MS};

/// Per-bar equity plus what the metrics need from it.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveSummary {
    /// Equity at each bar's close; the last one after the end-of-window close.
    pub equity: Vec<f64>,
    /// `(day at 00:00 UTC, equity at the close of the day's last bar)`, one per simulated day.
    pub daily: Vec<(i64, f64)>,
    /// `min_t (e_t / peak_t - 1)`: a fraction <= 0.
    pub max_drawdown: f64,
    /// Longest time from a per-bar equity peak to the bar close that regains it, milliseconds.
    pub max_drawdown_ms: i64,
}

/// The tracker the loops feed with [`Curve::extend`].
pub struct Curve {
    bar_ms: i64,
    /// Whether the per-bar equity is kept ([`Curve::metrics_only`] keeps none).
    keep: bool,
    /// Whether any bar was tracked.
    tracked: bool,
    equity: Vec<f64>,
    daily: Vec<(i64, f64)>,
    /// UTC day of the held bar, and the first millisecond of the next day: comparing a bar's
    /// open time with `next_day` finds a day's last bar without a division per bar.
    day: i64,
    next_day: i64,
    /// The last bar tracked, not yet accounted: close time and equity.
    held_close: i64,
    held_equity: f64,
    drawdown: Drawdown,
}

/// Drawdown bookkeeping over bar closes (`docs/metrics.md`, `max_drawdown` and
/// `max_drawdown_duration`).
#[derive(Debug, Clone, Copy)]
struct Drawdown {
    peak: f64,
    peak_time: i64,
    /// Lowest equity since the drawdown began. The peak is constant while under water and
    /// `e / peak - 1` is monotonic in `e` (correctly rounded division and subtraction are), so
    /// the deepest point of an episode is `trough / peak - 1`, bit for bit what the per-bar minimum
    /// of `e / peak - 1` gives, with one division per episode instead of one per bar.
    trough: f64,
    under: bool,
    max_drawdown: f64,
    longest: i64,
}

impl Drawdown {
    #[inline(always)]
    fn account(&mut self, close_time: i64, e: f64) {
        if e >= self.peak {
            if self.under {
                self.end_episode();
                self.longest = self.longest.max(close_time - self.peak_time);
            }
            self.peak = e;
            self.peak_time = close_time;
        } else {
            self.under = true;
            if self.peak < f64::INFINITY {
                // NaN is ignored, as `f64::min` would.
                self.trough = min(self.trough, e);
            } else {
                // Below an infinite peak `e / peak - 1` is -1 or NaN (for -inf), not monotonic:
                // the definition, value by value. (Only overflowing equity gets here.)
                self.max_drawdown = self.max_drawdown.min(e / self.peak - 1.0);
            }
        }
    }

    #[cold]
    fn end_episode(&mut self) {
        if self.peak > 0.0 {
            self.max_drawdown = self.max_drawdown.min(self.trough / self.peak - 1.0);
        }
        self.trough = f64::INFINITY;
        self.under = false;
    }
}

impl Curve {
    /// A curve for `n` bars starting at `first_open`, from `capital`.
    pub fn new(capital: f64, first_open: i64, last_open: i64, bar_ms: i64, n: usize) -> Curve {
        Curve::with_keep(capital, first_open, last_open, bar_ms, Some(n))
    }

    /// A curve that keeps only what the metrics need (no per-bar equity; its summary's `equity`
    /// is empty): for sweeps, which evaluate many configs and keep their metrics only.
    pub fn metrics_only(capital: f64, first_open: i64, last_open: i64, bar_ms: i64) -> Curve {
        Curve::with_keep(capital, first_open, last_open, bar_ms, None)
    }

    fn with_keep(capital: f64, first_open: i64, last_open: i64, bar_ms: i64, keep: Option<usize>) -> Curve {
        let day = day_start(first_open);
        let days = ((day_start(last_open) - day) / DAY_MS).max(0) as usize + 1;
        Curve {
            bar_ms,
            keep: keep.is_some(),
            tracked: false,
            equity: Vec::with_capacity(keep.unwrap_or(0)),
            daily: Vec::with_capacity(days),
            day,
            next_day: day + DAY_MS,
            // A virtual bar holding the capital, stamped at the first open: accounting it sets
            // peak = capital at the first open, the documented starting point of the drawdown.
            held_close: first_open,
            held_equity: capital,
            drawdown: Drawdown {
                peak: capital,
                peak_time: first_open,
                trough: f64::INFINITY,
                under: false,
                max_drawdown: 0.0,
                longest: 0,
            },
        }
    }

    /// Appends the equity at the close of the next bars, which open at `open_time` (in time
    /// order), and accounts all of them but the last, which is held until the next call.
    ///
    /// The loops hand over a block of bars at a time: most blocks need no per-bar work here, only
    /// a minimum and maximum (which vectorize) — a block entirely below the peak only deepens the
    /// drawdown, one flat at the peak only moves it — and a day boundary is found by comparing the
    /// block's last time with the next day's start.
    #[inline]
    pub fn extend(&mut self, open_time: &[i64], equity: &[f64]) {
        debug_assert_eq!(open_time.len(), equity.len());
        let m = equity.len().min(open_time.len());
        if m == 0 {
            return;
        }
        if self.keep {
            self.equity.extend_from_slice(&equity[..m]);
        }
        self.tracked = true;
        // Each bar opening a later day makes the bar before it its day's last.
        let mut k = 0;
        while open_time[m - 1] >= self.next_day {
            k += open_time[k..m].partition_point(|&t| t < self.next_day);
            // Times out of order (which the bar check rejects, failing the run) end the search.
            let Some(&t) = open_time.get(k).filter(|&&t| t >= self.next_day) else { break };
            let previous = if k == 0 { self.held_equity } else { equity[k - 1] };
            self.new_day(t, previous);
        }
        // Accounted now: the held bar, then every bar of the block but the last.
        let accounted = &equity[..m - 1];
        let (low, high, nan) = extremes(accounted);
        let (low, high) = (min(low, self.held_equity), max(high, self.held_equity));
        let dd = &mut self.drawdown;
        let last_close = if m > 1 { open_time[m - 2] + self.bar_ms } else { self.held_close };
        if nan || self.held_equity.is_nan() {
            // Bar by bar, as the definition reads (NaN counts as below the peak).
            dd.account(self.held_close, self.held_equity);
            for (&t, &e) in open_time.iter().zip(accounted) {
                dd.account(t + self.bar_ms, e);
            }
        } else if high < dd.peak && dd.peak < f64::INFINITY {
            // All below the peak: no new peak, the drawdown may deepen.
            dd.under = true;
            dd.trough = min(dd.trough, low);
        } else if low == high && high >= dd.peak {
            // Flat at or above the peak: the first bar sets the peak (ending any drawdown), the
            // others equal it.
            dd.account(self.held_close, high);
            dd.peak_time = last_close;
        } else {
            dd.account(self.held_close, self.held_equity);
            for (&t, &e) in open_time.iter().zip(accounted) {
                dd.account(t + self.bar_ms, e);
            }
        }
        self.held_close = open_time[m - 1] + self.bar_ms;
        self.held_equity = equity[m - 1];
    }

    /// `open_time` opens a later day than the held bar's: the bar before it (`equity`) was the
    /// last of its day.
    #[cold]
    fn new_day(&mut self, open_time: i64, equity: f64) {
        self.daily.push((self.day, equity));
        self.day = day_start(open_time);
        self.next_day = self.day + DAY_MS;
    }

    /// Accounts the last bar with its final equity (after any end-of-window close). Every bar
    /// must have been tracked.
    pub fn finish(mut self, final_equity: f64) -> CurveSummary {
        let dd = &mut self.drawdown;
        if self.tracked {
            if let Some(last) = self.equity.last_mut() {
                *last = final_equity;
            }
            self.daily.push((self.day, final_equity));
            dd.account(self.held_close, final_equity);
            if dd.under {
                dd.end_episode();
                dd.longest = dd.longest.max(self.held_close - dd.peak_time);
            }
        }
        CurveSummary {
            equity: self.equity,
            daily: self.daily,
            max_drawdown: dd.max_drawdown,
            max_drawdown_ms: dd.longest,
        }
    }

    /// The last equity pushed (before [`Curve::finish`]).
    pub fn last(&self) -> Option<f64> {
        self.tracked.then_some(self.held_equity)
    }

    /// Replaces the equity of the last bar tracked (held, not yet accounted): a chained curve
    /// (`batch`) learns a fold's final equity after its last bar was handed over.
    pub fn set_last(&mut self, equity: f64) {
        if self.tracked {
            self.held_equity = equity;
            if let Some(last) = self.equity.last_mut() {
                *last = equity;
            }
        }
    }
}

/// Minimum and maximum of `values` (NaN ignored), and whether a NaN may be among them: four
/// independent accumulators of each, so the loop vectorizes instead of waiting on one min/max
/// chain (eight of each spilled registers to the stack on x86-64 and ran 2x slower).
/// NaN shows as a NaN sum (which infinities of both signs also give: a false alarm only sends
/// the block down the exact bar-by-bar path).
#[inline]
fn extremes(values: &[f64]) -> (f64, f64, bool) {
    const LANES: usize = 4;
    let mut low = [f64::INFINITY; LANES];
    let mut high = [f64::NEG_INFINITY; LANES];
    let mut sum = [0.0; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for j in 0..LANES {
            low[j] = min(low[j], chunk[j]);
            high[j] = max(high[j], chunk[j]);
            sum[j] += chunk[j];
        }
    }
    for (j, &v) in chunks.remainder().iter().enumerate() {
        low[j] = min(low[j], v);
        high[j] = max(high[j], v);
        sum[j] += v;
    }
    let low = low.iter().fold(f64::INFINITY, |a, &b| min(a, b));
    let high = high.iter().fold(f64::NEG_INFINITY, |a, &b| max(a, b));
    (low, high, sum.iter().sum::<f64>().is_nan())
}

/// `min` / `max` that keep the accumulator when `v` is NaN, as one comparison each.
#[inline(always)]
fn min(acc: f64, v: f64) -> f64 {
    if v < acc {
        v
    } else {
        acc
    }
}

#[inline(always)]
fn max(acc: f64, v: f64) -> f64 {
    if v > acc {
        v
    } else {
        acc
    }
}

/// Tracks an existing per-bar series (for tests and tools; the loops feed [`Curve`] directly).
pub fn track(capital: f64, open_time: &[i64], bar_ms: i64, equity: &[f64]) -> CurveSummary {
    let (first, last) = (open_time.first().copied().unwrap_or(0), open_time.last().copied().unwrap_or(0));
    let mut curve = Curve::new(capital, first, last, bar_ms, equity.len());
    for (times, values) in open_time.chunks(BLOCK).zip(equity.chunks(BLOCK)) {
        curve.extend(times, values);
    }
    let final_equity = equity.last().copied().unwrap_or(capital);
    curve.finish(final_equity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{daily_equity, drawdown};

    fn walk(seed: u64, n: usize) -> (Vec<i64>, Vec<f64>) {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut t = -3 * DAY_MS + 17 * 60_000;
        let (mut times, mut eq) = (vec![], vec![]);
        let mut e = 1000.0;
        let mut flat = 0;
        for _ in 0..n {
            times.push(t);
            // Gaps of up to two days, long and short flat stretches, and exact returns to
            // earlier peaks.
            t += 60_000 * (1 + (next() * 3.0) as i64) + if next() < 0.002 { 2 * DAY_MS } else { 0 };
            let r = next();
            if flat > 0 {
                flat -= 1;
            } else if r < 0.01 {
                flat = (next() * 1500.0) as usize;
            } else if r < 0.3 {
            } else if r < 0.35 {
                e = 1000.0;
            } else {
                e *= 1.0 + (next() - 0.5) * 0.02;
            }
            eq.push(e);
        }
        (times, eq)
    }

    /// [`track`], with blocks of `block` bars.
    fn track_in_blocks(capital: f64, times: &[i64], equity: &[f64], block: usize) -> CurveSummary {
        let mut curve = Curve::new(capital, times[0], times[times.len() - 1], 60_000, times.len());
        for (t, e) in times.chunks(block).zip(equity.chunks(block)) {
            curve.extend(t, e);
        }
        curve.finish(equity[equity.len() - 1])
    }

    #[test]
    fn matches_the_reference_definitions_bit_for_bit() {
        for seed in 0..40 {
            let (times, eq) = walk(seed, 1 + seed as usize * 997);
            for capital in [1000.0, 900.0, 5000.0] {
                for block in [1, 2, 7, 64] {
                    assert_eq!(track_in_blocks(capital, &times, &eq, block), track(capital, &times, 60_000, &eq));
                }
                let s = track(capital, &times, 60_000, &eq);
                assert_eq!(s.daily, daily_equity(&times, &eq), "seed {seed}");
                let (dd, dd_ms) = drawdown(capital, &times, 60_000, &eq);
                assert_eq!(s.max_drawdown.to_bits(), dd.to_bits(), "seed {seed}");
                assert_eq!(s.max_drawdown_ms, dd_ms, "seed {seed}");
                assert_eq!(s.equity, eq);
            }
        }
    }

    #[test]
    fn nan_and_infinite_equity_follow_the_definitions() {
        let (times, mut eq) = walk(7, 3000);
        eq[100] = f64::NAN;
        eq[700..900].iter_mut().for_each(|e| *e = f64::NAN);
        eq[1500] = f64::INFINITY;
        eq[2000] = f64::NEG_INFINITY;
        for block in [1, 5, 64, 512] {
            let s = track_in_blocks(1000.0, &times, &eq, block);
            assert_eq!(s.daily.len(), daily_equity(&times, &eq).len());
            let (dd, dd_ms) = drawdown(1000.0, &times, 60_000, &eq);
            assert_eq!((s.max_drawdown.to_bits(), s.max_drawdown_ms), (dd.to_bits(), dd_ms), "block {block}");
        }
    }

    #[test]
    fn the_final_close_counts_for_the_last_bar() {
        let times = [0, 60_000, 120_000];
        let mut curve = Curve::new(100.0, 0, 120_000, 60_000, 3);
        curve.extend(&times, &[100.0, 110.0, 120.0]);
        // The end-of-window close turns the last bar's 120 into 90: a drawdown from 110.
        let s = curve.finish(90.0);
        assert_eq!(s.equity, vec![100.0, 110.0, 90.0]);
        assert_eq!(s.daily, vec![(0, 90.0)]);
        assert_eq!(s.max_drawdown, 90.0 / 110.0 - 1.0);
        assert_eq!(s.max_drawdown_ms, 60_000);
    }
}
