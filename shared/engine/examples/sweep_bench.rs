//! Sweep throughput of `batch::evaluate` (prints figures; `infra/bench.sh sweep` runs it):
//! one year of 1m bars, for each template 100, 1,000 and 10,000 configs, each case in a process
//! of its own (so its peak RSS is its own), the median of `--repeat` runs.
//!
//!   cargo run --release -p pipai-engine --example sweep_bench -- [--threads N] [--repeat R]
//!       [--sizes 100,1000,10000] [--templates tpl_ma_cross,...]
//!
//! Figures: configs/s, bar evaluations/s (configs x bars / seconds) and peak RSS (VmHWM).

use std::process::Command;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use pipai_engine::batch::{evaluate, Validation};
use pipai_engine::{Bars, JobConfig};
use serde_json::{json, Value};

const START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
const MINUTE: i64 = 60_000;
const YEAR_BARS: usize = 365 * 1440;
const TEMPLATES: [&str; 5] = ["tpl_ma_cross", "tpl_breakout", "tpl_rsi_reversion", "tpl_grid", "tpl_momentum_rotation"];

#[path = "../tests/support/walk.rs"]
mod support;

/// A random walk of 1m bars (about 2% daily volatility) from `seed`.
fn walk(seed: u64, n: usize, start_price: f64) -> Bars {
    support::walk(seed, n, start_price, (START, MINUTE), 0.0018, 0.0005)
}

/// `size` params of `template` (a grid over its parameters) and its symbols.
fn grid(template: &str, size: usize) -> (Vec<Value>, Vec<&'static str>) {
    let one = vec!["BTCUSDT"];
    // Two axes of `a` x `b` values for 100, 1,000 and 10,000 configs.
    let (a, b) = match size {
        100 => (10, 10),
        1000 => (20, 50),
        _ => (100, size / 100),
    };
    let pairs = (0..a).flat_map(move |i| (0..b).map(move |j| (i, j)));
    match template {
        "tpl_ma_cross" => (pairs.map(|(i, j)| json!({"fast": 2 + i, "slow": 2 + a + 5 * j})).collect(), one),
        // Lookbacks x direction x fraction.
        "tpl_breakout" => (
            pairs
                .map(|(i, j)| {
                    let fraction = format!("{}", (j / 2 + 1) as f64 / (b / 2) as f64);
                    let direction = ["long", "both"][j % 2];
                    json!({"lookback": 5 + 5 * i, "direction": direction, "fraction": fraction})
                })
                .collect(),
            one,
        ),
        // Periods x oversold x overbought.
        "tpl_rsi_reversion" => (
            pairs
                .map(|(i, j)| {
                    let (period, oversold, overbought) = (5 + i % 25, 10 + 5 * (i / 25), 55.0 + 0.4 * j as f64);
                    json!({"period": period, "oversold": oversold.to_string(), "overbought": overbought.to_string()})
                })
                .collect(),
            one,
        ),
        "tpl_grid" => (
            pairs
                .map(|(i, j)| {
                    json!({"grid_levels": 5 + i % 20, "lower_price": (50 + i / 20 + j).to_string(),
                                     "upper_price": (150 + j).to_string()})
                })
                .collect(),
            one,
        ),
        _ => (
            pairs
                .map(|(i, j)| json!({"lookback": 60 + 30 * i, "top_n": 1 + j % 2, "rebalance_every": 60 * (1 + j)}))
                .collect(),
            vec!["BTCUSDT", "ETHUSDT", "SOLUSDT"],
        ),
    }
}

fn configs(template: &str, size: usize) -> Vec<JobConfig> {
    let (params, symbols) = grid(template, size);
    let end = pipai_engine::time::iso(START + (YEAR_BARS as i64 - 1) * MINUTE);
    let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    params
        .iter()
        .map(|p| {
            let body = json!({"template_id": template, "params": p, "symbols": symbols, "timeframe": "1m",
                "start": "2024-01-01T00:00:00Z", "end": end, "capital": "10000", "fee_model": "fixed_bps"});
            JobConfig::from_value(&body, now).unwrap_or_else(|e| panic!("{template} {p}: {e}"))
        })
        .collect()
}

/// CPU seconds (user + system, all threads) of this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// One case in this process: prints one line.
fn case(template: &str, size: usize, repeat: usize) {
    let n_symbols = if template == "tpl_momentum_rotation" { 3 } else { 1 };
    let data: Vec<Bars> = (0..n_symbols).map(|s| walk(11 + s as u64, YEAR_BARS, 100.0 * (1 + s) as f64)).collect();
    let configs = configs(template, size);
    let mut seconds = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..repeat {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let out = evaluate(&configs, &data, &Validation::None);
        seconds.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c0);
        let failed = out.iter().filter(|e| e.is_err()).count();
        assert_eq!(failed, 0, "{template}: {failed} config(s) failed");
    }
    let runs = seconds.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>().join(" ");
    seconds.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let (median, median_cpu) = (seconds[seconds.len() / 2], cpu[cpu.len() / 2]);
    let evaluations = (configs.len() * YEAR_BARS) as f64;
    // Bar evaluations per CPU second: what one core does, whatever else the machine runs.
    println!(
        "{template:<22} {:>6} configs  {:>8.3} s  {:>9.0} configs/s  {:>9.3e} bar evals/s  \
         {:>9.3e} per CPU s  peak RSS {:>7.1} MB  (runs: {runs} s)",
        configs.len(),
        median,
        configs.len() as f64 / median,
        evaluations / median,
        evaluations / median_cpu.max(0.01),
        peak_rss_mb(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let threads: usize = arg("--threads").and_then(|t| t.parse().ok()).unwrap_or(0);
    let repeat: usize = arg("--repeat").and_then(|r| r.parse().ok()).unwrap_or(3);
    if threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().expect("the global pool, once");
    }
    if let Some(template) = arg("--case") {
        let size = arg("--size").and_then(|s| s.parse().ok()).unwrap_or(100);
        case(&template, size, repeat);
        return;
    }
    let sizes: Vec<usize> = arg("--sizes")
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1000, 10_000]);
    let templates: Vec<String> = arg("--templates")
        .map(|t| t.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| TEMPLATES.iter().map(|t| t.to_string()).collect());
    println!(
        "sweep: one year of 1m bars ({YEAR_BARS} bars), threads {}, median of {repeat}",
        if threads > 0 { threads.to_string() } else { format!("all ({})", rayon::current_num_threads()) }
    );
    let exe = std::env::current_exe().expect("this program's path");
    for template in &templates {
        for size in &sizes {
            let status = Command::new(&exe)
                .args(["--case", template, "--size", &size.to_string(), "--repeat", &repeat.to_string()])
                .args(["--threads", &threads.to_string()])
                .status()
                .expect("a case process");
            assert!(status.success(), "{template} {size}: {status}");
        }
    }
}
