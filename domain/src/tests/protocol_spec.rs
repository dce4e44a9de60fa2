//! The protocol's declarations (`ActionSpec`, `FrameSpec`) against what the code does: every
//! action parses from exactly its declared fields, every frame serializes to exactly its declared
//! fields. The documentation and the clients are generated from the declarations, so these tests
//! are what keeps them true.

use serde_json::{Map, Value, json};

use super::harness::id;
use crate::actions::{ACTIONS, parse_request};
use crate::message::MessageId;
use crate::protocol::spec::{FieldSpec, Kind};
use crate::protocol::{API_GATEWAY_MAX_MESSAGE_BYTES, ErrorCode, FRAMES, Frame, PresenceEvent};
use crate::room::Member;
use crate::testing::room;

/// A value the field of `action` accepts.
fn example(action: &str, kind: Kind) -> Value {
    match kind {
        // A cursor is bound to its room and to the answer that sent it.
        Kind::Cursor if action == "history" => {
            json!(crate::protocol::cursor::encode(&room("lobby"), "a3"))
        }
        Kind::Room => json!("lobby"),
        Kind::ConnectionId => json!("L0SM9cOFvHcCIhw="),
        Kind::Principal => json!("alice"),
        Kind::MessageId => json!("m-1"),
        Kind::RequestId => json!("r-1"),
        Kind::Data => json!({"text": "hi"}),
        Kind::Cursor => json!(crate::protocol::cursor::encode(
            &room("lobby"),
            "L0SM9cOFvHcCIhw="
        )),
        Kind::Code(codes) => json!(codes[0]),
        Kind::Text => json!("text"),
        Kind::Integer => json!(1),
        Kind::Boolean => json!(true),
        Kind::Token => json!("eyJ.eyJ.sig"),
        Kind::Members => json!([{"connectionId": "a", "principal": null}]),
        Kind::Messages => json!([]),
    }
}

fn request(action: &str, fields: &[FieldSpec], leave_out: Option<&str>) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("action".into(), json!(action));
    for field in fields.iter().filter(|f| Some(f.name) != leave_out) {
        body.insert(field.name.into(), example(action, field.kind));
    }
    Value::Object(body).to_string().into_bytes()
}

#[test]
fn every_action_parses_from_its_declared_fields_alone() {
    for spec in ACTIONS {
        let body = request(spec.name, spec.fields, None);
        let parsed = parse_request(&body, API_GATEWAY_MAX_MESSAGE_BYTES);
        assert!(parsed.is_ok(), "{}: {:?}", spec.name, parsed.err());
    }
}

#[test]
fn every_required_field_an_action_declares_is_required_and_named_when_missing() {
    for spec in ACTIONS {
        for field in spec.fields.iter().filter(|f| f.required) {
            let body = request(spec.name, spec.fields, Some(field.name));
            let error = parse_request(&body, API_GATEWAY_MAX_MESSAGE_BYTES).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidField, "{}", spec.name);
            assert!(
                error.message.contains(field.name),
                "{} without {}: {}",
                spec.name,
                field.name,
                error.message
            );
        }
        for field in spec.fields.iter().filter(|f| !f.required) {
            let body = request(spec.name, spec.fields, Some(field.name));
            assert!(
                parse_request(&body, API_GATEWAY_MAX_MESSAGE_BYTES).is_ok(),
                "{} without its optional {}",
                spec.name,
                field.name
            );
        }
    }
}

#[test]
fn every_action_is_answered_by_a_declared_frame() {
    for spec in ACTIONS {
        assert!(
            FRAMES.iter().any(|frame| frame.name == spec.answer),
            "{} is answered by {:?}, which no frame declares",
            spec.name,
            spec.answer
        );
    }
}

