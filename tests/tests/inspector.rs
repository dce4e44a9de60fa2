//! The inspector's endpoints over real HTTP: the page and everything it loads come from the
//! gateway itself, and its live feed (Server-Sent Events) answers the gateway's own pages only.

use std::time::{Duration, Instant};

use local_gateway::{INSPECTOR_HISTORY_BYTES, INSPECTOR_MAX_SUBSCRIBERS};

use tests::gateway_probes::{Recorder, gateway_wrapping, inspector_snapshot, raw_http};
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
        "/inspector/console.js",
        "/inspector/console.css",
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

/// The `Content-Security-Policy` of a response head, if it has one.
fn policy(head: &str) -> Option<&str> {
    head.lines()
        .find_map(|line| line.strip_prefix("content-security-policy: "))
}

#[tokio::test]
async fn the_page_runs_only_the_gateway_s_own_scripts_and_may_not_be_framed() {
    let gw = gateway(&[]).await;

    for path in ["/", "/inspector"] {
        let head = response_head(&gw, path).await;

        let policy = policy(&head).unwrap_or_else(|| panic!("{path} has no CSP: {head}"));
        assert!(
            policy.starts_with("default-src 'self';"),
            "{path}: {policy}"
        );
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{path}");
        assert!(head.contains("x-frame-options: deny"), "{path}: {head}");
    }
}

#[tokio::test]
async fn the_protocol_console_runs_only_the_gateway_s_own_scripts_and_only_the_inspector_frames_it()
{
    let gw = gateway(&[]).await;

    let head = response_head(&gw, "/inspector/console").await;

    let policy = policy(&head).unwrap_or_else(|| panic!("the console has no CSP: {head}"));
    assert!(policy.starts_with("default-src 'self';"), "{policy}");
    assert!(policy.contains("frame-ancestors 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(head.contains("x-frame-options: sameorigin"), "{head}");
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

/// Opens a WebSocket with `headers` (each `Name: value`) in its handshake, over raw TCP so the
/// client accepts whatever the gateway answers; returns the open connection.
async fn upgrade_with(gw: &local_gateway::RunningGateway, headers: &[String]) -> TcpStream {
    let mut tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let mut request = format!(
        "GET /local HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        gw.addr()
    );
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut seen = String::new();
    read_until(&mut tcp, &mut seen, "\r\n\r\n").await;
    assert!(seen.starts_with("HTTP/1.1 101"), "{seen}");
    tcp
}

#[tokio::test]
async fn a_connect_is_shown_without_its_cookies_authorization_or_protocol_tokens() {
    let (gw, recorder) = gateway_wrapping(&[], Recorder::wrap).await;
    let secrets = [
        "Cookie: other_app_session=cookie-secret-1".to_string(),
        "Cookie: other_app_csrf=cookie-secret-2".to_string(),
        "Authorization: Bearer authorization-secret".to_string(),
        "Sec-WebSocket-Protocol: bearer.protocol-secret, chat".to_string(),
    ];
    let _socket = upgrade_with(&gw, &secrets).await;

    let snapshot = inspector_snapshot(gw.addr()).await;

    for secret in ["cookie-secret", "authorization-secret", "protocol-secret"] {
        assert!(
            !snapshot.contains(secret),
            "{secret} in the inspector: {snapshot}"
        );
    }
    let shown: serde_json::Value = serde_json::from_str(&snapshot).expect("JSON");
    let event = &shown["invocations"][0]["event"];
    assert_eq!(event["headers"]["host"], gw.addr().to_string());
    assert_eq!(
        event["multiValueHeaders"]["cookie"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // The handler got them all.
    let connect = recorder.first("$connect").await;
    assert_eq!(
        connect["multiValueHeaders"]["cookie"][1],
        "other_app_csrf=cookie-secret-2"
    );
    assert_eq!(
        connect["headers"]["sec-websocket-protocol"],
        "bearer.protocol-secret, chat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_with_huge_headers_leave_the_inspector_within_its_byte_budget() {
    let gw = gateway(&["--workers", "0"]).await;
    let pad = "x".repeat(5_000);
    let headers: Vec<String> = (0..60).map(|i| format!("X-Pad-{i:02}: {pad}")).collect();
    let mut sockets = Vec::new();
    for _ in 0..40 {
        sockets.push(upgrade_with(&gw, &headers).await);
    }

    let snapshot = inspector_snapshot(gw.addr()).await;

    // Both histories full, and the list of open connections.
    let budget = 2 * INSPECTOR_HISTORY_BYTES + 64 * 1024;
    assert!(
        snapshot.len() < budget,
        "a snapshot of {} bytes after 40 handshakes of 300 KB",
        snapshot.len()
    );
    let shown: serde_json::Value = serde_json::from_str(&snapshot).expect("JSON");
    assert_eq!(shown["connections"].as_array().map(Vec::len), Some(40));
    let invocations = shown["invocations"].as_array().expect("invocations");
    let latest = invocations.last().expect("the latest $connect is kept");
    assert_eq!(latest["route"], "$connect");
    let headers = latest["event"]["headers"].as_object().expect("headers");
    assert!(headers.len() < 60, "{} headers shown", headers.len());
    assert!(
        headers["x-pad-00"]
            .as_str()
            .is_some_and(|v| v.len() < 5_000)
    );
}

/// `GET /inspector/events`: the response's status line and what came with it, lower-cased.
async fn open_feed(gw: &local_gateway::RunningGateway) -> (TcpStream, String) {
    let mut feed = TcpStream::connect(gw.addr()).await.expect("connect");
    let request = format!(
        "GET /inspector/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        gw.addr()
    );
    feed.write_all(request.as_bytes()).await.expect("write");
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "\r\n\r\n").await;
    (feed, seen)
}

#[tokio::test]
async fn at_most_a_few_pages_read_the_feed_at_once_and_a_closed_one_frees_its_place() {
    let gw = gateway(&[]).await;
    let mut feeds = Vec::new();
    for _ in 0..INSPECTOR_MAX_SUBSCRIBERS {
        let (mut feed, mut seen) = open_feed(&gw).await;
        read_until(&mut feed, &mut seen, "event: snapshot").await;
        feeds.push(feed);
    }

    let (mut refused, mut seen) = open_feed(&gw).await;
    read_until(&mut refused, &mut seen, "pages").await;

    assert!(seen.starts_with("HTTP/1.1 503"), "{seen}");
    assert!(
        seen.contains(&format!("{INSPECTOR_MAX_SUBSCRIBERS} inspector pages")),
        "{seen}"
    );
    drop(feeds.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let (_feed, seen) = open_feed(&gw).await;
        if seen.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed page's place was never freed: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_inspector_shows_each_room_s_latest_seq_after_a_publish() {
    let gw = tests::ws::gateway(&[]).await;
    let mut alice = tests::client::TestClient::connect(&gw).await;
    alice.join("lobby").await;
    for n in 0..3 {
        alice.publish("lobby", serde_json::json!(n)).await;
    }

    let snapshot: serde_json::Value =
        serde_json::from_str(&inspector_snapshot(gw.addr()).await).expect("JSON");

    assert_eq!(snapshot["streams"], serde_json::json!({"lobby": 3}));
}
