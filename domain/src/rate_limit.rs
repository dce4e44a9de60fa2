//! The per-connection rate limit: a token bucket in whole integers, so every store computes the
//! very same answer from the very same state and nothing drifts with float rounding.
//!
//! A bucket holds up to `burst` tokens and refills at `per_second` tokens a second; each message
//! takes one. Tokens are counted in thousandths ("milli-tokens") and time in milliseconds, so a
//! refill of `per_second` tokens a second is exactly `per_second` milli-tokens a millisecond.

use std::time::Duration;

use crate::time::Timestamp;

/// Milli-tokens in one token.
const MILLI: u64 = 1_000;

/// How fast one connection may send. Off when either number is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added a second.
    pub per_second: u32,
    /// Most tokens the bucket holds: how many messages may come at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    pub const OFF: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
    };

    pub fn is_on(self) -> bool {
        self.per_second > 0 && self.burst > 0
    }

    /// How long one token takes to refill, rounded up: the wait to announce when a store cannot
    /// tell exactly (see the DynamoDB adapter's bounded retries).
    pub fn token_interval(self) -> Duration {
        Duration::from_millis(MILLI.div_ceil(u64::from(self.per_second.max(1))))
    }

    fn capacity(self) -> u64 {
        u64::from(self.burst).saturating_mul(MILLI)
    }

    /// The bucket of a connection that has sent nothing yet: full.
    pub fn full(self, now: Timestamp) -> Bucket {
        Bucket {
            milli_tokens: self.capacity(),
            updated_at: now,
        }
    }

    /// Refills `bucket` up to `now`, then takes one token or says how long until one is there.
    ///
    /// A clock that went backwards (another instance, a little behind) refills nothing and keeps
    /// the later `updated_at`, so the same milliseconds are never refilled twice. Huge gaps and
    /// huge settings saturate at a full bucket; nothing here can overflow or panic.
    pub fn take(self, bucket: Bucket, now: Timestamp) -> Take {
        let elapsed = now
            .as_millis()
            .saturating_sub(bucket.updated_at.as_millis());
        let refill = elapsed.saturating_mul(u64::from(self.per_second));
        let available = bucket
            .milli_tokens
            .saturating_add(refill)
            .min(self.capacity());
        let updated_at = bucket.updated_at.max(now);
        match available.checked_sub(MILLI) {
            Some(left) => Take::Taken(Bucket {
                milli_tokens: left,
                updated_at,
            }),
            None => {
                let missing = MILLI - available;
                let wait = missing.div_ceil(u64::from(self.per_second.max(1)));
                Take::Refused {
                    retry_after: Duration::from_millis(wait),
                }
            }
        }
    }
}

/// A connection's bucket as stored: what was left, and when that was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub milli_tokens: u64,
    pub updated_at: Timestamp,
}

/// What [`RateLimit::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// A token was taken: store this bucket.
    Taken(Bucket),
    /// No token: nothing to store; one will be there after `retry_after`.
    Refused { retry_after: Duration },
}

/// What a store answered to `take_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDecision {
    /// A token was spent: the message may go on.
    Taken,
    /// The bucket is empty: refuse the message; retrying after this long will find a token.
    Refused { retry_after: Duration },
    /// No live connection with that id: no bucket exists, none was created.
    NotConnected,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_A_SECOND_BURST_20: RateLimit = RateLimit {
        per_second: 10,
        burst: 20,
    };

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// Takes until refused at a fixed `now`; returns how many were taken and the last bucket.
    fn drain(limit: RateLimit, mut bucket: Bucket, now: Timestamp) -> (u32, Bucket, Duration) {
        for taken in 0..=limit.burst {
            match limit.take(bucket, now) {
                Take::Taken(next) => bucket = next,
                Take::Refused { retry_after } => return (taken, bucket, retry_after),
            }
        }
        panic!(
            "a bucket of {} gave more than {} tokens",
            limit.burst, limit.burst
        )
    }

    #[test]
    fn a_full_bucket_gives_exactly_burst_tokens_at_once_then_says_when_the_next_one_comes() {
        let limit = TEN_A_SECOND_BURST_20;
        let (taken, _, retry_after) = drain(limit, limit.full(at(1_000)), at(1_000));
        assert_eq!(taken, 20);
        assert_eq!(retry_after, Duration::from_millis(100));
    }

    #[test]
    fn waiting_the_announced_time_finds_a_token_and_a_millisecond_less_does_not() {
        let limit = TEN_A_SECOND_BURST_20;
        let (_, empty, retry_after) = drain(limit, limit.full(at(0)), at(0));
        let wait = retry_after.as_millis() as u64;
        assert_eq!(
            limit.take(empty, at(wait - 1)),
            Take::Refused {
                retry_after: Duration::from_millis(1)
            }
        );
        assert!(matches!(limit.take(empty, at(wait)), Take::Taken(_)));
    }

    #[test]
    fn the_wait_is_rounded_up_so_it_is_never_too_short() {
        let limit = RateLimit {
            per_second: 3,
            burst: 1,
        };
        let (_, empty, retry_after) = drain(limit, limit.full(at(0)), at(0));
        assert_eq!(retry_after, Duration::from_millis(334));
        assert!(matches!(limit.take(empty, at(334)), Take::Taken(_)));
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let limit = TEN_A_SECOND_BURST_20;
        let (_, empty, _) = drain(limit, limit.full(at(0)), at(0));
        let (taken, _, _) = drain(limit, empty, at(3_600_000));
        assert_eq!(taken, 20);
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing_and_keeps_the_later_time() {
        let limit = TEN_A_SECOND_BURST_20;
        let bucket = Bucket {
            milli_tokens: 1_500,
            updated_at: at(10_000),
        };
        assert_eq!(
            limit.take(bucket, at(9_000)),
            Take::Taken(Bucket {
                milli_tokens: 500,
                updated_at: at(10_000)
            })
        );
    }

    #[test]
    fn huge_gaps_and_huge_settings_saturate_instead_of_panicking() {
        let limit = RateLimit {
            per_second: u32::MAX,
            burst: u32::MAX,
        };
        let bucket = Bucket {
            milli_tokens: u64::MAX,
            updated_at: at(0),
        };
        assert_eq!(
            limit.take(bucket, at(u64::MAX)),
            Take::Taken(Bucket {
                milli_tokens: u64::from(u32::MAX) * 1_000 - 1_000,
                updated_at: at(u64::MAX)
            })
        );
    }

    #[test]
    fn one_token_takes_a_second_divided_by_the_rate_rounded_up() {
        assert_eq!(
            TEN_A_SECOND_BURST_20.token_interval(),
            Duration::from_millis(100)
        );
        let three = RateLimit {
            per_second: 3,
            burst: 1,
        };
        assert_eq!(three.token_interval(), Duration::from_millis(334));
        assert_eq!(RateLimit::OFF.token_interval(), Duration::from_secs(1));
    }

    #[test]
    fn either_number_at_zero_turns_the_limit_off() {
        assert!(!RateLimit::OFF.is_on());
        assert!(
            !RateLimit {
                per_second: 0,
                burst: 5
            }
            .is_on()
        );
        assert!(
            !RateLimit {
                per_second: 5,
                burst: 0
            }
            .is_on()
        );
        assert!(TEN_A_SECOND_BURST_20.is_on());
    }
}
