//! The create-sweep body (API.md, "Sweeps"), parsed strictly: a key given twice at any depth, an
//! unknown field or a wrong value is a [`FieldError`] naming the field by its JSON path
//! (`space.params.fast`, `constraints[1].metric`, `validation.folds`).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::batch::Validation;
use crate::config::{FieldError, FIELDS};
use crate::input::{clipped, parse_json_object_strict, quoted};
use crate::metric_catalog::{self, Better};
use crate::templates::parse_decimal;

/// The most configs a sweep may expand to (API.md).
pub const MAX_CONFIGS: usize = 10_000;
/// The most constraints a sweep may carry.
pub const MAX_CONSTRAINTS: usize = 20;
/// Walk-forward folds allowed.
pub const FOLDS: std::ops::RangeInclusive<u32> = 2..=20;
/// The rank metric when the body names none.
pub const DEFAULT_RANK_METRIC: &str = "sharpe";

const TOP_FIELDS: [&str; 9] =
    ["base", "space", "param_grid", "search", "rank_metric", "constraints", "validation", "dry_run", "notify_url"];

/// A parsed create-sweep body. Its `Serialize` is the resolved request the sweep echoes as its
/// `config` (defaults filled: `search`, `rank_metric`, `validation`, `dry_run`).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    /// The create-job body every config starts from, without `strategy_id`.
    pub base: Map<String, Value>,
    /// `base.strategy_id`: the service merges `base` over that strategy's config (see
    /// [`merge_over`]); offline it is an error ([`SweepSpec::offline_base`]).
    pub strategy_id: Option<String>,
    pub axes: Axes,
    pub search: Search,
    pub rank_metric: RankMetric,
    pub constraints: Vec<Constraint>,
    pub validation: ValidationSpec,
    pub dry_run: bool,
    /// Kept as sent: the service validates it; `pipai sweep` ignores it with a note.
    pub notify_url: Option<String>,
}

/// What varies: `space` (a grid of axes) or `param_grid` (a list of override objects).
#[derive(Debug, Clone, PartialEq)]
pub enum Axes {
    /// Sorted by key (byte order): the grid's order (the last key varies fastest).
    Space(Vec<Axis>),
    /// Each entry's top-level fields replace `base`'s whole.
    ParamGrid(Vec<Map<String, Value>>),
}

/// One key of `space` and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: AxisKey,
    pub values: AxisValues,
}

/// A top-level job field (`fee_bps`, `params` whole) or one param (`params.fast`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AxisKey {
    Field(&'static str),
    Param(String),
}

impl AxisKey {
    /// As written in `space`: `fee_bps`, `params.fast`.
    pub fn name(&self) -> String {
        match self {
            AxisKey::Field(f) => f.to_string(),
            AxisKey::Param(p) => format!("params.{p}"),
        }
    }
}

/// An axis's values: a list as sent, or an inclusive `{from, to, step}` range.
#[derive(Debug, Clone, PartialEq)]
pub enum AxisValues {
    List(Vec<Value>),
    /// JSON integers.
    IntRange {
        from: i64,
        to: i64,
        step: i64,
    },
    /// Decimal strings (`from + i * step`, at the scale of the larger of the two).
    DecimalRange {
        from: Decimal,
        to: Decimal,
        step: Decimal,
    },
}

impl AxisValues {
    pub fn len(&self) -> usize {
        match self {
            AxisValues::List(v) => v.len(),
            AxisValues::IntRange { from, to, step } => ((*to as i128 - *from as i128) / *step as i128) as usize + 1,
            AxisValues::DecimalRange { from, to, step } => {
                decimal_steps(*from, *to, *step).map_or(usize::MAX, |n| n + 1)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th value (`i < len()`).
    pub fn get(&self, i: usize) -> Value {
        match self {
            AxisValues::List(v) => v[i].clone(),
            AxisValues::IntRange { from, step, .. } => Value::from((*from as i128 + *step as i128 * i as i128) as i64),
            AxisValues::DecimalRange { from, step, .. } => Value::String((from + step * Decimal::from(i)).to_string()),
        }
    }
}

/// How configs are picked from the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Search {
    /// Every config, in grid order.
    Grid,
    /// `samples` distinct configs of the grid, drawn by a generator seeded with `seed`
    /// (docs/sweeps.md), run in grid order.
    Random { samples: usize, seed: u64 },
}

/// The metric the leaderboard sorts by, and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankMetric {
    pub name: &'static str,
    pub better: Better,
}

impl Serialize for RankMetric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

/// A bound on an in-sample metric: a config outside it is not ranked; a null metric fails it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    pub metric: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Decimal>,
}

