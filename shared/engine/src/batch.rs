//! Many configs of one sweep on the same bars: what a leaderboard needs of each (its metrics,
//! and with validation its out-of-sample metrics), never the equity curve or the trades.
//!
//! Contract: for every config, `evaluate(..)[i].in_sample` equals, string for string, the
//! metrics of [`crate::run`] with the in-sample config [`Validation::in_sample_config`] gives.
//!
//! This first version runs each config through [`crate::run`] (the reference); the batch engine
//! that shares indicator series across configs replaces the body, not the signature.

use rust_decimal::Decimal;

use crate::result::{Metrics, StructuredMetrics};
use crate::{Bars, EngineError, JobConfig, NoObserver};

/// How a sweep splits the job window into in-sample and out-of-sample parts (API.md, Sweeps).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Validation {
    /// The whole window is in sample; no `oos_metrics`.
    #[default]
    None,
    /// Train first, test after: the last `test_fraction` of the window is the test window.
    Holdout { test_fraction: Decimal },
    /// `folds` consecutive test windows at the end of the window, each after its train window
    /// (anchored: train starts at the window start; rolling: fixed-length train).
    WalkForward { folds: u32, test_fraction: Decimal, anchored: bool },
}

/// What a sweep keeps of one config's run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub metrics: Metrics,
    pub structured_metrics: StructuredMetrics,
}

/// One config's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Over the in-sample window (the whole window without validation).
    pub in_sample: Scores,
    /// Aggregated over the test windows (docs/metrics.md); `None` without validation.
    pub out_of_sample: Option<Scores>,
}

impl Validation {
    /// The config whose job run gives an entry's in-sample metrics exactly: `config` with its
    /// window narrowed to the in-sample part (the whole window without validation).
    pub fn in_sample_config(&self, config: &JobConfig) -> JobConfig {
        match self {
            Validation::None => config.clone(),
            // The batch engine's change defines the split; until then the reference has none.
            _ => config.clone(),
        }
    }
}

/// Evaluates every config (all of one template, on the same symbols and timeframe) on `data`
/// (one bar series per symbol, covering the configs' windows). Results are in `configs` order.
pub fn evaluate(configs: &[JobConfig], data: &[Bars], validation: &Validation) -> Vec<Result<Evaluation, EngineError>> {
    configs
        .iter()
        .map(|config| {
            let config = validation.in_sample_config(config);
            let run = crate::run(&config, data, &mut NoObserver)?;
            Ok(Evaluation {
                in_sample: Scores { metrics: run.result.metrics, structured_metrics: run.result.structured_metrics },
                out_of_sample: None,
            })
        })
        .collect()
}
