//! The result boundary: `f64` from the core becomes `rust_decimal` here (money and prices to 8
//! places, ratios to 10, half-to-even), in the shape of the seeds' `result` object plus the
//! structured metrics.

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::metrics::MetricValues;
use crate::sim::RawTrade;
use crate::time::iso;

pub const MONEY_DP: u32 = 8;
pub const RATIO_DP: u32 = 10;

/// `x` rounded half-to-even to `dp` places, trailing zeros trimmed; `None` if not finite.
///
/// The definition is [`to_decimal_exact`]; this is the same result without its base-2 to base-10
/// conversion (most of the result boundary's time, thousands of numbers a run) whenever it is
/// sure to agree. `Decimal::from_f64` keeps a mantissa of at least 4.5e14 (it divides by ten,
/// rounding, while the mantissa is 2^52 or more), so it is within 0.56 of its last digit, 1.24e-15
/// relative, of `x`; the product `x * 10^dp` adds at most 1.11e-16. Unless that product lies within
/// 4e-15 (relative) of a rounding midpoint, both therefore round to the same integer. Near a
/// midpoint (under 1% of money values around 10^4, all from about 10^6 up) the exact path decides.
fn to_decimal(x: f64, dp: u32) -> Option<Decimal> {
    if !x.is_finite() {
        return None;
    }
    let scaled = x * POW10[dp as usize];
    let magnitude = scaled.abs();
    // Below 2^52 every float has a fractional part to round, and the integer fits an i64.
    if magnitude < 4_503_599_627_370_496.0 {
        let rounded = scaled.round_ties_even();
        // Exact: `scaled` and `rounded` are within a factor of two of each other, or one is 0.
        let from_midpoint = 0.5 - (scaled - rounded).abs();
        if from_midpoint > magnitude * 4e-15 + 1e-9 {
            let mut mantissa = rounded as i64;
            let mut scale = dp;
            while scale > 0 && mantissa % 10 == 0 {
                mantissa /= 10;
                scale -= 1;
            }
            return Some(Decimal::new(mantissa, scale));
        }
    }
    to_decimal_exact(x, dp)
}

/// Powers of ten up to `RATIO_DP`, all exact in `f64`.
const POW10: [f64; 11] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// The rounding every number of the result gets: `Decimal::from_f64` (`x` to about 16
/// significant digits), then half-to-even at `dp` places, trailing zeros trimmed.
fn to_decimal_exact(x: f64, dp: u32) -> Option<Decimal> {
    if !x.is_finite() {
        return None;
    }
    let d = Decimal::from_f64(x)?.round_dp_with_strategy(dp, RoundingStrategy::MidpointNearestEven);
    Some(d.normalize())
}

/// Money or a price: 8 places, trailing zeros trimmed but at least 2 (`"10031.50"`).
pub fn money(x: f64) -> Decimal {
    let mut d = to_decimal(x, MONEY_DP).unwrap_or_default();
    if d.scale() < 2 {
        d.rescale(2);
    }
    d
}

/// A quantity: 8 places, trailing zeros trimmed.
pub fn quantity(x: f64) -> Decimal {
    to_decimal(x, MONEY_DP).unwrap_or_default()
}

pub fn ratio(x: Option<f64>) -> Option<Decimal> {
    x.and_then(|v| to_decimal(v, RATIO_DP))
}

fn opt_money(x: Option<f64>) -> Option<Decimal> {
    x.filter(|v| v.is_finite()).map(money)
}

/// The seed's flat metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub sharpe: Option<Decimal>,
    pub sortino: Option<Decimal>,
    pub calmar: Option<Decimal>,
    pub max_drawdown: Option<Decimal>,
    pub win_rate: Option<Decimal>,
    pub profit_factor: Option<Decimal>,
    pub cagr: Option<Decimal>,
    pub expected_value: Option<Decimal>,
    pub total_trades: u64,
    pub avg_trade_duration_seconds: Option<i64>,
}

