//! UTC calendar helpers: months (the partition unit of the store) and ISO 8601 text.
//!
//! Month arithmetic uses Howard Hinnant's days-from-civil algorithm on integers: exact, no time
//! zone database, no allocation.

use std::fmt;
use std::str::FromStr;

/// Milliseconds in one UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// A UTC calendar month, the unit of one Parquet partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// `month` is 1..=12; `year` 1..=9999 so that the text form is always `YYYY-MM`.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    pub fn year(self) -> i32 {
        self.year
    }

    /// 1..=12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The month containing the UTC instant `ms`.
    pub fn of_ms(ms: i64) -> Month {
        let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
        Month { year: y as i32, month: m }
    }

    /// UTC milliseconds of the month's first instant (day 1, 00:00:00Z).
    pub fn start_ms(self) -> i64 {
        days_from_civil(self.year as i64, self.month, 1) * DAY_MS
    }

    /// UTC milliseconds of the next month's first instant (exclusive end of this month).
    pub fn end_ms(self) -> i64 {
        self.next().start_ms()
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    /// The months that contain any instant of the inclusive window `[start_ms, end_ms]`, in order
    /// (empty when `end_ms < start_ms`).
    pub fn range(start_ms: i64, end_ms: i64) -> Vec<Month> {
        let mut out = Vec::new();
        if end_ms < start_ms {
            return out;
        }
        let last = Month::of_ms(end_ms);
        let mut m = Month::of_ms(start_ms);
        while m <= last {
            out.push(m);
            m = m.next();
        }
        out
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = String;
    /// Parses `YYYY-MM`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("invalid month {s:?}: expected YYYY-MM");
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' || !b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit) {
            return Err(err());
        }
        let year: i32 = s[..4].parse().map_err(|_| err())?;
        let month: u32 = s[5..].parse().map_err(|_| err())?;
        Month::new(year, month).ok_or_else(err)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`m` 1..=12, `d` 1..=31).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `(year, month, day)` of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// UTC milliseconds of `YYYY-MM-DDT00:00:00Z`. Panics on an invalid month or day (for constants
/// and tests).
pub fn ymd_ms(y: i32, m: u32, d: u32) -> i64 {
    assert!((1..=12).contains(&m) && (1..=31).contains(&d), "invalid date {y}-{m}-{d}");
    days_from_civil(y as i64, m, d) * DAY_MS
}

/// `ms` as ISO 8601 UTC: `2025-01-01T00:00:00Z`, with `.sss` only when the milliseconds are not
/// zero. Outside chrono's range it falls back to `<ms> ms`.
pub fn format_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => format!("{ms} ms"),
    }
}

/// Parses ISO 8601 / RFC 3339 with an explicit offset (`2025-01-01T00:00:00Z`,
/// `2025-01-01T02:00:00+02:00`, fractional seconds allowed) into UTC milliseconds. A time without
/// an offset is refused: it would be ambiguous.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_over_centuries() {
        for z in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(ymd_ms(2024, 1, 1), 1_704_067_200_000);
        assert_eq!(ymd_ms(2025, 1, 1), 1_735_689_600_000);
        assert_eq!(ymd_ms(1970, 1, 1), 0);
    }

    #[test]
    fn months() {
        let jan = Month::of_ms(ymd_ms(2025, 1, 31) + DAY_MS - 1);
        assert_eq!(jan.to_string(), "2025-01");
        assert_eq!(jan.start_ms(), ymd_ms(2025, 1, 1));
        assert_eq!(jan.end_ms(), ymd_ms(2025, 2, 1));
        assert_eq!(Month::of_ms(ymd_ms(2025, 2, 1)).to_string(), "2025-02");
        let feb24: Month = "2024-02".parse().unwrap();
        assert_eq!((feb24.end_ms() - feb24.start_ms()) / DAY_MS, 29);
        assert_eq!(Month::new(2024, 12).unwrap().next().to_string(), "2025-01");
        assert!("2024-13".parse::<Month>().is_err());
        assert!("2024-1".parse::<Month>().is_err());
        assert!("+024-01".parse::<Month>().is_err());
        let r = Month::range(ymd_ms(2024, 11, 15), ymd_ms(2025, 2, 1));
        let names: Vec<String> = r.iter().map(|m| m.to_string()).collect();
        assert_eq!(names, ["2024-11", "2024-12", "2025-01", "2025-02"]);
        assert!(Month::range(10, 5).is_empty());
    }

    #[test]
    fn iso() {
        assert_eq!(format_ms(ymd_ms(2025, 1, 1)), "2025-01-01T00:00:00Z");
        assert_eq!(format_ms(ymd_ms(2025, 1, 1) + 1500), "2025-01-01T00:00:01.500Z");
        assert_eq!(parse_iso_ms("2025-01-01T00:00:00Z"), Some(ymd_ms(2025, 1, 1)));
        assert_eq!(parse_iso_ms("2025-01-01T02:00:00+02:00"), Some(ymd_ms(2025, 1, 1)));
        assert_eq!(parse_iso_ms("2025-01-01T00:00:00.250Z"), Some(ymd_ms(2025, 1, 1) + 250));
        assert_eq!(parse_iso_ms("2025-01-01T00:00:00"), None);
        assert_eq!(parse_iso_ms("yesterday"), None);
    }
}
