//! Properties every run must have, whatever the template, params and bars:
//! capital + Σ pnl = final equity (runs always end flat), fees are never negative, equity never
//! goes below zero, trades never overlap their own entry/exit order, and the same inputs give
//! byte-identical output.

use chrono::{TimeZone, Utc};
use pipai_engine::{run, Bars, JobConfig, NoObserver};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

#[path = "support/walk.rs"]
mod support;

/// A random walk from `seed`: open = previous close, wicks around the body.
fn walk(seed: u64, n: usize, start_price: f64, step_ms: i64) -> Bars {
    support::walk(seed, n, start_price, (START, step_ms), 0.04, 0.01)
}

fn config(template: &str, params: Value, symbols: &[&str], leverage: u32, fee_model: &str, n: usize) -> JobConfig {
    let body = json!({
        "template_id": template, "params": params, "symbols": symbols, "timeframe": "1h",
        "start": "2024-01-01T00:00:00Z",
        "end": pipai_engine::time::iso(START + (n as i64 - 1) * 3_600_000),
        "capital": "10000.00", "leverage": leverage, "fee_model": fee_model, "slippage_bps": "1",
    });
    JobConfig::from_value(&body, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()).expect("valid config")
}

fn cases() -> impl Strategy<Value = (String, Value, usize)> {
    prop_oneof![
        (1usize..20, 2usize..60, prop::sample::select(vec!["long", "short", "both"])).prop_filter_map(
            "fast < slow",
            |(f, s, d)| {
                (f < s).then(|| {
                    ("tpl_ma_cross".to_string(), json!({"fast": f, "slow": s, "direction": d, "fraction": "0.7"}), 1)
                })
            }
        ),
        (1usize..60, prop::sample::select(vec!["long", "short", "both"])).prop_map(|(l, d)| (
            "tpl_breakout".to_string(),
            json!({"lookback": l, "direction": d}),
            1
        )),
        (2usize..30, prop::sample::select(vec!["long", "both"])).prop_map(|(p, d)| (
            "tpl_rsi_reversion".to_string(),
            json!({"period": p, "direction": d}),
            1
        )),
        (2usize..30, 50u32..100, 101u32..200).prop_map(|(levels, lo, hi)| (
            "tpl_grid".to_string(),
            json!({"grid_levels": levels, "lower_price": lo.to_string(), "upper_price": hi.to_string()}),
            1
        )),
        (1usize..30, 1usize..3, 1usize..20).prop_map(|(lb, top, every)| (
            "tpl_momentum_rotation".to_string(),
            json!({"lookback": lb, "top_n": top, "rebalance_every": every}),
            3
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn runs_balance_and_repeat((template, params, n_symbols) in cases(),
                               seed in any::<u64>(),
                               n in 50usize..600,
                               leverage in prop::sample::select(vec![1u32, 3, 20]),
                               fee_model in prop::sample::select(vec!["none", "fixed_bps", "tiered_maker_taker", "match_exchange"])) {
        let names = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
        let symbols = &names[..n_symbols];
        let cfg = config(&template, params, symbols, leverage, fee_model, n);
        let data: Vec<Bars> = (0..n_symbols).map(|s| walk(seed.wrapping_add(s as u64), n, 100.0, 3_600_000)).collect();
        let out = run(&cfg, &data, &mut NoObserver).expect("runs");
        let r = &out.result;

        let capital = Decimal::new(1_000_000, 2);
        let pnl: Decimal = r.trades.iter().map(|t| t.pnl).sum();
        let shortfall = r.summary.bankruptcy_shortfall.unwrap_or_default();
        let final_equity = r.summary.final_equity;
        // Each trade's pnl is rounded to 8 places: allow that much per trade, plus float residue.
        let tolerance = Decimal::new(1, 8) * Decimal::from(r.trades.len() as u64 + 1) + capital * Decimal::new(1, 9);
        prop_assert!((capital + pnl + shortfall - final_equity).abs() <= tolerance,
            "capital + pnl + shortfall = {} but final equity {final_equity}", capital + pnl + shortfall);
        prop_assert!(r.trades.iter().all(|t| t.fee >= Decimal::ZERO));
        prop_assert!(out.bar_equity.iter().all(|&e| e >= 0.0), "equity went negative");
        prop_assert!(r.trades.iter().all(|t| t.entry_time <= t.exit_time && t.qty > Decimal::ZERO));
        prop_assert_eq!(r.equity_curve.last().map(|p| p.equity), Some(final_equity));
        prop_assert_eq!(r.metrics.total_trades as usize, r.trades.len());
        if fee_model == "none" {
            prop_assert!(r.trades.iter().all(|t| t.fee.is_zero()));
        }

        let again = run(&cfg, &data, &mut NoObserver).expect("runs");
        prop_assert_eq!(serde_json::to_string(&again.result).unwrap(), serde_json::to_string(&out.result).unwrap());
    }
}

#[test]
fn long_at_leverage_one_is_never_liquidated() {
    for seed in 0..20 {
        let cfg = config("tpl_breakout", json!({"lookback": 5}), &["BTCUSDT"], 1, "fixed_bps", 500);
        let out = run(&cfg, &[walk(seed, 500, 100.0, 3_600_000)], &mut NoObserver).unwrap();
        assert!(out.result.trades.iter().all(|t| t.exit_reason != "liquidation"));
    }
}

#[test]
fn misaligned_symbols_and_empty_windows_are_data_errors() {
    let cfg = config("tpl_momentum_rotation", json!({"lookback": 3}), &["BTCUSDT", "ETHUSDT"], 1, "none", 100);
    let a = walk(1, 100, 100.0, 3_600_000);
    let mut b = walk(2, 100, 100.0, 3_600_000);
    b.open_time[50] += 1;
    let err = run(&cfg, &[a.clone(), b], &mut NoObserver).unwrap_err();
    assert!(err.to_string().contains("aligned"), "{err}");
    let late: Bars = walk(3, 10, 100.0, 3_600_000);
    let mut shifted = late.clone();
    shifted.open_time.iter_mut().for_each(|t| *t += 400 * 3_600_000);
    let err = run(&cfg, &[shifted.clone(), shifted], &mut NoObserver).unwrap_err();
    assert!(err.to_string().contains("no bars between"), "{err}");
}

#[test]
fn result_has_the_seed_shape() {
    let cfg = config("tpl_ma_cross", json!({"fast": 5, "slow": 20}), &["BTCUSDT"], 1, "fixed_bps", 24 * 30);
    let out = run(&cfg, &[walk(7, 24 * 30, 100.0, 3_600_000)], &mut NoObserver).unwrap();
    let v = serde_json::to_value(&out.result).unwrap();
    for key in [
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "win_rate",
        "profit_factor",
        "cagr",
        "expected_value",
        "total_trades",
        "avg_trade_duration_seconds",
    ] {
        assert!(v["metrics"].get(key).is_some(), "metrics.{key}");
    }
    assert!(v["metrics"]["total_trades"].is_u64());
    assert!(v["metrics"]["sharpe"].is_string());
    assert_eq!(v["equity_curve"].as_array().unwrap().len(), 30);
    assert_eq!(v["equity_curve"][0][0], "2024-01-01T00:00:00Z");
    let trade = &v["trades"][0];
    for key in ["id", "side", "symbol", "entry_time", "entry_price", "exit_time", "exit_price", "qty", "pnl", "fee"] {
        assert!(trade.get(key).is_some(), "trades[].{key}");
    }
    for key in ["var_95", "cvar_99", "max_drawdown_duration", "volatility_annualised"] {
        assert!(v["structured_metrics"]["risk"].get(key).is_some(), "risk.{key}");
    }
}

/// Found by the property test: at 20x with `both`, repeated liquidations shrink equity towards
/// zero; an entry then must not produce a trade whose quantity rounds to zero.
#[test]
fn near_zero_equity_never_makes_zero_quantity_trades() {
    let cfg =
        config("tpl_rsi_reversion", json!({"direction": "both", "period": 2}), &["BTCUSDT"], 20, "fixed_bps", 460);
    let out = run(&cfg, &[walk(12_717_249_894, 460, 100.0, 3_600_000)], &mut NoObserver).unwrap();
    assert!(out.result.trades.iter().all(|t| t.qty > Decimal::ZERO), "a trade rounded to zero quantity");
}
