//! A typed client for the WebSocket protocol, so end-to-end tests read as sentences:
//! `alice.join("lobby").await`, `bob.next_of_type("message").await`. Every wait is bounded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use local_gateway::RunningGateway;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{self, Client};

pub struct TestClient {
    socket: Client,
    /// The connection id the gateway gave this client.
    pub id: String,
    /// Frames read while waiting for another one, in arrival order: nothing is dropped.
    pending: VecDeque<Value>,
}

impl TestClient {
    /// Opens a socket and learns its connection id with `whoami`.
    pub async fn connect(gw: &RunningGateway) -> Self {
        let mut socket = ws::client(gw).await;
        ws::send(&mut socket, json!({"action": "whoami"})).await;
        let identity = ws::until(&mut socket, |f| f["type"] == "identity").await;
        let id = identity["connectionId"]
            .as_str()
            .unwrap_or_else(|| panic!("identity without a connectionId: {identity}"))
            .to_string();
        Self {
            socket,
            id,
            pending: VecDeque::new(),
        }
    }

    /// Sends `request` with a fresh `requestId` and returns the `ack` or `error` that answers it.
    pub async fn request(&mut self, mut request: Value) -> Value {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let request_id = format!("r{}", NEXT.fetch_add(1, Ordering::Relaxed));
        request["requestId"] = json!(request_id);
        ws::send(&mut self.socket, request).await;
        self.first(|f| {
            f["requestId"] == request_id.as_str() && (f["type"] == "ack" || f["type"] == "error")
        })
        .await
    }

    /// The first frame, pending or new, that satisfies `wanted`; the others stay pending. Fails
    /// the test after 10 s.
    pub async fn first(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(at) = self.pending.iter().position(&wanted) {
            return self.pending.remove(at).unwrap_or_default();
        }
        let deadline = tokio::time::Instant::now() + ws::WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("no wanted frame within 10 s; pending: {:?}", self.pending)
                })
                .unwrap_or_else(|| panic!("the socket ended"))
                .unwrap_or_else(|e| panic!("socket error: {e}"));
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("a frame that is not JSON: {e}"));
                if wanted(&frame) {
                    return frame;
                }
                self.pending.push_back(frame);
            }
        }
    }

    /// Joins `room`, failing the test unless the join is acknowledged.
    pub async fn join(&mut self, room: &str) {
        let answer = self.request(json!({"action": "join", "room": room})).await;
        assert_eq!(answer["type"], "ack", "join {room}: {answer}");
    }

    /// Publishes `data` to `room`; returns the `ack` or `error`.
    pub async fn publish(&mut self, room: &str, data: Value) -> Value {
        self.request(json!({"action": "publish", "room": room, "data": data}))
            .await
    }

    /// Tells `room` this client is typing; returns the `ack` or `error`.
    pub async fn typing(&mut self, room: &str) -> Value {
        self.request(json!({"action": "typing", "room": room}))
            .await
    }

    /// Opens a socket with `?token=...` (the gateway must run with auth on).
    pub async fn connect_with_token(gw: &RunningGateway, token: &str) -> Self {
        let url = format!("{}?token={token}", gw.ws_url());
        let (mut socket, _) = tokio::time::timeout(ws::WAIT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("connect timed out"))
            .unwrap_or_else(|e| panic!("handshake refused: {e}"));
        ws::send(&mut socket, json!({"action": "whoami"})).await;
        let identity = ws::until(&mut socket, |f| f["type"] == "identity").await;
        let id = identity["connectionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Self {
            socket,
            id,
            pending: VecDeque::new(),
        }
    }

    /// Asks for one page of `room`'s member list; returns the `members` or `error` frame.
    pub async fn members(&mut self, room: &str, cursor: Option<&str>) -> Value {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let request_id = format!("m{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut request = json!({"action": "members", "room": room, "requestId": request_id});
        if let Some(cursor) = cursor {
            request["cursor"] = json!(cursor);
        }
        ws::send(&mut self.socket, request).await;
        ws::until(&mut self.socket, |f| {
            f["requestId"] == request_id.as_str()
                && (f["type"] == "members" || f["type"] == "error")
        })
        .await
    }

    /// Leaves `room`, failing the test unless the leave is acknowledged.
    pub async fn leave(&mut self, room: &str) {
        let answer = self.request(json!({"action": "leave", "room": room})).await;
        assert_eq!(answer["type"], "ack", "leave {room}: {answer}");
    }

    /// Sends a join and returns its `ack` or `error`, for tests that expect a refusal.
    pub async fn try_join(&mut self, room: &str) -> Value {
        self.request(json!({"action": "join", "room": room})).await
    }

    /// Closes the socket (a clean close: `$disconnect` follows).
    pub async fn close(mut self) {
        let _ = futures::SinkExt::close(&mut self.socket).await;
    }

    /// Drops the TCP connection without a close frame, as a vanished client does.
    pub fn vanish(self) {
        drop(self);
    }

    /// The next frame of type `kind`, skipping others; fails the test after 10 s.
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        self.first(|f| f["type"] == kind).await
    }

    /// Every text frame that arrives within `window`, as JSON.
    pub async fn frames_within(&mut self, window: Duration) -> Vec<Value> {
        let mut frames: Vec<Value> = self.pending.drain(..).collect();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout_at(deadline, self.socket.next()).await
        {
            if let Message::Text(text) = message {
                frames.push(serde_json::from_str(&text).unwrap_or(Value::String(text.to_string())));
            }
        }
        frames
    }
}
