//! The metrics table `pipai run` and `pipai jobs` print, from the result JSON (the same shape
//! offline and from the API).

use serde_json::Value;
use std::fmt::Write;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `config` is the job config object, `result` the seed's `result` (with `structured_metrics`
/// and `summary`).
pub fn render(config: &Value, result: &Value) -> String {
    let m = &result["metrics"];
    let s = &result["structured_metrics"];
    let sum = &result["summary"];
    let pair = |a: &Value, b: &Value| format!("{} / {}", text(a), text(b));
    let rows: Vec<(&str, String)> = vec![
        ("final equity", text(&sum["final_equity"])),
        ("total_return", text(&s["total_return"])),
        ("cagr", text(&m["cagr"])),
        ("sharpe", text(&m["sharpe"])),
        ("sortino", text(&m["sortino"])),
        ("calmar", text(&m["calmar"])),
        ("max_drawdown", text(&m["max_drawdown"])),
        ("max_drawdown_duration (s)", text(&s["risk"]["max_drawdown_duration"])),
        ("volatility_annualised", text(&s["risk"]["volatility_annualised"])),
        ("var_95 / cvar_95", pair(&s["risk"]["var_95"], &s["risk"]["cvar_95"])),
        ("total_trades", text(&m["total_trades"])),
        ("win_rate", text(&m["win_rate"])),
        ("profit_factor", text(&m["profit_factor"])),
        ("expected_value", text(&m["expected_value"])),
        ("avg_win / avg_loss", pair(&s["trading"]["avg_win"], &s["trading"]["avg_loss"])),
        ("avg_trade_duration (s)", text(&m["avg_trade_duration_seconds"])),
        ("bars_in_market", format!("{} of {}", text(&s["bars_in_market"]), text(&sum["bars"]))),
        ("turnover_annualised", text(&s["trading"]["turnover_annualised"])),
    ];
    let mut out = String::new();
    let symbols: Vec<String> = config["symbols"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {} {} from {} to {} ({} bars)",
        text(&config["template_id"]),
        symbols.join(","),
        text(&config["timeframe"]),
        text(&sum["first_bar_time"]),
        text(&sum["last_bar_time"]),
        text(&sum["bars"])
    );
    if let Some(reason) = sum["stopped_reason"].as_str() {
        let _ = writeln!(out, "trading stopped early: {reason}");
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v:>20}");
    }
    out
}
