//! Abuse against the local gateway: floods, huge frames, stalled handshakes, room spam, and
//! clients that vanish without a close. Other clients must stay served throughout.

use std::time::{Duration, Instant};

use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures::{SinkExt, StreamExt};
use local_gateway::CLOSE_HANDSHAKE_TIMEOUT;
use serde_json::json;
use tests::gateway_probes::{Gate, Recorder, eventually, gateway_wrapping};
use tests::ws::{
    Client, WAIT, client, client_with_headers, close_code, gateway, send, send_fragmented,
    send_frame, server_drops_tcp, until, whoami,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// A bystander's ping round trip: the service must keep answering others.
async fn ping_round_trip(c: &mut Client, id: &str) -> Duration {
    let started = Instant::now();
    send(c, json!({"action": "ping", "requestId": id})).await;
    until(c, |f| f["type"] == "pong" && f["requestId"] == id).await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_a_thousand_messages_does_not_starve_the_others() {
    let gw = gateway(&[]).await;
    let mut flooder = client(&gw).await;
    let mut bystander = client(&gw).await;

    for i in 0..1_000 {
        send(
            &mut flooder,
            json!({"action": "ping", "requestId": format!("f{i}")}),
        )
        .await;
    }
    let rtt = ping_round_trip(&mut bystander, "b").await;

    // The flood is answered in full, and the bystander was answered meanwhile.
    until(&mut flooder, |f| f["requestId"] == "f999").await;
    assert!(rtt < WAIT, "bystander waited {rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_frame_closes_only_its_own_socket() {
    let gw = gateway(&[]).await;
    let mut abuser = client(&gw).await;
    let mut bystander = client(&gw).await;

    let _ = abuser
        .send(Message::Text("x".repeat(10 * 1024 * 1024).into()))
        .await;
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match abuser.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the abuser's socket stayed open");

    assert!(
        matches!(closed, Some(1009) | None),
        "closed with {closed:?}"
    );
    ping_round_trip(&mut bystander, "after-10mb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_that_never_complete_do_not_block_new_clients() {
    let gw = gateway(&[]).await;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
        tcp.write_all(b"GET /local HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            .await
            .unwrap(); // and never the rest
        stalled.push(tcp);
    }

    let mut newcomer = client(&gw).await;

    ping_round_trip(&mut newcomer, "new").await;
    assert_eq!(stalled.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_thousand_rooms_stops_at_the_room_limit_and_others_stay_served() {
    let gw = gateway(&[]).await;
    let mut spammer = client(&gw).await;
    let mut bystander = client(&gw).await;

    for i in 0..1_000 {
        send(
            &mut spammer,
            json!({"action": "join", "room": format!("room-{i}"), "requestId": format!("j{i}")}),
        )
        .await;
    }
    let mut acks = 0;
    let mut refusals = 0;
    while acks + refusals < 1_000 {
        let frame = until(&mut spammer, |f| f["type"] == "ack" || f["type"] == "error").await;
        match frame["type"].as_str() {
            Some("ack") => acks += 1,
            _ => {
                assert_eq!(frame["code"], "too_many_rooms");
                refusals += 1;
            }
        }
    }

    assert_eq!(acks, 50, "the default limit is 50 rooms");
    assert_eq!(refusals, 950);
    ping_round_trip(&mut bystander, "after-joins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_its_tcp_connection_without_a_close_is_cleaned_up() {
    let gw = gateway(&[]).await;
    let mut vanishing = client(&gw).await;
    let mut stayer = client(&gw).await;
    send(
        &mut vanishing,
        json!({"action": "join", "room": "r", "requestId": "1"}),
    )
    .await;
    until(&mut vanishing, |f| f["type"] == "ack").await;
    send(
        &mut stayer,
        json!({"action": "join", "room": "r", "requestId": "2"}),
    )
    .await;
    until(&mut stayer, |f| f["type"] == "ack").await;

    drop(vanishing); // TCP closed, no close frame

    // The gateway sees the socket die and runs $disconnect (code 1006); the room forgets it.
    let deadline = Instant::now() + WAIT;
    loop {
        send(
            &mut stayer,
            json!({"action": "publish", "room": "r", "data": 1, "requestId": "p"}),
        )
        .await;
        let ack = until(&mut stayer, |f| f["type"] == "ack" && f["requestId"] == "p").await;
        if ack["delivered"] == 1 && ack["gone"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the vanished client is still in the room: {ack}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.open_sockets(), 1);
}

// Frames and messages: API Gateway caps a frame at 32 KB and a message at 128 KB.

/// A `sendmessage` of `bytes` bytes in all, asking for an ack.
fn sendmessage_of(bytes: usize, request_id: &str) -> String {
    let frame = json!({"action": "sendmessage", "data": "", "requestId": request_id}).to_string();
    let padding = "x".repeat(bytes.saturating_sub(frame.len()));
    json!({"action": "sendmessage", "data": padding, "requestId": request_id}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_40_kb_frame_closes_the_socket_with_1009_as_a_browser_would_see_on_aws() {
    let gw = gateway(&[]).await;
    let mut browser_like = client(&gw).await;

    browser_like
        .send(Message::Text(sendmessage_of(40 * 1024, "one-frame").into()))
        .await
        .unwrap();

    assert_eq!(close_code(&mut browser_like, WAIT).await, 1009);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_kb_message_in_frames_of_32_kb_is_accepted() {
    let gw = gateway(&[]).await;
    let mut fragmenting = client(&gw).await;

    send_fragmented(
        &mut fragmenting,
        &sendmessage_of(100 * 1024, "big"),
        32 * 1024,
    )
    .await;

    let ack = until(&mut fragmenting, |f| f["requestId"] == "big").await;
    assert_eq!(ack["type"], "ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_128_kb_closes_the_socket_with_1009_even_in_small_frames() {
    let gw = gateway(&[]).await;
    let mut fragmenting = client(&gw).await;

    send_fragmented(
        &mut fragmenting,
        &sendmessage_of(129 * 1024, "huge"),
        16 * 1024,
    )
    .await;

    assert_eq!(close_code(&mut fragmenting, WAIT).await, 1009);
}

// Frames API Gateway refuses, and close codes that say what happened.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_frame_closes_the_socket_with_1003() {
    let gw = gateway(&[]).await;
    let mut a = client(&gw).await;

    a.send(Message::Binary(br#"{"action":"ping"}"#.to_vec().into()))
        .await
        .unwrap();

    assert_eq!(close_code(&mut a, WAIT).await, 1003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_that_is_not_utf8_closes_the_socket_with_1007() {
    let gw = gateway(&[]).await;
    let mut a = client(&gw).await;

    send_frame(
        &mut a,
        OpCode::Data(Data::Text),
        vec![b'{', 0xff, 0xfe, b'}'],
        true,
    )
    .await;

    assert_eq!(close_code(&mut a, WAIT).await, 1007);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_frame_with_nothing_to_continue_closes_the_socket_with_1002() {
    let gw = gateway(&[]).await;
    let mut a = client(&gw).await;

    send_frame(
        &mut a,
        OpCode::Data(Data::Continue),
        b"orphan".to_vec(),
        true,
    )
    .await;

    assert_eq!(close_code(&mut a, WAIT).await, 1002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_reaches_disconnect_as_1006() {
    let (gw, recorder) = gateway_wrapping(&[], Recorder::wrap).await;
    let mut vanishing = client(&gw).await;
    send(&mut vanishing, json!({"action": "ping", "requestId": "p"})).await;
    until(&mut vanishing, |f| f["type"] == "pong").await;

    drop(vanishing); // TCP closed, no close frame

    let disconnect = recorder.first("$disconnect").await;
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1006);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_the_client_never_answers_is_given_up_after_a_few_seconds() {
    let gw = gateway(&[]).await; // idle timeout: API Gateway's 10 minutes
    let mut silent = client(&gw).await;
    let id = whoami(&mut silent).await;

    tests::management_client(&gw.management_url())
        .await
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();

    assert!(
        server_drops_tcp(&mut silent, CLOSE_HANDSHAKE_TIMEOUT + WAIT).await,
        "the socket waited for a close answer that never came"
    );
}

// Back-pressure.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_with_1008_and_posts_to_it_get_410() {
    let (gw, recorder) =
        gateway_wrapping(&["--max-outbound-queue-bytes", "262144"], Recorder::wrap).await;
    let mut not_reading = client(&gw).await;
    let id = whoami(&mut not_reading).await;
    let management = tests::management_client(&gw.management_url()).await;
    let payload = "y".repeat(100 * 1024);

    // The kernel's socket buffers take a few MiB first; 500 posts of 100 KB is far beyond them.
    let mut accepted = 0;
    let gone = loop {
        let posted = management
            .post_to_connection()
            .connection_id(&id)
            .data(Blob::new(payload.as_bytes()))
            .send()
            .await;
        match posted {
            Ok(_) if accepted < 500 => accepted += 1,
            Ok(_) => break false,
            Err(e) => break e.into_service_error().is_gone_exception(),
        }
    };

    assert!(gone, "{accepted} posts accepted and never a 410");
    let after = management.get_connection().connection_id(&id).send().await;
    assert!(after.unwrap_err().into_service_error().is_gone_exception());
    let disconnect = recorder.first("$disconnect").await;
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1008);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_has_at_most_its_in_flight_cap_of_messages_at_the_handler() {
    let (gw, gate) = gateway_wrapping(&["--max-in-flight-per-connection", "4"], Gate::wrap).await;
    let mut flooder = client(&gw).await;

    for i in 0..100 {
        send(
            &mut flooder,
            json!({"action": "ping", "requestId": format!("f{i}")}),
        )
        .await;
    }
    eventually(|| (gate.waiting() == 4).then_some(()))
        .await
        .expect("four messages reach the handler");
    // Room for a fifth to arrive if the gateway kept reading; it must not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = gate.peak_waiting();
    gate.open();

    assert_eq!(peak, 4);
    until(&mut flooder, |f| f["requestId"] == "f99").await;
}

// Handshakes and connection count.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_is_cut_off_at_the_handshake_timeout() {
    let gw = gateway(&["--handshake-timeout-secs", "1"]).await;
    let mut slowloris = TcpStream::connect(gw.addr()).await.unwrap();
    slowloris
        .write_all(b"GET /local HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        .await
        .unwrap(); // and never the rest

    let mut rest = Vec::new();
    let ended = tokio::time::timeout(WAIT, slowloris.read_to_end(&mut rest)).await;

    assert!(
        ended.is_ok(),
        "the half-sent handshake still holds its connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_above_the_connection_cap_is_refused_with_429_until_one_closes() {
    let gw = gateway(&["--max-connections", "2"]).await;
    let mut first = client(&gw).await;
    let _second = client(&gw).await;

    assert_eq!(
        client_with_headers(&gw.ws_url(), &[]).await.err(),
        Some(429)
    );

    first.close(None).await.unwrap();
    let mut admitted = None;
    for _ in 0..100 {
        if let Ok(client) = client_with_headers(&gw.ws_url(), &[]).await {
            admitted = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted.is_some(), "a freed slot never admitted anyone");
}

// Request bodies and plain HTTP connections.

/// Sends `head` (without its final blank line) promising a body of 100 000 bytes, and never
/// sends the body; what came back before the gateway closed the connection, or `None` when it
/// kept it open for `within`.
async fn request_whose_body_never_comes(
    gw: &local_gateway::RunningGateway,
    head: &str,
    within: Duration,
) -> Option<String> {
    let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {}\r\nContent-Length: 100000\r\n\r\n",
        gw.addr()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let ended = tokio::time::timeout(within, tcp.read_to_end(&mut response)).await;
    // A reset after the answer is as good as a close.
    ended
        .is_ok()
        .then(|| String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_body_never_comes_gets_408_at_the_handshake_timeout() {
    let gw = gateway(&["--handshake-timeout-secs", "1"]).await;

    let answer = request_whose_body_never_comes(
        &gw,
        "POST /local/@publish HTTP/1.1\r\nContent-Type: application/json",
        WAIT,
    )
    .await;

    let answer = answer.expect("the connection is still open, waiting for the body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_connections_whose_body_never_comes_gets_408_at_the_handshake_timeout() {
    let gw = gateway(&["--handshake-timeout-secs", "1"]).await;
    let signed = "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/execute-api/aws4_request";

    let answer = request_whose_body_never_comes(
        &gw,
        &format!("POST /local/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\n{signed}"),
        WAIT,
    )
    .await;

    let answer = answer.expect("the connection is still open, waiting for the body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// A connection that has sent half a request head, and waits.
async fn stalled(gw: &local_gateway::RunningGateway) -> TcpStream {
    let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
    tcp.write_all(b"GET /inspector HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    tcp
}

/// Whether the gateway closed `tcp` (or answered it 503) within a second.
async fn refused_at_once(tcp: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    match tokio::time::timeout(Duration::from_secs(1), tcp.read_to_end(&mut seen)).await {
        Err(_still_open) => false,
        Ok(Err(_reset)) => true,
        Ok(Ok(_)) => seen.is_empty() || seen.starts_with(b"HTTP/1.1 503"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_connections_past_their_cap_are_refused_at_once_while_websockets_stay_served() {
    let gw = gateway(&[
        "--max-http-connections",
        "4",
        "--handshake-timeout-secs",
        "30",
    ])
    .await;
    // WebSockets leave the HTTP count once upgraded.
    let mut sockets = Vec::new();
    for _ in 0..6 {
        sockets.push(client(&gw).await);
    }
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stalled(&gw).await);
    }

    let mut one_more = stalled(&gw).await;

    assert!(
        refused_at_once(&mut one_more).await,
        "a fifth plain HTTP connection was let in"
    );
    for (i, socket) in sockets.iter_mut().enumerate() {
        ping_round_trip(socket, &format!("open-{i}")).await;
    }
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut next = stalled(&gw).await;
        if !refused_at_once(&mut next).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection never freed its place"
        );
    }
}
