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

/// The median wall time of [`RUNS`] runs of `f` on a fresh `setup()` each (not timed).
#[allow(dead_code)] // the ingest bench's
pub fn median_with<T>(mut setup: impl FnMut() -> T, mut f: impl FnMut(T)) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let input = setup();
            let t = Instant::now();
            f(input);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

/// CPU time (user + system) of this process so far, all its threads.
#[allow(dead_code)] // the ingest bench's
pub fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
