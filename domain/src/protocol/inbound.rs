//! Parsing inbound frames into typed requests, with a typed error for every way a frame can be wrong.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::connection::ConnectionId;
use crate::protocol::ErrorCode;
use crate::protocol::spec::FieldSpec;
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
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
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

/// A frame's top-level fields, its `requestId` and its `action`, checked; what the action's own
/// fields say is for the action to read (`actions::parse_request`).
pub(crate) struct Envelope {
    pub fields: Fields,
    pub request_id: Option<RequestId>,
    pub action: String,
}

/// Reads the parts every request has. Never panics, whatever the bytes (a proptest checks it).
pub(crate) fn parse_envelope(body: &[u8], max_bytes: usize) -> Result<Envelope, ParseError> {
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
    let action = string_field("action", fields.required("action")?).map_err(|mut e| {
        e.request_id.clone_from(&request_id);
        e
    })?;
    Ok(Envelope {
        fields,
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
pub(crate) struct Fields(Vec<(String, Box<RawValue>)>);

/// The field readers an action parses with, each by its declaration ([`FieldSpec`]): a missing
/// required field or a malformed one is refused with `invalid_field` and a message naming it.
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

    /// The field's raw value: `None` when an optional field is absent.
    fn value(&self, spec: &FieldSpec) -> Result<Option<&RawValue>, ParseError> {
        match (self.get(spec.name), spec.required) {
            (None, true) => self.required(spec.name).map(Some),
            (value, _) => Ok(value),
        }
    }

    /// Reads a string field with `parse`, naming the field in any error.
    fn text<T, E: std::fmt::Display>(
        &self,
        spec: &FieldSpec,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<Option<T>, ParseError> {
        let Some(raw) = self.value(spec)? else {
            return Ok(None);
        };
        let text = string_field(spec.name, raw)?;
        parse(text)
            .map(Some)
            .map_err(|e| ParseError::new(ErrorCode::InvalidField, format!("{}: {e}", spec.name)))
    }

    fn present<T>(spec: &FieldSpec, value: Option<T>) -> Result<T, ParseError> {
        value.ok_or_else(|| {
            ParseError::new(
                ErrorCode::InvalidField,
                format!("{} is required", spec.name),
            )
        })
    }

    pub fn room(&self, spec: &FieldSpec) -> Result<RoomName, ParseError> {
        Self::present(spec, self.text(spec, RoomName::parse)?)
    }

    pub fn connection_id(&self, spec: &FieldSpec) -> Result<ConnectionId, ParseError> {
        Self::present(spec, self.optional_connection_id(spec)?)
    }

    pub fn optional_connection_id(
        &self,
        spec: &FieldSpec,
    ) -> Result<Option<ConnectionId>, ParseError> {
        self.text(spec, ConnectionId::parse)
    }

    /// A cursor this room could have produced (see [`crate::protocol::cursor`]): the position it
    /// continues after.
    pub fn optional_cursor(
        &self,
        spec: &FieldSpec,
        room: &RoomName,
    ) -> Result<Option<String>, ParseError> {
        self.text(spec, |text| {
            crate::protocol::cursor::decode(room, &text)
                .ok_or("not one this room's last answer could have sent")
        })
    }

    /// A required string, as it is (a token).
    pub fn text_field(&self, spec: &FieldSpec) -> Result<String, ParseError> {
        Self::present(
            spec,
            self.text(spec, Ok::<String, std::convert::Infallible>)?,
        )
    }

    /// A whole number from 0 to `max`.
    pub fn optional_integer(&self, spec: &FieldSpec, max: u64) -> Result<Option<u64>, ParseError> {
        let Some(raw) = self.value(spec)? else {
            return Ok(None);
        };
        match serde_json::from_str::<u64>(raw.get()) {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(ParseError::new(
                ErrorCode::InvalidField,
                format!("{} must be a whole number from 0 to {max}", spec.name),
            )),
        }
    }

    pub fn data(&self, spec: &FieldSpec) -> Result<Box<RawValue>, ParseError> {
        Self::present(spec, self.value(spec)?).map(|raw| raw.to_owned())
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
