//! WebSocket clients for end-to-end tests against the local gateway. Every wait is bounded.

use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use local_gateway::{Options, RunningGateway, start};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
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

/// The status a handshake to `url` got: 101 when the socket opened.
pub async fn handshake_status(url: &str) -> u16 {
    match tokio::time::timeout(WAIT, connect_async(url)).await {
        Err(_) => panic!("no answer to the handshake within {WAIT:?}"),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            response.status().as_u16()
        }
        Ok(Ok(_)) => 101,
        Ok(Err(e)) => panic!("unexpected error: {e}"),
    }
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

/// The socket's connection id, from a `whoami`.
pub async fn whoami(c: &mut Client) -> String {
    send(c, serde_json::json!({"action": "whoami"})).await;
    let frame = until(c, |f| f["type"] == "identity").await;
    frame["connectionId"]
        .as_str()
        .expect("identity frames carry the connection id")
        .to_string()
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

/// Opens a socket with extra handshake headers (`Origin`, `Host`); `Err` holds the HTTP status
/// of a refused handshake.
pub async fn client_with_headers(url: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("a valid URL");
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .expect("a valid header name");
        request
            .headers_mut()
            .insert(name, value.parse().expect("a valid header value"));
    }
    match tokio::time::timeout(WAIT, connect_async(request))
        .await
        .expect("handshake timed out")
    {
        Ok((client, _)) => Ok(client),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("handshake failed without an HTTP status: {e}"),
    }
}

/// Sends one raw frame, as a misbehaving or fragmenting client would.
pub async fn send_frame(c: &mut Client, opcode: OpCode, payload: Vec<u8>, is_final: bool) {
    c.send(Message::Frame(Frame::message(payload, opcode, is_final)))
        .await
        .expect("send a frame");
}

/// Sends `text` as one message split into frames of at most `frame_bytes`, as a client that
/// fragments does: a text frame, then continuation frames, the last one final.
pub async fn send_fragmented(c: &mut Client, text: &str, frame_bytes: usize) {
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(frame_bytes).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        send_frame(c, opcode, chunk.to_vec(), i + 1 == chunks.len()).await;
    }
}

/// True when the server closes the TCP connection within `within`. Reads raw bytes under the
/// WebSocket library, so the client never answers a close frame: a client that does not.
pub async fn server_drops_tcp(c: &mut Client, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let MaybeTlsStream::Plain(tcp) = c.get_mut() else {
        panic!("the local gateway speaks plain ws://");
    };
    let mut buffer = [0u8; 4096];
    let read_until_end = async {
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, read_until_end).await.is_ok()
}
