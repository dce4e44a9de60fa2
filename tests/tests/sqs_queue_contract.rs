//! The delivery queue contract against the SQS adapter, on the moto server `./scripts/test` starts.

use crate::queue_contract;

use adapters::sqs::{REASON_ATTRIBUTE, SqsDeliveryQueue};
use async_trait::async_trait;
use queue_contract::QueueUnderTest;
use tests::sqs::{fresh_queue, receive_bodies, sqs_client};

struct OnMoto {
    client: aws_sdk_sqs::Client,
    queue: SqsDeliveryQueue,
    dead_letters: String,
}

#[async_trait]
impl QueueUnderTest for OnMoto {
    type Queue = SqsDeliveryQueue;

    fn queue(&self) -> &SqsDeliveryQueue {
        &self.queue
    }

    async fn receive(&self) -> Vec<String> {
        receive_bodies(&self.client, self.queue.queue_url(), 1).await
    }

    async fn dead_letters(&self) -> Vec<(String, String)> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.dead_letters)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names(REASON_ATTRIBUTE)
            .send()
            .await
            .expect("moto answers ReceiveMessage");
        received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|message| {
                let reason = message
                    .message_attributes
                    .and_then(|mut a| a.remove(REASON_ATTRIBUTE))
                    .and_then(|value| value.string_value)
                    .unwrap_or_default();
                (message.body.unwrap_or_default(), reason)
            })
            .collect()
    }
}

async fn fresh() -> OnMoto {
    let client = sqs_client().await;
    let url = fresh_queue(&client, "contract").await;
    let dead_letters = fresh_queue(&client, "contract-dlq").await;
    OnMoto {
        queue: SqsDeliveryQueue::new(client.clone(), url).with_dead_letters(&dead_letters),
        dead_letters,
        client,
    }
}

queue_contract!(fresh);

#[test]
fn the_contracts_limit_is_the_sqs_adapters() {
    assert_eq!(
        queue_contract::MAX_JOB_BYTES,
        adapters::sqs::MAX_MESSAGE_BYTES
    );
}
