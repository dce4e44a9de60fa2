//! The client protocol: JSON text frames in, JSON text frames out.
//!
//! Inbound: `{"action": "...", "requestId": "optional", ...fields}` (see [`Request`]).
//! Outbound: one object per frame, each with a `type` (see [`Frame`]).

mod inbound;
mod outbound;

pub use inbound::{ACTIONS, Action, ActionSpec, ParseError, Request, RequestId, parse_request};
pub use outbound::{ErrorCode, Frame, FrameError, PresenceEvent, encode};

/// API Gateway's limit for one WebSocket message, inbound or outbound (128 KB).
pub const API_GATEWAY_MAX_MESSAGE_BYTES: usize = 128 * 1024;
