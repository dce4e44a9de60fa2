//! Room streams: every message published to a room gets `seq`, one higher than the room's last,
//! and is kept for the history's retention, so a member that was away can read what it missed
//! (`history`) or have it replayed when it joins again (`join {since}`).
//!
//! The [`RoomLog`] port keeps the sequence and the messages. The highest rate one room sustains,
//! and why, is in docs/protocol.md, "Room streams".

use std::time::Duration;

use async_trait::async_trait;

use crate::connection::{ConnectionId, Principal};
use crate::message::MessageId;
use crate::ports::RepositoryError;
use crate::protocol::Frame;
use crate::room::RoomName;
use crate::time::Timestamp;

/// A message's place in its room: strictly increasing, never reused. A number may be skipped (a
/// backend job whose first try took a number and then failed), never handed out twice.
pub type Seq = u64;

/// Messages a `join {since}` replays at most; further behind, the member gets `reset` and reads
/// `history` instead.
pub const REPLAY_MAX_MESSAGES: u64 = 1_000;

/// Messages of a `history` page, at most (the page also stops at the 128 KB frame limit).
pub const HISTORY_PAGE_MAX: usize = 100;

/// How long a backend job's message id keeps its `seq` when history is off (a redelivery comes
/// within the queue's retention: a day).
pub const ONCE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A room message as the log keeps it: what its `message` frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedMessage {
    pub id: MessageId,
    pub seq: Seq,
    pub from: Option<ConnectionId>,
    pub principal: Option<Principal>,
    /// The JSON `data`, as the sender wrote it.
    pub data: String,
    pub sent_at: u64,
}

/// A message about to be appended: everything but its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: MessageId,
    pub from: Option<ConnectionId>,
    pub principal: Option<Principal>,
    pub data: String,
    pub sent_at: u64,
}

/// What the log keeps of an append, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Until when the message is kept for `history` and replays; `None`: history is off, only
    /// the sequence advances.
    pub message_until: Option<Timestamp>,
    /// With `Some`, the message id keeps the `seq` it got until then: an append of the same id
    /// answers that `seq` again (a redelivered backend job). `None` for a client's publish,
    /// which is appended exactly once by the invocation that handles it.
    pub once_until: Option<Timestamp>,
}

/// Where a read of the log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Upward from the oldest message kept.
    Oldest,
    /// Upward from the first message after this `seq` (exclusive).
    After(Seq),
    /// Downward from the last message before this `seq` (exclusive); `Seq::MAX` for the newest.
    Before(Seq),
}

/// One page of a read: kept messages in the read's direction, at most the limit asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogPage {
    pub messages: Vec<LoggedMessage>,
    /// Whether more kept messages follow in the same direction.
    pub more: bool,
}

/// Why an append did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The room is over the rate its store sustains (one counter item per room): refused, never
    /// reordered.
    #[error("the room is busy: retry after {retry_after:?}")]
    Busy { retry_after: Duration },
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Keeps each room's sequence and its recent messages.
///
/// Every adapter MUST:
/// - give each append `seq` one higher than any `seq` the room handed out before (a number may be
///   skipped, never repeated), atomically: concurrent appends to one room get distinct numbers;
/// - with `keep.once_until`, answer an append of a message id already appended (and not past its
///   `once_until`) with the `seq` it got, storing nothing new;
/// - keep each message until `keep.message_until` and treat it as absent after it, whether or
///   not storage has deleted it yet; keep nothing when it is `None`;
/// - keep rooms apart, and never let a log item appear as a member of the room (`members_of`,
///   `member_list`), whatever the store's key design;
/// - answer `latest` with the highest `seq` handed out (kept or not), `None` for a room with none;
/// - refuse with [`AppendError::Busy`] rather than queue when the room is over the rate it sustains;
/// - make `forget` delete every kept message of the principal in the room, and nothing else.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RoomLog: Send + Sync {
    async fn append(
        &self,
        room: &RoomName,
        message: &NewMessage,
        keep: Keep,
        now: Timestamp,
    ) -> Result<Seq, AppendError>;

    /// Up to `limit` kept messages of `room` from `from`, in its direction.
    async fn read(
        &self,
        room: &RoomName,
        from: ReadFrom,
        limit: usize,
        now: Timestamp,
    ) -> Result<LogPage, RepositoryError>;

    async fn latest(&self, room: &RoomName) -> Result<Option<Seq>, RepositoryError>;

    /// Deletes every kept message of `principal` in `room` (forgetting a person); how many. Their
    /// numbers become skipped ones: clients see no gap.
    async fn forget(
        &self,
        room: &RoomName,
        principal: &crate::connection::Principal,
    ) -> Result<usize, RepositoryError>;
}

impl LoggedMessage {
    /// Its `message` frame, as members received it live.
    pub fn frame<'a>(
        &'a self,
        room: &'a RoomName,
        data: &'a serde_json::value::RawValue,
    ) -> Frame<'a> {
        Frame::Message {
            id: &self.id,
            from: self.from.as_ref(),
            principal: self.principal.as_ref(),
            room: Some(room),
            seq: Some(self.seq),
            data,
            sent_at: self.sent_at,
        }
    }
}
