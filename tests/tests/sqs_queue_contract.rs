//! The delivery queue contract against the SQS adapter, on the moto server `./scripts/test` starts.

mod queue_contract;

use adapters::sqs::SqsDeliveryQueue;
use async_trait::async_trait;
use queue_contract::QueueUnderTest;
use tests::sqs::{fresh_queue, receive_bodies, sqs_client};

struct OnMoto {
    client: aws_sdk_sqs::Client,
    queue: SqsDeliveryQueue,
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
}

async fn fresh() -> OnMoto {
    let client = sqs_client().await;
    let url = fresh_queue(&client, "contract").await;
    OnMoto {
        queue: SqsDeliveryQueue::new(client.clone(), url),
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
