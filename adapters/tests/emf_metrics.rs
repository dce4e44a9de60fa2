//! The Lambdas' metrics: invocations run through `adapters::lambda` as the runtime runs them, and
//! the EMF lines they write are read back as CloudWatch would: namespace, names, dimensions, and no
//! connection id, room or principal anywhere. Needs the `lambda` feature (on in workspace runs);
//! one test per file, since the recorder is the process's global one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapters::apigateway::inbound::{Route, WebSocketHandler};
use adapters::auth::{JwtVerifier, Keys};
use adapters::lambda::{LambdaMetrics, authorize, invoke, measured};
use adapters::memory::{InMemoryConnectionRepository, RecordingNotifier};
use adapters::metrics::{dimension, name};
use adapters::wiring;
use domain::{ConnectionId, NotifyError, Settings};
use serde_json::{Value, json};

const CONNECT: &str = include_str!("fixtures/example-apigw-websocket-request.json");
const NAMESPACE: &str = "Chat/ci";
const ALICE: &str = "AliceConn0001=";
const BOB: &str = "BobConn00002=";
const PRINCIPAL: &str = "principal-alice";
const ROOM: &str = "room-of-secrets";

type Handler = WebSocketHandler<InMemoryConnectionRepository, Arc<RecordingNotifier>>;

/// A `route` event from `connection`, with `body` for messages.
fn event(route: Route, connection: &str, body: Option<Value>) -> Value {
    let mut event: Value = serde_json::from_str(CONNECT).unwrap();
    let context = &mut event["requestContext"];
    context["connectionId"] = json!(connection);
    // Connected now: the store forgets connections older than API Gateway's two hours.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    context["connectedAt"] = json!(now.as_millis() as u64);
    context["authorizer"] = json!({ "principalId": PRINCIPAL });
    let (event_type, route_key) = match route {
        Route::Connect => ("CONNECT", "$connect"),
        Route::Disconnect => ("DISCONNECT", "$disconnect"),
        Route::Message => ("MESSAGE", "$default"),
    };
    context["eventType"] = json!(event_type);
    context["routeKey"] = json!(route_key);
    event["body"] = body.map_or(Value::Null, |b| json!(b.to_string()));
    event
}

/// One parsed EMF line: its metric names, its dimension names and their values.
#[derive(Debug)]
struct Emf {
    line: Value,
}

