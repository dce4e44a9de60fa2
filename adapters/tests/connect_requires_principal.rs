//! Defence in depth behind the authorizer: with `REQUIRE_PRINCIPAL` (set by serverless.yml when
//! auth is on), a `$connect` that reached the Lambda without a principal is refused.

use adapters::apigateway::inbound::WebSocketHandler;
use adapters::memory::{InMemoryConnectionRepository, RecordingNotifier};
use adapters::wiring;
use domain::{ConnectionId, ConnectionRepository, Settings, Timestamp};
use serde_json::Value;

const CONNECT: &str = include_str!("fixtures/example-apigw-websocket-request.json");

type Handler = WebSocketHandler<InMemoryConnectionRepository, RecordingNotifier>;

fn handler(require_principal: bool) -> Handler {
    let service = wiring::service(
        InMemoryConnectionRepository::default(),
        RecordingNotifier::new(),
        Settings::default(),
    );
    WebSocketHandler::new(service).requiring_principal(require_principal)
}

/// The fixture's `$connect` (principal "admin"), or the same event as an unauthorized route sends it.
fn connect(with_principal: bool) -> Value {
    let mut event: Value = serde_json::from_str(CONNECT).unwrap();
    if !with_principal {
        event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
    }
    event
}

async fn stored(handler: &Handler) -> bool {
    let id = ConnectionId::parse("TWegAcC4EowCHnA=").unwrap();
    handler
        .service()
        .repository()
        .get(&id, Timestamp::from_millis(0))
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_connect_without_a_principal_is_refused_with_403_and_nothing_is_stored() {
    let handler = handler(true);

    let response = handler.handle_json(connect(false)).await.unwrap();

    assert_eq!(response.status_code, 403);
    assert!(response.body.is_none());
    assert!(!stored(&handler).await);
}

#[tokio::test]
async fn a_connect_with_a_principal_is_accepted_when_one_is_required() {
    let handler = handler(true);

    let response = handler.handle_json(connect(true)).await.unwrap();

    assert_eq!(response.status_code, 200);
    assert!(stored(&handler).await);
}

#[tokio::test]
async fn without_the_requirement_an_anonymous_connect_is_accepted_as_with_auth_off() {
    let handler = handler(false);

    let response = handler.handle_json(connect(false)).await.unwrap();

    assert_eq!(response.status_code, 200);
    assert!(stored(&handler).await);
}
