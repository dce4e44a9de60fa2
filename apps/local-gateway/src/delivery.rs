//! Queued delivery on a laptop: `--workers N` tasks run the same `DeliveryWorker` as the
//! `fanout` Lambda, each job under a simulated invocation deadline (`--job-deadline-ms`), over
//! the in-memory queue, or over an SQS queue (`--queue-url`, with `--sqs-endpoint` for moto)
//! polled the way a Lambda event source mapping polls it.
//!
//! In memory, a job that succeeds is acked; one that fails, or runs past its deadline (cut off,
//! as Lambda cuts off an invocation), is released for redelivery, and after the queue's receive
//! limit it is dead-lettered (logged). On SQS the same happens through the partial batch response,
//! and the queue's own redrive policy dead-letters. Either way the workers record what the
//! `fanout` Lambda records: each job's posts and continuations (`job_done`), and the jobs
//! received and failed (`delivery_jobs`).

use std::sync::Arc;
use std::time::Duration;

use adapters::clock::SystemClock;
use adapters::memory::{Lease, MemoryQueue};
use adapters::metrics;
use adapters::sqs::{SqsDeliveryQueue, SqsPoller};
use domain::delivery::{DeliveryJob, DeliveryQueue, DeliveryWorker, MessageId};
use domain::{ClientNotifier, Clock, ConnectionRepository, Timestamp};
use tokio::task::JoinSet;

/// How long an idle worker waits for a job before it polls again (SQS long polling: 20 s).
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// After SQS failed a receive or a delete (moto stopped, a wrong URL), before the next try.
const SQS_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where jobs wait.
#[derive(Clone)]
pub enum Transport {
    Memory(MemoryQueue),
    /// The queue's URL, the client that sends to it, and the poller that receives from it.
    Sqs {
        sender: SqsDeliveryQueue,
        poller: SqsPoller,
    },
}

impl Transport {
    /// Where the handler and `@publish` put jobs.
    pub fn sender(&self) -> Arc<dyn DeliveryQueue> {
        match self {
            Transport::Memory(queue) => Arc::new(queue.clone()),
            Transport::Sqs { sender, .. } => Arc::new(sender.clone()),
        }
    }

    /// For the start-up banner.
    pub fn describe(&self) -> String {
        match self {
            Transport::Memory(_) => "the in-memory queue".to_owned(),
            Transport::Sqs { sender, .. } => format!("SQS queue {}", sender.queue_url()),
        }
    }
}

/// The queue and its workers. Dropping it stops the workers (a job in progress is released).
pub struct LocalDelivery {
    pub transport: Transport,
    pub workers: usize,
    pub job_deadline: Duration,
    tasks: JoinSet<()>,
}

impl LocalDelivery {
    /// Starts `workers` tasks (at least one) taking jobs from `transport`.
    pub fn start<R, N>(
        transport: Transport,
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
            match &transport {
                Transport::Memory(queue) => {
                    tasks.spawn(work(queue.clone(), worker.clone(), job_deadline));
                }
                Transport::Sqs { poller, .. } => {
                    tasks.spawn(poll(poller.clone(), worker.clone(), job_deadline));
                }
            }
        }
        Self {
            transport,
            workers: workers.max(1),
            job_deadline,
            tasks,
        }
    }

    /// The in-memory queue, when it is the transport (tests watch it drain).
    pub fn memory_queue(&self) -> Option<&MemoryQueue> {
        match &self.transport {
            Transport::Memory(queue) => Some(queue),
            Transport::Sqs { .. } => None,
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

/// One worker on SQS: what the event source mapping and one `fanout` invocation do, in a loop:
/// a batch of up to 10, one job at a time, each under the simulated deadline.
async fn poll<R, N>(poller: SqsPoller, worker: Arc<DeliveryWorker<R, N>>, job_deadline: Duration)
where
    R: ConnectionRepository,
    N: ClientNotifier,
{
    let run = |id: MessageId, job: DeliveryJob, deadline: Timestamp| {
        let worker = worker.clone();
        async move {
            match tokio::time::timeout(job_deadline, worker.run(&id, job, deadline)).await {
                Ok(Ok(report)) => {
                    metrics::job_done(&report);
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("ran past its deadline and was cut off".to_owned()),
            }
        }
    };
    loop {
        let deadline = SystemClock.now().saturating_add(job_deadline);
        match poller.poll_once(RECEIVE_WAIT, deadline, 1, &run).await {
            Ok(Some(batch)) => metrics::delivery_jobs(batch.jobs, batch.failed),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the local SQS worker could not poll its queue");
                tokio::time::sleep(SQS_RETRY_PAUSE).await;
            }
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
            metrics::delivery_jobs(1, 1);
            return release(queue, lease);
        }
    };
    let deadline = SystemClock.now().saturating_add(job_deadline);
    let run = worker.run(lease.message_id(), job, deadline);
    match tokio::time::timeout(job_deadline, run).await {
        Ok(Ok(report)) => {
            metrics::job_done(&report);
            metrics::delivery_jobs(1, 0);
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
            metrics::delivery_jobs(1, 1);
            release(queue, lease);
        }
        Err(_) => {
            tracing::error!(messageId = %lease.message_id(), "delivery job ran past its deadline and was cut off");
            metrics::delivery_jobs(1, 1);
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
