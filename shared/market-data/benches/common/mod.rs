//! What the market-data benches share: medians and the machine's load.
use std::time::{Duration, Instant};

/// Runs of each measured step.
pub const RUNS: usize = 5;

/// The median wall time of [`RUNS`] runs of `f`.
pub fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

/// Prints the load average and the cores (the figures are only as good as the CPU they get).
pub fn print_load() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("load average {} ({cores} cores)", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
}
