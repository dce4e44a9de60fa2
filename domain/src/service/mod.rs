//! The use cases: what `$connect`, `$disconnect` and every client message do. Each action lives
//! in its own module under [`crate::actions`]; this module parses, meters and dispatches a message
//! and answers the sender, and [`Cx`] holds the steps actions share.

mod context;
mod sessions;
mod steps;
mod streams;
mod unmetered;

use std::sync::Arc;

pub use context::Cx;
pub(crate) use sessions::close_socket;
pub use steps::{Delivered, Outcome, Refusal, Step, Stop};
pub use unmetered::{Unmetered, UnmeteredLimiter};

use crate::actions::{Request, SessionNeed, parse_request};
use crate::auth::TokenVerifier;
use crate::connection::{
    API_GATEWAY_MAX_CONNECTION_DURATION, ConnectRequest, Connection, ConnectionId, Sender,
};
use crate::delivery::{DeliveryQueue, QueueError};
use crate::fanout::{DeliveryReport, Departure, FanOut, FanOutError};
use crate::hooks::{Hooks, MAX_METADATA_BYTES, NoHooks};
use crate::lifecycle::{DisconnectReason, LifecycleEvent, LifecycleEvents, LifecycleKind};
use crate::ports::{
    ClientNotifier, Clock, ConnectionRepository, OpenRoomPolicy, Removed, RepositoryError,
    RoomPolicy, Sleeper,
};
use crate::protocol::{ErrorCode, RequestId};
use crate::rate_limit::{RateLimit, TokenDecision};
use crate::sessions::{Bans, ClosingCode};
use crate::settings::Settings;
use crate::stream::RoomLog;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("could not store the connection: {0}")]
    Repository(#[from] RepositoryError),
    /// The `on_connect` hook refused the connection: API Gateway answers 403.
    #[error("refused by the service's on_connect hook: {0}")]
    Rejected(String),
    /// The principal is banned until `until`: API Gateway answers 403.
    #[error("the principal is banned until {until:?}")]
    Banned { until: Timestamp },
    /// The `on_connect` hook attached more metadata than a connection keeps.
    #[error("the on_connect hook's metadata is {len} bytes; at most {max} are kept")]
    MetadataTooLong { len: usize, max: usize },
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
    unmetered: UnmeteredLimiter,
    hooks: Arc<dyn Hooks>,
    log: Option<Arc<dyn RoomLog>>,
    bans: Option<Arc<dyn Bans>>,
    events: Option<Arc<dyn LifecycleEvents>>,
    verifier: Option<Arc<dyn TokenVerifier>>,
}

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
            unmetered: UnmeteredLimiter::default(),
            hooks: Arc::new(NoHooks),
            log: None,
            bans: None,
            events: None,
            verifier: None,
        }
    }

    /// Where bans are kept: a banned principal's `$connect` is refused.
    pub fn with_bans(self, bans: Arc<dyn Bans>) -> Self {
        Self {
            bans: Some(bans),
            ..self
        }
    }

    /// Where lifecycle events go (connected, disconnected, joined, left).
    pub fn with_lifecycle_events(self, events: Arc<dyn LifecycleEvents>) -> Self {
        Self {
            events: Some(events),
            ..self
        }
    }

    /// How `reauth` checks a token: the authorizer's own verifier (same keys, issuer, audience,
    /// algorithms). Without one, `reauth` is refused.
    pub fn with_token_verifier(self, verifier: Arc<dyn TokenVerifier>) -> Self {
        Self {
            verifier: Some(verifier),
            ..self
        }
    }

    /// Where rooms' streams are kept: room messages get `seq`, `history` and `join {since}` work.
    /// Without one, messages carry no `seq` and history is off.
    pub fn with_room_log(self, log: Arc<dyn RoomLog>) -> Self {
        Self {
            log: Some(log),
            ..self
        }
    }

    /// The fork's own rules at connect, publish and join ([`Hooks`]); the default has none.
    pub fn with_hooks(self, hooks: Arc<dyn Hooks>) -> Self {
        Self { hooks, ..self }
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
        // One consistent read per connect with a principal, when bans are kept.
        if let (Some(bans), Some(principal)) = (&self.bans, &request.principal)
            && let Some(ban) = bans.ban_of(principal, self.clock.now()).await?
        {
            return Err(ConnectError::Banned { until: ban.until });
        }
        let admission = self
            .hooks
            .on_connect(&request)
            .await
            .map_err(|rejection| ConnectError::Rejected(rejection.message))?;
        if let Some(len) = admission
            .metadata
            .as_ref()
            .map(String::len)
            .filter(|len| *len > MAX_METADATA_BYTES)
        {
            return Err(ConnectError::MetadataTooLong {
                len,
                max: MAX_METADATA_BYTES,
            });
        }
        let connection = Connection {
            metadata: admission.metadata,
            token_expires_at: request.token_expires_at,
            reauth_grants: None,
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
        self.publish_event(
            LifecycleKind::Connected,
            &connection.id,
            connection.principal.clone(),
        )
        .await;
        Ok(connection)
    }

    /// Forgets a connection and its memberships. Unknown ids are fine: `$disconnect` is
    /// best-effort and may come twice, or after a 410 already pruned the row.
    pub async fn disconnect(&self, id: &ConnectionId) -> Result<Removed, DisconnectError> {
        self.disconnect_because(id, DisconnectReason::Other).await
    }

    /// As [`Self::disconnect`], telling backends why (`disconnected`): once, by whoever removed
    /// the row (after the service closed a socket, API Gateway's `$disconnect` finds it gone).
    pub async fn disconnect_because(
        &self,
        id: &ConnectionId,
        reason: DisconnectReason,
    ) -> Result<Removed, DisconnectError> {
        let removed = self.repo.remove(id).await?;
        self.fanout()
            .announce_departures(vec![Departure::of(id, removed.clone())])
            .await;
        if let Some(connection) = &removed.connection {
            self.publish_event(
                LifecycleKind::Disconnected(reason),
                id,
                connection.principal.clone(),
            )
            .await;
        }
        Ok(removed)
    }

    async fn publish_event(
        &self,
        kind: LifecycleKind,
        connection: &ConnectionId,
        principal: Option<crate::connection::Principal>,
    ) {
        if let Some(events) = &self.events {
            let event = LifecycleEvent {
                kind,
                connection: connection.clone(),
                principal,
                at: self.clock.now(),
            };
            events.publish(&event).await;
        }
    }

    /// Handles one inbound frame from `sender`. Client mistakes are answered with an `error` frame
    /// and `Ok(Handled::Rejected)`; only service failures are `Err`.
    pub async fn handle_message(
        &self,
        sender: &Sender,
        body: &[u8],
    ) -> Result<Handled, HandleError> {
        self.handle_message_until(sender, body, None).await
    }

    /// As [`Self::handle_message`], in an invocation that ends at `deadline`: nothing is started
    /// within `job_safety_margin` of it, and the rest of a broadcast is handed to the queue.
    pub async fn handle_message_until(
        &self,
        sender: &Sender,
        body: &[u8],
        deadline: Option<Timestamp>,
    ) -> Result<Handled, HandleError> {
        let Request {
            spec,
            request_id,
            action,
        } = match parse_request(body, self.settings.max_message_bytes) {
            Ok(request) => request,
            Err(e) => {
                let cx = self.cx(sender, e.request_id.as_ref(), deadline);
                if let Some(limited) = self.unmetered_limited(&cx).await {
                    return Ok(limited);
                }
                let refusal = Refusal {
                    code: e.code,
                    message: e.message,
                    detail: e.detail,
                    retry_after: None,
                };
                return Ok(cx.refuse(refusal).await);
            }
        };
        let current = sessions::current(
            &self.repo,
            sender,
            spec.session == SessionNeed::Fresh,
            self.settings.token_leeway,
            self.clock.now(),
        )
        .await?;
        let sender = &current.sender;
        let cx = self.cx(sender, request_id.as_ref(), deadline);
        if !spec.metered
            && let Some(limited) = self.unmetered_limited(&cx).await
        {
            return Ok(limited);
        }
        if current.expired && spec.session != SessionNeed::Any {
            let expired = Refusal::new(
                ErrorCode::TokenExpired,
                "your token has expired: reconnect with a new one (reauth before it expires to stay)",
            );
            let handled = cx.refuse(expired).await;
            let fanout = self.fanout();
            let events = self.events.as_deref();
            sessions::close_socket(&fanout, events, &sender.id, ClosingCode::TokenExpired, None)
                .await?;
            return Ok(handled);
        }
        let step = match self.take_token(sender, spec.metered).await {
            Ok(()) => action.run(&cx).await,
            Err(stop) => Err(stop),
        };
        cx.answer(spec.name, step).await
    }

    /// `None` when the frame is under the unmetered limit; otherwise how it was handled: refused
    /// with `rate_limited` once per wait, dropped unanswered after that.
    async fn unmetered_limited(&self, cx: &Cx<'_>) -> Option<Handled> {
        let limit = self.settings.unmetered_rate_limit;
        match self.unmetered.check(&cx.sender.id, limit, self.clock.now()) {
            Unmetered::Allowed => None,
            Unmetered::Refused { retry_after } => Some(
                cx.refuse(rate_limited(
                    limit,
                    retry_after,
                    "pings, whoamis and malformed frames",
                ))
                .await,
            ),
            Unmetered::Dropped => Some(Handled::Rejected(ErrorCode::RateLimited)),
        }
    }

    /// The context one request's action runs in.
    fn cx<'a>(
        &'a self,
        sender: &'a Sender,
        request_id: Option<&'a RequestId>,
        deadline: Option<Timestamp>,
    ) -> Cx<'a> {
        Cx {
            repo: &self.repo,
            notifier: &self.notifier,
            clock: self.clock.as_ref(),
            sleeper: self.sleeper.as_ref(),
            policy: self.policy.as_ref(),
            queue: self.queue.as_deref(),
            settings: &self.settings,
            hooks: self.hooks.as_ref(),
            log: self.log.as_deref(),
            events: self.events.as_deref(),
            verifier: self.verifier.as_deref(),
            bans: self.bans.as_deref(),
            sender,
            request_id,
            deadline,
        }
    }

    /// Spends one of the sender's rate-limit tokens when the action is `metered` (and one of its
    /// principal's, when that limit is on), or refuses with `rate_limited` and the wait.
    ///
    /// A sender the store does not know is let through: the limit meters live connections, and
    /// the action's own checks (`unknown_connection`) deal with the rest.
    async fn take_token(&self, sender: &Sender, metered: bool) -> Step<()> {
        if !metered {
            return Ok(());
        }
        let now = self.clock.now();
        let per_connection = self.settings.rate_limit;
        if per_connection.is_on()
            && let TokenDecision::Refused { retry_after } = self
                .repo
                .take_token(&sender.id, per_connection, now)
                .await?
        {
            return Err(rate_limited(per_connection, retry_after, "messages").into());
        }
        // A reconnect brings a fresh connection bucket; the principal's spans its connections.
        let per_principal = self.settings.principal_rate_limit;
        if let Some(principal) = sender.principal.as_ref().filter(|_| per_principal.is_on())
            && let TokenDecision::Refused { retry_after } = self
                .repo
                .take_principal_token(principal, per_principal, now)
                .await?
        {
            let what = "messages across your connections";
            return Err(rate_limited(per_principal, retry_after, what).into());
        }
        Ok(())
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

/// Members per `members` frame. Each entry is at most ~810 bytes (a 128-byte id and a 256-byte
/// principal of quotes, each doubled by JSON escaping, plus keys), so 100 of them stay below the
/// 128 KB message limit (a test builds the largest such frame).
pub const MEMBERS_PER_FRAME: usize = 100;

/// The `rate_limited` refusal: what was over which limit, and the exact wait.
fn rate_limited(limit: RateLimit, retry_after: std::time::Duration, what: &str) -> Refusal {
    Refusal {
        retry_after: Some(retry_after),
        ..Refusal::new(
            ErrorCode::RateLimited,
            format!(
                "more than {} {what} a second (bursts of {}): retry after {} ms",
                limit.per_second,
                limit.burst,
                retry_after.as_millis()
            ),
        )
    }
}
