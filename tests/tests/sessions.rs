//! Sessions under the operator's control, end to end through the local gateway with real
//! sockets: disconnect, ban, token expiry and `reauth`, lifecycle events on a webhook.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use local_gateway::RunningGateway;
use serde_json::{Value, json};
use tests::client::TestClient;
use tests::gateway_probes::raw_http;
use tests::publish::post_publish;
use tests::ws::{gateway, handshake_status};

const JSON: &str = "Content-Type: application/json";
const SECRET: &str = "local-test-secret-at-least-32-bytes-long";

/// A token for `subject` that the gateway started with `SECRET` accepts, valid for `ttl_secs`.
fn token_for(subject: &str, ttl_secs: u64) -> String {
    let ttl = ttl_secs.to_string();
    local_gateway::Options::try_parse_from([
        "local-gateway",
        "--jwt-secret",
        SECRET,
        "--mint-token",
        subject,
        "--mint-ttl-secs",
        &ttl,
    ])
    .unwrap()
    .minted_token(subject)
    .unwrap()
}

/// A gateway with auth on and no leeway on expiry, so that a short token expires on time.
async fn gateway_with_auth(extra: &[&str]) -> RunningGateway {
    let mut flags = vec!["--jwt-secret", SECRET, "--jwt-leeway-seconds", "0"];
    flags.extend_from_slice(extra);
    gateway(&flags).await
}

/// Puts a control message on the gateway's backend queue, as `wsctl --local` does.
async fn control(gw: &RunningGateway, message: Value) {
    let (status, answer) = post_publish(gw, &[JSON], &message.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({ "queued": message }),
        "the answer names what was queued"
    );
}

/// The `closing` frame a socket gets, then the end of the socket (a close frame or EOF).
async fn closed_with(client: &mut TestClient) -> Value {
    let closing = client.next_of_type("closing").await;
    assert!(
        client.ended_within(Duration::from_secs(10)).await,
        "the socket stayed open after {closing}"
    );
    closing
}

