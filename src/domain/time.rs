//! Moments, as the store keeps them: Unix milliseconds (UTC). A type of their own, so that a
//! time cannot be mixed up with a duration, a count or the seconds of a JWT claim.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A moment in Unix milliseconds (UTC). Arithmetic saturates: no sum of bounded durations can
/// wrap around into the past.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(i64);

impl UnixMillis {
    pub const fn from_millis(ms: i64) -> UnixMillis {
        UnixMillis(ms)
    }

    /// The start of second `seconds` (a JWT time claim).
    pub const fn from_secs(seconds: i64) -> UnixMillis {
        UnixMillis(seconds.saturating_mul(1000))
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds, as JWT time claims count them.
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// `ms` milliseconds later (earlier if negative).
    #[must_use]
    pub const fn plus_ms(self, ms: i64) -> UnixMillis {
        UnixMillis(self.0.saturating_add(ms))
    }

    /// `ms` milliseconds earlier.
    #[must_use]
    pub const fn minus_ms(self, ms: i64) -> UnixMillis {
        UnixMillis(self.0.saturating_sub(ms))
    }

    /// Milliseconds from `earlier` to this moment (negative if `earlier` is later).
    pub const fn ms_since(self, earlier: UnixMillis) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_and_saturate() {
        let t = UnixMillis::from_millis(1_500);
        assert_eq!(t.as_secs(), 1);
        assert_eq!(UnixMillis::from_millis(-1).as_secs(), -1);
        assert_eq!(UnixMillis::from_secs(2).ms_since(t), 500);
        assert_eq!(
            UnixMillis::from_millis(i64::MAX).plus_ms(1).as_millis(),
            i64::MAX
        );
        assert_eq!(t.minus_ms(1_500), UnixMillis::default());
    }
}
