//! The few Chrome DevTools Protocol commands the browser tests send, over the browser's own
//! WebSocket: JSON `{id, method, params, sessionId}` out, `{id, result | error}` back, events
//! ignored. A client library for the whole protocol (generated from the protocol's schema)
//! was a sixth of the workspace's first build; the tests need a dozen commands.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Answers = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One DevTools connection to the browser; commands for a tab carry its session id.
pub struct Connection {
    sink: Mutex<SplitSink<Socket, Message>>,
    answers: Answers,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
    timeout: Duration,
}

impl Connection {
    /// Connects to the browser's DevTools WebSocket (`ws://127.0.0.1:{port}/devtools/browser/…`).
    /// Every command then gets at most `timeout` for its answer.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Connection, String> {
        let (socket, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| format!("DevTools at {url} did not answer within {timeout:?}"))?
            .map_err(|e| format!("DevTools at {url}: {e}"))?;
        let (sink, mut stream) = socket.split();
        let answers = Answers::default();
        let reader = tokio::spawn({
            let answers = answers.clone();
            async move {
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(text) = message {
                        route(&answers, &text);
                    }
                }
                // The browser is gone: every command still waiting fails now, not at its timeout.
                answers.lock().unwrap_or_else(|e| e.into_inner()).clear();
            }
        });
        Ok(Connection {
            sink: Mutex::new(sink),
            answers,
            next_id: AtomicU64::new(1),
            reader,
            timeout,
        })
    }

    /// Sends `method` (to the tab of `session`, or to the browser) and returns its `result`.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        let (answer, answered) = oneshot::channel();
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, answer);
        self.sink
            .lock()
            .await
            .send(Message::text(command.to_string()))
            .await
            .map_err(|e| format!("{method}: sending: {e}"))?;
        match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(result)) => result.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!("{method}: the browser closed the connection")),
            Err(_) => {
                self.answers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                Err(format!("{method}: no answer within {:?}", self.timeout))
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Hands an answer to the command waiting for it; events (no `id`) are not needed.
fn route(answers: &Answers, text: &str) {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Some(id) = message.get("id").and_then(Value::as_u64) else {
        return;
    };
    let Some(answer) = answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)
    else {
        return;
    };
    let outcome = match message.get("error") {
        Some(error) => Err(error.to_string()),
        None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
    };
    let _ = answer.send(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting_for(id: u64) -> (Answers, oneshot::Receiver<Result<Value, String>>) {
        let answers = Answers::default();
        let (answer, answered) = oneshot::channel();
        answers.lock().unwrap().insert(id, answer);
        (answers, answered)
    }

    #[test]
    fn an_answer_reaches_the_command_with_its_id() {
        let (answers, mut answered) = waiting_for(7);

        route(&answers, r#"{"id":7,"result":{"frameId":"F"}}"#);

        assert_eq!(answered.try_recv().unwrap(), Ok(json!({"frameId": "F"})));
    }

    #[test]
    fn an_error_answer_is_an_error_with_the_browser_s_message() {
        let (answers, mut answered) = waiting_for(3);

        route(
            &answers,
            r#"{"id":3,"error":{"code":-32000,"message":"No target"}}"#,
        );

        let error = answered.try_recv().unwrap().unwrap_err();
        assert!(error.contains("No target"), "{error}");
    }

    #[test]
    fn events_and_answers_to_nobody_are_ignored() {
        let (answers, mut answered) = waiting_for(1);

        route(&answers, r#"{"method":"Page.loadEventFired","params":{}}"#);
        route(&answers, r#"{"id":2,"result":{}}"#);
        route(&answers, "not json");

        assert!(answered.try_recv().is_err());
        assert_eq!(answers.lock().unwrap().len(), 1);
    }
}
