//! API Gateway WebSocket events in, domain calls, proxy responses out: shared by the Lambdas and
//! the local gateway, so both run exactly this code.
//!
//! Status codes: `$connect` answers 200 with no body (a body can break the handshake), or 403 when
//! the handler requires a principal and the event carries none (the authorizer is missing from
//! the route: defence in depth, see `WebSocketHandler::requiring_principal`). A client
//! mistake in a message is answered with an `error` frame to the sender and a 200 here: API
//! Gateway has nothing more to tell the client. A service failure (storage down) is an `Err`: the
//! Lambda fails, and API Gateway sends the client its own `{"message": "Internal server error"}`.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use base64::Engine;
use domain::{
    ClientNotifier, ConnectRequest, ConnectionId, ConnectionRepository, Handled, Principal,
    RoomGrants, Sender, Timestamp, WebSocketService,
};

use crate::auth::{AUTHORIZER_EXPIRY_KEY, AUTHORIZER_GRANTS_KEY};
use crate::metrics;
use serde_json::Value;

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The event is not an API Gateway WebSocket event we can trust: a deploy or test fault.
    #[error("malformed API Gateway WebSocket event: {0}")]
    BadEvent(String),
    #[error(transparent)]
    Connect(#[from] domain::ConnectError),
    #[error(transparent)]
    Disconnect(#[from] domain::DisconnectError),
    #[error(transparent)]
    Message(#[from] domain::HandleError),
}

impl InboundError {
    /// A short, stable name for logs and the Lambda runtime's `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            InboundError::BadEvent(_) => "BadEvent",
            InboundError::Connect(_) => "ConnectFailed",
            InboundError::Disconnect(_) => "DisconnectFailed",
            InboundError::Message(_) => "MessageFailed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Connect,
    Disconnect,
    Message,
}

impl Route {
    /// The name of the function that serves this route (`infra/serverless.yml`), as metrics
    /// know it.
    pub fn function_name(self) -> &'static str {
        match self {
            Route::Connect => "connect",
            Route::Disconnect => "disconnect",
            Route::Message => "default",
        }
    }

    /// Whether this route's function ever posts to `@connections`: `$connect` never does (API
    /// Gateway opens the socket only after it returns, see `WebSocketService::connect`).
    pub fn posts(self) -> bool {
        !matches!(self, Route::Connect)
    }
}

/// The parts of an event the domain needs, checked.
#[derive(Debug, Clone)]
pub struct WebSocketEvent {
    pub route: Route,
    pub route_key: String,
    pub connection_id: ConnectionId,
    pub connected_at: Timestamp,
    pub request_id: Option<String>,
    pub principal: Option<Principal>,
    /// Private rooms the authorizer granted (its context's `rooms`).
    pub grants: RoomGrants,
    /// When the authorizer's token expires (its context's `exp`, seconds).
    pub token_expires_at: Option<Timestamp>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub disconnect_status_code: Option<i64>,
    pub disconnect_reason: Option<String>,
    /// When the invocation ends (the Lambda's deadline, or API Gateway's 29 s integration
    /// timeout as the local gateway simulates it): not in the event's JSON, set by the caller.
    pub deadline: Option<Timestamp>,
}

impl WebSocketEvent {
    /// Reads an event from its JSON, with an error that names what is wrong (the runtime's own
    /// deserializer would only say the payload did not parse).
    pub fn from_json(json: Value) -> Result<Self, InboundError> {
        let principal = principal_from(&json)?;
        let grants = grants_from(&json)?;
        let token_expires_at = expiry_from(&json)?;
        let event: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(json).map_err(|e| InboundError::BadEvent(e.to_string()))?;
        let ctx = &event.request_context;
        let connection_id = ctx
            .connection_id
            .as_deref()
            .ok_or_else(|| InboundError::BadEvent("requestContext.connectionId is missing".into()))
            .and_then(|raw| {
                ConnectionId::parse(raw).map_err(|e| {
                    InboundError::BadEvent(format!("requestContext.connectionId: {e}"))
                })
            })?;
        let route_key = ctx.route_key.clone().unwrap_or_default();
        let route = match (ctx.event_type.as_deref(), route_key.as_str()) {
            (Some("CONNECT"), _) | (None, "$connect") => Route::Connect,
            (Some("DISCONNECT"), _) | (None, "$disconnect") => Route::Disconnect,
            (Some("MESSAGE"), _) | (None, _) => Route::Message,
            (Some(other), _) => {
                return Err(InboundError::BadEvent(format!(
                    "unknown requestContext.eventType {other:?}"
                )));
            }
        };
        let connected_at = u64::try_from(ctx.connected_at)
            .map_err(|_| InboundError::BadEvent("requestContext.connectedAt is negative".into()))?;
        let body = match (&event.body, event.is_base64_encoded) {
            (None, _) => Vec::new(),
            (Some(text), false) => text.as_bytes().to_vec(),
            (Some(text), true) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| InboundError::BadEvent(format!("body is not valid base64: {e}")))?,
        };
        let headers: BTreeMap<String, String> = event
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let user_agent = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
            .map(|(_, v)| v.clone());
        let query = event
            .query_string_parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Self {
            route,
            route_key,
            connection_id,
            connected_at: Timestamp::from_millis(connected_at),
            request_id: ctx.request_id.clone(),
            principal,
            grants,
            token_expires_at,
            source_ip: ctx.identity.source_ip.clone(),
            user_agent,
            headers,
            query,
            body,
            disconnect_status_code: ctx.disconnect_status_code,
            disconnect_reason: ctx.disconnect_reason.clone(),
            deadline: None,
        })
    }
}

