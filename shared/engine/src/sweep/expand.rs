//! A sweep's configs: which grid points (all of them, or a seeded sample), in which order, each
//! merged over the base and validated exactly as a create-job body.
//!
//! Order (docs/sweeps.md): `space` keys sorted by name (byte order), the last key varying
//! fastest, each key's values in their listed (or range) order, as scikit-learn's
//! `ParameterGrid` does; `param_grid` in list order. Config `i` of the sweep is the `i`-th
//! picked point in that order (a random search keeps the sampled points in grid order).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::HashSet;

use crate::bars::Timeframe;
use crate::config::{FieldError, JobConfig};
use crate::input::clipped;

use super::spec::{grid_size, Axes, Search, SweepSpec};

/// The bars and the engine pass a group of configs share: `batch::evaluate` takes the configs of
/// one group at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub template_id: String,
    pub symbols: Vec<String>,
    pub timeframe: Timeframe,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl GroupKey {
    pub fn of(config: &JobConfig) -> GroupKey {
        GroupKey {
            template_id: config.template_id.clone(),
            symbols: config.symbols.clone(),
            timeframe: config.timeframe,
            start_ms: config.start_ms(),
            end_ms: config.end_ms(),
        }
    }
}

/// The configs split by [`GroupKey`], groups in order of first appearance, each group's
/// indices ascending.
pub fn group(configs: &[JobConfig]) -> Vec<(GroupKey, Vec<usize>)> {
    let mut groups: Vec<(GroupKey, Vec<usize>)> = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let key = GroupKey::of(c);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups
}

impl SweepSpec {
    /// The grid indices the search picks, ascending: every index, or `samples` of them drawn
    /// without replacement (Floyd's algorithm) by SplitMix64 seeded with `seed`.
    pub fn picked(&self) -> Vec<u64> {
        let n = grid_size(&self.axes);
        match self.search {
            Search::Grid => (0..n).collect(),
            Search::Random { samples, seed } => {
                let mut rng = SplitMix64(seed);
                let k = samples as u64;
                let mut set = HashSet::with_capacity(samples);
                for j in n - k..n {
                    let t = rng.below(j + 1);
                    if !set.insert(t) {
                        set.insert(j);
                    }
                }
                let mut out: Vec<u64> = set.into_iter().collect();
                out.sort_unstable();
                out
            }
        }
    }

