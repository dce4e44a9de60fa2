//! The API Gateway event mapping, driven by the real fixtures that ship with aws_lambda_events and
//! by the odd events API Gateway (or a misconfiguration) can produce.

use std::sync::Arc;

use crate::support;

use adapters::apigateway::inbound::{InboundError, WebSocketHandler};
use adapters::memory::{InMemoryConnectionRepository, RecordingNotifier};
use adapters::wiring;
use domain::ports::MockConnectionRepository;
use domain::testing::{id, proptest_cases};
use domain::{ConnectionRepository, RepositoryError, Settings, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};

const CONNECT: &str = include_str!("fixtures/example-apigw-websocket-request.json");
const CONNECT_WITHOUT_METHOD: &str =
    include_str!("fixtures/example-apigw-websocket-request-without-method.json");
const DISCONNECT: &str =
    include_str!("fixtures/example-apigw-websocket-request-disconnect-route.json");

type Handler = WebSocketHandler<InMemoryConnectionRepository, Arc<RecordingNotifier>>;

fn handler() -> (Handler, Arc<RecordingNotifier>) {
    let notifier = Arc::new(RecordingNotifier::new());
    let service = wiring::service(
        InMemoryConnectionRepository::default(),
        notifier.clone(),
        Settings::default(),
    );
    (WebSocketHandler::new(service), notifier)
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A `$default` message event from the same connection as the connect fixture.
fn message(body: Option<&str>) -> Value {
    let mut event = fixture(CONNECT);
    event["requestContext"]["eventType"] = json!("MESSAGE");
    event["requestContext"]["routeKey"] = json!("$default");
    event["body"] = body.map_or(Value::Null, |b| json!(b));
    event
}

fn frames_to(notifier: &RecordingNotifier, to: &str) -> Vec<Value> {
    notifier
        .sent_to(&id(to))
        .iter()
        .map(|f| serde_json::from_slice(f).unwrap())
        .collect()
}

fn far_future() -> Timestamp {
    Timestamp::from_millis(0)
}

#[tokio::test]
async fn connect_stores_the_connection_with_its_principal_and_answers_200_without_a_body() {
    let (handler, notifier) = handler();

    let response = handler.handle_json(fixture(CONNECT)).await.unwrap();

    assert_eq!(response.status_code, 200);
    assert!(response.body.is_none());
    let stored = handler
        .service()
        .repository()
        .get(&id("TWegAcC4EowCHnA="), far_future())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.principal.unwrap().as_str(), "admin");
    assert_eq!(stored.source_ip.as_deref(), Some("192.168.196.186"));
    assert_eq!(stored.user_agent.as_deref(), Some("PostmanRuntime/2.4.5"));
    assert!(
        notifier.sent().is_empty(),
        "nothing may be posted inside $connect"
    );
}

#[tokio::test]
async fn connect_without_an_http_method_is_still_a_connect() {
    let (handler, _) = handler();

    handler
        .handle_json(fixture(CONNECT_WITHOUT_METHOD))
        .await
        .unwrap();

    let all = handler
        .service()
        .repository()
        .all_connections(None, far_future())
        .await
        .unwrap();
    assert_eq!(all.items, vec![id("asdfasdf=")]);
}

