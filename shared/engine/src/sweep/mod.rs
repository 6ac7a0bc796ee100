//! Sweeps: many configs of one create-job body, run on the same bars and ranked (API.md,
//! "Sweeps"; docs/sweeps.md). No I/O and no AWS: the offline `pipai sweep` and the service both
//! build on this.
//!
//! - [`spec`]: the create-sweep body, parsed strictly into a [`SweepSpec`].
//! - [`expand`]: the spec's configs, in a documented order, each validated as a create-job body;
//!   [`group`] splits them by the bars they need.
//! - [`rank`]: constraints, the leaderboard, the degradation report.
//! - [`estimate`]: the cost of a sweep without loading bars (`dry_run`) and the chunk rule the
//!   service fans out by.

pub mod estimate;
pub mod expand;
pub mod rank;
pub mod spec;

pub use estimate::{chunk_configs, plan_chunks, Estimate};
pub use expand::{group, GroupKey};
pub use rank::{degradation, Candidate, DegradationReport, LeaderboardEntry, OosMetrics, Ranking};
pub use spec::{Axes, Constraint, RankMetric, Search, SweepSpec, ValidationSpec, MAX_CONFIGS};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::evaluate;
    use crate::time::{iso, parse_iso};
    use crate::{run, Bar, Bars, NoObserver};
    use serde_json::json;

    const START: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
    const HOUR: i64 = 3_600_000;

    /// Hourly bars of two overlapping waves: enough crossings for every SMA pair to trade.
    fn waves(n: usize) -> Bars {
        let wave = |i: usize| {
            let x = i as f64;
            100.0 + 8.0 * (x / 37.0).sin() + 3.0 * (x / 5.3).cos() + x * 0.01
        };
        let bars: Vec<Bar> = (0..n)
            .map(|i| {
                let (open, close) = (if i == 0 { 100.0 } else { wave(i - 1) }, wave(i));
                let (high, low) = (open.max(close) + 0.4, open.min(close) - 0.4);
                Bar { open_time: START + i as i64 * HOUR, open, high, low, close, volume: 1.0 }
            })
            .collect();
        Bars::from_bars(&bars)
    }

    #[test]
    fn an_entrys_metrics_are_those_of_a_run_of_its_config() {
        for validation in [
            json!({"method": "none"}),
            json!({"method": "holdout", "test_fraction": "0.3"}),
            json!({"method": "walk_forward", "folds": 3, "test_fraction": "0.25", "anchored": false}),
        ] {
            entries_run_to_their_metrics(validation);
        }
    }

    /// With validation the entry's config is the in-sample window's (`Candidate::evaluated`),
    /// and its run gives the entry's (in-sample) metrics.
    fn entries_run_to_their_metrics(validation: serde_json::Value) {
        let n = 2000;
        let body = json!({
            "base": {"template_id": "tpl_ma_cross", "params": {"direction": "both"}, "symbols": ["BTCUSDT"], "timeframe": "1h",
                     "start": iso(START), "end": iso(START + (n as i64 - 1) * HOUR), "capital": "10000"},
            "space": {"params.fast": {"from": 3, "to": 12, "step": 3}, "params.slow": [20, 40, 80], "fee_bps": ["0", "10"]},
            "rank_metric": "volatility_annualised",
            "constraints": [{"metric": "total_trades", "min": "5"}],
            "validation": validation
        });
        let spec = SweepSpec::from_json_bytes(body.to_string().as_bytes()).unwrap();
        let configs = spec.expand(spec.offline_base().unwrap(), parse_iso("2026-01-01T00:00:00Z").unwrap()).unwrap();
        assert_eq!(configs.len(), 24);
        let data = [waves(n)];
        let evaluations = evaluate(&configs, &data, &spec.validation.to_batch());
        let candidates = configs
            .iter()
            .zip(evaluations)
            .enumerate()
            .map(|(index, (config, e))| {
                Candidate::evaluated(index, config.clone(), e.unwrap(), &spec.validation.to_batch())
            })
            .collect();
        let ranking = spec.rank(candidates);
        assert!(!ranking.entries.is_empty());
        assert_eq!(ranking.entries.len() + ranking.excluded.len(), 24);
        let vol = |e: &LeaderboardEntry| e.structured_metrics.risk.volatility_annualised;
        assert!(ranking.entries.windows(2).all(|w| vol(&w[0]) <= vol(&w[1]) || vol(&w[1]).is_none()));
        for entry in &ranking.entries {
            assert!(entry.metrics.total_trades >= 5);
            // The entry's config, as a create-job body, runs to the same metrics, string for string.
            let echoed = serde_json::to_vec(&entry.config).unwrap();
            let config =
                crate::JobConfig::from_json_bytes(&echoed, parse_iso("2026-01-01T00:00:00Z").unwrap()).unwrap();
            let result = run(&config, &data, &mut NoObserver).unwrap().result;
            assert_eq!(serde_json::to_string(&entry.metrics).unwrap(), serde_json::to_string(&result.metrics).unwrap());
            assert_eq!(
                serde_json::to_string(&entry.structured_metrics).unwrap(),
                serde_json::to_string(&result.structured_metrics).unwrap()
            );
        }
        if spec.validation.to_batch() != crate::batch::Validation::None {
            assert!(ranking.entries.iter().all(|e| e.oos_metrics.is_some() && e.config.end < configs[0].end));
            return;
        }
        let estimate = estimate::estimate(&configs, &spec.validation);
        assert_eq!(estimate.n_configs, 24);
        assert_eq!(estimate.bar_evaluations, 24 * n as u64);
        assert_eq!(estimate.chunks, 1);
    }
}
