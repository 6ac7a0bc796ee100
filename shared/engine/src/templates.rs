//! The strategy template catalog: every template's params described as data, the generic
//! validation that reads those descriptions, and the typed params the simulation runs on.
//! `docs/templates.md` is the human version of [`catalog`].

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use std::str::FromStr;

use crate::config::FieldError;
use crate::input::{clipped, quoted};

/// What values a param takes.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    /// A JSON integer in `min..=max`.
    Integer { min: i64, max: i64 },
    /// A decimal string; bounds are decimal strings, `exclusive` bounds excluded.
    Decimal { min: &'static str, min_exclusive: bool, max: Option<&'static str>, max_exclusive: bool },
    /// One of a fixed set of strings.
    Enum { values: &'static [&'static str] },
}

/// One param of a template.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    #[serde(flatten)]
    pub kind: ParamKind,
    pub required: bool,
    /// The default as JSON text (`"1"` is the decimal string one, `14` the integer), when optional.
    #[serde(serialize_with = "default_as_json")]
    pub default: Option<&'static str>,
    pub description: &'static str,
}

fn default_as_json<S: serde::Serializer>(d: &Option<&'static str>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(text) => serde_json::from_str::<Value>(text).map_err(serde::ser::Error::custom)?.serialize(s),
        None => s.serialize_none(),
    }
}

/// One template of the catalog.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TemplateSpec {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub min_symbols: usize,
    pub max_symbols: usize,
    pub params: &'static [ParamSpec],
}

const DIRECTION: ParamSpec = ParamSpec {
    name: "direction",
    kind: ParamKind::Enum { values: &["long", "short", "both"] },
    required: false,
    default: Some("\"long\""),
    description: "Which side the template may hold; `both` reverses on an opposite signal.",
};

const FRACTION: ParamSpec = ParamSpec {
    name: "fraction",
    kind: ParamKind::Decimal { min: "0", min_exclusive: true, max: Some("1"), max_exclusive: false },
    required: false,
    default: Some("\"1\""),
    description: "Share of equity (times leverage) committed on each entry.",
};

const fn int(name: &'static str, min: i64, max: i64, description: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Integer { min, max }, required: true, default: None, description }
}

const fn int_or(name: &'static str, min: i64, max: i64, default: &'static str, description: &'static str) -> ParamSpec {
    ParamSpec { name, kind: ParamKind::Integer { min, max }, required: false, default: Some(default), description }
}

const fn price(name: &'static str, description: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::Decimal { min: "0", min_exclusive: true, max: None, max_exclusive: false },
        required: true,
        default: None,
        description,
    }
}

const fn rsi_level(name: &'static str, default: &'static str, description: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::Decimal { min: "0", min_exclusive: true, max: Some("100"), max_exclusive: true },
        required: false,
        default: Some(default),
        description,
    }
}

pub const MA_CROSS: TemplateSpec = TemplateSpec {
    id: "tpl_ma_cross",
    name: "Moving-average crossover",
    description:
        "Goes long when the fast SMA of close crosses above the slow one, exits (or reverses) when it crosses below.",
    min_symbols: 1,
    max_symbols: 1,
    params: &[
        int("fast", 1, 10_000, "Bars in the fast simple moving average of close."),
        int("slow", 2, 100_000, "Bars in the slow simple moving average of close; must exceed fast."),
        DIRECTION,
        FRACTION,
    ],
};

pub const BREAKOUT: TemplateSpec = TemplateSpec {
    id: "tpl_breakout",
    name: "Donchian channel breakout",
    description: "Enters when the close breaks the previous `lookback` bars' high (long) or low (short); exits on the opposite break.",
    min_symbols: 1,
    max_symbols: 1,
    params: &[int("lookback", 1, 10_000, "Bars in the channel, not counting the current bar."), DIRECTION, FRACTION],
};

pub const RSI_REVERSION: TemplateSpec = TemplateSpec {
    id: "tpl_rsi_reversion",
    name: "RSI mean reversion",
    description: "Buys when Wilder's RSI is oversold and sells when it is overbought.",
    min_symbols: 1,
    max_symbols: 1,
    params: &[
        int_or("period", 2, 1_000, "14", "Wilder RSI period in bars."),
        rsi_level("oversold", "\"30\"", "RSI below this is oversold."),
        rsi_level("overbought", "\"70\"", "RSI above this is overbought; must exceed oversold."),
        DIRECTION,
        FRACTION,
    ],
};

