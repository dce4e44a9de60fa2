//! `local-gateway --deployment`: the gateway in front of the real Lambda binaries, as API Gateway
//! and Lambda run them. The authorizer function behind its identity source, route selection,
//! each route's own function, the event source mappings with partial batch responses and redrive.
//! `scripts/rehearse` runs the same mode from the packaged template; these tests hold the mode
//! itself to API Gateway's and Lambda's rules.

use serde_json::json;
use tests::client::TestClient;
use tests::deployed::{DeployedStack, MAX_RECEIVES, Variant, free_port};
use tests::sqs::{receive_bodies, sqs_client};
use tests::ws::handshake_status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_connects_through_the_authorizer_function_and_the_room_hears_through_the_default_function()
 {
    let stack = DeployedStack::deploy(Variant::default()).await;
    let gw = &stack.gateway;

    let mut alice = TestClient::connect_with_token(gw, &DeployedStack::token("alice")).await;
    let mut bob = TestClient::connect_with_token(gw, &DeployedStack::token("bob")).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice
        .send(json!({"action": "sendmessage", "room": "lobby", "data": "hi"}))
        .await;

    let heard = bob.next_of_type("message").await;
    assert_eq!(heard["data"], "hi");
    assert_eq!(heard["from"], alice.id);
    assert_eq!(stack.invocations("authorizer").0, 2);
    assert!(
        stack.invocations("default").0 >= 4,
        "whoamis, joins and the send"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_identity_source_a_handshake_gets_401_and_the_authorizer_is_never_invoked() {
    let stack = DeployedStack::deploy(Variant::default()).await;
    let url = stack.gateway.ws_url();

    assert_eq!(handshake_status(&url).await, 401);
    assert_eq!(handshake_status(&format!("{url}?token=")).await, 401);
    assert_eq!(stack.invocations("authorizer").0, 0);
    // Tokens the function refuses: an expired one with its `Unauthorized` (401), a forged one
    // with a Deny policy (403).
    let expired = DeployedStack::expired_token("alice");
    assert_eq!(
        handshake_status(&format!("{url}?token={expired}")).await,
        401
    );
    assert_eq!(
        handshake_status(&format!("{url}?token=not-a-jwt")).await,
        403
    );
    assert_eq!(stack.invocations("authorizer").0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_source_the_clients_do_not_send_refuses_every_handshake() {
    let stack = DeployedStack::deploy(Variant {
        identity_source: vec!["route.request.header.Auth".into()],
        ..Variant::default()
    })
    .await;
    let url = format!(
        "{}?token={}",
        stack.gateway.ws_url(),
        DeployedStack::token("alice")
    );

    assert_eq!(handshake_status(&url).await, 401);
    assert_eq!(stack.invocations("authorizer").0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_misspelt_default_route_a_message_is_answered_forbidden_as_api_gateway_does() {
    let mut variant = Variant::default();
    let default = variant.routes.remove("$default").unwrap();
    variant.routes.insert("$defualt".into(), default);
    let stack = DeployedStack::deploy(variant).await;
    let url = format!(
        "{}?token={}",
        stack.gateway.ws_url(),
        DeployedStack::token("alice")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    tests::ws::send(&mut socket, json!({"action": "whoami"})).await;

    let answer = tests::ws::next_json(&mut socket).await;
    assert_eq!(answer["message"], "Forbidden", "{answer}");
    assert!(answer["connectionId"].is_string());
    assert_eq!(stack.invocations("default").0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_past_inline_recipients_reaches_everyone_through_the_fanout_function() {
    let stack = DeployedStack::deploy(Variant {
        inline_recipients: 1,
        ..Variant::default()
    })
    .await;
    let gw = &stack.gateway;
    let mut members = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let mut member = TestClient::connect_with_token(gw, &DeployedStack::token(name)).await;
        member.join("big").await;
        members.push(member);
    }

    members[0]
        .send(json!({"action": "sendmessage", "room": "big", "data": "to all"}))
        .await;

    for member in &mut members[1..] {
        assert_eq!(member.next_of_type("message").await["data"], "to all");
    }
    assert!(
        stack.invocations("fanout").0 >= 1,
        "the rest went through the internal queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_job_on_the_backend_queue_reaches_the_room_through_the_mapping() {
    let stack = DeployedStack::deploy(Variant::default()).await;
    let mut alice =
        TestClient::connect_with_token(&stack.gateway, &DeployedStack::token("alice")).await;
    alice.join("news").await;
    let sqs = sqs_client().await;

    sqs.send_message()
        .queue_url(&stack.queues.backend)
        .message_body(json!({"room": "news", "data": {"headline": "rehearsed"}}).to_string())
        .send()
        .await
        .unwrap();

    let heard = alice.next_of_type("message").await;
    assert_eq!(heard["data"]["headline"], "rehearsed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_reaches_the_dead_letter_queue_after_max_receives_within_seconds()
{
    // fanout's DynamoDB is a closed port: every job for a room fails and is named in
    // batchItemFailures; made visible at once, it comes back until the redrive moves it.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let stack = DeployedStack::deploy(Variant {
        fanout_dynamodb: Some(closed),
        ..Variant::default()
    })
    .await;
    let sqs = sqs_client().await;
    let job = json!({"room": "nobody-can-list", "data": "lost?"}).to_string();

    sqs.send_message()
        .queue_url(&stack.queues.backend)
        .message_body(&job)
        .send()
        .await
        .unwrap();

    let mut dead = Vec::new();
    for _ in 0..30 {
        dead = receive_bodies(&sqs, &stack.queues.dead_letters, 1).await;
        if !dead.is_empty() {
            break;
        }
    }
    assert_eq!(dead, [job], "redriven, body intact, within 30 s");
    let (invocations, _) = stack.invocations("fanout");
    assert!(
        invocations >= u64::from(MAX_RECEIVES),
        "one invocation per receive: {invocations}"
    );
}
