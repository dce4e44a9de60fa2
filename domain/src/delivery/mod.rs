//! Queued delivery: what a broadcast too large for one invocation becomes, and how a backend
//! publishes without a WebSocket.
//!
//! - [`job`]: one delivery job and its JSON form on the queue (the documented backend format).
//! - [`queue`]: the `DeliveryQueue` port, and what every adapter MUST do.
//! - [`inline`]: how a broadcast splits between the sender's invocation and the queue.
//! - [`worker`]: the use case a queue consumer runs on each job.
//! - [`handover`]: what becomes of recipients a fan-out did not reach.

pub mod handover;
pub mod inline;
pub mod job;
pub mod queue;
pub mod worker;

pub use crate::message::{MessageId, MessageIdError};
pub use handover::{HandedOver, MAX_ATTEMPTS, MAX_RETRY_DELAY, retry_delay};
pub use inline::RECIPIENTS_PER_JOB;
pub use job::{DeliveryJob, JobError, JobTarget, sqs_safe};
pub use queue::{DeliveryQueue, QueueError};
pub use worker::{DeliveryWorker, JobReport, Poison, Received, Source, WorkError};
