//! Each client action end to end: real sockets through the local gateway, written with the typed
//! client. A new action gets its test here.

use std::time::{Duration, Instant};

use local_gateway::RunningGateway;
use serde_json::{Value, json};
use tests::client::TestClient;
use tests::ws::gateway;
use tests::{dynamodb_endpoint, unique_table};

/// Long enough for a frame that was going to come to have come: the gateway posts in
/// milliseconds on loopback.
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn typing_reaches_the_other_members_only_and_a_non_member_is_refused() {
    let gw = gateway(&[]).await;
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;
    let mut carol = TestClient::connect(&gw).await;
    alice.join("lobby").await;
    bob.join("lobby").await;

    let ack = alice.typing("lobby").await;

    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["delivered"], 1);
    assert_eq!(
        bob.next_of_type("typing").await,
        json!({"type": "typing", "from": alice.id, "room": "lobby"})
    );
    let to_alice = alice.frames_within(QUIET).await;
    assert!(
        to_alice.iter().all(|f| f["type"] != "typing"),
        "the typist hears nothing: {to_alice:?}"
    );
    let refused = carol.typing("lobby").await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "not_member");
    let to_bob = bob.frames_within(QUIET).await;
    assert!(
        to_bob.is_empty(),
        "a refused typing reaches nobody: {to_bob:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_member_publishes_to_the_room_and_every_member_reads_it() {
    let gw = gateway(&[]).await;
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;
    alice.join("lobby").await;
    bob.join("lobby").await;

    let ack = alice.publish("lobby", json!({"text": "hi"})).await;

    assert_eq!(
        ack["delivered"], 2,
        "echo to sender is on by default: {ack}"
    );
    let message = bob.next_of_type("message").await;
    assert_eq!(message["from"], alice.id.as_str());
    assert_eq!(message["room"], "lobby");
    assert_eq!(message["data"], json!({"text": "hi"}));
}

#[tokio::test]
async fn a_burst_of_100_at_10_a_second_with_burst_20_lets_about_20_through_and_delivers_only_those()
{
    let gw = gateway(RATE_LIMIT_10_A_SECOND_BURST_20).await;
    a_burst_of_100_lets_about_20_through_and_delivers_only_those(gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_burst_is_limited_the_same_way_with_the_bucket_in_dynamodb() {
    let table = unique_table("rate-limit");
    let endpoint = dynamodb_endpoint();
    let store = ["--dynamodb-endpoint", &endpoint, "--table", &table];
    let gw = gateway(&[RATE_LIMIT_10_A_SECOND_BURST_20, &store].concat()).await;
    a_burst_of_100_lets_about_20_through_and_delivers_only_those(gw).await;
}

const RATE_LIMIT_10_A_SECOND_BURST_20: &[&str] =
    &["--rate-limit-per-second", "10", "--rate-limit-burst", "20"];

/// Alice sends 100 `sendmessage`s at once; bob, connected too, hears only the acknowledged ones.
async fn a_burst_of_100_lets_about_20_through_and_delivers_only_those(gw: RunningGateway) {
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;

    let started = Instant::now();
    let answers = alice.send_messages_in_a_burst(100).await;
    // Tokens refill at 10 a second while the burst is handled: at most that many more get through.
    let refilled = (started.elapsed().as_millis() as usize).div_ceil(100);

    let (acked, refused): (Vec<&Value>, Vec<&Value>) =
        answers.iter().partition(|a| a["type"] == "ack");
    assert!(
        (20..=20 + refilled).contains(&acked.len()),
        "{} acked, {refilled} tokens refilled",
        acked.len()
    );
    for refusal in &refused {
        assert_eq!(refusal["code"], "rate_limited", "{refusal}");
        let wait = refusal["retryAfterMs"].as_u64().unwrap_or(0);
        assert!((1..=100).contains(&wait), "{refusal}");
    }
    let sent_through: Vec<Value> = (0..100)
        .filter(|n| answers[*n]["type"] == "ack")
        .map(|n| json!(n))
        .collect();
    let mut delivered = bob.messages_within(QUIET).await;
    delivered.sort_by_key(|data| data.as_u64());
    assert_eq!(delivered, sent_through, "only acked messages reach bob");
    gw.shutdown().await;
}
