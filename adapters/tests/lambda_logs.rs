//! The Lambdas' log lines, captured in their JSON format through `adapters::lambda` as the runtime
//! runs it. One test in this binary: tracing's per-thread subscribers race when test threads
//! register the same callsites, and a lost line would make this test lie.

use std::io::Write;
use std::sync::{Arc, Mutex};

use adapters::apigateway::inbound::{Route, WebSocketHandler};
use adapters::lambda::{LambdaMetrics, invoke, measured};
use adapters::memory::RecordingNotifier;
use adapters::telemetry::json_subscriber;
use adapters::wiring;
use domain::ports::MockConnectionRepository;
use domain::{RepositoryError, Settings};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

const CONNECT: &str = include_str!("fixtures/example-apigw-websocket-request.json");
const CONNECTION: &str = "TWegAcC4EowCHnA=";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap();
        std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The value of `field` in any span of `line`.
fn span_field<'a>(line: &'a Value, field: &str) -> Option<&'a Value> {
    line["spans"]
        .as_array()?
        .iter()
        .find_map(|span| span.get(field))
}

fn message(body: &str) -> Value {
    let mut event: Value = serde_json::from_str(CONNECT).unwrap();
    event["requestContext"]["eventType"] = json!("MESSAGE");
    event["requestContext"]["routeKey"] = json!("$default");
    event["body"] = json!(body);
    event
}

#[tokio::test]
async fn every_line_of_an_invocation_carries_its_request_id_and_a_failure_names_connection_and_route()
 {
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard =
        tracing::subscriber::set_default(json_subscriber(EnvFilter::new("info"), move || {
            writer.clone()
        }));
    let metrics = LambdaMetrics::install("Test/logs", Route::Message.function_name()).unwrap();
    let mut repo = MockConnectionRepository::new();
    repo.expect_get()
        .returning(|_, _| Err(RepositoryError::Unavailable("table missing".into())));
    let service = wiring::service(repo, RecordingNotifier::new(), Settings::default());
    let handler = WebSocketHandler::new(service);

    let refused = invoke(&handler, Route::Message, message("not json"), None);
    measured(&metrics, "lambda-request-1", std::io::sink(), refused)
        .await
        .unwrap();
    let failing = invoke(
        &handler,
        Route::Message,
        message(r#"{"action":"send","to":"Other0000001=","data":1}"#),
        None,
    );
    let failed = measured(&metrics, "lambda-request-2", std::io::sink(), failing).await;

    assert!(failed.is_err(), "storage down fails the invocation");
    let lines = logs.lines();
    assert!(lines.len() >= 2, "the invocations logged: {lines:?}");
    for line in &lines {
        let id = span_field(line, "lambdaRequestId");
        assert!(
            id.is_some_and(|id| id.as_str().unwrap().starts_with("lambda-request-")),
            "a line without the Lambda request id: {line}"
        );
    }
    let failure = lines
        .iter()
        .find(|l| l["message"] == "invocation failed")
        .expect("the failure is logged");
    assert_eq!(
        span_field(failure, "lambdaRequestId"),
        Some(&json!("lambda-request-2"))
    );
    assert_eq!(
        span_field(failure, "connectionId"),
        Some(&json!(CONNECTION))
    );
    assert_eq!(span_field(failure, "routeKey"), Some(&json!("$default")));
    assert_eq!(failure["errorType"], "MessageFailed");
}
