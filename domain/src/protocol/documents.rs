//! The protocol's documents, generated from its declarations ([`ACTIONS`], [`FRAMES`],
//! [`ErrorCode`]) so that none can drift: the AsyncAPI 3 document (`docs/asyncapi.yaml`), the
//! JavaScript client's copy of the wire names (`clients/js/protocol.js`) and its TypeScript
//! declarations (`clients/js/protocol.d.ts`). A test holds the checked-in files to these; after
//! changing the protocol, `UPDATE_GENERATED=1 cargo test -p domain generated` writes them.

use std::fmt::Write as _;

use crate::actions::{ACTIONS, ActionSpec};
use crate::connection::{ConnectionId, Principal};
use crate::message::MessageId;
use crate::protocol::spec::{FieldSpec, FrameSpec, Kind, field};
use crate::protocol::{
    API_GATEWAY_MAX_MESSAGE_BYTES, ErrorCode, FRAMES, PROTOCOL_VERSION, RequestId, frames,
};
use crate::room::{HASHED_INBOX_MARK, INBOX_PREFIX, RoomName};

/// Each generated file: its path from the repository's root, and its content.
pub fn generated() -> Vec<(&'static str, String)> {
    vec![
        ("docs/asyncapi.yaml", asyncapi_yaml()),
        ("clients/js/protocol.js", javascript()),
        ("clients/js/protocol.d.ts", typescript()),
    ]
}

const GENERATED_BY: &str = "Generated from domain/src/actions and domain/src/protocol by \
     `UPDATE_GENERATED=1 cargo test -p domain generated`: do not edit.";

/// A room name as a regular expression (`RoomName::parse`'s rule).
fn room_pattern() -> String {
    format!("^[A-Za-z0-9_.:-]{{1,{}}}$", RoomName::MAX_LEN)
}

fn message_id_pattern() -> String {
    format!("^[A-Za-z0-9_.:-]{{1,{}}}$", MessageId::MAX_LEN)
}

/// Frame types that answer a request by themselves: the actions' answers, and `error`.
fn answer_types() -> Vec<&'static str> {
    let mut types: Vec<&str> = Vec::new();
    for name in ACTIONS.iter().map(|a| a.answer).chain([frames::ERROR.name]) {
        if !types.contains(&name) {
            types.push(name);
        }
    }
    types
}

/// An action's fields on the wire: `action`, its own, then `requestId`.
fn request_fields(action: &ActionSpec) -> Vec<FieldSpec> {
    let mut fields = vec![FieldSpec::required(
        "action",
        Kind::Code(&[]),
        "selects the action",
    )];
    fields.extend_from_slice(action.fields);
    fields.push(field::REQUEST_ID);
    fields
}

// --- AsyncAPI --------------------------------------------------------------------------------

/// A YAML document as an ordered tree, written by [`Node::write`].
enum Node {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    Str(String),
    Int(u64),
    Bool(bool),
}

fn map<const N: usize>(entries: [(&str, Node); N]) -> Node {
    Node::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn s(text: impl Into<String>) -> Node {
    Node::Str(text.into())
}

fn reference(path: String) -> Node {
    map([("$ref", s(path))])
}

/// A YAML double-quoted scalar: JSON's string escapes are YAML's.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn key(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if plain { text.to_owned() } else { quoted(text) }
}

impl Node {
    fn is_scalar(&self) -> bool {
        !matches!(self, Node::Map(m) if !m.is_empty())
            && !matches!(self, Node::List(l) if !l.is_empty())
    }

    fn scalar(&self) -> String {
        match self {
            Node::Str(text) => quoted(text),
            Node::Int(n) => n.to_string(),
            Node::Bool(b) => b.to_string(),
            Node::Map(_) => "{}".into(),
            Node::List(_) => "[]".into(),
        }
    }

    fn write(&self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        match self {
            Node::Map(entries) if !entries.is_empty() => {
                for (k, v) in entries {
                    if v.is_scalar() {
                        let _ = writeln!(out, "{pad}{}: {}", key(k), v.scalar());
                    } else {
                        let _ = writeln!(out, "{pad}{}:", key(k));
                        v.write(out, indent + 2);
                    }
                }
            }
            Node::List(items) if !items.is_empty() => {
                for item in items {
                    if item.is_scalar() {
                        let _ = writeln!(out, "{pad}- {}", item.scalar());
                    } else {
                        // The item's first line follows the dash; the rest align under it.
                        let mut inner = String::new();
                        item.write(&mut inner, indent + 2);
                        let inner = inner.trim_start();
                        let _ = write!(out, "{pad}- {inner}");
                    }
                }
            }
            scalar => {
                let _ = writeln!(out, "{pad}{}", scalar.scalar());
            }
        }
    }
}

