//! The use cases: what `$connect`, `$disconnect` and every client message do.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use crate::connection::{
    API_GATEWAY_MAX_CONNECTION_DURATION, ConnectRequest, Connection, ConnectionId, Sender,
};
use crate::delivery::{DeliveryJob, DeliveryQueue, JobTarget, MessageId, QueueError};
use crate::fanout::{Audience, DeliveryReport, Departure, FanOut, FanOutError, PostOutcome};
use crate::ports::{
    ClientNotifier, Clock, ConnectionRepository, JoinError, Joined, OpenRoomPolicy, Removed,
    RepositoryError, RoomAccess, RoomPolicy, Sleeper,
};
use crate::protocol::{self, Action, ErrorCode, Frame, Request, RequestId};
use crate::rate_limit::TokenDecision;
use crate::room::RoomName;
use crate::settings::Settings;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("could not store the connection: {0}")]
    Repository(#[from] RepositoryError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectError {
    #[error("could not remove the connection: {0}")]
    Repository(#[from] RepositoryError),
}

/// The service failed, not the client: API Gateway should answer with its own error frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error(transparent)]
    FanOut(#[from] FanOutError),
    /// The part of a broadcast beyond `inline_recipients` could not be queued: nothing was
    /// posted (the queue is asked first).
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How a client message was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The message was refused; the sender got an `error` frame with this code.
    Rejected(ErrorCode),
    /// The action ran. `report` counts the recipients of what it sent (replies to the sender
    /// included only for `send`, where the sender is not a recipient).
    Done {
        action: &'static str,
        report: DeliveryReport,
    },
}

pub struct WebSocketService<R, N> {
    repo: R,
    notifier: N,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    policy: Arc<dyn RoomPolicy>,
    queue: Option<Arc<dyn DeliveryQueue>>,
    settings: Settings,
}

/// Members per `members` frame. Each entry is at most ~810 bytes (a 128-byte id and a 256-byte
/// principal of quotes, each doubled by JSON escaping, plus keys), so 100 of them stay below the
/// 128 KB message limit (a test builds the largest such frame).
pub const MEMBERS_PER_FRAME: usize = 100;

impl<R: ConnectionRepository, N: ClientNotifier> WebSocketService<R, N> {
    pub fn new(
        repo: R,
        notifier: N,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        settings: Settings,
    ) -> Self {
        Self {
            repo,
            notifier,
            clock,
            sleeper,
            policy: Arc::new(OpenRoomPolicy),
            queue: None,
            settings,
        }
    }

    /// Where broadcasts larger than `inline_recipients` send the rest. Without one, everything
    /// is delivered inline.
    pub fn with_delivery_queue(self, queue: Arc<dyn DeliveryQueue>) -> Self {
        Self {
            queue: Some(queue),
            ..self
        }
    }

    /// Who may join and publish where. The default lets everyone in everywhere.
    pub fn with_room_policy(self, policy: Arc<dyn RoomPolicy>) -> Self {
        Self { policy, ..self }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn repository(&self) -> &R {
        &self.repo
    }

    /// Stores a new connection. Sends nothing: API Gateway opens the socket only after `$connect`
    /// returns, so a post now would fail with 410.
    pub async fn connect(&self, request: ConnectRequest) -> Result<Connection, ConnectError> {
        let connection = Connection {
            expires_at: request.connected_at.saturating_add(
                API_GATEWAY_MAX_CONNECTION_DURATION.saturating_add(self.settings.ttl_margin),
            ),
            id: request.id,
            connected_at: request.connected_at,
            principal: request.principal,
            source_ip: request.source_ip,
            user_agent: request.user_agent,
        };
        self.repo.save(&connection).await?;
        Ok(connection)
    }

    /// Forgets a connection and its memberships. Unknown ids are fine: `$disconnect` is
    /// best-effort and may come twice, or after a 410 already pruned the row.
    pub async fn disconnect(&self, id: &ConnectionId) -> Result<Removed, DisconnectError> {
        let removed = self.repo.remove(id).await?;
        self.fanout()
            .announce_departures(vec![Departure::of(id, removed.clone())])
            .await;
        Ok(removed)
    }

    /// Handles one inbound frame from `sender`. Client mistakes are answered with an `error` frame
    /// and `Ok(Handled::Rejected)`; only service failures are `Err`.
    pub async fn handle_message(
        &self,
        sender: &Sender,
        body: &[u8],
    ) -> Result<Handled, HandleError> {
        let Request {
            name,
            request_id,
            action,
        } = match protocol::parse_request(body, self.settings.max_message_bytes) {
            Ok(request) => request,
            Err(e) => {
                let refusal = Refusal {
                    code: e.code,
                    message: e.message,
                    detail: e.detail,
                    retry_after: None,
                };
                return Ok(self.refuse(sender, refusal, e.request_id.as_ref()).await);
            }
        };
        let request_id = request_id.as_ref();
        if let Err(stop) = self.take_token(sender, &action).await {
            return self.answer(sender, name, request_id, Err(stop)).await;
        }
        let step = match action {
            Action::SendMessage { data } => self.send_message(sender, &data).await,
            Action::Send { to, data } => self.send(sender, &to, &data).await,
            Action::Join { room } => self.join(sender, &room).await,
            Action::Leave { room } => self.leave(sender, &room).await,
            Action::Publish { room, data } => self.publish(sender, &room, &data).await,
            Action::Typing { room } => self.typing(sender, &room).await,
            Action::Members { room, cursor } => {
                self.members(sender, &room, cursor, request_id).await
            }
            Action::Ping => self.ping(sender, request_id).await,
            Action::WhoAmI => self.who_am_i(sender, request_id).await,
        };
        self.answer(sender, name, request_id, step).await
    }

    // --- One method per action -------------------------------------------------------------------

    async fn send_message(&self, sender: &Sender, data: &RawValue) -> Step<Outcome> {
        self.deliver(sender, JobTarget::Everyone, data).await
    }

    /// A direct message checks the store before posting: the store, not API Gateway, says who is
    /// connected to this service. An id API Gateway still knows but the store has forgotten
    /// (expired, pruned, or never ours) gets nothing, and the sender learns `unknown_connection`
    /// without a post being spent on it.
    async fn send(&self, sender: &Sender, to: &ConnectionId, data: &RawValue) -> Step<Outcome> {
        let id = MessageId::random();
        let sent_at = self.clock.now().as_millis();
        let frame = self.encode(&self.message(&id, sender, None, data, sent_at))?;
        let unknown = || {
            Refusal::new(
                ErrorCode::UnknownConnection,
                format!("connection {to} is not connected"),
            )
        };
        if self.repo.get(to, self.clock.now()).await?.is_none() {
            return Err(unknown().into());
        }
        let posted = self.fanout().deliver(to, &frame).await;
        if posted.outcome == PostOutcome::Gone {
            return Err(unknown().into());
        }
        Ok(Outcome::Done(Delivered::inline(
            DeliveryReport::default().add(posted),
        )))
    }

    async fn join(&self, sender: &Sender, room: &RoomName) -> Step<Outcome> {
        self.require_access(sender, room, RoomAccess::Join)?;
        let max = self.settings.max_rooms_per_connection;
        match self
            .repo
            .join(&sender.id, room, max, self.clock.now())
            .await
        {
            Ok(Joined::Added) => {
                self.fanout()
                    .announce_arrival(room, &sender.id, sender.principal.as_ref())
                    .await;
                Ok(Outcome::Done(Delivered::default()))
            }
            Ok(Joined::AlreadyMember) => Ok(Outcome::Done(Delivered::default())),
            Err(JoinError::TooManyRooms { max }) => Err(Refusal::new(
                ErrorCode::TooManyRooms,
                format!("a connection may be in at most {max} rooms; leave one first"),
            )
            .into()),
            Err(JoinError::NotConnected) => Err(Refusal::new(
                ErrorCode::UnknownConnection,
                "this connection is not registered (it may have expired): reconnect",
            )
            .into()),
            Err(JoinError::Repository(e)) => Err(e.into()),
        }
    }

    async fn leave(&self, sender: &Sender, room: &RoomName) -> Step<Outcome> {
        // Only a real departure is announced; the read is skipped when presence is off.
        let was_member = self.settings.presence_max_members > 0
            && self
                .repo
                .rooms_of(&sender.id, self.clock.now())
                .await?
                .contains(room);
        self.repo.leave(&sender.id, room).await?;
        if was_member {
            let left = Departure {
                id: sender.id.clone(),
                principal: sender.principal.clone(),
                rooms: vec![room.clone()],
                found_connection: true,
            };
            self.fanout().announce_departures(vec![left]).await;
        }
        Ok(Outcome::Done(Delivered::default()))
    }

    async fn publish(&self, sender: &Sender, room: &RoomName, data: &RawValue) -> Step<Outcome> {
        self.require_access(sender, room, RoomAccess::Publish)?;
        self.require_member(sender, room).await?;
        self.deliver(sender, JobTarget::Room(room.clone()), data)
            .await
    }

    async fn typing(&self, sender: &Sender, room: &RoomName) -> Step<Outcome> {
        // Typing is speaking: a room the policy makes read-only gets no typing either.
        self.require_access(sender, room, RoomAccess::Publish)?;
        self.require_member(sender, room).await?;
        let frame = self.encode(&Frame::Typing {
            from: &sender.id,
            principal: sender.principal.as_ref(),
            room,
        })?;
        // Never echoed, whatever `echo_to_sender` says: the typist knows they are typing. Always
        // inline: an ephemeral hint is not worth a queue hop.
        let report = self
            .fanout()
            .broadcast(Audience::Room(room), &frame, Some(&sender.id))
            .await?;
        Ok(Outcome::Done(Delivered::inline(report)))
    }

    /// One page of the member list: the `members` frame is the answer (it carries the
    /// `requestId`), so no `ack` follows.
    async fn members(
        &self,
        sender: &Sender,
        room: &RoomName,
        cursor: Option<ConnectionId>,
        request_id: Option<&RequestId>,
    ) -> Step<Outcome> {
        self.require_member(sender, room).await?;
        let page = self
            .repo
            .member_list(room, cursor, MEMBERS_PER_FRAME, self.clock.now())
            .await?;
        let frame = Frame::Members {
            room,
            members: &page.members,
            count: page.members.len(),
            cursor: page.next.as_ref(),
            request_id,
        };
        self.reply(sender, &frame).await;
        Ok(Outcome::Answered)
    }

    async fn ping(&self, sender: &Sender, request_id: Option<&RequestId>) -> Step<Outcome> {
        self.reply(sender, &Frame::Pong { request_id }).await;
        Ok(Outcome::Answered)
    }

    async fn who_am_i(&self, sender: &Sender, request_id: Option<&RequestId>) -> Step<Outcome> {
        let frame = Frame::Identity {
            connection_id: &sender.id,
            principal: sender.principal.as_ref(),
            request_id,
        };
        self.reply(sender, &frame).await;
        Ok(Outcome::Answered)
    }

    // --- Steps the actions share -----------------------------------------------------------------

    /// Refuses with `forbidden` unless the room policy lets the sender do this in `room`.
    fn require_access(&self, sender: &Sender, room: &RoomName, access: RoomAccess) -> Step<()> {
        if self.policy.allows(sender, room, access) {
            return Ok(());
        }
        let verb = match access {
            RoomAccess::Join => "enter",
            RoomAccess::Publish => "speak in",
        };
        Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("you may not {verb} room {room}"),
        )
        .into())
    }

    /// Spends one of the sender's rate-limit tokens, or refuses with `rate_limited` and the wait.
    ///
    /// `ping` and `whoami` are exempt: they are answered to the sender alone from the request
    /// context, touch no storage and reach nobody else, and a keepalive must never be refused.
    /// A sender the store does not know is let through: the limit meters live connections, and
    /// the action's own checks (`unknown_connection`) deal with the rest.
    async fn take_token(&self, sender: &Sender, action: &Action) -> Step<()> {
        let limit = self.settings.rate_limit;
        if !limit.is_on() || matches!(action, Action::Ping | Action::WhoAmI) {
            return Ok(());
        }
        match self
            .repo
            .take_token(&sender.id, limit, self.clock.now())
            .await?
        {
            TokenDecision::Taken | TokenDecision::NotConnected => Ok(()),
            TokenDecision::Refused { retry_after } => Err(Refusal {
                retry_after: Some(retry_after),
                ..Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "more than {} messages a second (bursts of {}): retry after {} ms",
                        limit.per_second,
                        limit.burst,
                        retry_after.as_millis()
                    ),
                )
            }
            .into()),
        }
    }

    /// Refuses with `not_member` unless the sender is in `room` now (a consistent read).
    async fn require_member(&self, sender: &Sender, room: &RoomName) -> Step<()> {
        if self
            .repo
            .rooms_of(&sender.id, self.clock.now())
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

    /// A `message` frame from `sender`.
    fn message<'a>(
        &self,
        id: &'a MessageId,
        sender: &'a Sender,
        room: Option<&'a RoomName>,
        data: &'a RawValue,
        sent_at: u64,
    ) -> Frame<'a> {
        Frame::Message {
            id,
            from: Some(&sender.id),
            principal: sender.principal.as_ref(),
            room,
            data,
            sent_at,
        }
    }

    /// Encodes a frame for others, refusing with `too_large` before anybody is sent anything.
    fn encode(&self, frame: &Frame<'_>) -> Step<Vec<u8>> {
        protocol::encode(frame, self.settings.max_message_bytes)
            .map_err(|e| Refusal::new(ErrorCode::TooLarge, e.to_string()).into())
    }

    /// Delivers a new message from `sender` to `target` (everyone or a room): everything
    /// inline without a queue; with one, the first `inline_recipients` inline and the rest as
    /// jobs, queued before the first post.
    async fn deliver(&self, sender: &Sender, target: JobTarget, data: &RawValue) -> Step<Outcome> {
        let id = MessageId::random();
        let (room, audience) = match &target {
            JobTarget::Room(room) => (Some(room), Audience::Room(room)),
            _ => (None, Audience::Everyone),
        };
        let sent_at = self.clock.now().as_millis();
        let frame = self.encode(&self.message(&id, sender, room, data, sent_at))?;
        let skip = self.echo_skip(sender);
        let fanout = self.fanout();
        let Some(queue) = &self.queue else {
            let report = fanout.broadcast(audience, &frame, skip).await?;
            return Ok(Outcome::Done(Delivered::inline(report)));
        };
        // The job a queued part carries: this message, from this sender, at this time.
        let job = DeliveryJob {
            from: Some(sender.id.clone()),
            principal: sender.principal.clone(),
            skip: skip.cloned(),
            sent_at: Some(sent_at),
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
            queue.enqueue(split.jobs).await.map_err(HandleError::from)?;
        }
        let listed = fanout
            .post_listed(audience, &frame, skip, split.inline, &mut || true)
            .await;
        Ok(Outcome::Done(Delivered {
            report: listed.report,
            queued,
        }))
    }

    /// Who a `sendmessage` or `publish` skips: the sender, unless `echo_to_sender` is on.
    fn echo_skip<'a>(&self, sender: &'a Sender) -> Option<&'a ConnectionId> {
        (!self.settings.echo_to_sender).then_some(&sender.id)
    }

    /// Tells the sender how its request ended. An action whose reply frame is itself the answer
    /// (`ping` -> `pong`, `whoami` -> `identity`, both carrying the `requestId`) gets no `ack`: one
    /// request, one answer.
    async fn answer(
        &self,
        sender: &Sender,
        action: &'static str,
        request_id: Option<&RequestId>,
        step: Step<Outcome>,
    ) -> Result<Handled, HandleError> {
        let report = match step {
            Ok(Outcome::Answered) => DeliveryReport::default(),
            Ok(Outcome::Done(Delivered { report, queued })) => {
                if let Some(request_id) = request_id {
                    let ack = Frame::Ack {
                        request_id,
                        delivered: report.delivered,
                        gone: report.gone,
                        failed: report.failed,
                        queued,
                    };
                    self.reply(sender, &ack).await;
                }
                report
            }
            Err(Stop::Refused(refusal)) => {
                return Ok(self.refuse(sender, refusal, request_id).await);
            }
            Err(Stop::Failed(e)) => return Err(e),
        };
        Ok(Handled::Done { action, report })
    }

    /// Sends the sender an `error` frame. The log line carries the code and, for a frame that is
    /// not JSON, where it broke, but never the message: that may quote the client's content.
    async fn refuse(
        &self,
        sender: &Sender,
        refusal: Refusal,
        request_id: Option<&RequestId>,
    ) -> Handled {
        let Refusal {
            code,
            message,
            detail,
            retry_after,
        } = refusal;
        tracing::info!(
            connectionId = %sender.id,
            code = code.as_str(),
            detail = detail.as_deref(),
            "request refused"
        );
        let frame = Frame::Error {
            code,
            message: &message,
            request_id,
            retry_after_ms: retry_after
                .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        };
        self.reply(sender, &frame).await;
        Handled::Rejected(code)
    }

    /// Replies are small and go to a live sender: a failure is logged, never fatal to the request.
    async fn reply(&self, sender: &Sender, frame: &Frame<'_>) {
        match protocol::encode(frame, self.settings.max_message_bytes) {
            Ok(bytes) => {
                self.fanout().deliver(&sender.id, &bytes).await;
            }
            Err(e) => {
                tracing::error!(connectionId = %sender.id, error = %e, "could not encode a reply")
            }
        }
    }

    fn fanout(&self) -> FanOut<'_> {
        FanOut {
            repo: &self.repo,
            notifier: &self.notifier,
            sleeper: self.sleeper.as_ref(),
            settings: &self.settings,
            now: self.clock.now(),
            deadline: None,
            window: None,
        }
    }
}

