//! The WebSocket handshake, refused as API Gateway (or a careful laptop) would: during
//! shutdown (503), from a foreign web page (403), above the connection cap (429), by the
//! authorizer (401/403), by `$connect` (its status). Then [`socket::run`] serves the socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;

use crate::authorizer::{AuthorizerFailure, Decision, decide};
use crate::close_codes::ABNORMAL;
use crate::events::{self, ConnectionContext};
use crate::gateway::Gateway;
use crate::invoker::Invocation;
use crate::socket;

/// Each socket's initial read buffer (see `open`).
pub(crate) const READ_BUFFER_BYTES: usize = 1024;

type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

/// `/`: the inspector page for a browser, the WebSocket for a client that asks for an upgrade.
pub async fn root(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    ws: Upgrade,
) -> Response {
    match ws {
        Ok(ws) => open(gateway, peer, headers, query, ws).await,
        Err(_) => gateway.pages.inspector(),
    }
}

/// `/{stage}`: the WebSocket, at the same path as in AWS.
pub async fn upgrade(
    State(gateway): State<Arc<Gateway>>,
    Path(stage): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    ws: Upgrade,
) -> Response {
    if stage != gateway.api.stage {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no stage {stage:?}; this gateway serves /{}",
                gateway.api.stage
            ),
        )
            .into_response();
    }
    match ws {
        Ok(ws) => open(gateway, peer, headers, query, ws).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// A refused handshake: its status and a body that says why.
type Refusal = (StatusCode, &'static str);

/// A new WebSocket's slot under the connection cap, or the response refusing it.
fn admit(gateway: &Gateway, headers: &HeaderMap) -> Result<OwnedSemaphorePermit, Refusal> {
    if gateway.is_shutting_down() {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: the gateway is shutting down",
        ));
    }
    if !gateway.browser.allows_websocket(headers) {
        return Err((
            StatusCode::FORBIDDEN,
            "Forbidden: this Origin may not open a WebSocket here (see --allowed-origin)",
        ));
    }
    gateway
        .connection_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            (
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests: --max-connections WebSockets are open",
            )
        })
}

/// Runs the REQUEST authorizer when one is configured, as API Gateway does before `$connect`:
/// what it allows comes back as the connection's `requestContext.authorizer`.
async fn authorize(
    gateway: &Gateway,
    conn: &ConnectionContext,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> Result<Option<Value>, Refusal> {
    let Some(authorizer) = &gateway.authorizer else {
        return Ok(None);
    };
    let event = events::authorize(&gateway.api, conn, headers, query);
    let method_arn = event["methodArn"].as_str().unwrap_or_default().to_owned();
    let id = &conn.connection_id;
    match authorizer.authorize(&event).await {
        Ok(policy) => match decide(&policy, &method_arn) {
            Decision::Allowed(context) => Ok(Some(context)),
            Decision::Forbidden(why) => {
                tracing::info!(connectionId = id, "authorizer: 403, {why}");
                Err((StatusCode::FORBIDDEN, "Forbidden"))
            }
            Decision::Invalid(why) => {
                tracing::warn!(
                    connectionId = id,
                    "authorizer: 500, API Gateway cannot use its answer: {why}"
                );
                Err((StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"))
            }
        },
        Err(AuthorizerFailure::Unauthorized(why)) => {
            tracing::info!(connectionId = id, "authorizer: 401, {why}");
            Err((StatusCode::UNAUTHORIZED, "Unauthorized"))
        }
        Err(AuthorizerFailure::Failed(why)) => {
            tracing::warn!(connectionId = id, "authorizer: 500, it failed: {why}");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"))
        }
    }
}

async fn open(
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    headers: HeaderMap,
    query: BTreeMap<String, String>,
    ws: WebSocketUpgrade,
) -> Response {
    let slot = match admit(&gateway, &headers) {
        Ok(slot) => slot,
        Err(refusal) => return refusal.into_response(),
    };
    let slot = Arc::new(slot);
    let mut conn = ConnectionContext {
        connection_id: events::new_connection_id(),
        connected_at: crate::clock::now_millis(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        principal: None,
        authorizer: None,
    };
    match authorize(&gateway, &conn, &headers, &query).await {
        Ok(context) => {
            conn.principal = context
                .as_ref()
                .and_then(|context| context["principalId"].as_str())
                .map(str::to_owned);
            conn.authorizer = context;
        }
        Err(refusal) => return refusal.into_response(),
    }
    let event = || events::connect(&gateway.api, &conn, &headers, &query);
    // As in AWS, the socket opens only once `$connect` says 2xx; anything else refuses the
    // handshake with that status.
    match gateway
        .invoker
        .invoke(&conn, Invocation::Connect, event)
        .await
    {
        Ok(response) if (200..300).contains(&response.status_code) => {}
        Ok(response) => {
            let status = u16::try_from(response.status_code)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return status.into_response();
        }
        Err(e) => {
            tracing::warn!(connectionId = conn.connection_id, error = %e, "$connect failed: handshake refused");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response();
        }
    }
    let limits = gateway.limits;
    let failed = (gateway.clone(), conn.clone(), slot.clone());
    // The library's default 128 KiB read buffer per socket would make 10 000 idle sockets cost
    // 1.3 GB, and 4 KiB still 40 MB of the 100 MB budget. Chat frames fit in 1 KiB; a bigger one
    // grows its socket's buffer to its size (and is read 1 KiB per system call).
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .on_failed_upgrade(move |error| {
            // `$connect` stored the connection: without this `$disconnect` its row would stay.
            let (gateway, conn, slot) = failed;
            tracing::info!(connectionId = conn.connection_id, %error, "upgrade failed after $connect");
            tokio::spawn(async move {
                let event = || events::disconnect(&gateway.api, &conn, ABNORMAL.0, ABNORMAL.1);
                let ended = Invocation::Disconnect(ABNORMAL);
                let _ = gateway.invoker.invoke(&conn, ended, event).await;
                drop(slot);
            });
        })
        .on_upgrade(move |socket| socket::run(gateway, conn, socket, slot))
}
