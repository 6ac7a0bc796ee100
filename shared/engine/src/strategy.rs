//! A stored strategy's `config`: any subset of the create-job fields, `template_id` and `params`
//! required. Every field given is checked as at job creation (by the same functions: the
//! config module's `Given`), its error naming it as `config.FIELD`; omitted fields stay omitted
//! (no defaults filled in), and `params` are kept as given (the template fills its defaults when
//! a job is made from the strategy).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::bars::Timeframe;
use crate::config::{as_iso, from_iso, required, FeeModel, FieldError, Given, JobConfig, FIELDS};

/// A strategy's stored config. Serializes as the JSON object the API shows (absent fields
/// omitted); `Deserialize` reads that form back without validating it (configs this service
/// checked and stored); requests go through [`StrategyConfig::from_value`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyConfig {
    pub template_id: String,
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeframe: Option<Timeframe>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_iso",
        deserialize_with = "opt_from_iso"
    )]
    pub start: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_iso",
        deserialize_with = "opt_from_iso"
    )]
    pub end: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capital: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_model: Option<FeeModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_bps: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slippage_bps: Option<Decimal>,
}

fn opt_iso<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => as_iso(t, s),
        None => s.serialize_none(),
    }
}

fn opt_from_iso<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    from_iso(d).map(Some)
}

/// `config.FIELD`: where a strategy's config errors point.
fn in_config(e: FieldError) -> FieldError {
    FieldError { field: format!("config.{}", e.field), message: e.message }
}

impl StrategyConfig {
    /// Validates a strategy's `config` object; `now` bounds `end` as at job creation.
    pub fn from_value(value: &Value, now: DateTime<Utc>) -> Result<StrategyConfig, FieldError> {
        let obj = value.as_object().ok_or_else(|| FieldError::new("config", "must be a JSON object"))?;
        Self::checked(obj, now).map_err(in_config)
    }

    fn checked(obj: &Map<String, Value>, now: DateTime<Utc>) -> Result<StrategyConfig, FieldError> {
        let given = Given::parse(obj, &FIELDS[..FIELDS.len() - 1], now)?;
        let spec = required(given.spec, "template_id")?;
        let params = required(given.params, "params")?;
        Ok(StrategyConfig {
            template_id: spec.id.to_string(),
            params: params.clone(),
            symbols: given.symbols,
            timeframe: given.timeframe,
            start: given.start,
            end: given.end,
            capital: given.capital,
            leverage: given.leverage,
            fee_model: given.fee_model,
            fee_bps: given.fee_bps,
            slippage_bps: given.slippage_bps,
        })
    }

    /// The config as the JSON object it is shown and merged as.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self).expect("a strategy config serializes") {
            Value::Object(m) => m,
            _ => unreachable!("a struct serializes as an object"),
        }
    }

    /// A create-job body over this strategy: every top-level field of `body` replaces the
    /// strategy's whole (`params` too; `strategy_id` itself is not a config field), and the
    /// result is validated exactly as a body without `strategy_id`. The job's config carries
    /// `strategy_id`.
    pub fn job_config(
        &self,
        strategy_id: &str,
        body: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<JobConfig, FieldError> {
        let mut merged = self.to_map();
        for (k, v) in body {
            if k != "strategy_id" {
                merged.insert(k.clone(), v.clone());
            }
        }
        let mut config = JobConfig::from_value(&Value::Object(merged), now)?;
        config.strategy_id = Some(strategy_id.to_string());
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_iso;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_iso("2026-04-29T10:15:00Z").unwrap()
    }

    #[test]
    fn omitted_fields_stay_omitted() {
        let v = json!({"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}, "capital": "10000.00"});
        let cfg = StrategyConfig::from_value(&v, now()).unwrap();
        assert_eq!(serde_json::to_value(&cfg).unwrap(), v);
        let back: StrategyConfig = serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn every_field_is_checked_as_at_job_creation() {
        let base = json!({"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}});
        let cases: [(&str, Value, &str); 12] = [
            ("template_id", json!("tpl_nope"), "config.template_id"),
            ("params", json!({"fast": 0, "slow": 20}), "config.params.fast"),
            ("params", json!([1]), "config.params"),
            ("symbols", json!(["btc"]), "config.symbols[0]"),
            ("timeframe", json!("2h"), "config.timeframe"),
            ("start", json!("yesterday"), "config.start"),
            ("end", json!("2099-01-01T00:00:00Z"), "config.end"),
            ("capital", json!(100), "config.capital"),
            ("leverage", json!(0), "config.leverage"),
            ("fee_model", json!("maker"), "config.fee_model"),
            ("fee_bps", json!("-1"), "config.fee_bps"),
            ("strategy_id", json!("st_00000000"), "config.strategy_id"),
        ];
        for (field, value, named) in cases {
            let mut v = base.clone();
            v[field] = value;
            let err = StrategyConfig::from_value(&v, now()).unwrap_err();
            assert_eq!(err.field, named, "{err}");
        }
        for required in ["template_id", "params"] {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(required);
            let err = StrategyConfig::from_value(&v, now()).unwrap_err();
            assert_eq!(err.to_string(), format!("config.{required}: is required"));
        }
        let mut v = base.clone();
        v["start"] = json!("2025-02-01T00:00:00Z");
        v["end"] = json!("2025-01-01T00:00:00Z");
        assert_eq!(StrategyConfig::from_value(&v, now()).unwrap_err().field, "config.end");
    }

    #[test]
    fn a_job_body_replaces_whole_fields() {
        let strategy = StrategyConfig::from_value(
            &json!({"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}, "symbols": ["BTCUSDT"],
                    "timeframe": "1h", "capital": "5000"}),
            now(),
        )
        .unwrap();
        let body = json!({"strategy_id": "st_0a1b2c3d", "params": {"slow": 30}, "start": "2025-01-01T00:00:00Z",
                          "end": "2025-02-01T00:00:00Z"});
        let err = strategy.job_config("st_0a1b2c3d", body.as_object().unwrap(), now()).unwrap_err();
        assert_eq!(err.field, "params.fast", "params are replaced whole: {err}");
        let mut body = body;
        body["params"] = json!({"fast": 3, "slow": 30});
        let cfg = strategy.job_config("st_0a1b2c3d", body.as_object().unwrap(), now()).unwrap();
        assert_eq!((cfg.capital, cfg.strategy_id.as_deref()), (Decimal::from(5000), Some("st_0a1b2c3d")));
        assert_eq!(cfg.params["slow"], 30);
        body.as_object_mut().unwrap().remove("end");
        let err = strategy.job_config("st_0a1b2c3d", body.as_object().unwrap(), now()).unwrap_err();
        assert_eq!(err.to_string(), "end: is required");
    }
}
