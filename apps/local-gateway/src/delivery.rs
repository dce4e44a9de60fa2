//! Queued delivery on a laptop: `--workers N` tasks run the same `DeliveryWorker` as the
//! `fanout` Lambda, each job under a simulated invocation deadline (`--job-deadline-ms`), over
//! two in-memory queues as the stack has two SQS ones: the service's own (the rest of large
//! broadcasts, continuations, hand-overs) and the backend queue (`@publish`), whose jobs may not
//! speak as a user. Or over SQS queues (`--internal-queue-url`, `--backend-queue-url`,
//! `--dead-letter-queue-url`, with `--sqs-endpoint` for moto), polled the way a Lambda event
//! source mapping polls them.
//!
//! In memory, a job that succeeds is acked; one that fails, or runs past its deadline (cut off,
//! as Lambda cuts off an invocation), is released for redelivery, and after the queue's receive
//! limit it is dead-lettered (logged). On SQS the same happens through the partial batch response,
//! and the queues' own redrive policy dead-letters. A worker dead-letters what can never be
//! delivered itself, with its reason, in both. Either way the workers record what the `fanout`
//! Lambda records: each job's posts and continuations (`job_done`), and the jobs received and
//! failed (`delivery_jobs`).

use std::sync::Arc;
use std::time::Duration;

use adapters::clock::SystemClock;
use adapters::memory::{Lease, MemoryQueue};
use adapters::metrics;
use adapters::sqs::{QueuedMessage, SqsDeliveryQueue, SqsPoller};
use domain::delivery::{DeliveryQueue, DeliveryWorker, Received, Source};
use domain::{ClientNotifier, Clock, ConnectionRepository, Timestamp};
use tokio::task::JoinSet;

/// How long an idle worker waits for a job before it polls again (SQS long polling: 20 s).
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// After SQS failed a receive or a delete (moto stopped, a wrong URL), before the next try.
const SQS_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where jobs wait.
#[derive(Clone)]
pub enum Transport {
    Memory {
        /// The service's own queue, where its functions put jobs.
        internal: MemoryQueue,
        /// The backend queue, where `@publish` puts jobs.
        backend: MemoryQueue,
    },
    /// The queues' senders and the pollers that receive from them.
    Sqs {
        internal: SqsDeliveryQueue,
        backend: SqsDeliveryQueue,
        pollers: Vec<SqsPoller>,
    },
}

impl Transport {
    /// Where the handler and the workers put the service's own jobs, and dead-letter.
    pub fn sender(&self) -> Arc<dyn DeliveryQueue> {
        match self {
            Transport::Memory { internal, .. } => Arc::new(internal.clone()),
            Transport::Sqs { internal, .. } => Arc::new(internal.clone()),
        }
    }

    /// Where `@publish` puts a backend's job.
    /// Where `@publish` puts a backend's control messages: the backend queue.
    pub fn control_sender(&self) -> ControlSender {
        match self {
            Transport::Memory { backend, .. } => ControlSender::Memory(backend.clone()),
            Transport::Sqs { backend, .. } => ControlSender::Sqs(backend.clone()),
        }
    }

    pub fn publisher(&self) -> Arc<dyn DeliveryQueue> {
        match self {
            Transport::Memory { backend, .. } => Arc::new(backend.clone()),
            Transport::Sqs { backend, .. } => Arc::new(backend.clone()),
        }
    }

    /// For the start-up banner.
    pub fn describe(&self) -> String {
        match self {
            Transport::Memory { .. } => "in-memory queues".to_owned(),
            Transport::Sqs {
                internal, backend, ..
            } => format!(
                "SQS queues {} and {}",
                internal.queue_url(),
                backend.queue_url()
            ),
        }
    }
}

/// The queue and its workers. Dropping it stops the workers (a job in progress is released).
/// The backend queue, for control messages (which are not delivery jobs).
#[derive(Clone)]
pub enum ControlSender {
    Memory(MemoryQueue),
    Sqs(SqsDeliveryQueue),
}

impl ControlSender {
    /// Puts a backend's control message on the backend queue, as `wsctl` puts it on SQS.
    pub async fn send(
        &self,
        control: &domain::sessions::Control,
    ) -> Result<(), domain::delivery::QueueError> {
        match self {
            ControlSender::Memory(queue) => {
                queue.send_raw(control.to_json());
                Ok(())
            }
            ControlSender::Sqs(queue) => queue.send_control(control).await,
        }
    }
}

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
                Transport::Memory { internal, backend } => {
                    let queues = (internal.clone(), backend.clone());
                    tasks.spawn(work(queues, worker.clone(), job_deadline));
                }
                Transport::Sqs { pollers, .. } => {
                    for poller in pollers {
                        tasks.spawn(poll(poller.clone(), worker.clone(), job_deadline));
                    }
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

    /// The service's own in-memory queue, when it is the transport (tests watch it drain).
    pub fn memory_queue(&self) -> Option<&MemoryQueue> {
        match &self.transport {
            Transport::Memory { internal, .. } => Some(internal),
            Transport::Sqs { .. } => None,
        }
    }

    /// What was dead-lettered in memory, from either queue (the stack has one dead-letter queue
    /// for both); empty on SQS, where the dead-letter queue holds them.
    pub fn dead_letters(&self) -> Vec<adapters::memory::DeadLetter> {
        match &self.transport {
            Transport::Memory { internal, backend } => internal
                .dead_letters_with_reasons()
                .into_iter()
                .chain(backend.dead_letters_with_reasons())
                .collect(),
            Transport::Sqs { .. } => Vec::new(),
        }
    }

    /// The in-memory backend queue, when it is the transport.
    pub fn backend_memory_queue(&self) -> Option<&MemoryQueue> {
        match &self.transport {
            Transport::Memory { backend, .. } => Some(backend),
            Transport::Sqs { .. } => None,
        }
    }

    /// Stops every worker; a job in progress goes back to the queue, as on a crash.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// One worker: receive from either queue, run, settle, until stopped.
async fn work<R, N>(
    (internal, backend): (MemoryQueue, MemoryQueue),
    worker: Arc<DeliveryWorker<R, N>>,
    job_deadline: Duration,
) where
    R: ConnectionRepository,
    N: ClientNotifier,
{
    loop {
        // Receiving is cancel-safe: a message is taken only when its receive returns.
        let (queue, source, leases) = tokio::select! {
            leases = internal.receive(1, RECEIVE_WAIT) => (&internal, Source::Service, leases),
            leases = backend.receive(1, RECEIVE_WAIT) => (&backend, Source::Backend, leases),
        };
        for lease in leases {
            run_one(queue, source, &worker, lease, job_deadline).await;
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
    let run = |message: QueuedMessage, deadline: Timestamp| {
        let worker = worker.clone();
        async move {
            let handled = worker.handle(message.received(), deadline);
            match tokio::time::timeout(job_deadline, handled).await {
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
    source: Source,
    worker: &DeliveryWorker<R, N>,
    lease: Lease,
    job_deadline: Duration,
) where
    R: ConnectionRepository,
    N: ClientNotifier,
{
    let deadline = SystemClock.now().saturating_add(job_deadline);
    let message = Received {
        id: lease.message_id(),
        sent_at: lease.sent_at(),
        body: lease.body(),
        source,
    };
    let run = worker.handle(message, deadline);
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