/// How an action ended, before the sender is answered.
enum Outcome {
    /// The action's own reply was the answer: no `ack`.
    Answered,
    /// The action ran: an `ack` with these counts follows when the request had a `requestId`.
    Done(Delivered),
}

/// What an action delivered inline, and whether it queued the rest.
#[derive(Default)]
struct Delivered {
    report: DeliveryReport,
    queued: bool,
}

impl Delivered {
    fn inline(report: DeliveryReport) -> Self {
        Self {
            report,
            queued: false,
        }
    }
}

/// A client mistake, answered with an `error` frame.
struct Refusal {
    code: ErrorCode,
    /// For the client: may quote its own input back.
    message: String,
    /// For the log: never client content.
    detail: Option<String>,
    /// When the client may try again (`rate_limited` only).
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }
}

/// Why an action stopped before its end: `?` in an action method turns either into this.
enum Stop {
    Refused(Refusal),
    Failed(HandleError),
}

type Step<T> = Result<T, Stop>;

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop::Refused(refusal)
    }
}

impl From<RepositoryError> for Stop {
    fn from(error: RepositoryError) -> Self {
        Stop::Failed(error.into())
    }
}

impl From<HandleError> for Stop {
    fn from(error: HandleError) -> Self {
        Stop::Failed(error)
    }
}

impl From<FanOutError> for Stop {
    fn from(error: FanOutError) -> Self {
        Stop::Failed(error.into())
    }
}
