//! SQS on the moto server `./scripts/test` starts: queues of their own per test, and what is in
//! them (received through `adapters::sqs::SqsPoller`, the event source mapping's side).

use std::collections::HashMap;

use adapters::sqs::{Sources, SqsPoller};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

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

/// The bodies of one receive, deleted.
pub async fn receive_bodies(client: &Client, queue_url: &str, wait_seconds: u64) -> Vec<String> {
    let poller = SqsPoller::new(client.clone(), queue_url, Sources::default());
    let wait = std::time::Duration::from_secs(wait_seconds);
    let event = poller
        .receive(wait)
        .await
        .expect("moto answers ReceiveMessage");
    poller
        .settle(&event, &[])
        .await
        .expect("moto deletes the messages");
    event
        .records
        .into_iter()
        .map(|r| r.body.unwrap_or_default())
        .collect()
}

/// The stack's three queues, fresh on moto: the service's own, the backend queue, and the
/// dead-letter queue both redrive to after `max_receives`.
pub struct StackQueues {
    pub internal: String,
    pub backend: String,
    pub dead_letters: String,
}

impl StackQueues {
    pub async fn fresh(client: &Client, prefix: &str, max_receives: u32) -> Self {
        let dead_letters = fresh_queue(client, &format!("{prefix}-dlq")).await;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": queue_arn(client, &dead_letters).await,
            "maxReceiveCount": max_receives,
        })
        .to_string();
        let with_redrive = || HashMap::from([(QueueAttributeName::RedrivePolicy, redrive.clone())]);
        Self {
            internal: fresh_queue_with(client, &format!("{prefix}-internal"), with_redrive()).await,
            backend: fresh_queue_with(client, &format!("{prefix}-backend"), with_redrive()).await,
            dead_letters,
        }
    }

    /// The local gateway's flags that deliver through these queues on moto.
    pub fn gateway_flags(&self) -> Vec<String> {
        [
            "--internal-queue-url",
            &self.internal,
            "--backend-queue-url",
            &self.backend,
            "--dead-letter-queue-url",
            &self.dead_letters,
            "--sqs-endpoint",
            &sqs_endpoint(),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}
