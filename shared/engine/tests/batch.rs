//! The sweep batch engine against the job's run: for random configs of every template (params,
//! fee models, directions, fractions, leverage, slippage) on random bars, `batch::evaluate`'s
//! in-sample metrics are `run`'s on the in-sample config, byte for byte, and its out-of-sample
//! metrics are the reference chain of `run_warm` over the test windows.

use chrono::{TimeZone, Utc};
use pipai_engine::batch::{evaluate, evaluate_one, folds, Folds, Validation};
use pipai_engine::{run, run_warm, Bars, JobConfig, NoObserver};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
const STEP: i64 = 15 * 60_000;

#[path = "support/walk.rs"]
mod support;

/// A random walk from `seed` of 15m bars.
fn walk(seed: u64, n: usize, start_price: f64) -> Bars {
    support::walk(seed, n, start_price, (START, STEP), 0.03, 0.01)
}

/// The account settings a config draws: leverage, fee model, slippage (bps).
type Account = (u32, &'static str, &'static str);

fn config(template: &str, params: &Value, symbols: &[&str], account: Account, from: i64, to: i64) -> JobConfig {
    let (leverage, fee_model, slippage) = account;
    let body = json!({
        "template_id": template, "params": params, "symbols": symbols, "timeframe": "15m",
        "start": pipai_engine::time::iso(from), "end": pipai_engine::time::iso(to),
        "capital": "10000.00", "leverage": leverage, "fee_model": fee_model, "slippage_bps": slippage,
    });
    JobConfig::from_value(&body, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()).expect("valid config")
}

fn direction() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["long", "short", "both"])
}

fn fraction() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["1", "0.5", "0.25", "0.9"])
}

fn account() -> impl Strategy<Value = Account> {
    (
        prop::sample::select(vec![1u32, 1, 2, 5, 20]),
        prop::sample::select(vec!["none", "fixed_bps", "tiered_maker_taker", "match_exchange"]),
        prop::sample::select(vec!["0", "1", "5"]),
    )
}

/// `count` random params of one template, with how many symbols it takes.
fn template_params(count: usize) -> impl Strategy<Value = (String, Vec<Value>, usize)> {
    prop_oneof![
        prop::collection::vec(
            (1usize..30, 2usize..80, direction(), fraction()).prop_filter_map("fast < slow", |(f, s, d, fr)| {
                (f < s).then(|| json!({"fast": f, "slow": s, "direction": d, "fraction": fr}))
            }),
            count
        )
        .prop_map(|p| ("tpl_ma_cross".to_string(), p, 1)),
        prop::collection::vec(
            (1usize..80, direction(), fraction())
                .prop_map(|(l, d, fr)| json!({"lookback": l, "direction": d, "fraction": fr})),
            count
        )
        .prop_map(|p| ("tpl_breakout".to_string(), p, 1)),
        prop::collection::vec(
            (2usize..40, 10u32..45, 55u32..95, direction(), fraction()).prop_map(|(p, os, ob, d, fr)| json!({
                "period": p, "oversold": os.to_string(), "overbought": ob.to_string(), "direction": d, "fraction": fr
            })),
            count
        )
        .prop_map(|p| ("tpl_rsi_reversion".to_string(), p, 1)),
        prop::collection::vec(
            (2usize..30, 50u32..100, 101u32..200).prop_map(|(levels, lo, hi)| json!({
                "grid_levels": levels, "lower_price": lo.to_string(), "upper_price": hi.to_string()
            })),
            count
        )
        .prop_map(|p| ("tpl_grid".to_string(), p, 1)),
        prop::collection::vec(
            (1usize..30, 1usize..3, 1usize..20, fraction()).prop_map(|(lb, top, every, fr)| json!({
                "lookback": lb, "top_n": top, "rebalance_every": every, "fraction": fr
            })),
            count
        )
        .prop_map(|p| ("tpl_momentum_rotation".to_string(), p, 3)),
    ]
}

fn validation() -> impl Strategy<Value = Validation> {
    prop_oneof![
        Just(Validation::None),
        (1u32..9).prop_map(|t| Validation::Holdout { test_fraction: Decimal::new(t as i64, 1) }),
        (1u32..5, 1u32..6, any::<bool>()).prop_map(|(folds, t, anchored)| Validation::WalkForward {
            folds,
            test_fraction: Decimal::new(t as i64, 1),
            anchored
        }),
    ]
}

