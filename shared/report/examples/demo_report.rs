//! Writes the report of a demo job: `docs/examples/ma-cross-btc-2025.json` (SMA 24/96, long and
//! short, on 2025's 1h BTCUSDT) on the synthetic BTCUSDT preset's bars.
//!
//! ```sh
//! cargo run -p pipai-report --example demo_report -- report.html
//! ```
//!
//! The benchmark and provenance are the engine's own (`result.benchmark`, `result.provenance`),
//! mapped by `pipai_report::render_run` as the worker and `pipai run --artifacts` do.

use pipai_engine::{run, JobConfig, NoObserver};
use pipai_market_data::{resample, Preset};
use pipai_report::render_run;

const CONFIG: &str = include_str!("../../../docs/examples/ma-cross-btc-2025.json");

fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: demo_report OUT.html");
        std::process::exit(2);
    };
    let config = JobConfig::from_json_bytes(CONFIG.as_bytes(), chrono::Utc::now()).expect("the example job validates");
    let minutes = Preset::btcusdt().generate(config.start_ms(), config.end_ms() + 1);
    let data = [resample(&minutes, config.timeframe)];
    let backtest = run(&config, &data, &mut NoObserver).expect("the demo job runs");
    let html = render_run(&config, &backtest, &data);
    let bars = backtest.windows[0].len();
    std::fs::write(&out, &html).unwrap_or_else(|e| {
        eprintln!("demo_report: cannot write {out}: {e}");
        std::process::exit(1);
    });
    println!("wrote {out}: {} bytes, {} trades, {} bars", html.len(), backtest.result.trades.len(), bars);
}
