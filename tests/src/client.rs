//! A typed client for the WebSocket protocol, so end-to-end tests read as sentences:
//! `alice.join("lobby").await`, `bob.next_of_type("message").await`. Every wait is bounded, and
//! frames read while waiting for another one are kept for later: nothing is dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use local_gateway::RunningGateway;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{self, Client};

pub struct TestClient {
    socket: Client,
    /// The connection id the gateway gave this client.
    pub id: String,
    /// Frames read while waiting for another one, in arrival order.
    pending: VecDeque<Value>,
}

impl TestClient {
    /// Opens a socket and learns its connection id with `whoami`.
    pub async fn connect(gw: &RunningGateway) -> Self {
        Self::identified(ws::client(gw).await).await
    }

    /// Opens a socket with `?token=...` (the gateway must run with auth on).
    pub async fn connect_with_token(gw: &RunningGateway, token: &str) -> Self {
        let url = format!("{}?token={token}", gw.ws_url());
        let (socket, _) = tokio::time::timeout(ws::WAIT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("connect timed out"))
            .unwrap_or_else(|e| panic!("handshake refused: {e}"));
        Self::identified(socket).await
    }

    /// A client on a socket the test opened itself (with its own URL or headers).
    pub async fn from_socket(socket: Client) -> Self {
        Self::identified(socket).await
    }

    async fn identified(socket: Client) -> Self {
        let mut client = Self {
            socket,
            id: String::new(),
            pending: VecDeque::new(),
        };
        let identity = client.request(json!({"action": "whoami"})).await;
        client.id = identity["connectionId"]
            .as_str()
            .unwrap_or_else(|| panic!("identity without a connectionId: {identity}"))
            .to_string();
        client
    }

    /// Sends `request` with a fresh `requestId` and returns the frame that answers it: `ack`,
    /// `error`, or the action's own answer (`identity`, `pong`, `members`).
    pub async fn request(&mut self, request: Value) -> Value {
        let request_id = self.send_request(request).await;
        self.first(|f| answers(f, &request_id)).await
    }

    /// Sends `frame` as it is, without waiting for anything.
    pub async fn send(&mut self, frame: Value) {
        ws::send(&mut self.socket, frame).await;
    }

    /// Sends `request` with a fresh `requestId`, without waiting; returns the id.
    async fn send_request(&mut self, mut request: Value) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let request_id = format!("r{}", NEXT.fetch_add(1, Ordering::Relaxed));
        request["requestId"] = json!(request_id);
        ws::send(&mut self.socket, request).await;
        request_id
    }

    /// Sends `count` `sendmessage`s back to back (`data` 0, 1, ...), then returns their `ack` or
    /// `error` answers in the order they were sent.
    pub async fn send_messages_in_a_burst(&mut self, count: usize) -> Vec<Value> {
        let mut ids = Vec::with_capacity(count);
        for n in 0..count {
            let message = json!({"action": "sendmessage", "data": n});
            ids.push(self.send_request(message).await);
        }
        let mut answered = HashMap::new();
        while answered.len() < count {
            let frame = self
                .first(|f| ids.iter().any(|request_id| answers(f, request_id)))
                .await;
            answered.insert(frame["requestId"].to_string(), frame);
        }
        ids.iter()
            .map(|request_id| answered[&json!(request_id).to_string()].clone())
            .collect()
    }

    /// Joins `room`, failing the test unless the join is acknowledged.
    pub async fn join(&mut self, room: &str) {
        let answer = self.try_join(room).await;
        assert_eq!(answer["type"], "ack", "join {room}: {answer}");
    }

    /// Sends a join and returns its `ack` or `error`, for tests that expect a refusal.
    pub async fn try_join(&mut self, room: &str) -> Value {
        self.request(json!({"action": "join", "room": room})).await
    }

    /// Leaves `room`, failing the test unless the leave is acknowledged.
    pub async fn leave(&mut self, room: &str) {
        let answer = self.request(json!({"action": "leave", "room": room})).await;
        assert_eq!(answer["type"], "ack", "leave {room}: {answer}");
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

    /// Asks for one page of `room`'s member list; returns the `members` or `error` frame.
    pub async fn members(&mut self, room: &str, cursor: Option<&str>) -> Value {
        let mut request = json!({"action": "members", "room": room});
        if let Some(cursor) = cursor {
            request["cursor"] = json!(cursor);
        }
        self.request(request).await
    }

    /// Closes the socket (a clean close: `$disconnect` follows).
    pub async fn close(mut self) {
        let _ = futures::SinkExt::close(&mut self.socket).await;
    }

    /// Drops the TCP connection without a close frame, as a vanished client does.
    pub fn vanish(self) {
        drop(self);
    }

    /// Whether the server ends the socket (a close frame, or the connection's end) within
    /// `wait`; frames that come before are kept pending.
    pub async fn ended_within(&mut self, wait: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(Message::Text(text)))) => {
                    if let Ok(frame) = serde_json::from_str(&text) {
                        self.pending.push_back(frame);
                    }
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Frames already read but not yet asked for.
    pub fn pending_frames(&self) -> Vec<Value> {
        self.pending.iter().cloned().collect()
    }

    /// The next frame of type `kind`, pending or new, skipping others; fails the test after 10 s.
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        self.first(|f| f["type"] == kind).await
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

    /// Every frame posted to this client before now, with no sleep: sends a `ping` and returns
    /// what arrives before its `pong` (the gateway keeps each socket's frames in order, and the
    /// pong is posted after everything posted before the ping).
    pub async fn drain(&mut self) -> Vec<Value> {
        self.request(json!({"action": "ping"})).await;
        self.pending.drain(..).collect()
    }

    /// The `data` of every `message` frame posted to this client before now (see `drain`).
    pub async fn messages_so_far(&mut self) -> Vec<Value> {
        let frames = self.drain().await;
        frames
            .into_iter()
            .filter(|f| f["type"] == "message")
            .map(|f| f["data"].clone())
            .collect()
    }
}

/// Whether `frame` answers the request `request_id`: an `error`, or the frame type some action
/// declares as its answer (`domain::actions::ACTIONS`).
fn answers(frame: &Value, request_id: &str) -> bool {
    let kind = frame["type"].as_str().unwrap_or_default();
    frame["requestId"] == request_id
        && (kind == domain::protocol::frames::ERROR.name
            || domain::actions::ACTIONS
                .iter()
                .any(|action| action.answer == kind))
}
