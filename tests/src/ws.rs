//! WebSocket clients for end-to-end tests against the local gateway. Every wait is bounded.

use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use local_gateway::{Options, RunningGateway, start};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(10);

/// A local gateway on a free loopback port, with extra command-line flags.
pub async fn gateway(extra: &[&str]) -> RunningGateway {
    let mut args = vec!["local-gateway", "--port", "0"];
    args.extend_from_slice(extra);
    let options = Options::try_parse_from(args).expect("valid flags");
    start(options.gateway_config().await.expect("gateway config"))
        .await
        .expect("gateway start")
}

pub async fn client(gw: &RunningGateway) -> Client {
    tokio::time::timeout(WAIT, connect_async(gw.ws_url()))
        .await
        .expect("connect timed out")
        .expect("handshake refused")
        .0
}

pub async fn send(c: &mut Client, message: Value) {
    c.send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

/// Reads text frames until one satisfies `wanted`; fails the test after 10 s.
pub async fn until(c: &mut Client, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, c.next())
            .await
            .expect("the frame did not come within 10 s")
            .expect("socket ended")
            .expect("socket error");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).expect("frames are JSON");
            if wanted(&frame) {
                return frame;
            }
        }
    }
}

/// The next text frame as JSON.
pub async fn next_json(c: &mut Client) -> Value {
    until(c, |_| true).await
}

/// The close frame's code; fails the test after `within`.
pub async fn close_code(c: &mut Client, within: Duration) -> u16 {
    loop {
        match tokio::time::timeout(within, c.next())
            .await
            .expect("no close in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error instead of a close: {e}"),
        }
    }
}
