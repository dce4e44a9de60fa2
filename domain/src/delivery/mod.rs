//! Queued delivery: what a broadcast too large for one invocation becomes, and how a backend
//! publishes without a WebSocket.
//!
//! - [`job`]: one delivery job and its JSON form on the queue (the documented backend format).
//! - [`queue`]: the `DeliveryQueue` port, and what every adapter MUST do.

pub mod job;
pub mod queue;

pub use job::{DeliveryJob, JobError, JobTarget, MessageId, MessageIdError};
pub use queue::{DeliveryQueue, QueueError};
