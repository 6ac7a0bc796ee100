//! The report's own figures: monthly returns from the daily equity, and trade statistics by group.

use std::collections::BTreeMap;

use pipai_engine::result::Trade;
use pipai_engine::time::{civil_from_days, DAY_MS};
use rust_decimal::Decimal;

/// One calendar year of monthly returns.
#[derive(Debug, Clone, PartialEq)]
pub struct YearRow {
    pub year: i64,
    /// `months[m - 1]`: the month's return, `None` for months outside the run.
    pub months: [Option<f64>; 12],
    pub year_return: f64,
}

/// Monthly returns from end-of-day equity `(day at 00:00 UTC, equity)`: a month's return is its
/// last day's equity over the previous month's last (the starting `capital` for the first month),
/// minus 1, and 0 after the equity reached zero (as `docs/metrics.md` treats daily returns). A
/// year's return chains its months the same way.
pub fn monthly_returns(capital: f64, daily: &[(i64, f64)]) -> Vec<YearRow> {
    let mut month_ends: Vec<((i64, u32), f64)> = Vec::new();
    for &(t, e) in daily {
        let (y, m, _) = civil_from_days(t.div_euclid(DAY_MS));
        match month_ends.last_mut() {
            Some((key, last)) if *key == (y, m) => *last = e,
            _ => month_ends.push(((y, m), e)),
        }
    }
    let change = |from: f64, to: f64| if from == 0.0 { 0.0 } else { to / from - 1.0 };
    let mut rows: Vec<YearRow> = Vec::new();
    let (mut previous, mut year_start) = (capital, capital);
    for ((y, m), e) in month_ends {
        if rows.last().is_none_or(|r| r.year != y) {
            year_start = previous;
            rows.push(YearRow { year: y, months: [None; 12], year_return: 0.0 });
        }
        let row = rows.last_mut().expect("pushed above");
        row.months[m as usize - 1] = Some(change(previous, e));
        row.year_return = change(year_start, e);
        previous = e;
    }
    rows
}

/// Trades of one group (a side, an exit reason, a symbol).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub label: String,
    pub count: u64,
    /// Trades with `pnl > 0`.
    pub wins: u64,
    pub total_pnl: Decimal,
}

impl Group {
    /// `wins / count` as a percentage with one decimal.
    pub fn win_rate(&self) -> String {
        format!("{:.1}%", self.wins as f64 * 100.0 / self.count.max(1) as f64)
    }

    /// Mean pnl, 8 places (money), trailing zeros trimmed to at least 2.
    pub fn avg_pnl(&self) -> Decimal {
        let mut avg = (self.total_pnl / Decimal::from(self.count.max(1))).round_dp(8).normalize();
        if avg.scale() < 2 {
            avg.rescale(2);
        }
        avg
    }
}

/// `trades` grouped by `key`, groups in label order, then one `all` row.
pub fn breakdown<'t>(trades: &'t [Trade], key: impl Fn(&'t Trade) -> &'t str) -> Vec<Group> {
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    let mut all = Group { label: "all".into(), count: 0, wins: 0, total_pnl: Decimal::ZERO };
    for t in trades {
        let label = key(t);
        let g = groups.entry(label).or_insert_with(|| Group {
            label: label.to_string(),
            count: 0,
            wins: 0,
            total_pnl: Decimal::ZERO,
        });
        for g in [g, &mut all] {
            g.count += 1;
            g.wins += u64::from(t.pnl > Decimal::ZERO);
            g.total_pnl += t.pnl;
        }
    }
    let mut out: Vec<Group> = groups.into_values().collect();
    if !trades.is_empty() {
        out.push(all);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_engine::time::ymd_ms;

    #[test]
    fn months_chain_from_the_capital_and_years_chain_their_months() {
        let daily = [
            (ymd_ms(2024, 12, 30), 10_500.0),
            (ymd_ms(2024, 12, 31), 11_000.0), // Dec: 11000 / 10000 - 1
            (ymd_ms(2025, 1, 15), 9_000.0),
            (ymd_ms(2025, 1, 31), 9_900.0), // Jan: 9900 / 11000 - 1
            (ymd_ms(2025, 3, 1), 0.0),      // Mar: -100%
            (ymd_ms(2025, 4, 1), 0.0),      // Apr: 0 after bankruptcy
        ];
        let rows = monthly_returns(10_000.0, &daily);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].year, 2024);
        assert!((rows[0].months[11].unwrap() - 0.1).abs() < 1e-12);
        assert!((rows[0].year_return - 0.1).abs() < 1e-12);
        assert!((rows[1].months[0].unwrap() + 0.1).abs() < 1e-12);
        assert_eq!((rows[1].months[1], rows[1].months[2], rows[1].months[3]), (None, Some(-1.0), Some(0.0)));
        assert_eq!(rows[1].year_return, -1.0);
        assert!(monthly_returns(1.0, &[]).is_empty());
    }
}
