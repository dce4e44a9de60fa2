//! The delivery queue contract: what every `DeliveryQueue` MUST do (see `domain::delivery::queue`).
//!
//! Each check is generic over a factory making an empty queue with a way to receive from it, so
//! the in-memory queue and the SQS adapter answer the very same questions.

use std::future::Future;

use async_trait::async_trait;
use domain::delivery::{DeliveryJob, DeliveryQueue, JobTarget, MessageId, QueueError};
use domain::ports::PageToken;
use domain::testing::{id, room};
use serde_json::value::RawValue;

/// SQS's limit, which every adapter keeps (a job that works locally works on AWS).
pub const MAX_JOB_BYTES: usize = 256 * 1024;

/// Receives bounded in count: a check that waits for messages never hangs.
const MAX_RECEIVES: usize = 30;

/// A queue under test, and the receiving side its transport has (not part of the port).
#[async_trait]
pub trait QueueUnderTest: Send + Sync {
    type Queue: DeliveryQueue;

    fn queue(&self) -> &Self::Queue;

    /// The bodies of the messages waiting, deleted; waits briefly for the first one.
    async fn receive(&self) -> Vec<String>;

    /// What was dead-lettered, with its reason, deleted.
    async fn dead_letters(&self) -> Vec<(String, String)>;
}

/// Receives until `done` holds for everything received so far, at most [`MAX_RECEIVES`] times.
async fn received_until<Q: QueueUnderTest>(q: &Q, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..MAX_RECEIVES {
        if done(&bodies) {
            break;
        }
        bodies.extend(q.receive().await);
    }
    bodies
}

