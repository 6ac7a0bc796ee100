//! The engine against vectorbt: fixtures produced by `shared/engine/crosscheck/run.sh` (vectorbt
//! 1.2 with our fill and fee rules; see that folder's README). Trades must match one for one
//! (same side, times and exit reason; prices, quantities, fees and pnl to 1e-9 relative), the
//! final equity and every daily equity point to 1e-9 relative, and every metric to 1e-6.

use chrono::{TimeZone, Utc};
use pipai_engine::{run, Bar, Bars, JobConfig, NoObserver};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crosscheck/fixtures")
}

fn read_bars(name: &str) -> Bars {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("bars fixture");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("open_time,open,high,low,close,volume"));
    let mut bars = Bars::default();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f[i].parse::<f64>().unwrap();
        bars.push(Bar {
            open_time: f[0].parse().unwrap(),
            open: num(1),
            high: num(2),
            low: num(3),
            close: num(4),
            volume: num(5),
        });
    }
    bars
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.parse().unwrap()),
        Value::Number(n) => n.as_f64(),
        other => panic!("not a number: {other}"),
    }
}

fn close_rel(ours: f64, theirs: f64, rel: f64) -> bool {
    (ours - theirs).abs() <= rel * theirs.abs().max(1.0)
}

/// Where each fixture metric lives in our result JSON.
const METRIC_PATHS: [(&str, &str); 22] = [
    ("sharpe", "/metrics/sharpe"),
    ("sortino", "/metrics/sortino"),
    ("calmar", "/metrics/calmar"),
    ("max_drawdown", "/metrics/max_drawdown"),
    ("win_rate", "/metrics/win_rate"),
    ("profit_factor", "/metrics/profit_factor"),
    ("cagr", "/metrics/cagr"),
    ("expected_value", "/metrics/expected_value"),
    ("total_trades", "/metrics/total_trades"),
    ("avg_trade_duration_seconds", "/metrics/avg_trade_duration_seconds"),
    ("total_return", "/structured_metrics/total_return"),
    ("volatility_annualised", "/structured_metrics/risk/volatility_annualised"),
    ("var_95", "/structured_metrics/risk/var_95"),
    ("cvar_95", "/structured_metrics/risk/cvar_95"),
    ("var_99", "/structured_metrics/risk/var_99"),
    ("cvar_99", "/structured_metrics/risk/cvar_99"),
    ("avg_win", "/structured_metrics/trading/avg_win"),
    ("avg_loss", "/structured_metrics/trading/avg_loss"),
    ("expectancy", "/structured_metrics/trading/expectancy"),
    ("bars_in_market", "/structured_metrics/bars_in_market"),
    ("max_drawdown_duration", "/structured_metrics/risk/max_drawdown_duration"),
    ("turnover_annualised", "/structured_metrics/trading/turnover_annualised"),
];

fn check_case(case: &str) {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{case}.json"))).unwrap()).unwrap();
    let bars = read_bars(fixture["bars_file"].as_str().unwrap());
    let cfg = JobConfig::from_value(&fixture["config"], Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()).unwrap();
    let out = run(&cfg, &[bars], &mut NoObserver).unwrap();
    let ours = serde_json::to_value(&out.result).unwrap();
    let expected = &fixture["expected"];

    let (our_trades, their_trades) = (ours["trades"].as_array().unwrap(), expected["trades"].as_array().unwrap());
    assert_eq!(our_trades.len(), their_trades.len(), "{case}: trade count");
    for (i, (a, b)) in our_trades.iter().zip(their_trades).enumerate() {
        for key in ["side", "entry_time", "exit_time", "exit_reason"] {
            assert_eq!(a[key], b[key], "{case}: trade {i} {key}");
        }
        for key in ["entry_price", "exit_price", "qty", "pnl", "fee"] {
            let (x, y) = (num(&a[key]).unwrap(), num(&b[key]).unwrap());
            // Ours is rounded to 8 places: allow that on top of 1e-9 relative.
            assert!((x - y).abs() <= 1e-9 * y.abs() + 5e-9, "{case}: trade {i} {key}: ours {x}, vectorbt {y}");
        }
    }

    let final_equity = num(&ours["summary"]["final_equity"]).unwrap();
    let theirs = num(&expected["final_equity"]).unwrap();
    assert!(close_rel(final_equity, theirs, 1e-9), "{case}: final equity ours {final_equity}, vectorbt {theirs}");

    let (our_curve, their_curve) =
        (ours["equity_curve"].as_array().unwrap(), expected["equity_curve"].as_array().unwrap());
    assert_eq!(our_curve.len(), their_curve.len(), "{case}: equity curve length");
    for (a, b) in our_curve.iter().zip(their_curve) {
        assert_eq!(a[0], b[0], "{case}: equity curve day");
        let (x, y) = (num(&a[1]).unwrap(), num(&b[1]).unwrap());
        assert!(close_rel(x, y, 1e-9), "{case}: equity on {}: ours {x}, vectorbt {y}", a[0]);
    }

    let metrics = expected["metrics"].as_object().unwrap();
    assert_eq!(metrics.len(), METRIC_PATHS.len(), "{case}: every fixture metric is checked");
    for (name, path) in METRIC_PATHS {
        let theirs = num(&metrics[name]);
        let ours = num(ours.pointer(path).unwrap_or_else(|| panic!("{path} missing")));
        match (ours, theirs) {
            (None, None) => {}
            (Some(x), Some(y)) => assert!(close_rel(x, y, 1e-6), "{case}: {name}: ours {x}, vectorbt {y}"),
            _ => panic!("{case}: {name}: ours {ours:?}, vectorbt {theirs:?}"),
        }
    }
}

#[test]
fn ma_cross_long_matches_vectorbt() {
    check_case("ma_cross_long");
}

#[test]
fn ma_cross_both_with_slippage_matches_vectorbt() {
    check_case("ma_cross_both_slippage");
}

#[test]
fn ma_cross_fraction_matches_vectorbt() {
    check_case("ma_cross_fraction");
}

#[test]
fn breakout_long_matches_vectorbt() {
    check_case("breakout_long");
}

#[test]
fn breakout_both_matches_vectorbt() {
    check_case("breakout_both");
}
