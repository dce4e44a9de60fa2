//! One delivery job, and its JSON forms on the queues.
//!
//! A backend publishes without a WebSocket by writing the smaller form to the backend queue
//! (docs/deploying.md, "Publishing from a backend"); [`DeliveryJob::from_backend_json`] reads
//! it, and refuses a field only the service may set:
//!
//! ```json
//! {"room": "lobby", "data": {"text": "hi"}}
//! {"everyone": true, "data": "maintenance at 18:00"}
//! {"connection": "abc123=", "data": {"text": "just for you"}}
//! ```
//!
//! Exactly one of `room`, `everyone` (`true`) and `connection` names the target, and `id` (the
//! message id) is optional: the queue message's own id, the same on every redelivery, names the
//! message otherwise. The service's own jobs, on its internal queue that only its functions may
//! write to, carry more, which [`DeliveryJob::from_json`] reads: `id` (the message id; a backend may
//! leave it out and the worker uses the queue message's own id, which is the same on every
//! redelivery), `from` and `principal` (the sending connection, absent for a backend), `skip`
//! (a connection not to deliver to: the sender, when it asked for no echo), `cursor` (where in
//! the audience to continue), `recipients` (instead of a cursor: exactly these connections of
//! the audience, the part of a page a worker handed over at its deadline), `sentAt`
//! (milliseconds since the epoch), `seq` (the message's place in its room's stream) and
//! `attempt` (how many times the job's recipients were handed
//! over without getting through: at [`crate::delivery::MAX_ATTEMPTS`] the job is dead-lettered).

use serde::{Deserialize, Serialize};

use crate::message::MessageId;
use crate::protocol::{Frame, FrameError};
use serde_json::value::RawValue;

use crate::connection::{ConnectionId, Principal};
use crate::ports::PageToken;
use crate::room::RoomName;

/// Who a job delivers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobTarget {
    Room(RoomName),
    Everyone,
    Connection(ConnectionId),
}

/// A message to deliver, and how far its delivery got.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    /// `None` only for a backend's job that did not choose one: see [`DeliveryJob::id_or`].
    pub id: Option<MessageId>,
    pub target: JobTarget,
    pub data: Box<RawValue>,
    /// The sending connection; `None` for a backend publish (its frames carry no `from`).
    pub from: Option<ConnectionId>,
    pub principal: Option<Principal>,
    /// A connection this job never delivers to (the sender, when it asked for no echo).
    pub skip: Option<ConnectionId>,
    /// Where in the audience to continue; `None` starts at the beginning.
    pub cursor: Option<PageToken>,
    /// Exactly these members of the audience, already read (a page's unserved rest); when set,
    /// `cursor` is ignored and nothing more is read.
    pub recipients: Option<Vec<ConnectionId>>,
    /// When the message was published (milliseconds since the epoch); `None`: when the queue
    /// first received it.
    pub sent_at: Option<u64>,
    /// The message's place in its room's stream; `None` until the worker appends a backend's
    /// room message (then every later job of the message carries it).
    pub seq: Option<u64>,
    /// Times this job's recipients were handed over after not getting through (0 for a new job).
    pub attempt: u32,
}

/// Two jobs are equal when they deliver the same JSON text the same way (`RawValue` has no
/// equality of its own).
impl PartialEq for DeliveryJob {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.target == other.target
            && self.data.get() == other.data.get()
            && self.from == other.from
            && self.principal == other.principal
            && self.skip == other.skip
            && self.cursor == other.cursor
            && self.recipients == other.recipients
            && self.sent_at == other.sent_at
            && self.seq == other.seq
            && self.attempt == other.attempt
    }
}

impl Eq for DeliveryJob {}

/// Why a queued message is not a job. Names the field, never echoes its value (a backend's
/// payload must not reach the logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the job is not a JSON object ({category} error at line {line}, column {column})")]
    NotJson {
        category: &'static str,
        line: usize,
        column: usize,
    },
    #[error(
        "the job names no target: give exactly one of \"room\", \"everyone\": true, \"connection\""
    )]
    NoTarget,
    #[error(
        "the job names more than one target: give exactly one of \"room\", \"everyone\", \"connection\""
    )]
    ManyTargets,
    #[error("the job has no \"data\"")]
    NoData,
    #[error("field \"{field}\" is invalid: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
    /// A backend's job may not speak as a connection nor choose recipients: only the service's
    /// own jobs, on its internal queue, carry these.
    #[error("field \"{field}\" is the service's own: a backend's job may not set it")]
    ServiceOnly { field: &'static str },
}

