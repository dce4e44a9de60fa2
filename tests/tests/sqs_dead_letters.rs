//! The fan-out's batch handler on a real queue (moto), received and settled by `SqsPoller` as an
//! event source mapping would: a job that fails every receive (its audience never readable, say)
//! ends in the dead-letter queue after the redrive policy's receives, and its batch-mates are
//! delivered and deleted. (A job that can never succeed does not wait for that: the worker
//! dead-letters it at once, see the queue contract.)

use std::collections::HashMap;
use std::time::Duration;

use adapters::sqs::{QueuedMessage, Sources, SqsPoller};
use aws_sdk_sqs::types::QueueAttributeName;
use domain::Timestamp;
use tests::sqs::{fresh_queue, fresh_queue_with, queue_arn, receive_bodies, sqs_client};

const MAX_RECEIVES: u32 = 2;
/// Rounds of receive-handle-settle; each empties what is visible, so a few are plenty.
const ROUNDS: usize = 10;

#[tokio::test]
async fn a_poison_job_lands_in_the_dead_letter_queue_and_its_batch_mates_are_deleted() {
    let client = sqs_client().await;
    let dead_letters = fresh_queue(&client, "dlq").await;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": queue_arn(&client, &dead_letters).await,
        "maxReceiveCount": MAX_RECEIVES,
    });
    let jobs = fresh_queue_with(
        &client,
        "jobs",
        HashMap::from([(QueueAttributeName::RedrivePolicy, redrive.to_string())]),
    )
    .await;
    let poison = r#"{"room":"unreadable","data":0}"#;
    let good = [
        r#"{"room":"lobby","data":1}"#,
        r#"{"everyone":true,"data":2}"#,
    ];
    for body in [good[0], poison, good[1]] {
        client
            .send_message()
            .queue_url(&jobs)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let delivered = std::sync::Mutex::new(Vec::new());
    let mut failures = 0;
    let poller = SqsPoller::new(client.clone(), &jobs, Sources::default());
    let run = |message: QueuedMessage, _| {
        let fails = message.body.contains("unreadable");
        if !fails {
            delivered.lock().unwrap().push(message.body);
        }
        async move {
            match fails {
                true => Err("could not read the audience".to_string()),
                false => Ok(()),
            }
        }
    };
    for _ in 0..ROUNDS {
        let outcome = poller
            .poll_once(Duration::ZERO, Timestamp::from_millis(u64::MAX), 4, &run)
            .await
            .unwrap();
        let Some(outcome) = outcome else { break };
        failures += outcome.response.batch_item_failures.len();
    }

    assert_eq!(
        failures, MAX_RECEIVES as usize,
        "the poison failed once per receive"
    );
    let delivered = delivered.into_inner().unwrap();
    assert_eq!(delivered.len(), 2, "each good job ran once: {delivered:?}");
    assert!(
        receive_bodies(&client, &jobs, 0).await.is_empty(),
        "the queue is empty"
    );
    assert_eq!(
        receive_bodies(&client, &dead_letters, 1).await,
        vec![poison.to_owned()]
    );
}