impl Constraint {
    pub fn admits(&self, value: Option<Decimal>) -> bool {
        match value {
            None => false,
            Some(v) => self.min.is_none_or(|min| v >= min) && self.max.is_none_or(|max| v <= max),
        }
    }
}

/// The body's `validation`, as sent (resolved); [`ValidationSpec::to_batch`] is what the engine
/// runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ValidationSpec {
    None,
    Holdout { test_fraction: Decimal },
    WalkForward { folds: u32, test_fraction: Decimal, anchored: bool },
}

impl ValidationSpec {
    pub fn to_batch(&self) -> Validation {
        match *self {
            ValidationSpec::None => Validation::None,
            ValidationSpec::Holdout { test_fraction } => Validation::Holdout { test_fraction },
            ValidationSpec::WalkForward { folds, test_fraction, anchored } => {
                Validation::WalkForward { folds, test_fraction, anchored }
            }
        }
    }
}

impl Serialize for SweepSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut base = self.base.clone();
        if let Some(id) = &self.strategy_id {
            base.insert("strategy_id".into(), Value::String(id.clone()));
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("base", &base)?;
        match &self.axes {
            Axes::Space(axes) => {
                let space: Map<String, Value> = axes.iter().map(|a| (a.key.name(), a.values.to_json())).collect();
                m.serialize_entry("space", &space)?;
            }
            Axes::ParamGrid(entries) => m.serialize_entry("param_grid", entries)?,
        }
        m.serialize_entry("search", &self.search)?;
        m.serialize_entry("rank_metric", &self.rank_metric)?;
        m.serialize_entry("constraints", &self.constraints)?;
        m.serialize_entry("validation", &self.validation)?;
        m.serialize_entry("dry_run", &self.dry_run)?;
        if let Some(url) = &self.notify_url {
            m.serialize_entry("notify_url", url)?;
        }
        m.end()
    }
}

impl AxisValues {
    fn to_json(&self) -> Value {
        match self {
            AxisValues::List(v) => Value::Array(v.clone()),
            AxisValues::IntRange { from, to, step } => serde_json::json!({"from": from, "to": to, "step": step}),
            AxisValues::DecimalRange { from, to, step } => {
                serde_json::json!({"from": from.to_string(), "to": to.to_string(), "step": step.to_string()})
            }
        }
    }
}

/// `over`'s top-level fields replace `under`'s whole (`params` too): how a strategy's config and
/// a sweep's `base`, and `base` and a `param_grid` entry, combine.
pub fn merge_over(under: &Map<String, Value>, over: &Map<String, Value>) -> Map<String, Value> {
    let mut out = under.clone();
    for (k, v) in over {
        out.insert(k.clone(), v.clone());
    }
    out
}

impl SweepSpec {
    /// Parses a create-sweep body (see [`parse_json_object_strict`]).
    pub fn from_json_bytes(body: &[u8]) -> Result<SweepSpec, FieldError> {
        SweepSpec::from_object(&parse_json_object_strict(body)?)
    }

