//! Parsing inbound frames into typed requests, with a typed error for every way a frame can be wrong.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::connection::ConnectionId;
use crate::protocol::ErrorCode;
use crate::room::RoomName;

/// A client's correlation id, echoed in `ack` and `error` frames: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: impl Into<String>) -> Option<Self> {
        let raw = raw.into();
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        ok.then_some(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a client asked for. `data` is kept as the client wrote it, byte for byte.
///
/// Each variant is declared on the wire exactly once, in [`ACTIONS`]: its name, its fields and how
/// they are read.
#[derive(Debug, Clone)]
pub enum Action {
    /// Broadcast to every live connection (the name AWS's simple-websockets-chat-app uses).
    SendMessage {
        data: Box<RawValue>,
    },
    Send {
        to: ConnectionId,
        data: Box<RawValue>,
    },
    Join {
        room: RoomName,
    },
    Leave {
        room: RoomName,
    },
    Publish {
        room: RoomName,
        data: Box<RawValue>,
    },
    Typing {
        room: RoomName,
    },
    /// One page of a room's member list, continuing after `cursor` when given.
    Members {
        room: RoomName,
        cursor: Option<ConnectionId>,
    },
    Ping,
    WhoAmI,
}

/// One client action on the wire: the `action` value that selects it and how its fields are read.
pub struct ActionSpec {
    pub name: &'static str,
    parse: fn(&Fields) -> Result<Action, ParseError>,
}

/// Every action a client can send: the only place an action's wire name is written.
pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "sendmessage",
        parse: |f| Ok(Action::SendMessage { data: f.data()? }),
    },
    ActionSpec {
        name: "send",
        parse: |f| {
            Ok(Action::Send {
                to: f.connection_id("to")?,
                data: f.data()?,
            })
        },
    },
    ActionSpec {
        name: "join",
        parse: |f| Ok(Action::Join { room: f.room()? }),
    },
    ActionSpec {
        name: "leave",
        parse: |f| Ok(Action::Leave { room: f.room()? }),
    },
    ActionSpec {
        name: "publish",
        parse: |f| {
            Ok(Action::Publish {
                room: f.room()?,
                data: f.data()?,
            })
        },
    },
    ActionSpec {
        name: "typing",
        parse: |f| Ok(Action::Typing { room: f.room()? }),
    },
    ActionSpec {
        name: "members",
        parse: |f| {
            Ok(Action::Members {
                room: f.room()?,
                cursor: f.optional_connection_id("cursor")?,
            })
        },
    },
    ActionSpec {
        name: "ping",
        parse: |_| Ok(Action::Ping),
    },
    ActionSpec {
        name: "whoami",
        parse: |_| Ok(Action::WhoAmI),
    },
];

#[derive(Debug, Clone)]
pub struct Request {
    /// The action's wire name, from [`ACTIONS`].
    pub name: &'static str,
    pub request_id: Option<RequestId>,
    pub action: Action,
}

/// Why a frame is not a request. `request_id` is kept when it could be read, so the error frame can
/// carry it back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub code: ErrorCode,
    /// For the client: may quote the client's own input back to it.
    pub message: String,
    /// For logs: where and what kind of mistake, never the client's content.
    pub detail: Option<String>,
    pub request_id: Option<RequestId>,
}

impl ParseError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            request_id: None,
        }
    }

    /// A JSON syntax error. serde's text embeds the offending value, so logs get only its category
    /// and position.
    fn bad_json(error: &serde_json::Error) -> Self {
        let category = match error.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        };
        Self {
            detail: Some(format!(
                "{category} error at line {} column {}",
                error.line(),
                error.column()
            )),
            ..Self::new(ErrorCode::BadJson, format!("not a JSON object: {error}"))
        }
    }
}

/// Deepest nesting of arrays and objects accepted. `data` is forwarded unparsed, so serde_json's own
/// recursion limit never sees it: without this, one frame could hand every recipient a parser bomb.
pub const MAX_NESTING: usize = 64;