    /// What grid point `index` changes in the base: `(key, value)` pairs, `space` keys in grid
    /// order (`params.NAME` keys as written).
    pub fn overrides(&self, index: u64) -> Vec<(String, Value)> {
        match &self.axes {
            Axes::Space(axes) => {
                let mut rest = index;
                let mut out: Vec<(String, Value)> = axes
                    .iter()
                    .rev()
                    .map(|a| {
                        let len = a.values.len() as u64;
                        let digit = rest % len;
                        rest /= len;
                        (a.key.name(), a.values.get(digit as usize))
                    })
                    .collect();
                out.reverse();
                out
            }
            Axes::ParamGrid(entries) => entries[index as usize].iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// The create-job body of grid point `index`: `base` with its overrides applied (a
    /// `params.NAME` key sets one param; any other key replaces the field whole).
    pub fn body(&self, base: &Map<String, Value>, index: u64) -> Result<Map<String, Value>, FieldError> {
        let mut body = base.clone();
        for (key, value) in self.overrides(index) {
            match key.strip_prefix("params.").filter(|_| matches!(self.axes, Axes::Space(_))) {
                Some(param) => match body.entry("params").or_insert_with(|| Value::Object(Map::new())) {
                    Value::Object(params) => {
                        params.insert(param.to_string(), value);
                    }
                    _ => {
                        return Err(FieldError::new(
                            "base.params",
                            format!("must be a JSON object for space to vary {}", clipped(&key)),
                        ))
                    }
                },
                None => {
                    body.insert(key, value);
                }
            }
        }
        Ok(body)
    }

    /// Every config of the sweep, in sweep order, each validated as a create-job body with
    /// [`JobConfig::from_value`]. `base` is [`SweepSpec::offline_base`] offline, or the service's
    /// merge of the strategy's config and `base` (with `strategy_id`, echoed by every config).
    ///
    /// The first invalid config is the error: `base.FIELD` when the field it names is not one the
    /// sweep varies, else `space` ("config 17 (params.fast=50, params.slow=10): params.slow: must
    /// be greater than params.fast") or `param_grid[17].FIELD` for the entry's own fields.
    pub fn expand(&self, base: &Map<String, Value>, now: DateTime<Utc>) -> Result<Vec<JobConfig>, FieldError> {
        let picked = self.picked();
        let mut configs = Vec::with_capacity(picked.len());
        for (i, &index) in picked.iter().enumerate() {
            let body = self.body(base, index)?;
            let config = JobConfig::from_value(&Value::Object(body), now).map_err(|e| self.blame(i, index, e))?;
            configs.push(config);
        }
        Ok(configs)
    }

    /// The error of config `i` (grid point `index`) as the sweep reports it.
    fn blame(&self, i: usize, index: u64, e: FieldError) -> FieldError {
        let overrides = self.overrides(index);
        let top = e.field.split(['.', '[']).next().unwrap_or_default();
        let varied = |key: &str| match key.strip_prefix("params.") {
            Some(_) => e.field == key || e.field.starts_with(&format!("{key}.")),
            None => key == top,
        };
        if !overrides.iter().any(|(k, _)| varied(k)) {
            return FieldError::new(format!("base.{}", e.field), e.message);
        }
        match self.axes {
            Axes::ParamGrid(_) => FieldError::new(format!("param_grid[{index}].{}", e.field), e.message),
            Axes::Space(_) => {
                let values: Vec<String> =
                    overrides.iter().map(|(k, v)| format!("{k}={}", clipped(&v.to_string()))).collect();
                FieldError::new("space", format!("config {i} ({}): {}: {}", values.join(", "), e.field, e.message))
            }
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): the seeded generator of a random search. Written
/// out so a seed picks the same configs in every build and every release.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`) by multiply-shift (bias below n / 2^64).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_iso;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_iso("2026-01-01T00:00:00Z").unwrap()
    }

    pub(crate) fn base() -> Value {
        json!({"template_id": "tpl_ma_cross", "params": {"fast": 10, "slow": 50}, "symbols": ["BTCUSDT"],
               "timeframe": "1h", "start": "2025-01-01T00:00:00Z", "end": "2025-03-01T00:00:00Z", "capital": "10000"})
    }

    fn spec(extra: Value) -> SweepSpec {
        let mut body = json!({"base": base()});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        SweepSpec::from_object(body.as_object().unwrap()).unwrap()
    }

    fn params(configs: &[JobConfig]) -> Vec<(i64, i64)> {
        configs.iter().map(|c| (c.params["fast"].as_i64().unwrap(), c.params["slow"].as_i64().unwrap())).collect()
    }

    #[test]
    fn the_grid_is_the_cartesian_product_keys_sorted_last_fastest() {
        let s = spec(json!({"space": {"params.slow": {"from": 50, "to": 70, "step": 10}, "params.fast": [5, 10],
                                      "fee_bps": ["2", "5"]}}));
        assert_eq!(s.n_configs(), 12);
        let configs = s.expand(s.offline_base().unwrap(), now()).unwrap();
        assert_eq!(configs.len(), 12);
        // fee_bps < params.fast < params.slow: slow fastest, then fast, then fee_bps.
        let fee: Vec<String> = configs.iter().map(|c| c.fee_bps.unwrap().to_string()).collect();
        assert_eq!(fee, ["2", "2", "2", "2", "2", "2", "5", "5", "5", "5", "5", "5"]);
        assert_eq!(params(&configs[..6]), [(5, 50), (5, 60), (5, 70), (10, 50), (10, 60), (10, 70)]);
        // Untouched base fields stay; the whole body is resolved (defaults filled).
        assert_eq!(configs[0].params["direction"], "long");
    }

    #[test]
    fn decimal_ranges_and_param_grid() {
        let s = spec(json!({"space": {"slippage_bps": {"from": "0.5", "to": "1.6", "step": "0.5"}}}));
        let configs = s.expand(&s.base, now()).unwrap();
        let slip: Vec<String> = configs.iter().map(|c| c.slippage_bps.unwrap().to_string()).collect();
        assert_eq!(slip, ["0.5", "1.0", "1.5"]);
        let s = spec(json!({"param_grid": [{"params": {"fast": 3, "slow": 9}}, {"capital": "500"}]}));
        let configs = s.expand(&s.base, now()).unwrap();
        assert_eq!(params(&configs), [(3, 9), (10, 50)]);
        assert_eq!(configs[0].params["direction"], "long");
        assert_eq!(configs[1].capital.to_string(), "500");
    }

    #[test]
    fn random_search_is_a_seeded_sample_without_replacement() {
        let space =
            json!({"params.fast": {"from": 1, "to": 40, "step": 1}, "params.slow": {"from": 50, "to": 149, "step": 1}});
        let pick = |seed: u64, samples: usize| {
            spec(json!({"space": space, "search": {"method": "random", "samples": samples, "seed": seed}})).picked()
        };
        let a = pick(7, 300);
        assert_eq!(a, pick(7, 300));
        assert_ne!(a, pick(8, 300));
        assert_eq!(a.len(), 300);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < 4000);
        // Every point once when the sample is the whole grid.
        assert_eq!(pick(1, 4000), (0..4000).collect::<Vec<u64>>());
        // The configs are those grid points.
        let s = spec(json!({"space": space, "search": {"method": "random", "samples": 5, "seed": 7}}));
        let configs = s.expand(&s.base, now()).unwrap();
        let expected: Vec<(i64, i64)> = s.picked().iter().map(|&i| (1 + i as i64 / 100, 50 + i as i64 % 100)).collect();
        assert_eq!(params(&configs), expected);
    }

    #[test]
    fn an_invalid_config_names_its_index_and_field() {
        let s = spec(json!({"space": {"params.fast": [10, 60], "params.slow": [50, 100]}}));
        let err = s.expand(&s.base, now()).unwrap_err();
        assert_eq!(err.field, "space");
        assert_eq!(
            err.message,
            "config 2 (params.fast=60, params.slow=50): params.slow: must be greater than params.fast (60), got 50"
        );
        let s = spec(json!({"param_grid": [{"capital": "5"}, {"leverage": 99}]}));
        let err = s.expand(&s.base, now()).unwrap_err();
        assert_eq!(err.field, "param_grid[1].leverage", "{err}");
        // A fault of the base is the base's.
        let mut body = json!({"base": base(), "space": {"params.fast": [1, 2]}});
        body["base"].as_object_mut().unwrap().remove("capital");
        let s = SweepSpec::from_object(body.as_object().unwrap()).unwrap();
        assert_eq!(s.expand(&s.base, now()).unwrap_err().to_string(), "base.capital: is required");
    }

    #[test]
    fn groups_follow_the_bars_configs_need() {
        let s = spec(json!({"space": {"symbols": [["BTCUSDT"], ["ETHUSDT"]], "params.fast": [5, 6]}}));
        let configs = s.expand(&s.base, now()).unwrap();
        let groups = group(&configs);
        let members: Vec<&Vec<usize>> = groups.iter().map(|(_, m)| m).collect();
        assert_eq!(members, [&vec![0, 2], &vec![1, 3]]);
        assert_eq!(groups[0].0.symbols, ["BTCUSDT"]);
    }
}