pub const GRID: TemplateSpec = TemplateSpec {
    id: "tpl_grid",
    name: "Long grid",
    description: "Resting buy orders at each level below the market, each paired with a sell one level up; capital split equally across the cells.",
    min_symbols: 1,
    max_symbols: 1,
    params: &[
        int("grid_levels", 2, 200, "Number of price levels, including both bounds."),
        price("lower_price", "Lowest level."),
        price("upper_price", "Highest level; must exceed lower_price."),
        ParamSpec {
            name: "spacing",
            kind: ParamKind::Enum { values: &["arithmetic", "geometric"] },
            required: false,
            default: Some("\"arithmetic\""),
            description: "Equal price steps (arithmetic) or equal ratios (geometric) between levels.",
        },
    ],
};

pub const MOMENTUM_ROTATION: TemplateSpec = TemplateSpec {
    id: "tpl_momentum_rotation",
    name: "Momentum rotation",
    description: "Every `rebalance_every` bars holds the `top_n` symbols with the best positive `lookback` return, equal weight, long only.",
    min_symbols: 2,
    max_symbols: 20,
    params: &[
        int("lookback", 1, 10_000, "Bars over which momentum close[i] / close[i - lookback] - 1 is measured."),
        int_or("top_n", 1, 20, "1", "How many symbols to hold; at most the number of symbols."),
        int_or("rebalance_every", 1, 100_000, "24", "Bars between rebalances."),
        FRACTION,
    ],
};

/// Every template, in catalog order.
pub fn catalog() -> &'static [TemplateSpec] {
    &[MA_CROSS, BREAKOUT, RSI_REVERSION, GRID, MOMENTUM_ROTATION]
}

pub fn find(template_id: &str) -> Option<&'static TemplateSpec> {
    catalog().iter().find(|t| t.id == template_id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Long,
    Short,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    Arithmetic,
    Geometric,
}

/// Typed, validated params: what the simulation runs on. Decimals become `f64` here, the edge of
/// the numeric core.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategyParams {
    MaCross { fast: usize, slow: usize, direction: Direction, fraction: f64 },
    Breakout { lookback: usize, direction: Direction, fraction: f64 },
    RsiReversion { period: usize, oversold: f64, overbought: f64, direction: Direction, fraction: f64 },
    Grid { levels: usize, lower: f64, upper: f64, spacing: Spacing },
    MomentumRotation { lookback: usize, top_n: usize, rebalance_every: usize, fraction: f64 },
}

/// Validates `params` against `spec` and fills defaults. Returns the resolved params (what the job
/// echoes) and their typed form.
pub fn resolve_params(
    spec: &TemplateSpec,
    params: &Map<String, Value>,
    n_symbols: usize,
) -> Result<(Map<String, Value>, StrategyParams), FieldError> {
    if let Some(unknown) = params.keys().find(|k| !spec.params.iter().any(|p| p.name == k.as_str())) {
        let known: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
        return Err(FieldError::new(
            format!("params.{}", clipped(unknown)),
            format!("unknown param for {}; it takes {}", spec.id, known.join(", ")),
        ));
    }
    let mut resolved = Map::new();
    for p in spec.params {
        let field = format!("params.{}", p.name);
        let value = match params.get(p.name) {
            Some(v) => v.clone(),
            None if p.required => return Err(FieldError::new(field, "is required")),
            None => serde_json::from_str(p.default.unwrap_or("null")).expect("catalog defaults are valid JSON"),
        };
        check_kind(&p.kind, &value).map_err(|m| FieldError::new(field, m))?;
        resolved.insert(p.name.to_string(), value);
    }
    let typed = typed_params(spec, &resolved, n_symbols)?;
    Ok((resolved, typed))
}

