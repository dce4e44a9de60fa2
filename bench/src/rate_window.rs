//! The throttle the `@connections` stubs apply, as API Gateway's account quota does: a token
//! bucket refilled at `rate` a second and holding at most half a second's worth (AWS documents
//! 10 000 requests/s with a burst of 5 000). A post finding the bucket empty gets 429. Shared by
//! the HTTP stub and the in-process one so both throttle alike.
//!
//! A bucket, not a counter per calendar second: a counter lets a whole second's quota through at
//! once and then refuses everything for the rest of that second, so a retry after a short pause
//! meets nothing but 429s, which no refilling quota does.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens are counted in millionths, so a refill of `rate` a second is whole per microsecond.
const ONE: u128 = 1_000_000;

pub struct RateWindow {
    rate: u128,
    burst: u128,
    started: Instant,
    /// Millionths of tokens left, and when (since `started`) they were counted.
    bucket: Mutex<(u128, Duration)>,
}

impl RateWindow {
    pub fn new(rate: u64) -> Self {
        let burst = (u128::from(rate) / 2).max(1) * ONE;
        Self {
            rate: u128::from(rate),
            burst,
            started: Instant::now(),
            bucket: Mutex::new((burst, Duration::ZERO)),
        }
    }

    /// Takes a token for one post now; true when there was none (the post is over the rate).
    pub fn over_rate(&self) -> bool {
        self.over_rate_at(self.started.elapsed())
    }

    /// Takes a token for one post at `now` since the start; true when there was none.
    fn over_rate_at(&self, now: Duration) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, counted) = *bucket;
        let refill = now.saturating_sub(counted).as_micros() * self.rate;
        let tokens = (tokens + refill).min(self.burst);
        let over = tokens < ONE;
        *bucket = (if over { tokens } else { tokens - ONE }, now.max(counted));
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_burst_of_half_the_rate_passes_then_posts_pass_only_as_the_bucket_refills() {
        let bucket = RateWindow::new(10);
        let burst: Vec<bool> = (0..6).map(|_| bucket.over_rate_at(at(0))).collect();
        // 10 a second: one token every 100 ms, never more than 5 kept.
        let refilled: Vec<bool> = [50, 100, 150, 200]
            .map(|ms| bucket.over_rate_at(at(ms)))
            .into();
        let after_a_long_pause: Vec<bool> =
            (0..6).map(|_| bucket.over_rate_at(at(10_000))).collect();
        assert_eq!(burst, [false, false, false, false, false, true]);
        assert_eq!(refilled, [true, false, true, false]);
        assert_eq!(
            after_a_long_pause,
            [false, false, false, false, false, true]
        );
    }
}