    pub fn from_object(obj: &Map<String, Value>) -> Result<SweepSpec, FieldError> {
        no_unknown_fields(obj, "", &TOP_FIELDS)?;
        let mut base = match obj.get("base") {
            Some(Value::Object(b)) => b.clone(),
            None | Some(Value::Null) => return Err(FieldError::new("base", "is required (a create-job body)")),
            Some(_) => return Err(FieldError::new("base", "must be a JSON object (a create-job body)")),
        };
        if base.contains_key("notify_url") {
            // A create-job body may carry one; a sweep's configs may not (the sweep's is top-level).
            return Err(FieldError::new("base.notify_url", "give a sweep's webhook as the top-level notify_url"));
        }
        let strategy_id = match base.remove("strategy_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(FieldError::new("base.strategy_id", "must be a string")),
        };
        let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
        let axes = match (present("space"), present("param_grid")) {
            (true, true) => return Err(FieldError::new("param_grid", "give either space or param_grid, not both")),
            (false, false) => return Err(FieldError::new("space", "is required (or param_grid instead)")),
            (true, false) => Axes::Space(parse_space(&obj["space"])?),
            (false, true) => Axes::ParamGrid(parse_param_grid(&obj["param_grid"])?),
        };
        let grid = grid_size(&axes);
        let search = parse_search(obj.get("search"))?;
        check_count(&axes, grid, search)?;
        let rank_metric = match obj.get("rank_metric") {
            None | Some(Value::Null) => RankMetric { name: DEFAULT_RANK_METRIC, better: Better::Higher },
            Some(v) => {
                let metric = metric_name(v, "rank_metric")?;
                let better = metric_catalog::direction(metric).expect("catalog names have a direction");
                if better == Better::Neither {
                    return Err(FieldError::new(
                        "rank_metric",
                        format!("{metric} has no better direction (API.md, Compare); rank by a metric that has one"),
                    ));
                }
                RankMetric { name: metric, better }
            }
        };
        Ok(SweepSpec {
            base,
            strategy_id,
            axes,
            search,
            rank_metric,
            constraints: parse_constraints(obj.get("constraints"))?,
            validation: parse_validation(obj.get("validation"))?,
            dry_run: match obj.get("dry_run") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(FieldError::new("dry_run", "must be true or false")),
            },
            notify_url: match obj.get("notify_url") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(FieldError::new("notify_url", "must be a string")),
            },
        })
    }

    /// The base offline: without the service there are no strategies.
    pub fn offline_base(&self) -> Result<&Map<String, Value>, FieldError> {
        match &self.strategy_id {
            None => Ok(&self.base),
            Some(_) => Err(FieldError::new(
                "base.strategy_id",
                "strategies live in the service; offline, put the strategy's config fields in base instead",
            )),
        }
    }

    /// The number of configs the sweep runs: the grid's size, or the random search's samples.
    pub fn n_configs(&self) -> usize {
        match self.search {
            Search::Grid => grid_size(&self.axes) as usize,
            Search::Random { samples, .. } => samples,
        }
    }
}

/// The grid's size, saturating at `u64::MAX` (never materialized).
pub(crate) fn grid_size(axes: &Axes) -> u64 {
    match axes {
        Axes::Space(axes) => axes.iter().fold(1u64, |n, a| n.saturating_mul(a.values.len() as u64)),
        Axes::ParamGrid(entries) => entries.len() as u64,
    }
}

fn check_count(axes: &Axes, grid: u64, search: Search) -> Result<(), FieldError> {
    let field = match axes {
        Axes::Space(_) => "space",
        Axes::ParamGrid(_) => "param_grid",
    };
    let count = |n: u64| if n == u64::MAX { format!("more than {}", u64::MAX - 1) } else { n.to_string() };
    match search {
        Search::Grid if grid > MAX_CONFIGS as u64 => Err(FieldError::new(
            field,
            format!(
                "expands to {} configs; a sweep runs at most {MAX_CONFIGS} (narrow it, or use \
                 {{\"method\": \"random\", \"samples\": N}})",
                count(grid)
            ),
        )),
        Search::Random { samples, .. } if samples as u64 > grid => Err(FieldError::new(
            "search.samples",
            format!(
                "{samples} is more than the {} configs of {field}; use the grid search to run them all",
                count(grid)
            ),
        )),
        _ => Ok(()),
    }
}

fn no_unknown_fields(obj: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), FieldError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(FieldError::new(
            format!("{at}{}", clipped(unknown)),
            format!("unknown field; allowed fields are {}", allowed.join(", ")),
        )),
    }
}

fn object<'a>(v: &'a Value, field: &str, what: &str) -> Result<&'a Map<String, Value>, FieldError> {
    v.as_object().ok_or_else(|| FieldError::new(field, format!("must be {what}")))
}

