//! Lifecycle events for backends: who connected, disconnected (and why), joined or left a room.
//! The service tells [`LifecycleEvents`] as each happens; the adapter publishes them (EventBridge
//! in AWS, a webhook and the inspector locally). Publishing never blocks the client's action and
//! never fails it: an adapter that cannot publish counts the failure and goes on.

use async_trait::async_trait;

use crate::connection::{ConnectionId, Principal};
use crate::room::RoomName;
use crate::time::Timestamp;

/// Why a connection ended, as the `disconnected` event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client closed the socket.
    Client,
    /// API Gateway closed it after 10 minutes without a message.
    Idle,
    /// API Gateway closed it at its 2-hour limit.
    Expired,
    /// The operator disconnected it (a `disconnect` control message).
    Kicked,
    /// The operator banned its principal.
    Banned,
    /// Its token expired without a `reauth`.
    TokenExpired,
    /// It vanished (a 410, an abnormal close).
    Gone,
    /// Anything else API Gateway reported.
    Other,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::Client => "client",
            DisconnectReason::Idle => "idle",
            DisconnectReason::Expired => "expired",
            DisconnectReason::Kicked => "kicked",
            DisconnectReason::Banned => "banned",
            DisconnectReason::TokenExpired => crate::sessions::ClosingCode::TokenExpired.as_str(),
            DisconnectReason::Gone => "gone",
            DisconnectReason::Other => "other",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleKind {
    Connected,
    Disconnected(DisconnectReason),
    Joined(RoomName),
    Left(RoomName),
}

impl LifecycleKind {
    /// The event's `detail-type`.
    pub fn name(&self) -> &'static str {
        match self {
            LifecycleKind::Connected => "connected",
            LifecycleKind::Disconnected(_) => "disconnected",
            LifecycleKind::Joined(_) => "joined",
            LifecycleKind::Left(_) => "left",
        }
    }
}

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub kind: LifecycleKind,
    pub connection: ConnectionId,
    pub principal: Option<Principal>,
    pub at: Timestamp,
}

/// The schema's version: `detail.version`.
pub const SCHEMA_VERSION: u32 = 1;

impl LifecycleEvent {
    /// The event's `detail`, in the documented schema (docs/deploying.md, "Lifecycle events").
    pub fn detail(&self) -> serde_json::Value {
        let mut detail = serde_json::json!({
            "version": SCHEMA_VERSION,
            "connectionId": self.connection.as_str(),
            "principal": self.principal.as_ref().map(Principal::as_str),
            "at": self.at.as_millis(),
        });
        match &self.kind {
            LifecycleKind::Connected => {}
            LifecycleKind::Disconnected(reason) => detail["reason"] = reason.as_str().into(),
            LifecycleKind::Joined(room) | LifecycleKind::Left(room) => {
                detail["room"] = room.as_str().into()
            }
        }
        detail
    }
}

/// Where lifecycle events go.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait LifecycleEvents: Send + Sync {
    /// Publishes `event`; never fails the caller (an adapter counts what it could not publish).
    async fn publish(&self, event: &LifecycleEvent);
}
