//! The leaderboard: constraints filter, then the rank metric sorts (docs/sweeps.md).
//!
//! - A config whose run failed, or that fails a constraint (on its in-sample metrics; a null
//!   metric fails any bound), is not ranked.
//! - The rest sort by the in-sample rank metric in its direction ([`metric_catalog`]), nulls
//!   last, ties by sweep index (the earlier config first).

use rust_decimal::Decimal;
use serde::Serialize;

use crate::batch::{Evaluation, Scores, Validation};
use crate::config::JobConfig;
use crate::metric_catalog::{self, Better};
use crate::result::{Metrics, StructuredMetrics};

use super::spec::{Constraint, RankMetric};

/// One evaluated config of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its place in the sweep's order (0-based).
    pub index: usize,
    pub config: JobConfig,
    pub evaluation: Evaluation,
}

impl Candidate {
    /// The candidate of the config at `index` evaluated under `validation`. With validation its
    /// config is narrowed to the in-sample window ([`Validation::in_sample_config`]): an entry's
    /// `config` is the one whose job gives its `metrics` exactly (API.md's exactness), while the
    /// sweep's own `config` keeps the whole window.
    pub fn evaluated(index: usize, config: JobConfig, evaluation: Evaluation, validation: &Validation) -> Candidate {
        let config = match validation {
            Validation::None => config,
            _ => validation.in_sample_config(&config),
        };
        Candidate { index, config, evaluation }
    }
}

/// A leaderboard entry as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderboardEntry {
    /// 1-based.
    pub rank: usize,
    /// The config's place in the sweep's order (not part of the API's entry).
    #[serde(skip)]
    pub index: usize,
    /// The complete, resolved create-job body: a job created with it has these `metrics`.
    pub config: JobConfig,
    pub metrics: Metrics,
    pub structured_metrics: StructuredMetrics,
    /// Aggregated over the test windows; null without validation.
    pub oos_metrics: Option<OosMetrics>,
}

/// Out-of-sample metrics, in the shape of a result's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OosMetrics {
    pub metrics: Metrics,
    pub structured_metrics: StructuredMetrics,
}

impl From<Scores> for OosMetrics {
    fn from(s: Scores) -> Self {
        OosMetrics { metrics: s.metrics, structured_metrics: s.structured_metrics }
    }
}

/// A sweep's ranking.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranking {
    /// Best first.
    pub entries: Vec<LeaderboardEntry>,
    /// Sweep indices of the configs a constraint excluded, ascending.
    pub excluded: Vec<usize>,
}

fn value(metric: &str, s: &Scores) -> Option<Decimal> {
    metric_catalog::value(metric, &s.metrics, &s.structured_metrics)
}

/// Ranks evaluated configs (in any order) by `metric` after `constraints`.
pub fn rank(metric: RankMetric, constraints: &[Constraint], candidates: Vec<Candidate>) -> Ranking {
    let (mut kept, mut excluded) = (Vec::with_capacity(candidates.len()), Vec::new());
    for c in candidates {
        let is = &c.evaluation.in_sample;
        if constraints.iter().all(|k| k.admits(value(k.metric, is))) {
            kept.push((value(metric.name, is), c));
        } else {
            excluded.push(c.index);
        }
    }
    excluded.sort_unstable();
    kept.sort_by(|(a, ca), (b, cb)| {
        let by_value = match (a, b) {
            (Some(a), Some(b)) => match metric.better {
                Better::Lower => a.cmp(b),
                _ => b.cmp(a),
            },
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then(ca.index.cmp(&cb.index))
    });
    let entries = kept
        .into_iter()
        .enumerate()
        .map(|(i, (_, c))| LeaderboardEntry {
            rank: i + 1,
            index: c.index,
            config: c.config,
            metrics: c.evaluation.in_sample.metrics,
            structured_metrics: c.evaluation.in_sample.structured_metrics,
            oos_metrics: c.evaluation.out_of_sample.map(OosMetrics::from),
        })
        .collect();
    Ranking { entries, excluded }
}

impl super::SweepSpec {
    /// [`rank`] by this sweep's rank metric and constraints.
    pub fn rank(&self, candidates: Vec<Candidate>) -> Ranking {
        rank(self.rank_metric, &self.constraints, candidates)
    }
}

/// How the best entries' rank metric holds up out of sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DegradationReport {
    pub metric: &'static str,
    pub higher_is_better: Option<bool>,
    /// The top entries, best first.
    pub entries: Vec<Degradation>,
    /// The mean `degradation` over the entries that have one; null when none has.
    pub mean_degradation: Option<Decimal>,
}

/// One entry's rank metric in and out of sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Degradation {
    pub rank: usize,
    pub in_sample: Option<Decimal>,
    pub out_of_sample: Option<Decimal>,
    /// How much worse the metric is out of sample, in its direction: `in_sample - out_of_sample`
    /// when higher is better, `out_of_sample - in_sample` when lower is; positive means worse out
    /// of sample. Null when either side is.
    pub degradation: Option<Decimal>,
}

