//! `batch::evaluate_until`: a stop request (a sweep's cancel) ends the evaluation at the next
//! segment, every unfinished config `Cancelled`; never stopping is `evaluate`.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{TimeZone, Utc};
use pipai_engine::batch::{evaluate, evaluate_until, Validation, SEGMENT};
use pipai_engine::{EngineError, JobConfig};
use serde_json::json;

#[path = "support/walk.rs"]
mod support;

const START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
const STEP: i64 = 15 * 60_000;

fn configs(n_bars: usize) -> Vec<JobConfig> {
    (0..6)
        .map(|i| {
            let body = json!({
                "template_id": "tpl_ma_cross", "params": {"fast": 2 + i, "slow": 20 + 3 * i, "direction": "long"},
                "symbols": ["BTCUSDT"], "timeframe": "15m", "start": pipai_engine::time::iso(START),
                "end": pipai_engine::time::iso(START + (n_bars as i64 - 1) * STEP), "capital": "10000.00",
            });
            JobConfig::from_value(&body, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn a_stop_request_ends_the_evaluation_at_the_next_segment() {
    let n_bars = 12 * SEGMENT;
    let data = [support::walk(3, n_bars, 100.0, (START, STEP), 0.03, 0.01)];
    let configs = configs(n_bars);
    let validation = Validation::WalkForward { folds: 2, test_fraction: "0.25".parse().unwrap(), anchored: false };

    // Asked before each of the 12 segments; stopping at the 3rd leaves the other 10 unread.
    let asked = AtomicUsize::new(0);
    let stopped = evaluate_until(&configs, &data, &validation, &|| asked.fetch_add(1, Ordering::Relaxed) >= 2);
    assert_eq!(asked.load(Ordering::Relaxed), 3, "no segment after the stop");
    assert_eq!(stopped.len(), configs.len());
    assert!(stopped.iter().all(|e| *e == Err(EngineError::Cancelled)), "{stopped:?}");

    // Never stopping: `evaluate`, every config evaluated, the stop asked once per segment.
    let asked = AtomicUsize::new(0);
    let all = evaluate_until(&configs, &data, &validation, &|| asked.fetch_add(1, Ordering::Relaxed) == usize::MAX);
    assert_eq!(asked.load(Ordering::Relaxed), 12);
    assert_eq!(all, evaluate(&configs, &data, &validation));
    assert!(all.iter().all(Result::is_ok));
}

#[test]
fn configs_on_the_jobs_path_are_not_started_after_a_stop() {
    // A bad bar sends every config through the job's own loops: a stop before them runs none.
    let n_bars = 2 * SEGMENT;
    let mut bars = support::walk(4, n_bars, 100.0, (START, STEP), 0.03, 0.01);
    bars.close[10] = f64::NAN;
    let data = [bars];
    let stopped = evaluate_until(&configs(n_bars), &data, &Validation::None, &|| true);
    assert!(stopped.iter().all(|e| *e == Err(EngineError::Cancelled)), "{stopped:?}");
    let evaluated = evaluate(&configs(n_bars), &data, &Validation::None);
    assert!(evaluated.iter().all(|e| *e != Err(EngineError::Cancelled)), "{evaluated:?}");
}
