//! The ports: what the domain needs from the outside world, and what every adapter MUST do.
//!
//! Adapters live in the `adapters` crate. The in-memory fake and the DynamoDB adapter pass one
//! contract suite (`tests/tests/contract/mod.rs`, run by `memory_repository.rs` and
//! `dynamodb_repository.rs`), so the rules below are checked, not hoped.

use std::time::Duration;

use async_trait::async_trait;

use crate::connection::{Connection, ConnectionId, Principal, Sender};
use crate::rate_limit::{RateLimit, TokenDecision};
use crate::room::{Member, RoomGrants, RoomName};
use crate::time::Timestamp;

/// Where to resume a paged read. Opaque: only the adapter that made it can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(String);

impl PageToken {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of a read. `next` is `None` only on the last page; a page may be empty and still have a
/// `next` (DynamoDB filters expired rows after it reads a page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<PageToken>,
}

/// The storage failed. Carries the cause as text so the domain never sees an SDK type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// The store was reachable but refused for now (throttling, capacity): worth retrying later.
    #[error("the connection store is throttling: {0}")]
    Throttled(String),
    /// Anything else: unreachable, misconfigured, a malformed item.
    #[error("the connection store failed: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the connection does not exist or has expired")]
    NotConnected,
    #[error("the connection is already in {max} rooms")]
    TooManyRooms { max: usize },
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// What a successful `join` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The connection was not in the room and now is.
    Added,
    /// It already was: nothing changed.
    AlreadyMember,
}

/// One page of a room's member list, in connection-id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberPage {
    pub members: Vec<Member>,
    /// The id to continue after; `None` only when nothing is left.
    pub next: Option<ConnectionId>,
}

/// What `remove` removed: the connection row (if there was one) and the rooms it was in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Removed {
    pub connection: Option<Connection>,
    pub rooms: Vec<RoomName>,
}