/// The degradation report of the first `top` entries; `None` without validation (no entry has
/// out-of-sample metrics).
pub fn degradation(metric: RankMetric, entries: &[LeaderboardEntry], top: usize) -> Option<DegradationReport> {
    if !entries.iter().any(|e| e.oos_metrics.is_some()) {
        return None;
    }
    let rows: Vec<Degradation> = entries
        .iter()
        .take(top)
        .map(|e| {
            let in_sample = metric_catalog::value(metric.name, &e.metrics, &e.structured_metrics);
            let out_of_sample = e
                .oos_metrics
                .as_ref()
                .and_then(|o| metric_catalog::value(metric.name, &o.metrics, &o.structured_metrics));
            let degradation = match (in_sample, out_of_sample, metric.better) {
                (Some(i), Some(o), Better::Lower) => o.checked_sub(i),
                (Some(i), Some(o), _) => i.checked_sub(o),
                _ => None,
            };
            Degradation { rank: e.rank, in_sample, out_of_sample, degradation }
        })
        .collect();
    let known: Vec<Decimal> = rows.iter().filter_map(|r| r.degradation).collect();
    let mean_degradation = (!known.is_empty())
        .then(|| known.iter().try_fold(Decimal::ZERO, |s, d| s.checked_add(*d)))
        .flatten()
        .and_then(|sum| sum.checked_div(Decimal::from(known.len())))
        .map(|d| d.round_dp(crate::result::RATIO_DP).normalize());
    Some(DegradationReport {
        metric: metric.name,
        higher_is_better: metric.better.higher_is_better(),
        entries: rows,
        mean_degradation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricValues;
    use serde_json::json;

    fn scores(sharpe: Option<f64>, vol: Option<f64>, trades: u64) -> Scores {
        let values = MetricValues::default();
        let mut metrics = Metrics::from_values(&values);
        let mut structured_metrics = StructuredMetrics::from_values(&values);
        metrics.sharpe = sharpe.map(|v| Decimal::try_from(v).unwrap());
        metrics.total_trades = trades;
        structured_metrics.risk.volatility_annualised = vol.map(|v| Decimal::try_from(v).unwrap());
        Scores { metrics, structured_metrics }
    }

    fn config() -> JobConfig {
        serde_json::from_value(json!({"template_id": "tpl_ma_cross", "params": {"fast": 1, "slow": 2},
            "symbols": ["BTCUSDT"], "timeframe": "1h", "start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z",
            "capital": "1", "leverage": 1, "fee_model": "none"}))
        .unwrap()
    }

    fn candidates(rows: &[(Option<f64>, Option<f64>, u64)]) -> Vec<Candidate> {
        rows.iter()
            .enumerate()
            .map(|(index, &(s, v, t))| Candidate {
                index,
                config: config(),
                evaluation: Evaluation { in_sample: scores(s, v, t), out_of_sample: None },
            })
            .collect()
    }

    fn order(r: &Ranking) -> Vec<usize> {
        r.entries.iter().map(|e| e.index).collect()
    }

    const SHARPE: RankMetric = RankMetric { name: "sharpe", better: Better::Higher };
    const VOL: RankMetric = RankMetric { name: "volatility_annualised", better: Better::Lower };

    #[test]
    fn ranks_in_the_metric_direction_nulls_last_ties_by_index() {
        let rows = [(Some(1.0), Some(0.5), 3), (None, None, 3), (Some(2.0), Some(0.9), 3), (Some(1.0), Some(0.2), 3)];
        let r = rank(SHARPE, &[], candidates(&rows));
        assert_eq!(order(&r), [2, 0, 3, 1]);
        assert_eq!(r.entries.iter().map(|e| e.rank).collect::<Vec<_>>(), [1, 2, 3, 4]);
        // Lower is better for volatility.
        let r = rank(VOL, &[], candidates(&rows));
        assert_eq!(order(&r), [3, 0, 2, 1]);
    }

    #[test]
    fn constraints_exclude_and_a_null_fails_a_bound() {
        let rows = [(Some(1.0), None, 3), (Some(2.0), Some(0.1), 30), (Some(3.0), Some(0.3), 12), (None, None, 50)];
        let d = |s: &str| Some(s.parse::<Decimal>().unwrap());
        let constraints = [
            Constraint { metric: "total_trades", min: d("10"), max: None },
            Constraint { metric: "volatility_annualised", min: None, max: d("0.25") },
        ];
        let r = rank(SHARPE, &constraints, candidates(&rows));
        assert_eq!(order(&r), [1]);
        assert_eq!(r.excluded, [0, 2, 3]);
    }

    #[test]
    fn degradation_is_positive_when_worse_out_of_sample() {
        let mut c = candidates(&[(Some(2.0), Some(0.2), 1), (Some(1.0), Some(0.4), 1)]);
        c[0].evaluation.out_of_sample = Some(scores(Some(0.5), Some(0.3), 1));
        c[1].evaluation.out_of_sample = Some(scores(Some(1.5), Some(0.3), 1));
        let r = rank(SHARPE, &[], c.clone());
        let report = degradation(SHARPE, &r.entries, 20).unwrap();
        let got: Vec<String> = report.entries.iter().map(|e| e.degradation.unwrap().to_string()).collect();
        assert_eq!(got, ["1.5", "-0.5"]);
        assert_eq!(report.mean_degradation.unwrap().to_string(), "0.5");
        let r = rank(VOL, &[], c);
        let report = degradation(VOL, &r.entries, 1).unwrap();
        assert_eq!(report.entries.len(), 1);
        assert_eq!(report.entries[0].degradation.unwrap().to_string(), "0.1");
        assert!(degradation(SHARPE, &rank(SHARPE, &[], candidates(&[(Some(1.0), None, 1)])).entries, 5).is_none());
    }
}
