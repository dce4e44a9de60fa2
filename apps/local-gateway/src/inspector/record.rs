//! What the gateway tells the inspector, as typed records: the inspector never reads an event to
//! learn which connection, route or action it was about.

use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use serde_json::{Value, json};

use super::shown::{MAX_SHOWN_VALUE, shown_body, shown_event, shown_text};
use crate::events::Route;
use crate::outbox::Close;

/// One invocation of a route's integration.
pub(crate) struct InvocationRecord<'a> {
    /// When it ended, in milliseconds since the epoch.
    pub at: i64,
    pub route: Route,
    pub connection_id: &'a str,
    /// The authorizer's principal, when one ran.
    pub principal: Option<&'a str>,
    pub connected_at: i64,
    pub source_ip: &'a str,
    /// The action the message's body names (`$default` only).
    pub action: Option<&'a str>,
    /// How the socket ended (`$disconnect` only).
    pub closed: Option<Close>,
    pub duration: Duration,
    /// The handler's response, or why it failed.
    pub outcome: Result<&'a ApiGatewayProxyResponse, String>,
    /// The event, as the inspector may show it (see `shown_event`).
    pub event: Value,
}

impl InvocationRecord<'_> {
    /// A 2xx response: for `$connect`, an open connection.
    pub fn ok(&self) -> bool {
        self.outcome
            .as_ref()
            .is_ok_and(|response| (200..300).contains(&response.status_code))
    }

    /// The record as the page reads it.
    pub fn to_json(&self) -> Value {
        let (status, response) = match &self.outcome {
            Ok(response) => (
                json!(response.status_code),
                shown_event(&serde_json::to_value(response).unwrap_or(Value::Null)),
            ),
            Err(error) => (Value::Null, json!({"error": error})),
        };
        json!({
            "at": self.at,
            "route": self.route.key(),
            "connectionId": self.connection_id,
            "principal": self.principal,
            "action": self.action,
            "durationMs": self.duration.as_secs_f64() * 1000.0,
            "ok": self.ok(),
            "status": status,
            "event": self.event,
            "response": response,
        })
    }
}

/// One `@connections` call and the status it got.
pub(crate) struct CallRecord<'a> {
    pub at: i64,
    pub method: &'a str,
    /// As the caller wrote it in the path: it may not be a valid id.
    pub connection_id: &'a str,
    pub status: u16,
    pub body: &'a [u8],
}

impl CallRecord<'_> {
    pub fn to_json(&self) -> Value {
        json!({
            "at": self.at,
            "method": self.method,
            "connectionId": shown_text(self.connection_id, MAX_SHOWN_VALUE),
            "status": self.status,
            "bytes": self.body.len(),
            "body": shown_body(&String::from_utf8_lossy(self.body)),
        })
    }
}
