//! The SQS batch handler: each record's message run once, only the failed ones reported back; and
//! with the real worker behind it, a message that can never be delivered dead-lettered at once,
//! never reported for a retry.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use adapters::clock::{SystemClock, TokioSleeper};
use adapters::memory::{InMemoryConnectionRepository, MemoryQueue, RecordingNotifier};
use adapters::sqs::{QueuedMessage, RecordError, Sources, handle_batch, queued_messages};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use domain::delivery::{DeliveryWorker, Source};
use domain::{Settings, Timestamp};

const DEADLINE: Timestamp = Timestamp::from_millis(4_000_000_000_000);
const GOOD: &str = r#"{"room":"lobby","data":{"text":"hi"}}"#;
/// A job with a payload that must never reach a log line.
const BAD_ROOM: &str = r#"{"room":"no spaces allowed","data":{"secret":"s3cr3t-payload"}}"#;
const INTERNAL: &str = "arn:aws:sqs:eu-west-1:123456789012:ws-chat-dev-internal";
const BACKEND: &str = "arn:aws:sqs:eu-west-1:123456789012:ws-chat-dev-delivery";

fn record(id: Option<&str>, body: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = id.map(str::to_owned);
    record.body = Some(body.to_owned());
    record.event_source_arn = Some(BACKEND.to_owned());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), "2".into());
    record
        .attributes
        .insert("SentTimestamp".into(), "1700000000123".into());
    record
}

