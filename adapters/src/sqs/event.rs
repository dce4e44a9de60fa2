//! SQS events, as an event source mapping hands them to a Lambda, and the partial batch response.
//!
//! Each record is one message of a delivery queue: the backend queue or the service's internal
//! one, told apart by the record's `eventSourceARN`. A job that fails (the worker could not read
//! the audience or enqueue the rest) is reported in `batchItemFailures`: SQS makes only that
//! message visible again, and after the queue's `maxReceiveCount` receives moves it to the
//! dead-letter queue. Its batch-mates that succeeded are deleted; none waits on it. A message
//! that can never be delivered is not a failure: the worker dead-letters it itself, with its
//! reason, and it is deleted from its queue.

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsEvent, SqsMessage};
use domain::delivery::{MessageId, MessageIdError, Received, Source};
use domain::{Clock, Timestamp};
use futures::StreamExt;

/// The record attribute SQS counts receives in.
const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";
/// The record attribute holding when SQS first received the message (milliseconds).
pub const SENT_TIMESTAMP_ATTRIBUTE: &str = "SentTimestamp";

/// Which queue is the service's own: its records may carry what only the service may say;
/// every other queue's records are read as a backend's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    internal_queue_name: Option<String>,
}

impl Sources {
    /// `internal_queue_url`'s queue is the service's own (a URL ends with the queue's name, as an
    /// ARN does).
    pub fn with_internal_queue(internal_queue_url: &str) -> Self {
        Self {
            internal_queue_name: last_segment(internal_queue_url, '/').map(str::to_owned),
        }
    }

    /// The source of a record from the queue whose ARN is `arn`: `Backend` unless it is the
    /// service's own queue, so an unknown queue gets the least trust.
    pub fn of(&self, arn: Option<&str>) -> Source {
        let name = arn.and_then(|arn| last_segment(arn, ':'));
        match (name, &self.internal_queue_name) {
            (Some(name), Some(internal)) if name == internal => Source::Service,
            _ => Source::Backend,
        }
    }
}

fn last_segment(text: &str, separator: char) -> Option<&str> {
    text.trim_end_matches(separator)
        .rsplit(separator)
        .next()
        .filter(|name| !name.is_empty())
}

/// One record of an SQS event, as a worker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// SQS's id for the message: the same on every redelivery, so it can name the message for a
    /// backend job that chose no id (`DeliveryJob::id_or`).
    pub message_id: MessageId,
    pub body: String,
    /// How many times SQS has handed this message out, this time included.
    pub receive_count: u32,
    /// When SQS first received it: a backend job's `sentAt`.
    pub sent_at: Timestamp,
    /// The queue it came from.
    pub source: Source,
}

impl QueuedMessage {
    /// The message as the worker reads it.
    pub fn received(&self) -> Received<'_> {
        Received {
            id: &self.message_id,
            sent_at: self.sent_at,
            body: &self.body,
            source: self.source,
        }
    }
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
    #[error("the delivery job failed: {0}")]
    Failed(String),
}

/// What one batch came to: the response for Lambda, and counts for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub response: aws_lambda_events::sqs::SqsBatchResponse,
    /// Records in the event.
    pub jobs: usize,
    /// Records reported failed (SQS redelivers them).
    pub failed: usize,
}

/// The records of `event`, each with its id, body, receive count, first receipt and source. A
/// record without an id fails the whole event (see [`RecordError::NoMessageId`]).
pub fn queued_messages(event: SqsEvent, sources: &Sources) -> Result<Vec<Record>, RecordError> {
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(index, record)| queued_message(index, record, sources))
        .collect()
}

fn queued_message(
    index: usize,
    record: SqsMessage,
    sources: &Sources,
) -> Result<Record, RecordError> {
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
    // SQS always sends it; an event from elsewhere gets the time it is read.
    let sent_at = record
        .attributes
        .get(SENT_TIMESTAMP_ATTRIBUTE)
        .and_then(|ms| ms.parse().ok())
        .map_or_else(|| crate::clock::SystemClock.now(), Timestamp::from_millis);
    Ok(Ok(QueuedMessage {
        message_id,
        sent_at,
        source: sources.of(record.event_source_arn.as_deref()),
        body: record.body.unwrap_or_default(),
        receive_count,
    }))
}

/// Runs `run` on every record of `event`, at most `jobs_in_parallel` at a time, and answers with
/// exactly the records that failed. `run` gets the record's message and the invocation's
/// `deadline`, and must return by then (the worker hands over what is left).
pub async fn handle_batch<F, Fut, E>(
    event: SqsEvent,
    deadline: Timestamp,
    jobs_in_parallel: usize,
    sources: &Sources,
    run: F,
) -> Result<BatchOutcome, RecordError>
where
    F: Fn(QueuedMessage, Timestamp) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let messages = queued_messages(event, sources)?;
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
            let (id, receive_count) = (message.message_id.clone(), message.receive_count);
            let failure = run(message, deadline)
                .await
                .map_err(|e| JobFailure::Failed(e.to_string()))
                .err()?;
            tracing::error!(
                messageId = %id,
                receiveCount = receive_count,
                error = %failure,
                "delivery job failed; SQS will redeliver it, then dead-letter it"
            );
            Some((id.to_string(), failure))
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
    for (item_identifier, _) in failures {
        let mut item = BatchItemFailure::default();
        item.item_identifier = item_identifier;
        outcome.response.batch_item_failures.push(item);
    }
    Ok(outcome)
}
