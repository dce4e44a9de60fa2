//! The protocol described as data: every action's fields and every frame's fields, with what each
//! holds. The parser reads fields through these declarations (see `actions`), the frames are
//! checked against them by a test, and the AsyncAPI document (`docs/asyncapi.yaml`) and the
//! clients' copy of the wire names are generated from them, so none of them can drift.

/// What a field holds: its JSON type and the rule it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A room name: 1-64 of `[A-Za-z0-9_.:-]`.
    Room,
    /// An API Gateway connection id: 1-128 printable ASCII characters.
    ConnectionId,
    /// A principal (the token's `sub`): 1-256 bytes, no control characters.
    Principal,
    /// A message id: 1-128 of `[A-Za-z0-9-_.:]`.
    MessageId,
    /// A client's correlation id: 1-128 printable ASCII characters.
    RequestId,
    /// Any JSON value, forwarded as the client wrote it.
    Data,
    /// An opaque continuation token: send it back as it came.
    Cursor,
    /// A string from a closed set (the error codes, presence events, ...).
    Code(&'static [&'static str]),
    /// Free text for people, never for programs.
    Text,
    /// A whole number (milliseconds, counts, sequence numbers).
    Integer,
    Boolean,
    /// A JSON web token.
    Token,
    /// A list of `{connectionId, principal}`.
    Members,
    /// A list of `message` frames.
    Messages,
}

/// One field of an action or a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    /// Always sent, but may be `null`.
    pub nullable: bool,
    pub doc: &'static str,
}

impl FieldSpec {
    pub const fn required(name: &'static str, kind: Kind, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            required: true,
            nullable: false,
            doc,
        }
    }

    /// Always sent, `null` when there is nothing to say.
    pub const fn nullable(name: &'static str, kind: Kind, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            required: true,
            nullable: true,
            doc,
        }
    }

    pub const fn optional(name: &'static str, kind: Kind, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            required: false,
            nullable: false,
            doc,
        }
    }
}

/// One outbound frame type: its `type` and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [FieldSpec],
}

/// Fields several actions and frames share.
pub mod field {
    use super::{FieldSpec, Kind};

    pub const ROOM: FieldSpec = FieldSpec::required("room", Kind::Room, "the room");
    pub const DATA: FieldSpec = FieldSpec::required(
        "data",
        Kind::Data,
        "any JSON value, delivered byte for byte",
    );
    pub const REQUEST_ID: FieldSpec = FieldSpec::optional(
        "requestId",
        Kind::RequestId,
        "echoed in the frame that answers the request",
    );
}