/// The peer system's typed breakdown (see `docs/metrics.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructuredMetrics {
    pub total_return: Option<Decimal>,
    pub bars_in_market: u64,
    pub performance: Performance,
    pub risk: Risk,
    pub trading: Trading,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    pub cagr: Option<Decimal>,
    pub sharpe_ratio: Option<Decimal>,
    pub sortino_ratio: Option<Decimal>,
    pub calmar_ratio: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    pub max_drawdown: Option<Decimal>,
    /// Seconds.
    pub max_drawdown_duration: i64,
    pub var_95: Option<Decimal>,
    pub cvar_95: Option<Decimal>,
    pub var_99: Option<Decimal>,
    pub cvar_99: Option<Decimal>,
    pub volatility_annualised: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trading {
    pub total_trades: u64,
    pub win_rate: Option<Decimal>,
    pub profit_factor: Option<Decimal>,
    pub avg_win: Option<Decimal>,
    pub avg_loss: Option<Decimal>,
    pub expectancy: Option<Decimal>,
    pub turnover_annualised: Option<Decimal>,
}

/// One closed round trip, as the seed lists it (plus `exit_reason`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    pub id: u64,
    pub side: &'static str,
    pub symbol: String,
    /// `entry_time` and `exit_time` in UTC milliseconds (for the artifact files).
    #[serde(skip)]
    pub entry_time_ms: i64,
    #[serde(skip)]
    pub exit_time_ms: i64,
    pub entry_time: String,
    pub entry_price: Decimal,
    pub exit_time: String,
    pub exit_price: Decimal,
    pub qty: Decimal,
    pub pnl: Decimal,
    pub fee: Decimal,
    pub exit_reason: &'static str,
}

/// `[time, equity]`, serialized as the seed's two-element array.
#[derive(Debug, Clone, PartialEq)]
pub struct EquityPoint {
    pub time_ms: i64,
    pub equity: Decimal,
}

impl Serialize for EquityPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&iso(self.time_ms))?;
        t.serialize_element(&self.equity)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for EquityPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (time, equity) = <(String, Decimal)>::deserialize(d)?;
        let time_ms = crate::time::parse_iso_ms(&time)
            .ok_or_else(|| serde::de::Error::custom(format!("{time:?} is not an ISO 8601 UTC time")))?;
        Ok(EquityPoint { time_ms, equity })
    }
}

/// Facts about the run itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub final_equity: Decimal,
    /// Bars simulated (per symbol).
    pub bars: u64,
    pub first_bar_time: String,
    pub last_bar_time: String,
    /// `bankrupt` or `liquidated` when trading stopped early; null otherwise.
    pub stopped_reason: Option<crate::sim::StopReason>,
    /// Loss beyond zero equity absorbed when a gap jumped the liquidation price; null if none.
    pub bankruptcy_shortfall: Option<Decimal>,
}

/// The seed's `result` object plus `structured_metrics`, `summary`, and (API.md, "Artifacts and
/// provenance of a done job") `benchmark` and `provenance`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestResult {
    pub metrics: Metrics,
    pub structured_metrics: StructuredMetrics,
    pub equity_curve: Vec<EquityPoint>,
    pub trades: Vec<Trade>,
    pub summary: Summary,
    pub benchmark: crate::benchmark::Benchmark,
    pub provenance: crate::provenance::Provenance,
}

impl Metrics {
    pub fn from_values(m: &MetricValues) -> Metrics {
        Metrics {
            sharpe: ratio(m.sharpe),
            sortino: ratio(m.sortino),
            calmar: ratio(m.calmar),
            max_drawdown: ratio(Some(m.max_drawdown)),
            win_rate: ratio(m.win_rate),
            profit_factor: ratio(m.profit_factor),
            cagr: ratio(m.cagr),
            expected_value: opt_money(m.expected_value),
            total_trades: m.total_trades,
            avg_trade_duration_seconds: m.avg_trade_duration_seconds,
        }
    }
}

impl StructuredMetrics {
    pub fn from_values(m: &MetricValues) -> StructuredMetrics {
        StructuredMetrics {
            total_return: ratio(Some(m.total_return)),
            bars_in_market: m.bars_in_market,
            performance: Performance {
                cagr: ratio(m.cagr),
                sharpe_ratio: ratio(m.sharpe),
                sortino_ratio: ratio(m.sortino),
                calmar_ratio: ratio(m.calmar),
            },
            risk: Risk {
                max_drawdown: ratio(Some(m.max_drawdown)),
                max_drawdown_duration: m.max_drawdown_duration_seconds,
                var_95: ratio(m.var_95),
                cvar_95: ratio(m.cvar_95),
                var_99: ratio(m.var_99),
                cvar_99: ratio(m.cvar_99),
                volatility_annualised: ratio(m.volatility_annualised),
            },
            trading: Trading {
                total_trades: m.total_trades,
                win_rate: ratio(m.win_rate),
                profit_factor: ratio(m.profit_factor),
                avg_win: opt_money(m.avg_win),
                avg_loss: opt_money(m.avg_loss),
                expectancy: ratio(m.expectancy),
                turnover_annualised: ratio(m.turnover_annualised),
            },
        }
    }
}