fn parse_space(v: &Value) -> Result<Vec<Axis>, FieldError> {
    let space = object(v, "space", "a JSON object of job fields or params.NAME to their values")?;
    if space.is_empty() {
        return Err(FieldError::new("space", "must vary at least one field"));
    }
    let mut axes = Vec::with_capacity(space.len());
    for (name, values) in space {
        let field = format!("space.{}", clipped(name));
        let key = match name.strip_prefix("params.") {
            Some(param) => {
                if param.is_empty() || param.contains(['.', '[', ']']) {
                    return Err(FieldError::new(field, "a param key is params.NAME with the param's name"));
                }
                AxisKey::Param(param.to_string())
            }
            None => match FIELDS.iter().find(|f| **f == name) {
                Some(&"strategy_id") => {
                    return Err(FieldError::new(field, "strategy_id cannot vary; set it in base"));
                }
                Some(f) => AxisKey::Field(f),
                None => {
                    let fields: Vec<&str> = FIELDS.iter().copied().filter(|f| *f != "strategy_id").collect();
                    return Err(FieldError::new(
                        field,
                        format!("unknown key; vary a job field ({}) or a param as params.NAME", fields.join(", ")),
                    ));
                }
            },
        };
        axes.push(Axis { key, values: parse_values(values, &field)? });
    }
    if space.contains_key("params") {
        if let Some(param) = space.keys().find(|k| k.starts_with("params.")) {
            return Err(FieldError::new(
                "space.params",
                format!("conflicts with space.{}: vary params whole or by name, not both", clipped(param)),
            ));
        }
    }
    axes.sort_by_key(|a| a.key.name());
    Ok(axes)
}

fn parse_values(v: &Value, field: &str) -> Result<AxisValues, FieldError> {
    let bad = || FieldError::new(field, "must be a non-empty list of values or a {\"from\", \"to\", \"step\"} range");
    match v {
        Value::Array(list) if list.is_empty() => Err(bad()),
        Value::Array(list) if list.len() > MAX_CONFIGS => {
            Err(FieldError::new(field, format!("lists {} values; at most {MAX_CONFIGS}", list.len())))
        }
        Value::Array(list) => Ok(AxisValues::List(list.clone())),
        Value::Object(range) => parse_range(range, field),
        _ => Err(bad()),
    }
}

fn parse_range(range: &Map<String, Value>, field: &str) -> Result<AxisValues, FieldError> {
    let at = format!("{field}.");
    no_unknown_fields(range, &at, &["from", "to", "step"])?;
    let get = |k: &str| {
        range.get(k).filter(|v| !v.is_null()).ok_or_else(|| FieldError::new(format!("{at}{k}"), "is required"))
    };
    let (from, to, step) = (get("from")?, get("to")?, get("step")?);
    let too_many = |n: String| FieldError::new(field, format!("the range has {n} values; at most {MAX_CONFIGS}"));
    if let (Some(f), Some(t), Some(s)) = (from.as_i64(), to.as_i64(), step.as_i64()) {
        if s <= 0 {
            return Err(FieldError::new(format!("{at}step"), "must be greater than 0"));
        }
        if t < f {
            return Err(FieldError::new(format!("{at}to"), "must be at least from"));
        }
        let n = ((t as i128 - f as i128) / s as i128) + 1;
        if n > MAX_CONFIGS as i128 {
            return Err(too_many(n.to_string()));
        }
        return Ok(AxisValues::IntRange { from: f, to: t, step: s });
    }
    let decimal = |k: &str, v: &Value| -> Result<Decimal, FieldError> {
        let field = format!("{at}{k}");
        match v {
            Value::String(s) => {
                parse_decimal(s).ok_or_else(|| FieldError::new(field, format!("{} is not a decimal number", quoted(s))))
            }
            _ => Err(FieldError::new(
                field,
                "must be an integer, or a decimal string like \"0.5\" (from, to and step: all integers or all strings)",
            )),
        }
    };
    let (f, t, s) = (decimal("from", from)?, decimal("to", to)?, decimal("step", step)?);
    if s <= Decimal::ZERO {
        return Err(FieldError::new(format!("{at}step"), "must be greater than 0"));
    }
    if t < f {
        return Err(FieldError::new(format!("{at}to"), "must be at least from"));
    }
    match decimal_steps(f, t, s) {
        Some(n) if n < MAX_CONFIGS => {}
        Some(n) => return Err(too_many((n as u128 + 1).to_string())),
        None => return Err(too_many(format!("more than {}", usize::MAX))),
    }
    Ok(AxisValues::DecimalRange { from: f, to: t, step: s })
}

