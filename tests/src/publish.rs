//! The local gateway's `POST /{stage}/@publish`, spoken as raw HTTP so a test controls every
//! header (the route refuses requests a browser would send). Every wait is bounded.

use crate::gateway_probes::raw_http_with_body;
use local_gateway::RunningGateway;
use serde_json::Value;

/// POSTs `body` to the gateway's `@publish` with `headers` (each `Name: value`); the status and
/// the JSON answer.
pub async fn post_publish(gw: &RunningGateway, headers: &[&str], body: &str) -> (u16, Value) {
    let url = gw.publish_url().expect("the gateway runs workers");
    let path = url
        .split_once(&gw.addr().to_string())
        .map(|(_, path)| path.to_string())
        .expect("the publish URL is on the gateway's address");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {}", gw.addr());
    for header in headers {
        head.push_str("\r\n");
        head.push_str(header);
    }
    let (status, body) = raw_http_with_body(gw.addr(), &head, body).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, json)
}
