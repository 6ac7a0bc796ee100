//! Engine benchmark: bars/second and peak heap for each template on 1 and 5 years of 1m bars.
//! Run: `cargo bench -p pipai --bench engine` (prints a table; no timing assertions).

mod common;

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use pipai_engine::{run, Bars, JobConfig, NoObserver};
use pipai_market_data::generate::Preset;
use serde_json::json;

use common::{LIVE, PEAK};

const START_MS: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

fn main() {
    let years = [1usize, 5];
    let cases = [
        ("tpl_ma_cross", json!({"fast": 50, "slow": 200})),
        ("tpl_breakout", json!({"lookback": 240, "direction": "both"})),
        ("tpl_rsi_reversion", json!({"period": 14})),
        ("tpl_grid", json!({"grid_levels": 40, "lower_price": "30000", "upper_price": "70000"})),
        ("tpl_momentum_rotation", json!({"lookback": 1440, "top_n": 1, "rebalance_every": 1440})),
    ];
    println!(
        "{:<24} {:>6} {:>11} {:>10} {:>14} {:>9} {:>12} {:>8}",
        "template", "years", "bars", "ms", "bars/s", "trades", "peak MiB", "x bars"
    );
    for y in years {
        let n = 525_600 * y;
        let end = START_MS + n as i64 * 60_000;
        let btc = Preset::btcusdt().generate(START_MS, end);
        let eth = Preset::ethusdt().generate(START_MS, end);
        for (template, params) in &cases {
            let multi = *template == "tpl_momentum_rotation";
            let symbols: Vec<&str> = if multi { vec!["BTCUSDT", "ETHUSDT"] } else { vec!["BTCUSDT"] };
            let cfg = JobConfig::from_value(
                &json!({"template_id": template, "params": params, "symbols": symbols, "timeframe": "1m",
                        "start": "2024-01-01T00:00:00Z", "end": pipai_engine::time::iso(START_MS + n as i64 * 60_000 - 60_000),
                        "capital": "10000", "fee_model": "fixed_bps"}),
                Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
            )
            .expect("valid bench config");
            let data: Vec<Bars> = if multi { vec![btc.clone(), eth.clone()] } else { vec![btc.clone()] };
            let bars_bytes: usize = data.iter().map(|b| b.heap_bytes()).sum();
            // Best of 5 for time; peak heap measured over the runs above what the inputs hold.
            let mut best = f64::INFINITY;
            let mut trades = 0;
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            for _ in 0..5 {
                let t0 = Instant::now();
                let out = run(&cfg, &data, &mut NoObserver).expect("bench run");
                best = best.min(t0.elapsed().as_secs_f64());
                trades = out.result.trades.len();
            }
            let peak_extra = PEAK.load(Ordering::Relaxed) - base;
            let peak_total = peak_extra + bars_bytes;
            println!(
                "{:<24} {:>6} {:>11} {:>10.2} {:>14.0} {:>9} {:>12.1} {:>8.2}",
                template,
                y,
                n * data.len(),
                best * 1e3,
                (n * data.len()) as f64 / best,
                trades,
                peak_total as f64 / (1 << 20) as f64,
                peak_total as f64 / bars_bytes as f64
            );
        }
    }
    println!("bars/s counts every symbol's bars; peak MiB = the input bars plus the run's own peak heap; x bars = that peak / the bars' 48 bytes a bar.");
}
