//! Time as the domain sees it: milliseconds since the Unix epoch, read from an injected clock.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds, rounded up: DynamoDB's TTL attribute is in seconds, and rounding down would
    /// let storage forget a row up to a second before the domain does.
    pub const fn as_secs_ceil(self) -> u64 {
        self.0.div_ceil(1000)
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_seconds_round_up_so_storage_never_forgets_early() {
        assert_eq!(Timestamp::from_millis(1_001).as_secs_ceil(), 2);
        assert_eq!(Timestamp::from_millis(1_000).as_secs_ceil(), 1);
    }

    #[test]
    fn adding_saturates_instead_of_overflowing() {
        assert_eq!(
            Timestamp::from_millis(u64::MAX - 1).saturating_add(Duration::from_secs(1)),
            Timestamp::from_millis(u64::MAX)
        );
    }
}
