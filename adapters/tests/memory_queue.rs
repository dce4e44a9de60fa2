//! The in-memory queue behaves like SQS where workers can tell: redelivery, dead letters, limits.

use std::time::Duration;

use adapters::memory::{MAX_JOB_BYTES, MemoryQueue};
use domain::delivery::{DeliveryJob, DeliveryQueue, JobTarget, MessageId, QueueError};
use serde_json::value::RawValue;

const WAIT: Duration = Duration::from_millis(200);

fn job(data: &str) -> DeliveryJob {
    DeliveryJob::new(
        MessageId::random(),
        JobTarget::Everyone,
        RawValue::from_string(data.to_owned()).unwrap(),
    )
}

#[tokio::test]
async fn an_enqueued_job_is_received_as_the_same_json() {
    let queue = MemoryQueue::default();
    let sent = job(r#"{"text":"hi"}"#);
    queue.enqueue(vec![sent.clone()]).await.unwrap();
    let leases = queue.receive(10, WAIT).await;
    assert_eq!(leases.len(), 1);
    assert_eq!(DeliveryJob::from_json(leases[0].body()), Ok(sent));
}

#[tokio::test]
async fn an_acknowledged_message_is_gone_and_a_dropped_one_comes_back_with_the_same_id() {
    let queue = MemoryQueue::default();
    queue.send_raw("one");
    let first = queue.receive(1, WAIT).await.pop().unwrap();
    let id = first.message_id().clone();
    drop(first); // a worker that died mid-job
    let again = queue.receive(1, WAIT).await.pop().unwrap();
    assert_eq!((again.message_id(), again.receive_count()), (&id, 2));
    again.ack();
    assert_eq!(queue.outstanding(), 0);
    assert!(queue.receive(1, Duration::from_millis(20)).await.is_empty());
}

#[tokio::test]
async fn a_message_released_too_often_becomes_a_dead_letter() {
    let queue = MemoryQueue::new(2);
    queue.send_raw("poison");
    queue.send_raw("fine");
    for _ in 0..2 {
        for lease in queue.receive(10, WAIT).await {
            if lease.body() == "poison" {
                lease.release();
            } else {
                lease.ack();
            }
        }
    }
    assert_eq!(queue.dead_letters(), vec!["poison".to_owned()]);
    assert_eq!(queue.outstanding(), 0);
}

#[tokio::test]
async fn a_job_over_the_sqs_limit_is_refused_and_nothing_is_sent() {
    let queue = MemoryQueue::default();
    let big = format!("\"{}\"", "x".repeat(MAX_JOB_BYTES));
    let err = queue.enqueue(vec![job("1"), job(&big)]).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::TooLarge {
                max: MAX_JOB_BYTES,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(queue.outstanding(), 0);
}

#[tokio::test]
async fn a_waiting_receiver_wakes_when_a_job_arrives() {
    let queue = MemoryQueue::default();
    let receiver = tokio::spawn({
        let queue = queue.clone();
        async move { queue.receive(1, Duration::from_secs(5)).await.len() }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue.send_raw("late");
    assert_eq!(receiver.await.unwrap(), 1);
}
