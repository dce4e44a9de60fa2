//! The worker: what a queue consumer (the `fanout` Lambda, the local gateway's workers) does with
//! one delivery job.
//!
//! 1. Read the job's page of the audience (or take its `recipients`).
//! 2. Enqueue the continuation (the next page) *before* posting, so the next page's worker runs
//!    in parallel with this one.
//! 3. Post with the shared fan-out (bounded, retried, AIMD on 429, pruning 410s), starting no
//!    post and no retry that could end within `job_safety_margin` of the deadline.
//! 4. Hand what was not started over to the queue, as jobs naming exactly those recipients.
//!
//! Served plus handed over is exactly the page read, so the audience is covered once per
//! successful run. A run that fails (read or enqueue) returns an error and the transport
//! redelivers the job: delivery is at-least-once, and every copy carries the same message id.

use std::sync::Arc;

use crate::connection::ConnectionId;
use crate::fanout::{Audience, Deadline, DeliveryReport, FanOut, SharedWindow};
use crate::ports::{
    ClientNotifier, Clock, ConnectionRepository, PageToken, RepositoryError, Sleeper,
};
use crate::protocol::{self, Frame, FrameError};
use crate::settings::Settings;
use crate::time::Timestamp;

use super::inline::RECIPIENTS_PER_JOB;
use super::job::{DeliveryJob, JobTarget};
use super::queue::{DeliveryQueue, QueueError};
use crate::message::MessageId;

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// The message id every frame of this run carried.
    pub id: MessageId,
    /// The posts of this run.
    pub delivery: DeliveryReport,
    /// Whether the next page was enqueued as a job.
    pub continued: bool,
    /// Recipients handed over to new jobs because the deadline was near.
    pub handed_over: usize,
}

/// Why a run failed. Every variant means "redeliver this job" (at-least-once); `Frame` can never
/// succeed, so it ends in the dead-letter queue after the transport's receive limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    #[error("could not read the audience: {0}")]
    Read(#[from] RepositoryError),
    #[error("could not enqueue the rest of the delivery: {0}")]
    Enqueue(#[from] QueueError),
    #[error("the job's message cannot be sent: {0}")]
    Frame(#[from] FrameError),
}

impl WorkError {
    /// Whether a redelivery could succeed (a transport may dead-letter the others at once).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, WorkError::Frame(_))
    }
}

pub struct DeliveryWorker<R, N> {
    repo: R,
    notifier: N,
    queue: Arc<dyn DeliveryQueue>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    settings: Settings,
    /// Posts in flight, learned across jobs: every job shares the account's `@connections` quota.
    window: SharedWindow,
}

impl<R: ConnectionRepository, N: ClientNotifier> DeliveryWorker<R, N> {
    pub fn new(
        repo: R,
        notifier: N,
        queue: Arc<dyn DeliveryQueue>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        settings: Settings,
    ) -> Self {
        Self {
            window: SharedWindow::new(settings.fanout_concurrency),
            repo,
            notifier,
            queue,
            clock,
            sleeper,
            settings,
        }
    }

    /// Runs one job. `queue_message_id` is the transport's id for the message that carried it
    /// (the same on every redelivery): the message id of a backend job that chose none.
    /// `deadline` is when the invocation ends; nothing is started that could end within
    /// `settings.job_safety_margin` of it.
    pub async fn run(
        &self,
        queue_message_id: &MessageId,
        job: DeliveryJob,
        deadline: Timestamp,
    ) -> Result<JobReport, WorkError> {
        let id = job.id_or(queue_message_id);
        // Every job this one enqueues carries the id and the time, so each page's frames match.
        let job = DeliveryJob {
            id: Some(id.clone()),
            sent_at: Some(job.sent_at.unwrap_or(self.clock.now().as_millis())),
            ..job
        };
        let frame = self.frame(&id, &job)?;
        let mut report = JobReport {
            id,
            delivery: DeliveryReport::default(),
            continued: false,
            handed_over: 0,
        };
        let deadline = Deadline {
            at: deadline,
            clock: self.clock.as_ref(),
        };
        let margin = self.settings.job_safety_margin;
        if !deadline.leaves(std::time::Duration::ZERO, margin) {
            // Too late to read even one page: the whole job goes back, unchanged.
            self.queue.enqueue(vec![job]).await?;
            report.handed_over = 1;
            return Ok(report);
        }
        let fanout = self.fanout(deadline);
        let audience = match &job.target {
            JobTarget::Connection(to) => {
                if job.skip.as_ref() != Some(to) {
                    report.delivery =
                        DeliveryReport::default().add(fanout.deliver(to, &frame).await);
                }
                return Ok(report);
            }
            JobTarget::Room(room) => Audience::Room(room),
            JobTarget::Everyone => Audience::Everyone,
        };
        let (recipients, next) = self.page(&fanout, audience, &job).await?;
        if let Some(next) = next {
            self.queue.enqueue(vec![job.continued_at(next)]).await?;
            report.continued = true;
        }
        let listed = fanout
            .post_listed(audience, &frame, job.skip.as_ref(), recipients, &mut || {
                deadline.leaves(std::time::Duration::ZERO, margin)
            })
            .await;
        report.delivery = listed.report;
        if !listed.unstarted.is_empty() {
            report.handed_over = listed.unstarted.len();
            let hand_overs = listed
                .unstarted
                .chunks(RECIPIENTS_PER_JOB)
                .map(|ids| job.handed_over_to(ids.to_vec()))
                .collect();
            self.queue.enqueue(hand_overs).await?;
        }
        Ok(report)
    }

    /// The job's recipients: its own list, or one page read at its cursor (and where the next
    /// page starts).
    async fn page(
        &self,
        fanout: &FanOut<'_>,
        audience: Audience<'_>,
        job: &DeliveryJob,
    ) -> Result<(Vec<ConnectionId>, Option<PageToken>), RepositoryError> {
        if let Some(recipients) = &job.recipients {
            return Ok((recipients.clone(), None));
        }
        let page = fanout.read_page(audience, job.cursor.clone()).await?;
        Ok((page.items, page.next))
    }

    fn frame(&self, id: &MessageId, job: &DeliveryJob) -> Result<Vec<u8>, FrameError> {
        let room = match &job.target {
            JobTarget::Room(room) => Some(room),
            _ => None,
        };
        let message = Frame::Message {
            id,
            from: job.from.as_ref(),
            principal: job.principal.as_ref(),
            room,
            data: &job.data,
            sent_at: job.sent_at.unwrap_or_default(),
        };
        protocol::encode(&message, self.settings.max_message_bytes)
    }

    fn fanout<'a>(&'a self, deadline: Deadline<'a>) -> FanOut<'a> {
        FanOut {
            repo: &self.repo,
            notifier: &self.notifier,
            sleeper: self.sleeper.as_ref(),
            settings: &self.settings,
            now: self.clock.now(),
            deadline: Some(deadline),
            window: Some(&self.window),
        }
    }
}
