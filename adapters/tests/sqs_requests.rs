//! The requests `SqsDeliveryQueue` sends, seen by a fake SQS endpoint: what moto cannot show,
//! such as entries SQS reports as failed (moto accepts every entry) and the batches' limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use adapters::sqs::{MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, SEND_ATTEMPTS, SqsDeliveryQueue};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::delivery::{DeliveryJob, DeliveryQueue, JobTarget, MessageId, QueueError};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How the fake answers each `SendMessageBatch`.
#[derive(Clone, Copy, Default)]
enum Answer {
    #[default]
    AcceptAll,
    /// The first entry of each call fails on SQS's side (`SenderFault: false`).
    FailFirstEntry,
    /// The first entry of each call is refused as the sender's fault.
    RefuseFirstEntry,
    /// The entries are in neither `Successful` nor `Failed`.
    ConfirmNothing,
    /// HTTP 500 with an AWS JSON error.
    ServerError,
}

#[derive(Clone, Default)]
struct Script {
    /// The `Entries` of every `SendMessageBatch`, in order.
    batches: Arc<Mutex<Vec<Vec<Value>>>>,
    answer: Arc<Mutex<Answer>>,
    /// Calls the current answer holds for before the fake accepts everything.
    answer_calls: Arc<AtomicUsize>,
}

async fn fake_sqs(State(script): State<Script>, headers: HeaderMap, body: String) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(operation, "AmazonSQS.SendMessageBatch");
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let entries = body["Entries"].as_array().cloned().unwrap_or_default();
    script.batches.lock().unwrap().push(entries.clone());
    let scripted = script
        .answer_calls
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answer = if scripted {
        *script.answer.lock().unwrap()
    } else {
        Answer::AcceptAll
    };
    let ok = |entry: &Value| json!({"Id": entry["Id"], "MessageId": "m", "MD5OfMessageBody": "x"});
    let failed = |entry: &Value, sender_fault: bool| json!({"Id": entry["Id"], "SenderFault": sender_fault, "Code": "InternalError", "Message": "try again"});
    let (successful, failures): (Vec<Value>, Vec<Value>) = match answer {
        Answer::AcceptAll => (entries.iter().map(ok).collect(), vec![]),
        Answer::FailFirstEntry | Answer::RefuseFirstEntry => (
            entries.iter().skip(1).map(ok).collect(),
            vec![failed(
                &entries[0],
                matches!(answer, Answer::RefuseFirstEntry),
            )],
        ),
        Answer::ConfirmNothing => (vec![], vec![]),
        Answer::ServerError => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/x-amz-json-1.0")],
                json!({"__type": "com.amazonaws.sqs#InternalError", "message": "boom"}).to_string(),
            )
                .into_response();
        }
    };
    (
        [("content-type", "application/x-amz-json-1.0")],
        json!({"Successful": successful, "Failed": failures}).to_string(),
    )
        .into_response()
}