/// Parses one inbound frame. Never panics, whatever the bytes (a proptest checks it).
pub fn parse_request(body: &[u8], max_bytes: usize) -> Result<Request, ParseError> {
    if body.len() > max_bytes {
        return Err(ParseError::new(
            ErrorCode::TooLarge,
            format!(
                "the message is {} bytes; the limit is {max_bytes}",
                body.len()
            ),
        ));
    }
    if nesting_exceeds(body, MAX_NESTING) {
        return Err(ParseError::new(
            ErrorCode::BadJson,
            format!("JSON nested deeper than {MAX_NESTING} levels"),
        ));
    }
    let fields: Fields = serde_json::from_slice(body).map_err(|e| ParseError::bad_json(&e))?;
    let request_id = match fields.get("requestId") {
        None => None,
        Some(raw) => Some(request_id_from(raw)?),
    };
    action_from(&fields)
        .map_err(|mut e| {
            e.request_id.clone_from(&request_id);
            e
        })
        .map(|(name, action)| Request {
            name,
            request_id,
            action,
        })
}

fn request_id_from(raw: &RawValue) -> Result<RequestId, ParseError> {
    let text: String = string_field("requestId", raw)?;
    RequestId::parse(text).ok_or_else(|| {
        ParseError::new(
            ErrorCode::InvalidField,
            "requestId must be 1 to 128 printable ASCII characters",
        )
    })
}

fn action_from(fields: &Fields) -> Result<(&'static str, Action), ParseError> {
    let name = string_field("action", fields.required("action")?)?;
    let Some(spec) = ACTIONS.iter().find(|spec| spec.name == name) else {
        let shown: String = name.chars().take(64).collect();
        let known: Vec<&str> = ACTIONS.iter().map(|spec| spec.name).collect();
        return Err(ParseError::new(
            ErrorCode::UnknownAction,
            format!(
                "unknown action {shown:?}; expected one of {}",
                known.join(", ")
            ),
        ));
    };
    Ok((spec.name, (spec.parse)(fields)?))
}

fn string_field(name: &str, raw: &RawValue) -> Result<String, ParseError> {
    serde_json::from_str::<String>(raw.get()).map_err(|e| {
        ParseError::new(
            ErrorCode::InvalidField,
            format!("{name} must be a string: {e}"),
        )
    })
}

/// The top-level members of a JSON object, in order, refusing duplicate keys: with duplicates, two
/// readers of the same frame could disagree on who it is for.
struct Fields(Vec<(String, Box<RawValue>)>);

/// The field readers an [`ActionSpec`] parses with: each refuses a missing or malformed field with
/// `invalid_field` and a message naming it.
impl Fields {
    fn get(&self, name: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_ref())
    }

    fn required(&self, name: &str) -> Result<&RawValue, ParseError> {
        self.get(name)
            .ok_or_else(|| ParseError::new(ErrorCode::InvalidField, format!("{name} is required")))
    }

    fn room(&self) -> Result<RoomName, ParseError> {
        RoomName::parse(string_field("room", self.required("room")?)?)
            .map_err(|e| ParseError::new(ErrorCode::InvalidField, format!("room: {e}")))
    }

    fn connection_id(&self, name: &str) -> Result<ConnectionId, ParseError> {
        ConnectionId::parse(string_field(name, self.required(name)?)?)
            .map_err(|e| ParseError::new(ErrorCode::InvalidField, format!("{name}: {e}")))
    }

    fn optional_connection_id(&self, name: &str) -> Result<Option<ConnectionId>, ParseError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.connection_id(name).map(Some),
        }
    }

    fn data(&self) -> Result<Box<RawValue>, ParseError> {
        Ok(self.required("data")?.to_owned())
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields: Vec<(String, Box<RawValue>)> = Vec::new();
                // A set, not a scan of `fields`: a frame of thousands of keys must not cost a
                // quadratic number of comparisons.
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    let value: Box<RawValue> = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// Whether `[`/`{` nesting outside strings goes deeper than `max`. Malformed input is left to the
/// JSON parser: this only has to be right for the input the parser would accept.
fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}
