//! UTC time, the one home of it for the workspace: the API speaks ISO 8601 with `Z`, the engine
//! and the market-data store UTC milliseconds.
//!
//! Calendar arithmetic uses Howard Hinnant's days-from-civil algorithm on integers: exact, no time
//! zone database, no allocation.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds in one UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// `ms` as the contract's time text: `2025-01-01T00:00:00Z`, with `.sss` only when the
/// milliseconds are not zero. Outside chrono's range (years beyond ±262,000) it says so instead.
pub fn iso(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => format!("invalid time {ms} ms"),
    }
}

/// Parses the contract's time text, `YYYY-MM-DDTHH:MM:SS[.f]Z` with 1 to 3 fraction digits, into
/// UTC milliseconds. Strict: upper-case `T` and `Z`, no offset, no spaces, a real calendar date,
/// hours 00-23, minutes and seconds 00-59 (no leap second). Anything else is `None`: a time the
/// server would silently normalize is one the client did not mean.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    // YYYY-MM-DDTHH:MM:SS is 19 bytes; then `Z`, or `.`, 1-3 digits and `Z`.
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let shape = |i: usize, sep: u8| b[i] == sep;
    if !(shape(4, b'-') && shape(7, b'-') && shape(10, b'T') && shape(13, b':') && shape(16, b':')) {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        let field = &b[from..to];
        field.iter().all(u8::is_ascii_digit).then(|| field.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let millis = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=3).contains(&fraction.len()) => {
            digits(20, b.len() - 1)? * 10u32.pow(3 - fraction.len() as u32)
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=days_in_month(year as i64, month)).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds = i64::from(hour * 3600 + minute * 60 + second);
    Some(days_from_civil(year as i64, month, day) * DAY_MS + seconds * 1000 + i64::from(millis))
}

/// [`parse_iso_ms`] as a chrono time (what [`crate::JobConfig`] and the list filters hold).
pub fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    parse_iso_ms(s).and_then(DateTime::from_timestamp_millis)
}

/// Start of the UTC day containing `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Days in month `m` (1..=12) of the proleptic Gregorian year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
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

/// UTC milliseconds of `YYYY-MM-DDT00:00:00Z`, for constants and tests. Panics on a month
/// outside 1..=12 or a day outside 1..=31; a day past the month's end runs into the next month.
pub fn ymd_ms(y: i32, m: u32, d: u32) -> i64 {
    assert!((1..=12).contains(&m) && (1..=31).contains(&d), "invalid date {y}-{m}-{d}");
    days_from_civil(y as i64, m, d) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN1: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z

    #[test]
    fn iso_round_trip() {
        assert_eq!(iso(JAN1), "2025-01-01T00:00:00Z");
        assert_eq!(iso(JAN1 + 123), "2025-01-01T00:00:00.123Z");
        assert_eq!(iso(JAN1 + 1500), "2025-01-01T00:00:01.500Z");
        for ms in [JAN1, JAN1 + 123, JAN1 + 1500, 0, -1, ymd_ms(2024, 2, 29) + DAY_MS - 1] {
            assert_eq!(parse_iso_ms(&iso(ms)), Some(ms), "{}", iso(ms));
        }
        assert_eq!(parse_iso("2025-01-01T00:00:00Z").unwrap().timestamp_millis(), JAN1);
        assert_eq!(day_start(JAN1 + 5), JAN1);
        assert_eq!(day_start(-1), -DAY_MS);
    }

    #[test]
    fn the_contract_shape_is_accepted() {
        let cases = [
            ("2025-01-01T00:00:00Z", JAN1),
            ("2025-01-01T00:00:00.5Z", JAN1 + 500),
            ("2025-01-01T00:00:00.05Z", JAN1 + 50),
            ("2025-01-01T00:00:00.250Z", JAN1 + 250),
            ("2025-01-01T00:00:00.000Z", JAN1),
            ("2024-12-31T23:59:59.999Z", JAN1 - 1),
            ("2024-02-29T12:00:00Z", ymd_ms(2024, 2, 29) + DAY_MS / 2),
            ("2000-02-29T00:00:00Z", ymd_ms(2000, 2, 29)),
            ("1970-01-01T00:00:00Z", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_iso_ms(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        let refused = [
            ("2025-01-01t00:00:00Z", "lower-case t"),
            ("2025-01-01T00:00:00z", "lower-case z"),
            ("2025-01-01 00:00:00Z", "a space for T"),
            ("2025-01-01T01:00:00+01:00", "an offset"),
            ("2025-01-01T00:00:00+00:00", "a zero offset"),
            ("2025-01-01T00:00:00-00:00", "a negative zero offset"),
            ("2025-01-01T00:00:00", "no zone"),
            ("2025-01-01T00:00:00.1234Z", "four fraction digits"),
            ("2025-01-01T00:00:00.123456789Z", "nine fraction digits"),
            ("2025-01-01T00:00:00.Z", "a dot without digits"),
            ("2025-01-01T00:00:00,5Z", "a comma fraction"),
            ("2016-12-31T23:59:60Z", "a leap second"),
            ("2025-01-01T24:00:00Z", "hour 24"),
            ("2025-01-01T00:60:00Z", "minute 60"),
            ("2025-02-29T00:00:00Z", "29 February of a common year"),
            ("1900-02-29T00:00:00Z", "29 February of a century year"),
            ("2025-04-31T00:00:00Z", "31 April"),
            ("2025-13-01T00:00:00Z", "month 13"),
            ("2025-00-01T00:00:00Z", "month 0"),
            ("2025-01-00T00:00:00Z", "day 0"),
            ("2025-01-01", "a date alone"),
            ("2025-1-01T00:00:00Z", "a one-digit month"),
            ("+2025-01-01T00:00:00Z", "a signed year"),
            ("20250101T000000Z", "the basic format"),
            ("2025-01-01T00:00Z", "no seconds"),
            (" 2025-01-01T00:00:00Z", "a leading space"),
            ("2025-01-01T00:00:00Z ", "a trailing space"),
            ("2025-01-01T00:00:00ZZ", "two Zs"),
            ("2025-01-01T0a:00:00Z", "a letter in the hour"),
            ("2025-01-01T00:00:00.-1Z", "a sign in the fraction"),
            ("2025-01-01T00:00:00.１Z", "a non-ASCII digit"),
            ("", "nothing"),
            ("yesterday", "words"),
        ];
        for (text, what) in refused {
            assert_eq!(parse_iso_ms(text), None, "{what}: {text:?}");
            assert_eq!(parse_iso(text), None, "{what}: {text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_refused_and_written_times_read_back(
            text in "[0-9TZtz:. +-]{0,30}",
            ms in -62_135_596_800_000i64..253_402_300_800_000,
        ) {
            let _ = parse_iso_ms(&text);
            proptest::prop_assert_eq!(parse_iso_ms(&iso(ms)), Some(ms));
        }
    }

    #[test]
    fn civil_round_trips_over_centuries() {
        for z in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!(d <= days_in_month(y, m));
        }
        assert_eq!(ymd_ms(2024, 1, 1), 1_704_067_200_000);
        assert_eq!(ymd_ms(2025, 1, 1), JAN1);
        assert_eq!(ymd_ms(1970, 1, 1), 0);
    }
}
