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

/// The leaderboard table `pipai sweep` prints: the first `n` entries, one row each: rank, the
/// value of each varied key (`params.fast`, `fee_bps`), the rank metric, then sharpe,
/// total_return, max_drawdown and total_trades.
pub fn leaderboard(
    keys: &[String],
    rank_metric: &str,
    entries: &[pipai_engine::sweep::LeaderboardEntry],
    n: usize,
) -> String {
    let mut metrics: Vec<&str> = vec![rank_metric];
    for m in ["sharpe", "total_return", "max_drawdown", "total_trades"] {
        if m != rank_metric {
            metrics.push(m);
        }
    }
    let mut header: Vec<String> = vec!["rank".into()];
    header.extend(keys.iter().cloned());
    header.extend(metrics.iter().map(|m| m.to_string()));
    let mut rows = vec![header];
    for e in entries.iter().take(n) {
        let config = serde_json::to_value(&e.config).expect("configs serialize");
        let mut row = vec![e.rank.to_string()];
        for key in keys {
            let v = match key.strip_prefix("params.") {
                Some(param) => &config["params"][param],
                None => &config[key.as_str()],
            };
            row.push(text(v));
        }
        for m in &metrics {
            let v = pipai_engine::metric_catalog::value(m, &e.metrics, &e.structured_metrics);
            row.push(v.map_or_else(|| "null".into(), |d| d.to_string()));
        }
        rows.push(row);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:>w$}")).collect();
        let _ = writeln!(out, "  {}", cells.join("  "));
    }
    if entries.is_empty() {
        let _ = writeln!(out, "  (no config passed the constraints)");
    }
    out
}

/// `pipai jobs compare`'s table, from the compare answer: one row per metric (the catalog's
/// order), one column per job (request order), the best of a row marked `*`, and which way is
/// better.
pub fn comparison(answer: &Value) -> String {
    let runs: Vec<&Value> = answer["runs"].as_array().map(|r| r.iter().collect()).unwrap_or_default();
    let ids: Vec<String> = runs.iter().map(|r| text(&r["id"])).collect();
    let diff = &answer["metric_diff"];
    let mut names: Vec<&str> = pipai_engine::metric_catalog::METRICS.iter().map(|(n, _)| *n).collect();
    if let Some(all) = diff.as_object() {
        names.retain(|n| all.contains_key(*n));
        names.extend(all.keys().map(String::as_str).filter(|k| !names.contains(k)).collect::<Vec<_>>());
    }
    let mut rows: Vec<Vec<String>> = vec![];
    let mut header = vec!["metric".to_string()];
    header.extend(ids.iter().cloned());
    header.push("better".into());
    rows.push(header);
    let mut status = vec!["status".to_string()];
    status.extend(runs.iter().map(|r| text(&r["status"])));
    status.push(String::new());
    rows.push(status);
    for name in names {
        let entry = &diff[name];
        let mut row = vec![name.to_string()];
        for id in &ids {
            let value = &entry["values"][id.as_str()];
            let shown = if value.is_null() { "-".to_string() } else { text(value) };
            let best = entry["best_id"].as_str() == Some(id.as_str());
            row.push(if best { format!("{shown} *") } else { format!("{shown}  ") });
        }
        row.push(match entry["higher_is_better"].as_bool() {
            Some(true) => "higher".into(),
            Some(false) => "lower".into(),
            None => String::new(),
        });
        rows.push(row);
    }
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            if c == 0 || c + 1 == columns {
                let _ = write!(line, "{cell:<w$}  ");
            } else {
                let _ = write!(line, "{cell:>w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out.push_str("* best of the row (a null is never best; ties go to the earlier job)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparisons_mark_the_best_of_each_row() {
        let answer = json!({
            "runs": [{"id": "bt_000001", "status": "done"}, {"id": "bt_000002", "status": "failed"}],
            "metric_diff": {
                "sharpe": {"values": {"bt_000001": "1.2", "bt_000002": null}, "best_id": "bt_000001", "higher_is_better": true},
                "total_trades": {"values": {"bt_000001": "7", "bt_000002": null}, "best_id": null, "higher_is_better": null}
            }
        });
        let table = comparison(&answer);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("metric") && lines[0].contains("bt_000001") && lines[0].ends_with("better"));
        assert!(lines[1].contains("done") && lines[1].contains("failed"));
        assert!(
            lines[2].starts_with("sharpe") && lines[2].contains("1.2 *") && lines[2].ends_with("higher"),
            "{table}"
        );
        assert!(lines[3].starts_with("total_trades") && !lines[3].contains('*'), "{table}");
        assert_eq!(lines.len(), 5);
    }
}