const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn batch_metrics_are_the_runs(
        (template, params, n_symbols) in template_params(6),
        accounts in prop::collection::vec(account(), 6),
        validation in validation(),
        seed in any::<u64>(),
        n in 20usize..6000,
        skip in 0usize..3,
    ) {
        let data: Vec<Bars> = (0..n_symbols).map(|s| walk(seed.wrapping_add(s as u64), n, 100.0 * (s + 1) as f64)).collect();
        // The window starts a few bars into the data (bars before it are history only).
        let (from, to) = (START + skip as i64 * STEP, START + (n as i64 - 1) * STEP);
        let symbols = &SYMBOLS[..n_symbols];
        let configs: Vec<JobConfig> =
            params.iter().zip(&accounts).map(|(p, &a)| config(&template, p, symbols, a, from, to)).collect();
        let evaluations = evaluate(&configs, &data, &validation);
        prop_assert_eq!(evaluations.len(), configs.len());
        for (config, evaluation) in configs.iter().zip(evaluations) {
            let in_sample = validation.in_sample_config(config);
            let reference = evaluate_one(config, &data, &validation);
            match (run(&in_sample, &data, &mut NoObserver), evaluation) {
                (Ok(run), Ok(evaluation)) => {
                    let r = &run.result;
                    prop_assert_eq!(
                        serde_json::to_string(&r.metrics).unwrap(),
                        serde_json::to_string(&evaluation.in_sample.metrics).unwrap()
                    );
                    prop_assert_eq!(
                        serde_json::to_string(&r.structured_metrics).unwrap(),
                        serde_json::to_string(&evaluation.in_sample.structured_metrics).unwrap()
                    );
                    let reference = reference.expect("the reference evaluates what the batch does");
                    prop_assert_eq!(&reference, &evaluation);
                    prop_assert_eq!(evaluation.out_of_sample.is_some(), validation != Validation::None);
                }
                (Err(e), Err(f)) => prop_assert_eq!(e, f),
                (Ok(_), Err(e)) => {
                    // Only a test window may fail where the in-sample run does not.
                    prop_assert_eq!(reference, Err(e));
                }
                (Err(e), Ok(_)) => prop_assert!(false, "run failed ({e}) where the batch did not"),
            }
        }
    }
}

#[test]
fn fold_arithmetic() {
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    // Holdout: test = floor(n * f).
    assert_eq!(folds(100, 1, d("0.3")), Some(Folds { train: 70, test: 30 }));
    // Walk forward, 4 folds of 20%: test = floor(100 * 0.2 / (0.8 + 0.8)) = 12, train 52.
    assert_eq!(folds(100, 4, d("0.2")), Some(Folds { train: 52, test: 12 }));
    // test / (train + test) is the fraction: 12 / 64 = 0.1875 (floored from 0.2).
    assert_eq!(folds(1000, 4, d("0.2")), Some(Folds { train: 500, test: 125 }));
    assert_eq!(folds(10, 1, d("0.05")), None, "an empty test window");
    // The first train window is never empty (f < 1 leaves it a share); many folds empty the tests.
    assert_eq!(folds(10, 9, d("0.9")), Some(Folds { train: 1, test: 1 }));
    assert_eq!(folds(10, 10, d("0.9")), None, "an empty test window");
    assert_eq!(folds(10, 0, d("0.5")), None);
    assert_eq!(folds(10, 1, d("0")), None);
    assert_eq!(folds(10, 1, d("1")), None);
}

#[test]
fn splits_tile_the_window_on_bar_boundaries() {
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let hour = 3_600_000;
    // 100 hourly slots from START (the window ends inside the last slot).
    let (start, end) = (START, START + 99 * hour + 59 * 60_000);
    let split =
        Validation::WalkForward { folds: 4, test_fraction: d("0.2"), anchored: false }.split(start, end, hour).unwrap();
    assert_eq!(split.in_sample, (start, START + 52 * hour - 1));
    let tests: Vec<(i64, i64)> = (0..4)
        .map(|j| (START + (52 + 12 * j) * hour, if j == 3 { end } else { START + (64 + 12 * j) * hour - 1 }))
        .collect();
    assert_eq!(split.tests, tests);
    // A start inside a slot: the first slot is the next whole hour.
    let split = Validation::Holdout { test_fraction: d("0.5") }.split(START + 1, START + 10 * hour, hour).unwrap();
    assert_eq!(split.in_sample, (START + 1, START + 6 * hour - 1));
    assert_eq!(split.tests, vec![(START + 6 * hour, START + 10 * hour)]);
    assert_eq!(Validation::None.split(start, end, hour).unwrap().tests, vec![]);
    assert!(Validation::Holdout { test_fraction: d("0.5") }.split(start, start, hour).is_err());
}

