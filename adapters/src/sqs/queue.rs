//! `SqsDeliveryQueue`: the `DeliveryQueue` port on SQS's `SendMessageBatch`, with
//! `DelaySeconds` for the jobs a worker hands back after a pause, and a dead-letter queue for
//! what can never be delivered (the reason in the message attribute [`REASON_ATTRIBUTE`]).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use domain::delivery::{DeliveryJob, DeliveryQueue, QueueError};

use super::batches::{MAX_MESSAGE_BYTES, batch_ranges};

/// `SendMessageBatch` calls per batch when SQS reports entries as failed on its side (the SDK
/// retries whole failed calls on its own, inside each of these).
pub const SEND_ATTEMPTS: u32 = 3;

/// Before the second attempt; doubled before each later one.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The SQS client: the SDK's standard retry mode (3 attempts, backoff with jitter, throttling
/// included) and timeouts short enough for a Lambda's budget, as for DynamoDB.
pub fn sqs_client(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_sqs::Client {
    let mut config = aws_sdk_sqs::config::Builder::from(sdk)
        .retry_config(crate::wiring::sdk_retries())
        .timeout_config(crate::wiring::sdk_timeouts());
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    aws_sdk_sqs::Client::from_conf(config.build())
}

/// The message attribute a dead letter's reason travels in: the body stays exactly as it was, so
/// an SQS redrive can move it back to its queue unchanged.
pub const REASON_ATTRIBUTE: &str = "reason";

/// Sends delivery jobs to one SQS queue, each job's JSON as one message body.
#[derive(Clone, Debug)]
pub struct SqsDeliveryQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    /// Where `dead_letter` puts what can never be delivered.
    dead_letter_url: Option<String>,
}

impl SqsDeliveryQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: None,
        }
    }

    /// The queue at `queue_url`, through `endpoint` when given (moto, LocalStack), else AWS.
    pub fn from_sdk(sdk: &SdkConfig, queue_url: impl Into<String>, endpoint: Option<&str>) -> Self {
        Self::new(sqs_client(sdk, endpoint), queue_url)
    }

    /// Dead letters go to the queue at `url` (the stack's dead-letter queue).
    pub fn with_dead_letters(self, url: impl Into<String>) -> Self {
        Self {
            dead_letter_url: Some(url.into()),
            ..self
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends a backend's control message (`disconnect`, `ban`, `unban`, `forget`) as the worker
    /// reads it (`domain::sessions`).
    pub async fn send_control(
        &self,
        control: &domain::sessions::Control,
    ) -> Result<(), QueueError> {
        self.send_batch(&[control.to_json()], Duration::ZERO).await
    }

    /// Sends one batch, resending what SQS did not confirm, up to [`SEND_ATTEMPTS`] calls. Entry
    /// ids are the bodies' positions in the batch, so a retry names the same job the same way.
    async fn send_batch(&self, bodies: &[String], delay: Duration) -> Result<(), QueueError> {
        // SQS takes whole seconds, at most 15 minutes.
        let delay_seconds = i32::try_from(delay.as_secs().min(900)).unwrap_or(900);
        let mut pending: BTreeMap<String, &str> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| (i.to_string(), body.as_str()))
            .collect();
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=SEND_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(*body)
                        .set_delay_seconds((delay_seconds > 0).then_some(delay_seconds))
                        .build()
                        .map_err(|e| QueueError::Unavailable(format!("a batch entry: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    QueueError::Unavailable(format!(
                        "SendMessageBatch to {} failed: {}",
                        self.queue_url,
                        DisplayErrorContext(&e)
                    ))
                })?;
            // A fault of ours (a body SQS will never take) fails now: resending cannot help.
            if let Some(refused) = output.failed().iter().find(|f| f.sender_fault()) {
                return Err(QueueError::Unavailable(format!(
                    "SQS refused a delivery job: {} ({})",
                    refused.code(),
                    refused.message().unwrap_or("no message")
                )));
            }
            // Only what SQS confirms is queued: an entry in neither list is sent again.
            for done in output.successful() {
                pending.remove(done.id());
            }
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(QueueError::Unavailable(format!(
            "SQS did not accept {} of {} delivery jobs after {SEND_ATTEMPTS} attempts",
            pending.len(),
            bodies.len()
        )))
    }
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn enqueue(&self, jobs: Vec<DeliveryJob>) -> Result<(), QueueError> {
        self.enqueue_after(jobs, Duration::ZERO).await
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        let url = self.dead_letter_url.as_deref().ok_or_else(|| {
            QueueError::Unavailable(
                "no dead-letter queue is configured (DEAD_LETTER_QUEUE_URL)".into(),
            )
        })?;
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(|e| QueueError::Unavailable(format!("a dead letter's reason: {e}")))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes(REASON_ATTRIBUTE, reason)
            .send()
            .await
            .map_err(|e| {
                QueueError::Unavailable(format!(
                    "SendMessage to the dead-letter queue {url} failed: {}",
                    DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }

    async fn enqueue_after(
        &self,
        jobs: Vec<DeliveryJob>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let bodies: Vec<String> = jobs.iter().map(DeliveryJob::to_json).collect();
        if let Some(big) = bodies.iter().find(|b| b.len() > MAX_MESSAGE_BYTES) {
            return Err(QueueError::TooLarge {
                bytes: big.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let sizes: Vec<usize> = bodies.iter().map(String::len).collect();
        // One batch after the other: a continuation is one job, a backend publish too; only a
        // caller handing over many at once waits for several round trips.
        for range in batch_ranges(&sizes) {
            self.send_batch(&bodies[range], delay).await?;
        }
        Ok(())
    }
}
