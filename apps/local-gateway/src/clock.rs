//! The wall clock, as API Gateway stamps its events (`requestTimeEpoch`, `connectedAt`) and as
//! the domain reads it.

use domain::Timestamp;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The same instant as the domain's [`Timestamp`].
pub(crate) fn now() -> Timestamp {
    Timestamp::from_millis(u64::try_from(now_millis()).unwrap_or(0))
}