struct FakeSqs {
    queue: SqsDeliveryQueue,
    script: Script,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSqs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSqs {
    /// The next `calls` calls answer `answer`; later ones accept everything.
    fn answering(self, answer: Answer, calls: usize) -> Self {
        *self.script.answer.lock().unwrap() = answer;
        self.script.answer_calls.store(calls, Ordering::SeqCst);
        self
    }

    fn batches(&self) -> Vec<Vec<Value>> {
        self.script.batches.lock().unwrap().clone()
    }

    fn bodies(&self) -> Vec<Vec<String>> {
        self.batches()
            .iter()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| e["MessageBody"].as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    }
}

async fn fake() -> FakeSqs {
    let script = Script::default();
    let app = Router::new().fallback(fake_sqs).with_state(script.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sdk = adapters::wiring::offline_sdk_config().await;
    let queue = SqsDeliveryQueue::from_sdk(&sdk, format!("{url}/000000000000/jobs"), Some(&url));
    FakeSqs {
        queue,
        script,
        task,
    }
}

fn job(text: &str) -> DeliveryJob {
    DeliveryJob::new(
        MessageId::random(),
        JobTarget::Everyone,
        RawValue::from_string(json!({ "text": text }).to_string()).unwrap(),
    )
}

/// A job whose JSON is exactly `bytes` long.
fn job_of_size(bytes: usize) -> DeliveryJob {
    let overhead = job("").to_json().len();
    job(&"x".repeat(bytes - overhead))
}

fn jobs(n: usize) -> Vec<DeliveryJob> {
    (0..n).map(|i| job(&format!("job {i}"))).collect()
}

#[tokio::test]
async fn twenty_five_jobs_go_out_in_batches_of_ten_ten_and_five_in_order() {
    let sqs = fake().await;
    let sent = jobs(25);
    sqs.queue.enqueue(sent.clone()).await.unwrap();

    let sizes: Vec<usize> = sqs.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    let bodies: Vec<String> = sqs.bodies().concat();
    let expected: Vec<String> = sent.iter().map(DeliveryJob::to_json).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn a_batch_never_carries_more_than_the_payload_limit() {
    let sqs = fake().await;
    let third = MAX_BATCH_BYTES / 3;
    sqs.queue
        .enqueue((0..4).map(|_| job_of_size(third)).collect())
        .await
        .unwrap();

    let sizes: Vec<usize> = sqs.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 1]);
    for batch in sqs.bodies() {
        assert!(batch.iter().map(String::len).sum::<usize>() <= MAX_BATCH_BYTES);
    }
}

#[tokio::test]
async fn a_job_of_exactly_the_limit_is_sent_and_one_byte_more_sends_nothing() {
    let sqs = fake().await;
    sqs.queue
        .enqueue(vec![job_of_size(MAX_MESSAGE_BYTES)])
        .await
        .unwrap();
    assert_eq!(sqs.batches().len(), 1);

    let refused = sqs
        .queue
        .enqueue(vec![job("small"), job_of_size(MAX_MESSAGE_BYTES + 1)])
        .await;
    assert_eq!(
        refused,
        Err(QueueError::TooLarge {
            bytes: MAX_MESSAGE_BYTES + 1,
            max: MAX_MESSAGE_BYTES
        })
    );
    assert_eq!(sqs.batches().len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn an_entry_sqs_failed_is_sent_again_alone_under_the_same_id() {
    let sqs = fake().await.answering(Answer::FailFirstEntry, 1);
    let sent = jobs(3);
    sqs.queue.enqueue(sent.clone()).await.unwrap();

    let batches = sqs.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].len(), 1);
    assert_eq!(batches[1][0]["Id"], batches[0][0]["Id"]);
    assert_eq!(sqs.bodies()[1], vec![sent[0].to_json()]);
}

#[tokio::test]
async fn an_entry_neither_confirmed_nor_failed_is_sent_again() {
    let sqs = fake().await.answering(Answer::ConfirmNothing, 1);
    sqs.queue.enqueue(jobs(2)).await.unwrap();

    let sizes: Vec<usize> = sqs.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2]);
}

#[tokio::test]
async fn an_entry_that_keeps_failing_gives_up_after_the_bounded_attempts() {
    let sqs = fake().await.answering(Answer::FailFirstEntry, usize::MAX);
    let result = sqs.queue.enqueue(jobs(2)).await;

    let Err(QueueError::Unavailable(message)) = result else {
        panic!("expected Unavailable, got {result:?}");
    };
    assert!(message.contains("1 of 2"), "{message}");
    assert_eq!(sqs.batches().len(), SEND_ATTEMPTS as usize);
}

#[tokio::test]
async fn an_entry_refused_as_the_senders_fault_is_not_sent_again() {
    let sqs = fake().await.answering(Answer::RefuseFirstEntry, usize::MAX);
    let result = sqs.queue.enqueue(jobs(2)).await;

    let Err(QueueError::Unavailable(message)) = result else {
        panic!("expected Unavailable, got {result:?}");
    };
    assert!(message.contains("refused"), "{message}");
    assert_eq!(sqs.batches().len(), 1);
}

#[tokio::test]
async fn a_failing_sqs_is_unavailable_with_the_operation_and_queue_named() {
    let sqs = fake().await.answering(Answer::ServerError, usize::MAX);
    let result = sqs.queue.enqueue(jobs(1)).await;

    let Err(QueueError::Unavailable(message)) = result else {
        panic!("expected Unavailable, got {result:?}");
    };
    assert!(message.contains("SendMessageBatch"), "{message}");
    assert!(message.contains(sqs.queue.queue_url()), "{message}");
}

#[tokio::test]
async fn no_jobs_send_nothing() {
    let sqs = fake().await;
    sqs.queue.enqueue(Vec::new()).await.unwrap();
    assert!(sqs.batches().is_empty());
}
