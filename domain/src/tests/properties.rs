use proptest::prelude::*;
use serde_json::json;

use crate::actions::{Join, Leave, Publish, Send, SendMessage, parse_request};

const LIMIT: usize = crate::protocol::API_GATEWAY_MAX_MESSAGE_BYTES;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::testing::proptest_cases(2_000)))]

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_request(&bytes, LIMIT);
    }

    #[test]
    fn arbitrary_json_objects_never_panic_the_parser(value in json_value()) {
        let _ = parse_request(value.to_string().as_bytes(), LIMIT);
    }

    #[test]
    fn valid_envelopes_round_trip(
        room in "[A-Za-z0-9_.:-]{1,64}",
        to in "[!-~]{1,128}",
        request_id in "[ -~]{1,128}",
        data in json_value(),
        which in 0..5usize,
    ) {
        let body = match which {
            0 => json!({"action": "sendmessage", "data": data, "requestId": request_id}),
            1 => json!({"action": "send", "to": to, "data": data, "requestId": request_id}),
            2 => json!({"action": "publish", "room": room, "data": data, "requestId": request_id}),
            3 => json!({"action": "join", "room": room, "requestId": request_id}),
            _ => json!({"action": "leave", "room": room, "requestId": request_id}),
        };
        let request = parse_request(body.to_string().as_bytes(), LIMIT).unwrap();
        let got_id = request.request_id.unwrap();
        prop_assert_eq!(got_id.as_str(), request_id.as_str());
        let reparsed = |raw: &serde_json::value::RawValue| serde_json::from_str::<serde_json::Value>(raw.get()).unwrap();
        let action = request.action.as_any();
        if let Some(m) = action.downcast_ref::<SendMessage>() {
            prop_assert_eq!(reparsed(&m.data), data);
        } else if let Some(m) = action.downcast_ref::<Send>() {
            prop_assert_eq!(m.to.as_str(), to.as_str());
            prop_assert_eq!(reparsed(&m.data), data);
        } else if let Some(m) = action.downcast_ref::<Publish>() {
            prop_assert_eq!(m.room.as_str(), room.as_str());
            prop_assert_eq!(reparsed(&m.data), data);
        } else if let Some(m) = action.downcast_ref::<Join>() {
            prop_assert_eq!(m.room.as_str(), room.as_str());
        } else if let Some(m) = action.downcast_ref::<Leave>() {
            prop_assert_eq!(m.room.as_str(), room.as_str());
        } else {
            prop_assert!(false, "parsed as {:?}", request.action);
        }
    }
}
