//! The local gateway's `POST /{stage}/@publish`, spoken as raw HTTP so a test controls every
//! header (the route refuses requests a browser would send). Every wait is bounded.

use local_gateway::RunningGateway;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ws::WAIT;

/// POSTs `body` to the gateway's `@publish` with `headers` (each `Name: value`); the status and
/// the JSON answer.
pub async fn post_publish(gw: &RunningGateway, headers: &[&str], body: &str) -> (u16, Value) {
    let url = gw.publish_url().expect("the gateway runs workers");
    let path = url
        .split_once(&gw.addr().to_string())
        .map(|(_, path)| path.to_string())
        .expect("the publish URL is on the gateway's address");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        gw.addr(),
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    let mut tcp = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    tcp.write_all(format!("{head}\r\n{body}").as_bytes())
        .await
        .expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .expect("no response within 10 s")
        .expect("read");
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, json)
}