#[test]
fn warm_up_from_the_window_start_is_run_and_earlier_warm_up_changes_only_signals() {
    let data = [walk(7, 3000, 100.0)];
    let params = json!({"fast": 5, "slow": 40, "direction": "both"});
    let from = START + 1000 * STEP;
    let cfg = config("tpl_ma_cross", &params, &["BTCUSDT"], (1, "fixed_bps", "1"), from, START + 2999 * STEP);
    let plain = run(&cfg, &data, &mut NoObserver).unwrap();
    assert_eq!(run_warm(&cfg, &data, from, &mut NoObserver).unwrap(), plain);
    // Warmed up on 1000 bars before: a signal on the window's first bars, where the cold run's
    // slow mean is not yet defined (the cold run cannot trade before bar 40).
    let warm = run_warm(&cfg, &data, START, &mut NoObserver).unwrap();
    assert_eq!(warm.windows, plain.windows);
    assert_eq!(warm.result.summary.first_bar_time, plain.result.summary.first_bar_time);
    let first_entry = |b: &pipai_engine::Backtest| b.result.trades.first().map(|t| t.entry_time.clone());
    assert_ne!(first_entry(&warm), first_entry(&plain));
    // Its signals are those of a run over the whole history: every trade of the warm run opened
    // after the window's start is a trade of the long run, at the same time and side.
    let long = config("tpl_ma_cross", &params, &["BTCUSDT"], (1, "fixed_bps", "1"), START, START + 2999 * STEP);
    let long = run(&long, &data, &mut NoObserver).unwrap();
    for t in warm.result.trades.iter().filter(|t| t.exit_reason != "end_of_window") {
        assert!(
            long.result
                .trades
                .iter()
                .any(|u| u.entry_time == t.entry_time && u.side == t.side && u.exit_time == t.exit_time),
            "{t:?}"
        );
    }
}

#[test]
fn a_bad_bar_gives_every_config_the_jobs_error() {
    let mut data = [walk(3, 500, 100.0)];
    data[0].close[300] = f64::NAN;
    let configs: Vec<JobConfig> = (2..6)
        .map(|s| {
            config(
                "tpl_ma_cross",
                &json!({"fast": 1, "slow": s}),
                &["BTCUSDT"],
                (1, "none", "0"),
                START,
                START + 499 * STEP,
            )
        })
        .collect();
    for (config, evaluation) in configs.iter().zip(evaluate(&configs, &data, &Validation::None)) {
        assert_eq!(evaluation.map(|_| ()), run(config, &data, &mut NoObserver).map(|_| ()));
    }
}

#[test]
fn more_configs_than_a_chunk_keep_their_order_and_metrics() {
    let data = [walk(5, 400, 100.0)];
    let (from, to) = (START, START + 399 * STEP);
    let n = pipai_engine::batch::CHUNK + 77;
    let configs: Vec<JobConfig> = (0..n)
        .map(|i| {
            let direction = ["long", "both"][i % 2];
            let params = json!({"fast": 1 + i % 7, "slow": 8 + (i * 7919) % 40, "direction": direction});
            config("tpl_ma_cross", &params, &["BTCUSDT"], (1 + (i % 3) as u32, "fixed_bps", "1"), from, to)
        })
        .collect();
    let evaluations = evaluate(&configs, &data, &Validation::Holdout { test_fraction: Decimal::new(25, 2) });
    assert_eq!(evaluations.len(), n);
    for (config, evaluation) in configs.iter().zip(evaluations) {
        let validation = Validation::Holdout { test_fraction: Decimal::new(25, 2) };
        let run = run(&validation.in_sample_config(config), &data, &mut NoObserver).unwrap();
        let evaluation = evaluation.unwrap();
        assert_eq!(run.result.metrics, evaluation.in_sample.metrics);
        assert_eq!(Ok(evaluation), evaluate_one(config, &data, &validation));
    }
}
