//! One open socket: a reader that hands messages to `$default`, a writer that drains the outbox,
//! and an ending that always runs `$disconnect` with the code that says what happened.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use domain::ConnectionId;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::close_codes::{self, BINARY_NOT_SUPPORTED, Ending, GOING_AWAY};
use crate::events::{self, ConnectionContext};
use crate::gateway::Gateway;
use crate::invoker::{Invocation, MessageAction};
use crate::limits::CLOSE_HANDSHAKE_TIMEOUT;
use crate::outbox::{Close, Frames, Outbound, Outbox, wait_for_stop};
use crate::registry::OpenSocket;

/// Serves one upgraded socket to its end. `slot` is its place under the connection cap, given
/// back only once `$disconnect` has run, so shutdown can wait for every `$disconnect`.
pub(crate) async fn run(
    gateway: Arc<Gateway>,
    conn: ConnectionContext,
    socket: WebSocket,
    slot: Arc<OwnedSemaphorePermit>,
) {
    let Ok(id) = ConnectionId::parse(conn.connection_id.clone()) else {
        return;
    };
    let (outbox, queue) = Outbox::new(gateway.limits.max_outbound_queue_bytes);
    let outbox = Arc::new(outbox);
    let now = time::OffsetDateTime::now_utc();
    gateway.sockets().insert(
        id.clone(),
        OpenSocket {
            outbox: outbox.clone(),
            connected_at: now,
            last_active_at: now,
            source_ip: conn.source_ip.clone(),
            user_agent: conn.user_agent.clone(),
        },
    );
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write(sink, queue, outbox.clone()));

    let ending = read(&gateway, &conn, &id, &mut stream, &outbox).await;

    // Posts from here on get 410, as they do in AWS once a socket is closing.
    gateway.sockets().remove(&id);
    let status = ending.disconnect_status();
    outbox.stop_with(status);
    if ending != Ending::Dropped {
        // Reading on flushes the library's answer to a client's close, and waits for the
        // client's answer to ours; a client that never answers gets a few seconds, not the
        // idle timeout.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, async {
            while let Some(Ok(_)) = stream.next().await {}
            let _ = (&mut writer).await;
        })
        .await;
    }
    writer.abort();
    drop(stream);
    tracing::info!(connectionId = %id, code = status.0, reason = status.1, "socket closed");

    let event = || events::disconnect(&gateway.api, &conn, status.0, status.1);
    let ended = Invocation::Disconnect(status);
    if let Err(e) = gateway.invoker.invoke(&conn, ended, event).await {
        tracing::warn!(connectionId = %id, error = %e, "$disconnect failed");
    }
    drop(slot);
}

/// Reads messages until something ends the socket.
async fn read(
    gateway: &Arc<Gateway>,
    conn: &ConnectionContext,
    id: &ConnectionId,
    stream: &mut SplitStream<WebSocket>,
    outbox: &Arc<Outbox>,
) -> Ending {
    let limits = gateway.limits;
    let deadline = Instant::now() + limits.max_connection_duration;
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight_per_connection.max(1)));
    let mut shutdown = gateway.shutdown.clone();
    let mut stop = outbox.stopped();
    loop {
        let interrupted = async {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => GOING_AWAY,
                _ = shutdown_requested(&mut shutdown) => GOING_AWAY,
                close = wait_for_stop(&mut stop) => close,
            }
        };
        let next = tokio::select! {
            biased;
            close = interrupted => return Ending::Closing(close),
            next = next_message(stream, &in_flight, limits.idle_timeout) => next,
        };
        let (message, permit) = match next {
            Ok(next) => next,
            Err(ending) => return ending,
        };
        match message {
            Message::Text(text) => {
                if let Some(socket) = gateway.sockets().get_mut(id) {
                    socket.last_active_at = time::OffsetDateTime::now_utc();
                }
                // API Gateway invokes the integration per message, concurrently.
                tokio::spawn(dispatch(
                    gateway.clone(),
                    conn.clone(),
                    text.to_string(),
                    outbox.clone(),
                    permit,
                ));
            }
            Message::Binary(_) => return Ending::Closing(BINARY_NOT_SUPPORTED),
            Message::Close(frame) => return Ending::ClientClosed(frame.map_or(1005, |f| f.code)),
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

/// The next message and its place among the socket's messages in flight. At the cap this waits
/// without reading, so a flooding client fills its own TCP window, not the gateway's memory.
async fn next_message(
    stream: &mut SplitStream<WebSocket>,
    in_flight: &Arc<Semaphore>,
    idle_timeout: std::time::Duration,
) -> Result<(Message, OwnedSemaphorePermit), Ending> {
    let Ok(permit) = in_flight.clone().acquire_owned().await else {
        return Err(Ending::Closing(close_codes::INTERNAL_ERROR));
    };
    match tokio::time::timeout(idle_timeout, stream.next()).await {
        Err(_idle) => Err(Ending::Closing(GOING_AWAY)),
        Ok(None) => Err(Ending::Dropped),
        Ok(Some(Err(e))) => Err(close_codes::ending_for(e)),
        Ok(Some(Ok(message))) => Ok((message, permit)),
    }
}

async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        // The gateway's owner is gone without asking for a shutdown: nothing will ask now.
        std::future::pending::<()>().await;
    }
}

/// Writes queued frames in order until the socket is told to stop, then sends that close.
async fn write(mut sink: SplitSink<WebSocket, Message>, mut queue: Frames, outbox: Arc<Outbox>) {
    let mut stop = outbox.stopped();
    loop {
        let next = tokio::select! {
            biased;
            close = wait_for_stop(&mut stop) => return send_close(&mut sink, close).await,
            next = queue.next() => next,
        };
        let sent = match next {
            Outbound::Text(text, _budget) => sink.send(Message::Text(text.into())).await,
            Outbound::Binary(bytes, _budget) => sink.send(Message::Binary(bytes.into())).await,
            Outbound::Close(close) => {
                outbox.stop_with(close);
                return send_close(&mut sink, close).await;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn send_close(sink: &mut SplitSink<WebSocket, Message>, (code, reason): Close) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    // Fails harmlessly when the client closed first: the library has answered it already.
    let _ = sink.send(Message::Close(Some(frame))).await;
}

async fn dispatch(
    gateway: Arc<Gateway>,
    conn: ConnectionContext,
    body: String,
    outbox: Arc<Outbox>,
    _in_flight: OwnedSemaphorePermit,
) {
    let action = MessageAction::read(&body, gateway.limits.max_message_bytes);
    let mut request_id = Value::Null;
    let event = || {
        let event = events::message(&gateway.api, &conn, body);
        request_id = event["requestContext"]["requestId"].clone();
        event
    };
    let message = Invocation::Message(action);
    if let Err(e) = gateway.invoker.invoke(&conn, message, event).await {
        tracing::error!(connectionId = conn.connection_id, error = %e, "integration failed");
        // What API Gateway sends when the integration fails.
        let frame = json!({
            "message": e.client_message(),
            "connectionId": conn.connection_id,
            "requestId": request_id,
        });
        let _ = outbox.push(frame.to_string().as_bytes());
    }
}
