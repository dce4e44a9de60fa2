//! One invocation of the fan-out function as the runtime runs it: the partial batch response, the
//! job counts written as EMF lines, and an event that cannot be answered failing whole. Needs the
//! `lambda` feature; one test per file, since the metrics recorder is the process's global one.

use adapters::lambda::{FANOUT_FUNCTION, LambdaMetrics, deliver_batch, measured};
use adapters::metrics::name;
use adapters::sqs::{QueuedMessage, Sources};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use domain::Timestamp;
use serde_json::Value;

const DEADLINE: Timestamp = Timestamp::from_millis(1_800_000_030_000);

fn event(records: &[(Option<&str>, &str)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (id, body) in records {
        let mut record = SqsMessage::default();
        record.message_id = id.map(str::to_owned);
        record.body = Some((*body).to_owned());
        event.records.push(record);
    }
    event
}

/// The sum of `metric` over the EMF lines in `output`.
fn total(output: &[u8], metric: &str) -> f64 {
    std::str::from_utf8(output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|line| line[metric].as_f64())
        .sum()
}

#[tokio::test]
async fn an_invocation_answers_the_failed_jobs_counts_its_jobs_and_fails_whole_on_an_unnamed_record()
 {
    let metrics = LambdaMetrics::install("Test/fanout", FANOUT_FUNCTION).unwrap();
    // A worker that fails the job whose audience it "cannot read".
    let run = |message: QueuedMessage, _| async move {
        match message.body.as_str() {
            "unreadable" => Err("could not read the audience".to_string()),
            _ => Ok(()),
        }
    };
    let good = r#"{"everyone":true,"data":1}"#;
    let sources = Sources::default();

    let mut out = Vec::new();
    let batch = event(&[
        (Some("a"), good),
        (Some("b"), "unreadable"),
        (Some("c"), good),
    ]);
    let response = measured(
        &metrics,
        "req-1",
        &mut out,
        deliver_batch(batch, DEADLINE, 2, &sources, &run),
    )
    .await
    .unwrap();

    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["b"]);
    assert_eq!(total(&out, name::DELIVERY_JOBS), 3.0);
    assert_eq!(total(&out, name::DELIVERY_JOBS_FAILED), 1.0);

    let unnamed = event(&[(Some("a"), good), (None, good)]);
    let refused = deliver_batch(unnamed, DEADLINE, 2, &sources, &run).await;
    let diagnostic = refused.expect_err("a record without an id fails the invocation");
    assert_eq!(diagnostic.error_type, "BadEvent");
    assert!(
        diagnostic.error_message.contains("record 1"),
        "{}",
        diagnostic.error_message
    );
}
