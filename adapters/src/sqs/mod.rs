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
    BatchOutcome, QueuedMessage, Record, RecordError, SENT_TIMESTAMP_ATTRIBUTE, Sources,
    UnusableId, handle_batch, queued_messages,
};
pub use poller::SqsPoller;
pub use queue::{REASON_ATTRIBUTE, SEND_ATTEMPTS, SqsDeliveryQueue, sqs_client};

/// A setting the `fanout` function cannot run without.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not set: the fan-out function needs it")]
pub struct MissingQueueUrl(pub &'static str);
