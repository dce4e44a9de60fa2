//! The delivery queue port.

use std::time::Duration;

use async_trait::async_trait;

use super::job::DeliveryJob;

/// Sending jobs to the queue failed. None of these is the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// One job's JSON is larger than the queue accepts (SQS: 256 KB). Nothing was sent.
    #[error("a delivery job of {bytes} bytes exceeds the queue's limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    /// The queue was unreachable, refused, or accepted only part of the jobs after every retry.
    #[error("the delivery queue failed: {0}")]
    Unavailable(String),
}

/// Where delivery jobs wait for a worker: the service's internal queue, which only its own
/// functions may write to (the backend queue, where backends publish, is read through the same
/// workers but never written by the service).
///
/// An adapter MUST:
/// - accept any number of jobs per call, sending them in the batches its transport allows
///   (SQS: 10), and retry entries a batch call reports as failed before giving up;
/// - return `Ok` only once every job is durably queued: a caller that got `Ok` may stop working
///   on those recipients, and one that got an error must treat none of them as queued (sending a
///   job twice is allowed, losing one is not: delivery is at-least-once);
/// - check each job's size against its limit *before* sending anything, and refuse with
///   `TooLarge` (never truncate);
/// - keep each job's JSON exactly as `DeliveryJob::to_json` writes it, so any worker, and any
///   backend writing the same format by hand, reads it back with `DeliveryJob::from_json`.
///
/// - make `enqueue_after` deliver no job before `delay` has passed (SQS: `DelaySeconds`, whole
///   seconds, at most 900: a longer delay is 900);
/// - keep what `dead_letter` is given, with its reason, where a person can look at it and move
///   it back (SQS: the dead-letter queue, the reason in a message attribute), and never deliver
///   it to a worker again by itself.
///
/// Receiving is the transport's business (an SQS event source mapping, or the local gateway's
/// in-memory workers), so it is not part of the port.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    async fn enqueue(&self, jobs: Vec<DeliveryJob>) -> Result<(), QueueError>;

    /// As `enqueue`, each job delivered no sooner than `delay` from now.
    async fn enqueue_after(
        &self,
        jobs: Vec<DeliveryJob>,
        delay: Duration,
    ) -> Result<(), QueueError>;

    /// Sets a message aside for a person: a job that can never succeed, or whose recipients were
    /// given up on. `body` is the message as a queue holds it (a job's JSON, or what a backend
    /// wrote), `reason` says why, for the operator, never quoting the body.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError>;
}

#[async_trait]
impl<T: DeliveryQueue + ?Sized> DeliveryQueue for std::sync::Arc<T> {
    async fn enqueue(&self, jobs: Vec<DeliveryJob>) -> Result<(), QueueError> {
        (**self).enqueue(jobs).await
    }

    async fn enqueue_after(
        &self,
        jobs: Vec<DeliveryJob>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        (**self).enqueue_after(jobs, delay).await
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        (**self).dead_letter(body, reason).await
    }
}
