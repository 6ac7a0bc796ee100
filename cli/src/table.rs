//! The metrics table `pipai run` and `pipai jobs` print.

use pipai_engine::{BacktestResult, JobConfig};
use rust_decimal::Decimal;
use std::fmt::Write;

fn dec(d: &Option<Decimal>) -> String {
    d.map(|v| v.to_string()).unwrap_or_else(|| "null".into())
}

/// A two-column table of the headline numbers, with a header line describing the run.
pub fn render(config: &JobConfig, r: &BacktestResult) -> String {
    let m = &r.metrics;
    let s = &r.structured_metrics;
    let rows: Vec<(&str, String)> = vec![
        ("final equity", r.summary.final_equity.to_string()),
        ("total_return", dec(&s.total_return)),
        ("cagr", dec(&m.cagr)),
        ("sharpe", dec(&m.sharpe)),
        ("sortino", dec(&m.sortino)),
        ("calmar", dec(&m.calmar)),
        ("max_drawdown", dec(&m.max_drawdown)),
        ("max_drawdown_duration (s)", s.risk.max_drawdown_duration.to_string()),
        ("volatility_annualised", dec(&s.risk.volatility_annualised)),
        ("var_95 / cvar_95", format!("{} / {}", dec(&s.risk.var_95), dec(&s.risk.cvar_95))),
        ("total_trades", m.total_trades.to_string()),
        ("win_rate", dec(&m.win_rate)),
        ("profit_factor", dec(&m.profit_factor)),
        ("expected_value", dec(&m.expected_value)),
        ("avg_win / avg_loss", format!("{} / {}", dec(&s.trading.avg_win), dec(&s.trading.avg_loss))),
        (
            "avg_trade_duration (s)",
            m.avg_trade_duration_seconds.map(|v| v.to_string()).unwrap_or_else(|| "null".into()),
        ),
        ("bars_in_market", format!("{} of {}", s.bars_in_market, r.summary.bars)),
        ("turnover_annualised", dec(&s.trading.turnover_annualised)),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} {} from {} to {} ({} bars)",
        config.template_id,
        config.symbols.join(","),
        config.timeframe,
        r.summary.first_bar_time,
        r.summary.last_bar_time,
        r.summary.bars
    );
    if let Some(reason) = r.summary.stopped_reason {
        let _ = writeln!(out, "trading stopped early: {reason}");
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v:>20}");
    }
    out
}
