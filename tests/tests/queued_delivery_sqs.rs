//! Queued delivery on SQS (moto) through the local gateway: its workers poll the queues as the
//! `fanout` Lambda's event source mappings do, so a backend's job sent straight to the backend
//! queue and a broadcast past the inline threshold both reach every member once.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use local_gateway::RunningGateway;
use serde_json::json;
use tests::rooms::{assert_no_second_copy, first_messages, room_of};
use tests::sqs::{StackQueues, sqs_client};
use tests::ws::gateway;

/// A gateway whose workers poll fresh moto queues; the queues.
async fn gateway_on_sqs(inline_recipients: &str) -> (RunningGateway, StackQueues) {
    let queues = StackQueues::fresh(&sqs_client().await, "gateway", 3).await;
    let mut flags = queues.gateway_flags();
    flags.extend(
        [
            "--workers",
            "2",
            "--inline-recipients",
            inline_recipients,
            "--presence-max-members",
            "0",
        ]
        .map(str::to_owned),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    (gateway(&flags).await, queues)
}

/// Messages SQS holds for the queue, visible or in flight.
async fn messages_left(client: &aws_sdk_sqs::Client, queue_url: &str) -> Option<u64> {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .ok()?
        .attributes?;
    let count = |name: QueueAttributeName| attributes.get(&name)?.parse::<u64>().ok();
    Some(
        count(QueueAttributeName::ApproximateNumberOfMessages)?
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
    )
}

/// Waits (at most 20 s) until SQS holds no message of the queue: every job done and deleted.
async fn sqs_drained(queue_url: &str) {
    let client = sqs_client().await;
    for _ in 0..200 {
        if messages_left(&client, queue_url).await == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the SQS queue did not drain within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_job_sent_to_sqs_reaches_the_room_with_the_sqs_message_id_and_no_sender() {
    let (gw, queues) = gateway_on_sqs("100").await;
    let mut clients = room_of(&gw, 4).await;

    let sent = sqs_client()
        .await
        .send_message()
        .queue_url(&queues.backend)
        .message_body(r#"{"room":"lobby","data":{"text":"from a backend"}}"#)
        .send()
        .await
        .expect("moto accepts the message");
    let sqs_id = sent.message_id.expect("SQS names every message");

    for message in first_messages(&mut clients).await {
        assert_eq!(message["id"], sqs_id.as_str(), "{message}");
        assert_eq!(message["data"], json!({"text": "from a backend"}));
        assert!(message.get("from").is_none(), "{message}");
    }
    sqs_drained(&queues.backend).await;
    assert_no_second_copy(&mut clients).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_past_the_inline_threshold_goes_through_sqs_and_reaches_each_member_once() {
    let (gw, queues) = gateway_on_sqs("3").await;
    let mut clients = room_of(&gw, 12).await;

    let ack = clients[0].publish("lobby", json!({"text": "hi"})).await;

    assert_eq!(
        (&ack["delivered"], &ack["queued"]),
        (&json!(3), &json!(true)),
        "{ack}"
    );
    let messages = first_messages(&mut clients).await;
    let first_id = &messages[0]["id"];
    assert!(first_id.is_string(), "{}", messages[0]);
    assert!(
        messages.iter().all(|m| &m["id"] == first_id),
        "one message, one id"
    );
    sqs_drained(&queues.internal).await;
    assert_no_second_copy(&mut clients).await;
    gw.shutdown().await;
}
