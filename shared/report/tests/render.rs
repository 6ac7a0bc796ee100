//! `render` on real runs of the engine over synthetic bars.

use chrono::{TimeZone, Utc};
use pipai_engine::metric_catalog::METRICS;
use pipai_engine::result::{money, EquityPoint};
use pipai_engine::time::{iso, ymd_ms};
use pipai_engine::{run, Backtest, Bars, JobConfig, NoObserver};
use pipai_market_data::generate_1m;
use pipai_report::{render, BarEquity, BenchmarkView, ReportInput, MAX_REPORT_BYTES, MAX_TRADE_ROWS, PLOT_COLUMNS};
use serde_json::{json, Value};

const START: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const MINUTE: i64 = 60_000;

fn config(template: &str, params: Value, symbols: &[&str], minutes: i64, extra: Value) -> JobConfig {
    let mut body = json!({"template_id": template, "params": params, "symbols": symbols, "timeframe": "1m",
        "start": iso(START), "end": iso(START + (minutes - 1) * MINUTE), "capital": "10000"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    JobConfig::from_value(&body, Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()).unwrap()
}

fn bars(seed: u64, price: f64, minutes: i64) -> Bars {
    generate_1m(seed, price, START, START + minutes * MINUTE)
}

fn input<'a>(config: &'a JobConfig, backtest: &'a Backtest, data: &'a [Bars]) -> ReportInput<'a> {
    ReportInput {
        config,
        result: &backtest.result,
        bar_equity: Some(BarEquity {
            open_times: backtest.bar_open_times(data).unwrap(),
            equity: &backtest.bar_equity,
        }),
        benchmark: None,
        provenance: Vec::new(),
    }
}

/// Every element this crate opens is closed (a cheap well-formedness check).
fn assert_balanced(html: &str) {
    for tag in ["html", "main", "section", "table", "figure", "svg", "div", "tr", "p"] {
        let opened = html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        assert_eq!(opened, html.matches(&format!("</{tag}>")).count(), "<{tag}>");
    }
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
}

fn ma_cross(minutes: i64, extra: Value) -> (JobConfig, Vec<Bars>, Backtest) {
    let cfg = config("tpl_ma_cross", json!({"fast": 5, "slow": 60, "direction": "both"}), &["BTCUSDT"], minutes, extra);
    let data = vec![bars(7, 42_000.0, minutes)];
    let backtest = run(&cfg, &data, &mut NoObserver).unwrap();
    (cfg, data, backtest)
}

#[test]
fn user_text_is_escaped_everywhere() {
    let nasty = r#"<script>alert("x")</script> & 'quoted'"#;
    let (cfg, data, backtest) = ma_cross(3 * 1440, json!({"strategy_id": nasty}));
    let mut report = input(&cfg, &backtest, &data);
    report.provenance = vec![(nasty.to_string(), nasty.to_string())];
    let curve = backtest.result.equity_curve.clone();
    report.benchmark = Some(BenchmarkView { equity_curve: &curve, metrics: vec![(nasty.into(), nasty.into())] });
    let html = render(&report);
    assert!(!html.contains(nasty) && !html.contains("<script"));
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;";
    // The config, provenance label and value, and benchmark row.
    assert_eq!(html.matches(escaped).count(), 5, "{html}");
    assert_balanced(&html);
}

