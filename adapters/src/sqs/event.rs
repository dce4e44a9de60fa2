//! SQS events, as an event source mapping hands them to a Lambda, and the partial batch response.
//!
//! Each record is one delivery job. A job that fails (a malformed body, or a runner error) is
//! reported in `batchItemFailures`: SQS makes only that message visible again, and after the
//! queue's `maxReceiveCount` receives moves it to the dead-letter queue. Its batch-mates that
//! succeeded are deleted; none waits on it.

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsEvent, SqsMessage};
use domain::Timestamp;
use domain::delivery::{DeliveryJob, MessageId, MessageIdError};
use futures::StreamExt;

/// The record attribute SQS counts receives in.
const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";

/// One record of an SQS event, as a worker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// SQS's id for the message: the same on every redelivery, so it can name the message for a
    /// backend job that chose no id (`DeliveryJob::id_or`).
    pub message_id: MessageId,
    pub body: String,
    /// How many times SQS has handed this message out, this time included.
    pub receive_count: u32,
}

/// A record whose SQS message id is not a usable [`MessageId`]: reported failed under that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableId {
    pub raw: String,
    pub error: MessageIdError,
}

/// One record: its job's message, or an id the worker cannot use.
pub type Record = Result<QueuedMessage, UnusableId>;

/// A record that cannot even be reported back as failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Without its id a record can be neither processed nor named in `batchItemFailures`; the
    /// whole invocation fails so that SQS delivers the batch again. SQS always sends one: this
    /// is an event from somewhere else.
    #[error("record {index} of the SQS event has no messageId")]
    NoMessageId { index: usize },
}

/// Why one record's job failed: reported in `batchItemFailures`, logged, never fatal to the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum JobFailure {
    #[error("the SQS message id is not usable as a message id: {0}")]
    BadMessageId(MessageIdError),
    #[error("malformed delivery job: {0}")]
    Malformed(domain::delivery::JobError),
    #[error("the delivery job failed: {0}")]
    Failed(String),
}

/// What one batch came to: the response for Lambda, and counts for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub response: aws_lambda_events::sqs::SqsBatchResponse,
    /// Records in the event.
    pub jobs: usize,
    /// Records reported failed, malformed ones included.
    pub failed: usize,
    /// Records whose body is not a delivery job.
    pub malformed: usize,
}

/// The records of `event`, each with its id, body and receive count. A record without an id
/// fails the whole event (see [`RecordError::NoMessageId`]).
pub fn queued_messages(event: SqsEvent) -> Result<Vec<Record>, RecordError> {
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(index, record)| queued_message(index, record))
        .collect()
}

fn queued_message(index: usize, record: SqsMessage) -> Result<Record, RecordError> {
    let raw_id = record
        .message_id
        .ok_or(RecordError::NoMessageId { index })?;
    let message_id = match MessageId::parse(raw_id.clone()) {
        Ok(id) => id,
        Err(error) => return Ok(Err(UnusableId { raw: raw_id, error })),
    };
    let receive_count = record
        .attributes
        .get(RECEIVE_COUNT_ATTRIBUTE)
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    Ok(Ok(QueuedMessage {
        message_id,
        body: record.body.unwrap_or_default(),
        receive_count,
    }))
}

/// Runs `run` on the job of every record of `event`, at most `jobs_in_parallel` at a time, and
/// answers with exactly the records that failed. `run` gets the record's message id, its job and
/// the invocation's `deadline`, and must return by then (the worker hands over what is left).
///
/// A malformed job is logged with the field that is wrong (`JobError` names it and never echoes
/// the payload) and reported failed, so it ends in the dead-letter queue.
pub async fn handle_batch<F, Fut, E>(
    event: SqsEvent,
    deadline: Timestamp,
    jobs_in_parallel: usize,
    run: F,
) -> Result<BatchOutcome, RecordError>
where
    F: Fn(MessageId, DeliveryJob, Timestamp) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let messages = queued_messages(event)?;
    let jobs = messages.len();
    let run = &run;
    let failures: Vec<(String, JobFailure)> = futures::stream::iter(messages)
        .map(|message| async move {
            let message = match message {
                Ok(message) => message,
                Err(UnusableId { raw, error }) => {
                    tracing::error!(error = %error, "an SQS record's message id is unusable");
                    return Some((raw, JobFailure::BadMessageId(error)));
                }
            };
            let failure = run_one(&message, deadline, run).await.err()?;
            tracing::error!(
                messageId = %message.message_id,
                receiveCount = message.receive_count,
                error = %failure,
                "delivery job failed; SQS will redeliver it, then dead-letter it"
            );
            Some((message.message_id.to_string(), failure))
        })
        .buffer_unordered(jobs_in_parallel.max(1))
        .filter_map(|failure| async move { failure })
        .collect()
        .await;

    let mut outcome = BatchOutcome {
        jobs,
        failed: failures.len(),
        ..BatchOutcome::default()
    };
    for (item_identifier, failure) in failures {
        if matches!(failure, JobFailure::Malformed(_)) {
            outcome.malformed += 1;
        }
        let mut item = BatchItemFailure::default();
        item.item_identifier = item_identifier;
        outcome.response.batch_item_failures.push(item);
    }
    Ok(outcome)
}

async fn run_one<F, Fut, E>(
    message: &QueuedMessage,
    deadline: Timestamp,
    run: &F,
) -> Result<(), JobFailure>
where
    F: Fn(MessageId, DeliveryJob, Timestamp) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let job = DeliveryJob::from_json(&message.body).map_err(JobFailure::Malformed)?;
    run(message.message_id.clone(), job, deadline)
        .await
        .map_err(|e| JobFailure::Failed(e.to_string()))
}
