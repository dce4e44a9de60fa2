//! [`Cx`]: what one request's action runs with, and the steps actions share: access checks,
//! encoding, delivering a message (inline, and queued past `inline_recipients`), replying.

use serde_json::value::RawValue;

use crate::auth::TokenVerifier;
use crate::connection::{ConnectionId, Sender};
use crate::deadline::Deadline;
use crate::delivery::handover::hand_over;
use crate::delivery::{DeliveryJob, DeliveryQueue, JobTarget};
use crate::fanout::{Audience, DeliveryReport, FanOut};
use crate::hooks::{Hooks, JoinAttempt, Lookup, Publication, PublishTarget, Rejection};
use crate::lifecycle::{LifecycleEvent, LifecycleEvents, LifecycleKind};
use crate::message::MessageId;
use crate::ports::{ClientNotifier, Clock, ConnectionRepository, RoomAccess, RoomPolicy, Sleeper};
use crate::protocol::{self, ErrorCode, Frame, RequestId};
use crate::room::RoomName;
use crate::settings::Settings;
use crate::stream::{AppendError, Keep, NewMessage, RoomLog, Seq};
use crate::time::Timestamp;

use super::steps::{Delivered, Outcome, Refusal, Step, Stop};
use super::{HandleError, Handled};

/// One request: who sent it, its `requestId`, and the ports and settings of the service.
pub struct Cx<'a> {
    pub repo: &'a dyn ConnectionRepository,
    pub notifier: &'a dyn ClientNotifier,
    pub clock: &'a dyn Clock,
    pub sleeper: &'a dyn Sleeper,
    pub policy: &'a dyn RoomPolicy,
    pub queue: Option<&'a dyn DeliveryQueue>,
    pub settings: &'a Settings,
    pub hooks: &'a dyn Hooks,
    /// The rooms' streams; `None`: messages get no `seq` and there is no history.
    pub log: Option<&'a dyn RoomLog>,
    /// Where joins and leaves are told to backends.
    pub events: Option<&'a dyn LifecycleEvents>,
    /// How `reauth` checks a token; `None`: it is refused.
    pub verifier: Option<&'a dyn TokenVerifier>,
    /// A banned principal's `reauth` is refused.
    pub bans: Option<&'a dyn crate::sessions::Bans>,
    /// Who sent the request, from API Gateway's request context (never from the body).
    pub sender: &'a Sender,
    pub request_id: Option<&'a RequestId>,
    /// When the invocation ends (API Gateway's 29 s, or the Lambda's timeout): nothing is
    /// started within `job_safety_margin` of it, and what is left is handed to the queue.
    pub deadline: Option<Timestamp>,
}

