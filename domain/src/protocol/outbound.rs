//! Frames sent to clients. Each is encoded once, checked against the size limit, then posted.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::connection::{ConnectionId, Principal};
use crate::delivery::MessageId;
use crate::ports::Member;
use crate::protocol::RequestId;
use crate::room::RoomName;

/// Declares [`ErrorCode`] with each code's wire string written once.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)+) => {
        /// The `code` of an `error` frame: stable strings clients can switch on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
        }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)+
                }
            }
        }
    };
}

error_codes! {
    /// The frame is not a JSON object (or has duplicate keys, or nests too deep).
    BadJson = "bad_json",
    UnknownAction = "unknown_action",
    /// A field is missing or malformed; the message names it.
    InvalidField = "invalid_field",
    /// The frame, or the frame it would make, is over the message limit.
    TooLarge = "too_large",
    NotMember = "not_member",
    UnknownConnection = "unknown_connection",
    TooManyRooms = "too_many_rooms",
    /// The room policy does not let this connection join or publish there.
    Forbidden = "forbidden",
    /// The sender is over its rate limit; the frame's `retryAfterMs` says when to try again.
    RateLimited = "rate_limited",
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Frame<'a> {
    Message {
        /// The same on every copy of one published message (redeliveries included): clients
        /// drop duplicates by it.
        id: &'a MessageId,
        /// The sending connection; absent for a backend's publish.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a ConnectionId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        principal: Option<&'a Principal>,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a RoomName>,
        data: &'a RawValue,
        #[serde(rename = "sentAt")]
        sent_at: u64,
    },
    Pong {
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    Identity {
        #[serde(rename = "connectionId")]
        connection_id: &'a ConnectionId,
        principal: Option<&'a Principal>,
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    /// Someone in `room` is typing. Ephemeral: never stored, never echoed to the typist.
    Typing {
        from: &'a ConnectionId,
        #[serde(skip_serializing_if = "Option::is_none")]
        principal: Option<&'a Principal>,
        room: &'a RoomName,
    },
    /// A member of `room` joined or left it.
    Presence {
        room: &'a RoomName,
        event: PresenceEvent,
        #[serde(rename = "connectionId")]
        connection_id: &'a ConnectionId,
        #[serde(skip_serializing_if = "Option::is_none")]
        principal: Option<&'a Principal>,
    },
    /// One page of a room's member list; `cursor` asks for the next one.
    Members {
        room: &'a RoomName,
        members: &'a [Member],
        count: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        cursor: Option<&'a ConnectionId>,
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    Ack {
        #[serde(rename = "requestId")]
        request_id: &'a RequestId,
        delivered: u64,
        gone: u64,
        failed: u64,
        /// Whether part of the audience was handed to the delivery queue (the counts cover the
        /// inline part only).
        queued: bool,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
        /// Milliseconds until a retry can succeed (`rate_limited` only).
        #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceEvent {
    Joined,
    Left,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame would be {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the frame could not be encoded: {0}")]
    Encode(String),
}

/// Encodes a frame, refusing one over `max_bytes` before anybody is sent anything.
pub fn encode(frame: &Frame<'_>, max_bytes: usize) -> Result<Vec<u8>, FrameError> {
    let bytes = serde_json::to_vec(frame).map_err(|e| FrameError::Encode(e.to_string()))?;
    if bytes.len() > max_bytes {
        return Err(FrameError::TooLarge {
            len: bytes.len(),
            max: max_bytes,
        });
    }
    Ok(bytes)
}
