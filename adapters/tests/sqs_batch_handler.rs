//! The SQS batch handler: each record's job run once, only the failed ones reported back.

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapters::sqs::{RecordError, handle_batch, queued_messages};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use domain::Timestamp;
use domain::delivery::{DeliveryJob, MessageId};

const DEADLINE: Timestamp = Timestamp::from_millis(1_800_000_030_000);
const GOOD: &str = r#"{"room":"lobby","data":{"text":"hi"}}"#;
/// A job with a payload that must never reach a log line.
const BAD_ROOM: &str = r#"{"room":"no spaces allowed","data":{"secret":"s3cr3t-payload"}}"#;

fn record(id: Option<&str>, body: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = id.map(str::to_owned);
    record.body = Some(body.to_owned());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), "2".into());
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
    ran: Mutex<Vec<(String, Timestamp)>>,
    failing: Vec<&'static str>,
}

impl Runner {
    fn failing(failing: &[&'static str]) -> Self {
        Self {
            ran: Mutex::default(),
            failing: failing.to_vec(),
        }
    }

    async fn run(
        &self,
        id: MessageId,
        _job: DeliveryJob,
        deadline: Timestamp,
    ) -> Result<(), String> {
        self.ran.lock().unwrap().push((id.to_string(), deadline));
        if self.failing.contains(&id.as_str()) {
            return Err("storage down".into());
        }
        Ok(())
    }

    fn ran(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ran
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

#[tokio::test]
async fn a_batch_with_poison_jobs_reports_exactly_the_poison_and_runs_the_rest() {
    let runner = Runner::failing(&[]);
    let event = event(&[
        ("good-1", GOOD),
        ("not-json", "{not json"),
        ("good-2", GOOD),
        ("no-target", r#"{"data":1}"#),
        ("bad-room", BAD_ROOM),
    ]);

    let outcome = handle_batch(event, DEADLINE, 4, |id, job, deadline| {
        runner.run(id, job, deadline)
    })
    .await
    .unwrap();

    assert_eq!(
        failed_ids(&outcome.response),
        vec!["bad-room", "no-target", "not-json"]
    );
    assert_eq!(runner.ran(), vec!["good-1", "good-2"]);
    assert_eq!((outcome.jobs, outcome.failed, outcome.malformed), (5, 3, 3));
}

#[tokio::test]
async fn a_job_whose_runner_fails_is_reported_and_its_batch_mates_are_not() {
    let runner = Runner::failing(&["second"]);
    let event = event(&[("first", GOOD), ("second", GOOD), ("third", GOOD)]);

    let outcome = handle_batch(event, DEADLINE, 4, |id, job, deadline| {
        runner.run(id, job, deadline)
    })
    .await
    .unwrap();

    assert_eq!(failed_ids(&outcome.response), vec!["second"]);
    assert_eq!(runner.ran(), vec!["first", "second", "third"]);
    assert_eq!((outcome.failed, outcome.malformed), (1, 0));
}

#[tokio::test]
async fn the_runner_gets_the_queue_message_id_the_job_and_the_invocations_deadline() {
    let seen = Mutex::new(Vec::new());
    let event = event(&[("msg-1", GOOD)]);

    handle_batch(event, DEADLINE, 1, |id, job, deadline| {
        seen.lock().unwrap().push((id, job, deadline));
        async { Ok::<(), String>(()) }
    })
    .await
    .unwrap();

    let seen = seen.into_inner().unwrap();
    let expected_job = DeliveryJob::from_json(GOOD).unwrap();
    assert_eq!(
        seen,
        vec![(MessageId::parse("msg-1").unwrap(), expected_job, DEADLINE)]
    );
}

#[tokio::test]
async fn jobs_of_a_batch_run_in_parallel_but_never_more_than_the_bound() {
    let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let ids: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let records: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), GOOD)).collect();

    handle_batch(event(&records), DEADLINE, 3, |_, _, _| async {
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

    let result = handle_batch(event, DEADLINE, 4, |_, _, _| {
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

    let outcome = handle_batch(event, DEADLINE, 4, |id, job, deadline| {
        runner.run(id, job, deadline)
    })
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

    let messages: Vec<_> = queued_messages(event)
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
    let event = event(&[("bad-room", BAD_ROOM)]);

    handle_batch(event, DEADLINE, 1, |_, _, _| async { Ok::<(), String>(()) })
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