impl Cx<'_> {
    /// The `on_publish` hook's verdict on the sender's `data` for `target`: the data to deliver
    /// (maybe rewritten), or `rejected` with the hook's reason.
    pub async fn on_publish(
        &self,
        target: PublishTarget<'_>,
        data: Box<RawValue>,
    ) -> Step<Box<RawValue>> {
        let mut publication = Publication {
            sender: self.sender,
            target,
            data,
            lookup: self.lookup(),
        };
        self.hooks
            .on_publish(&mut publication)
            .await
            .map_err(rejected)?;
        Ok(publication.data)
    }

    /// The `on_join` hook's verdict on the sender joining `room`.
    pub async fn on_join(&self, room: &RoomName) -> Step<()> {
        let join = JoinAttempt {
            sender: self.sender,
            room,
            lookup: self.lookup(),
        };
        self.hooks.on_join(&join).await.map_err(rejected)
    }

    fn lookup(&self) -> Lookup<'_> {
        Lookup {
            repo: self.repo,
            now: self.clock.now(),
        }
    }

    /// Tells backends (when a lifecycle events adapter is wired) that the sender did `kind`.
    pub async fn publish_event(&self, kind: LifecycleKind) {
        if let Some(events) = self.events {
            let event = LifecycleEvent {
                kind,
                connection: self.sender.id.clone(),
                principal: self.sender.principal.clone(),
                at: self.clock.now(),
            };
            events.publish(&event).await;
        }
    }

    /// Refuses with `forbidden` unless the room policy lets the sender do this in `room`.
    pub fn require_access(&self, room: &RoomName, access: RoomAccess) -> Step<()> {
        if self.policy.allows(self.sender, room, access) {
            return Ok(());
        }
        let verb = match access {
            RoomAccess::Join => "enter",
            RoomAccess::Publish => "speak in",
            RoomAccess::ReadHistory => "read the history of",
        };
        Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("you may not {verb} room {room}"),
        )
        .into())
    }

    /// Refuses with `not_member` unless the sender is in `room` now (a consistent read).
    pub async fn require_member(&self, room: &RoomName) -> Step<()> {
        if self
            .repo
            .rooms_of(&self.sender.id, self.clock.now())
            .await?
            .contains(room)
        {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::NotMember,
            format!("you are not a member of room {room}; join it first"),
        )
        .into())
    }

    /// A `message` frame from the sender.
    pub fn message<'a>(
        &'a self,
        id: &'a MessageId,
        room: Option<&'a RoomName>,
        seq: Option<Seq>,
        data: &'a RawValue,
        sent_at: u64,
    ) -> Frame<'a> {
        Frame::Message {
            id,
            from: Some(&self.sender.id),
            principal: self.sender.principal.as_ref(),
            room,
            seq,
            data,
            sent_at,
        }
    }

    /// When messages appended now stop being kept; `None`: no history.
    pub fn history_until(&self) -> Option<Timestamp> {
        (!self.settings.history_ttl.is_zero())
            .then(|| self.clock.now().saturating_add(self.settings.history_ttl))
    }

    /// Appends the sender's new message to `room`'s stream: its `seq`, or `room_busy` when the
    /// room is over the rate its stream sustains (nothing is published then). `None` without a
    /// log.
    pub async fn append(
        &self,
        room: &RoomName,
        id: &MessageId,
        data: &RawValue,
        sent_at: u64,
    ) -> Step<Option<Seq>> {
        let Some(log) = self.log else {
            return Ok(None);
        };
        let message = NewMessage {
            id: id.clone(),
            from: Some(self.sender.id.clone()),
            principal: self.sender.principal.clone(),
            data: data.get().to_owned(),
            sent_at,
        };
        let keep = Keep {
            message_until: self.history_until(),
            once_until: None,
        };
        match log.append(room, &message, keep, self.clock.now()).await {
            Ok(seq) => Ok(Some(seq)),
            Err(AppendError::Busy { retry_after }) => Err(Refusal {
                retry_after: Some(retry_after),
                ..Refusal::new(
                    ErrorCode::RoomBusy,
                    format!(
                        "room {room} is publishing faster than it can keep in order: retry after {} ms",
                        retry_after.as_millis()
                    ),
                )
            }
            .into()),
            Err(AppendError::Repository(e)) => Err(e.into()),
        }
    }

    /// Encodes a frame for others, refusing with `too_large` before anybody is sent anything.
    pub fn encode(&self, frame: &Frame<'_>) -> Step<Vec<u8>> {
        protocol::encode(frame, self.settings.max_message_bytes)
            .map_err(|e| Refusal::new(ErrorCode::TooLarge, e.to_string()).into())
    }

    /// Delivers a new message from the sender to `target` (everyone or a room): everything
    /// inline without a queue; with one, the first `inline_recipients` inline and the rest as
    /// jobs, queued before the first post.
    pub async fn deliver(&self, target: JobTarget, data: &RawValue) -> Step<Outcome> {
        let id = MessageId::random();
        let (room, audience) = match &target {
            JobTarget::Room(room) => (Some(room), Audience::Room(room)),
            _ => (None, Audience::Everyone),
        };
        let sent_at = self.clock.now().as_millis();
        // Checked before the message takes its place in the room's stream.
        self.encode(&self.message(&id, room, room.map(|_| Seq::MAX), data, sent_at))?;
        let seq = match room {
            Some(room) => self.append(room, &id, data, sent_at).await?,
            None => None,
        };
        let frame = self.encode(&self.message(&id, room, seq, data, sent_at))?;
        let skip = self.echo_skip();
        let fanout = self.fanout();
        let Some(queue) = self.queue else {
            let report = fanout.broadcast(audience, &frame, skip).await?;
            return Ok(Outcome::Done(Delivered::inline(report.unfinished_failed())));
        };
        // The job a queued part carries: this message, from this sender, at this time.
        let job = DeliveryJob {
            from: Some(self.sender.id.clone()),
            principal: self.sender.principal.clone(),
            skip: skip.cloned(),
            sent_at: Some(sent_at),
            seq,
            ..DeliveryJob::new(id, target.clone(), data.to_owned())
        };
        let split = crate::delivery::inline::split(
            &fanout,
            audience,
            &job,
            self.settings.inline_recipients,
        )
        .await?;
        let queued = !split.jobs.is_empty();
        if queued {
            // The inline part's connections open while the rest is queued.
            fanout.prepare(split.inline.len());
            queue.enqueue(split.jobs).await.map_err(HandleError::from)?;
        }
        let listed = fanout
            .post_listed(audience, &frame, skip, split.inline)
            .await;
        let mut report = listed.report;
        let handed = hand_over(queue, &job, listed.unstarted, listed.unfinished)
            .await
            .map_err(HandleError::from)?;
        report.requeued += handed.requeued;
        report.given_up += handed.given_up;
        Ok(Outcome::Done(Delivered {
            report,
            queued: queued || handed.jobs > 0,
            seq: None,
        }))
    }

    /// Posts a new message from the sender to one connection: its post's outcome, with an
    /// unfinished post handed to the queue (when there is one) rather than dropped.
    pub async fn deliver_to(
        &self,
        to: &ConnectionId,
        frame: &[u8],
        job: impl FnOnce() -> DeliveryJob,
    ) -> Step<DeliveryReport> {
        let posted = self.fanout().deliver(to, frame).await;
        let report = DeliveryReport::default().add(posted);
        let Some(queue) = self.queue.filter(|_| report.unfinished > 0) else {
            return Ok(report.unfinished_failed());
        };
        let handed = hand_over(queue, &job(), Vec::new(), vec![to.clone()])
            .await
            .map_err(HandleError::from)?;
        Ok(DeliveryReport {
            requeued: handed.requeued,
            given_up: handed.given_up,
            ..report
        })
    }

    /// Who a `sendmessage` or `publish` skips: the sender, unless `echo_to_sender` is on.
    pub fn echo_skip(&self) -> Option<&ConnectionId> {
        (!self.settings.echo_to_sender).then_some(&self.sender.id)
    }

    /// Sends the sender the `ack` of a request that had a `requestId`, as [`Self::answer`] does:
    /// for an action that has more to send after it.
    pub async fn ack(&self, delivered: &Delivered) {
        if let Some(request_id) = self.request_id {
            let ack = Frame::Ack {
                request_id,
                delivered: delivered.report.delivered,
                gone: delivered.report.gone,
                failed: delivered.report.failed,
                queued: delivered.queued,
                requeued: delivered.report.requeued,
                seq: delivered.seq,
            };
            self.reply(&ack).await;
        }
    }

    /// Tells the sender how its request ended. An action whose reply frame is itself the answer
    /// (`ping` -> `pong`, `whoami` -> `identity`, both carrying the `requestId`) gets no `ack`: one
    /// request, one answer.
    pub async fn answer(
        &self,
        action: &'static str,
        step: Step<Outcome>,
    ) -> Result<Handled, HandleError> {
        let report = match step {
            Ok(Outcome::Answered) => DeliveryReport::default(),
            Ok(Outcome::Done(delivered)) => {
                self.ack(&delivered).await;
                delivered.report
            }
            Err(Stop::Refused(refusal)) => return Ok(self.refuse(refusal).await),
            Err(Stop::Failed(e)) => return Err(e),
        };
        Ok(Handled::Done { action, report })
    }

    /// Sends the sender an `error` frame. The log line carries the code and, for a frame that is
    /// not JSON, where it broke, but never the message: that may quote the client's content.
    pub async fn refuse(&self, refusal: Refusal) -> Handled {
        let Refusal {
            code,
            message,
            detail,
            retry_after,
        } = refusal;
        tracing::info!(
            connectionId = %self.sender.id,
            code = code.as_str(),
            detail = detail.as_deref(),
            "request refused"
        );
        let frame = Frame::Error {
            code,
            message: &message,
            request_id: self.request_id,
            retry_after_ms: retry_after
                .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        };
        self.reply(&frame).await;
        Handled::Rejected(code)
    }

    /// Replies are small and go to a live sender: a failure is logged, never fatal to the request.
    pub async fn reply(&self, frame: &Frame<'_>) {
        match protocol::encode(frame, self.settings.max_message_bytes) {
            Ok(bytes) => {
                self.fanout().deliver(&self.sender.id, &bytes).await;
            }
            Err(e) => {
                tracing::error!(connectionId = %self.sender.id, error = %e, "could not encode a reply")
            }
        }
    }

    /// A fan-out reading at this moment, with this request's settings.
    pub(crate) fn fanout(&self) -> FanOut<'_> {
        FanOut {
            repo: self.repo,
            notifier: self.notifier,
            sleeper: self.sleeper,
            settings: self.settings,
            now: self.clock.now(),
            deadline: self.deadline.map(|at| Deadline {
                at,
                margin: self.settings.job_safety_margin,
                clock: self.clock,
                sleeper: self.sleeper,
            }),
            window: None,
        }
    }
}

/// A hook's refusal, as the sender hears it.
fn rejected(rejection: Rejection) -> Stop {
    Refusal::new(ErrorCode::Rejected, rejection.message).into()
}
