//! Artifact writing time and size (`infra/bench.sh artifacts`): one year of 1m bars of one
//! symbol (SMA 10/50), and the largest job the API accepts (`MAX_SPAN_MONTHS` of 1m bars of
//! `MAX_SYMBOLS` symbols, momentum rotation; `BENCH_ARTIFACT_SYMBOLS` / `BENCH_ARTIFACT_YEARS`
//! shrink it on a small machine). Also the provenance hash, which every run computes.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use pipai_artifacts::{bars_files, equity::EquityRows, trades, write_all};
use pipai_engine::config::{MAX_SPAN_MONTHS, MAX_SYMBOLS};
use pipai_engine::provenance::Provenance;
use pipai_engine::time::iso;
use pipai_engine::{run, Bars, JobConfig, NoObserver};
use pipai_market_data::generate::{generate_1m, PRESET_ANCHOR_MS};
use serde_json::json;

const DAY: i64 = 86_400_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn case(title: &str, symbols: usize, days: i64, template: &str, params: serde_json::Value) {
    let names: Vec<String> = (0..symbols).map(|i| format!("SYM{i}USDT")).collect();
    let end = PRESET_ANCHOR_MS + days * DAY;
    let t = Instant::now();
    let data: Vec<Bars> =
        (0..symbols).map(|i| generate_1m(7 + i as u64, 100.0 + 50.0 * i as f64, PRESET_ANCHOR_MS, end)).collect();
    let generated = ms(t);
    let body = json!({"template_id": template, "params": params, "symbols": names, "timeframe": "1m",
        "start": iso(PRESET_ANCHOR_MS), "end": iso(end - 60_000), "capital": "10000.00", "fee_bps": "5"});
    let config = JobConfig::from_value(&body, Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()).unwrap();
    let t = Instant::now();
    let backtest = run(&config, &data, &mut NoObserver).unwrap();
    let simulated = ms(t);
    let bars: usize = data.iter().map(Bars::len).sum();
    println!(
        "{title}: {symbols} symbol(s) x {} bars = {bars} bars ({:.0} MB), {} trades; generate {generated:.0} ms, run {simulated:.0} ms",
        data[0].len(),
        mb(bars * 48),
        backtest.result.trades.len()
    );
    let t = Instant::now();
    let p = Provenance::of(&config, &data, &backtest.windows);
    let hashed = ms(t);
    println!(
        "  provenance (sha256 of {:.0} MB of bars, inside the run): {hashed:.0} ms = {:.2} GB/s",
        mb(bars * 48),
        (bars * 48) as f64 / hashed / 1e6
    );
    assert_eq!(p, backtest.result.provenance);

    let mut total = (0usize, 0.0f64);
    let mut row = |name: &str, bytes: usize, took: f64| {
        println!("  {name:<22} {:>9.2} MB {took:>8.1} ms", mb(bytes));
        total = (total.0 + bytes, total.1 + took);
    };
    let t = Instant::now();
    let rows = EquityRows::of(&backtest, &config, &data).unwrap();
    let drawdown = ms(t);
    let t = Instant::now();
    let bytes = rows.to_parquet().unwrap().len();
    row("equity.parquet", bytes, ms(t) + drawdown);
    let t = Instant::now();
    row("equity.csv", rows.to_csv().len(), ms(t));
    let t = Instant::now();
    row("trades.parquet", trades::to_parquet(&backtest.result.trades).unwrap().len(), ms(t));
    let t = Instant::now();
    row("trades.csv", trades::to_csv(&backtest.result.trades).len(), ms(t));
    let t = Instant::now();
    let files = bars_files(&backtest, &config, &data).unwrap();
    let name = if symbols == 1 { "bars.parquet".to_string() } else { format!("bars-*.parquet ({symbols})") };
    row(&name, files.iter().map(|f| f.data.len()).sum(), ms(t));
    drop(files);
    println!("  {:<22} {:>9.2} MB {:>8.1} ms (one file after another, one thread)", "all", mb(total.0), total.1);
    let t = Instant::now();
    let all = write_all(&backtest, &config, &data).unwrap();
    println!("  write_all              {:>9.2} MB {:>8.1} ms", mb(all.iter().map(|f| f.data.len()).sum()), ms(t));
}

fn main() {
    case("one year of 1m", 1, 366, "tpl_ma_cross", json!({"fast": 10, "slow": 50}));
    let symbols = env("BENCH_ARTIFACT_SYMBOLS", MAX_SYMBOLS);
    let years = env("BENCH_ARTIFACT_YEARS", MAX_SPAN_MONTHS as usize / 12);
    let title = format!("largest job ({years} years of 1m)");
    case(
        &title,
        symbols,
        years as i64 * 365,
        "tpl_momentum_rotation",
        json!({"lookback": 1440, "top_n": 3, "rebalance_every": 1440}),
    );
}
