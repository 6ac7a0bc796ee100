//! The job config: the create-job request body of seed 003, validated field by field into the
//! resolved config the job runs with (and echoes, defaults filled).

use chrono::{DateTime, Months, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

use crate::bars::Timeframe;
use crate::input::{clipped, parse_json_object_strict, quoted};
use crate::templates::{self, parse_decimal, StrategyParams, TemplateSpec};
use crate::time::{iso, parse_iso};

/// A request field that is missing or wrong. `field` is the JSON path (`capital`, `params.fast`,
/// `symbols[1]`); the API answers `400 INVALID_PARAMETER` with `"{field}: {message}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

pub const MAX_LEVERAGE: u32 = 20;
pub const MAX_SYMBOLS: usize = 20;
pub const MAX_SPAN_MONTHS: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeModel {
    None,
    FixedBps,
    TieredMakerTaker,
    MatchExchange,
}

impl FeeModel {
    pub const ALL: [FeeModel; 4] =
        [FeeModel::None, FeeModel::FixedBps, FeeModel::TieredMakerTaker, FeeModel::MatchExchange];

    pub fn as_str(self) -> &'static str {
        match self {
            FeeModel::None => "none",
            FeeModel::FixedBps => "fixed_bps",
            FeeModel::TieredMakerTaker => "tiered_maker_taker",
            FeeModel::MatchExchange => "match_exchange",
        }
    }
}

/// The resolved configuration a job runs with; serializes as the seeds' `config` object.
///
/// `Deserialize` reads that serialized form back without validating it: it is for configs this
/// service resolved and stored itself. Requests go through [`JobConfig::from_json_bytes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobConfig {
    pub template_id: String,
    pub params: Map<String, Value>,
    pub symbols: Vec<String>,
    pub timeframe: Timeframe,
    #[serde(serialize_with = "as_iso", deserialize_with = "from_iso")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "as_iso", deserialize_with = "from_iso")]
    pub end: DateTime<Utc>,
    pub capital: Decimal,
    pub leverage: u32,
    pub fee_model: FeeModel,
    /// Present only with `fee_model = fixed_bps`, the only model that honours it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_bps: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slippage_bps: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy_id: Option<String>,
}

pub(crate) fn as_iso<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(t.timestamp_millis()))
}

pub(crate) fn from_iso<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    parse_iso(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an ISO 8601 UTC time")))
}

/// The create-job body's fields; a strategy's config takes all but the last, a sweep's `space`
/// may vary any of them but `strategy_id`.
pub const FIELDS: [&str; 12] = [
    "template_id",
    "params",
    "symbols",
    "timeframe",
    "start",
    "end",
    "capital",
    "leverage",
    "fee_model",
    "fee_bps",
    "slippage_bps",
    "strategy_id",
];

/// The create-job body's fields that belong to the job, not to its config: `notify_url` (the
/// completion webhook, which the service takes out of the body and keeps beside the config).
/// [`JobConfig::from_value`] accepts and ignores them, and lists them among the allowed fields.
pub const JOB_FIELDS: [&str; 1] = ["notify_url"];

impl JobConfig {
    /// Parses and validates a create-job body. `now` bounds `end` (no future windows). A key
    /// given twice, at any depth, is an error (see [`parse_json_object_strict`]).
    pub fn from_json_bytes(body: &[u8], now: DateTime<Utc>) -> Result<JobConfig, FieldError> {
        JobConfig::from_value(&Value::Object(parse_json_object_strict(body)?), now)
    }