fn event(records: &[(&str, &str)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records
        .iter()
        .map(|(id, body)| record(Some(id), body))
        .collect();
    event
}

fn sources() -> Sources {
    Sources::with_internal_queue(
        "https://sqs.eu-west-1.amazonaws.com/123456789012/ws-chat-dev-internal",
    )
}

fn failed_ids(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<&str> {
    let mut ids: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    ids.sort();
    ids
}

/// A runner that records the ids it ran and succeeds, except on the ids in `failing`.
struct Runner {
    ran: Mutex<Vec<String>>,
    failing: Vec<&'static str>,
}

impl Runner {
    fn failing(failing: &[&'static str]) -> Self {
        Self {
            ran: Mutex::default(),
            failing: failing.to_vec(),
        }
    }

    async fn run(&self, message: QueuedMessage, _deadline: Timestamp) -> Result<(), String> {
        let id = message.message_id.to_string();
        self.ran.lock().unwrap().push(id.clone());
        if self.failing.contains(&id.as_str()) {
            return Err("storage down".into());
        }
        Ok(())
    }

    fn ran(&self) -> Vec<String> {
        let mut ids = self.ran.lock().unwrap().clone();
        ids.sort();
        ids
    }
}

#[tokio::test]
async fn a_job_whose_worker_fails_is_reported_and_its_batch_mates_are_not() {
    let runner = Runner::failing(&["second"]);
    let event = event(&[("first", GOOD), ("second", GOOD), ("third", GOOD)]);

    let outcome = handle_batch(event, DEADLINE, 4, &sources(), |m, d| runner.run(m, d))
        .await
        .unwrap();

    assert_eq!(failed_ids(&outcome.response), vec!["second"]);
    assert_eq!(runner.ran(), vec!["first", "second", "third"]);
    assert_eq!((outcome.jobs, outcome.failed), (3, 1));
}

/// The real worker over the in-memory store and queue, every post accepted.
fn worker(
    dead_letters: &MemoryQueue,
) -> DeliveryWorker<Arc<InMemoryConnectionRepository>, Arc<RecordingNotifier>> {
    DeliveryWorker::new(
        Arc::new(InMemoryConnectionRepository::default()),
        Arc::new(RecordingNotifier::default()),
        Arc::new(dead_letters.clone()),
        Arc::new(SystemClock),
        Arc::new(TokioSleeper),
        Settings::default(),
    )
}

#[tokio::test]
async fn messages_that_can_never_be_delivered_are_dead_lettered_at_once_and_never_reported_for_a_retry()
 {
    let queue = MemoryQueue::default();
    let worker = worker(&queue);
    let spoof = r#"{"room":"lobby","data":1,"from":"alice0000000="}"#;
    let event = event(&[
        ("good", GOOD),
        ("not-json", "{not json"),
        ("no-target", r#"{"data":1}"#),
        ("bad-room", BAD_ROOM),
        ("spoof", spoof),
    ]);

    let outcome = handle_batch(event, DEADLINE, 4, &sources(), |message, deadline| {
        let worker = &worker;
        async move { worker.handle(message.received(), deadline).await.map(drop) }
    })
    .await
    .unwrap();

    assert_eq!(outcome.failed, 0, "nothing comes back for a retry");
    let mut dead: Vec<(String, String)> = queue
        .dead_letters_with_reasons()
        .into_iter()
        .map(|d| (d.body, d.reason))
        .collect();
    dead.sort();
    let bodies: Vec<&str> = dead.iter().map(|(body, _)| body.as_str()).collect();
    assert_eq!(
        bodies,
        [r#"{"data":1}"#, spoof, BAD_ROOM, "{not json"],
        "kept exactly as they came"
    );
    assert!(dead[1].1.contains("the service's own"), "{dead:?}");
    assert!(dead[2].1.contains(r#"field "room" is invalid"#), "{dead:?}");
}

#[tokio::test]
async fn the_runner_gets_the_message_with_its_first_receipt_and_source_and_the_deadline() {
    let seen = Mutex::new(Vec::new());
    let mut event = event(&[("msg-1", GOOD), ("msg-2", GOOD)]);
    event.records[1].event_source_arn = Some(INTERNAL.to_owned());

    handle_batch(event, DEADLINE, 1, &sources(), |message, deadline| {
        seen.lock().unwrap().push((message, deadline));
        async { Ok::<(), String>(()) }
    })
    .await
    .unwrap();

    let seen = seen.into_inner().unwrap();
    let described: Vec<(String, &str, u64, Source, Timestamp)> = seen
        .iter()
        .map(|(m, d)| {
            let sent = m.sent_at.as_millis();
            (
                m.message_id.to_string(),
                m.body.as_str(),
                sent,
                m.source,
                *d,
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            (
                "msg-1".into(),
                GOOD,
                1_700_000_000_123,
                Source::Backend,
                DEADLINE
            ),
            (
                "msg-2".into(),
                GOOD,
                1_700_000_000_123,
                Source::Service,
                DEADLINE
            )
        ]
    );
}

#[test]
fn only_the_internal_queue_is_the_services_own_and_an_unknown_queue_is_a_backends() {
    let sources = sources();
    assert_eq!(sources.of(Some(INTERNAL)), Source::Service);
    assert_eq!(sources.of(Some(BACKEND)), Source::Backend);
    assert_eq!(
        sources.of(Some("arn:aws:sqs:eu-west-1:1:ws-chat-dev-internal-2")),
        Source::Backend
    );
    assert_eq!(sources.of(None), Source::Backend);
    assert_eq!(Sources::default().of(Some(INTERNAL)), Source::Backend);
}

#[tokio::test]
async fn jobs_of_a_batch_run_in_parallel_but_never_more_than_the_bound() {
    let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let ids: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let records: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), GOOD)).collect();

    handle_batch(event(&records), DEADLINE, 3, &sources(), |_, _| async {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        // Hands control back, so every job the bound allows starts before any ends.
        tokio::task::yield_now().await;
        running.fetch_sub(1, Ordering::SeqCst);
        Ok::<(), String>(())
    })
    .await
    .unwrap();

    assert_eq!(most.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_record_without_a_message_id_fails_the_whole_event() {
    let mut event = event(&[("fine", GOOD)]);
    event.records.push(record(None, GOOD));
    let ran = AtomicUsize::new(0);

    let result = handle_batch(event, DEADLINE, 4, &sources(), |_, _| {
        ran.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), String>(()) }
    })
    .await;

    assert_eq!(result, Err(RecordError::NoMessageId { index: 1 }));
    assert_eq!(ran.load(Ordering::SeqCst), 0, "no job ran");
}

#[tokio::test]
async fn a_record_whose_message_id_is_unusable_is_reported_under_that_id() {
    let runner = Runner::failing(&[]);
    let event = event(&[("has space", GOOD), ("fine", GOOD)]);

    let outcome = handle_batch(event, DEADLINE, 4, &sources(), |m, d| runner.run(m, d))
        .await
        .unwrap();

    assert_eq!(failed_ids(&outcome.response), vec!["has space"]);
    assert_eq!(runner.ran(), vec!["fine"]);
}

#[tokio::test]
async fn records_carry_their_receive_count_and_a_missing_body_is_empty() {
    let mut event = event(&[("a", GOOD)]);
    let mut bare = record(Some("b"), "");
    bare.body = None;
    bare.attributes.clear();
    event.records.push(bare);

    let messages: Vec<_> = queued_messages(event, &sources())
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .map(|m| (m.message_id.to_string(), m.body, m.receive_count))
        .collect();

    assert_eq!(
        messages,
        vec![("a".into(), GOOD.into(), 2), ("b".into(), String::new(), 1)]
    );
}

#[tokio::test]
async fn a_malformed_job_is_logged_with_its_field_and_never_its_payload() {
    let (logs, _guard) = support::CapturedLogs::start();
    let queue = MemoryQueue::default();
    let worker = worker(&queue);
    let event = event(&[("bad-room", BAD_ROOM)]);

    handle_batch(event, DEADLINE, 1, &sources(), |message, deadline| {
        let worker = &worker;
        async move { worker.handle(message.received(), deadline).await.map(drop) }
    })
    .await
    .unwrap();

    let text = logs.text();
    assert!(
        text.contains("bad-room"),
        "the message id is logged: {text}"
    );
    assert!(
        text.contains(r#"field \"room\" is invalid"#),
        "the field is named: {text}"
    );
    assert!(
        !text.contains("s3cr3t-payload"),
        "the payload is not logged: {text}"
    );
    assert!(
        !text.contains("no spaces allowed"),
        "nor the bad value: {text}"
    );
}
