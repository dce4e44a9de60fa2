//! Every way an inbound frame can be wrong, with the error code the client gets.

use crate::actions::{ACTIONS, Ping, SendMessage, parse_request};
use crate::protocol::ErrorCode;

const LIMIT: usize = crate::protocol::API_GATEWAY_MAX_MESSAGE_BYTES;

fn deeply_nested(depth: usize) -> String {
    format!(
        r#"{{"action":"sendmessage","data":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn malformed_frames_are_refused_with_the_right_code() {
    let oversize = format!(
        r#"{{"action":"sendmessage","data":"{}"}}"#,
        "x".repeat(LIMIT)
    );
    let long_room = format!(r#"{{"action":"join","room":"{}"}}"#, "r".repeat(65));
    let long_request_id = format!(r#"{{"action":"ping","requestId":"{}"}}"#, "q".repeat(129));
    let nested = deeply_nested(64);
    let cases: Vec<(&str, &[u8], ErrorCode)> = vec![
        ("empty body", b"", ErrorCode::BadJson),
        ("not JSON", b"hello", ErrorCode::BadJson),
        (
            "truncated object",
            br#"{"action":"ping""#,
            ErrorCode::BadJson,
        ),
        ("JSON array", br#"[{"action":"ping"}]"#, ErrorCode::BadJson),
        ("JSON string", br#""ping""#, ErrorCode::BadJson),
        ("JSON number", b"42", ErrorCode::BadJson),
        ("JSON null", b"null", ErrorCode::BadJson),
        (
            "trailing garbage",
            br#"{"action":"ping"} x"#,
            ErrorCode::BadJson,
        ),
        (
            "invalid UTF-8",
            b"{\"action\":\"p\xffing\"}",
            ErrorCode::BadJson,
        ),
        (
            "duplicate action key",
            br#"{"action":"ping","action":"whoami"}"#,
            ErrorCode::BadJson,
        ),
        (
            "duplicate to key",
            br#"{"action":"send","to":"a","to":"b","data":1}"#,
            ErrorCode::BadJson,
        ),
        (
            "nesting beyond the recursion limit",
            nested.as_bytes(),
            ErrorCode::BadJson,
        ),
        ("missing action", br#"{"data":1}"#, ErrorCode::InvalidField),
        (
            "numeric action",
            br#"{"action":7}"#,
            ErrorCode::InvalidField,
        ),
        (
            "null action",
            br#"{"action":null}"#,
            ErrorCode::InvalidField,
        ),
        (
            "object action",
            br#"{"action":{"name":"ping"}}"#,
            ErrorCode::InvalidField,
        ),
        (
            "lone surrogate in action",
            br#"{"action":"\ud800ping"}"#,
            ErrorCode::InvalidField,
        ),
        (
            "unknown action",
            br#"{"action":"dance"}"#,
            ErrorCode::UnknownAction,
        ),
        (
            "action in the wrong case",
            br#"{"action":"SendMessage","data":1}"#,
            ErrorCode::UnknownAction,
        ),
        (
            "sendmessage without data",
            br#"{"action":"sendmessage"}"#,
            ErrorCode::InvalidField,
        ),
        (
            "send without to",
            br#"{"action":"send","data":1}"#,
            ErrorCode::InvalidField,
        ),
        (
            "send with a numeric to",
            br#"{"action":"send","to":5,"data":1}"#,
            ErrorCode::InvalidField,
        ),
        (
            "send to an empty id",
            br#"{"action":"send","to":"","data":1}"#,
            ErrorCode::InvalidField,
        ),
        (
            "send to an id with spaces",
            br#"{"action":"send","to":"a b","data":1}"#,
            ErrorCode::InvalidField,
        ),
        (
            "typing without room",
            br#"{"action":"typing"}"#,
            ErrorCode::InvalidField,
        ),
        (
            "typing in a room with a space",
            br#"{"action":"typing","room":"a b"}"#,
            ErrorCode::InvalidField,
        ),
        (
            "join without room",
            br#"{"action":"join"}"#,
            ErrorCode::InvalidField,
        ),
        (
            "join an empty room",
            br#"{"action":"join","room":""}"#,
            ErrorCode::InvalidField,
        ),
        (
            "join a room with a slash",
            br#"{"action":"join","room":"a/b"}"#,
            ErrorCode::InvalidField,
        ),
        (
            "join a room name too long",
            long_room.as_bytes(),
            ErrorCode::InvalidField,
        ),
        (
            "join with a numeric room",
            br#"{"action":"join","room":1}"#,
            ErrorCode::InvalidField,
        ),
        (
            "publish without data",
            br#"{"action":"publish","room":"r"}"#,
            ErrorCode::InvalidField,
        ),
        (
            "leave with an array room",
            br#"{"action":"leave","room":["r"]}"#,
            ErrorCode::InvalidField,
        ),
        (
            "numeric requestId",
            br#"{"action":"ping","requestId":1}"#,
            ErrorCode::InvalidField,
        ),
        (
            "empty requestId",
            br#"{"action":"ping","requestId":""}"#,
            ErrorCode::InvalidField,
        ),
        (
            "requestId too long",
            long_request_id.as_bytes(),
            ErrorCode::InvalidField,
        ),
        (
            "requestId with a newline",
            br#"{"action":"ping","requestId":"a\nb"}"#,
            ErrorCode::InvalidField,
        ),
        ("oversize body", oversize.as_bytes(), ErrorCode::TooLarge),
    ];
    assert!(cases.len() >= 25);

    for (name, body, expected) in cases {
        match parse_request(body, LIMIT) {
            Ok(request) => panic!("{name}: accepted as {:?}", request.action),
            Err(e) => assert_eq!(e.code, expected, "{name}: {}", e.message),
        }
    }
}

#[test]
fn the_request_id_is_kept_on_errors_found_after_it_was_read() {
    let e = parse_request(br#"{"requestId":"abc","action":"dance"}"#, LIMIT).unwrap_err();
    assert_eq!(e.request_id.unwrap().as_str(), "abc");
}

#[test]
fn data_is_forwarded_byte_for_byte_including_lone_surrogates_and_big_numbers() {
    let body = br#"{"action":"sendmessage","data":{"n":123456789012345678901234567890,"s":"\ud800","k":[1.50,{}]}}"#;
    let request = parse_request(body, LIMIT).unwrap();
    let parsed = request.action.as_any().downcast_ref::<SendMessage>();
    assert_eq!(
        parsed.map(|m| m.data.get()),
        Some(r#"{"n":123456789012345678901234567890,"s":"\ud800","k":[1.50,{}]}"#),
        "{request:?}"
    );
}

#[test]
fn unknown_extra_fields_are_ignored() {
    let request = parse_request(br#"{"action":"ping","client":"v2"}"#, LIMIT).unwrap();
    assert!(request.action.as_any().is::<Ping>());
}

#[test]
fn nesting_within_the_limit_is_accepted() {
    assert!(parse_request(deeply_nested(63).as_bytes(), LIMIT).is_ok());
    // Brackets inside strings are text, not nesting.
    let body = format!(r#"{{"action":"sendmessage","data":"{}"}}"#, "[".repeat(500));
    assert!(parse_request(body.as_bytes(), LIMIT).is_ok());
}

#[test]
fn every_action_in_the_table_parses_by_its_wire_name_and_the_unknown_action_error_lists_them_all() {
    let fields = r#""room":"r","data":1,"to":"c","token":"t""#;
    for spec in ACTIONS {
        let body = format!(r#"{{"action":"{}",{fields}}}"#, spec.name);
        let request = parse_request(body.as_bytes(), LIMIT).unwrap();
        assert_eq!(request.name(), spec.name);
    }

    let error = parse_request(br#"{"action":"dance"}"#, LIMIT).unwrap_err();
    for spec in ACTIONS {
        assert!(error.message.contains(spec.name), "{}", error.message);
    }
}
