//! The rules of a serverless WebSocket service, with no AWS in sight.
//!
//! - [`connection`]: who is connected, and for how long API Gateway keeps them.
//! - [`protocol`]: the JSON frames clients send and receive.
//! - [`fanout`]: delivering one frame to many connections, correctly and fast.
//! - [`delivery`]: queued delivery jobs and the `DeliveryQueue` port.
//! - [`service`]: the use cases `$connect`, `$disconnect` and client messages, and the steps
//!   the actions share.
//! - [`actions`]: every client action, one module each.
//! - [`lifecycle`]: connected, disconnected, joined, left: events for backends.
//! - [`hooks`]: where a fork customises connects, messages and joins, in one place.
//! - [`stream`]: room streams: each room message's `seq`, the history kept, replays.
//! - [`sessions`]: closing sockets, bans, token expiry; the backend's control messages.
//! - [`rate_limit`]: the per-connection token bucket, in integer arithmetic.
//! - [`ports`]: what the domain needs from storage, API Gateway and the clock.
//! - `testing` (feature `mocks`): helpers for every crate's tests.

pub mod actions;
pub mod auth;
pub mod connection;
pub mod deadline;
pub mod delivery;
pub mod fanout;
pub mod hooks;
pub mod lifecycle;
pub mod message;
pub mod ports;
pub mod protocol;
pub mod rate_limit;
pub mod room;
pub mod service;
pub mod sessions;
pub mod settings;
pub mod stream;
pub mod time;

#[cfg(any(test, feature = "mocks"))]
pub mod testing;

pub use auth::{Identity, TokenError, TokenVerifier};
pub use connection::{
    API_GATEWAY_IDLE_TIMEOUT, API_GATEWAY_MAX_CONNECTION_DURATION, CONNECT_GRACE, ConnectRequest,
    Connection, ConnectionId, Principal, Sender,
};
pub use delivery::{
    DeliveryJob, DeliveryQueue, DeliveryWorker, JobError, JobReport, JobTarget, QueueError,
    WorkError,
};
pub use fanout::{Audience, DeliveryReport, FanOutError};
pub use hooks::{Admission, Hooks, JoinAttempt, NoHooks, Publication, PublishTarget, Rejection};
pub use message::{MessageId, MessageIdError};
pub use ports::{
    ClientNotifier, Clock, ConnectionRepository, JoinError, Joined, MemberPage, NotifyError,
    OpenRoomPolicy, Page, PageToken, Removed, RepositoryError, RoomAccess, RoomPolicy, Sleeper,
};
pub use rate_limit::{RateLimit, TokenDecision};
pub use room::{Member, RoomGrants, RoomGrantsError, RoomName};
pub use service::{ConnectError, DisconnectError, HandleError, Handled, WebSocketService};
pub use settings::{RetryPolicy, Settings};
pub use time::Timestamp;

#[cfg(test)]
mod tests;
