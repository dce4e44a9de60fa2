//! Queued delivery on a laptop: `--workers N` tasks run the same `DeliveryWorker` as the
//! `fanout` Lambda, over the in-memory queue, each job under a simulated invocation deadline
//! (`--job-deadline-ms`). A job that succeeds is acked; one that fails, or runs past its
//! deadline (cut off, as Lambda cuts off an invocation), is released for redelivery, and after
//! the queue's receive limit it is dead-lettered (logged).

use std::sync::Arc;
use std::time::Duration;

use adapters::clock::SystemClock;
use adapters::memory::{Lease, MemoryQueue};
use domain::delivery::{DeliveryJob, DeliveryWorker};
use domain::{ClientNotifier, Clock, ConnectionRepository};
use tokio::task::JoinSet;

/// How long an idle worker waits for a job before it polls again (SQS long polling: 20 s).
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// The queue and its workers. Dropping it stops the workers (a job in progress is released).
pub struct LocalDelivery {
    pub queue: MemoryQueue,
    pub workers: usize,
    pub job_deadline: Duration,
    tasks: JoinSet<()>,
}

impl LocalDelivery {
    /// Starts `workers` tasks (at least one) taking jobs from `queue`.
    pub fn start<R, N>(
        queue: MemoryQueue,
        worker: DeliveryWorker<R, N>,
        workers: usize,
        job_deadline: Duration,
    ) -> Self
    where
        R: ConnectionRepository + 'static,
        N: ClientNotifier + 'static,
    {
        let worker = Arc::new(worker);
        let mut tasks = JoinSet::new();
        for _ in 0..workers.max(1) {
            tasks.spawn(work(queue.clone(), worker.clone(), job_deadline));
        }
        Self {
            queue,
            workers: workers.max(1),
            job_deadline,
            tasks,
        }
    }

    /// Stops every worker; a job in progress goes back to the queue, as on a crash.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// One worker: receive, run, settle, until stopped.
async fn work<R, N>(queue: MemoryQueue, worker: Arc<DeliveryWorker<R, N>>, job_deadline: Duration)
where
    R: ConnectionRepository,
    N: ClientNotifier,
{
    loop {
        for lease in queue.receive(1, RECEIVE_WAIT).await {
            run_one(&queue, &worker, lease, job_deadline).await;
        }
    }
}

async fn run_one<R, N>(
    queue: &MemoryQueue,
    worker: &DeliveryWorker<R, N>,
    lease: Lease,
    job_deadline: Duration,
) where
    R: ConnectionRepository,
    N: ClientNotifier,
{
    let job = match DeliveryJob::from_json(lease.body()) {
        Ok(job) => job,
        Err(e) => {
            tracing::warn!(messageId = %lease.message_id(), error = %e, "malformed delivery job");
            return release(queue, lease);
        }
    };
    let deadline = SystemClock.now().saturating_add(job_deadline);
    let run = worker.run(lease.message_id(), job, deadline);
    match tokio::time::timeout(job_deadline, run).await {
        Ok(Ok(report)) => {
            tracing::debug!(
                messageId = %lease.message_id(),
                delivered = report.delivery.delivered,
                handedOver = report.handed_over,
                continued = report.continued,
                "delivery job done"
            );
            lease.ack();
        }
        Ok(Err(e)) => {
            tracing::warn!(messageId = %lease.message_id(), error = %e, "delivery job failed");
            release(queue, lease);
        }
        Err(_) => {
            tracing::error!(messageId = %lease.message_id(), "delivery job ran past its deadline and was cut off");
            release(queue, lease);
        }
    }
}

/// Back to the queue, or to the dead letters on its last receive (said in the log).
fn release(queue: &MemoryQueue, lease: Lease) {
    if lease.receive_count() >= queue.max_receives() {
        tracing::error!(
            messageId = %lease.message_id(),
            receives = lease.receive_count(),
            "delivery job dead-lettered"
        );
    }
    lease.release();
}