/// `floor((to - from) / step)`: how many steps fit in the range (`None` past `usize`).
fn decimal_steps(from: Decimal, to: Decimal, step: Decimal) -> Option<usize> {
    to.checked_sub(from)?.checked_div(step)?.floor().to_usize()
}

fn parse_param_grid(v: &Value) -> Result<Vec<Map<String, Value>>, FieldError> {
    let list = v.as_array().ok_or_else(|| FieldError::new("param_grid", "must be a list of override objects"))?;
    if list.is_empty() {
        return Err(FieldError::new("param_grid", "must list at least one override object"));
    }
    if list.len() > MAX_CONFIGS {
        return Err(FieldError::new(
            "param_grid",
            format!("expands to {} configs; a sweep runs at most {MAX_CONFIGS}", list.len()),
        ));
    }
    let fields: Vec<&str> = FIELDS.iter().copied().filter(|f| *f != "strategy_id").collect();
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = format!("param_grid[{i}]");
            let entry = object(entry, &at, "an object of job fields that replace base's")?;
            no_unknown_fields(entry, &format!("{at}."), &fields)?;
            Ok(entry.clone())
        })
        .collect()
}

fn parse_search(v: Option<&Value>) -> Result<Search, FieldError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Search::Grid) };
    let obj = object(v, "search", "an object: {\"method\": \"grid\"} or {\"method\": \"random\", ...}")?;
    match obj.get("method").and_then(Value::as_str) {
        Some("grid") => {
            no_unknown_fields(obj, "search.", &["method"])?;
            Ok(Search::Grid)
        }
        Some("random") => {
            no_unknown_fields(obj, "search.", &["method", "samples", "seed"])?;
            let samples = match obj.get("samples").and_then(Value::as_u64) {
                Some(n) if (1..=MAX_CONFIGS as u64).contains(&n) => n as usize,
                _ => {
                    return Err(FieldError::new(
                        "search.samples",
                        format!("must be an integer from 1 to {MAX_CONFIGS}"),
                    ))
                }
            };
            let seed = match obj.get("seed") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_u64().ok_or_else(|| {
                    FieldError::new("search.seed", "must be an integer from 0 to 18446744073709551615")
                })?,
            };
            Ok(Search::Random { samples, seed })
        }
        _ => Err(FieldError::new("search.method", "must be \"grid\" or \"random\"")),
    }
}

fn metric_name(v: &Value, field: &str) -> Result<&'static str, FieldError> {
    let names = || metric_catalog::METRICS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let name =
        v.as_str().ok_or_else(|| FieldError::new(field, format!("must be a metric name: one of {}", names())))?;
    metric_catalog::METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, _)| *n)
        .ok_or_else(|| FieldError::new(field, format!("unknown metric {}; one of {}", quoted(name), names())))
}

fn decimal_value(v: &Value, field: &str) -> Result<Decimal, FieldError> {
    match v {
        Value::String(s) => {
            parse_decimal(s).ok_or_else(|| FieldError::new(field, format!("{} is not a decimal number", quoted(s))))
        }
        Value::Number(n) => Err(FieldError::new(
            field,
            format!("must be a decimal string like \"{n}\", not a JSON number (metrics travel as strings)"),
        )),
        _ => Err(FieldError::new(field, "must be a decimal string")),
    }
}

