//! Signing timestamps. The API accepts a POST signature once (a repeat is a replay: 401), and
//! the signature covers the timestamp, so two identical POSTs must not share one: every
//! timestamp this process signs with is later than the one before, whichever thread asks.

use std::sync::atomic::{AtomicI64, Ordering};

/// Unix epoch milliseconds now: the service's one clock.
pub use pipai_service::clock::now_ms;

/// The last timestamp handed out in this process (every client shares it: two clients of the
/// same key must not collide either).
static LAST_TIMESTAMP_MS: AtomicI64 = AtomicI64::new(0);

/// The timestamp for the next signature: the clock, or one past the last one used when the
/// clock has not moved on (a burst runs ahead of the clock by at most its length in ms).
pub fn next_timestamp_ms() -> i64 {
    next_after(&LAST_TIMESTAMP_MS, now_ms())
}

fn next_after(last: &AtomicI64, now_ms: i64) -> i64 {
    let mut previous = last.load(Ordering::Relaxed);
    loop {
        let next = now_ms.max(previous + 1);
        match last.compare_exchange_weak(previous, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => previous = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_stopped_clock_still_gives_increasing_timestamps() {
        let last = AtomicI64::new(0);
        assert_eq!(next_after(&last, 1_000), 1_000);
        assert_eq!(next_after(&last, 1_000), 1_001);
        assert_eq!(next_after(&last, 1_000), 1_002);
        // A clock that went back does not take the timestamps with it.
        assert_eq!(next_after(&last, 900), 1_003);
        assert_eq!(next_after(&last, 5_000), 5_000);
    }

    #[test]
    fn timestamps_strictly_increase_across_threads() {
        const THREADS: usize = 8;
        const EACH: usize = 2_000;
        let per_thread: Vec<Vec<i64>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..THREADS).map(|_| s.spawn(|| (0..EACH).map(|_| next_timestamp_ms()).collect::<Vec<_>>())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for seen in &per_thread {
            assert!(seen.windows(2).all(|w| w[1] > w[0]), "each thread sees them increase");
        }
        let distinct: HashSet<i64> = per_thread.iter().flatten().copied().collect();
        assert_eq!(distinct.len(), THREADS * EACH, "no two threads got the same timestamp");
        // Far more requests than milliseconds went by, yet the clock is not run far ahead.
        let ahead = per_thread.iter().flatten().max().unwrap() - now_ms();
        assert!(ahead <= (THREADS * EACH) as i64, "{ahead} ms ahead");
    }
}
