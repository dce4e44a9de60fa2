//! The WebSocket side: `$connect` before the upgrade, one task per socket after it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use adapters::auth::{AuthorizerError, authorize_json};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use domain::ConnectionId;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::{self, ConnectionContext, MessageBody};
use crate::{Gateway, OpenSocket, Outbound};

const PAGE: &str = include_str!("../static/index.html");

type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

/// `/`: the chat page for a browser, the WebSocket for a client that asks for an upgrade.
pub async fn root(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    ws: Upgrade,
) -> Response {
    match ws {
        Ok(ws) => open(gateway, peer, headers, query, ws).await,
        Err(_) => Html(PAGE).into_response(),
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
    if stage != gateway.stage {
        return (
            StatusCode::NOT_FOUND,
            format!("no stage {stage:?}; this gateway serves /{}", gateway.stage),
        )
            .into_response();
    }
    match ws {
        Ok(ws) => open(gateway, peer, headers, query, ws).await,
        Err(rejection) => rejection.into_response(),
    }
}

async fn open(
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    headers: HeaderMap,
    query: BTreeMap<String, String>,
    ws: WebSocketUpgrade,
) -> Response {
    let mut conn = ConnectionContext {
        connection_id: events::new_connection_id(),
        connected_at: events::now_millis(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        authorizer: None,
    };
    if let Some(verifier) = &gateway.authorizer {
        let event = events::authorize(&gateway, &conn, &headers, &query);
        match authorize_json(verifier.as_ref(), &event).await {
            Ok(policy) if policy["policyDocument"]["Statement"][0]["Effect"] == "Allow" => {
                let mut context = policy["context"].clone();
                if !context.is_object() {
                    context = json!({});
                }
                context["principalId"] = policy["principalId"].clone();
                conn.authorizer = Some(context);
            }
            Ok(_) => return (StatusCode::FORBIDDEN, "Forbidden").into_response(),
            Err(AuthorizerError::Unauthorized) => {
                return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
            }
            Err(e) => {
                tracing::warn!(error = %e, "authorizer failed: handshake refused");
                return (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
                    .into_response();
            }
        }
    }
    let event = events::connect(&gateway, &conn, &headers, &query);
    // As in AWS, the socket opens only once `$connect` says 2xx; anything else refuses the
    // handshake with that status.
    match gateway.invoke(event).await {
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
    // Frames up to 8x the message limit reach us, so an oversize message gets API Gateway's 1009
    // close rather than a protocol error; beyond that the WebSocket library refuses it.
    let wire_limit = gateway
        .limits
        .max_message_bytes
        .saturating_mul(8)
        .max(1 << 20);
    // The library's default 128 KiB read buffer per socket would make 10 000 idle sockets cost
    // 1.3 GB; frames are small, and a big one grows the buffer only while it is read.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(wire_limit)
        .max_frame_size(wire_limit)
        .on_upgrade(move |socket| run(gateway, conn, socket))
}

async fn run(gateway: Arc<Gateway>, conn: ConnectionContext, socket: WebSocket) {
    let Ok(id) = ConnectionId::parse(conn.connection_id.clone()) else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    let now = time::OffsetDateTime::now_utc();
    gateway.sockets().insert(
        id.clone(),
        OpenSocket {
            tx: tx.clone(),
            connected_at: now,
            last_active_at: now,
            source_ip: conn.source_ip.clone(),
            user_agent: conn.user_agent.clone(),
        },
    );

    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let sent = match out {
                Outbound::Text(text) => sink.send(Message::Text(text.into())).await,
                Outbound::Binary(bytes) => sink.send(Message::Binary(bytes.into())).await,
                Outbound::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let limits = gateway.limits;
    let deadline = Instant::now() + limits.max_connection;
    let mut shutdown = gateway.shutdown.clone();
    let going_away = Ending::WeClose(1001, "Going away");
    let ending = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(limits.idle_timeout, stream.next()) => next,
            _ = tokio::time::sleep_until(deadline) => break going_away,
            _ = shutdown.wait_for(|stop| *stop) => break going_away,
        };
        let message = match next {
            Err(_idle) => break going_away,
            Ok(None) => break Ending::PeerGone(1006, "Connection closed abnormally"),
            Ok(Some(Err(e))) => {
                tracing::info!(connectionId = %id, error = %e, "socket error");
                break Ending::WeClose(1009, "Message too big");
            }
            Ok(Some(Ok(message))) => message,
        };
        let body = match message {
            Message::Text(text) => MessageBody::Text(text.to_string()),
            Message::Binary(bytes) => MessageBody::Binary(bytes.to_vec()),
            Message::Close(frame) => {
                let (code, reason) =
                    frame.map_or((1005, String::new()), |f| (f.code, f.reason.to_string()));
                tracing::info!(connectionId = %id, code, reason, "client closed");
                break Ending::PeerGone(code, "Client closed the connection");
            }
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let size = match &body {
            MessageBody::Text(t) => t.len(),
            MessageBody::Binary(b) => b.len(),
        };
        if size > limits.max_message_bytes {
            break Ending::WeClose(1009, "Message too big");
        }
        if let Some(socket) = gateway.sockets().get_mut(&id) {
            socket.last_active_at = time::OffsetDateTime::now_utc();
        }
        // API Gateway invokes the integration per message, concurrently.
        tokio::spawn(dispatch(gateway.clone(), conn.clone(), body, tx.clone()));
    };

    // A close the client sent is answered by the library, and a dead socket takes no frame:
    // only a close we decided on is ours to send.
    let (code, reason) = match ending {
        Ending::WeClose(code, reason) => {
            let _ = tx.send(Outbound::Close(code, reason));
            (code, reason)
        }
        Ending::PeerGone(code, reason) => (code, reason),
    };
    gateway.sockets().remove(&id);
    drop(tx);
    let event = events::disconnect(&gateway, &conn, code, reason);
    if let Err(e) = gateway.invoke(event).await {
        tracing::warn!(connectionId = %id, error = %e, "$disconnect failed");
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
}

/// Why a socket's loop ended, and so who sends the close frame.
enum Ending {
    /// The gateway ends it (limits, shutdown): it sends this code and reason.
    WeClose(u16, &'static str),
    /// The client closed, or the connection died: no frame to send.
    PeerGone(u16, &'static str),
}

async fn dispatch(
    gateway: Arc<Gateway>,
    conn: ConnectionContext,
    body: MessageBody,
    tx: mpsc::UnboundedSender<Outbound>,
) {
    let event = events::message(&gateway, &conn, body);
    let request_id = event["requestContext"]["requestId"].clone();
    if let Err(e) = gateway.invoke(event).await {
        tracing::error!(connectionId = conn.connection_id, error = %e, "integration failed");
        // What API Gateway sends when the integration fails.
        let frame = json!({
            "message": "Internal server error",
            "connectionId": conn.connection_id,
            "requestId": request_id,
        });
        let _ = tx.send(Outbound::Text(frame.to_string()));
    }
}
