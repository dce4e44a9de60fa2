//! The knobs of the domain, with API Gateway's limits as defaults.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::protocol::API_GATEWAY_MAX_MESSAGE_BYTES;
use crate::rate_limit::RateLimit;

/// See `Settings::inline_recipients`. The sender's own invocation posts this many at most: at
/// about 70 µs of CPU a post on a full core and 1/14 of a core at 128 MB, 1 000 posts cost about
/// 1 s of an invocation API Gateway cuts off at 29 s, and a room this small rarely waits on a
/// queue hop (tens of ms) plus a cold start. Larger audiences go to workers that run in parallel.
pub const DEFAULT_INLINE_RECIPIENTS: usize = 1_000;

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
    /// How long room messages are kept for `history` and `join {since}`; zero: no history (every
    /// `since` answers `reset`, `history` answers `history_off`).
    pub history_ttl: Duration,
    /// Clock skew tolerated on a token's expiry (the authorizer's leeway).
    pub token_leeway: Duration,
    /// Whether the `typing` action is on; off, it is refused as `unknown_action`.
    pub typing: bool,
    /// Presence events go only to rooms of at most this many members: above it, each join or
    /// leave would cost a post per member, N² posts for a room's churn. 0 turns presence off.
    pub presence_max_members: usize,
    /// With a delivery queue, a `sendmessage` or `publish` posts to at most this many
    /// recipients in the sender's invocation and hands the rest to the queue. Without a queue,
    /// everything is delivered inline.
    pub inline_recipients: usize,
    /// A worker starts no post (and no retry) that could end within this margin of its
    /// deadline: it covers one post's time budget (the notifier's timeouts) and the enqueue of
    /// what is left.
    pub job_safety_margin: Duration,
    /// Messages one connection may send (`ping` excepted). Off by default here: the Lambdas and
    /// the local gateway choose theirs in their configuration.
    pub rate_limit: RateLimit,
    /// Messages one principal may send across all its connections and reconnects (a reconnect
    /// would otherwise bring a fresh burst). Off by default: it costs a read and a write more
    /// per message.
    pub principal_rate_limit: RateLimit,
    /// `ping`, `whoami` and frames that do not parse: free of the stored buckets (they touch no
    /// storage), but each still costs an invocation and a post. Kept per instance, in memory.
    pub unmetered_rate_limit: RateLimit,
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
            typing: true,
            token_leeway: Duration::from_secs(30),
            history_ttl: Duration::from_secs(24 * 3600),
            presence_max_members: 100,
            inline_recipients: DEFAULT_INLINE_RECIPIENTS,
            job_safety_margin: Duration::from_secs(5),
            rate_limit: RateLimit::OFF,
            principal_rate_limit: RateLimit::OFF,
            unmetered_rate_limit: RateLimit::OFF,
        }
    }
}

/// Retries for `Throttled` and `Transient` posts: exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included, for a post that keeps failing transiently (5xx,
    /// timeouts). 1 means no retry.
    pub max_attempts: u32,
    /// The same for a post that keeps being throttled (429). Longer: a throttle says "not now",
    /// never "not at all", and the fan-out's window shrinks meanwhile (see `fanout::window`), so
    /// giving up early would drop a recipient for a condition the fan-out is already easing.
    pub max_throttled_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_throttled_attempts: 6,
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
            max_throttled_attempts: 10,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(300),
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(50));
        assert_eq!(p.ceiling(2), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(300));
        assert_eq!(p.ceiling(40), Duration::from_millis(300));
    }

    /// Pauses for `attempt`, in milliseconds, from a seeded generator so the test is repeatable.
    fn sampled_pauses(p: &RetryPolicy, attempt: u32) -> Vec<u64> {
        (0..4_000)
            .map(|_| p.pause(attempt).as_millis() as u64)
            .collect()
    }

    #[test]
    fn jittered_pauses_spread_uniformly_up_to_the_ceiling() {
        // Each test runs on its own thread, and fastrand's generator is per thread.
        fastrand::seed(7);
        let p = RetryPolicy::default();
        for attempt in 1..6 {
            let ceiling = p.ceiling(attempt).as_millis() as u64;
            let pauses = sampled_pauses(&p, attempt);
            let max = *pauses.iter().max().unwrap();
            let min = *pauses.iter().min().unwrap();
            let mean = pauses.iter().sum::<u64>() as f64 / pauses.len() as f64;
            assert!(max <= ceiling, "attempt {attempt}: {max} ms > {ceiling} ms");
            // Uniform in [0, ceiling]: the mean near half of it, both ends reached.
            assert!(
                (0.45..=0.55).contains(&(mean / ceiling as f64)),
                "attempt {attempt}: mean {mean} ms for a ceiling of {ceiling} ms"
            );
            assert!(max * 100 >= ceiling * 95, "attempt {attempt}: max {max} ms");
            assert!(min * 100 <= ceiling * 5, "attempt {attempt}: min {min} ms");
        }
    }

    #[test]
    fn pauses_grow_from_one_attempt_to_the_next_until_the_cap() {
        fastrand::seed(11);
        let p = RetryPolicy {
            max_attempts: 10,
            max_throttled_attempts: 10,
            base_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(1_000),
        };
        let mean = |attempt| {
            let pauses = sampled_pauses(&p, attempt);
            pauses.iter().sum::<u64>() as f64 / pauses.len() as f64
        };
        let means: Vec<f64> = (1..=5).map(mean).collect();
        for (attempt, pair) in (1..).zip(means.windows(2)) {
            // The ceiling doubles, so the mean should too; 1.6 leaves room for sampling noise.
            assert!(
                pair[0] > 0.0 && pair[1] >= pair[0] * 1.6,
                "attempt {attempt} -> {}: mean {} ms -> {} ms",
                attempt + 1,
                pair[0],
                pair[1]
            );
        }
    }
}
