//! What a Lambda event source mapping does for the `fanout` function, for runs without Lambda (the
//! local gateway on moto's SQS): receive a batch, hand it over as an SQS event, then delete the
//! records that succeeded and make the failed ones visible again at once. The queue's redrive
//! policy dead-letters a message after its `maxReceiveCount` receives, as on AWS.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use domain::Timestamp;
use domain::delivery::QueueError;

use super::event::{BatchOutcome, QueuedMessage, Sources, handle_batch};

/// Messages per receive: SQS's maximum, and what an event source mapping's batch size of 10 gets.
const BATCH: i32 = 10;

/// Polls one queue the way an event source mapping does.
#[derive(Clone, Debug)]
pub struct SqsPoller {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    /// Which queue is the service's own, as the `fanout` function is told.
    sources: Sources,
}

impl SqsPoller {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        sources: Sources,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            sources,
        }
    }

    /// Up to 10 messages, waiting at most `wait` (whole seconds, SQS long polling) for the first,
    /// as the event a Lambda would get.
    pub async fn receive(&self, wait: Duration) -> Result<SqsEvent, QueueError> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", e))?;
        let mut event = SqsEvent::default();
        // As an event source mapping names the queue: an ARN ending with its name.
        let arn = format!(
            "arn:aws:sqs:local:000000000000:{}",
            self.queue_url.rsplit('/').next().unwrap_or_default()
        );
        for message in received.messages.unwrap_or_default() {
            let mut record = SqsMessage::default();
            record.event_source_arn = Some(arn.clone());
            record.message_id = message.message_id;
            record.receipt_handle = message.receipt_handle;
            record.body = message.body;
            record.attributes = message
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| (name.as_str().to_owned(), value))
                .collect();
            event.records.push(record);
        }
        Ok(event)
    }

    /// Deletes the records of `event` not named in `failed`, and makes the failed ones visible
    /// again at once: what the event source mapping does with a partial batch response. Every
    /// record is settled even if one call fails; the first failure is returned.
    pub async fn settle(&self, event: &SqsEvent, failed: &[String]) -> Result<(), QueueError> {
        let mut first_error = None;
        for record in &event.records {
            let Some(handle) = record.receipt_handle.clone() else {
                continue;
            };
            let id = record.message_id.as_deref().unwrap_or_default();
            let settled = if failed.iter().any(|f| f == id) {
                self.client
                    .change_message_visibility()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| unavailable("ChangeMessageVisibility", e))
            } else {
                self.client
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| unavailable("DeleteMessage", e))
            };
            if let Err(e) = settled {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One round: receive, run every job with `deadline_after` to go, settle. `None` when the
    /// queue was empty for `wait`.
    pub async fn poll_once<F, Fut, E>(
        &self,
        wait: Duration,
        deadline: Timestamp,
        jobs_in_parallel: usize,
        run: &F,
    ) -> Result<Option<BatchOutcome>, QueueError>
    where
        F: Fn(QueuedMessage, Timestamp) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let event = self.receive(wait).await?;
        if event.records.is_empty() {
            return Ok(None);
        }
        let outcome = handle_batch(
            event.clone(),
            deadline,
            jobs_in_parallel,
            &self.sources,
            run,
        )
        .await
        .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let failed: Vec<String> = outcome
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        self.settle(&event, &failed).await?;
        Ok(Some(outcome))
    }
}

fn unavailable(call: &str, e: impl std::error::Error) -> QueueError {
    QueueError::Unavailable(format!("SQS {call}: {}", DisplayErrorContext(e)))
}