/// The JSON schema of a field's value.
fn schema(kind: Kind, nullable: bool) -> Node {
    let string = |extra: Vec<(&str, Node)>| {
        let mut entries = vec![("type".to_owned(), s("string"))];
        entries.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        Node::Map(entries)
    };
    let length = |max: usize| {
        vec![
            ("minLength", Node::Int(1)),
            ("maxLength", Node::Int(max as u64)),
        ]
    };
    let base = match kind {
        Kind::Room => string(vec![("pattern", s(room_pattern()))]),
        Kind::ConnectionId => string(length(ConnectionId::MAX_LEN)),
        Kind::Principal => string(length(Principal::MAX_LEN)),
        Kind::MessageId => string(vec![("pattern", s(message_id_pattern()))]),
        Kind::RequestId => string(length(RequestId::MAX_LEN)),
        Kind::Data => Node::Map(Vec::new()),
        Kind::Cursor | Kind::Text | Kind::Token => string(Vec::new()),
        Kind::Code(values) => string(vec![(
            "enum",
            Node::List(values.iter().map(|v| s(*v)).collect()),
        )]),
        Kind::Integer => map([("type", s("integer")), ("minimum", Node::Int(0))]),
        Kind::Boolean => map([("type", s("boolean"))]),
        Kind::Members => map([
            ("type", s("array")),
            (
                "items",
                map([
                    ("type", s("object")),
                    (
                        "required",
                        Node::List(vec![s("connectionId"), s("principal")]),
                    ),
                    (
                        "properties",
                        map([
                            ("connectionId", schema(Kind::ConnectionId, false)),
                            ("principal", schema(Kind::Principal, true)),
                        ]),
                    ),
                ]),
            ),
        ]),
        Kind::Messages => map([
            ("type", s("array")),
            (
                "items",
                reference(format!(
                    "#/components/schemas/{}Frame",
                    frames::MESSAGE.name
                )),
            ),
        ]),
    };
    match (nullable, base) {
        (true, Node::Map(mut entries)) => {
            if let Some((_, ty)) = entries.iter_mut().find(|(k, _)| k == "type") {
                let inner = std::mem::replace(ty, Node::Bool(false));
                *ty = Node::List(vec![inner, s("null")]);
            }
            Node::Map(entries)
        }
        (_, base) => base,
    }
}

fn object_schema(doc: &str, fields: &[FieldSpec], fixed: (&str, &str)) -> Node {
    let required = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| s(f.name))
        .collect();
    let properties = fields
        .iter()
        .map(|f| {
            let mut property = if f.name == fixed.0 {
                map([("type", s("string")), ("const", s(fixed.1))])
            } else {
                schema(f.kind, f.nullable)
            };
            if let Node::Map(entries) = &mut property {
                entries.push(("description".into(), s(f.doc)));
            }
            (f.name.to_owned(), property)
        })
        .collect();
    map([
        ("type", s("object")),
        ("description", s(doc)),
        ("required", Node::List(required)),
        ("properties", Node::Map(properties)),
    ])
}

fn frame_fields(frame: &FrameSpec) -> Vec<FieldSpec> {
    let mut fields = vec![FieldSpec::required(
        "type",
        Kind::Code(&[]),
        "what this frame is",
    )];
    fields.extend_from_slice(frame.fields);
    fields
}