fn check_kind(kind: &ParamKind, value: &Value) -> Result<(), String> {
    match *kind {
        ParamKind::Integer { min, max } => match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("must be an integer from {min} to {max}")),
        },
        ParamKind::Decimal { min, min_exclusive, max, max_exclusive } => {
            let range = describe_range(min, min_exclusive, max, max_exclusive);
            let Some(text) = value.as_str() else {
                return Err(format!("must be a decimal string (like \"0.5\") {range}"));
            };
            let d = parse_decimal(text).ok_or_else(|| format!("{} is not a decimal number", quoted(text)))?;
            let lo = Decimal::from_str(min).expect("catalog bound");
            let below = if min_exclusive { d <= lo } else { d < lo };
            let above = max.is_some_and(|m| {
                let hi = Decimal::from_str(m).expect("catalog bound");
                if max_exclusive {
                    d >= hi
                } else {
                    d > hi
                }
            });
            if below || above {
                Err(format!("must be {range}, got {}", quoted(text)))
            } else {
                Ok(())
            }
        }
        ParamKind::Enum { values } => match value.as_str() {
            Some(s) if values.contains(&s) => Ok(()),
            _ => Err(format!("must be one of {}", values.join(", "))),
        },
    }
}

fn describe_range(min: &str, min_exclusive: bool, max: Option<&str>, max_exclusive: bool) -> String {
    let lo = if min_exclusive { format!("greater than {min}") } else { format!("at least {min}") };
    match max {
        None => lo,
        Some(m) if max_exclusive => format!("{lo} and less than {m}"),
        Some(m) => format!("{lo} and at most {m}"),
    }
}

/// A plain decimal string: optional sign, digits, optional fraction. No exponents, no spaces.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let ok = !body.is_empty()
        && body.chars().all(|c| c.is_ascii_digit() || c == '.')
        && body.chars().filter(|&c| c == '.').count() <= 1
        && !body.starts_with('.')
        && !body.ends_with('.');
    if ok {
        Decimal::from_str(text).ok()
    } else {
        None
    }
}

