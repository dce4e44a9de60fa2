//! The knobs of the domain, with API Gateway's limits as defaults.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::protocol::API_GATEWAY_MAX_MESSAGE_BYTES;
use crate::rate_limit::RateLimit;

/// Enough posts in flight to hide a ~20 ms round trip at a few thousand posts a second.
/// (Evaluated by the compiler: a zero here is a build error, not a panic.)
const DEFAULT_FANOUT_CONCURRENCY: NonZeroUsize = NonZeroUsize::new(64).unwrap();

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Largest inbound body and outbound frame, in bytes.
    pub max_message_bytes: usize,
    /// How many rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// How many posts one fan-out keeps in flight at once.
    pub fanout_concurrency: NonZeroUsize,
    pub retry: RetryPolicy,
    /// Added to API Gateway's 2-hour maximum to get a connection's `expires_at`: covers clock skew
    /// between API Gateway and the function.
    pub ttl_margin: Duration,
    /// Whether a `sendmessage` or `publish` is also delivered back to its sender.
    pub echo_to_sender: bool,
    /// Messages one connection may send (`ping` excepted). Off by default here: the Lambdas and
    /// the local gateway choose theirs in their configuration.
    pub rate_limit: RateLimit,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_message_bytes: API_GATEWAY_MAX_MESSAGE_BYTES,
            max_rooms_per_connection: 50,
            fanout_concurrency: DEFAULT_FANOUT_CONCURRENCY,
            retry: RetryPolicy::default(),
            ttl_margin: Duration::from_secs(10 * 60),
            echo_to_sender: true,
            rate_limit: RateLimit::OFF,
        }
    }
}

/// Retries for `Throttled` and `Transient` posts: exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 1 means no retry.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the pause after failed attempt `attempt` (1-based): base * 2^(attempt-1), capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// "Full jitter": a uniform pause in [0, ceiling], so clients throttled together do not retry
    /// together.
    pub fn pause(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(fastrand::u64(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_then_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(300),
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(50));
        assert_eq!(p.ceiling(2), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(300));
        assert_eq!(p.ceiling(40), Duration::from_millis(300));
    }

    #[test]
    fn jittered_pauses_stay_within_the_ceiling() {
        let p = RetryPolicy::default();
        for attempt in 1..6 {
            for _ in 0..100 {
                assert!(p.pause(attempt) <= p.ceiling(attempt));
            }
        }
    }
}
