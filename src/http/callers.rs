//! Who is calling, and how fast they may: the source address of a request, and the rate limits
//! (README, Limits). Requests that present no valid client token are limited per source
//! address; sign requests are limited per client. Each replica limits on its own: with N
//! replicas behind a balancer, a caller gets up to N times the rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use super::ApiError;
use crate::auth::Principal;
use crate::config::HttpSettings;
use crate::domain::{ErrorCode, RateLimit};

/// The source of requests whose address cannot be told (no peer address, or a trusted header
/// that is missing or not an address).
const UNKNOWN_SOURCE: &str = "unknown";

pub struct Callers {
    settings: HttpSettings,
    anonymous: DefaultKeyedRateLimiter<String>,
    clients: RwLock<HashMap<String, (RateLimit, Arc<DefaultDirectRateLimiter>)>>,
}

fn quota(limit: RateLimit) -> Quota {
    let rate = NonZeroU32::new(limit.per_second).expect("a rate limit is at least 1");
    let burst = NonZeroU32::new(limit.burst).expect("a burst is at least 1");
    Quota::per_second(rate).allow_burst(burst)
}

/// The answer to a request over its limit: 429 with `Retry-After`.
fn rate_limited(wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        ErrorCode::RateLimited,
        "too many requests; retry after the time in Retry-After",
    )
    .retry_after(seconds.max(1))
}

impl Callers {
    pub fn new(settings: HttpSettings) -> Callers {
        Callers {
            anonymous: DefaultKeyedRateLimiter::keyed(quota(settings.anonymous_rate_limit)),
            clients: RwLock::new(HashMap::new()),
            settings,
        }
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// The caller's address: from the trusted proxy header when one is configured (its last
    /// entry, the one the proxy added), else the peer's. IPv6 addresses count by their /64.
    pub fn source(&self, req: &HttpRequest) -> String {
        let address = match &self.settings.trusted_proxy_header {
            Some(header) => req
                .headers()
                .get(header)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.rsplit(',').next())
                .and_then(|last| last.trim().parse::<IpAddr>().ok()),
            None => req.peer_addr().map(|peer| peer.ip()),
        };
        match address {
            Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                format!("{}/64", std::net::Ipv6Addr::from(segments))
            }
            Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped().expect("checked").to_string(),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            None => UNKNOWN_SOURCE.to_owned(),
        }
    }

    /// Takes one request from `source`'s allowance for callers without a valid token.
    pub fn admit_anonymous(&self, source: &str) -> Result<(), ApiError> {
        self.anonymous
            .check_key(&source.to_owned())
            .map_err(|not_until| {
                rate_limited(not_until.wait_time_from(DefaultClock::default().now()))
            })
    }

    /// Takes one sign request from the client's allowance (its own limit, or the server's).
    pub fn admit_signature(&self, client: &Principal) -> Result<(), ApiError> {
        let limit = client.rate_limit.unwrap_or(self.settings.client_rate_limit);
        let limiter = self
            .clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&client.id)
            .filter(|(current, _)| *current == limit)
            .map(|(_, limiter)| limiter.clone());
        let limiter = limiter.unwrap_or_else(|| {
            let limiter = Arc::new(DefaultDirectRateLimiter::direct(quota(limit)));
            self.clients
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(client.id.clone(), (limit, limiter.clone()));
            limiter
        });
        limiter.check().map_err(|not_until| {
            rate_limited(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// Forgets the state of sources back at their full allowance (called every tick), so the
    /// limiter holds only sources seen in the last few seconds.
    pub fn forget_idle(&self) {
        self.anonymous.retain_recent();
        self.anonymous.shrink_to_fit();
    }
}
