//! The inspector's endpoints over real HTTP: the page and everything it loads come from the
//! gateway itself, and its live feed (Server-Sent Events) answers the gateway's own pages only.

use std::time::Instant;

use tests::gateway_probes::raw_http;
use tests::ws::{WAIT, client, gateway, whoami};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn the_page_and_every_file_it_loads_are_served_by_the_gateway_itself() {
    let gw = gateway(&[]).await;
    let host = gw.addr().to_string();

    let (status, page) = raw_http(gw.addr(), &format!("GET / HTTP/1.1\r\nHost: {host}")).await;

    assert_eq!(status, 200);
    assert!(page.contains(r#"src="/inspector/app.js""#));
    for path in [
        "/inspector",
        "/inspector/console",
        "/inspector/style.css",
        "/inspector/app.js",
        "/inspector/chat.js",
        "/inspector/dom.js",
        "/inspector/metrics.js",
        "/inspector/ws-client.js",
    ] {
        let (status, body) =
            raw_http(gw.addr(), &format!("GET {path} HTTP/1.1\r\nHost: {host}")).await;
        assert_eq!(status, 200, "{path}");
        // No CDN, no font service: the page works on a laptop without internet.
        assert!(
            !body.contains("https://"),
            "{path} loads something from the internet"
        );
    }
}

/// The head of the response to `GET {path}`, lower-cased.
async fn response_head(gw: &local_gateway::RunningGateway, path: &str) -> String {
    let mut stream = TcpStream::connect(gw.addr()).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        gw.addr()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\r\n\r\n").await;
    seen.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

#[tokio::test]
async fn the_page_runs_only_the_gateway_s_own_scripts_and_is_not_framed_by_other_sites() {
    let gw = gateway(&[]).await;

    for path in ["/", "/inspector"] {
        let head = response_head(&gw, path).await;

        assert!(
            head.contains("content-security-policy: default-src 'self';"),
            "{path}: {head}"
        );
        assert!(head.contains("frame-ancestors 'self'"), "{path}");
        assert!(!head.contains("unsafe-inline"), "{path}");
        assert!(head.contains("x-frame-options: sameorigin"), "{path}");
    }
}

#[tokio::test]
async fn the_feed_refuses_pages_of_other_sites() {
    let gw = gateway(&[]).await;
    let host = gw.addr().to_string();

    let foreign_origin = raw_http(
        gw.addr(),
        &format!(
            "GET /inspector/events HTTP/1.1\r\nHost: {host}\r\nOrigin: http://attacker.example"
        ),
    )
    .await;
    let cross_site = raw_http(
        gw.addr(),
        &format!("GET /inspector/events HTTP/1.1\r\nHost: {host}\r\nSec-Fetch-Site: cross-site"),
    )
    .await;

    assert_eq!(foreign_origin.0, 403);
    assert_eq!(cross_site.0, 403);
}

/// Reads the event stream until it holds `wanted`; fails the test after 10 s.
async fn read_until(stream: &mut TcpStream, seen: &mut String, wanted: &str) {
    let deadline = Instant::now() + WAIT;
    let mut buffer = [0u8; 8192];
    while !seen.contains(wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("{wanted:?} not in the feed within 10 s: {seen}"))
            .expect("read");
        assert!(read > 0, "the feed ended before {wanted:?}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

#[tokio::test]
async fn the_feed_starts_with_a_snapshot_then_shows_each_connection_and_invocation() {
    let gw = gateway(&[]).await;
    let mut feed = TcpStream::connect(gw.addr()).await.expect("connect");
    let origin = format!("http://{}", gw.addr());
    let request = format!(
        "GET /inspector/events HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\nAccept: text/event-stream\r\n\r\n",
        gw.addr()
    );
    feed.write_all(request.as_bytes()).await.expect("write");
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "event: snapshot").await;

    let mut socket = client(&gw).await;
    let id = whoami(&mut socket).await;

    read_until(&mut feed, &mut seen, "event: connection").await;
    read_until(&mut feed, &mut seen, r#""action":"whoami""#).await;
    assert!(seen.starts_with("HTTP/1.1 200"));
    assert!(seen.contains("content-type: text/event-stream"));
    assert!(seen.contains(&format!(r#""id":"{id}""#)));
}