/// The principal a REQUEST authorizer returned: `requestContext.authorizer.principalId` (or the
/// same under `lambda`, as HTTP APIs nest it). The typed struct drops these flat keys, hence JSON.
fn principal_from(json: &Value) -> Result<Option<Principal>, InboundError> {
    let authorizer = &json["requestContext"]["authorizer"];
    let raw = authorizer["principalId"]
        .as_str()
        .or_else(|| authorizer["lambda"]["principalId"].as_str());
    raw.map(|p| {
        Principal::parse(p).map_err(|e| {
            InboundError::BadEvent(format!("requestContext.authorizer.principalId: {e}"))
        })
    })
    .transpose()
}

/// The room grants the authorizer put in its context (see `auth::AUTHORIZER_GRANTS_KEY`).
fn grants_from(json: &Value) -> Result<RoomGrants, InboundError> {
    let authorizer = &json["requestContext"]["authorizer"];
    let raw = authorizer[AUTHORIZER_GRANTS_KEY]
        .as_str()
        .or_else(|| authorizer["lambda"][AUTHORIZER_GRANTS_KEY].as_str());
    raw.map_or(Ok(RoomGrants::default()), |encoded| {
        RoomGrants::decode(encoded).map_err(|e| {
            InboundError::BadEvent(format!(
                "requestContext.authorizer.{AUTHORIZER_GRANTS_KEY}: {e}"
            ))
        })
    })
}

