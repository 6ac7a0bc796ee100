//! What a sweep costs, from its configs alone (no bars loaded): the `dry_run` answer, and the
//! chunk rule the service fans a sweep out by (docs/sweeps.md, "Chunks and the cost estimate").
//!
//! A chunk is a run of configs of one [`group`](super::group) (same template, symbols,
//! timeframe and window): a worker loads the group's bars once and evaluates the chunk's configs
//! on them with `batch::evaluate`. Chunks are sized so that loading plus evaluating takes about
//! [`CHUNK_SECONDS`] at the throughputs below, a quarter of the job worker's 120 s timeout.

use serde::Serialize;

use crate::bars::Timeframe;
use crate::config::JobConfig;

use super::expand::group;
use super::spec::ValidationSpec;

/// Bar evaluations (one config, one symbol, one bar) a worker's one vCPU does per second. Measured
/// with `pipai sweep --threads 1` (reference `batch::evaluate`, one `run` per config) on the
/// 100-config SMA grid of one year of 1m bars: 52.7 M evaluations in about 0.5 s of wall time on
/// the 2-core development machine under a load average of 7, so about 100 M/s; halved here for a
/// Lambda vCPU's margin. Revisit when the batch engine changes.
pub const BAR_EVALUATIONS_PER_SECOND: u64 = 50_000_000;
/// Bars a worker loads (fetch and decode the market-data Parquet files) per second.
pub const BARS_LOADED_PER_SECOND: u64 = 5_000_000;
/// The time a chunk is sized to take: well inside the job worker's 120 s timeout (template.yaml).
pub const CHUNK_SECONDS: u64 = 30;
/// The most configs in one chunk, however cheap (a chunk's results go back in one message).
pub const MAX_CHUNK_CONFIGS: usize = 500;

/// The bars with an open time in `[start_ms, end_ms]` on the timeframe's grid (UTC-aligned, as
/// the market data is): what a config simulates when the data has no gaps.
pub fn bars_in_window(timeframe: Timeframe, start_ms: i64, end_ms: i64) -> u64 {
    let step = timeframe.millis();
    let first = start_ms.div_euclid(step) + i64::from(start_ms.rem_euclid(step) != 0);
    let last = end_ms.div_euclid(step);
    u64::try_from(last - first + 1).unwrap_or(0)
}

/// How many times a validation method goes over the window: once without validation or with a
/// holdout (train and test parts together are the window); a walk-forward is counted as its
/// in-sample pass plus one pass per fold (an upper bound: a fold's train and test windows fit in
/// the window).
pub fn passes(validation: &ValidationSpec) -> u64 {
    match validation {
        ValidationSpec::None | ValidationSpec::Holdout { .. } => 1,
        ValidationSpec::WalkForward { folds, .. } => 1 + u64::from(*folds),
    }
}

/// One config's bar evaluations: bars in its window, times its symbols, times the passes.
pub fn bar_evaluations(config: &JobConfig, validation: &ValidationSpec) -> u64 {
    bars_in_window(config.timeframe, config.start_ms(), config.end_ms())
        .saturating_mul(config.symbols.len() as u64)
        .saturating_mul(passes(validation))
}

/// Seconds to load `bars` bars.
fn load_seconds(bars: u64) -> f64 {
    bars as f64 / BARS_LOADED_PER_SECOND as f64
}

/// The chunk rule: how many configs of a group go in one chunk, when each costs
/// `evaluations_per_config` bar evaluations and the chunk loads `bars_loaded` bars first. As many
/// as fit in [`CHUNK_SECONDS`] after the load, at least 1, at most [`MAX_CHUNK_CONFIGS`].
pub fn chunk_configs(evaluations_per_config: u64, bars_loaded: u64) -> usize {
    let budget = (CHUNK_SECONDS as f64 - load_seconds(bars_loaded)).max(0.0);
    let fit = budget * BAR_EVALUATIONS_PER_SECOND as f64 / evaluations_per_config.max(1) as f64;
    (fit as usize).clamp(1, MAX_CHUNK_CONFIGS)
}

/// The sweep's chunks: each group's configs (sweep indices, ascending) cut into runs of
/// [`chunk_configs`]; groups in order of first appearance.
pub fn plan_chunks(configs: &[JobConfig], validation: &ValidationSpec) -> Vec<Vec<usize>> {
    let mut chunks = Vec::new();
    for (_, members) in group(configs) {
        let first = &configs[members[0]];
        let size = chunk_configs(bar_evaluations(first, validation), bar_evaluations(first, &ValidationSpec::None));
        chunks.extend(members.chunks(size).map(<[usize]>::to_vec));
    }
    chunks
}

/// The `dry_run` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub n_configs: usize,
    /// Σ over configs of [`bar_evaluations`].
    pub bar_evaluations: u64,
    /// [`plan_chunks`]'s count.
    pub chunks: usize,
    /// The work on one worker, rounded up: each chunk's load plus its evaluations at the
    /// throughputs above. Chunks run in parallel, so the wall time is usually shorter.
    pub estimated_seconds: u64,
}

/// The cost of running `configs` under `validation`, without loading any bars.
pub fn estimate(configs: &[JobConfig], validation: &ValidationSpec) -> Estimate {
    let chunks = plan_chunks(configs, validation);
    let evaluations = |i: &usize| bar_evaluations(&configs[*i], validation);
    let bar_evaluations_total = configs.iter().map(|c| bar_evaluations(c, validation)).fold(0u64, u64::saturating_add);
    let seconds: f64 = chunks
        .iter()
        .map(|chunk| {
            let load = load_seconds(bar_evaluations(&configs[chunk[0]], &ValidationSpec::None));
            let work: u64 = chunk.iter().map(evaluations).fold(0, u64::saturating_add);
            load + work as f64 / BAR_EVALUATIONS_PER_SECOND as f64
        })
        .sum();
    Estimate {
        n_configs: configs.len(),
        bar_evaluations: bar_evaluations_total,
        chunks: chunks.len(),
        estimated_seconds: seconds.ceil() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_iso_ms;

    fn ms(s: &str) -> i64 {
        parse_iso_ms(s).unwrap()
    }

    #[test]
    fn bars_in_a_window_count_the_grid_points_inside() {
        let year = bars_in_window(Timeframe::M1, ms("2024-01-01T00:00:00Z"), ms("2024-12-31T23:59:00Z"));
        assert_eq!(year, 527_040);
        assert_eq!(bars_in_window(Timeframe::H1, ms("2025-01-01T00:30:00Z"), ms("2025-01-01T03:00:00Z")), 3);
        assert_eq!(bars_in_window(Timeframe::D1, ms("2025-01-01T00:00:01Z"), ms("2025-01-01T23:00:00Z")), 0);
    }

    #[test]
    fn chunks_fit_the_time_budget() {
        // A year of 1m bars: as many configs as 30 s allow after the load.
        let year = 527_040;
        let n = chunk_configs(year, year);
        let seconds = load_seconds(year) + (n as u64 * year) as f64 / BAR_EVALUATIONS_PER_SECOND as f64;
        assert!(seconds <= CHUNK_SECONDS as f64 && n > 1, "{n} configs, {seconds} s");
        // Tiny configs: capped; huge ones: alone.
        assert_eq!(chunk_configs(10, 10), MAX_CHUNK_CONFIGS);
        assert_eq!(chunk_configs(u64::MAX, 1), 1);
    }
}
