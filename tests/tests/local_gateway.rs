//! The local gateway end to end: real sockets (tokio-tungstenite), the real handlers, the real
//! `ApiGatewayNotifier` posting to the gateway's own `@connections` API.

use std::sync::Arc;
use std::time::Duration;

use adapters::apigateway::inbound::WebSocketHandler;
use adapters::memory::InMemoryConnectionRepository;
use adapters::memory::RecordingNotifier;
use clap::Parser;
use domain::ports::MockConnectionRepository;
use domain::{RepositoryError, Settings};
use futures::SinkExt;
use local_gateway::{
    ApiName, BrowserPolicy, EventHandler, GatewayConfig, Limits, Options, RunningGateway, start,
};
use serde_json::json;
use tests::client::TestClient;
use tests::gateway_probes::{Gate, SlowDisconnect, eventually, gateway_wrapping, raw_http};
use tests::ws::{
    WAIT, client, client_with_headers, close_code, gateway, handshake_status, next_json, send,
    whoami,
};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// A local gateway on a free loopback port running `handler`, with the default limits.
async fn gateway_running(handler: Arc<dyn EventHandler>) -> RunningGateway {
    start(GatewayConfig {
        listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        notifier_listener: None,
        stage: "local".into(),
        api: ApiName::default(),
        limits: Limits::default(),
        handler,
        authorizer: None,
        sockets: Arc::default(),
        browser: BrowserPolicy::default(),
        chat_view: true,
        delivery: None,
        rooms: None,
        log: None,
        deployed: None,
        lifecycle: None,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn whoami_answers_with_an_api_gateway_style_connection_id() {
    let gw = gateway(&[]).await;
    let mut a = client(&gw).await;

    let id = whoami(&mut a).await;

    assert_eq!(id.len(), 16);
    assert!(id.ends_with('='));
}

#[tokio::test]
async fn two_clients_chat_in_a_room_and_through_broadcast_and_direct_sends() {
    let gw = gateway(&[]).await;
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;
    alice.join("lobby").await;
    bob.join("lobby").await;

    alice.publish("lobby", json!({"text": "hi"})).await;
    let got = bob.next_of_type("message").await;
    assert_eq!(
        (got["room"].as_str(), got["from"].as_str()),
        (Some("lobby"), Some(alice.id.as_str()))
    );
    assert_eq!(got["data"], json!({"text": "hi"}));
    assert_eq!(
        alice.next_of_type("message").await["from"],
        alice.id.as_str(),
        "the sender's echo"
    );

    bob.request(json!({"action": "sendmessage", "data": "to all"}))
        .await;
    assert_eq!(alice.next_of_type("message").await["data"], "to all");
    assert_eq!(bob.next_of_type("message").await["data"], "to all");

    let ack = bob
        .request(json!({"action": "send", "to": alice.id, "data": 42}))
        .await;
    let direct = alice.next_of_type("message").await;
    assert_eq!(
        (direct["from"].as_str(), direct["data"].clone()),
        (Some(bob.id.as_str()), json!(42))
    );
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["delivered"].as_u64(),
            ack["gone"].as_u64()
        ),
        (Some("ack"), Some(1), Some(0))
    );
}

#[tokio::test]
async fn ping_gets_pong_and_bad_json_gets_an_error_frame() {
    let gw = gateway(&[]).await;
    let mut a = client(&gw).await;

    send(&mut a, json!({"action": "ping", "requestId": "p1"})).await;
    assert_eq!(
        next_json(&mut a).await,
        json!({"type":"pong","requestId":"p1"})
    );

    a.send(Message::Text("{oops".into())).await.unwrap();
    let error = next_json(&mut a).await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("bad_json"))
    );
}

#[tokio::test]
async fn an_oversize_message_closes_the_socket_with_1009() {
    let gw = gateway(&["--max-message-bytes", "1024"]).await;
    let mut a = client(&gw).await;

    a.send(Message::Text("x".repeat(2048).into()))
        .await
        .unwrap();

    assert_eq!(close_code(&mut a, WAIT).await, 1009);
}

#[tokio::test]
async fn an_idle_socket_is_closed_with_1001_after_the_idle_timeout() {
    let gw = gateway(&["--idle-timeout-secs", "1"]).await;
    let mut a = client(&gw).await;

    assert_eq!(close_code(&mut a, Duration::from_secs(5)).await, 1001);
}