fn data(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

fn job(text: &str) -> DeliveryJob {
    DeliveryJob::new(
        MessageId::random(),
        JobTarget::Room(room("lobby")),
        data(&serde_json::json!({ "text": text }).to_string()),
    )
}

/// A job whose JSON is exactly `bytes` long.
fn job_of_size(bytes: usize) -> DeliveryJob {
    let overhead = job("").to_json().len();
    job(&"x".repeat(bytes - overhead))
}

/// One job of each target, with every optional field, unicode and nested JSON.
fn every_kind_of_job() -> Vec<DeliveryJob> {
    let continued = DeliveryJob {
        from: Some(id("sender")),
        principal: Some(domain::Principal::parse("user-1").unwrap()),
        skip: Some(id("sender")),
        sent_at: Some(1_800_000_000_000),
        ..DeliveryJob::new(
            MessageId::random(),
            JobTarget::Everyone,
            data(r#"{"text":"héllo 👋","nested":[1,2.5,null,{"a":"\"quoted\""}]}"#),
        )
    }
    .continued_at(PageToken::new("page-7"));
    let backend = DeliveryJob {
        id: None,
        ..DeliveryJob::new(
            MessageId::random(),
            JobTarget::Connection(id("abc123=")),
            data(r#""just a string""#),
        )
    };
    vec![job("plain"), continued, backend]
}

/// Receives until as many bodies as `sent` arrived, asserts they are exactly `sent`'s JSON (in
/// any order), and returns them sorted.
async fn received_exactly<Q: QueueUnderTest>(q: &Q, sent: &[DeliveryJob]) -> Vec<String> {
    let mut bodies = received_until(q, |b| b.len() >= sent.len()).await;
    let mut expected: Vec<String> = sent.iter().map(DeliveryJob::to_json).collect();
    bodies.sort();
    expected.sort();
    assert_eq!(bodies, expected);
    bodies
}

pub async fn an_enqueued_job_comes_back_as_identical_json<Q, F, Fut>(fresh: F)
where
    Q: QueueUnderTest,
    F: Fn() -> Fut,
    Fut: Future<Output = Q>,
{
    let q = fresh().await;
    let sent = every_kind_of_job();
    q.queue().enqueue(sent.clone()).await.unwrap();

    let bodies = received_exactly(&q, &sent).await;
    for body in &bodies {
        let job = DeliveryJob::from_json(body).unwrap();
        assert!(sent.contains(&job), "read back as the job it was");
    }
}

pub async fn twenty_five_jobs_in_one_call_all_arrive_once<Q, F, Fut>(fresh: F)
where
    Q: QueueUnderTest,
    F: Fn() -> Fut,
    Fut: Future<Output = Q>,
{
    let q = fresh().await;
    let sent: Vec<DeliveryJob> = (0..25).map(|i| job(&format!("job {i}"))).collect();
    q.queue().enqueue(sent.clone()).await.unwrap();

    received_exactly(&q, &sent).await;
}

pub async fn a_too_large_job_refuses_the_whole_call_and_sends_nothing<Q, F, Fut>(fresh: F)
where
    Q: QueueUnderTest,
    F: Fn() -> Fut,
    Fut: Future<Output = Q>,
{
    let q = fresh().await;
    let refused = q
        .queue()
        .enqueue(vec![
            job("before"),
            job_of_size(MAX_JOB_BYTES + 1),
            job("after"),
        ])
        .await;
    assert_eq!(
        refused,
        Err(QueueError::TooLarge {
            bytes: MAX_JOB_BYTES + 1,
            max: MAX_JOB_BYTES
        })
    );

    // A marker sent afterwards: whatever the refused call had sent would arrive with or before it.
    let marker = job("marker");
    q.queue().enqueue(vec![marker.clone()]).await.unwrap();
    let bodies = received_until(&q, |b| b.contains(&marker.to_json())).await;
    assert_eq!(bodies, vec![marker.to_json()]);
}

pub async fn a_job_of_exactly_the_limit_arrives_whole<Q, F, Fut>(fresh: F)
where
    Q: QueueUnderTest,
    F: Fn() -> Fut,
    Fut: Future<Output = Q>,
{
    let q = fresh().await;
    let big = job_of_size(MAX_JOB_BYTES);
    q.queue()
        .enqueue(vec![big.clone(), job("small")])
        .await
        .unwrap();

    let bodies = received_until(&q, |b| b.len() >= 2).await;
    assert!(bodies.contains(&big.to_json()), "the largest job arrived");
    assert_eq!(bodies.len(), 2);
}

pub async fn enqueueing_no_jobs_succeeds<Q, F, Fut>(fresh: F)
where
    Q: QueueUnderTest,
    F: Fn() -> Fut,
    Fut: Future<Output = Q>,
{
    let q = fresh().await;
    q.queue().enqueue(Vec::new()).await.unwrap();
    let marker = job("marker");
    q.queue().enqueue(vec![marker.clone()]).await.unwrap();
    let bodies = received_until(&q, |b| b.contains(&marker.to_json())).await;
    assert_eq!(bodies, vec![marker.to_json()]);
}

pub async fn a_delayed_job_waits_its_delay_then_arrives<Q, F, Fut>(fresh: F)
where
    Q: QueueUnderTest,
    F: Fn() -> Fut,
    Fut: Future<Output = Q>,
{
    let q = fresh().await;
    let later = job("later");
    let started = std::time::Instant::now();
    q.queue()
        .enqueue_after(vec![later.clone()], std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let now = job("now");
    q.queue().enqueue(vec![now.clone()]).await.unwrap();

    let first = received_until(&q, |b| !b.is_empty()).await;
    assert_eq!(
        first,
        vec![now.to_json()],
        "only the job without a delay at first"
    );
    let bodies = received_until(&q, |b| b.contains(&later.to_json())).await;
    assert_eq!(bodies, vec![later.to_json()]);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "arrived after {:?}",
        started.elapsed()
    );
}

pub async fn a_dead_letter_keeps_its_body_and_reason_and_never_reaches_a_worker<Q, F, Fut>(fresh: F)
where
    Q: QueueUnderTest,
    F: Fn() -> Fut,
    Fut: Future<Output = Q>,
{
    let q = fresh().await;
    let body = r#"{"room":"lobby","data":"\ufffe odd but kept","from":"x"}"#;
    q.queue()
        .dead_letter(body, "the job's message cannot be sent: too large")
        .await
        .unwrap();
    let marker = job("marker");
    q.queue().enqueue(vec![marker.clone()]).await.unwrap();

    let bodies = received_until(&q, |b| b.contains(&marker.to_json())).await;
    assert_eq!(bodies, vec![marker.to_json()], "workers never see it");
    assert_eq!(
        q.dead_letters().await,
        vec![(
            body.to_string(),
            "the job's message cannot be sent: too large".to_string()
        )]
    );
}

/// One `#[tokio::test]` per contract check, for a queue given as `async fn() -> impl QueueUnderTest`.
#[macro_export]
macro_rules! queue_contract {
    ($fresh:path) => {
        $crate::queue_contract!(@tests $fresh,
            an_enqueued_job_comes_back_as_identical_json,
            twenty_five_jobs_in_one_call_all_arrive_once,
            a_too_large_job_refuses_the_whole_call_and_sends_nothing,
            a_job_of_exactly_the_limit_arrives_whole,
            enqueueing_no_jobs_succeeds,
            a_delayed_job_waits_its_delay_then_arrives,
            a_dead_letter_keeps_its_body_and_reason_and_never_reaches_a_worker
        );
    };
    (@tests $fresh:path, $($check:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::queue_contract::$check($fresh).await;
            }
        )+
    };
}
