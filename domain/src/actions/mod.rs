//! Every client action, one module each: its wire declaration ([`ActionSpec`]: name, fields, the
//! frame that answers it) and its handler. [`ACTIONS`] is the one list of them; adding an action is
//! a module here and a line there (docs/forking.md, "Adding an action").

use std::any::Any;
use std::fmt;

use async_trait::async_trait;

use crate::protocol::spec::FieldSpec;
use crate::protocol::{ErrorCode, Fields, ParseError, RequestId, parse_envelope};
use crate::service::{Cx, Outcome, Step};

mod history;
mod join;
mod leave;
mod members;
mod ping;
mod publish;
mod reauth;
mod send;
mod sendmessage;
mod typing;
mod whoami;

pub use history::History;
pub use join::Join;
pub use leave::Leave;
pub use members::Members;
pub use ping::Ping;
pub use publish::Publish;
pub use reauth::Reauth;
pub use send::Send;
pub use sendmessage::SendMessage;
pub use typing::Typing;
pub use whoami::WhoAmI;

/// Every action a client can send: the only list of them.
pub const ACTIONS: &[ActionSpec] = &[
    sendmessage::SPEC,
    send::SPEC,
    join::SPEC,
    leave::SPEC,
    publish::SPEC,
    typing::SPEC,
    members::SPEC,
    history::SPEC,
    ping::SPEC,
    whoami::SPEC,
    reauth::SPEC,
];

/// One client action on the wire: the `action` value that selects it, its fields, what answers
/// it, and how it is read.
pub struct ActionSpec {
    pub name: &'static str,
    pub doc: &'static str,
    /// Its own fields (`action` and `requestId` are every action's).
    pub fields: &'static [FieldSpec],
    /// The frame `type` that answers a request carrying a `requestId`: `ack`, or the action's
    /// own answer (`pong`, `identity`, `members`), which then carries the `requestId` itself.
    pub answer: &'static str,
    /// Whether it spends a rate-limit token. Only actions answered to the sender alone from the
    /// request context, touching no storage, are free (`ping`, `whoami`).
    pub metered: bool,
    /// What it needs of the sender's session (its token's expiry and grants).
    pub session: SessionNeed,
    pub(crate) parse: fn(&Fields) -> Result<Box<dyn Action>, ParseError>,
}

/// What an action needs of the sender's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionNeed {
    /// A live session, as the event says (its row is read only once the event's expiry passed).
    Live,
    /// A live session as the connection's row says now (the latest `reauth`'s grants, expiry).
    Fresh,
    /// Answered even after the token expired (`ping`, and `reauth` itself).
    Any,
}

/// The `type` of the `ack` frame: what answers most actions.
pub(crate) const ACK: &str = crate::protocol::frames::ACK.name;

/// A parsed request of one action, ready to run.
#[async_trait]
pub trait Action: fmt::Debug + std::marker::Send + Sync + Any {
    /// Runs the action for `cx.sender`; refusals are `Err(Stop::Refused)` (the sender gets an
    /// `error` frame), storage failures `Err(Stop::Failed)`.
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome>;

    /// For tests that look at what was parsed.
    fn as_any(&self) -> &dyn Any;
}

pub struct Request {
    /// The action's declaration in [`ACTIONS`].
    pub spec: &'static ActionSpec,
    pub request_id: Option<RequestId>,
    pub action: Box<dyn Action>,
}

impl Request {
    /// The action's wire name.
    pub fn name(&self) -> &'static str {
        self.spec.name
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("name", &self.spec.name)
            .field("request_id", &self.request_id)
            .field("action", &self.action)
            .finish()
    }
}

/// Parses one inbound frame into a request. Never panics, whatever the bytes (a proptest checks
/// it); every way a frame can be wrong has its error code (`tests/parser_table.rs`).
pub fn parse_request(body: &[u8], max_bytes: usize) -> Result<Request, ParseError> {
    let envelope = parse_envelope(body, max_bytes)?;
    let with_id = |mut e: ParseError| {
        e.request_id.clone_from(&envelope.request_id);
        e
    };
    let Some(spec) = ACTIONS.iter().find(|spec| spec.name == envelope.action) else {
        let shown: String = envelope.action.chars().take(64).collect();
        let known: Vec<&str> = ACTIONS.iter().map(|spec| spec.name).collect();
        return Err(with_id(ParseError::new(
            ErrorCode::UnknownAction,
            format!(
                "unknown action {shown:?}; expected one of {}",
                known.join(", ")
            ),
        )));
    };
    let action = (spec.parse)(&envelope.fields).map_err(with_id)?;
    Ok(Request {
        spec,
        request_id: envelope.request_id,
        action,
    })
}