/// Stores connections and room memberships.
///
/// Every adapter MUST:
/// - treat a connection whose `expires_at` is not after `now` as absent in every read
///   (`get`, `rooms_of`, `members_of`, `all_connections`), whether or not storage has deleted it yet;
/// - make `save` an upsert, so a retried `$connect` is harmless;
/// - make `remove` delete the connection and every membership it had, return what it deleted, and
///   return `Removed::default()` for an unknown id (a second `$disconnect` is not an error);
/// - make `join` fail with `JoinError::NotConnected` when the connection is absent or expired, and
///   never leave a membership behind for a connection that `remove` has deleted, even when the two race;
/// - make `join` and `leave` idempotent: joining twice is one membership (the second answers
///   `Joined::AlreadyMember`), leaving a room one is not in succeeds;
/// - make `member_list` return live members only, in connection-id order, at most `limit` of them,
///   each with the principal its connection had when it joined; a page may hold fewer (even none)
///   and still have a `next`;
/// - page `members_of` and `all_connections` with at most `page_size`-ish items a page, and return
///   `next: None` only when nothing is left; `all_connections` never yields membership rows.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ConnectionRepository: Send + Sync {
    async fn save(&self, connection: &Connection) -> Result<(), RepositoryError>;

    async fn remove(&self, id: &ConnectionId) -> Result<Removed, RepositoryError>;

    async fn get(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, RepositoryError>;

    /// Adds `id` to `room`, unless that would put it in more than `max_rooms` rooms.
    async fn join(
        &self,
        id: &ConnectionId,
        room: &RoomName,
        max_rooms: usize,
        now: Timestamp,
    ) -> Result<Joined, JoinError>;

    async fn leave(&self, id: &ConnectionId, room: &RoomName) -> Result<(), RepositoryError>;

    async fn rooms_of(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Vec<RoomName>, RepositoryError>;

    async fn members_of(
        &self,
        room: &RoomName,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError>;

    async fn all_connections(
        &self,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError>;

    /// Up to `limit` live members of `room` whose ids sort after `after`.
    async fn member_list(
        &self,
        room: &RoomName,
        after: Option<ConnectionId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<MemberPage, RepositoryError>;

    /// Takes one token from the rate-limit bucket of connection `id` at `now`, with
    /// [`RateLimit::take`]'s arithmetic. An adapter MUST:
    /// - keep the bucket with the connection, so that it lives and dies with it (`remove` forgets
    ///   it, a retried `save` keeps it) and, in Lambda, is shared by every instance;
    /// - start a connection that has no bucket yet with a full one ([`RateLimit::full`]);
    /// - be atomic per connection: two concurrent takes never both spend the same token, so `n`
    ///   concurrent takes from a bucket of `k < n` tokens give at most `k` `Taken` (exactly `k`
    ///   unless an adapter with bounded retries refuses a take that kept losing the race, with
    ///   [`RateLimit::token_interval`] as the wait);
    /// - store nothing for a refusal, and answer `NotConnected` without creating anything when the
    ///   connection is absent or expired.
    async fn take_token(
        &self,
        id: &ConnectionId,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<TokenDecision, RepositoryError>;

    /// Takes one token from the bucket of `principal`, shared by all its connections, with
    /// [`RateLimit::take`]'s arithmetic. An adapter MUST:
    /// - start a principal that has no bucket with a full one, and keep the bucket across that
    ///   principal's connections and reconnects (it may forget one idle for a day);
    /// - be atomic as `take_token` is, and store nothing for a refusal;
    /// - never answer `NotConnected`.
    async fn take_principal_token(
        &self,
        principal: &Principal,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<TokenDecision, RepositoryError>;

    /// The live connections of `principal`. An adapter MUST keep them findable without a scan:
    /// `save` of a connection with a principal indexes it, `remove` unindexes it, and an entry
    /// whose connection expired is never returned.
    async fn connections_of(
        &self,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<Vec<ConnectionId>, RepositoryError>;

    /// After a `reauth`: the connection's token now expires at `expires_at` and grants `grants`
    /// (its `get` answers them from now on). A connection that is gone stays gone.
    async fn reauth(
        &self,
        id: &ConnectionId,
        expires_at: Timestamp,
        grants: &RoomGrants,
    ) -> Result<(), RepositoryError>;
}

/// Why a post to a connection did not get through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// 410: the connection is closed or never existed. Retrying cannot help.
    #[error("the connection is gone")]
    Gone,
    /// 403, 404, 400 and any other status no retry can fix: the caller may not post here, or not
    /// like this (a wrong endpoint, stage, base path or IAM policy, a malformed request). A
    /// deploy fault or a bug, never the recipient's.
    #[error("forbidden by the management API: {0}")]
    Forbidden(String),
    /// 413: the frame is over API Gateway's message limit.
    #[error("the frame is larger than the management API accepts")]
    PayloadTooLarge,
    /// 429: the account's request rate is exceeded. Worth retrying after a pause.
    #[error("throttled by the management API")]
    Throttled,
    /// 5xx, 408, timeouts, broken connections. Worth retrying.
    #[error("transient management API failure: {0}")]
    Transient(String),
}

/// Talks back to clients through API Gateway's `@connections` API.
///
/// Every adapter MUST:
/// - return `Ok(())` only when the frame was accepted for delivery (HTTP 200);
/// - map by HTTP status, whatever the body says or lacks: 410 -> `Gone`, 413 ->
///   `PayloadTooLarge`, 429 -> `Throttled`; 5xx, 408 (request timeout), timeouts and I/O errors
///   -> `Transient`; 403, 404 (the URL is no management API), 400 (a request API Gateway refuses)
///   and every other status -> `Forbidden`, never retried and counted as misconfigured;
/// - never retry by itself beyond what one call's time budget allows: the domain owns retries, so
///   that it can count them.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ClientNotifier: Send + Sync {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError>;

    /// Closes the connection (`DELETE @connections/{id}`). `Gone` when it is already closed.
    async fn disconnect(&self, id: &ConnectionId) -> Result<(), NotifyError>;

    /// About `posts` posts will be in flight once something the caller is about to await (a
    /// page read, a queue send) is done: an adapter with a connection pool may open connections
    /// for them in the meantime, up to `posts` with those it already holds, so that a fresh
    /// instance's first fan-out does not open them inside its posts. A hint, never an error:
    /// returns how many it started opening (the default: none).
    fn prepare(&self, posts: usize) -> usize {
        let _ = posts;
        0
    }
}

/// What a connection wants to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAccess {
    Join,
    Publish,
    /// Read what was published before the member joined (`history`, `join {since}`).
    ReadHistory,
}

/// Decides who may enter and speak in which room.
///
/// Every adapter MUST:
/// - decide from the sender (its principal and the grants the authorizer passed on) and the room
///   alone, without I/O: it runs on every `join` and `publish`;
/// - be deterministic: the same sender, room and access always get the same answer.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RoomPolicy: Send + Sync {
    fn allows(&self, sender: &Sender, room: &RoomName, access: RoomAccess) -> bool;
}

/// Everyone may enter and speak everywhere: the policy of a service without authentication.
pub struct OpenRoomPolicy;

impl RoomPolicy for OpenRoomPolicy {
    fn allows(&self, _sender: &Sender, _room: &RoomName, _access: RoomAccess) -> bool {
        true
    }
}

/// The time, injected so tests choose it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Waiting, injected so retry tests run instantly and can see every pause.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, duration: Duration);
}

/// Shared adapters (one store behind several handlers) are adapters too.
#[async_trait]
impl<T: ConnectionRepository + ?Sized> ConnectionRepository for std::sync::Arc<T> {
    async fn save(&self, connection: &Connection) -> Result<(), RepositoryError> {
        (**self).save(connection).await
    }
    async fn remove(&self, id: &ConnectionId) -> Result<Removed, RepositoryError> {
        (**self).remove(id).await
    }
    async fn get(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, RepositoryError> {
        (**self).get(id, now).await
    }
    async fn join(
        &self,
        id: &ConnectionId,
        room: &RoomName,
        max_rooms: usize,
        now: Timestamp,
    ) -> Result<Joined, JoinError> {
        (**self).join(id, room, max_rooms, now).await
    }
    async fn leave(&self, id: &ConnectionId, room: &RoomName) -> Result<(), RepositoryError> {
        (**self).leave(id, room).await
    }
    async fn rooms_of(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Vec<RoomName>, RepositoryError> {
        (**self).rooms_of(id, now).await
    }
    async fn members_of(
        &self,
        room: &RoomName,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        (**self).members_of(room, page, now).await
    }
    async fn all_connections(
        &self,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        (**self).all_connections(page, now).await
    }
    async fn member_list(
        &self,
        room: &RoomName,
        after: Option<ConnectionId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<MemberPage, RepositoryError> {
        (**self).member_list(room, after, limit, now).await
    }
    async fn take_token(
        &self,
        id: &ConnectionId,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<TokenDecision, RepositoryError> {
        (**self).take_token(id, limit, now).await
    }
    async fn take_principal_token(
        &self,
        principal: &Principal,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<TokenDecision, RepositoryError> {
        (**self).take_principal_token(principal, limit, now).await
    }
    async fn connections_of(
        &self,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<Vec<ConnectionId>, RepositoryError> {
        (**self).connections_of(principal, now).await
    }
    async fn reauth(
        &self,
        id: &ConnectionId,
        expires_at: Timestamp,
        grants: &RoomGrants,
    ) -> Result<(), RepositoryError> {
        (**self).reauth(id, expires_at, grants).await
    }
}

#[async_trait]
impl<T: ClientNotifier + ?Sized> ClientNotifier for std::sync::Arc<T> {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        (**self).send(to, frame).await
    }
    async fn disconnect(&self, id: &ConnectionId) -> Result<(), NotifyError> {
        (**self).disconnect(id).await
    }
    fn prepare(&self, posts: usize) -> usize {
        (**self).prepare(posts)
    }
}