/// Numbers trades from 1 in the order they closed.
pub fn trades(raw: &[RawTrade], symbols: &[String]) -> Vec<Trade> {
    raw.iter()
        .enumerate()
        .map(|(i, t)| Trade {
            id: i as u64 + 1,
            side: if t.long { "buy" } else { "sell" },
            symbol: symbols[t.symbol].clone(),
            entry_time_ms: t.entry_time,
            exit_time_ms: t.exit_time,
            entry_time: iso(t.entry_time),
            entry_price: money(t.entry_price),
            exit_time: iso(t.exit_time),
            exit_price: money(t.exit_price),
            qty: quantity(t.qty),
            pnl: money(t.pnl()),
            fee: money(t.fee()),
            exit_reason: t.exit_reason.as_str(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_two_places_and_rounds_half_even_at_eight() {
        assert_eq!(money(10031.5).to_string(), "10031.50");
        assert_eq!(money(10000.0).to_string(), "10000.00");
        assert_eq!(money(0.123456789).to_string(), "0.12345679");
        assert_eq!(quantity(0.0805).to_string(), "0.0805");
        assert_eq!(ratio(Some(f64::NAN)), None);
        assert_eq!(ratio(Some(f64::INFINITY)), None);
        assert_eq!(ratio(Some(-0.142)).unwrap().to_string(), "-0.142");
    }

    /// The fast path must give exactly the exact path's decimal (same digits, same scale).
    #[test]
    fn fast_decimal_matches_the_exact_conversion() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for _ in 0..40_000 {
            let r = next();
            let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
            let magnitude = 10f64.powi((r % 23) as i32 - 12);
            // Midpoints at 8 or 10 places, up to 2^52 and past it once scaled.
            let mut midpoint = |dp: f64| ((next() >> (r % 40)) as f64 + 0.5) / dp;
            let x = match r % 5 {
                // Anything, over 23 orders of magnitude.
                0 | 1 => unit * magnitude,
                2 => midpoint(1e8),
                3 => midpoint(1e10),
                // Short decimals.
                _ => (next() % 100_000_000) as f64 / [1.0, 100.0, 1e4, 1e8][(r % 4) as usize],
            };
            // And the floats around it, where `x * 10^dp` crosses the midpoint.
            let ulps = [0i64, 1, -1, 2, -2, 5, -5, 17, -17, 64, -64][(next() % 11) as usize];
            let near = f64::from_bits((x.to_bits() as i64 + ulps) as u64);
            for x in [x, -x, near, -near] {
                for dp in [MONEY_DP, RATIO_DP] {
                    let (fast, exact) = (to_decimal(x, dp), to_decimal_exact(x, dp));
                    assert_eq!(fast, exact, "{x:e} at {dp}");
                    assert_eq!(fast.map(|d| (d.to_string(), d.scale())), exact.map(|d| (d.to_string(), d.scale())));
                    checked += 1;
                }
            }
        }
        assert!(checked > 150_000);
        assert_eq!(money(-0.000000001).to_string(), "0.00");
        assert_eq!(money(0.125).to_string(), "0.125");
        assert_eq!(money(1.0 / 512.0).to_string(), "0.00195312");
        assert_eq!(quantity(1e20).to_string(), "100000000000000000000");
    }

    #[test]
    fn equity_point_serializes_as_a_pair() {
        let p = EquityPoint { time_ms: 1_735_689_600_000, equity: money(10000.0) };
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"["2025-01-01T00:00:00Z","10000.00"]"#);
        assert_eq!(serde_json::from_str::<EquityPoint>(r#"["2025-01-01T00:00:00Z","10000.00"]"#).unwrap(), p);
        assert!(serde_json::from_str::<EquityPoint>(r#"["2025-01-01","10000.00"]"#).is_err());
    }
}
