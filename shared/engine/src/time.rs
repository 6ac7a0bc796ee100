//! UTC time helpers: the API speaks ISO 8601 with `Z`, the engine UTC milliseconds.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

pub const DAY_MS: i64 = 86_400_000;

/// `2025-01-01T00:00:00Z` (milliseconds shown only when not zero).
pub fn iso(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => format!("invalid time {ms}"),
    }
}

/// Parses an RFC 3339 / ISO 8601 time with an explicit offset (`Z` or `+hh:mm`) into UTC.
pub fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Start of the UTC day containing `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        assert_eq!(iso(1_735_689_600_000), "2025-01-01T00:00:00Z");
        assert_eq!(iso(1_735_689_600_123), "2025-01-01T00:00:00.123Z");
        assert_eq!(parse_iso("2025-01-01T01:00:00+01:00").unwrap().timestamp_millis(), 1_735_689_600_000);
        assert!(parse_iso("2025-01-01").is_none());
        assert_eq!(day_start(1_735_689_600_000 + 5), 1_735_689_600_000);
        assert_eq!(day_start(-1), -DAY_MS);
    }
}
