//! Signal templates' indicators, computed in one pass into one flag byte per bar.
//!
//! A bar's flags say what the close of that bar asks for; the simulation turns them into an order
//! for the next open according to the current position. The formulas are the ones in
//! `docs/templates.md`; the vectorbt cross-check reproduces them exactly.

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

/// Moving-average crossover. `sma_w[i] = (C[i] - C[i-w]) / w` with `C` the running sum of closes.
pub fn ma_cross(close: &[f64], fast: usize, slow: usize, direction: Direction) -> Vec<u8> {
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

/// Donchian breakout: `upper[i] = max(high[i-n..i])`, `lower[i] = min(low[i-n..i])` over the
/// previous `n` bars; up when `close > upper`, down when `close < lower`.
pub fn breakout(high: &[f64], low: &[f64], close: &[f64], lookback: usize, direction: Direction) -> Vec<u8> {
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

/// Indices of a sliding window's candidates for its extreme, in a fixed ring (no allocation per bar).
struct MonotonicWindow {
    ring: Vec<usize>,
    head: usize,
    len: usize,
}

impl MonotonicWindow {
    fn new(window: usize) -> Self {
        MonotonicWindow { ring: vec![0; window + 1], head: 0, len: 0 }
    }

    /// Adds bar `i`, dropping candidates it dominates (`keep(old, new)` false).
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

    /// The extreme over indices `>= first`.
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

/// Wilder RSI reversion: up (oversold) when `RSI < oversold`, down when `RSI > overbought`.
pub fn rsi_reversion(close: &[f64], period: usize, oversold: f64, overbought: f64, direction: Direction) -> Vec<u8> {
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
