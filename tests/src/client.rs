//! A typed client for the WebSocket protocol, so end-to-end tests read as sentences:
//! `alice.join("lobby").await`, `bob.next_of_type("message").await`. Every wait is bounded.

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
        Self { socket, id }
    }

    /// Sends `request` with a fresh `requestId` and returns the `ack` or `error` that answers it.
    pub async fn request(&mut self, request: Value) -> Value {
        let request_id = self.send_request(request).await;
        ws::until(&mut self.socket, |f| answers(f, &request_id)).await
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
        let mut answered = std::collections::HashMap::new();
        while answered.len() < count {
            let frame = ws::until(&mut self.socket, |f| {
                ids.iter().any(|request_id| answers(f, request_id))
            })
            .await;
            answered.insert(frame["requestId"].to_string(), frame);
        }
        ids.iter()
            .map(|request_id| answered[&json!(request_id).to_string()].clone())
            .collect()
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

    /// The next frame of type `kind`, skipping others; fails the test after 10 s.
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        ws::until(&mut self.socket, |f| f["type"] == kind).await
    }

    /// The `data` of every `message` frame that arrives within `window`.
    pub async fn messages_within(&mut self, window: Duration) -> Vec<Value> {
        let frames = self.frames_within(window).await;
        frames
            .into_iter()
            .filter(|f| f["type"] == "message")
            .map(|f| f["data"].clone())
            .collect()
    }

    /// Every text frame that arrives within `window`, as JSON.
    pub async fn frames_within(&mut self, window: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
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

/// Whether `frame` is the `ack` or `error` answering `request_id`.
fn answers(frame: &Value, request_id: &str) -> bool {
    frame["requestId"] == request_id && (frame["type"] == "ack" || frame["type"] == "error")
}
