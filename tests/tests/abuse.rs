//! Abuse against the local gateway: floods, huge frames, stalled handshakes, room spam, and
//! clients that vanish without a close. Other clients must stay served throughout.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tests::ws::{Client, WAIT, client, gateway, send, until};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

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