#[test]
fn a_run_with_trades_shows_every_section_and_its_breakdowns() {
    let (cfg, data, backtest) = ma_cross(3 * 1440, json!({}));
    let trades = &backtest.result.trades;
    assert!(trades.len() > 10 && trades.len() < MAX_TRADE_ROWS);
    let html = render(&input(&cfg, &backtest, &data));
    assert_balanced(&html);
    for id in ["equity", "drawdown", "monthly", "metrics", "trade-stats", "trades", "config"] {
        assert!(html.contains(&format!("<section id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("<table class=\"by-side\">") && html.contains("<table class=\"by-exit\">"));
    assert!(!html.contains("by-symbol"), "single symbol: no breakdown by symbol");
    // Every trade is listed, no truncation note.
    let trade_rows = html.split("<table class=\"trades\">").nth(1).unwrap().split("</table>").next().unwrap();
    assert_eq!(trade_rows.matches("<tr>").count(), trades.len() + 1);
    assert!(!html.contains("Showing the first"));
    // The first trade's pnl, as the result has it; the monthly table has January 2025.
    assert!(trade_rows.contains(&trades[0].pnl.to_string()));
    assert!(html.contains("<th scope=\"row\">2025</th>"));
    // Every metric of the engine's catalog, once, with its reading.
    for (name, _) in METRICS {
        assert_eq!(html.matches(&format!("<tr><td>{name}</td>")).count(), 1, "{name}");
    }
    let duration = backtest.result.metrics.avg_trade_duration_seconds.unwrap();
    let reading = format!("<td>avg_trade_duration_seconds</td><td>{duration}</td><td>");
    let after = html.split(&reading).nth(1).expect("the duration row");
    assert!(
        after.starts_with(char::is_numeric) && after.split('<').next().unwrap().ends_with(['m', 's']),
        "{after:.40}"
    );
    // No benchmark given: no benchmark line or table; no provenance: said so.
    assert!(!html.contains("line bench") && !html.contains("Buy and hold"));
    assert!(html.contains("<p>Not recorded.</p>"));
    // The same input renders the same page.
    assert_eq!(html, render(&input(&cfg, &backtest, &data)));
}

#[test]
fn a_run_without_trades_and_an_empty_trade_list() {
    // The slow average needs more bars than the window has: no signal, no trade.
    let cfg = config("tpl_ma_cross", json!({"fast": 5, "slow": 500}), &["BTCUSDT"], 300, json!({}));
    let data = vec![bars(3, 2_300.0, 300)];
    let backtest = run(&cfg, &data, &mut NoObserver).unwrap();
    assert!(backtest.result.trades.is_empty());
    let html = render(&input(&cfg, &backtest, &data));
    assert_balanced(&html);
    assert_eq!(html.matches("<p>No trades.</p>").count(), 2);
    assert!(html.contains("<td>win_rate</td><td>n/a</td>"));
    assert!(html.contains("path class=\"line strategy\""), "a flat equity line is still drawn");

    // A result whose trade list is empty but whose metrics count trades (a paged result, say).
    let (cfg, data, mut backtest) = ma_cross(2 * 1440, json!({}));
    backtest.result.trades.clear();
    let html = render(&input(&cfg, &backtest, &data));
    assert_balanced(&html);
    assert_eq!(html.matches("<p>No trades.</p>").count(), 2);
}

#[test]
fn multi_symbol_runs_break_trades_down_by_symbol() {
    let minutes = 4 * 1440;
    let params = json!({"lookback": 60, "top_n": 1, "rebalance_every": 120});
    let cfg = config("tpl_momentum_rotation", params, &["BTCUSDT", "ETHUSDT"], minutes, json!({}));
    let data = vec![bars(11, 42_000.0, minutes), bars(12, 2_300.0, minutes)];
    let backtest = run(&cfg, &data, &mut NoObserver).unwrap();
    let html = render(&input(&cfg, &backtest, &data));
    assert_balanced(&html);
    assert!(html.contains("<table class=\"by-symbol\">"));
    let by_symbol = html.split("<table class=\"by-symbol\">").nth(1).unwrap().split("</table>").next().unwrap();
    assert!(by_symbol.contains("<td>BTCUSDT</td>") && by_symbol.contains("<td>ETHUSDT</td>"));
    assert!(html.contains("tpl_momentum_rotation on BTCUSDT, ETHUSDT (1m)"));
}

#[test]
fn a_benchmark_adds_its_line_metrics_and_card() {
    let (cfg, data, backtest) = ma_cross(3 * 1440, json!({}));
    let bench: Vec<EquityPoint> = backtest
        .result
        .equity_curve
        .iter()
        .enumerate()
        .map(|(i, p)| EquityPoint { time_ms: p.time_ms, equity: money(10_000.0 + 100.0 * i as f64) })
        .collect();
    let mut report = input(&cfg, &backtest, &data);
    report.benchmark = Some(BenchmarkView {
        equity_curve: &bench,
        metrics: vec![("total_return".into(), "0.02".into()), ("sharpe".into(), "1.5".into())],
    });
    let html = render(&report);
    assert_balanced(&html);
    assert_eq!(html.matches("<path class=\"line bench\"").count(), 1);
    assert!(html.contains("<td>total_return</td><td>0.02</td><td>2.00%</td>"));
    assert!(html.contains("<b class=\"v\">2.00%</b><span>Buy and hold return</span>"));
}

#[test]
fn daily_curve_is_the_fallback_and_mismatched_bar_equity_is_ignored() {
    let (cfg, data, backtest) = ma_cross(2 * 1440, json!({}));
    let mut report = input(&cfg, &backtest, &data);
    report.bar_equity = None;
    let daily = render(&report);
    assert!(daily.contains("daily equity at each day's last close"));
    let short = &backtest.bar_equity[..10];
    report.bar_equity = Some(BarEquity { open_times: backtest.bar_open_times(&data).unwrap(), equity: short });
    assert_eq!(render(&report), daily);
    assert!(render(&input(&cfg, &backtest, &data)).contains("per-bar equity at each bar's close"));
}

#[test]
fn a_million_bars_and_100k_trades_stay_small() {
    let (cfg, data, mut backtest) = ma_cross(2 * 1440, json!({}));
    let n: usize = 1_000_000;
    let open_times: Vec<i64> = (0..n).map(|i| ymd_ms(2024, 1, 1) + i as i64 * MINUTE).collect();
    let equity: Vec<f64> = (0..n)
        .map(|i| 10_000.0 * (1.0 + 0.3 * (i as f64 / 40_000.0).sin() + 0.01 * ((i * 7919) % 13) as f64))
        .collect();
    let trades = backtest.result.trades.clone();
    backtest.result.trades = trades.iter().cycle().take(100_000).cloned().collect();
    let report = ReportInput {
        config: &cfg,
        result: &backtest.result,
        bar_equity: Some(BarEquity { open_times: &open_times, equity: &equity }),
        benchmark: None,
        provenance: vec![("bars".into(), data[0].len().to_string())],
    };
    let html = render(&report);
    assert!(html.len() < MAX_REPORT_BYTES, "{} bytes", html.len());
    assert_balanced(&html);
    assert!(html.contains(&format!("Showing the first {MAX_TRADE_ROWS} of 100000 trades")));
    let trade_rows = html.split("<table class=\"trades\">").nth(1).unwrap().split("</table>").next().unwrap();
    assert_eq!(trade_rows.matches("<tr>").count(), MAX_TRADE_ROWS + 1);
    // Each path holds at most two points per pixel column, plus its ends.
    for path in html.split("<path class=\"line ").skip(1) {
        let d = path.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        let points = d.split([' ', 'L']).filter(|s| !s.is_empty()).count() / 2;
        assert!(points <= 2 * PLOT_COLUMNS + 2, "{points}");
        assert!(points > PLOT_COLUMNS, "{points}: the whole width is drawn");
    }
    assert!(html.contains("1000000 points of per-bar equity"));
}
