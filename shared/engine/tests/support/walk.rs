//! Random-walk bars for the engine's tests and benches (`#[path]`-included by each).

use pipai_engine::{Bar, Bars};

/// A random walk from `seed` of `n` bars opening every `step_ms` from `start_ms`: open = previous
/// close, each close moves by up to ±`move_size / 2` (a fraction of the open, the price floored at
/// 0.01), wicks up to `wick` beyond the body.
pub fn walk(seed: u64, n: usize, start_price: f64, (start_ms, step_ms): (i64, i64), move_size: f64, wick: f64) -> Bars {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut bars = Bars::with_capacity(n);
    let mut close = start_price;
    for i in 0..n {
        let open = close;
        close = (open * (1.0 + (next() - 0.5) * move_size)).max(0.01);
        let high = open.max(close) * (1.0 + next() * wick);
        let low = open.min(close) * (1.0 - next() * wick);
        bars.push(Bar { open_time: start_ms + i as i64 * step_ms, open, high, low, close, volume: 1.0 + next() });
    }
    bars
}
