//! Amazon SQS: the delivery queue's AWS transport.
//!
//! - [`queue`]: `SqsDeliveryQueue`, the `DeliveryQueue` port on `SendMessageBatch`.
//! - [`batches`]: how jobs are cut into batches SQS accepts (pure).
//! - [`event`]: the other side, SQS events delivered to a Lambda by an event source mapping, and
//!   the partial batch response that sends back only the failed jobs.
//! - `poller`: the event source mapping's side, for runs without Lambda (the local gateway).

mod batches;
pub mod event;
mod poller;
mod queue;

pub use batches::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES};
pub use event::{
    BatchOutcome, QueuedMessage, Record, RecordError, UnusableId, handle_batch, queued_messages,
};
pub use poller::SqsPoller;
pub use queue::{SEND_ATTEMPTS, SqsDeliveryQueue, sqs_client};

/// The environment variable holding the delivery queue's URL (set by `infra/serverless.yml`).
pub const QUEUE_URL_VAR: &str = "DELIVERY_QUEUE_URL";

/// The delivery queue's URL from [`QUEUE_URL_VAR`].
pub fn queue_url_from_env() -> Result<String, MissingQueueUrl> {
    std::env::var(QUEUE_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .ok_or(MissingQueueUrl)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{QUEUE_URL_VAR} is not set: it names the SQS queue delivery jobs go to")]
pub struct MissingQueueUrl;
