//! SQS on the moto server `./scripts/test` starts: queues of their own per test, and the
//! receiving side a Lambda event source mapping does on AWS.

use std::collections::HashMap;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

/// The SQS-compatible server (moto). A test that needs it fails with this message rather than
/// passing without it.
pub fn sqs_endpoint() -> String {
    std::env::var("TEST_SQS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TEST_SQS_ENDPOINT is not set. Run ./scripts/test, which starts moto with DynamoDB and \
             SQS, or start one yourself (moto_server -H 127.0.0.1 -p 5005) and export \
             TEST_SQS_ENDPOINT=http://127.0.0.1:5005"
        )
    })
}

pub async fn sqs_client() -> Client {
    adapters::sqs::sqs_client(&crate::local_sdk_config().await, Some(&sqs_endpoint()))
}

/// A new queue no other test uses; its URL.
pub async fn fresh_queue(client: &Client, prefix: &str) -> String {
    fresh_queue_with(client, prefix, HashMap::new()).await
}

pub async fn fresh_queue_with(
    client: &Client,
    prefix: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> String {
    // The tables' naming scheme suits queues too: unique per process and call.
    let name = crate::unique_table(prefix);
    client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .expect("moto creates the queue")
        .queue_url
        .expect("a new queue has a URL")
}

pub async fn queue_arn(client: &Client, queue_url: &str) -> String {
    client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("moto answers GetQueueAttributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("a queue has an ARN")
}

/// One receive of up to 10 messages, waiting at most `wait_seconds` for the first, as the event
/// its event source mapping would hand a Lambda (with the receipt handles to settle them).
pub async fn receive_event(client: &Client, queue_url: &str, wait_seconds: i32) -> SqsEvent {
    let received = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .expect("moto answers ReceiveMessage");
    let mut event = SqsEvent::default();
    for message in received.messages.unwrap_or_default() {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id;
        record.receipt_handle = message.receipt_handle;
        record.body = message.body;
        record.attributes = message
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.as_str().to_owned(), value))
            .collect();
        event.records.push(record);
    }
    event
}

/// Deletes the records of `event` whose ids are not in `failed`; makes the failed ones visible
/// again at once. What the event source mapping does with a partial batch response.
pub async fn settle(client: &Client, queue_url: &str, event: &SqsEvent, failed: &[String]) {
    for record in &event.records {
        let handle = record.receipt_handle.clone().unwrap_or_default();
        if failed.contains(&record.message_id.clone().unwrap_or_default()) {
            client
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .expect("moto answers ChangeMessageVisibility");
        } else {
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .expect("moto answers DeleteMessage");
        }
    }
}

/// The bodies of one receive, deleted.
pub async fn receive_bodies(client: &Client, queue_url: &str, wait_seconds: i32) -> Vec<String> {
    let event = receive_event(client, queue_url, wait_seconds).await;
    settle(client, queue_url, &event, &[]).await;
    event
        .records
        .into_iter()
        .map(|r| r.body.unwrap_or_default())
        .collect()
}