    /// Validates a create-job body field by field (each field's check is one function, which
    /// [`StrategyConfig`](crate::strategy::StrategyConfig) shares through [`Given`]) and fills
    /// the defaults.
    pub fn from_value(value: &Value, now: DateTime<Utc>) -> Result<JobConfig, FieldError> {
        let obj = value.as_object().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        let body_fields: Vec<&str> = FIELDS.iter().chain(&JOB_FIELDS).copied().collect();
        let given = Given::parse(obj, &body_fields, now)?;
        let spec = required(given.spec, "template_id")?;
        let params = required(given.params, "params")?;
        let symbols = required(given.symbols, "symbols")?;
        let (params, _) = templates::resolve_params(spec, params, symbols.len())?;
        let timeframe = required(given.timeframe, "timeframe")?;
        let (start, end) = (required(given.start, "start")?, required(given.end, "end")?);
        let capital = required(given.capital, "capital")?;
        let leverage = given.leverage.unwrap_or(1);
        let fee_model = given.fee_model.unwrap_or(FeeModel::FixedBps);
        // fee_bps is honoured only by fixed_bps (seed 003); it is dropped from the echo otherwise
        // so the resolved config never shows a fee that does not apply.
        let fee_bps = match fee_model {
            FeeModel::FixedBps => Some(given.fee_bps.unwrap_or(Decimal::from(5))),
            _ => None,
        };
        let slippage_bps = given.slippage_bps;
        let strategy_id = match present(obj, "strategy_id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(FieldError::new("strategy_id", "must be a string")),
        };

        Ok(JobConfig {
            template_id: spec.id.to_string(),
            params,
            symbols,
            timeframe,
            start,
            end,
            capital,
            leverage,
            fee_model,
            fee_bps,
            slippage_bps,
            strategy_id,
        })
    }

    pub fn template(&self) -> &'static TemplateSpec {
        templates::find(&self.template_id).expect("a JobConfig only holds catalog templates")
    }

    /// The typed params (re-derived from the resolved map, which was validated when built).
    pub fn strategy_params(&self) -> Result<StrategyParams, FieldError> {
        templates::resolve_params(self.template(), &self.params, self.symbols.len()).map(|(_, p)| p)
    }

    pub fn start_ms(&self) -> i64 {
        self.start.timestamp_millis()
    }

    pub fn end_ms(&self) -> i64 {
        self.end.timestamp_millis()
    }
}

impl fmt::Display for FeeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The field's value unless it is absent or `null` (both mean "not given").
pub(crate) fn present<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// `value`, or "`name`: is required".
pub(crate) fn required<T>(value: Option<T>, name: &str) -> Result<T, FieldError> {
    value.ok_or_else(|| FieldError::new(name, "is required"))
}

/// The create-job fields a body gives (absent or `null`: `None`), each checked as at job
/// creation, and together where two or more given fields must agree (the window, params and
/// symbols with the template, symbols with `match_exchange`). A job requires most of them and
/// fills defaults; a strategy's config keeps what is given.
pub(crate) struct Given<'a> {
    pub spec: Option<&'static TemplateSpec>,
    pub params: Option<&'a Map<String, Value>>,
    pub symbols: Option<Vec<String>>,
    pub timeframe: Option<Timeframe>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub capital: Option<Decimal>,
    pub leverage: Option<u32>,
    pub fee_model: Option<FeeModel>,
    pub fee_bps: Option<Decimal>,
    pub slippage_bps: Option<Decimal>,
}

impl<'a> Given<'a> {
    /// `obj`'s fields (only `fields` are allowed), checked; `now` bounds `end`.
    pub(crate) fn parse(
        obj: &'a Map<String, Value>,
        fields: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Given<'a>, FieldError> {
        check::known_fields(obj, fields)?;
        let spec = present(obj, "template_id").map(check::template_id).transpose()?;
        let params = present(obj, "params").map(check::params).transpose()?;
        // Symbols are counted against the template, so they are checked only with one.
        let symbols = match spec {
            Some(spec) => present(obj, "symbols").map(|v| check::symbols(v, spec)).transpose()?,
            None => None,
        };
        if let (Some(spec), Some(params)) = (spec, params) {
            // Without symbols, against the most the template takes.
            templates::resolve_params(spec, params, symbols.as_ref().map_or(spec.max_symbols, Vec::len))?;
        }
        let timeframe = present(obj, "timeframe").map(check::timeframe).transpose()?;
        let start = present(obj, "start").map(|v| check::time("start", v)).transpose()?;
        let end = present(obj, "end").map(|v| check::time("end", v)).transpose()?;
        check::window(start, end, now)?;
        let capital = present(obj, "capital").map(check::capital).transpose()?;
        let leverage = present(obj, "leverage").map(check::leverage).transpose()?;
        let fee_model = present(obj, "fee_model").map(check::fee_model).transpose()?;
        let fee_bps = present(obj, "fee_bps").map(|v| check::bps("fee_bps", v)).transpose()?;
        let slippage_bps = present(obj, "slippage_bps").map(|v| check::bps("slippage_bps", v)).transpose()?;
        if let (Some(model), Some(symbols)) = (fee_model, &symbols) {
            check::venue_schedules(model, symbols)?;
        }
        Ok(Given { spec, params, symbols, timeframe, start, end, capital, leverage, fee_model, fee_bps, slippage_bps })
    }
}