/// The AsyncAPI 3 document of the WebSocket protocol.
pub fn asyncapi_yaml() -> String {
    let channel = || reference("#/channels/socket".into());
    let message_ref = |id: String| reference(format!("#/channels/socket/messages/{id}"));
    let mut messages = Vec::new();
    let mut schemas = Vec::new();
    let mut channel_messages = Vec::new();
    let mut operations = Vec::new();
    for action in ACTIONS {
        let id = format!("{}Request", action.name);
        schemas.push((
            id.clone(),
            object_schema(action.doc, &request_fields(action), ("action", action.name)),
        ));
        messages.push((
            id.clone(),
            map([
                ("name", s(action.name)),
                ("title", s(format!("{} request", action.name))),
                ("summary", s(action.doc)),
                ("contentType", s("application/json")),
                ("payload", reference(format!("#/components/schemas/{id}"))),
            ]),
        ));
        channel_messages.push((id.clone(), reference(format!("#/components/messages/{id}"))));
        operations.push((
            action.name.to_owned(),
            map([
                ("action", s("send")),
                ("channel", channel()),
                ("summary", s(action.doc)),
                ("messages", Node::List(vec![message_ref(id)])),
                (
                    "reply",
                    map([
                        ("channel", channel()),
                        (
                            "messages",
                            Node::List(vec![
                                message_ref(format!("{}Frame", action.answer)),
                                message_ref(format!("{}Frame", frames::ERROR.name)),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ));
    }
    for frame in FRAMES {
        let id = format!("{}Frame", frame.name);
        schemas.push((
            id.clone(),
            object_schema(frame.doc, &frame_fields(frame), ("type", frame.name)),
        ));
        messages.push((
            id.clone(),
            map([
                ("name", s(frame.name)),
                ("title", s(format!("{} frame", frame.name))),
                ("summary", s(frame.doc)),
                ("contentType", s("application/json")),
                ("payload", reference(format!("#/components/schemas/{id}"))),
            ]),
        ));
        channel_messages.push((id.clone(), reference(format!("#/components/messages/{id}"))));
        operations.push((
            format!("receive{}", capitalised(frame.name)),
            map([
                ("action", s("receive")),
                ("channel", channel()),
                ("summary", s(frame.doc)),
                ("messages", Node::List(vec![message_ref(id)])),
            ]),
        ));
    }
    let document = map([
        ("asyncapi", s("3.0.0")),
        (
            "info",
            map([
                ("title", s("serverless-websockets")),
                ("version", s(PROTOCOL_VERSION.to_string())),
                (
                    "description",
                    s(format!(
                        "JSON text frames over an API Gateway WebSocket API. A client sends \
                         {{\"action\": ..., \"requestId\": optional, ...fields}}; the server \
                         answers a request that carries a requestId with the action's answer \
                         frame or an error frame with the same requestId, and sends message, \
                         typing and presence frames as they happen. Every frame is at most \
                         {API_GATEWAY_MAX_MESSAGE_BYTES} bytes. The identity frame's \
                         protocolVersion is this document's version. {GENERATED_BY}"
                    )),
                ),
            ]),
        ),
        (
            "servers",
            map([
                (
                    "aws",
                    map([
                        ("host", s("{apiId}.execute-api.{region}.amazonaws.com")),
                        ("pathname", s("/{stage}")),
                        ("protocol", s("wss")),
                        (
                            "description",
                            s(
                                "The deployed stage; authenticate with ?token=<JWT> when auth is on.",
                            ),
                        ),
                        (
                            "variables",
                            map([
                                (
                                    "apiId",
                                    map([("description", s("The API's id (stack output)."))]),
                                ),
                                ("region", map([("default", s("us-east-1"))])),
                                ("stage", map([("default", s("dev"))])),
                            ]),
                        ),
                    ]),
                ),
                (
                    "local",
                    map([
                        ("host", s("127.0.0.1:3001")),
                        ("pathname", s("/local")),
                        ("protocol", s("ws")),
                        ("description", s("cargo run -p local-gateway")),
                    ]),
                ),
            ]),
        ),
        (
            "channels",
            map([(
                "socket",
                map([
                    ("address", s("/")),
                    (
                        "description",
                        s("The one WebSocket: every action in, every frame out."),
                    ),
                    ("messages", Node::Map(channel_messages)),
                ]),
            )]),
        ),
        ("operations", Node::Map(operations)),
        (
            "components",
            map([
                ("messages", Node::Map(messages)),
                ("schemas", Node::Map(schemas)),
            ]),
        ),
    ]);
    let mut out = format!("# {GENERATED_BY}\n");
    document.write(&mut out, 0);
    out
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

// --- JavaScript and TypeScript ---------------------------------------------------------------

fn js_string(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    // The JSON string as a single-quoted JavaScript one, as the client's own style.
    format!(
        "'{}'",
        quoted[1..quoted.len() - 1]
            .replace("\\\"", "\"")
            .replace('\'', "\\'")
    )
}

fn constant_name(name: &str) -> String {
    name.to_ascii_uppercase()
}

/// `clients/js/protocol.js`: the wire names the client reads, from the declarations.
pub fn javascript() -> String {
    let mut out = format!("// {GENERATED_BY}\n\n");
    let _ = writeln!(
        out,
        "/** The protocol version every `identity` frame carries (docs/UPGRADING.md). */\nexport const PROTOCOL_VERSION = {PROTOCOL_VERSION};\n"
    );
    out.push_str("/** Every action's `action` value. */\nexport const ACTIONS = Object.freeze({\n");
    for action in ACTIONS {
        let _ = writeln!(
            out,
            "  {}: {},",
            constant_name(action.name),
            js_string(action.name)
        );
    }
    out.push_str(
        "});\n\n/** Every frame's `type`. */\nexport const FRAME_TYPES = Object.freeze({\n",
    );
    for frame in FRAMES {
        let _ = writeln!(
            out,
            "  {}: {},",
            constant_name(frame.name),
            js_string(frame.name)
        );
    }
    out.push_str("});\n\n/** The frame type that answers each action's request. */\nexport const ANSWERS = Object.freeze({\n");
    for action in ACTIONS {
        let _ = writeln!(out, "  {}: {},", action.name, js_string(action.answer));
    }
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|item| js_string(item))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "}});\n\n/** Frame types that answer a request by themselves (no `ack` follows them). */\nexport const ANSWER_TYPES = Object.freeze([{}]);\n",
        list(&answer_types())
    );
    let _ = writeln!(
        out,
        "/** Every `error` frame's `code`. */\nexport const ERROR_CODES = Object.freeze([{}]);\n",
        list(ErrorCode::WIRE)
    );
    let _ = writeln!(
        out,
        "/** A room name. */\nexport const ROOM_NAME = /{}/;\n",
        room_pattern()
    );
    let _ = writeln!(
        out,
        "/** What starts a principal's inbox room, and what marks one named by a hash. */\nexport const INBOX_PREFIX = {};\nexport const HASHED_INBOX_MARK = {};\n",
        js_string(INBOX_PREFIX),
        js_string(HASHED_INBOX_MARK)
    );
    let _ = writeln!(
        out,
        "/** API Gateway's limit on one message, either way. */\nexport const MAX_MESSAGE_BYTES = {API_GATEWAY_MAX_MESSAGE_BYTES};"
    );
    out
}

fn ts_type(kind: Kind, nullable: bool) -> String {
    let base = match kind {
        Kind::Room
        | Kind::ConnectionId
        | Kind::Principal
        | Kind::MessageId
        | Kind::RequestId
        | Kind::Cursor
        | Kind::Text
        | Kind::Token => "string".to_owned(),
        Kind::Data => "unknown".to_owned(),
        Kind::Code([]) => "string".to_owned(),
        Kind::Code(values) => values
            .iter()
            .map(|v| js_string(v))
            .collect::<Vec<_>>()
            .join(" | "),
        Kind::Integer => "number".to_owned(),
        Kind::Boolean => "boolean".to_owned(),
        Kind::Members => "Member[]".to_owned(),
        Kind::Messages => "MessageFrame[]".to_owned(),
    };
    if nullable {
        format!("{base} | null")
    } else {
        base
    }
}

fn ts_interface(
    out: &mut String,
    doc: &str,
    name: &str,
    fixed: (&str, &str),
    fields: &[FieldSpec],
) {
    let _ = writeln!(out, "/** {doc} */\nexport interface {name} {{");
    let _ = writeln!(out, "  {}: {};", fixed.0, js_string(fixed.1));
    for field in fields {
        let _ = writeln!(
            out,
            "  /** {} */\n  {}{}: {};",
            field.doc,
            field.name,
            if field.required { "" } else { "?" },
            ts_type(field.kind, field.nullable)
        );
    }
    out.push_str("}\n\n");
}

/// `clients/js/protocol.d.ts`: every request and frame as a TypeScript type.
pub fn typescript() -> String {
    let mut out = format!("// {GENERATED_BY}\n\n");
    let _ = writeln!(
        out,
        "/** One member of a room, as the members frame lists it. */\nexport interface Member {{\n  connectionId: string;\n  principal: string | null;\n}}\n"
    );
    let _ = writeln!(
        out,
        "export type ErrorCode = {};\n",
        ts_type(Kind::Code(ErrorCode::WIRE), false)
    );
    let mut requests = Vec::new();
    for action in ACTIONS {
        let name = format!("{}Request", capitalised(action.name));
        let mut fields = action.fields.to_vec();
        fields.push(field::REQUEST_ID);
        ts_interface(
            &mut out,
            action.doc,
            &name,
            ("action", action.name),
            &fields,
        );
        requests.push(name);
    }
    let mut frame_types = Vec::new();
    for frame in FRAMES {
        let name = format!("{}Frame", capitalised(frame.name));
        ts_interface(
            &mut out,
            frame.doc,
            &name,
            ("type", frame.name),
            frame.fields,
        );
        frame_types.push(name);
    }
    let _ = writeln!(
        out,
        "/** Every request a client can send. */\nexport type Request = {};\n",
        requests.join(" | ")
    );
    let _ = writeln!(
        out,
        "/** Every frame the server sends. */\nexport type Frame = {};\n",
        frame_types.join(" | ")
    );
    out.push_str(
        "/** The frame that answers each action's request. */\nexport interface Answers {\n",
    );
    for action in ACTIONS {
        let _ = writeln!(
            out,
            "  {}: {}Frame;",
            action.name,
            capitalised(action.answer)
        );
    }
    out.push_str("}\n\n");
    let _ = writeln!(
        out,
        "export declare const PROTOCOL_VERSION: {PROTOCOL_VERSION};"
    );
    out.push_str("export declare const ACTIONS: {\n");
    for action in ACTIONS {
        let _ = writeln!(
            out,
            "  readonly {}: {};",
            constant_name(action.name),
            js_string(action.name)
        );
    }
    out.push_str("};\nexport declare const FRAME_TYPES: {\n");
    for frame in FRAMES {
        let _ = writeln!(
            out,
            "  readonly {}: {};",
            constant_name(frame.name),
            js_string(frame.name)
        );
    }
    out.push_str("};\nexport declare const ANSWERS: { readonly [A in keyof Answers]: Answers[A]['type'] };\n");
    out.push_str("export declare const ANSWER_TYPES: readonly Frame['type'][];\n");
    out.push_str("export declare const ERROR_CODES: readonly ErrorCode[];\n");
    out.push_str("export declare const ROOM_NAME: RegExp;\n");
    out.push_str("export declare const INBOX_PREFIX: string;\n");
    out.push_str("export declare const HASHED_INBOX_MARK: string;\n");
    out.push_str("export declare const MAX_MESSAGE_BYTES: number;\n");
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The checked-in copies are what the declarations generate; `UPDATE_GENERATED=1` writes them.
    #[test]
    fn generated_documents_match_the_declarations() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let update = std::env::var_os("UPDATE_GENERATED").is_some();
        let mut stale = Vec::new();
        for (path, content) in generated() {
            let file = root.join(path);
            let current = std::fs::read_to_string(&file).unwrap_or_default();
            if current != content {
                if update {
                    std::fs::write(&file, &content).expect("write the generated file");
                } else {
                    stale.push(path);
                }
            }
        }
        assert!(
            stale.is_empty(),
            "{stale:?} differ from what the protocol's declarations generate: run \
             UPDATE_GENERATED=1 cargo test -p domain generated, and review the diff"
        );
    }

    #[test]
    fn every_action_and_frame_is_in_the_asyncapi_document() {
        let document = asyncapi_yaml();
        for action in ACTIONS {
            assert!(document.contains(&format!("  {}Request:\n", action.name)));
        }
        for frame in FRAMES {
            assert!(document.contains(&format!("  {}Frame:\n", frame.name)));
        }
        for code in ErrorCode::WIRE {
            assert!(document.contains(&format!("- \"{code}\"")));
        }
    }

    #[test]
    fn yaml_lists_of_maps_keep_their_shape() {
        let mut out = String::new();
        map([(
            "a",
            Node::List(vec![map([("x", s("1")), ("y", Node::Int(2))]), s("z")]),
        )])
        .write(&mut out, 0);
        assert_eq!(out, "a:\n  - x: \"1\"\n    y: 2\n  - \"z\"\n");
    }
}
