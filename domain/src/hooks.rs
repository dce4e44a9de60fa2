//! What a fork customises in one place: [`Hooks`] runs at the points a product decides things,
//! with the default doing nothing. A fork implements it in one file (`adapters/src/hooks.rs`,
//! which every Lambda and the local gateway wire in) to refuse connections, attach metadata to
//! them, moderate, rewrite or persist messages, or keep people out of rooms, without touching the
//! actions.
//!
//! - [`Hooks::on_connect`]: in `$connect`, after the authorizer: refuse (API Gateway answers 403),
//!   or attach metadata kept with the connection, which later hooks read.
//! - [`Hooks::on_publish`]: before a client's `sendmessage`, `publish` or `send` reaches anyone:
//!   refuse it (the sender gets `rejected`), rewrite its `data`, or persist it. Backends' jobs
//!   from the queue are trusted and do not pass through it.
//! - [`Hooks::on_join`]: before a connection joins a room (after the room policy): refuse.
//!
//! A hook runs inside the invocation that handles the request, within its deadline: keep it short,
//! and make it idempotent, since a client may send the same request again after a timeout.

use async_trait::async_trait;
use serde_json::value::RawValue;

use crate::connection::{ConnectRequest, ConnectionId, Sender};
use crate::ports::{ConnectionRepository, RepositoryError};
use crate::room::RoomName;
use crate::time::Timestamp;

/// Longest metadata a hook may attach to a connection, in bytes: it is stored with the connection.
pub const MAX_METADATA_BYTES: usize = 1024;

/// Why a hook refused: the `message` reaches the client (in the `rejected` error frame), so say
/// what the person can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub message: String,
}

impl Rejection {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// What `on_connect` decided for a connection it lets in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Kept with the connection (at most [`MAX_METADATA_BYTES`]; longer is a refusal with a
    /// service error, not a silent cut): a display name, a role, a tenant. Later hooks read it
    /// with [`Publication::sender_metadata`] and [`JoinAttempt::sender_metadata`].
    pub metadata: Option<String>,
}

/// Where a client's message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishTarget<'a> {
    Room(&'a RoomName),
    Everyone,
    Connection(&'a ConnectionId),
}

/// A client's message on its way: a hook may rewrite `data` (any JSON value; the frame is checked
/// against the size limit afterwards).
pub struct Publication<'a> {
    pub sender: &'a Sender,
    pub target: PublishTarget<'a>,
    pub data: Box<RawValue>,
    pub(crate) lookup: Lookup<'a>,
}

impl Publication<'_> {
    /// The metadata `on_connect` attached to the sender's connection (one read of the store).
    pub async fn sender_metadata(&self) -> Result<Option<String>, RepositoryError> {
        self.lookup.metadata_of(&self.sender.id).await
    }
}

/// A connection about to join a room.
pub struct JoinAttempt<'a> {
    pub sender: &'a Sender,
    pub room: &'a RoomName,
    pub(crate) lookup: Lookup<'a>,
}

impl JoinAttempt<'_> {
    /// The metadata `on_connect` attached to the connection (one read of the store).
    pub async fn sender_metadata(&self) -> Result<Option<String>, RepositoryError> {
        self.lookup.metadata_of(&self.sender.id).await
    }
}

/// Reads a connection's metadata on demand: only hooks that ask pay for the read.
#[derive(Clone, Copy)]
pub(crate) struct Lookup<'a> {
    pub repo: &'a dyn ConnectionRepository,
    pub now: Timestamp,
}

impl Lookup<'_> {
    async fn metadata_of(&self, id: &ConnectionId) -> Result<Option<String>, RepositoryError> {
        Ok(self
            .repo
            .get(id, self.now)
            .await?
            .and_then(|connection| connection.metadata))
    }
}

/// The points where a product decides. Every method has a default that lets everything through
/// unchanged, so an implementation overrides only what it needs.
#[async_trait]
pub trait Hooks: Send + Sync {
    async fn on_connect(&self, connect: &ConnectRequest) -> Result<Admission, Rejection> {
        let _ = connect;
        Ok(Admission::default())
    }

    async fn on_publish(&self, publication: &mut Publication<'_>) -> Result<(), Rejection> {
        let _ = publication;
        Ok(())
    }

    async fn on_join(&self, join: &JoinAttempt<'_>) -> Result<(), Rejection> {
        let _ = join;
        Ok(())
    }
}

/// The default: every connection, message and join goes through as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}