#[tokio::test]
async fn closing_a_socket_runs_disconnect_and_removes_its_memberships() {
    let gw = gateway(&[]).await;
    let alice = {
        let mut alice = TestClient::connect(&gw).await;
        alice.join("r").await;
        alice
    };
    let mut bob = TestClient::connect(&gw).await;
    bob.join("r").await;
    let alice_id = alice.id.clone();

    alice.close().await;

    // $disconnect ran: it told the room, after removing the membership.
    let left = bob
        .first(|f| f["type"] == "presence" && f["event"] == "left")
        .await;
    assert_eq!(left["connectionId"], alice_id.as_str());
    let ack = bob.publish("r", json!(1)).await;
    assert_eq!(
        (ack["delivered"].as_u64(), ack["gone"].as_u64()),
        (Some(1), Some(0)),
        "only bob is left in the room: {ack}"
    );
}

#[tokio::test]
async fn a_failing_connect_handler_refuses_the_handshake() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_save()
        .returning(|_| Err(RepositoryError::Unavailable("down".into())));
    let handler = WebSocketHandler::new(adapters::wiring::service(
        repo,
        RecordingNotifier::new(),
        Settings::default(),
    ));
    let gw = gateway_running(Arc::new(handler)).await;

    let refused = connect_async(gw.ws_url()).await;

    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 500)
        }
        other => panic!(
            "expected the handshake to be refused, got {:?}",
            other.map(|_| ())
        ),
    }
}

/// The moderation hook docs/forking.md walks through ("A moderation hook"): a word refused, every
/// message trimmed and signed with the name `on_connect` kept for the connection, nobody in
/// without a name.
struct Moderation;

#[async_trait::async_trait]
impl domain::Hooks for Moderation {
    async fn on_connect(
        &self,
        connect: &domain::ConnectRequest,
    ) -> Result<domain::Admission, domain::Rejection> {
        let name = connect.query.get("name").cloned();
        match name {
            Some(name) => Ok(domain::Admission {
                metadata: Some(name),
            }),
            None => Err(domain::Rejection::new("connect with ?name=")),
        }
    }

    async fn on_publish(
        &self,
        publication: &mut domain::Publication<'_>,
    ) -> Result<(), domain::Rejection> {
        let text: String = serde_json::from_str(publication.data.get())
            .map_err(|_| domain::Rejection::new("send text"))?;
        if text.to_lowercase().contains("darn") {
            return Err(domain::Rejection::new("please keep it civil"));
        }
        let name = publication
            .sender_metadata()
            .await
            .map_err(|e| domain::Rejection::new(e.to_string()))?
            .unwrap_or_default();
        let signed = json!({"text": text.trim(), "by": name}).to_string();
        publication.data = serde_json::value::RawValue::from_string(signed)
            .map_err(|e| domain::Rejection::new(e.to_string()))?;
        Ok(())
    }
}

