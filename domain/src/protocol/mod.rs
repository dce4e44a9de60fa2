//! The client protocol: JSON text frames in, JSON text frames out.
//!
//! Inbound: `{"action": "...", "requestId": "optional", ...fields}`; the actions and how their
//! fields are read are in [`crate::actions`].
//! Outbound: one object per frame, each with a `type` (see [`Frame`]).
//! [`spec`] describes both as data, for the documentation and the clients.

pub mod cursor;
pub mod documents;
mod inbound;
mod outbound;
pub mod spec;

pub(crate) use inbound::{Fields, parse_envelope};
pub use inbound::{MAX_NESTING, ParseError, RequestId};
pub use outbound::{ErrorCode, FRAMES, Frame, FrameError, PresenceEvent, encode};

/// Each frame type's declaration, by name: for the actions that answer with one, and for
/// clients that wait for one.
pub mod frames {
    pub use super::outbound::{
        ACK, CLOSING, ERROR, HISTORY, IDENTITY, MEMBERS, MESSAGE, PONG, PRESENCE, RESET, TYPING,
    };
}

/// The protocol's version, in every `identity` frame: raised by any change an existing client
/// must know of (docs/UPGRADING.md says what each version changed).
pub const PROTOCOL_VERSION: u32 = 3;

/// API Gateway's limit for one WebSocket message, inbound or outbound (128 KB).
pub const API_GATEWAY_MAX_MESSAGE_BYTES: usize = 128 * 1024;