fn parse_constraints(v: Option<&Value>) -> Result<Vec<Constraint>, FieldError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let list = v.as_array().ok_or_else(|| FieldError::new("constraints", "must be a list of {metric, min, max}"))?;
    if list.len() > MAX_CONSTRAINTS {
        return Err(FieldError::new("constraints", format!("lists {}; at most {MAX_CONSTRAINTS}", list.len())));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let at = format!("constraints[{i}]");
        let c = object(c, &at, "an object {metric, min, max}")?;
        no_unknown_fields(c, &format!("{at}."), &["metric", "min", "max"])?;
        let metric = match c.get("metric") {
            None | Some(Value::Null) => return Err(FieldError::new(format!("{at}.metric"), "is required")),
            Some(m) => metric_name(m, &format!("{at}.metric"))?,
        };
        let bound = |k: &str| match c.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => decimal_value(v, &format!("{at}.{k}")).map(Some),
        };
        let (min, max) = (bound("min")?, bound("max")?);
        match (min, max) {
            (None, None) => return Err(FieldError::new(format!("{at}.min"), "give min, max or both")),
            (Some(lo), Some(hi)) if lo > hi => {
                return Err(FieldError::new(format!("{at}.max"), "must be at least min"));
            }
            _ => {}
        }
        out.push(Constraint { metric, min, max });
    }
    Ok(out)
}

