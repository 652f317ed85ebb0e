//! Rate limits: a sustained rate with a burst, as a client's record and the server's settings
//! hold them (README, Limits).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRateLimit")]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    per_second: u32,
    burst: Option<u32>,
}

impl RateLimit {
    /// The highest rate or burst a limit may name.
    pub const MAX: u32 = 1_000_000;

    /// `per_second` and `burst` from 1 to [`RateLimit::MAX`]; the burst defaults to twice the
    /// rate.
    pub fn new(per_second: u32, burst: Option<u32>) -> Result<RateLimit, String> {
        let burst = burst.unwrap_or(per_second.saturating_mul(2).min(RateLimit::MAX));
        if !(1..=RateLimit::MAX).contains(&per_second) || !(1..=RateLimit::MAX).contains(&burst) {
            return Err(format!(
                "a rate limit's per_second and burst are 1 to {}",
                RateLimit::MAX
            ));
        }
        Ok(RateLimit { per_second, burst })
    }

    /// `N` or `N/BURST`, as settings write it.
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a number (write N or N/BURST)"))
        };
        match text.split_once('/') {
            Some((rate, burst)) => RateLimit::new(number(rate)?, Some(number(burst)?)),
            None => RateLimit::new(number(text)?, None),
        }
    }
}

impl TryFrom<RawRateLimit> for RateLimit {
    type Error = String;

    fn try_from(raw: RawRateLimit) -> Result<RateLimit, String> {
        RateLimit::new(raw.per_second, raw.burst)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.per_second, self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded_and_default_their_burst() {
        assert_eq!(
            RateLimit::parse("100").unwrap(),
            RateLimit {
                per_second: 100,
                burst: 200
            }
        );
        assert_eq!(RateLimit::parse("5/7").unwrap().to_string(), "5/7");
        for bad in ["0", "1/0", "x", "1000001", "-1", "1/2/3"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
        let json: Result<RateLimit, _> = serde_json::from_str(r#"{"per_second": 0}"#);
        assert!(json.is_err());
    }
}
