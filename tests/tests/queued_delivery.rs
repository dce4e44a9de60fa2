//! Queued delivery through the local gateway, on real sockets: inline first, the rest through
//! the in-memory queue and its workers, and a backend's publish on `@publish`.

use std::collections::BTreeSet;

use local_gateway::RunningGateway;
use serde_json::{Value, json};
use tests::client::TestClient;
use tests::gateway_probes::eventually;
use tests::publish::post_publish;
use tests::rooms::{assert_no_second_copy, first_messages, room_of};
use tests::ws::gateway;

const JSON: &str = "Content-Type: application/json";

/// Waits until the workers have finished every job, so no copy of a message is still coming.
async fn queue_drained(gw: &RunningGateway) {
    let queue = gw
        .delivery()
        .and_then(|d| d.memory_queue())
        .expect("the gateway runs workers on the in-memory queue");
    eventually(|| (queue.outstanding() == 0).then_some(()))
        .await
        .expect("the delivery queue did not drain within 10 s");
    assert!(queue.dead_letters().is_empty(), "a job was dead-lettered");
}

/// Each client's first `message` frame, then proof that no other one came.
async fn exactly_one_message_each(gw: &RunningGateway, clients: &mut [TestClient]) -> Vec<Value> {
    let firsts = first_messages(clients).await;
    queue_drained(gw).await;
    assert_no_second_copy(clients).await;
    firsts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_clients_in_one_room_each_get_a_publish_once_with_one_id() {
    let gw = gateway(&[
        "--inline-recipients",
        "10",
        "--workers",
        "4",
        "--presence-max-members",
        "0",
    ])
    .await;
    let mut clients = room_of(&gw, 300).await;

    let ack = clients[0].publish("lobby", json!({"text": "hi"})).await;

    assert_eq!(
        (&ack["type"], &ack["delivered"], &ack["queued"]),
        (&json!("ack"), &json!(10), &json!(true)),
        "{ack}"
    );
    let messages = exactly_one_message_each(&gw, &mut clients).await;
    let ids: BTreeSet<&str> = messages.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one message, one id: {ids:?}");
    assert!(messages.iter().all(|m| m["from"] == clients[0].id.as_str()));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_within_the_inline_threshold_is_served_inline_and_not_queued() {
    let gw = gateway(&["--inline-recipients", "3", "--presence-max-members", "0"]).await;
    let mut clients = room_of(&gw, 3).await;

    let ack = clients[0].publish("lobby", json!(1)).await;

    assert_eq!(
        (&ack["delivered"], &ack["queued"]),
        (&json!(3), &json!(false)),
        "{ack}"
    );
    exactly_one_message_each(&gw, &mut clients).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_publish_on_the_local_route_reaches_the_room_with_its_id_and_no_sender() {
    let gw = gateway(&["--presence-max-members", "0"]).await;
    let mut clients = room_of(&gw, 3).await;

    let (status, answer) = post_publish(
        &gw,
        &[JSON],
        r#"{"room":"lobby","data":{"text":"from the backend"}}"#,
    )
    .await;

    assert_eq!(status, 202, "{answer}");
    let id = answer["id"]
        .as_str()
        .expect("the answer names the message id");
    for message in exactly_one_message_each(&gw, &mut clients).await {
        assert_eq!(message["id"], id);
        assert_eq!(message["data"], json!({"text": "from the backend"}));
        assert_eq!(message["room"], "lobby");
        assert!(
            message.get("from").is_none(),
            "a backend has no connection: {message}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_route_refuses_web_pages_non_json_and_malformed_jobs() {
    let gw = gateway(&[]).await;
    let job = r#"{"room":"lobby","data":1}"#;

    let (from_a_page, _) = post_publish(&gw, &[JSON, "Origin: http://evil.example"], job).await;
    let (as_text, _) = post_publish(&gw, &["Content-Type: text/plain"], job).await;
    let (no_target, answer) = post_publish(&gw, &[JSON], r#"{"data":1}"#).await;

    assert_eq!((from_a_page, as_text, no_target), (403, 415, 400));
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("names no target")),
        "{answer}"
    );
    assert_eq!(
        gw.delivery()
            .and_then(|d| d.memory_queue())
            .map(|q| q.outstanding()),
        Some(0),
        "nothing was queued"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_waits_for_each_ack_has_its_messages_arrive_in_order() {
    let gw = gateway(&["--presence-max-members", "0"]).await;
    let mut clients = room_of(&gw, 4).await;

    for n in 0..20 {
        let ack = clients[0].publish("lobby", json!(n)).await;
        assert_eq!(ack["queued"], false, "{ack}");
    }

    for client in clients.iter_mut().skip(1) {
        let received = client.messages_so_far().await;
        assert_eq!(
            received,
            (0..20).map(|n| json!(n)).collect::<Vec<_>>(),
            "{}",
            client.id
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_cannot_speak_as_a_user_nor_reach_a_room_it_names_no_member_of() {
    let gw = gateway(&["--presence-max-members", "0"]).await;
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;
    let mut carol = TestClient::connect(&gw).await;
    bob.join("team-secret").await;
    let spoofs = [
        json!({"room": "team-secret", "data": "it is me", "from": alice.id, "principal": "alice@corp.example"}),
        json!({"room": "team-secret", "data": "for carol", "recipients": [carol.id]}),
    ];

    for spoof in &spoofs {
        let (status, answer) = post_publish(&gw, &[JSON], &spoof.to_string()).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains("the service's own"),
            "{answer}"
        );
    }
    // The same, written straight to the backend queue as a backend with SQS access would: the
    // worker sets them aside, and nobody hears a thing.
    let delivery = gw.delivery().expect("the gateway runs workers");
    let backend = delivery.backend_memory_queue().expect("in-memory queues");
    for spoof in &spoofs {
        backend.send_raw(spoof.to_string());
    }
    eventually(|| (delivery.dead_letters().len() == 2).then_some(()))
        .await
        .expect("both spoofs dead-lettered");
    assert!(
        delivery
            .dead_letters()
            .iter()
            .all(|dead| dead.reason.contains("the service's own")),
        "{:?}",
        delivery.dead_letters()
    );
    assert_eq!(bob.messages_so_far().await, Vec::<Value>::new());
    assert_eq!(carol.messages_so_far().await, Vec::<Value>::new());
    assert_eq!(alice.messages_so_far().await, Vec::<Value>::new());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_publish_that_could_never_be_framed_is_refused_with_413_before_it_is_queued() {
    let gw = gateway(&[]).await;
    // Under the queue's 256 KB, over API Gateway's 128 KB once framed.
    let job = json!({"room": "lobby", "data": "x".repeat(130 * 1024)});

    let (status, answer) = post_publish(&gw, &[JSON], &job.to_string()).await;

    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("could never be delivered"),
        "{answer}"
    );
    let backend = gw
        .delivery()
        .and_then(|d| d.backend_memory_queue())
        .unwrap();
    assert_eq!(backend.outstanding(), 0, "nothing was queued");
    gw.shutdown().await;
}