fn parse_validation(v: Option<&Value>) -> Result<ValidationSpec, FieldError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(ValidationSpec::None) };
    let obj = object(v, "validation", "an object with a method: none, holdout or walk_forward")?;
    let fraction = || -> Result<Decimal, FieldError> {
        let field = "validation.test_fraction";
        let v =
            obj.get("test_fraction").filter(|v| !v.is_null()).ok_or_else(|| FieldError::new(field, "is required"))?;
        let d = decimal_value(v, field)?;
        if d <= Decimal::ZERO || d >= Decimal::ONE {
            return Err(FieldError::new(field, "must be greater than 0 and less than 1"));
        }
        Ok(d)
    };
    match obj.get("method").and_then(Value::as_str) {
        Some("none") => {
            no_unknown_fields(obj, "validation.", &["method"])?;
            Ok(ValidationSpec::None)
        }
        Some("holdout") => {
            no_unknown_fields(obj, "validation.", &["method", "test_fraction"])?;
            Ok(ValidationSpec::Holdout { test_fraction: fraction()? })
        }
        Some("walk_forward") => {
            no_unknown_fields(obj, "validation.", &["method", "folds", "test_fraction", "anchored"])?;
            let folds = match obj.get("folds").and_then(Value::as_u64) {
                Some(n) if FOLDS.contains(&(n.min(u32::MAX as u64) as u32)) => n as u32,
                _ => {
                    return Err(FieldError::new(
                        "validation.folds",
                        format!("must be an integer from {} to {}", FOLDS.start(), FOLDS.end()),
                    ))
                }
            };
            let anchored = match obj.get("anchored") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(FieldError::new("validation.anchored", "must be true or false")),
            };
            Ok(ValidationSpec::WalkForward { folds, test_fraction: fraction()?, anchored })
        }
        _ => Err(FieldError::new("validation.method", "must be \"none\", \"holdout\" or \"walk_forward\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(extra: Value) -> Value {
        let mut body = json!({"base": {"template_id": "tpl_ma_cross", "params": {"slow": 50}, "symbols": ["BTCUSDT"],
            "timeframe": "1h", "start": "2025-01-01T00:00:00Z", "end": "2025-03-01T00:00:00Z", "capital": "10000"},
            "space": {"params.fast": [5, 10]}});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    }

    fn parse(extra: Value) -> Result<SweepSpec, FieldError> {
        SweepSpec::from_object(body(extra).as_object().unwrap())
    }

    #[test]
    fn defaults_are_filled_and_echoed() {
        let spec = parse(json!({})).unwrap();
        assert_eq!(spec.search, Search::Grid);
        assert_eq!(spec.rank_metric, RankMetric { name: "sharpe", better: Better::Higher });
        assert_eq!(spec.validation, ValidationSpec::None);
        assert!(!spec.dry_run && spec.constraints.is_empty());
        let echo = serde_json::to_value(&spec).unwrap();
        assert_eq!(echo["search"], json!({"method": "grid"}));
        assert_eq!(echo["validation"], json!({"method": "none"}));
        assert_eq!(echo["space"], json!({"params.fast": [5, 10]}));
        let spec = parse(json!({
            "space": {"params.fast": {"from": 5, "to": 20, "step": 5}, "fee_bps": {"from": "1", "to": "2", "step": "0.5"}},
            "search": {"method": "random", "samples": 3, "seed": 7}, "rank_metric": "volatility_annualised",
            "constraints": [{"metric": "total_trades", "min": "10"}],
            "validation": {"method": "walk_forward", "folds": 4, "test_fraction": "0.25"}, "dry_run": true,
            "notify_url": "https://example.com/hook"}))
        .unwrap();
        assert_eq!(spec.n_configs(), 3);
        assert_eq!(spec.rank_metric.better, Better::Lower);
        let echo = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            echo["validation"],
            json!({"method": "walk_forward", "folds": 4, "test_fraction": "0.25", "anchored": false})
        );
        assert_eq!(echo["constraints"], json!([{"metric": "total_trades", "min": "10"}]));
        assert_eq!(echo["space"]["fee_bps"], json!({"from": "1", "to": "2", "step": "0.5"}));
        assert_eq!(
            spec.validation.to_batch(),
            Validation::WalkForward { folds: 4, test_fraction: "0.25".parse().unwrap(), anchored: false }
        );
    }

    #[test]
    fn every_error_names_its_field() {
        let too_big: Vec<i64> = (0..101).collect();
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"base": null}), "base", "is required"),
            (json!({"base": [1]}), "base", "JSON object"),
            (json!({"colour": 1}), "colour", "unknown field"),
            (json!({"space": null}), "space", "is required"),
            (json!({"param_grid": [{}]}), "param_grid", "not both"),
            (json!({"space": []}), "space", "JSON object"),
            (json!({"space": {}}), "space", "at least one"),
            (json!({"space": {"colour": [1]}}), "space.colour", "unknown key"),
            (json!({"space": {"strategy_id": ["a"]}}), "space.strategy_id", "cannot vary"),
            (json!({"space": {"params.": [1]}}), "space.params.", "params.NAME"),
            (json!({"space": {"params.fast": []}}), "space.params.fast", "non-empty list"),
            (json!({"space": {"params.fast": 5}}), "space.params.fast", "non-empty list"),
            (json!({"space": {"params": [{}], "params.fast": [1]}}), "space.params", "not both"),
            (json!({"space": {"params.fast": {"from": 1, "to": 5}}}), "space.params.fast.step", "is required"),
            (
                json!({"space": {"params.fast": {"from": 1, "to": 5, "step": 0}}}),
                "space.params.fast.step",
                "greater than 0",
            ),
            (
                json!({"space": {"params.fast": {"from": 5, "to": 1, "step": 1}}}),
                "space.params.fast.to",
                "at least from",
            ),
            (
                json!({"space": {"params.fast": {"from": 1, "to": 5, "step": 1, "by": 2}}}),
                "space.params.fast.by",
                "unknown field",
            ),
            (
                json!({"space": {"params.fast": {"from": 1, "to": "5", "step": 1}}}),
                "space.params.fast.from",
                "all integers or all strings",
            ),
            (json!({"space": {"fee_bps": {"from": "1", "to": "x", "step": "1"}}}), "space.fee_bps.to", "not a decimal"),
            (
                json!({"space": {"params.fast": {"from": 1, "to": 100000, "step": 1}}}),
                "space.params.fast",
                "100000 values",
            ),
            (
                json!({"space": {"params.fast": too_big.clone(), "params.slow": too_big.clone()}}),
                "space",
                "expands to 10201 configs",
            ),
            (json!({"space": null, "param_grid": []}), "param_grid", "at least one"),
            (json!({"space": null, "param_grid": [{"capital": "1"}, 5]}), "param_grid[1]", "object"),
            (json!({"space": null, "param_grid": [{"colour": 1}]}), "param_grid[0].colour", "unknown field"),
            (json!({"search": {"method": "bayes"}}), "search.method", "grid"),
            (json!({"search": {"method": "grid", "samples": 3}}), "search.samples", "unknown field"),
            (json!({"search": {"method": "random"}}), "search.samples", "from 1 to 10000"),
            (json!({"search": {"method": "random", "samples": 3}}), "search.samples", "more than the 2 configs"),
            (json!({"search": {"method": "random", "samples": 1, "seed": -1}}), "search.seed", "integer"),
            (json!({"rank_metric": "alpha"}), "rank_metric", "unknown metric"),
            (json!({"rank_metric": 1}), "rank_metric", "metric name"),
            (json!({"rank_metric": "total_trades"}), "rank_metric", "no better direction"),
            (json!({"constraints": {}}), "constraints", "list"),
            (
                json!({"constraints": [{"metric": "sharpe", "min": "1"}, {"min": "1"}]}),
                "constraints[1].metric",
                "is required",
            ),
            (json!({"constraints": [{"metric": "alpha", "min": "1"}]}), "constraints[0].metric", "unknown metric"),
            (json!({"constraints": [{"metric": "sharpe"}]}), "constraints[0].min", "min, max or both"),
            (json!({"constraints": [{"metric": "sharpe", "min": 1}]}), "constraints[0].min", "not a JSON number"),
            (
                json!({"constraints": [{"metric": "sharpe", "min": "2", "max": "1"}]}),
                "constraints[0].max",
                "at least min",
            ),
            (
                json!({"constraints": [{"metric": "sharpe", "max": "1", "op": "<"}]}),
                "constraints[0].op",
                "unknown field",
            ),
            (json!({"validation": {"method": "kfold"}}), "validation.method", "walk_forward"),
            (json!({"validation": {"method": "holdout"}}), "validation.test_fraction", "is required"),
            (
                json!({"validation": {"method": "holdout", "test_fraction": "1"}}),
                "validation.test_fraction",
                "less than 1",
            ),
            (
                json!({"validation": {"method": "holdout", "test_fraction": "0"}}),
                "validation.test_fraction",
                "greater than 0",
            ),
            (
                json!({"validation": {"method": "holdout", "test_fraction": "0.3", "folds": 2}}),
                "validation.folds",
                "unknown field",
            ),
            (
                json!({"validation": {"method": "walk_forward", "folds": 1, "test_fraction": "0.2"}}),
                "validation.folds",
                "from 2 to 20",
            ),
            (
                json!({"validation": {"method": "walk_forward", "folds": 21, "test_fraction": "0.2"}}),
                "validation.folds",
                "from 2 to 20",
            ),
            (
                json!({"validation": {"method": "walk_forward", "folds": 3, "test_fraction": "0.2", "anchored": "yes"}}),
                "validation.anchored",
                "true or false",
            ),
            (json!({"dry_run": "yes"}), "dry_run", "true or false"),
            (json!({"notify_url": 5}), "notify_url", "string"),
            (json!({"base": {"notify_url": "https://example.com/hook"}}), "base.notify_url", "top-level notify_url"),
        ];
        for (extra, field, needle) in cases {
            let err = parse(extra.clone()).unwrap_err();
            assert_eq!(err.field, field, "{extra}: {err}");
            assert!(err.message.contains(needle), "{extra}: {err}");
        }
        let mut with_strategy = body(json!({}));
        with_strategy["base"]["strategy_id"] = json!(5);
        assert_eq!(SweepSpec::from_object(with_strategy.as_object().unwrap()).unwrap_err().field, "base.strategy_id");
    }

    #[test]
    fn duplicates_and_strategies() {
        let err = SweepSpec::from_json_bytes(br#"{"base": {}, "space": {"params.fast": [1], "params.fast": [2]}}"#);
        assert_eq!(err.unwrap_err().field, "space.params.fast");
        let mut b = body(json!({}));
        b["base"]["strategy_id"] = json!("st_0123abcd");
        let spec = SweepSpec::from_object(b.as_object().unwrap()).unwrap();
        assert_eq!(spec.strategy_id.as_deref(), Some("st_0123abcd"));
        assert!(!spec.base.contains_key("strategy_id"));
        let err = spec.offline_base().unwrap_err();
        assert_eq!(err.field, "base.strategy_id");
        assert!(err.message.contains("strategies live in the service"), "{err}");
        assert_eq!(serde_json::to_value(&spec).unwrap()["base"]["strategy_id"], "st_0123abcd");
        let merged = merge_over(json!({"params": {"a": 1}, "capital": "5"}).as_object().unwrap(), &spec.base);
        assert_eq!(merged["params"], json!({"slow": 50}));
    }
}
