//! The worker: what a queue consumer (the `fanout` Lambda, the local gateway's workers) does with
//! one message of a delivery queue.
//!
//! 1. Read the message: a backend's job (the backend queue, the smaller schema) or one of the
//!    service's own (its internal queue). A message that can never be delivered (malformed, or
//!    whose frame would be over the message limit) is dead-lettered at once with its reason,
//!    never retried.
//! 2. Read the job's page of the audience (or take its `recipients`).
//! 3. Enqueue the continuation (the next page) *before* posting, so the next page's worker runs
//!    in parallel with this one.
//! 4. Post with the shared fan-out (bounded, retried, AIMD on 429, pruning 410s), starting no
//!    post, retry, read or prune that could end within `job_safety_margin` of the deadline.
//! 5. Hand over what was not delivered (`handover`): the unstarted at once, the throttled or
//!    failing after a pause, and after `MAX_ATTEMPTS` hand-overs dead-letter them.
//!
//! Served plus handed over is exactly the page read, so the audience is covered once per
//! successful run. A run that fails (a read or an enqueue) returns an error and the transport
//! redelivers the message: delivery is at-least-once, and every copy carries the same message id
//! and the same `sentAt`.

use std::sync::Arc;

use crate::connection::ConnectionId;
use crate::fanout::{Audience, Deadline, DeliveryReport, FanOut, SharedWindow};
use crate::message::MessageId;
use crate::ports::{
    ClientNotifier, Clock, ConnectionRepository, PageToken, RepositoryError, Sleeper,
};
use crate::protocol::{self, Frame, FrameError};
use crate::settings::Settings;
use crate::time::Timestamp;

use super::handover::{HandedOver, MAX_ATTEMPTS, hand_over};
use super::job::{DeliveryJob, JobError, JobTarget};
use super::queue::{DeliveryQueue, QueueError};
use crate::lifecycle::LifecycleEvents;
use crate::service::close_socket;
use crate::sessions::{Ban, Bans, ClosingCode, Control, ControlError, Target};
use crate::stream::{AppendError, Keep, NewMessage, ONCE_WINDOW, RoomLog};

/// What a `JobReport::control` names besides the closing codes.
pub const CONTROL_UNBAN: &str = "unban";
pub const CONTROL_FORGET: &str = "forget";

/// A job ready to run with its room message's `seq`, or one its room is too busy to take yet.
enum Sequenced {
    Ready(DeliveryJob),
    Busy(DeliveryJob, std::time::Duration),
}

/// Which queue a message came from: who wrote it decides what it may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The backend queue: backends' publishes, in the smaller schema
    /// ([`DeliveryJob::from_backend_json`]).
    Backend,
    /// The service's internal queue, which only its own functions may write to.
    Service,
}

/// One message as a transport received it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The transport's id for the message, the same on every redelivery: the message id of a
    /// backend job that chose none.
    pub id: &'a MessageId,
    /// When the queue first received it (SQS: `SentTimestamp`), the same on every redelivery:
    /// the `sentAt` of a backend job.
    pub sent_at: Timestamp,
    pub body: &'a str,
    pub source: Source,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// The message id every frame of this run carried (`None`: the message was not readable).
    pub id: Option<MessageId>,
    /// The posts of this run, and what became of the recipients it did not reach.
    pub delivery: DeliveryReport,
    /// Whether the next page was enqueued as a job.
    pub continued: bool,
    /// Jobs enqueued for recipients this run did not reach (the deadline, throttles).
    pub handed_over: usize,
    /// Why the message was dead-lettered instead of delivered, if it was.
    pub dead_lettered: Option<String>,
    /// The control message carried out (`kicked`, `banned`, `unban`, `forget`), if it was one.
    pub control: Option<&'static str>,
    /// Sockets it closed.
    pub closed: u64,
    /// Kept messages a `forget` deleted.
    pub forgotten_messages: usize,
}

impl JobReport {
    fn new(id: Option<MessageId>) -> Self {
        Self {
            id,
            delivery: DeliveryReport::default(),
            continued: false,
            handed_over: 0,
            dead_lettered: None,
            control: None,
            closed: 0,
            forgotten_messages: 0,
        }
    }
}