#[tokio::test]
async fn disconnect_removes_the_connection_and_its_memberships() {
    let (handler, _) = handler();
    let mut connect = fixture(CONNECT);
    connect["requestContext"]["connectionId"] = json!("AAAA1234=");
    handler.handle_json(connect).await.unwrap();
    let mut join = message(Some(r#"{"action":"join","room":"r"}"#));
    join["requestContext"]["connectionId"] = json!("AAAA1234=");
    handler.handle_json(join).await.unwrap();

    let response = handler.handle_json(fixture(DISCONNECT)).await.unwrap();

    assert_eq!(response.status_code, 200);
    let repo = handler.service().repository();
    assert_eq!(repo.stored_rows(), (0, 0));
}

#[tokio::test]
async fn a_message_is_handled_and_the_reply_goes_through_the_notifier() {
    let (handler, notifier) = handler();
    handler.handle_json(fixture(CONNECT)).await.unwrap();

    let response = handler
        .handle_json(message(Some(r#"{"action":"whoami"}"#)))
        .await
        .unwrap();

    assert_eq!(response.status_code, 200);
    assert_eq!(
        frames_to(&notifier, "TWegAcC4EowCHnA="),
        vec![
            json!({"type":"identity","connectionId":"TWegAcC4EowCHnA=","principal":"admin","protocolVersion":3})
        ]
    );
}

#[tokio::test]
async fn the_fixture_body_without_an_action_gets_an_error_frame_and_a_200() {
    let (handler, notifier) = handler();
    let mut event = fixture(CONNECT);
    event["requestContext"]["eventType"] = json!("MESSAGE");

    let response = handler.handle_json(event).await.unwrap();

    assert_eq!(response.status_code, 200);
    let frames = frames_to(&notifier, "TWegAcC4EowCHnA=");
    assert_eq!(frames[0]["code"], "invalid_field");
}

#[tokio::test]
async fn a_message_with_no_body_gets_a_bad_json_error_frame() {
    let (handler, notifier) = handler();

    handler.handle_json(message(None)).await.unwrap();

    assert_eq!(
        frames_to(&notifier, "TWegAcC4EowCHnA=")[0]["code"],
        "bad_json"
    );
}

#[tokio::test]
async fn a_base64_encoded_binary_frame_is_decoded_before_parsing() {
    let (handler, notifier) = handler();
    let mut event = message(Some("eyJhY3Rpb24iOiJwaW5nIn0=")); // {"action":"ping"}
    event["isBase64Encoded"] = json!(true);

    handler.handle_json(event).await.unwrap();

    assert_eq!(
        frames_to(&notifier, "TWegAcC4EowCHnA="),
        vec![json!({"type":"pong"})]
    );
}

#[tokio::test]
async fn odd_events_are_clear_errors_never_panics() {
    let (handler, _) = handler();
    let mut no_connected_at = fixture(CONNECT);
    no_connected_at["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("connectedAt");
    let mut no_connection_id = fixture(CONNECT);
    no_connection_id["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("connectionId");
    let mut bad_base64 = message(Some("%%%"));
    bad_base64["isBase64Encoded"] = json!(true);
    let mut bad_id = fixture(CONNECT);
    bad_id["requestContext"]["connectionId"] = json!("has space");
    let mut unknown_type = fixture(CONNECT);
    unknown_type["requestContext"]["eventType"] = json!("TELEPORT");

    let cases = [
        ("missing connectedAt", no_connected_at, "connectedAt"),
        ("missing connectionId", no_connection_id, "connectionId"),
        ("invalid base64 body", bad_base64, "base64"),
        ("unprintable connection id", bad_id, "connectionId"),
        ("unknown event type", unknown_type, "TELEPORT"),
        ("not an object", json!([1, 2]), ""),
        ("empty object", json!({}), "requestContext"),
    ];
    for (name, event, mentions) in cases {
        match handler.handle_json(event).await {
            Err(e @ InboundError::BadEvent(_)) => {
                assert!(e.to_string().contains(mentions), "{name}: {e}")
            }
            other => panic!("{name}: expected a BadEvent error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_storage_failure_is_an_error_so_api_gateway_sends_its_own_error_frame() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_save()
        .returning(|_| Err(RepositoryError::Unavailable("table missing".into())));
    let service = wiring::service(repo, RecordingNotifier::new(), Settings::default());
    let handler = WebSocketHandler::new(service);

    let result = handler.handle_json(fixture(CONNECT)).await;

    assert!(
        matches!(result, Err(InboundError::Connect(_))),
        "{result:?}"
    );
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("requestContext".to_string()),
                    Just("connectionId".to_string()),
                    Just("connectedAt".to_string()),
                    Just("requestTimeEpoch".to_string()),
                    Just("eventType".to_string()),
                    Just("body".to_string()),
                    Just("isBase64Encoded".to_string()),
                    Just("authorizer".to_string()),
                    Just("principalId".to_string()),
                    "[a-z]{1,5}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[tokio::test]
async fn a_disconnect_logs_a_known_reason_never_the_clients_close_description() {
    let (handler, _notifier) = handler();
    handler.handle_json(fixture(CONNECT)).await.unwrap();
    let (logs, _guard) = support::CapturedLogs::start();
    let mut disconnect = fixture(DISCONNECT);
    disconnect["requestContext"]["disconnectStatusCode"] = serde_json::json!(1000);
    disconnect["requestContext"]["disconnectReason"] = serde_json::json!(
        "Client-side close frame status code '1000' - description 'canary: alice@corp.example'"
    );

    handler.handle_json(disconnect).await.unwrap();

    let text = logs.text();
    assert!(text.contains(r#""disconnectReason":"client""#), "{text}");
    assert!(
        !text.contains("canary"),
        "the client's words reached the logs: {text}"
    );
}

#[tokio::test]
async fn refusals_log_the_error_code_but_never_what_the_client_wrote() {
    let (handler, notifier) = handler();
    handler.handle_json(fixture(CONNECT)).await.unwrap();
    let (logs, _guard) = support::CapturedLogs::start();
    // serde's own messages quote the offending value: each of these would put it in the text.
    let bodies = [
        r#""canary-in-a-string""#,
        r#"{"action":"canary-action-name"}"#,
        r#"{"action":"join","room":["canary-in-a-field"]}"#,
        r#"{"action":"publish","room":"canary-room","data":1}"#,
        r#"{"action":"send","to":"canary-connection","data":1}"#,
    ];

    for body in bodies {
        handler.handle_json(message(Some(body))).await.unwrap();
    }

    let errors = frames_to(&notifier, "TWegAcC4EowCHnA=");
    assert_eq!(errors.len(), bodies.len(), "each body is refused");
    assert!(errors.iter().all(|f| f["type"] == "error"), "{errors:?}");
    let text = logs.text();
    for code in [
        "bad_json",
        "unknown_action",
        "invalid_field",
        "not_member",
        "unknown_connection",
    ] {
        assert!(text.contains(code), "the refusal {code} is logged: {text}");
    }
    assert!(
        text.contains("line 1 column"),
        "a JSON error logs where it broke: {text}"
    );
    assert!(
        !text.contains("canary"),
        "client content reached the logs: {text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(500)))]

    #[test]
    fn arbitrary_json_never_panics_the_event_mapping(event in arbitrary_json()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (handler, _) = handler();
        let _ = runtime.block_on(handler.handle_json(event));
    }

    #[test]
    fn arbitrary_bodies_in_a_real_event_never_panic(body in ".{0,200}", base64 in any::<bool>()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (handler, _) = handler();
        let mut event = message(Some(&body));
        event["isBase64Encoded"] = json!(base64);
        let _ = runtime.block_on(handler.handle_json(event));
    }
}