/// One check per create-job field, each naming its field in its error ([`Given`] calls them).
mod check {
    use super::*;

    /// Every key of `obj` is one of `fields`.
    pub fn known_fields(obj: &Map<String, Value>, fields: &[&str]) -> Result<(), FieldError> {
        match obj.keys().find(|k| !fields.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(FieldError::new(
                clipped(unknown),
                format!("unknown field; allowed fields are {}", fields.join(", ")),
            )),
        }
    }

    fn string<'a>(name: &str, v: &'a Value) -> Result<&'a str, FieldError> {
        v.as_str().ok_or_else(|| FieldError::new(name, "must be a string"))
    }

    pub fn template_id(v: &Value) -> Result<&'static TemplateSpec, FieldError> {
        let template_id = string("template_id", v)?;
        templates::find(template_id).ok_or_else(|| {
            let ids: Vec<&str> = templates::catalog().iter().map(|t| t.id).collect();
            let template = quoted(template_id);
            FieldError::new("template_id", format!("unknown template {template}; available: {}", ids.join(", ")))
        })
    }

    pub fn params(v: &Value) -> Result<&Map<String, Value>, FieldError> {
        v.as_object().ok_or_else(|| FieldError::new("params", "must be a JSON object"))
    }

    pub fn timeframe(v: &Value) -> Result<Timeframe, FieldError> {
        string("timeframe", v)?.parse().map_err(|m| FieldError::new("timeframe", m))
    }

    pub fn time(name: &str, v: &Value) -> Result<DateTime<Utc>, FieldError> {
        let text = string(name, v)?;
        parse_iso(text).ok_or_else(|| {
            let text = quoted(text);
            FieldError::new(
                name,
                format!("{text} is not an ISO 8601 UTC time YYYY-MM-DDTHH:MM:SS[.sss]Z like \"2025-01-01T00:00:00Z\""),
            )
        })
    }

    /// `end` after `start`, at most 5 years after it, and not in the future (each rule where
    /// the times it needs are given).
    pub fn window(
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), FieldError> {
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                return Err(FieldError::new("end", "must be after start"));
            }
            if start.checked_add_months(Months::new(MAX_SPAN_MONTHS)).is_some_and(|limit| end > limit) {
                return Err(FieldError::new("end", "the window from start to end may span at most 5 years"));
            }
        }
        match end {
            Some(end) if end > now => Err(FieldError::new(
                "end",
                format!("is in the future (server time is {})", iso(now.timestamp_millis())),
            )),
            _ => Ok(()),
        }
    }

    pub fn capital(v: &Value) -> Result<Decimal, FieldError> {
        let capital = decimal("capital", v)?;
        if capital <= Decimal::ZERO || capital > Decimal::from(1_000_000_000_000_i64) {
            return Err(FieldError::new("capital", "must be greater than 0 and at most 1000000000000"));
        }
        Ok(capital)
    }

    pub fn leverage(v: &Value) -> Result<u32, FieldError> {
        match v.as_u64() {
            Some(n) if (1..=MAX_LEVERAGE as u64).contains(&n) => Ok(n as u32),
            _ => Err(FieldError::new("leverage", format!("must be an integer from 1 to {MAX_LEVERAGE}"))),
        }
    }

    pub fn fee_model(v: &Value) -> Result<FeeModel, FieldError> {
        let names: Vec<&str> = FeeModel::ALL.iter().map(|m| m.as_str()).collect();
        let bad = || FieldError::new("fee_model", format!("must be one of {}", names.join(", ")));
        let s = v.as_str().ok_or_else(bad)?;
        FeeModel::ALL.iter().find(|m| m.as_str() == s).copied().ok_or_else(bad)
    }

    /// `fee_bps` or `slippage_bps`: a decimal string from 0 to 1000.
    pub fn bps(name: &str, v: &Value) -> Result<Decimal, FieldError> {
        let d = decimal(name, v)?;
        // "-0" too (the decimal drops the sign of zero): a signed basis-point amount is a mistake.
        let signed = v.as_str().is_some_and(|t| t.starts_with('-'));
        if signed || d < Decimal::ZERO || d > Decimal::from(1000) {
            return Err(FieldError::new(name, "must be from 0 to 1000 basis points"));
        }
        Ok(d)
    }

    /// With `match_exchange`, every symbol needs a published venue schedule.
    pub fn venue_schedules(fee_model: FeeModel, symbols: &[String]) -> Result<(), FieldError> {
        if fee_model != FeeModel::MatchExchange {
            return Ok(());
        }
        for (i, s) in symbols.iter().enumerate() {
            if crate::fees::venue_rates(s).is_none() {
                return Err(FieldError::new(
                    format!("symbols[{i}]"),
                    format!("{s} has no published venue schedule for fee_model match_exchange"),
                ));
            }
        }
        Ok(())
    }

    fn decimal(name: &str, v: &Value) -> Result<Decimal, FieldError> {
        match v {
            Value::String(s) => {
                parse_decimal(s).ok_or_else(|| FieldError::new(name, format!("{} is not a decimal number", quoted(s))))
            }
            Value::Number(n) => Err(FieldError::new(
                name,
                format!("must be a decimal string like \"{n}\", not a JSON number (money travels as strings to keep its precision)"),
            )),
            _ => Err(FieldError::new(name, "must be a decimal string")),
        }
    }

    pub fn symbols(v: &Value, spec: &TemplateSpec) -> Result<Vec<String>, FieldError> {
        let list = v.as_array().ok_or_else(|| FieldError::new("symbols", "must be an array of strings"))?;
        if list.is_empty() {
            return Err(FieldError::new("symbols", "must name at least one symbol"));
        }
        if list.len() > MAX_SYMBOLS {
            return Err(FieldError::new("symbols", format!("may name at most {MAX_SYMBOLS} symbols")));
        }
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let field = format!("symbols[{i}]");
            let s = s.as_str().ok_or_else(|| FieldError::new(&field, "must be a string"))?;
            let ok = (2..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !ok {
                let symbol = quoted(s);
                return Err(FieldError::new(
                    field,
                    format!("{symbol} is not an uppercase exchange symbol like \"BTCUSDT\""),
                ));
            }
            if out.iter().any(|o| o == s) {
                return Err(FieldError::new(field, format!("{s} is listed twice")));
            }
            out.push(s.to_string());
        }
        if out.len() < spec.min_symbols || out.len() > spec.max_symbols {
            let want = if spec.min_symbols == spec.max_symbols {
                format!("exactly {}", spec.min_symbols)
            } else {
                format!("{} to {}", spec.min_symbols, spec.max_symbols)
            };
            return Err(FieldError::new("symbols", format!("{} takes {want} symbol(s), got {}", spec.id, out.len())));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_iso("2026-04-29T10:15:00Z").unwrap()
    }

    fn seed_body() -> Value {
        json!({
            "template_id": "tpl_grid",
            "params": {"grid_levels": 8, "upper_price": "72000", "lower_price": "60000"},
            "symbols": ["BTCUSDT"],
            "timeframe": "1h",
            "start": "2025-01-01T00:00:00Z",
            "end": "2025-12-31T23:59:59Z",
            "capital": "10000.00",
            "leverage": 1,
            "fee_model": "fixed_bps",
            "fee_bps": "5"
        })
    }

    fn err_of(mut patch: impl FnMut(&mut Map<String, Value>)) -> FieldError {
        let mut body = seed_body();
        patch(body.as_object_mut().unwrap());
        JobConfig::from_value(&body, now()).unwrap_err()
    }

    #[test]
    fn seed_example_echoes_as_in_the_seed() {
        let cfg = JobConfig::from_value(&seed_body(), now()).unwrap();
        let echoed = serde_json::to_value(&cfg).unwrap();
        let mut expected = seed_body();
        expected["params"]["spacing"] = json!("arithmetic");
        assert_eq!(echoed, expected);
    }

    #[test]
    fn defaults_are_filled() {
        let cfg = JobConfig::from_value(
            &json!({"template_id": "tpl_breakout", "params": {"lookback": 24}, "symbols": ["ETHUSDT"], "timeframe": "15m",
                    "start": "2025-06-01T00:00:00Z", "end": "2025-09-30T23:59:59Z", "capital": "5000"}),
            now(),
        )
        .unwrap();
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["leverage"], 1);
        assert_eq!(v["fee_model"], "fixed_bps");
        assert_eq!(v["fee_bps"], "5");
        assert_eq!(v["params"], json!({"lookback": 24, "direction": "long", "fraction": "1"}));
        assert!(v.get("slippage_bps").is_none());
    }

    #[test]
    fn every_validation_names_its_field() {
        type Patch = Box<dyn FnMut(&mut Map<String, Value>)>;
        let cases: Vec<(&str, &str, Patch)> = vec![
            (
                "template_id",
                "is required",
                Box::new(|b| {
                    b.remove("template_id");
                }),
            ),
            (
                "template_id",
                "unknown template",
                Box::new(|b| {
                    b.insert("template_id".into(), json!("tpl_nope"));
                }),
            ),
            (
                "params",
                "is required",
                Box::new(|b| {
                    b.remove("params");
                }),
            ),
            (
                "params.grid_levels",
                "integer from 2 to 200",
                Box::new(|b| {
                    b["params"]["grid_levels"] = json!(1);
                }),
            ),
            (
                "symbols",
                "is required",
                Box::new(|b| {
                    b.remove("symbols");
                }),
            ),
            (
                "symbols[0]",
                "uppercase exchange symbol",
                Box::new(|b| {
                    b.insert("symbols".into(), json!(["btc-usdt"]));
                }),
            ),
            (
                "symbols",
                "exactly 1",
                Box::new(|b| {
                    b.insert("symbols".into(), json!(["BTCUSDT", "ETHUSDT"]));
                }),
            ),
            (
                "symbols[1]",
                "listed twice",
                Box::new(|b| {
                    b.insert("symbols".into(), json!(["BTCUSDT", "BTCUSDT"]));
                }),
            ),
            (
                "timeframe",
                "unsupported timeframe",
                Box::new(|b| {
                    b.insert("timeframe".into(), json!("2h"));
                }),
            ),
            (
                "start",
                "ISO 8601",
                Box::new(|b| {
                    b.insert("start".into(), json!("yesterday"));
                }),
            ),
            (
                "end",
                "after start",
                Box::new(|b| {
                    b.insert("end".into(), json!("2025-01-01T00:00:00Z"));
                }),
            ),
            (
                "end",
                "at most 5 years",
                Box::new(|b| {
                    b.insert("start".into(), json!("2019-12-31T00:00:00Z"));
                }),
            ),
            (
                "end",
                "in the future",
                Box::new(|b| {
                    b.insert("end".into(), json!("2027-01-01T00:00:00Z"));
                }),
            ),
            (
                "capital",
                "not a decimal",
                Box::new(|b| {
                    b.insert("capital".into(), json!("ten"));
                }),
            ),
            (
                "capital",
                "greater than 0",
                Box::new(|b| {
                    b.insert("capital".into(), json!("-1"));
                }),
            ),
            (
                "capital",
                "not a JSON number",
                Box::new(|b| {
                    b.insert("capital".into(), json!(10000));
                }),
            ),
            (
                "capital",
                "is required",
                Box::new(|b| {
                    b.remove("capital");
                }),
            ),
            (
                "leverage",
                "integer from 1 to 20",
                Box::new(|b| {
                    b.insert("leverage".into(), json!(21));
                }),
            ),
            (
                "leverage",
                "integer from 1 to 20",
                Box::new(|b| {
                    b.insert("leverage".into(), json!("2"));
                }),
            ),
            (
                "fee_model",
                "must be one of",
                Box::new(|b| {
                    b.insert("fee_model".into(), json!("maker"));
                }),
            ),
            (
                "fee_bps",
                "from 0 to 1000",
                Box::new(|b| {
                    b.insert("fee_bps".into(), json!("-5"));
                }),
            ),
            (
                "colour",
                "unknown field",
                Box::new(|b| {
                    b.insert("colour".into(), json!("red"));
                }),
            ),
        ];
        for (field, needle, mut patch) in cases {
            let err = err_of(&mut patch);
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(needle), "{field}: {}", err.message);
        }
        let err = err_of(|b| {
            b.insert("colour".into(), json!("red"));
        });
        assert_eq!(
            err.message,
            "unknown field; allowed fields are template_id, params, symbols, timeframe, start, end, capital, \
             leverage, fee_model, fee_bps, slippage_bps, strategy_id, notify_url"
        );
        // `notify_url` is the job's, never the config's: accepted and left out.
        let mut with_hook = seed_body();
        with_hook["notify_url"] = json!("https://example.com/hook");
        assert_eq!(
            JobConfig::from_value(&with_hook, now()).unwrap(),
            JobConfig::from_value(&seed_body(), now()).unwrap()
        );
        let err = JobConfig::from_json_bytes(b"{not json", now()).unwrap_err();
        assert_eq!(err.field, "body");
        let err = JobConfig::from_json_bytes(b"[1]", now()).unwrap_err();
        assert_eq!(err.to_string(), "body: must be a JSON object");
    }

    #[test]
    fn times_must_have_the_contract_shape() {
        for field in ["start", "end"] {
            for text in [
                "2025-01-01T00:00:00z",
                "2025-01-01 00:00:00Z",
                "2025-01-01t00:00:00Z",
                "2025-01-01T01:00:00+01:00",
                "2025-01-01T00:00:00.0001Z",
                "2024-12-31T23:59:60Z",
                "2025-02-29T00:00:00Z",
            ] {
                let err = err_of(|b| {
                    b.insert(field.into(), json!(text));
                });
                assert_eq!(err.field, field, "{text}: {err}");
                assert!(err.message.contains("YYYY-MM-DDTHH:MM:SS[.sss]Z"), "{err}");
            }
        }
        let mut body = seed_body();
        body["start"] = json!("2025-01-01T00:00:00.5Z");
        body["end"] = json!("2025-12-31T23:59:59.999Z");
        let cfg = JobConfig::from_value(&body, now()).unwrap();
        assert_eq!(cfg.start_ms(), parse_iso("2025-01-01T00:00:00Z").unwrap().timestamp_millis() + 500);
        assert_eq!(serde_json::to_value(&cfg).unwrap()["end"], "2025-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let text = seed_body().to_string();
        let twice = |from: &str, to: &str| {
            assert!(text.contains(from));
            JobConfig::from_json_bytes(text.replacen(from, to, 1).as_bytes(), now()).unwrap_err()
        };
        let err = twice(r#""capital":"#, r#""capital":"1","capital":"#);
        assert_eq!(err.field, "capital", "{err}");
        let err = twice(r#""grid_levels":"#, r#""grid_levels":3,"grid_levels":"#);
        assert_eq!(err.field, "params.grid_levels", "{err}");
        assert!(JobConfig::from_json_bytes(text.as_bytes(), now()).is_ok());
    }

    #[test]
    fn client_text_is_quoted_briefly() {
        let huge = format!("tpl_{}", "x".repeat(200 * 1024));
        let cases: [(&str, Value); 5] = [
            ("template_id", json!(huge)),
            ("start", json!(huge)),
            ("capital", json!(huge)),
            ("timeframe", json!(huge)),
            ("symbols", json!([huge])),
        ];
        for (field, value) in cases {
            let err = err_of(|b| {
                b.insert(field.into(), value.clone());
            });
            let message = err.to_string();
            assert!(message.len() < 260, "{field}: {} characters: {message}", message.len());
            assert!(message.contains("(204804 characters)"), "{message}");
        }
        let err = err_of(|b| {
            b.insert(huge.clone(), json!(1));
        });
        assert!(err.to_string().len() < 300, "{err}");
        let err = err_of(|b| {
            b["params"][huge.as_str()] = json!(1);
        });
        assert!(err.field.starts_with("params.tpl_xxx") && err.field.len() < 120, "{err}");
        let err = err_of(|b| {
            b["params"]["upper_price"] = json!(huge);
        });
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn exactly_five_years_is_allowed() {
        let mut body = seed_body();
        body["start"] = json!("2021-01-01T00:00:00Z");
        body["end"] = json!("2026-01-01T00:00:00Z");
        assert!(JobConfig::from_value(&body, now()).is_ok());
    }

    #[test]
    fn basis_points_take_no_sign() {
        for field in ["fee_bps", "slippage_bps"] {
            for text in ["-0", "-0.0", "-1"] {
                let mut body = seed_body();
                body[field] = json!(text);
                let err = JobConfig::from_value(&body, now()).unwrap_err();
                assert_eq!(err.field, field, "{text}");
            }
        }
    }

    #[test]
    fn fee_bps_is_dropped_where_it_does_not_apply() {
        let mut body = seed_body();
        body["fee_model"] = json!("tiered_maker_taker");
        let cfg = JobConfig::from_value(&body, now()).unwrap();
        assert_eq!(cfg.fee_bps, None);
        assert!(serde_json::to_value(&cfg).unwrap().get("fee_bps").is_none());
    }
}