/// A local gateway whose handler runs `hooks`, replying in process.
async fn gateway_with_hooks(hooks: Arc<dyn domain::Hooks>) -> RunningGateway {
    let sockets = Arc::new(local_gateway::Sockets::default());
    let notifier = local_gateway::InProcessNotifier {
        sockets: sockets.clone(),
        max_message_bytes: Limits::default().max_message_bytes,
    };
    let service = adapters::wiring::service(
        InMemoryConnectionRepository::default(),
        notifier,
        Settings::default(),
    )
    .with_hooks(hooks);
    start(GatewayConfig {
        listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        notifier_listener: None,
        stage: "local".into(),
        api: ApiName::default(),
        limits: Limits::default(),
        handler: Arc::new(WebSocketHandler::new(service)),
        authorizer: None,
        sockets,
        browser: BrowserPolicy::default(),
        chat_view: true,
        delivery: None,
        rooms: None,
        log: None,
        deployed: None,
        lifecycle: None,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_moderation_hook_refuses_a_word_and_rewrites_what_the_room_gets() {
    let gw = gateway_with_hooks(Arc::new(Moderation)).await;
    let url = |name: &str| format!("{}?name={name}", gw.ws_url());
    let (ada, _) = connect_async(url("Ada")).await.unwrap();
    let (bob, _) = connect_async(url("Bob")).await.unwrap();
    let mut ada = TestClient::from_socket(ada).await;
    let mut bob = TestClient::from_socket(bob).await;
    ada.join("lobby").await;
    bob.join("lobby").await;

    let refused = ada.publish("lobby", json!("well, DARN it")).await;
    let ack = ada.publish("lobby", json!("  hello  ")).await;

    assert_eq!(refused["code"], "rejected", "{refused}");
    assert_eq!(refused["message"], "please keep it civil");
    assert_eq!(ack["type"], "ack", "{ack}");
    let heard = bob.next_of_type("message").await;
    assert_eq!(heard["data"], json!({"text": "hello", "by": "Ada"}));
    assert_eq!(
        handshake_status(&gw.ws_url()).await,
        403,
        "no name, no entry"
    );
}

#[tokio::test]
async fn the_rust_sdk_posts_reads_and_deletes_connections_and_gets_410_for_unknown_ids() {
    let gw = gateway(&[]).await;
    let mut a = client(&gw).await;
    let id = whoami(&mut a).await;
    let management = tests::management_client(&gw.management_url()).await;

    management
        .post_to_connection()
        .connection_id(&id)
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
            r#"{"hello":1}"#,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(next_json(&mut a).await, json!({"hello": 1}));

    let info = management
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();
    assert!(info.connected_at().is_some());
    assert!(info.last_active_at().is_some());
    assert_eq!(
        info.identity().and_then(|i| i.source_ip()),
        Some("127.0.0.1")
    );

    let unknown = management
        .post_to_connection()
        .connection_id("AAAAAAAAAAAAAAA=")
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert!(unknown.into_service_error().is_gone_exception());

    management
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(close_code(&mut a, WAIT).await, 1000);
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let gw = gateway(&[]).await;
    let mut a = client(&gw).await;
    whoami(&mut a).await;

    let closing = tokio::spawn(async move { close_code(&mut a, WAIT).await });
    gw.shutdown().await;

    assert_eq!(closing.await.unwrap(), 1001);
}

const SECRET: &str = "local-test-secret-at-least-32-bytes-long";

fn minted(subject: &str) -> String {
    Options::try_parse_from(["local-gateway", "--jwt-secret", SECRET])
        .unwrap()
        .minted_token(subject)
        .unwrap()
}

#[tokio::test]
async fn with_auth_on_a_client_without_a_valid_token_cannot_open_a_socket() {
    let gw = gateway(&["--jwt-secret", SECRET]).await;
    let wrong_secret = Options::try_parse_from([
        "lg",
        "--jwt-secret",
        "another-secret-that-is-32-bytes-long!!",
    ])
    .unwrap()
    .minted_token("mallory")
    .unwrap();

    assert_eq!(handshake_status(&gw.ws_url()).await, 401, "no token");
    assert_eq!(
        handshake_status(&format!("{}?token=", gw.ws_url())).await,
        401,
        "empty token"
    );
    assert_eq!(
        handshake_status(&format!("{}?token=garbage", gw.ws_url())).await,
        403,
        "malformed"
    );
    assert_eq!(
        handshake_status(&format!("{}?token={wrong_secret}", gw.ws_url())).await,
        403,
        "bad signature"
    );
    assert_eq!(gw.open_sockets(), 0);
}

#[tokio::test]
async fn with_auth_on_the_principal_reaches_whoami_and_every_message_frame() {
    let gw = gateway(&["--jwt-secret", SECRET]).await;
    let (mut alice, _) = connect_async(format!("{}?token={}", gw.ws_url(), minted("alice")))
        .await
        .unwrap();
    let (mut bob, _) = connect_async(format!("{}?token={}", gw.ws_url(), minted("bob")))
        .await
        .unwrap();

    send(&mut alice, json!({"action": "whoami"})).await;
    assert_eq!(next_json(&mut alice).await["principal"], "alice");

    send(
        &mut alice,
        json!({"action": "sendmessage", "data": "hi", "principal": "admin"}),
    )
    .await;
    let got = next_json(&mut bob).await;
    assert_eq!(
        (got["type"].as_str(), got["principal"].as_str()),
        (Some("message"), Some("alice"))
    );
}

#[tokio::test]
async fn the_in_process_notifier_delivers_the_same_frames_without_the_http_hop() {
    let gw = gateway(&["--notifier", "in-process"]).await;
    let mut a = client(&gw).await;
    let mut b = client(&gw).await;
    let a_id = whoami(&mut a).await;
    whoami(&mut b).await;

    send(
        &mut b,
        json!({"action": "send", "to": a_id, "data": "direct", "requestId": "d"}),
    )
    .await;

    assert_eq!(next_json(&mut a).await["data"], "direct");
    assert_eq!(
        next_json(&mut b).await,
        json!({"type":"ack","requestId":"d","delivered":1,"gone":0,"failed":0,"queued":false, "requeued": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_disconnect_do_not_wait_behind_messages_that_fill_the_invocation_pool() {
    let (gw, gate) = gateway_wrapping(&["--max-concurrent-invocations", "1"], Gate::wrap).await;
    let mut flooder = client(&gw).await;
    send(&mut flooder, json!({"action": "ping"})).await;
    eventually(|| (gate.waiting() == 1).then_some(()))
        .await
        .expect("the message holds the only $default invocation");

    let newcomer = client(&gw).await;
    drop(newcomer);

    let disconnected = eventually(|| (gate.finished("$disconnect") == 1).then_some(())).await;
    assert!(disconnected.is_some(), "$disconnect waited behind $default");
    gate.open();
}

// Browser safety: other web pages must not reach a gateway on the developer's laptop.

#[tokio::test]
async fn a_web_page_from_another_origin_cannot_open_a_websocket() {
    let gw = gateway(&[]).await;

    let refused = client_with_headers(&gw.ws_url(), &[("Origin", "http://evil.example")]).await;

    assert_eq!(refused.err(), Some(403));
    assert_eq!(gw.open_sockets(), 0);
}

#[tokio::test]
async fn the_gateway_s_own_chat_page_may_open_a_websocket() {
    let gw = gateway(&[]).await;
    let own_origin = format!("http://{}", gw.addr());

    let mut page = client_with_headers(&gw.ws_url(), &[("Origin", &own_origin)])
        .await
        .expect("the chat page's own origin is allowed");

    whoami(&mut page).await;
}

#[tokio::test]
async fn an_allowed_origin_flag_lets_that_origin_in_and_no_other() {
    let gw = gateway(&["--allowed-origin", "http://localhost:5173"]).await;

    let allowed = client_with_headers(&gw.ws_url(), &[("Origin", "http://localhost:5173")]).await;
    let other = client_with_headers(&gw.ws_url(), &[("Origin", "http://localhost:5174")]).await;

    assert!(allowed.is_ok());
    assert_eq!(other.err(), Some(403));
}

#[tokio::test]
async fn management_calls_that_are_unsigned_or_come_from_a_browser_get_403() {
    let gw = gateway(&[]).await;
    let host = format!("Host: {}", gw.addr());
    let path = "POST /local/@connections/AAAAAAAAAAAAAAA= HTTP/1.1";
    let signed = "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/execute-api/aws4_request";

    let unsigned = raw_http(gw.addr(), &format!("{path}\r\n{host}")).await;
    let from_a_page = raw_http(
        gw.addr(),
        &format!("{path}\r\n{host}\r\n{signed}\r\nOrigin: http://evil.example"),
    )
    .await;
    let from_an_sdk = raw_http(gw.addr(), &format!("{path}\r\n{host}\r\n{signed}")).await;

    assert_eq!(unsigned.0, 403);
    assert!(unsigned.1.contains("Missing Authentication Token"));
    assert_eq!(from_a_page.0, 403);
    assert_eq!(from_an_sdk.0, 410, "a signed call reaches the API");
}

#[tokio::test]
async fn a_request_for_a_non_loopback_host_name_is_refused_on_a_loopback_address() {
    let gw = gateway(&[]).await;
    let port = gw.addr().port();

    let rebound = raw_http(
        gw.addr(),
        &format!("GET / HTTP/1.1\r\nHost: attacker.example:{port}"),
    )
    .await;
    let local = raw_http(
        gw.addr(),
        &format!("GET / HTTP/1.1\r\nHost: localhost:{port}"),
    )
    .await;

    assert_eq!(rebound.0, 403);
    assert_eq!(local.0, 200);
}

#[tokio::test]
async fn the_chat_page_connects_to_the_stage_the_gateway_serves() {
    let gw = gateway(&["--stage", "dev"]).await;

    let (status, page) =
        raw_http(gw.addr(), &format!("GET / HTTP/1.1\r\nHost: {}", gw.addr())).await;

    assert_eq!(status, 200);
    assert!(page.contains(r#"<meta name="gateway-stage" content="dev">"#));
    assert!(gw.ws_url().ends_with("/dev"));
}

// Graceful shutdown.

/// The real handlers on an in-memory store the test can inspect, with a slow `$disconnect`.
async fn gateway_with_slow_disconnects() -> (RunningGateway, Arc<InMemoryConnectionRepository>) {
    let repo = Arc::new(InMemoryConnectionRepository::default());
    let handler = WebSocketHandler::new(adapters::wiring::service(
        repo.clone(),
        RecordingNotifier::new(),
        Settings::default(),
    ));
    let slow = SlowDisconnect::wrap(Arc::new(handler), Duration::from_millis(300));
    (gateway_running(slow).await, repo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_only_after_every_disconnect_so_no_connection_rows_remain() {
    let (gw, repo) = gateway_with_slow_disconnects().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(client(&gw).await);
    }
    assert_eq!(repo.stored_rows().0, 3);

    gw.shutdown().await;

    assert_eq!(repo.stored_rows(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_websocket_is_accepted_once_shutdown_has_begun() {
    let (gw, _repo) = gateway_with_slow_disconnects().await;
    let url = gw.ws_url();
    let mut open = client(&gw).await;

    let shutting_down = tokio::spawn(gw.shutdown());
    assert_eq!(close_code(&mut open, WAIT).await, 1001);
    let latecomer = client_with_headers(&url, &[]).await;

    assert_eq!(latecomer.err(), Some(503));
    shutting_down.await.unwrap();
}
