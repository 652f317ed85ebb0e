//! Wall-clock time for the lifecycle: Unix milliseconds (UTC) in the store, seconds in tokens.

use crate::domain::UnixMillis;

pub fn now_ms() -> UnixMillis {
    UnixMillis::from_millis(chrono::Utc::now().timestamp_millis())
}

/// RFC 3339 (UTC, seconds precision) for a moment.
pub fn rfc3339(at: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(at.as_millis())
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
