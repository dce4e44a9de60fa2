//! The local gateway's `GET /metrics`: what the handlers recorded, in Prometheus text format and
//! under the names the Lambdas send CloudWatch. Its own test binary, so the process-wide recorder
//! counts this test's traffic alone and the counts can be exact.

use adapters::metrics::{dimension, name};
use futures::SinkExt;
use serde_json::json;
use tests::gateway_probes::raw_http;
use tests::ws::{client, gateway, next_json, send};
use tokio_tungstenite::tungstenite::Message;

/// The value of the sample `series` (name and labels as Prometheus writes them), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn get_metrics_shows_what_a_client_did_under_the_cloudwatch_names() {
    let gw = gateway(&[]).await;
    let mut a = client(&gw).await;
    send(&mut a, json!({"action": "ping"})).await;
    assert_eq!(next_json(&mut a).await["type"], "pong");
    a.send(Message::Text("{oops".into())).await.unwrap();
    assert_eq!(next_json(&mut a).await["code"], "bad_json");

    let (status, text) = raw_http(
        gw.addr(),
        &format!("GET /metrics HTTP/1.1\r\nHost: {}", gw.addr()),
    )
    .await;

    assert_eq!(status, 200);
    let opened = name::CONNECTIONS_OPENED.to_string();
    let pings = format!("{}{{{}=\"ping\"}}", name::MESSAGES, dimension::ACTION);
    let refused = format!(
        "{}{{{}=\"bad_json\"}}",
        name::MESSAGES_REFUSED,
        dimension::ERROR_CODE
    );
    for series in [&opened, &pings, &refused] {
        assert_eq!(sample(&text, series), Some(1.0), "{series} in:\n{text}");
    }
    assert!(
        !text.contains(&a_connection_id(&mut a).await),
        "a connection id is never a label:\n{text}"
    );
    a.close(None).await.unwrap();
    gw.shutdown().await;
}

async fn a_connection_id(client: &mut tests::ws::Client) -> String {
    send(client, json!({"action": "whoami"})).await;
    next_json(client).await["connectionId"]
        .as_str()
        .unwrap()
        .to_string()
}
