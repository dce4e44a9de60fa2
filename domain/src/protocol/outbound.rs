//! Frames sent to clients. Each is encoded once, checked against the size limit, then posted.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::connection::{ConnectionId, Principal};
use crate::protocol::RequestId;
use crate::room::RoomName;

/// The `code` of an `error` frame: stable strings clients can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    UnknownAction,
    InvalidField,
    TooLarge,
    NotMember,
    UnknownConnection,
    TooManyRooms,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownAction => "unknown_action",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotMember => "not_member",
            ErrorCode::UnknownConnection => "unknown_connection",
            ErrorCode::TooManyRooms => "too_many_rooms",
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Frame<'a> {
    Message {
        from: &'a ConnectionId,
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
    Ack {
        #[serde(rename = "requestId")]
        request_id: &'a RequestId,
        delivered: u64,
        gone: u64,
        failed: u64,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
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