/// The fields only the service's own jobs carry: who sent the message (a backend cannot speak as a
/// user), who it skips or goes to inside the audience, where it continues, when it was sent and
/// how many times it was handed over.
const SERVICE_ONLY: &[&str] = &[
    "from",
    "principal",
    "skip",
    "cursor",
    "recipients",
    "sentAt",
    "seq",
    "attempt",
];

/// The JSON form, field for field. Private: callers see only validated jobs.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    everyone: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection: Option<String>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recipients: Option<Vec<String>>,
    #[serde(rename = "sentAt", default, skip_serializing_if = "Option::is_none")]
    sent_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    attempt: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn field<T, E: std::fmt::Display>(
    name: &'static str,
    raw: Option<String>,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> Result<Option<T>, JobError> {
    raw.map(|raw| {
        parse(raw).map_err(|e| JobError::Field {
            field: name,
            problem: e.to_string(),
        })
    })
    .transpose()
}

impl DeliveryJob {
    /// A job for the whole audience of a new message.
    pub fn new(id: MessageId, target: JobTarget, data: Box<RawValue>) -> Self {
        Self {
            id: Some(id),
            target,
            data,
            from: None,
            principal: None,
            skip: None,
            cursor: None,
            recipients: None,
            sent_at: None,
            seq: None,
            attempt: 0,
        }
    }

    /// The message id: the job's own, or `fallback` (the queue message's id, the same on every
    /// redelivery of it) for a backend job that chose none.
    pub fn id_or(&self, fallback: &MessageId) -> MessageId {
        self.id.clone().unwrap_or_else(|| fallback.clone())
    }

    /// The same message, continuing at `cursor`.
    pub fn continued_at(&self, cursor: PageToken) -> Self {
        Self {
            cursor: Some(cursor),
            recipients: None,
            ..self.clone()
        }
    }

    /// The same message, for exactly `recipients` (already read from the audience). A job for
    /// one connection stays as it is: its target is its one recipient.
    pub fn handed_over_to(&self, recipients: Vec<ConnectionId>) -> Self {
        if matches!(self.target, JobTarget::Connection(_)) {
            return Self {
                cursor: None,
                recipients: None,
                ..self.clone()
            };
        }
        Self {
            cursor: None,
            recipients: Some(recipients),
            ..self.clone()
        }
    }

    /// The same job, handed over once more after not getting through.
    pub fn tried_again(self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            ..self
        }
    }

    /// Refuses a job whose `message` frame would be over `max_bytes`, whatever id and time the
    /// queue gives it: such a job could never be delivered, so it is refused before it is queued
    /// (`@publish`, `wsctl`) rather than dead-lettered after.
    pub fn check_frame(&self, max_bytes: usize) -> Result<(), FrameError> {
        let longest_id = MessageId::longest();
        let room = match &self.target {
            JobTarget::Room(room) => Some(room),
            _ => None,
        };
        let frame = Frame::Message {
            id: self.id.as_ref().unwrap_or(&longest_id),
            from: self.from.as_ref(),
            principal: self.principal.as_ref(),
            room,
            seq: room.map(|_| u64::MAX),
            data: &self.data,
            sent_at: u64::MAX,
        };
        crate::protocol::encode(&frame, max_bytes).map(drop)
    }

    /// A backend's job (the backend queue): the target, `data` and an optional `id`, nothing
    /// the service alone may set (see [`JobError::ServiceOnly`]).
    pub fn from_backend_json(json: &str) -> Result<Self, JobError> {
        let keys: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| not_json(&e))?;
        if let Some(field) = SERVICE_ONLY.iter().find(|field| keys.contains_key(**field)) {
            return Err(JobError::ServiceOnly { field });
        }
        Self::from_json(json)
    }

    /// One of the service's own jobs (its internal queue), every field allowed.
    pub fn from_json(json: &str) -> Result<Self, JobError> {
        let wire: Wire<'_> = serde_json::from_str(json).map_err(|e| not_json(&e))?;
        let target = match (wire.room, wire.everyone, wire.connection) {
            (Some(room), None | Some(false), None) => JobTarget::Room(
                field("room", Some(room), RoomName::parse)?.ok_or(JobError::NoTarget)?,
            ),
            (None, Some(true), None) => JobTarget::Everyone,
            (None, None | Some(false), Some(id)) => JobTarget::Connection(
                field("connection", Some(id), ConnectionId::parse)?.ok_or(JobError::NoTarget)?,
            ),
            (None, None | Some(false), None) => return Err(JobError::NoTarget),
            _ => return Err(JobError::ManyTargets),
        };
        let data = wire.data.ok_or(JobError::NoData)?.to_owned();
        let from = field("from", wire.from, ConnectionId::parse)?;
        let principal = field("principal", wire.principal, Principal::parse)?;
        if principal.is_some() && from.is_none() {
            return Err(JobError::Field {
                field: "principal",
                problem: "a principal needs a \"from\" connection".into(),
            });
        }
        let recipients = match wire.recipients {
            None => None,
            Some(_) if matches!(target, JobTarget::Connection(_)) => {
                return Err(JobError::Field {
                    field: "recipients",
                    problem: "a job for one \"connection\" takes no recipients".into(),
                });
            }
            Some(list) if list.is_empty() => {
                return Err(JobError::Field {
                    field: "recipients",
                    problem: "must not be empty".into(),
                });
            }
            Some(list) => Some(
                list.into_iter()
                    .map(|raw| field("recipients", Some(raw), ConnectionId::parse))
                    .collect::<Result<Option<Vec<_>>, _>>()?
                    .unwrap_or_default(),
            ),
        };
        Ok(Self {
            id: field("id", wire.id, MessageId::parse)?,
            target,
            data,
            from,
            principal,
            skip: field("skip", wire.skip, ConnectionId::parse)?,
            cursor: wire.cursor.map(PageToken::new),
            recipients,
            sent_at: wire.sent_at,
            seq: wire.seq,
            attempt: wire.attempt,
        })
    }

    pub fn to_json(&self) -> String {
        let (room, everyone, connection) = match &self.target {
            JobTarget::Room(room) => (Some(room.as_str().to_owned()), None, None),
            JobTarget::Everyone => (None, Some(true), None),
            JobTarget::Connection(id) => (None, None, Some(id.as_str().to_owned())),
        };
        let wire = Wire {
            id: self.id.as_ref().map(|id| id.as_str().to_owned()),
            room,
            everyone,
            connection,
            data: Some(&self.data),
            from: self.from.as_ref().map(|id| id.as_str().to_owned()),
            principal: self.principal.as_ref().map(|p| p.as_str().to_owned()),
            skip: self.skip.as_ref().map(|id| id.as_str().to_owned()),
            cursor: self.cursor.as_ref().map(|c| c.as_str().to_owned()),
            recipients: self
                .recipients
                .as_ref()
                .map(|ids| ids.iter().map(|id| id.as_str().to_owned()).collect()),
            sent_at: self.sent_at,
            seq: self.seq,
            attempt: self.attempt,
        };
        // Every field is a string, a bool, a number or JSON that was already valid.
        sqs_safe(serde_json::to_string(&wire).unwrap_or_default())
    }
}

fn not_json(e: &serde_json::Error) -> JobError {
    JobError::NotJson {
        category: match e.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        },
        line: e.line(),
        column: e.column(),
    }
}

/// JSON text whose every character SQS accepts: SQS refuses characters outside XML's set
/// (U+FFFE and U+FFFF among them, which JSON allows), so a broadcast queued with one of them
/// would fail where a small, inline one succeeds. Valid JSON can hold them only inside strings,
/// where `\uFFFE` means the same; control characters are already escaped by any JSON writer, and
/// surrogates cannot be in a Rust string.
pub fn sqs_safe(json: String) -> String {
    if !json.contains(['\u{FFFE}', '\u{FFFF}']) {
        return json;
    }
    json.replace('\u{FFFE}', "\\ufffe")
        .replace('\u{FFFF}', "\\uffff")
}