#[tokio::test]
async fn disconnecting_a_principal_closes_exactly_its_sockets_each_told_why_first() {
    let gw = gateway_with_auth(&[]).await;
    let mut alice_phone = TestClient::connect_with_token(&gw, &token_for("alice", 600)).await;
    let mut alice_laptop = TestClient::connect_with_token(&gw, &token_for("alice", 600)).await;
    let mut bob = TestClient::connect_with_token(&gw, &token_for("bob", 600)).await;
    for client in [&mut alice_phone, &mut alice_laptop, &mut bob] {
        client.join("lobby").await;
    }
    bob.drain().await;

    control(
        &gw,
        json!({"disconnect": {"principal": "alice", "reason": "logged out"}}),
    )
    .await;

    for alice in [&mut alice_phone, &mut alice_laptop] {
        assert_eq!(
            closed_with(alice).await,
            json!({"type": "closing", "code": "kicked", "reason": "logged out"})
        );
    }
    let mut left = Vec::new();
    for _ in 0..2 {
        let presence = bob.next_of_type("presence").await;
        assert_eq!(presence["event"], "left", "{presence}");
        left.push(
            presence["connectionId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    left.sort();
    let mut alices = vec![alice_phone.id.clone(), alice_laptop.id.clone()];
    alices.sort();
    assert_eq!(left, alices, "bob hears each of alice's sockets leave");
    assert_eq!(
        bob.request(json!({"action": "ping"})).await["type"],
        "pong",
        "bob stays"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_banned_principal_is_closed_then_refused_at_the_handshake_until_the_ban_ends() {
    let gw = gateway_with_auth(&[]).await;
    let mut alice = TestClient::connect_with_token(&gw, &token_for("alice", 600)).await;

    control(
        &gw,
        json!({"ban": {"principal": "alice", "seconds": 3, "reason": "spam"}}),
    )
    .await;

    assert_eq!(
        closed_with(&mut alice).await,
        json!({"type": "closing", "code": "banned", "reason": "spam"})
    );
    let url = format!("{}?token={}", gw.ws_url(), token_for("alice", 600));
    assert_eq!(handshake_status(&url).await, 403, "banned: refused");
    let bob = format!("{}?token={}", gw.ws_url(), token_for("bob", 600));
    assert_eq!(handshake_status(&bob).await, 101, "only alice is banned");

    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(handshake_status(&url).await, 101, "the ban has ended");

    // Banned again, for long; lifted once the ban is in force (the queue does not order the two).
    control(&gw, json!({"ban": {"principal": "alice", "seconds": 600}})).await;
    let mut refused = false;
    for _ in 0..50 {
        if handshake_status(&url).await == 403 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the second ban took effect");
    control(&gw, json!({"unban": {"principal": "alice"}})).await;
    let mut admitted = 0;
    for _ in 0..50 {
        if handshake_status(&url).await == 101 {
            admitted += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(admitted, 1, "unban lets alice in again");
    gw.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_gets_token_expired_and_a_close_unless_reauth_came_first() {
    let gw = gateway_with_auth(&[]).await;
    // `exp` is whole seconds from a truncated `iat`: a 4-second token lives 3 to 4 seconds.
    let mut alice = TestClient::connect_with_token(&gw, &token_for("alice", 4)).await;
    let mut bob = TestClient::connect_with_token(&gw, &token_for("bob", 4)).await;
    let identity = alice.request(json!({"action": "whoami"})).await;
    assert!(identity["expiresAt"].as_u64().is_some(), "{identity}");

    let renewed = bob
        .request(json!({"action": "reauth", "token": token_for("bob", 600)}))
        .await;
    assert_eq!(renewed["type"], "ack", "{renewed}");
    tokio::time::sleep(Duration::from_millis(4_100)).await;

    // Even a ping: a client that only pinged would otherwise keep receiving for two hours.
    let refused = alice.request(json!({"action": "ping"})).await;
    assert_eq!(refused["code"], "token_expired", "{refused}");
    assert_eq!(
        closed_with(&mut alice).await,
        json!({"type": "closing", "code": "token_expired"})
    );
    let whoami = bob.request(json!({"action": "whoami"})).await;
    assert_eq!(whoami["type"], "identity", "bob renewed in time: {whoami}");
    assert!(
        whoami["expiresAt"].as_u64() > identity["expiresAt"].as_u64(),
        "bob's session runs to the new token's expiry: {whoami}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_reauth_with_another_principals_token_is_refused_and_changes_nothing() {
    let gw = gateway_with_auth(&[]).await;
    let mut alice = TestClient::connect_with_token(&gw, &token_for("alice", 600)).await;

    let refused = alice
        .request(json!({"action": "reauth", "token": token_for("mallory", 600)}))
        .await;
    assert_eq!(refused["code"], "reauth_refused", "{refused}");
    let forged = alice
        .request(json!({"action": "reauth", "token": "not.a.token"}))
        .await;
    assert_eq!(forged["code"], "reauth_refused", "{forged}");
    let identity = alice.request(json!({"action": "whoami"})).await;
    assert_eq!(identity["principal"], "alice");
    gw.shutdown().await;
}

/// A webhook on a free loopback port that keeps what it receives.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                if let Ok(event) = serde_json::from_str::<Value>(&body) {
                    kept.lock().unwrap().push(event);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, received, server)
}

#[tokio::test]
async fn the_webhook_and_the_inspector_receive_connected_joined_left_and_disconnected() {
    let (url, received, server) = webhook().await;
    let gw = gateway_with_auth(&["--events-webhook", &url]).await;
    let mut alice = TestClient::connect_with_token(&gw, &token_for("alice", 600)).await;
    alice.join("lobby").await;
    alice.leave("lobby").await;
    let id = alice.id.clone();
    alice.close().await;

    let kinds = ["connected", "joined", "left", "disconnected"];
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = received.lock().unwrap().clone();
        if seen.len() >= kinds.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got: Vec<_> = seen.iter().map(|e| e["detail-type"].clone()).collect();
    assert_eq!(got, kinds.map(Value::from).to_vec(), "{seen:?}");
    for event in &seen {
        assert_eq!(event["source"], "ws-chat.local");
        assert_eq!(event["detail"]["version"], 1);
        assert_eq!(event["detail"]["connectionId"], id.as_str());
        assert_eq!(event["detail"]["principal"], "alice");
    }
    assert_eq!(seen[1]["detail"]["room"], "lobby");
    assert_eq!(seen[3]["detail"]["reason"], "client");

    let (status, body) = raw_http(
        gw.addr(),
        "GET /inspector/lifecycle HTTP/1.1\r\nHost: 127.0.0.1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(4),
        "the inspector lists them too: {listed}"
    );
    gw.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn a_control_message_that_names_no_one_is_refused_at_publish() {
    let gw = gateway(&[]).await;
    let (status, answer) = post_publish(
        &gw,
        &[JSON],
        &json!({"disconnect": {"principal": "a", "connection": "b"}}).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("exactly one"),
        "{answer}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_webhook_that_is_down_costs_the_client_nothing() {
    // A port nothing listens on: each event fails at once and is counted, never awaited long.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", closed.local_addr().unwrap());
    drop(closed);
    let gw = gateway(&["--events-webhook", &url]).await;
    let mut alice = TestClient::connect(&gw).await;
    let started = std::time::Instant::now();
    alice.join("lobby").await;
    assert_eq!(
        alice.publish("lobby", json!("still here")).await["type"],
        "ack"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_forget_no_item_of_the_principal_is_left_in_dynamodb() {
    let table = tests::unique_table("forget");
    let endpoint = tests::dynamodb_endpoint();
    let gw = gateway_with_auth(&["--dynamodb-endpoint", &endpoint, "--table", &table]).await;
    let mut alice = TestClient::connect_with_token(&gw, &token_for("alice", 600)).await;
    let mut bob = TestClient::connect_with_token(&gw, &token_for("bob", 600)).await;
    for client in [&mut alice, &mut bob] {
        client.join("lobby").await;
        assert_eq!(client.publish("lobby", json!("hi")).await["type"], "ack");
    }
    control(&gw, json!({"ban": {"principal": "alice", "seconds": 600}})).await;
    closed_with(&mut alice).await;
    let items_of = |who: &'static str| {
        let table = table.clone();
        async move {
            let scan = tests::dynamodb_client()
                .await
                .scan()
                .table_name(&table)
                .send()
                .await
                .unwrap();
            scan.items()
                .iter()
                .filter(|item| format!("{item:?}").contains(who))
                .count()
        }
    };
    assert!(
        items_of("alice").await > 0,
        "the ban and her message are kept"
    );

    control(
        &gw,
        json!({"forget": {"principal": "alice", "rooms": ["lobby"]}}),
    )
    .await;
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = items_of("alice").await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "no item of alice's is left");
    assert!(items_of("bob").await > 0, "bob's are untouched");
    gw.shutdown().await;
}