fn typed_params(spec: &TemplateSpec, m: &Map<String, Value>, n_symbols: usize) -> Result<StrategyParams, FieldError> {
    let int = |k: &str| m[k].as_i64().expect("checked") as usize;
    let dec = |k: &str| parse_decimal(m[k].as_str().expect("checked")).expect("checked");
    let f = |k: &str| dec(k).to_f64().expect("decimal fits f64");
    let direction = || match m["direction"].as_str() {
        Some("short") => Direction::Short,
        Some("both") => Direction::Both,
        _ => Direction::Long,
    };
    Ok(match spec.id {
        "tpl_ma_cross" => {
            let (fast, slow) = (int("fast"), int("slow"));
            if fast >= slow {
                return Err(FieldError::new(
                    "params.slow",
                    format!("must be greater than params.fast ({fast}), got {slow}"),
                ));
            }
            StrategyParams::MaCross { fast, slow, direction: direction(), fraction: f("fraction") }
        }
        "tpl_breakout" => {
            StrategyParams::Breakout { lookback: int("lookback"), direction: direction(), fraction: f("fraction") }
        }
        "tpl_rsi_reversion" => {
            if dec("overbought") <= dec("oversold") {
                return Err(FieldError::new("params.overbought", "must be greater than params.oversold"));
            }
            StrategyParams::RsiReversion {
                period: int("period"),
                oversold: f("oversold"),
                overbought: f("overbought"),
                direction: direction(),
                fraction: f("fraction"),
            }
        }
        "tpl_grid" => {
            if dec("upper_price") <= dec("lower_price") {
                return Err(FieldError::new("params.upper_price", "must be greater than params.lower_price"));
            }
            let spacing = if m["spacing"] == "geometric" { Spacing::Geometric } else { Spacing::Arithmetic };
            StrategyParams::Grid {
                levels: int("grid_levels"),
                lower: f("lower_price"),
                upper: f("upper_price"),
                spacing,
            }
        }
        "tpl_momentum_rotation" => {
            let top_n = int("top_n");
            if top_n > n_symbols {
                return Err(FieldError::new(
                    "params.top_n",
                    format!("must be at most the number of symbols ({n_symbols}), got {top_n}"),
                ));
            }
            StrategyParams::MomentumRotation {
                lookback: int("lookback"),
                top_n,
                rebalance_every: int("rebalance_every"),
                fraction: f("fraction"),
            }
        }
        other => unreachable!("template {other} in the catalog has no typed params"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(id: &str, params: Value) -> Result<(Map<String, Value>, StrategyParams), FieldError> {
        resolve_params(find(id).unwrap(), params.as_object().unwrap(), 1)
    }

    #[test]
    fn defaults_are_filled_and_echoed() {
        let (m, p) = resolve("tpl_ma_cross", json!({"fast": 5, "slow": 20})).unwrap();
        assert_eq!(Value::Object(m), json!({"fast": 5, "slow": 20, "direction": "long", "fraction": "1"}));
        assert_eq!(p, StrategyParams::MaCross { fast: 5, slow: 20, direction: Direction::Long, fraction: 1.0 });
    }

    #[test]
    fn each_bad_param_names_its_field() {
        let cases = [
            ("tpl_ma_cross", json!({"fast": 5}), "params.slow", "is required"),
            ("tpl_ma_cross", json!({"fast": 0, "slow": 5}), "params.fast", "integer from 1 to 10000"),
            ("tpl_ma_cross", json!({"fast": "5", "slow": 9}), "params.fast", "integer"),
            ("tpl_ma_cross", json!({"fast": 9, "slow": 5}), "params.slow", "greater than params.fast"),
            ("tpl_ma_cross", json!({"fast": 1, "slow": 5, "fraction": "0"}), "params.fraction", "greater than 0"),
            ("tpl_ma_cross", json!({"fast": 1, "slow": 5, "fraction": 0.5}), "params.fraction", "decimal string"),
            ("tpl_ma_cross", json!({"fast": 1, "slow": 5, "direction": "up"}), "params.direction", "long, short, both"),
            ("tpl_ma_cross", json!({"fast": 1, "slow": 5, "speed": 1}), "params.speed", "unknown param"),
            (
                "tpl_grid",
                json!({"grid_levels": 8, "upper_price": "1", "lower_price": "2"}),
                "params.upper_price",
                "greater than",
            ),
            (
                "tpl_grid",
                json!({"grid_levels": 8, "upper_price": "1e5", "lower_price": "2"}),
                "params.upper_price",
                "not a decimal",
            ),
            ("tpl_rsi_reversion", json!({"oversold": "80"}), "params.overbought", "greater than params.oversold"),
            ("tpl_rsi_reversion", json!({"oversold": "100"}), "params.oversold", "less than 100"),
        ];
        for (id, params, field, needle) in cases {
            let err = resolve(id, params.clone()).unwrap_err();
            assert_eq!(err.field, field, "{id} {params}");
            assert!(err.message.contains(needle), "{id} {params}: {}", err.message);
        }
    }

    #[test]
    fn seed_grid_example_resolves() {
        let (_, p) =
            resolve("tpl_grid", json!({"grid_levels": 8, "upper_price": "72000", "lower_price": "60000"})).unwrap();
        assert_eq!(p, StrategyParams::Grid { levels: 8, lower: 60000.0, upper: 72000.0, spacing: Spacing::Arithmetic });
    }

    #[test]
    fn top_n_is_bounded_by_symbols() {
        let err = resolve_params(
            find("tpl_momentum_rotation").unwrap(),
            json!({"lookback": 5, "top_n": 3}).as_object().unwrap(),
            2,
        )
        .unwrap_err();
        assert_eq!(err.field, "params.top_n");
    }

    #[test]
    fn catalog_serializes_with_typed_defaults() {
        let v = serde_json::to_value(catalog()).unwrap();
        assert_eq!(v[0]["id"], "tpl_ma_cross");
        assert_eq!(v[0]["params"][2]["default"], "long");
        assert_eq!(v[2]["params"][0]["default"], 14);
        assert_eq!(v[0]["params"][0]["type"], "integer");
    }

    #[test]
    fn decimal_parser_is_strict() {
        for bad in ["", ".5", "5.", "1e3", " 1", "1,0", "--1", "NaN", "inf"] {
            assert!(parse_decimal(bad).is_none(), "{bad:?}");
        }
        assert_eq!(parse_decimal("-0.25").unwrap().to_string(), "-0.25");
    }
}
