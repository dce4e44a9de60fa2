//! The inspector: a live page of what the gateway sees (connections, rooms, invocations,
//! `@connections` calls, metrics) beside a chat view built on `clients/js/ws-client.js`.
//!
//! - [`bus`]: the bounded history and live feed the gateway records into.
//! - [`stream`]: the feed as Server-Sent Events, for the gateway's own pages only.
//! - this module: the page's static files, served from the binary (no CDN, no internet).

pub(crate) mod bus;
pub(crate) mod stream;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

pub(crate) use bus::Inspector;

use crate::gateway::Gateway;

const INDEX_HTML: &str = include_str!("../../static/inspector/index.html");
const STYLE_CSS: &str = include_str!("../../static/inspector/style.css");
const APP_JS: &str = include_str!("../../static/inspector/app.js");
const CHAT_JS: &str = include_str!("../../static/inspector/chat.js");
const DOM_JS: &str = include_str!("../../static/inspector/dom.js");
const METRICS_JS: &str = include_str!("../../static/inspector/metrics.js");
/// The client library the chat view runs, the very file applications import.
const WS_CLIENT_JS: &str = include_str!("../../../../clients/js/ws-client.js");

/// The page, told its stage and the idle timeout its chat view must ping within.
pub(crate) fn render(stage: &str, idle_timeout_secs: u64) -> String {
    INDEX_HTML
        .replace("{{stage}}", &crate::chat_page::escape_attribute(stage))
        .replace("{{idle-timeout-secs}}", &idle_timeout_secs.to_string())
}

/// What the inspector page may load and who may frame it: only this gateway. Client data is
/// never parsed as HTML (the page builds text nodes), and this is the second line: no inline or
/// foreign script runs, and no other site can put the page in a frame to click on it.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'self'; \
     base-uri 'none'";

pub(crate) async fn page(State(gateway): State<Arc<Gateway>>) -> Response {
    inspector_page(&gateway)
}

/// The inspector page with its security headers (also served at `/`).
pub(crate) fn inspector_page(gateway: &Gateway) -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
        ],
        Html(gateway.inspector_html.clone()),
    )
        .into_response()
}

pub(crate) async fn console(State(gateway): State<Arc<Gateway>>) -> Html<String> {
    Html(gateway.chat_page_html.clone())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

pub(crate) async fn app() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn chat() -> Response {
    asset("text/javascript; charset=utf-8", CHAT_JS)
}

pub(crate) async fn dom() -> Response {
    asset("text/javascript; charset=utf-8", DOM_JS)
}

pub(crate) async fn metrics() -> Response {
    asset("text/javascript; charset=utf-8", METRICS_JS)
}

pub(crate) async fn ws_client() -> Response {
    asset("text/javascript; charset=utf-8", WS_CLIENT_JS)
}

/// What the inspector shows of one invocation: the full event and the response, or the error.
pub(crate) fn invocation_record(
    route: &str,
    mut event: Value,
    outcome: Result<&aws_lambda_events::apigw::ApiGatewayProxyResponse, String>,
    duration: std::time::Duration,
) -> Value {
    let action = action_of(&event);
    if let Some(body) = event["body"].as_str() {
        event["body"] = json!(bus::shown_body(body));
    }
    redact_token(&mut event);
    let (ok, status, response) = match outcome {
        Ok(response) => (
            (200..300).contains(&response.status_code),
            json!(response.status_code),
            serde_json::to_value(response).unwrap_or(Value::Null),
        ),
        Err(error) => (false, Value::Null, json!({"error": error})),
    };
    json!({
        "at": crate::clock::now_millis(),
        "route": route,
        "connectionId": event["requestContext"]["connectionId"],
        "action": action,
        "durationMs": duration.as_secs_f64() * 1000.0,
        "ok": ok,
        "status": status,
        "event": event,
        "response": response,
    })
}

/// What a token looks like on the page: a screenshot of the inspector shared in a bug report
/// must not carry a working credential.
const REDACTED: &str = "(token hidden by the inspector)";

/// Hides the `?token=` of a `$connect` event (API Gateway WebSockets take tokens in the query
/// string, since browsers cannot set headers on a WebSocket).
fn redact_token(event: &mut Value) {
    if event["queryStringParameters"]["token"].is_string() {
        event["queryStringParameters"]["token"] = json!(REDACTED);
        event["multiValueQueryStringParameters"]["token"] = json!([REDACTED]);
    }
}

/// The `action` of a `$default` message, when its body is a JSON object with one.
pub(crate) fn action_of(event: &Value) -> Value {
    event["body"]
        .as_str()
        .and_then(|body| serde_json::from_str::<Value>(body).ok())
        .map(|body| body["action"].clone())
        .filter(Value::is_string)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_event_is_shown_without_its_token() {
        let event = json!({
            "queryStringParameters": {"token": "eyJ.secret", "room": "lobby"},
            "multiValueQueryStringParameters": {"token": ["eyJ.secret"], "room": ["lobby"]},
            "requestContext": {"connectionId": "abc="},
        });
        let response = aws_lambda_events::apigw::ApiGatewayProxyResponse::default();

        let shown = invocation_record("$connect", event, Ok(&response), Default::default());

        assert!(!shown.to_string().contains("eyJ.secret"));
        assert_eq!(shown["event"]["queryStringParameters"]["room"], "lobby");
    }

    #[test]
    fn a_message_s_action_is_read_from_its_body() {
        let event = json!({"body": r#"{"action":"join","room":"x"}"#});
        let not_json = json!({"body": "{oops"});

        assert_eq!(action_of(&event), "join");
        assert_eq!(action_of(&not_json), Value::Null);
    }
}