impl Emf {
    fn metrics(&self) -> Vec<String> {
        self.directive()["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_string())
            .collect()
    }

    fn dimensions(&self) -> Vec<(String, String)> {
        let sets = self.directive()["Dimensions"].as_array().unwrap();
        assert_eq!(sets.len(), 1, "one dimension set per line: {}", self.line);
        sets[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let d = d.as_str().unwrap();
                (d.to_string(), self.line[d].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn directive(&self) -> &Value {
        &self.line["_aws"]["CloudWatchMetrics"][0]
    }
}

fn parse(output: &[u8]) -> Vec<Emf> {
    std::str::from_utf8(output)
        .unwrap()
        .lines()
        .map(|l| Emf {
            line: serde_json::from_str(l).unwrap(),
        })
        .collect()
}

/// The value of `metric` on the line whose dimensions are exactly `dims`.
fn value(lines: &[Emf], metric: &str, dims: &[(&str, &str)]) -> Option<Value> {
    let dims: Vec<(String, String)> = dims
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    lines
        .iter()
        .find(|l| l.metrics().iter().any(|m| m == metric) && l.dimensions() == dims)
        .map(|l| l.line[metric].clone())
}

#[tokio::test]
async fn lambda_invocations_write_emf_lines_with_low_cardinality_dimensions_only() {
    let metrics = LambdaMetrics::install(NAMESPACE, Route::Message.function_name()).unwrap();
    let notifier = Arc::new(RecordingNotifier::new());
    let service = wiring::service(
        InMemoryConnectionRepository::default(),
        notifier.clone(),
        Settings::default(),
    );
    let handler: Handler = WebSocketHandler::new(service);
    let bob = ConnectionId::parse(BOB).unwrap();
    notifier.answer_next(&bob, [NotifyError::Throttled]);
    let invocations = [
        (Route::Connect, ALICE, None),
        (Route::Connect, BOB, None),
        (
            Route::Message,
            ALICE,
            Some(json!({"action": "join", "room": ROOM})),
        ),
        (
            Route::Message,
            BOB,
            Some(json!({"action": "join", "room": ROOM})),
        ),
        (
            Route::Message,
            ALICE,
            Some(json!({"action": "publish", "room": ROOM, "data": "hi"})),
        ),
        (Route::Message, ALICE, Some(json!({"action": "teleport"}))),
        (Route::Disconnect, BOB, None),
    ];
    let mut output = Vec::new();
    for (i, (route, connection, body)) in invocations.into_iter().enumerate() {
        let work = invoke(&handler, route, event(route, connection, body), None);
        let request_id = format!("lambda-request-{i}");
        measured(&metrics, &request_id, &mut output, work)
            .await
            .unwrap();
    }
    let verifier = JwtVerifier::new(
        Keys::Secret(b"a-test-secret-that-is-long-enough".to_vec()),
        None,
        None,
        Duration::ZERO,
    )
    .unwrap();
    let denied = json!({"methodArn": "arn:aws:execute-api:us-east-1:1:a/dev/$connect",
        "queryStringParameters": {"token": "not-a-jwt"}});
    let work = authorize(&verifier, &denied);
    let policy = measured(&metrics, "lambda-request-auth", &mut output, work).await;
    assert_eq!(
        policy.unwrap()["policyDocument"]["Statement"][0]["Effect"],
        "Deny"
    );
    let lines = parse(&output);

    for line in &lines {
        assert_eq!(line.directive()["Namespace"], NAMESPACE);
        assert!(
            line.line["RequestId"]
                .as_str()
                .unwrap()
                .starts_with("lambda-request-")
        );
    }
    let text = String::from_utf8(output).unwrap();
    for secret in [ALICE, BOB, PRINCIPAL, ROOM] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into metrics: {text}"
        );
    }
    let one = Some(json!(1));
    assert_eq!(
        value(
            &lines,
            name::COLD_STARTS,
            &[(dimension::FUNCTION, "default")]
        ),
        one
    );
    assert_eq!(value(&lines, name::CONNECTIONS_OPENED, &[]), one);
    assert_eq!(value(&lines, name::CONNECTIONS_CLOSED, &[]), one);
    assert_eq!(
        value(&lines, name::MESSAGES, &[(dimension::ACTION, "publish")]),
        one
    );
    assert_eq!(
        value(&lines, name::RECIPIENTS, &[(dimension::ACTION, "publish")]),
        Some(json!([2.0]))
    );
    assert!(
        value(
            &lines,
            name::FANOUT_DURATION,
            &[(dimension::ACTION, "publish")]
        )
        .is_some()
    );
    // Publish reaches both members, the sender included; Bob's first post is throttled.
    assert_eq!(value(&lines, name::POSTS_DELIVERED, &[]), Some(json!(2)));
    assert_eq!(value(&lines, name::POSTS_THROTTLED, &[]), one);
    assert_eq!(value(&lines, name::POSTS_RETRIED, &[]), one);
    assert_eq!(
        value(
            &lines,
            name::MESSAGES_REFUSED,
            &[(dimension::ERROR_CODE, "unknown_action")]
        ),
        one
    );
    assert_eq!(
        value(
            &lines,
            name::AUTHORIZER_DECISIONS,
            &[(dimension::DECISION, "deny")]
        ),
        one
    );
    assert_eq!(
        value(
            &lines,
            name::AUTHORIZER_REFUSALS,
            &[(dimension::REASON, "malformed")]
        ),
        one
    );
    let dimension_names: BTreeSet<String> = lines
        .iter()
        .flat_map(|l| l.dimensions())
        .map(|(k, _)| k)
        .collect();
    let allowed = [
        dimension::ACTION,
        dimension::ERROR_CODE,
        dimension::DECISION,
        dimension::REASON,
        dimension::FUNCTION,
    ];
    assert!(
        dimension_names
            .iter()
            .all(|d| allowed.contains(&d.as_str())),
        "unexpected dimensions: {dimension_names:?}"
    );
}
