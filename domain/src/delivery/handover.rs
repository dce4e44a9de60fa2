//! What becomes of recipients a fan-out did not reach: handed to the queue for another worker, or,
//! after [`MAX_ATTEMPTS`] hand-overs that never got through, dead-lettered with their job. No
//! recipient that may still be connected is dropped in silence.
//!
//! - Recipients the deadline left no time to start go back at once, as the same attempt: the
//!   job made progress, nothing failed.
//! - Recipients whose posts were throttled (429) or failed transiently (5xx, timeouts) past their
//!   retries, or whose next retry the deadline left no time for, go back as the next attempt,
//!   after a pause that doubles each time ([`retry_delay`]), since a throttle says "not now".
//! - At the bound the job is given up on: dead-lettered with its remaining recipients and the
//!   reason, counted (`DeliveryGivenUp`), alarmed.

use std::time::Duration;

use crate::connection::ConnectionId;

use super::inline::RECIPIENTS_PER_JOB;
use super::job::{DeliveryJob, JobTarget};
use super::queue::{DeliveryQueue, QueueError};

/// Hand-overs after which a job's recipients are given up on. With [`retry_delay`]'s pauses
/// (1, 2, 4, ... 512 s) a message keeps being tried for about 17 minutes under a sustained
/// throttle, on top of each attempt's own retries.
pub const MAX_ATTEMPTS: u32 = 10;

/// The longest pause the queue holds a job back (SQS's `DelaySeconds` at most).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(900);

/// The pause before attempt `attempt` (1-based): one second, doubled each time, at most
/// [`MAX_RETRY_DELAY`].
pub fn retry_delay(attempt: u32) -> Duration {
    let seconds = 1u64
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u64::MAX);
    Duration::from_secs(seconds).min(MAX_RETRY_DELAY)
}

/// What a hand-over did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandedOver {
    /// Recipients back in the queue.
    pub requeued: u64,
    /// Recipients given up on, dead-lettered with their job.
    pub given_up: u64,
    /// Jobs enqueued (or dead-lettered) for them.
    pub jobs: usize,
}

/// Hands `unstarted` and `unfinished` recipients of `job`'s message over to `queue`, as described
/// in the module's documentation. `Ok` only once every one of them is queued or dead-lettered.
pub(crate) async fn hand_over(
    queue: &dyn DeliveryQueue,
    job: &DeliveryJob,
    unstarted: Vec<ConnectionId>,
    unfinished: Vec<ConnectionId>,
) -> Result<HandedOver, QueueError> {
    let mut done = HandedOver::default();
    if !unstarted.is_empty() {
        let jobs = jobs_for(job, &unstarted);
        done.jobs += jobs.len();
        queue.enqueue(jobs).await?;
        done.requeued += unstarted.len() as u64;
    }
    if unfinished.is_empty() {
        return Ok(done);
    }
    let next = job.clone().tried_again();
    let jobs = jobs_for(&next, &unfinished);
    done.jobs += jobs.len();
    if next.attempt > MAX_ATTEMPTS {
        let reason = format!(
            "gave up on {} recipients after {MAX_ATTEMPTS} hand-overs (throttled or failing every time)",
            unfinished.len()
        );
        for given_up in &jobs {
            queue.dead_letter(&given_up.to_json(), &reason).await?;
        }
        tracing::error!(
            messageId = job.id.as_ref().map(|id| id.as_str()).unwrap_or_default(),
            recipients = unfinished.len(),
            "delivery given up on: dead-lettered"
        );
        done.given_up += unfinished.len() as u64;
    } else {
        queue.enqueue_after(jobs, retry_delay(next.attempt)).await?;
        done.requeued += unfinished.len() as u64;
    }
    Ok(done)
}

/// `job`'s message for `recipients`, in jobs of at most [`RECIPIENTS_PER_JOB`]; a job for one
/// connection is that one job again.
fn jobs_for(job: &DeliveryJob, recipients: &[ConnectionId]) -> Vec<DeliveryJob> {
    if matches!(job.target, JobTarget::Connection(_)) {
        return vec![job.handed_over_to(Vec::new())];
    }
    recipients
        .chunks(RECIPIENTS_PER_JOB)
        .map(|ids| job.handed_over_to(ids.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_from_a_second_up_to_sqs_s_fifteen_minutes() {
        let delays: Vec<u64> = (1..=12).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_DELAY);
        let under_throttle: u64 = (1..=MAX_ATTEMPTS).map(|a| retry_delay(a).as_secs()).sum();
        assert_eq!(
            under_throttle, 1_023,
            "the bound docs/protocol.md states (\"Guarantees\"): about 17 minutes"
        );
    }
}
