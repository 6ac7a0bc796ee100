//! Writes the report of a demo job: `docs/examples/ma-cross-btc-2025.json` (SMA 24/96, long and
//! short, on 2025's 1h BTCUSDT) on the synthetic BTCUSDT preset's bars.
//!
//! ```sh
//! cargo run -p pipai-report --example demo_report -- report.html
//! ```
//!
//! The benchmark here is a stand-in computed by this example (buy at the first open, hold, no
//! fees) until the engine's own `benchmark` is in the result; provenance rows likewise.

use pipai_engine::result::{money, EquityPoint};
use pipai_engine::time::{day_start, iso};
use pipai_engine::{run, Bars, JobConfig, NoObserver};
use pipai_market_data::{resample, Preset};
use pipai_report::{render, BarEquity, BenchmarkView, ReportInput};

const CONFIG: &str = include_str!("../../../docs/examples/ma-cross-btc-2025.json");

/// Buy-and-hold of one series at its first open, valued at each day's last close, no fees.
fn buy_and_hold(capital: f64, bars: &Bars) -> Vec<EquityPoint> {
    let mut daily: Vec<EquityPoint> = Vec::new();
    for (&t, &close) in bars.open_time.iter().zip(&bars.close) {
        let point = EquityPoint { time_ms: day_start(t), equity: money(capital * close / bars.open[0]) };
        match daily.last_mut() {
            Some(last) if last.time_ms == point.time_ms => *last = point,
            _ => daily.push(point),
        }
    }
    daily
}

fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: demo_report OUT.html");
        std::process::exit(2);
    };
    let config = JobConfig::from_json_bytes(CONFIG.as_bytes(), chrono::Utc::now()).expect("the example job validates");
    let minutes = Preset::btcusdt().generate(config.start_ms(), config.end_ms() + 1);
    let data = [resample(&minutes, config.timeframe)];
    let backtest = run(&config, &data, &mut NoObserver).expect("the demo job runs");
    let open_times = backtest.bar_open_times(&data).expect("the run's own bars");

    let capital: f64 = config.capital.to_string().parse().expect("a decimal");
    let window = data[0].slice(backtest.windows[0].clone());
    let bench_curve = buy_and_hold(capital, &window);
    let bench_return = bench_curve.last().map(|p| p.equity.to_string().parse::<f64>().unwrap_or(0.0) / capital - 1.0);
    let benchmark = BenchmarkView {
        equity_curve: &bench_curve,
        metrics: vec![
            ("total_return".into(), format!("{:.10}", bench_return.unwrap_or(0.0))),
            ("basis".into(), "demo stand-in: bought at the first open, no fees".into()),
        ],
    };
    let provenance = vec![
        ("engine_version".into(), env!("CARGO_PKG_VERSION").to_string()),
        ("config".into(), "docs/examples/ma-cross-btc-2025.json".into()),
        (
            "data".into(),
            format!(
                "BTCUSDT {} synthetic preset, {} bars, {} to {}",
                config.timeframe,
                window.len(),
                iso(open_times[0]),
                iso(open_times[open_times.len() - 1])
            ),
        ),
    ];
    let html = render(&ReportInput {
        config: &config,
        result: &backtest.result,
        bar_equity: Some(BarEquity { open_times, equity: &backtest.bar_equity }),
        benchmark: Some(benchmark),
        provenance,
    });
    std::fs::write(&out, &html).unwrap_or_else(|e| {
        eprintln!("demo_report: cannot write {out}: {e}");
        std::process::exit(1);
    });
    println!("wrote {out}: {} bytes, {} trades, {} bars", html.len(), backtest.result.trades.len(), window.len());
}
