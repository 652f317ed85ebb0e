//! Wall-clock time for the lifecycle: Unix milliseconds (UTC) in the store, seconds in tokens.

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 (UTC, seconds precision) for a Unix-milliseconds time.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