/// Why a run failed: the transport redelivers the message (at-least-once). A message that could
/// never succeed is not an error: it is dead-lettered and reported in [`JobReport`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    #[error("could not read the audience: {0}")]
    Read(#[from] RepositoryError),
    #[error("could not enqueue the rest of the delivery: {0}")]
    Enqueue(#[from] QueueError),
}

/// Why a message can never be delivered: dead-lettered at once, with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("malformed delivery job: {0}")]
    Malformed(#[from] JobError),
    #[error("malformed control message: {0}")]
    Control(ControlError),
    #[error("the control message needs {0}, which this worker was not given")]
    Unsupported(&'static str),
    #[error("the job's message cannot be sent: {0}")]
    Frame(#[from] FrameError),
    /// It kept arriving too late to start: the safety margin against the function's timeout,
    /// or a batch too slow for it.
    #[error(
        "arrived too late to start {attempts} times (JOB_SAFETY_MARGIN_MS against the function's timeout?)"
    )]
    TooLate { attempts: u32 },
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
    /// The rooms' streams: a room message that has no `seq` yet (a backend's) takes one here.
    log: Option<Arc<dyn RoomLog>>,
    /// Where bans are kept: a backend's `ban`, `unban` and `forget` need it.
    bans: Option<Arc<dyn Bans>>,
    events: Option<Arc<dyn LifecycleEvents>>,
}

impl<R: ConnectionRepository, N: ClientNotifier> DeliveryWorker<R, N> {
    /// `queue` is the service's internal queue: where continuations and hand-overs go, and what
    /// is dead-lettered through.
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
            log: None,
            bans: None,
            events: None,
        }
    }

    /// Where bans are kept, for a backend's `ban`, `unban` and `forget`.
    pub fn with_bans(self, bans: Arc<dyn Bans>) -> Self {
        Self {
            bans: Some(bans),
            ..self
        }
    }

    /// Where the `disconnected` events of the sockets a control message closes go.
    pub fn with_lifecycle_events(self, events: Arc<dyn LifecycleEvents>) -> Self {
        Self {
            events: Some(events),
            ..self
        }
    }

    /// Where rooms' streams are kept: a backend's room message takes its `seq` on its first run,
    /// and keeps it on every redelivery.
    pub fn with_room_log(self, log: Arc<dyn RoomLog>) -> Self {
        Self {
            log: Some(log),
            ..self
        }
    }

    /// Handles one received message: reads it as its source allows, dead-letters it at once if
    /// it can never be delivered, runs it otherwise. `deadline` is when the invocation ends.
    pub async fn handle(
        &self,
        message: Received<'_>,
        deadline: Timestamp,
    ) -> Result<JobReport, WorkError> {
        if message.source == Source::Backend && Control::is_control(message.body) {
            return match Control::from_json(message.body) {
                // A ban runs from when the queue first took the message: a redelivery bans to
                // the same end.
                Ok(control) => self.control(control, message.sent_at, deadline).await,
                Err(e) => {
                    let poison = Poison::Control(e);
                    tracing::warn!(messageId = %message.id, reason = %poison, "malformed control message");
                    self.dead_letter(message.body, None, poison).await
                }
            };
        }
        let job = match message.source {
            Source::Backend => DeliveryJob::from_backend_json(message.body),
            Source::Service => DeliveryJob::from_json(message.body),
        };
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                let poison = Poison::from(e);
                tracing::warn!(messageId = %message.id, reason = %poison, "malformed delivery job");
                return self.dead_letter(message.body, None, poison).await;
            }
        };
        // Every job this one enqueues carries the id and the time, so each copy of the message
        // and each page's frames match, however often the queue hands it out.
        let job = DeliveryJob {
            id: Some(job.id_or(message.id)),
            sent_at: Some(job.sent_at.unwrap_or(message.sent_at.as_millis())),
            ..job
        };
        self.run(job, deadline).await
    }

    /// Runs one of the service's own jobs (its id and `sentAt` set). Nothing is started that
    /// could end within `settings.job_safety_margin` of `deadline`.
    pub async fn run(&self, job: DeliveryJob, deadline: Timestamp) -> Result<JobReport, WorkError> {
        let id = job.id.clone().unwrap_or_else(MessageId::random);
        let job = match self.sequenced(job, &id).await? {
            Sequenced::Ready(job) => job,
            Sequenced::Busy(job, retry_after) => {
                // The room is over its rate: the whole job comes back after the wait, its place
                // in the stream still to take.
                self.queue.enqueue_after(vec![job], retry_after).await?;
                return Ok(JobReport {
                    handed_over: 1,
                    ..JobReport::new(Some(id))
                });
            }
        };
        let frame = match self.frame(&id, &job) {
            Ok(frame) => frame,
            Err(e) => return self.dead_letter(&job.to_json(), Some(id), e.into()).await,
        };
        let mut report = JobReport::new(Some(id));
        let deadline = Deadline {
            at: deadline,
            margin: self.settings.job_safety_margin,
            clock: self.clock.as_ref(),
            sleeper: self.sleeper.as_ref(),
        };
        let fanout = self.fanout(deadline);
        let audience = match &job.target {
            JobTarget::Connection(to) => {
                if job.skip.as_ref() == Some(to) {
                    return Ok(report);
                }
                if !fanout.may_start() {
                    return self.too_late(job, report, &deadline).await;
                }
                let posted = fanout.deliver(to, &frame).await;
                report.delivery = DeliveryReport::default().add(posted);
                let unfinished = (report.delivery.unfinished > 0).then(|| to.clone());
                let handed = self
                    .hand_over(
                        &job,
                        Vec::new(),
                        unfinished.into_iter().collect(),
                        &deadline,
                    )
                    .await?;
                return Ok(report.with(handed));
            }
            JobTarget::Room(room) => Audience::Room(room),
            JobTarget::Everyone => Audience::Everyone,
        };
        if !fanout.may_start() {
            return self.too_late(job, report, &deadline).await;
        }
        // A job with a cursor is the rest of an audience too large to post inline: a window of
        // connections opens while its page is read and the next job queued. (Its room's last
        // page may need fewer: the rest stay for the instance's next jobs. A job with its
        // recipients listed has no wait to open them in, and a new job's audience may be a
        // room of two: neither prepares.)
        if job.recipients.is_none() && job.cursor.is_some() {
            fanout.prepare(usize::MAX);
        }
        let Some(page) = fanout.within(self.page(&fanout, audience, &job)).await else {
            return self.too_late(job, report, &deadline).await;
        };
        let (recipients, next) = page?;
        if let Some(next) = next {
            let continued = fanout.within(self.queue.enqueue(vec![job.continued_at(next)]));
            match continued.await {
                Some(enqueued) => enqueued?,
                None => return self.too_late(job, report, &deadline).await,
            }
            report.continued = true;
        }
        let listed = fanout
            .post_listed(audience, &frame, job.skip.as_ref(), recipients)
            .await;
        report.delivery = listed.report;
        let handed = self
            .hand_over(&job, listed.unstarted, listed.unfinished, &deadline)
            .await?;
        Ok(report.with(handed))
    }

    /// Carries out a backend's control message: the sockets it closes get a `closing` frame first
    /// (their rows, memberships and presence as a `$disconnect` would); a ban is kept until its
    /// end. Idempotent: a redelivery closes nothing twice and bans to the same end.
    async fn control(
        &self,
        control: Control,
        sent_at: Timestamp,
        deadline: Timestamp,
    ) -> Result<JobReport, WorkError> {
        let mut report = JobReport::new(None);
        let now = self.clock.now();
        let deadline = Deadline {
            at: deadline,
            margin: self.settings.job_safety_margin,
            clock: self.clock.as_ref(),
            sleeper: self.sleeper.as_ref(),
        };
        let fanout = self.fanout(deadline);
        if let Control::Disconnect { target, reason } = &control {
            let targets = match target {
                Target::Principal(principal) => self.repo.connections_of(principal, now).await?,
                Target::Connection(id) => vec![id.clone()],
            };
            let code = ClosingCode::Kicked;
            self.close_all(&fanout, &targets, code, reason.as_deref(), &mut report)
                .await?;
            report.control = Some(code.as_str());
            return Ok(report);
        }
        // Every other control keeps, lifts or deletes a ban.
        let Some(bans) = self.bans.as_deref() else {
            return self
                .dead_letter(&control.to_json(), None, Poison::Unsupported("a ban store"))
                .await;
        };
        match &control {
            Control::Ban {
                principal,
                ban_for,
                reason,
            } => {
                let ban = Ban {
                    until: sent_at.saturating_add(*ban_for),
                    reason: reason.clone(),
                };
                bans.ban(principal, &ban).await?;
                let targets = self.repo.connections_of(principal, now).await?;
                let code = ClosingCode::Banned;
                self.close_all(&fanout, &targets, code, reason.as_deref(), &mut report)
                    .await?;
                report.control = Some(code.as_str());
            }
            Control::Unban { principal } => {
                bans.unban(principal).await?;
                report.control = Some(CONTROL_UNBAN);
            }
            Control::Forget { principal, rooms } => {
                let targets = self.repo.connections_of(principal, now).await?;
                let mut all_rooms: std::collections::BTreeSet<_> = rooms.iter().cloned().collect();
                for id in &targets {
                    all_rooms.extend(self.repo.rooms_of(id, now).await?);
                }
                let reason = Some("forgotten");
                self.close_all(&fanout, &targets, ClosingCode::Kicked, reason, &mut report)
                    .await?;
                bans.forget(principal).await?;
                if let Some(log) = &self.log {
                    for room in &all_rooms {
                        report.forgotten_messages += log.forget(room, principal).await?;
                    }
                }
                report.control = Some(CONTROL_FORGET);
            }
            // Carried out above.
            Control::Disconnect { .. } => {}
        }
        Ok(report)
    }

    /// Closes each of `targets` with `code` (`closing` frame first), counting the sockets that
    /// were still open.
    async fn close_all(
        &self,
        fanout: &FanOut<'_>,
        targets: &[crate::connection::ConnectionId],
        code: ClosingCode,
        reason: Option<&str>,
        report: &mut JobReport,
    ) -> Result<(), WorkError> {
        for id in targets {
            if close_socket(fanout, self.events.as_deref(), id, code, reason).await? {
                report.closed += 1;
            }
        }
        Ok(())
    }

    /// A room message without its `seq` takes one now, idempotently by message id: a redelivered
    /// backend job gets the `seq` its first run took.
    async fn sequenced(&self, job: DeliveryJob, id: &MessageId) -> Result<Sequenced, WorkError> {
        let (Some(log), JobTarget::Room(room), None) = (&self.log, &job.target, job.seq) else {
            return Ok(Sequenced::Ready(job));
        };
        let now = self.clock.now();
        let history = (!self.settings.history_ttl.is_zero())
            .then(|| now.saturating_add(self.settings.history_ttl));
        let keep = Keep {
            message_until: history,
            once_until: Some(now.saturating_add(self.settings.history_ttl.max(ONCE_WINDOW))),
        };
        let message = NewMessage {
            id: id.clone(),
            from: job.from.clone(),
            principal: job.principal.clone(),
            data: job.data.get().to_owned(),
            sent_at: job.sent_at.unwrap_or(now.as_millis()),
        };
        match log.append(room, &message, keep, now).await {
            Ok(seq) => Ok(Sequenced::Ready(DeliveryJob {
                seq: Some(seq),
                ..job
            })),
            Err(AppendError::Busy { retry_after }) => Ok(Sequenced::Busy(job, retry_after)),
            Err(AppendError::Repository(e)) => Err(WorkError::Read(e)),
        }
    }

    /// Too late to start: the whole job goes back as its next attempt, so a job that keeps
    /// arriving too late reaches the dead-letter queue instead of circling forever (a message
    /// re-enqueued is a new one to SQS, whose receive count starts again at 0).
    async fn too_late(
        &self,
        job: DeliveryJob,
        mut report: JobReport,
        deadline: &Deadline<'_>,
    ) -> Result<JobReport, WorkError> {
        let again = job.clone().tried_again();
        if again.attempt > MAX_ATTEMPTS {
            let too_late = Poison::TooLate {
                attempts: MAX_ATTEMPTS,
            };
            return self.dead_letter(&job.to_json(), report.id, too_late).await;
        }
        self.within_the_end(deadline, self.queue.enqueue(vec![again]))
            .await?;
        report.handed_over = 1;
        Ok(report)
    }

    async fn hand_over(
        &self,
        job: &DeliveryJob,
        unstarted: Vec<ConnectionId>,
        unfinished: Vec<ConnectionId>,
        deadline: &Deadline<'_>,
    ) -> Result<HandedOver, WorkError> {
        if unstarted.is_empty() && unfinished.is_empty() {
            return Ok(HandedOver::default());
        }
        let handed = hand_over(self.queue.as_ref(), job, unstarted, unfinished);
        Ok(self.within_the_end(deadline, handed).await?)
    }

    /// What must happen before the invocation ends (the margin is sized for it): an error, so
    /// the transport redelivers the job, if even that runs out of time.
    async fn within_the_end<T>(
        &self,
        deadline: &Deadline<'_>,
        work: impl Future<Output = Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        deadline.bound_to_the_end(work).await.unwrap_or_else(|| {
            Err(QueueError::Unavailable(
                "the invocation's deadline came before the queue answered".into(),
            ))
        })
    }

    async fn dead_letter(
        &self,
        body: &str,
        id: Option<MessageId>,
        poison: Poison,
    ) -> Result<JobReport, WorkError> {
        let reason = poison.to_string();
        let id = id.as_ref().map(MessageId::as_str).unwrap_or_default();
        tracing::error!(messageId = id, reason = %reason, "delivery job dead-lettered");
        self.queue.dead_letter(body, &reason).await?;
        Ok(JobReport {
            dead_lettered: Some(reason),
            ..JobReport::new(MessageId::parse(id).ok())
        })
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
            seq: job.seq,
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

impl JobReport {
    fn with(mut self, handed: HandedOver) -> Self {
        self.delivery.requeued += handed.requeued;
        self.delivery.given_up += handed.given_up;
        self.handed_over += handed.jobs;
        self
    }
}
