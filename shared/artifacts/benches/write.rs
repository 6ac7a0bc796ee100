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

/// Wall time since `t`, and this thread's CPU time since `cpu` (what the figure would be on an
/// idle core), in ms.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// This thread's user + system CPU time in ms (`/proc/thread-self/stat`, 10 ms ticks); 0 where
/// there is no such file.
fn cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) * 10.0
}

/// Times `f`: (its value, wall ms, CPU ms).
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (t, c) = (Instant::now(), cpu_ms());
    let v = f();
    (v, ms(t), cpu_ms() - c)
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
    let (p, hashed, hashed_cpu) = timed(|| Provenance::of(&config, &data, &backtest.windows));
    println!(
        "  provenance (sha256 of {:.0} MB of bars, inside the run): {hashed:.0} ms wall, {hashed_cpu:.0} ms CPU = {:.2} GB/s of CPU",
        mb(bars * 48),
        (bars * 48) as f64 / hashed_cpu.max(1.0) / 1e6
    );
    assert_eq!(p, backtest.result.provenance);

    println!("  {:<22} {:>9} {:>11} {:>11}", "file", "size", "wall", "CPU");
    let mut total = (0usize, 0.0f64, 0.0f64);
    let mut row = |name: &str, bytes: usize, wall: f64, cpu: f64| {
        println!("  {name:<22} {:>6.2} MB {wall:>8.1} ms {cpu:>8.0} ms", mb(bytes));
        total = (total.0 + bytes, total.1 + wall, total.2 + cpu);
    };
    let (rows, w0, c0) = timed(|| EquityRows::of(&backtest, &config, &data).unwrap());
    let (bytes, w, c) = timed(|| rows.to_parquet().unwrap().len());
    row("equity.parquet", bytes, w + w0, c + c0);
    let (bytes, w, c) = timed(|| rows.to_csv().len());
    row("equity.csv", bytes, w, c);
    let (bytes, w, c) = timed(|| trades::to_parquet(&backtest.result.trades).unwrap().len());
    row("trades.parquet", bytes, w, c);
    let (bytes, w, c) = timed(|| trades::to_csv(&backtest.result.trades).len());
    row("trades.csv", bytes, w, c);
    let (bytes, w, c) = timed(|| bars_files(&backtest, &config, &data).unwrap().iter().map(|f| f.data.len()).sum());
    let name = if symbols == 1 { "bars.parquet".to_string() } else { format!("bars-*.parquet ({symbols})") };
    row(&name, bytes, w, c);
    println!("  {:<22} {:>6.2} MB {:>8.1} ms {:>8.0} ms", "all (one thread)", mb(total.0), total.1, total.2);
    let (bytes, w, c) =
        timed(|| write_all(&backtest, &config, &data).unwrap().iter().map(|f| f.data.len()).sum::<usize>());
    println!("  {:<22} {:>6.2} MB {w:>8.1} ms {c:>8.0} ms", "write_all", mb(bytes));
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
