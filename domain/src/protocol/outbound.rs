//! Frames sent to clients. Each is encoded once, checked against the size limit, then posted.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::connection::{ConnectionId, Principal};
use crate::message::MessageId;
use crate::protocol::RequestId;
use crate::protocol::spec::{FieldSpec, FrameSpec, Kind, field};
use crate::room::{Member, RoomName};

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
            /// The wire strings, in the order of [`ErrorCode::ALL`].
            pub const WIRE: &[&str] = &[$($wire,)+];

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
    /// The service's own rules (its hooks) refused the request; the message says why.
    Rejected = "rejected",
    /// The room is publishing faster than its stream sustains; `retryAfterMs` says when to try
    /// again. Nothing was published.
    RoomBusy = "room_busy",
    /// This service keeps no history (`HISTORY_TTL_SECONDS=0`).
    HistoryOff = "history_off",
    /// The token this connection was authorized with has expired: a `closing` frame follows and
    /// the socket closes; `reauth` before it expires to stay.
    TokenExpired = "token_expired",
    /// A `reauth` was refused: its token does not check out, or names another principal.
    ReauthRefused = "reauth_refused",
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Every frame the service sends. Each variant's `type` and fields are declared in [`FRAMES`]
/// (a test serializes every variant and checks it against its declaration).
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
        /// Its place in the room's stream; room messages only.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
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
        /// [`super::PROTOCOL_VERSION`]: what this server speaks.
        #[serde(rename = "protocolVersion")]
        protocol_version: u32,
        /// When the connection's token expires (ms since the epoch); absent without one.
        #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
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
        cursor: Option<&'a str>,
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    /// One page of a room's history, each message as its `message` frame.
    History {
        room: &'a RoomName,
        messages: &'a [Box<RawValue>],
        #[serde(skip_serializing_if = "Option::is_none")]
        cursor: Option<&'a str>,
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    /// The service is closing this socket, and why: the socket closes right after.
    Closing {
        code: crate::sessions::ClosingCode,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    /// A `join {since}` cannot bring the member up to date by replay (its `since` is older than
    /// the history keeps, or too far behind): read the room's state again.
    Reset {
        room: &'a RoomName,
        /// The oldest `seq` still kept, when any is.
        #[serde(rename = "oldestSeq", skip_serializing_if = "Option::is_none")]
        oldest_seq: Option<u64>,
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
        /// Recipients of the inline part whose posts did not get through at once (throttled,
        /// failing, or out of time) and were handed to the queue for another try.
        requeued: u64,
        /// A `join` without `since`: the room's latest `seq` just before the member joined
        /// (0 for a room with none), where its stream starts for this member.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
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

impl PresenceEvent {
    pub const ALL: &[&str] = &["joined", "left"];
}

impl Frame<'_> {
    /// The frame's `type`, as [`FRAMES`] declares it.
    pub fn kind(&self) -> &'static str {
        let spec = match self {
            Frame::Message { .. } => &MESSAGE,
            Frame::Pong { .. } => &PONG,
            Frame::Identity { .. } => &IDENTITY,
            Frame::Typing { .. } => &TYPING,
            Frame::Presence { .. } => &PRESENCE,
            Frame::Members { .. } => &MEMBERS,
            Frame::History { .. } => &HISTORY,
            Frame::Reset { .. } => &RESET,
            Frame::Closing { .. } => &CLOSING,
            Frame::Ack { .. } => &ACK,
            Frame::Error { .. } => &ERROR,
        };
        spec.name
    }
}

const FROM: FieldSpec = FieldSpec::optional(
    "from",
    Kind::ConnectionId,
    "the sending connection; absent for a backend's publish",
);
const PRINCIPAL: FieldSpec = FieldSpec::optional(
    "principal",
    Kind::Principal,
    "the sender's principal (its token's sub), when authentication is on",
);
const ANSWER_ID: FieldSpec = FieldSpec::optional(
    "requestId",
    Kind::RequestId,
    "the requestId of the request this answers",
);

pub const MESSAGE: FrameSpec = FrameSpec {
    name: "message",
    doc: "A message from a connection (sendmessage, publish, send) or from a backend.",
    fields: &[
        FieldSpec::required(
            "id",
            Kind::MessageId,
            "the same on every copy of one message, redeliveries included: drop duplicates by it",
        ),
        FROM,
        PRINCIPAL,
        FieldSpec::optional("room", Kind::Room, "the room it was published to"),
        FieldSpec::optional(
            "seq",
            Kind::Integer,
            "its place in the room's stream, strictly increasing (room messages only): order and resume by it",
        ),
        field::DATA,
        FieldSpec::required(
            "sentAt",
            Kind::Integer,
            "when it was sent, in milliseconds since the epoch (the service's clock)",
        ),
    ],
};
pub const PONG: FrameSpec = FrameSpec {
    name: "pong",
    doc: "The answer to ping.",
    fields: &[ANSWER_ID],
};
pub const IDENTITY: FrameSpec = FrameSpec {
    name: "identity",
    doc: "The answer to whoami.",
    fields: &[
        FieldSpec::required("connectionId", Kind::ConnectionId, "this connection's id"),
        FieldSpec::nullable(
            "principal",
            Kind::Principal,
            "this connection's principal, null when authentication is off",
        ),
        FieldSpec::required(
            "protocolVersion",
            Kind::Integer,
            "the protocol this server speaks; docs/UPGRADING.md lists what each version changed",
        ),
        FieldSpec::optional(
            "expiresAt",
            Kind::Integer,
            "when this connection's token expires, in milliseconds since the epoch: reauth before it",
        ),
        ANSWER_ID,
    ],
};
pub const TYPING: FrameSpec = FrameSpec {
    name: "typing",
    doc: "Someone in the room is typing; never sent to the typist.",
    fields: &[
        FieldSpec::required("from", Kind::ConnectionId, "the typing connection"),
        PRINCIPAL,
        field::ROOM,
    ],
};
pub const PRESENCE: FrameSpec = FrameSpec {
    name: "presence",
    doc: "A member joined or left a room of at most PRESENCE_MAX_MEMBERS members.",
    fields: &[
        field::ROOM,
        FieldSpec::required("event", Kind::Code(PresenceEvent::ALL), "joined or left"),
        FieldSpec::required("connectionId", Kind::ConnectionId, "who joined or left"),
        PRINCIPAL,
    ],
};
pub const MEMBERS: FrameSpec = FrameSpec {
    name: "members",
    doc: "One page of a room's member list, in connection-id order.",
    fields: &[
        field::ROOM,
        FieldSpec::required("members", Kind::Members, "at most 100 members"),
        FieldSpec::required("count", Kind::Integer, "how many members this page holds"),
        FieldSpec::optional(
            "cursor",
            Kind::Cursor,
            "send it back in the next members request for the next page; absent on the last",
        ),
        ANSWER_ID,
    ],
};
pub const HISTORY: FrameSpec = FrameSpec {
    name: "history",
    doc: "One page of a room's kept messages, in seq order (upward from after, downward from before), within the frame limit.",
    fields: &[
        field::ROOM,
        FieldSpec::required(
            "messages",
            Kind::Messages,
            "message frames, as members received them live",
        ),
        FieldSpec::optional(
            "cursor",
            Kind::Cursor,
            "send it back in the next history request for the next page; absent on the last",
        ),
        ANSWER_ID,
    ],
};
pub const RESET: FrameSpec = FrameSpec {
    name: "reset",
    doc: "A join with since cannot be brought up to date by replay (older than the history keeps, or too far behind): read the room's state again.",
    fields: &[
        field::ROOM,
        FieldSpec::optional(
            "oldestSeq",
            Kind::Integer,
            "the oldest seq the history still keeps, when it keeps any",
        ),
    ],
};
pub const CLOSING: FrameSpec = FrameSpec {
    name: "closing",
    doc: "The service is closing this socket: kicked or banned by the operator, or its token expired. Do not reconnect after kicked or banned.",
    fields: &[
        FieldSpec::required(
            "code",
            Kind::Code(crate::sessions::ClosingCode::WIRE),
            "why: kicked, banned or token_expired",
        ),
        FieldSpec::optional("reason", Kind::Text, "the operator's words, for people"),
    ],
};
pub const ACK: FrameSpec = FrameSpec {
    name: "ack",
    doc: "The answer to a request with a requestId whose action has no answer of its own.",
    fields: &[
        FieldSpec::required("requestId", Kind::RequestId, "the request's requestId"),
        FieldSpec::required("delivered", Kind::Integer, "recipients posted to inline"),
        FieldSpec::required("gone", Kind::Integer, "recipients found gone (410)"),
        FieldSpec::required(
            "failed",
            Kind::Integer,
            "recipients no retry can reach: a deploy fault, or, without a delivery queue, posts that kept failing",
        ),
        FieldSpec::required(
            "queued",
            Kind::Boolean,
            "whether part of the audience was handed to the delivery queue",
        ),
        FieldSpec::required(
            "requeued",
            Kind::Integer,
            "recipients of the inline part handed to the queue for another try (throttled, failing, or out of time)",
        ),
        FieldSpec::optional(
            "seq",
            Kind::Integer,
            "a join without since: the room's latest seq just before joining (0: none yet); every later message reaches the member, so a client keeps it as its last seq",
        ),
    ],
};
pub const ERROR: FrameSpec = FrameSpec {
    name: "error",
    doc: "A request was refused; nothing was done for it.",
    fields: &[
        FieldSpec::required("code", Kind::Code(ErrorCode::WIRE), "what went wrong"),
        FieldSpec::required("message", Kind::Text, "for people, never parse it"),
        ANSWER_ID,
        FieldSpec::optional(
            "retryAfterMs",
            Kind::Integer,
            "when a retry can succeed (rate_limited)",
        ),
    ],
};

/// Every outbound frame type.
pub const FRAMES: &[FrameSpec] = &[
    MESSAGE, PONG, IDENTITY, TYPING, PRESENCE, MEMBERS, HISTORY, RESET, CLOSING, ACK, ERROR,
];

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
