//! Each client action end to end: real sockets through the local gateway, written with the typed
//! client. A new action gets its test here.

use std::time::Instant;

use clap::Parser;
use local_gateway::RunningGateway;
use serde_json::{Value, json};
use tests::client::TestClient;
use tests::ws::gateway;
use tests::{dynamodb_endpoint, unique_table};

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
    // The ack is posted after the typing frames: one for alice would already have arrived.
    assert!(
        alice.pending_frames().iter().all(|f| f["type"] != "typing"),
        "the typist hears nothing: {:?}",
        alice.pending_frames()
    );
    let refused = carol.typing("lobby").await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "not_member");
    // What bob hears next is alice typing again, not carol: the refusal reached nobody.
    alice.typing("lobby").await;
    assert_eq!(bob.next_of_type("typing").await["from"], alice.id.as_str());
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
    gw.shutdown().await;
}

#[tokio::test]
async fn a_room_of_three_sees_joins_leaves_closes_and_vanished_clients() {
    let gw = gateway(&[]).await;
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;
    let mut carol = TestClient::connect(&gw).await;
    let mut dave = TestClient::connect(&gw).await;
    alice.join("lobby").await;
    bob.join("lobby").await;

    assert_eq!(
        alice.next_of_type("presence").await,
        json!({"type": "presence", "room": "lobby", "event": "joined", "connectionId": bob.id})
    );
    carol.join("lobby").await;
    for member in [&mut alice, &mut bob] {
        let joined = member.next_of_type("presence").await;
        assert_eq!(
            (joined["event"].as_str(), joined["connectionId"].as_str()),
            (Some("joined"), Some(carol.id.as_str()))
        );
    }

    carol.leave("lobby").await;
    for member in [&mut alice, &mut bob] {
        let left = member.next_of_type("presence").await;
        assert_eq!(
            (left["event"].as_str(), left["connectionId"].as_str()),
            (Some("left"), Some(carol.id.as_str()))
        );
    }

    dave.join("lobby").await;
    let dave_id = dave.id.clone();
    for member in [&mut alice, &mut bob] {
        assert_eq!(
            member.next_of_type("presence").await["connectionId"],
            dave_id.as_str()
        );
    }
    dave.vanish();
    for member in [&mut alice, &mut bob] {
        let left = member.next_of_type("presence").await;
        assert_eq!(
            (left["event"].as_str(), left["connectionId"].as_str()),
            (Some("left"), Some(dave_id.as_str())),
            "a vanished client is announced as left"
        );
    }

    let bob_id = bob.id.clone();
    bob.close().await;
    let left = alice.next_of_type("presence").await;
    assert_eq!(
        (left["event"].as_str(), left["connectionId"].as_str()),
        (Some("left"), Some(bob_id.as_str()))
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_member_list_pages_through_a_room_of_500() {
    // Presence off: 500 joins would otherwise cost ~5 000 presence posts before the test begins.
    let gw = gateway(&["--presence-max-members", "0"]).await;
    let mut members = Vec::new();
    for _ in 0..500 {
        let mut client = TestClient::connect(&gw).await;
        client.join("crowd").await;
        members.push(client);
    }
    let mut expected: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    expected.sort();
    let reader = &mut members[0];

    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    for _ in 0..50 {
        let page = reader.members("crowd", cursor.as_deref()).await;
        assert_eq!(page["type"], "members", "{page}");
        let entries = page["members"].as_array().cloned().unwrap_or_default();
        assert_eq!(page["count"], entries.len());
        listed.extend(
            entries
                .iter()
                .filter_map(|m| m["connectionId"].as_str().map(str::to_string)),
        );
        pages += 1;
        match page["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }

    assert_eq!(listed, expected, "every member once, in id order");
    assert!(pages >= 5, "100 members a frame at most: {pages} pages");
    let mut outsider = TestClient::connect(&gw).await;
    assert_eq!(outsider.members("crowd", None).await["code"], "not_member");
    gw.shutdown().await;
}

const SECRET: &str = "local-test-secret-at-least-32-bytes-long";

fn token(subject: &str, rooms: Option<&str>) -> String {
    let mut flags = vec![
        "local-gateway",
        "--jwt-secret",
        SECRET,
        "--mint-token",
        subject,
    ];
    if let Some(rooms) = rooms {
        flags.extend(["--mint-rooms", rooms]);
    }
    local_gateway::Options::try_parse_from(flags)
        .unwrap()
        .minted_token(subject)
        .unwrap()
}

#[tokio::test]
async fn private_rooms_need_a_grant_and_an_inbox_is_its_owners_alone() {
    let gw = gateway(&["--jwt-secret", SECRET]).await;
    let mut alice = TestClient::connect_with_token(&gw, &token("alice", Some("team-42:*"))).await;
    let mut bob = TestClient::connect_with_token(&gw, &token("bob", None)).await;

    let refused = bob.try_join("team-42:general").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    assert_eq!(alice.try_join("team-42:general").await["type"], "ack");

    assert_eq!(alice.try_join("user:alice").await["type"], "ack");
    assert_eq!(bob.try_join("user:alice").await["code"], "forbidden");
    assert_eq!(bob.try_join("user:bob").await["type"], "ack");
    assert_eq!(
        bob.try_join("lobby").await["type"],
        "ack",
        "rooms without ':' are open"
    );
    gw.shutdown().await;
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
    let mut delivered = bob.messages_so_far().await;
    delivered.sort_by_key(|data| data.as_u64());
    assert_eq!(delivered, sent_through, "only acked messages reach bob");
    gw.shutdown().await;
}

#[tokio::test]
async fn with_echo_to_sender_off_a_sender_does_not_receive_its_own_broadcast() {
    let gw = gateway(&["--echo-to-sender", "false"]).await;
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;

    let ack = alice
        .request(json!({"action": "sendmessage", "data": "to everyone"}))
        .await;

    assert_eq!(ack["delivered"], 1, "bob only: {ack}");
    assert_eq!(bob.next_of_type("message").await["data"], "to everyone");
    assert_eq!(
        alice.messages_so_far().await,
        Vec::<Value>::new(),
        "alice heard herself"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_principals_rate_limit_holds_across_its_connections_and_a_reconnect() {
    let gw = gateway(&[
        "--jwt-secret",
        SECRET,
        "--rate-limit-principal-per-second",
        "1",
        "--rate-limit-principal-burst",
        "3",
    ])
    .await;
    let mut first = TestClient::connect_with_token(&gw, &token("alice", None)).await;
    let mut second = TestClient::connect_with_token(&gw, &token("alice", None)).await;
    let mut bob = TestClient::connect_with_token(&gw, &token("bob", None)).await;

    let broadcast = json!({"action": "sendmessage", "data": "hi"});
    assert_eq!(first.request(broadcast.clone()).await["type"], "ack");
    assert_eq!(second.request(broadcast.clone()).await["type"], "ack");
    first.close().await;
    let mut again = TestClient::connect_with_token(&gw, &token("alice", None)).await;
    assert_eq!(again.request(broadcast.clone()).await["type"], "ack");
    let refused = again.request(broadcast.clone()).await;

    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert!(
        refused["retryAfterMs"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 1_000)
    );
    assert_eq!(
        second.request(broadcast.clone()).await["code"],
        "rate_limited"
    );
    assert_eq!(
        bob.request(broadcast).await["type"],
        "ack",
        "bob has a bucket of his own"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn pings_past_the_unmetered_limit_get_one_refusal_then_no_answer_and_spend_no_posts() {
    let gw = gateway(&[
        "--rate-limit-unmetered-per-second",
        "1",
        "--rate-limit-unmetered-burst",
        "2",
    ])
    .await;
    let mut flooder = TestClient::connect(&gw).await; // its whoami spent one

    let pong = flooder.request(json!({"action": "ping"})).await;
    let refused = flooder.request(json!({"action": "ping"})).await;
    for _ in 0..20 {
        flooder.send(json!({"action": "ping"})).await;
    }

    assert_eq!(pong["type"], "pong");
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let frames = flooder.drain().await;
    assert_eq!(
        frames,
        Vec::<Value>::new(),
        "the flood got no answer at all"
    );
    gw.shutdown().await;
}

/// Bob reads back what was published while he was away, in both of the ways the protocol offers:
/// a rejoin with the last `seq` he saw, and history pages.
async fn a_member_who_was_away_catches_up_by_since_and_by_history(gw: RunningGateway) {
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;
    alice.join("news").await;
    bob.join("news").await;
    alice.publish("news", json!("before")).await;
    let last_seen = bob.next_of_type("message").await["seq"].as_u64().unwrap();
    bob.close().await;
    for n in 0..3 {
        alice.publish("news", json!(n)).await;
    }

    let mut bob = TestClient::connect(&gw).await;
    let ack = bob
        .request(json!({"action": "join", "room": "news", "since": last_seen}))
        .await;
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(bob.next_of_type("message").await);
    }
    missed.sort_by_key(|m| m["seq"].as_u64());
    let history = bob
        .request(json!({"action": "history", "room": "news", "after": last_seen - 1}))
        .await;

    assert_eq!(ack["type"], "ack", "{ack}");
    let seqs: Vec<u64> = missed.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(seqs, vec![last_seen + 1, last_seen + 2, last_seen + 3]);
    assert_eq!(
        missed.iter().map(|m| m["data"].clone()).collect::<Vec<_>>(),
        [json!(0), json!(1), json!(2)]
    );
    assert_eq!(history["type"], "history", "{history}");
    let kept: Vec<Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].clone())
        .collect();
    assert_eq!(kept, [json!("before"), json!(0), json!(1), json!(2)]);
    assert_eq!(
        history["messages"][1]["id"], missed[0]["id"],
        "the same message, the same id"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_member_who_was_away_catches_up_in_memory() {
    a_member_who_was_away_catches_up_by_since_and_by_history(gateway(&[]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_was_away_catches_up_with_the_stream_in_dynamodb() {
    let table = unique_table("streams");
    let endpoint = dynamodb_endpoint();
    let gw = gateway(&["--dynamodb-endpoint", &endpoint, "--table", &table]).await;
    a_member_who_was_away_catches_up_by_since_and_by_history(gw).await;
}

#[tokio::test]
async fn a_since_older_than_the_retention_is_a_reset_and_without_history_history_is_refused() {
    let gw = gateway(&["--history-ttl-seconds", "1"]).await;
    let mut alice = TestClient::connect(&gw).await;
    alice.join("brief").await;
    alice.publish("brief", json!("soon gone")).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    alice.publish("brief", json!("kept")).await;

    let mut bob = TestClient::connect(&gw).await;
    bob.request(json!({"action": "join", "room": "brief", "since": 0}))
        .await;
    let reset = bob.next_of_type("reset").await;

    assert_eq!(
        reset,
        json!({"type": "reset", "room": "brief", "oldestSeq": 2})
    );
    gw.shutdown().await;

    let off = gateway(&["--history-ttl-seconds", "0"]).await;
    let mut carol = TestClient::connect(&off).await;
    carol.join("quiet").await;
    let refused = carol
        .request(json!({"action": "history", "room": "quiet"}))
        .await;
    carol
        .request(json!({"action": "join", "room": "quiet", "since": 0}))
        .await;

    assert_eq!(refused["code"], "history_off", "{refused}");
    assert_eq!(
        carol.next_of_type("reset").await,
        json!({"type": "reset", "room": "quiet"})
    );
    off.shutdown().await;
}
