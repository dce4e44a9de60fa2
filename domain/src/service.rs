//! The use cases: what `$connect`, `$disconnect` and every client message do.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::connection::{
    API_GATEWAY_MAX_CONNECTION, ConnectRequest, Connection, ConnectionId, Sender,
};
use crate::fanout::{Audience, DeliveryReport, FanOut, FanOutError, Outcome};
use crate::ports::{
    ClientNotifier, Clock, ConnectionRepository, JoinError, Removed, RepositoryError, Sleeper,
};
use crate::protocol::{self, Action, ErrorCode, Frame, FrameError, Request, RequestId};
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
    settings: Settings,
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
            settings,
        }
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
            expires_at: request
                .connected_at
                .saturating_add(API_GATEWAY_MAX_CONNECTION + self.settings.ttl_margin),
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
        Ok(self.repo.remove(id).await?)
    }

    /// Handles one inbound frame from `sender`. Client mistakes are answered with an `error` frame
    /// and `Ok(Handled::Rejected)`; only service failures are `Err`.
    pub async fn handle_message(
        &self,
        sender: &Sender,
        body: &[u8],
    ) -> Result<Handled, HandleError> {
        let request = match protocol::parse_request(body, self.settings.max_message_bytes) {
            Ok(request) => request,
            Err(e) => {
                return Ok(self
                    .reject(sender, e.code, &e.message, e.request_id.as_ref())
                    .await);
            }
        };
        let Request { request_id, action } = request;
        let rid = request_id.as_ref();
        let name = action.name();
        let report = match action {
            Action::Ping => {
                self.reply(sender, &Frame::Pong { request_id: rid }).await;
                return Ok(done(name));
            }
            Action::WhoAmI => {
                let frame = Frame::Identity {
                    connection_id: &sender.id,
                    principal: sender.principal.as_ref(),
                    request_id: rid,
                };
                self.reply(sender, &frame).await;
                return Ok(done(name));
            }
            Action::SendMessage { data } => {
                match self.fan_out(sender, Audience::Everyone, &data, rid).await? {
                    Ok(report) => report,
                    Err(code) => return Ok(code),
                }
            }
            Action::Publish { room, data } => {
                let now = self.clock.now();
                if !self.repo.rooms_of(&sender.id, now).await?.contains(&room) {
                    let message = format!("you are not a member of room {room}; join it first");
                    return Ok(self
                        .reject(sender, ErrorCode::NotMember, &message, rid)
                        .await);
                }
                match self
                    .fan_out(sender, Audience::Room(&room), &data, rid)
                    .await?
                {
                    Ok(report) => report,
                    Err(code) => return Ok(code),
                }
            }
            Action::Send { to, data } => match self.send_direct(sender, &to, &data, rid).await? {
                Ok(report) => report,
                Err(code) => return Ok(code),
            },
            Action::Join { room } => match self.join(sender, &room, rid).await? {
                Some(code) => return Ok(code),
                None => DeliveryReport::default(),
            },
            Action::Leave { room } => {
                self.repo.leave(&sender.id, &room).await?;
                DeliveryReport::default()
            }
        };
        if let Some(request_id) = rid {
            let ack = Frame::Ack {
                request_id,
                delivered: report.delivered,
                gone: report.gone,
                failed: report.failed,
            };
            self.reply(sender, &ack).await;
        }
        Ok(Handled::Done {
            action: name,
            report,
        })
    }

    async fn fan_out(
        &self,
        sender: &Sender,
        audience: Audience<'_>,
        data: &RawValue,
        rid: Option<&RequestId>,
    ) -> Result<Result<DeliveryReport, Handled>, HandleError> {
        let room = match audience {
            Audience::Everyone => None,
            Audience::Room(room) => Some(room),
        };
        let frame = match self.encode_message(sender, room, data) {
            Ok(frame) => frame,
            Err(e) => return Ok(Err(self.reject_frame(sender, e, rid).await)),
        };
        let skip = (!self.settings.echo_to_sender).then_some(&sender.id);
        let report = self
            .fanout()
            .broadcast(audience, &frame, skip, self.clock.now())
            .await?;
        Ok(Ok(report))
    }

    async fn send_direct(
        &self,
        sender: &Sender,
        to: &ConnectionId,
        data: &RawValue,
        rid: Option<&RequestId>,
    ) -> Result<Result<DeliveryReport, Handled>, HandleError> {
        let frame = match self.encode_message(sender, None, data) {
            Ok(frame) => frame,
            Err(e) => return Ok(Err(self.reject_frame(sender, e, rid).await)),
        };
        let unknown = format!("connection {to} is not connected");
        if self.repo.get(to, self.clock.now()).await?.is_none() {
            return Ok(Err(self
                .reject(sender, ErrorCode::UnknownConnection, &unknown, rid)
                .await));
        }
        let outcome = self.fanout().deliver(to, &frame).await;
        if outcome == Outcome::Gone {
            return Ok(Err(self
                .reject(sender, ErrorCode::UnknownConnection, &unknown, rid)
                .await));
        }
        Ok(Ok(DeliveryReport::default().add(outcome)))
    }

    async fn join(
        &self,
        sender: &Sender,
        room: &RoomName,
        rid: Option<&RequestId>,
    ) -> Result<Option<Handled>, HandleError> {
        let max = self.settings.max_rooms_per_connection;
        match self
            .repo
            .join(&sender.id, room, max, self.clock.now())
            .await
        {
            Ok(()) => Ok(None),
            Err(JoinError::TooManyRooms { max }) => {
                let message =
                    format!("a connection may be in at most {max} rooms; leave one first");
                Ok(Some(
                    self.reject(sender, ErrorCode::TooManyRooms, &message, rid)
                        .await,
                ))
            }
            Err(JoinError::NotConnected) => {
                let message = "this connection is not registered (it may have expired): reconnect";
                Ok(Some(
                    self.reject(sender, ErrorCode::UnknownConnection, message, rid)
                        .await,
                ))
            }
            Err(JoinError::Repository(e)) => Err(e.into()),
        }
    }

    fn encode_message(
        &self,
        sender: &Sender,
        room: Option<&RoomName>,
        data: &RawValue,
    ) -> Result<Vec<u8>, FrameError> {
        let frame = Frame::Message {
            from: &sender.id,
            principal: sender.principal.as_ref(),
            room,
            data,
            sent_at: self.clock.now().as_millis(),
        };
        protocol::encode(&frame, self.settings.max_message_bytes)
    }

    async fn reject_frame(
        &self,
        sender: &Sender,
        error: FrameError,
        rid: Option<&RequestId>,
    ) -> Handled {
        self.reject(sender, ErrorCode::TooLarge, &error.to_string(), rid)
            .await
    }

    async fn reject(
        &self,
        sender: &Sender,
        code: ErrorCode,
        message: &str,
        request_id: Option<&RequestId>,
    ) -> Handled {
        tracing::info!(connectionId = %sender.id, code = code.as_str(), "request refused: {message}");
        let frame = Frame::Error {
            code,
            message,
            request_id,
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
        }
    }
}

fn done(action: &'static str) -> Handled {
    Handled::Done {
        action,
        report: DeliveryReport::default(),
    }
}