/// Whether `value` is of the JSON type a field of `kind` holds.
fn holds(kind: Kind, value: &Value) -> bool {
    match kind {
        Kind::Data => true,
        Kind::Integer => value.is_u64(),
        Kind::Boolean => value.is_boolean(),
        Kind::Members | Kind::Messages => value.is_array(),
        Kind::Code(codes) => value.as_str().is_some_and(|code| codes.contains(&code)),
        _ => value.is_string(),
    }
}

/// One of every frame the service sends, with every optional field set.
fn every_frame() -> Vec<Value> {
    let (message_id, connection, lobby) = (MessageId::parse("m-1").unwrap(), id("a"), room("r"));
    let principal = crate::Principal::parse("alice").unwrap();
    let request_id = crate::protocol::RequestId::parse("q").unwrap();
    let data = serde_json::value::RawValue::from_string("1".into()).unwrap();
    let members = [Member {
        id: connection.clone(),
        principal: Some(principal.clone()),
    }];
    let history = [serde_json::value::RawValue::from_string(
        r#"{"type":"message","id":"m-1","room":"r","seq":7,"data":1,"sentAt":1}"#.into(),
    )
    .unwrap()];
    let frames = [
        Frame::Message {
            id: &message_id,
            from: Some(&connection),
            principal: Some(&principal),
            room: Some(&lobby),
            seq: Some(7),
            data: &data,
            sent_at: 1,
        },
        Frame::Pong {
            request_id: Some(&request_id),
        },
        Frame::Identity {
            connection_id: &connection,
            principal: Some(&principal),
            protocol_version: 2,
            expires_at: Some(5),
            request_id: Some(&request_id),
        },
        Frame::Typing {
            from: &connection,
            principal: Some(&principal),
            room: &lobby,
        },
        Frame::Presence {
            room: &lobby,
            event: PresenceEvent::Left,
            connection_id: &connection,
            principal: Some(&principal),
        },
        Frame::Members {
            room: &lobby,
            members: &members,
            count: 1,
            cursor: Some("6c6f626279"),
            request_id: Some(&request_id),
        },
        Frame::History {
            room: &lobby,
            messages: &history,
            cursor: Some("6c6f626279"),
            request_id: Some(&request_id),
        },
        Frame::Reset {
            room: &lobby,
            oldest_seq: Some(3),
        },
        Frame::Closing {
            code: crate::sessions::ClosingCode::Kicked,
            reason: Some("bye"),
        },
        Frame::Ack {
            request_id: &request_id,
            delivered: 1,
            gone: 0,
            failed: 0,
            queued: false,
            requeued: 0,
            seq: Some(7),
        },
        Frame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down",
            request_id: Some(&request_id),
            retry_after_ms: Some(100),
        },
    ];
    frames
        .iter()
        .map(|frame| {
            let mut value = serde_json::to_value(frame).unwrap();
            assert_eq!(value["type"], frame.kind(), "{frame:?}");
            value.as_object_mut().unwrap().remove("type");
            json!({"type": frame.kind(), "fields": value})
        })
        .collect()
}

#[test]
fn every_frame_serializes_to_exactly_its_declared_fields() {
    let frames = every_frame();
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    let declared: Vec<&str> = FRAMES.iter().map(|f| f.name).collect();
    assert_eq!(kinds, declared, "one example of every declared frame");
    for (frame, spec) in frames.iter().zip(FRAMES) {
        let fields = frame["fields"].as_object().unwrap();
        for (name, value) in fields {
            let declared = spec.fields.iter().find(|f| f.name == name);
            let declared =
                declared.unwrap_or_else(|| panic!("{}: field {name} is not declared", spec.name));
            assert!(
                holds(declared.kind, value) || (declared.nullable && value.is_null()),
                "{}.{name} = {value} is not a {:?}",
                spec.name,
                declared.kind
            );
        }
        for field in spec.fields {
            assert!(
                fields.contains_key(field.name),
                "{}: declared field {} is never sent",
                spec.name,
                field.name
            );
        }
    }
}