/// The token's `exp` the authorizer put in its context (see `auth::AUTHORIZER_EXPIRY_KEY`): a
/// number of seconds, or its text (API Gateway may pass context numbers on as strings).
fn expiry_from(json: &Value) -> Result<Option<Timestamp>, InboundError> {
    let authorizer = &json["requestContext"]["authorizer"];
    let raw = match &authorizer[AUTHORIZER_EXPIRY_KEY] {
        Value::Null => &authorizer["lambda"][AUTHORIZER_EXPIRY_KEY],
        value => value,
    };
    let seconds = match raw {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    seconds
        .map(|s| Some(Timestamp::from_millis(s.saturating_mul(1000))))
        .ok_or_else(|| {
            InboundError::BadEvent(format!(
                "requestContext.authorizer.{AUTHORIZER_EXPIRY_KEY} is not a number of seconds"
            ))
        })
}

/// The `disconnected` event's reason for what API Gateway said (see
/// `telemetry::disconnect_reason_kind`).
fn lifecycle_reason(kind: &str) -> domain::lifecycle::DisconnectReason {
    use domain::lifecycle::DisconnectReason;
    match kind {
        "client" => DisconnectReason::Client,
        "idle" => DisconnectReason::Idle,
        "max_duration" => DisconnectReason::Expired,
        "abnormal" => DisconnectReason::Gone,
        _ => DisconnectReason::Other,
    }
}

fn status(code: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = code;
    response
}

fn ok() -> ApiGatewayProxyResponse {
    status(200)
}

/// Routes events to the domain service.
pub struct WebSocketHandler<R, N> {
    service: WebSocketService<R, N>,
    require_principal: bool,
}

impl<R: ConnectionRepository, N: ClientNotifier> WebSocketHandler<R, N> {
    pub fn new(service: WebSocketService<R, N>) -> Self {
        Self {
            service,
            require_principal: false,
        }
    }

    /// When `required`, a `$connect` without an authorizer principal is refused with 403 and
    /// nothing is stored. API Gateway never lets such an event through an authorized route, so
    /// this only fires when the deployment lost its authorizer; it then fails closed instead of
    /// admitting anonymous clients.
    pub fn requiring_principal(mut self, required: bool) -> Self {
        self.require_principal = required;
        self
    }

    pub fn service(&self) -> &WebSocketService<R, N> {
        &self.service
    }

    pub async fn handle_json(&self, json: Value) -> Result<ApiGatewayProxyResponse, InboundError> {
        self.handle(WebSocketEvent::from_json(json)?).await
    }

    /// As [`Self::handle_json`], for an invocation that ends at `deadline`.
    pub async fn handle_json_until(
        &self,
        json: Value,
        deadline: Timestamp,
    ) -> Result<ApiGatewayProxyResponse, InboundError> {
        let event = WebSocketEvent {
            deadline: Some(deadline),
            ..WebSocketEvent::from_json(json)?
        };
        self.handle(event).await
    }

    #[tracing::instrument(
        skip_all,
        fields(connectionId = %event.connection_id, routeKey = %event.route_key, requestId = event.request_id.as_deref().unwrap_or(""))
    )]
    pub async fn handle(
        &self,
        event: WebSocketEvent,
    ) -> Result<ApiGatewayProxyResponse, InboundError> {
        match event.route {
            Route::Connect if self.require_principal && event.principal.is_none() => {
                tracing::warn!(
                    "connect refused: no authorizer principal, but REQUIRE_PRINCIPAL is set (is the authorizer on the $connect route?)"
                );
                metrics::connection_refused();
                return Ok(status(403));
            }
            Route::Connect => {
                let request = ConnectRequest {
                    id: event.connection_id,
                    connected_at: event.connected_at,
                    principal: event.principal,
                    source_ip: event.source_ip,
                    user_agent: event.user_agent,
                    headers: event.headers,
                    query: event.query,
                    token_expires_at: event.token_expires_at,
                };
                match self.service.connect(request).await {
                    Ok(_) => {}
                    // The fork's on_connect hook said no: API Gateway refuses the handshake.
                    Err(domain::ConnectError::Rejected(reason)) => {
                        tracing::info!(reason, "connect refused by the on_connect hook");
                        metrics::connection_refused();
                        return Ok(status(403));
                    }
                    Err(domain::ConnectError::Banned { until }) => {
                        tracing::info!(
                            until = until.as_millis(),
                            "connect refused: the principal is banned"
                        );
                        metrics::connection_refused();
                        return Ok(status(403));
                    }
                    Err(e) => return Err(e.into()),
                }
                metrics::connection_opened();
                tracing::info!("connected");
            }
            Route::Disconnect => {
                let reason = crate::telemetry::disconnect_reason_kind(
                    event.disconnect_status_code,
                    event.disconnect_reason.as_deref(),
                );
                let removed = self
                    .service
                    .disconnect_because(&event.connection_id, lifecycle_reason(reason))
                    .await?;
                metrics::connection_closed();
                let reason = crate::telemetry::disconnect_reason_kind(
                    event.disconnect_status_code,
                    event.disconnect_reason.as_deref(),
                );
                tracing::info!(
                    disconnectStatusCode = event.disconnect_status_code,
                    disconnectReason = reason,
                    rooms = removed.rooms.len(),
                    "disconnected"
                );
            }
            Route::Message => {
                let sender = Sender::new(event.connection_id, event.principal)
                    .with_grants(event.grants)
                    .with_token_expiry(event.token_expires_at);
                let started = Instant::now();
                let handled = self
                    .service
                    .handle_message_until(&sender, &event.body, event.deadline)
                    .await?;
                match handled {
                    Handled::Rejected(code) => {
                        metrics::message_refused(code);
                        tracing::info!(code = code.as_str(), "message refused")
                    }
                    Handled::Done { action, report } => {
                        metrics::message_handled(action, &report, started.elapsed());
                        tracing::info!(
                            action,
                            delivered = report.delivered,
                            gone = report.gone,
                            failed = report.failed,
                            misconfigured = report.misconfigured,
                            throttled = report.throttled,
                            retried = report.retried,
                            "message handled"
                        )
                    }
                }
            }
        }
        Ok(ok())
    }
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn every_route_posts_but_connect() {
        assert!(!Route::Connect.posts());
        assert!(Route::Disconnect.posts());
        assert!(Route::Message.posts());
    }
}
