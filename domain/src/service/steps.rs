//! How an action ends, before the sender is answered: the types every action returns.

use std::time::Duration;

use crate::fanout::{DeliveryReport, FanOutError};
use crate::ports::RepositoryError;
use crate::protocol::ErrorCode;

use super::HandleError;

/// How an action ended, before the sender is answered.
pub enum Outcome {
    /// The action's own reply was the answer: no `ack`.
    Answered,
    /// The action ran: an `ack` with these counts follows when the request had a `requestId`.
    Done(Delivered),
}

/// What an action delivered inline, and whether it queued the rest.
#[derive(Default)]
pub struct Delivered {
    pub report: DeliveryReport,
    pub queued: bool,
    /// A `join`'s starting `seq` (the `ack`'s `seq`).
    pub seq: Option<crate::stream::Seq>,
}

impl Delivered {
    pub fn inline(report: DeliveryReport) -> Self {
        Self {
            report,
            queued: false,
            seq: None,
        }
    }
}

/// A client mistake, answered with an `error` frame.
pub struct Refusal {
    pub code: ErrorCode,
    /// For the client: may quote its own input back.
    pub message: String,
    /// For the log: never client content.
    pub detail: Option<String>,
    /// When the client may try again (`rate_limited` only).
    pub retry_after: Option<Duration>,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }
}

/// Why an action stopped before its end: `?` in an action turns either into this.
pub enum Stop {
    Refused(Refusal),
    Failed(HandleError),
}

/// What an action step returns.
pub type Step<T> = Result<T, Stop>;

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop::Refused(refusal)
    }
}

impl From<RepositoryError> for Stop {
    fn from(error: RepositoryError) -> Self {
        Stop::Failed(error.into())
    }
}

impl From<HandleError> for Stop {
    fn from(error: HandleError) -> Self {
        Stop::Failed(error)
    }
}

impl From<FanOutError> for Stop {
    fn from(error: FanOutError) -> Self {
        Stop::Failed(error.into())
    }
}
