//! An in-memory delivery queue with SQS's delivery semantics: at-least-once, redelivery of what a
//! worker did not finish, delayed messages, a dead-letter list (after too many receives, or set
//! aside by a worker with its reason).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use domain::Timestamp;
use domain::delivery::{DeliveryJob, DeliveryQueue, MAX_RETRY_DELAY, MessageId, QueueError};
use tokio::sync::Notify;
use tokio::time::Instant;

/// SQS's limit on one message, kept here too so a job that works locally works on AWS.
pub const MAX_JOB_BYTES: usize = 256 * 1024;

/// Receives before a message goes to the dead letters (SQS's `maxReceiveCount`).
pub const DEFAULT_MAX_RECEIVES: u32 = 3;

#[derive(Debug, Clone)]
struct Stored {
    message_id: MessageId,
    body: String,
    receive_count: u32,
    /// When the queue first received it (SQS's `SentTimestamp`).
    sent_at: Timestamp,
    /// Not handed out before this (SQS's `DelaySeconds`).
    not_before: Option<Instant>,
}

/// A message set aside, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub reason: String,
}

#[derive(Default)]
struct State {
    next_id: u64,
    ready: VecDeque<Stored>,
    in_flight: usize,
    dead: Vec<DeadLetter>,
}

/// The queue. Cheap to clone: clones share the messages.
#[derive(Clone)]
pub struct MemoryQueue {
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    max_receives: u32,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECEIVES)
    }
}

/// One received message. Settle it with [`Lease::ack`] (done: delete it) or [`Lease::release`]
/// (failed: receive it again). Dropping it unsettled releases it, as SQS redelivers a message
/// whose worker died before deleting it.
pub struct Lease {
    queue: MemoryQueue,
    stored: Stored,
    settled: bool,
}

impl Lease {
    /// The queue's id for this message: the same on every redelivery.
    pub fn message_id(&self) -> &MessageId {
        &self.stored.message_id
    }

    pub fn body(&self) -> &str {
        &self.stored.body
    }

    /// How many times this message has been received, this time included.
    pub fn receive_count(&self) -> u32 {
        self.stored.receive_count
    }

    /// When the queue first received this message: the same on every redelivery.
    pub fn sent_at(&self) -> Timestamp {
        self.stored.sent_at
    }

    pub fn ack(mut self) {
        self.settled = true;
        self.queue.lock().in_flight -= 1;
    }

    pub fn release(self) {
        // Dropping does it.
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.settled {
            self.queue.put_back(self.stored.clone());
        }
    }
}

impl MemoryQueue {
    pub fn new(max_receives: u32) -> Self {
        Self {
            state: Arc::default(),
            arrived: Arc::default(),
            max_receives: max_receives.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind, still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a message body as is, as a backend would (no validation: workers meet what arrives).
    pub fn send_raw(&self, body: impl Into<String>) -> MessageId {
        self.send_after(body.into(), Duration::ZERO)
    }

    fn send_after(&self, body: String, delay: Duration) -> MessageId {
        let mut state = self.lock();
        state.next_id += 1;
        let message_id = MessageId::parse(format!("local-{}", state.next_id))
            .unwrap_or_else(|_| MessageId::random());
        let delay = delay.min(MAX_RETRY_DELAY);
        state.ready.push_back(Stored {
            message_id: message_id.clone(),
            body,
            receive_count: 0,
            sent_at: now(),
            not_before: (!delay.is_zero()).then(|| Instant::now() + delay),
        });
        drop(state);
        self.arrived.notify_one();
        message_id
    }

    /// Up to `max` messages, waiting at most `wait` for the first one.
    pub async fn receive(&self, max: usize, wait: Duration) -> Vec<Lease> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.arrived.notified();
            let (leases, next_due) = self.take(max);
            if !leases.is_empty() {
                return leases;
            }
            // Wake for a new message, or for the first delayed one coming due.
            let wake = next_due.map_or(deadline, |due| due.min(deadline));
            if tokio::time::timeout_at(wake, notified).await.is_err() && wake == deadline {
                return Vec::new();
            }
        }
    }

    /// Up to `max` messages that are due, and when the next delayed one will be.
    fn take(&self, max: usize) -> (Vec<Lease>, Option<Instant>) {
        let now = Instant::now();
        let mut state = self.lock();
        let mut taken = Vec::new();
        let mut waiting = VecDeque::new();
        while let Some(stored) = state.ready.pop_front() {
            if taken.len() < max && stored.not_before.is_none_or(|due| due <= now) {
                taken.push(stored);
            } else {
                waiting.push_back(stored);
            }
        }
        state.ready = waiting;
        state.in_flight += taken.len();
        let next_due = state.ready.iter().filter_map(|s| s.not_before).min();
        let more = state
            .ready
            .iter()
            .any(|s| s.not_before.is_none_or(|due| due <= now));
        drop(state);
        if more {
            // Wake another waiting worker for what is left.
            self.arrived.notify_one();
        }
        let leases = taken
            .into_iter()
            .map(|mut stored| {
                stored.receive_count += 1;
                stored.not_before = None;
                Lease {
                    queue: self.clone(),
                    stored,
                    settled: false,
                }
            })
            .collect();
        (leases, next_due)
    }

    fn put_back(&self, stored: Stored) {
        let mut state = self.lock();
        state.in_flight -= 1;
        if stored.receive_count >= self.max_receives {
            state.dead.push(DeadLetter {
                body: stored.body,
                reason: format!("failed {} receives", stored.receive_count),
            });
            return;
        }
        state.ready.push_back(stored);
        drop(state);
        self.arrived.notify_one();
    }

    /// Receives after which a released message goes to the dead letters.
    pub fn max_receives(&self) -> u32 {
        self.max_receives
    }

    /// Messages waiting or being worked on: zero once every job is done.
    pub fn outstanding(&self) -> usize {
        let state = self.lock();
        state.ready.len() + state.in_flight
    }

    /// The bodies of messages received `max_receives` times without success, or set aside by
    /// a worker.
    pub fn dead_letters(&self) -> Vec<String> {
        self.lock().dead.iter().map(|d| d.body.clone()).collect()
    }

    /// The dead letters with their reasons.
    pub fn dead_letters_with_reasons(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    /// Messages waiting for a later delivery (delayed, not yet due).
    pub fn delayed(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .ready
            .iter()
            .filter(|s| s.not_before.is_some_and(|due| due > now))
            .count()
    }
}

fn now() -> Timestamp {
    use domain::Clock as _;
    crate::clock::SystemClock.now()
}

#[async_trait]
impl DeliveryQueue for MemoryQueue {
    async fn enqueue(&self, jobs: Vec<DeliveryJob>) -> Result<(), QueueError> {
        self.enqueue_after(jobs, Duration::ZERO).await
    }

    async fn enqueue_after(
        &self,
        jobs: Vec<DeliveryJob>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let bodies: Vec<String> = jobs.iter().map(DeliveryJob::to_json).collect();
        if let Some(big) = bodies.iter().find(|b| b.len() > MAX_JOB_BYTES) {
            return Err(QueueError::TooLarge {
                bytes: big.len(),
                max: MAX_JOB_BYTES,
            });
        }
        for body in bodies {
            self.send_after(body, delay);
        }
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.lock().dead.push(DeadLetter {
            body: body.to_string(),
            reason: reason.to_string(),
        });
        Ok(())
    }
}
