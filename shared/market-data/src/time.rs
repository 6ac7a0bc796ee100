//! UTC months, the partition unit of the store. Days, milliseconds and ISO 8601 text are
//! [`pipai_engine::time`]'s, the workspace's one time module.

use std::fmt;
use std::str::FromStr;

use pipai_engine::time::{civil_from_days, days_from_civil, DAY_MS};
// Callers outside this crate (the S3 adapter and its tests) name `ymd_ms` by this path.
pub use pipai_engine::time::ymd_ms;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
