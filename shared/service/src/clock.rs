//! The one clock: every "now" in the service, the adapters and the functions comes from here.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
